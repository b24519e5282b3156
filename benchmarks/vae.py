"""VAE throughput, ``default`` beside ``dancenet-2018``, in one process on the same frames.

    python benchmarks/vae.py [DATASET] [--rounds 3] [--budget-minutes M]

Prints training, encode and decode frames/s for both presets with the ratio default/2018.
Rounds alternate between the presets and the best round of each counts, so load from other
processes on a shared machine penalises both alike. ``--budget-minutes M`` also trains each
preset for M minutes of wall clock (in turn) on the same split and prints its validation IoU.
DATASET defaults to data/salsa (``dancenet prepare ../shared/data/cmu61-salsa-bvh --out
data/salsa --source-fps 60``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch allocates anything


def training_rate(model, optimizer, frames, micro_batch, steps, beta) -> float:
    """Frames per second of full optimiser steps on ``frames`` (n, H, W) uint8."""
    import torch

    from dancenet.vae.loss import vae_loss

    batch = model.prepare_frames(torch.from_numpy(frames))
    generator = torch.Generator().manual_seed(0)

    def step():
        for chunk in batch.split(micro_batch):
            output, mean, log_var = model(chunk, generator)
            loss, _, _ = vae_loss(output, chunk, mean, log_var, model.decoder.outputs_logits,
                                  beta)
            (loss * len(chunk) / len(batch)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, oneDNN kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(batch) / (time.perf_counter() - start)


def inference_rates(model, frames, repeats) -> tuple[float, float]:
    """(encode, decode) frames per second for a batch of ``frames``."""
    import torch

    with torch.inference_mode():
        mean, _ = model.encode_moments(torch.from_numpy(frames))
        model.decode(mean)
        start = time.perf_counter()
        for _ in range(repeats):
            mean, _ = model.encode_moments(torch.from_numpy(frames))
        encode = repeats * len(frames) / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(repeats):
            model.decode(mean)
        decode = repeats * len(frames) / (time.perf_counter() - start)
    return encode, decode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", default="data/salsa")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per preset")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="also train each preset this long and print its val IoU")
    parser.add_argument("--latent-size", type=int, default=None, help="default preset's latent size")
    args = parser.parse_args(argv)

    from dancenet.runtime import configure

    configure()
    import numpy as np
    import torch

    from dancenet.dataset import Dataset
    from dancenet.vae.model import VAE, preset_config
    from dancenet.training import make_optimizer
    from dancenet.vae.train import preset_training

    dataset = Dataset(args.dataset)
    rng = np.random.default_rng(0)
    presets = {
        "dancenet-2018": preset_config("dancenet-2018", dataset.height, dataset.width),
        "default": preset_config("default", dataset.height, dataset.width,
                                 latent_size=args.latent_size),
    }
    print(f"dataset {dataset.path}: {len(dataset)} frames {dataset.width}x{dataset.height}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    models, optimizers, batches = {}, {}, {}
    recipes = {name: preset_training(name) for name in presets}
    for name, config in presets.items():
        torch.manual_seed(0)
        models[name] = VAE(config)
        optimizers[name] = make_optimizer(models[name], recipes[name])
        batches[name] = dataset.frames_at(np.sort(rng.choice(len(dataset), recipes[name].batch_size,
                                                             replace=False)))
    # each preset's own inference batch (32 frames for 2018 keeps it near 1.5 GB)
    inference_frames = dataset.frames_at(np.sort(rng.choice(len(dataset), 256, replace=False)))
    results = {name: {"train": 0.0, "encode": 0.0, "decode": 0.0} for name in presets}
    for round_index in range(args.rounds):
        for name, model in models.items():
            config, recipe = presets[name], recipes[name]
            model.train()
            steps = 2 if name == "dancenet-2018" else 10
            train = training_rate(model, optimizers[name], batches[name],
                                  recipe.micro_batch or recipe.batch_size, steps, recipe.beta)
            model.eval()
            encode, decode = inference_rates(model, inference_frames[:config.inference_batch_size],
                                             4 if name == "dancenet-2018" else 8)
            best = results[name]
            best["train"], best["encode"], best["decode"] = (max(best["train"], train),
                                                             max(best["encode"], encode),
                                                             max(best["decode"], decode))
            print(f"  round {round_index + 1} {name:14s} train {train:8.1f}  encode {encode:8.1f}  "
                  f"decode {decode:8.1f} frames/s", flush=True)
    old, new = results["dancenet-2018"], results["default"]
    print()
    print(f"{'frames/s (best round)':24s}{'dancenet-2018':>15s}{'default':>12s}{'ratio':>9s}")
    for key in ("train", "encode", "decode"):
        print(f"{key:24s}{old[key]:15.1f}{new[key]:12.1f}{new[key] / old[key]:8.1f}x")
    encoder, decoder = models["default"].parameter_counts()
    print(f"default: latent {presets['default'].latent_size}, channels {presets['default'].channels}, "
          f"bf16 {presets['default'].bf16}, {encoder + decoder:,} parameters")

    if args.budget_minutes:
        from dataclasses import replace

        from dancenet.training import RunOptions
        from dancenet.vae.train import train_vae

        print(f"\ntraining each preset for {args.budget_minutes} min (same validation clip)", flush=True)
        with tempfile.TemporaryDirectory() as directory:
            for name, config in presets.items():
                recipe = replace(recipes[name], epochs=None, minutes=args.budget_minutes,
                                 checkpoint_every=None, checkpoint_minutes=None)
                result = train_vae(dataset.path, os.path.join(directory, name), config, recipe,
                                   RunOptions(quiet=True))
                print(f"{name:14s} steps {result.step:6d}  val IoU {result.metrics['val_iou']:.4f}  "
                      f"val loss {result.metrics['val_loss']:.1f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
