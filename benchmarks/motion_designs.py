"""Compare motion-model designs at the same wall-clock budget: held-out NLL and rollout health.

    python benchmarks/motion_designs.py --latents runs/salsa/latents.npz --minutes 3
    python benchmarks/motion_designs.py --proxy data/salsa --minutes 3   # no VAE yet

``--proxy DATASET`` builds stand-in latents from a motion-capture dataset's joints (PCA of the
joint positions to 32 dimensions), which has the clip structure and dynamics of the real thing.

For each candidate it trains for ``--minutes`` in a scratch run, then reports the held-out NLL
(nats per frame, raw latent units) and, for 60-second rollouts from 3 seeds, in latent space:
``speed`` (mean per-frame latent change / the held-out clips' own), ``freeze`` (share of frames in
runs >= 0.5 s moving less than the real 5th percentile), ``loop`` (share of 1 s windows that nearly
repeat a window more than 1 s earlier: closer than the real clips' 5th percentile of such
distances), ``off`` (median distance to the nearest training frame / the held-out frames' own:
above ~1.5 the model has left the data, which decodes to blobs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dancenet.generate import rollout  # noqa: E402
from dancenet.motion.model import load_motion  # noqa: E402
from dancenet.latents import load_latents  # noqa: E402
from dancenet.motion.batches import split_clips  # noqa: E402
from dancenet.motion.model import preset_config  # noqa: E402
from dancenet.motion.train import preset_training, train_motion  # noqa: E402
from dancenet.training import RunOptions  # noqa: E402

CANDIDATES = {
    "2018": ("dancenet-2018", {}, {}),
    "default": ("default", {}, {}),
    "gru": ("default", {"cell": "gru"}, {}),
    "small": ("default", {"hidden_size": 256}, {}),
    "noise": ("default", {}, {"input_noise": 0.1}),
    "samples": ("default", {}, {"latent_source": "sample"}),
    "residual": ("default", {"residual": True, "hidden_size": 256}, {}),  # the first default: drifts
    "short": ("default", {}, {"sequence_length": 32, "batch_size": 64}),
    "small-samples": ("default", {"hidden_size": 256}, {"latent_source": "sample"}),
    "small-samples-noise": ("default", {"hidden_size": 256},
                            {"latent_source": "sample", "input_noise": 0.1}),
}


def proxy_latents(dataset_path: str, out: Path, size: int = 32) -> None:
    """latents.npz from joint positions: PCA to ``size`` dims, posterior noise 10% of each std."""
    from dancenet.dataset import Dataset

    dataset = Dataset(dataset_path)
    joints = np.asarray(dataset.joints, dtype=np.float64).reshape(len(dataset), -1)
    centred = joints - joints.mean(0)
    _, _, basis = np.linalg.svd(centred[::4], full_matrices=False)
    mean = (centred @ basis[:size].T).astype(np.float32)
    log_var = np.log((0.1 * mean.std(0)) ** 2)[None].repeat(len(mean), 0).astype(np.float32)
    np.savez(out, mean=mean, log_var=log_var, clip_names=np.array([c.name for c in dataset.clips]),
             clip_starts=np.array([c.start for c in dataset.clips]),
             clip_stops=np.array([c.stop for c in dataset.clips]), fps=np.float64(dataset.fps),
             vae_hash=np.array("proxy"), dataset_hash=np.array(dataset.manifest_hash))


def rollout_health(model, scaler, latents, train_rows, val_ranges, fps, seeds=(0, 1, 2),
                   seconds=60.0, temperature=1.0, sigma_temperature=1.0) -> dict:
    """Latent-space freeze / loop / speed / off-data figures of rollouts, each vs real clips."""
    train = torch.from_numpy(latents.mean[train_rows])
    real = [torch.from_numpy(latents.mean[start:stop]) for start, stop in val_ranges]
    real_steps = torch.cat([clip.diff(dim=0).norm(dim=1) for clip in real])
    still = torch.quantile(real_steps, 0.05)
    second = int(round(fps))

    def windows(sequence):
        count = len(sequence) // second
        return sequence[:count * second].reshape(count, -1)

    def nearest_repeat(sequence):
        blocks = windows(sequence)
        distances = torch.cdist(blocks, blocks)
        lag = torch.arange(len(blocks))
        valid = (lag[None, :] - lag[:, None]) >= 2  # an earlier window, more than 1 s before
        distances = distances.T.masked_fill(~valid, float("inf"))
        return distances.min(dim=1).values[1:]

    real_repeat = torch.cat([nearest_repeat(clip) for clip in real if len(clip) >= 4 * second])
    loop_threshold = torch.quantile(real_repeat[torch.isfinite(real_repeat)], 0.05)
    subset = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:4000]]
    real_off = torch.cat([torch.cdist(clip, subset).min(1).values for clip in real]).median()
    results = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        start = train[int(torch.randint(len(train), (1,), generator=generator))][None]
        frames = torch.cat(list(rollout(model, scaler, start, int(seconds * fps), generator,
                                        temperature, sigma_temperature)))
        steps = frames.diff(dim=0).norm(dim=1)
        frozen = (steps < still).numpy()
        freeze, run = np.zeros_like(frozen), 0
        for index, value in enumerate(frozen):
            run = run + 1 if value else 0
            if run >= second // 2:
                freeze[index - run + 1:index + 1] = True
        repeats = nearest_repeat(frames)
        results.append({
            "speed": float(steps.mean() / real_steps.mean()),
            "freeze": float(freeze.mean()),
            "loop": float((repeats < loop_threshold).float().mean()),
            "off": float(torch.cdist(frames, subset).min(1).values.median() / real_off),
        })
    return {key: float(np.mean([result[key] for result in results])) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--latents", default="runs/salsa/latents.npz",
                        help="a latents.npz from `dancenet encode` (default runs/salsa/latents.npz)")
    source.add_argument("--proxy", metavar="DATASET", help="a motion-capture dataset (uses its joints)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per candidate")
    parser.add_argument("--candidates", default="2018,default,residual",
                        help=f"comma-separated, from {', '.join(CANDIDATES)}")
    parser.add_argument("--keep", metavar="DIR", help="keep the scratch runs here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scratch = Path(args.keep or tempfile.mkdtemp(prefix="motion-designs-"))
    scratch.mkdir(parents=True, exist_ok=True)
    latents_path = scratch / "latents.npz"
    if args.proxy:
        proxy_latents(args.proxy, latents_path)
    else:
        shutil.copyfile(args.latents, latents_path)
    latents = load_latents(latents_path)
    train_clips, val_clips = split_clips(latents, "auto")
    train_rows = np.concatenate([np.arange(latents.offsets[i], latents.offsets[i + 1]) for i in train_clips])
    val_ranges = [(int(latents.offsets[i]), int(latents.offsets[i + 1])) for i in val_clips]
    print(f"latents {latents.mean.shape}, {len(train_clips)} train clips, held out "
          f"{[latents.clip_names[i] for i in val_clips]}, {args.minutes} min each")
    print(f"{'candidate':<10} {'steps':>6} {'val NLL':>9} {'speed':>6} {'freeze':>7} {'loop':>6} {'off':>6}"
          f"   (rollouts at temperature 1 / sigma 1; then sigma 0.5)")
    for name in args.candidates.split(","):
        preset, model_overrides, train_overrides = CANDIDATES[name]
        run = scratch / name
        run.mkdir(exist_ok=True)
        shutil.copyfile(latents_path, run / "latents.npz")
        from dataclasses import replace

        recipe = replace(preset_training(preset), epochs=None, minutes=args.minutes, **train_overrides)
        config = replace(preset_config(preset, latents.mean.shape[1]), **model_overrides)
        started = time.perf_counter()
        result = train_motion(run, config, recipe, RunOptions(quiet=True, overwrite=True))
        model, scaler, _ = load_motion(run)
        health = rollout_health(model, scaler, latents, train_rows, val_ranges, latents.fps)
        cool = rollout_health(model, scaler, latents, train_rows, val_ranges, latents.fps,
                              sigma_temperature=0.5)
        print(f"{name:<10} {result.step:>6} {result.metrics.get('val_nll_nats_per_frame', float('nan')):>9.2f} {health['speed']:>6.2f} "
              f"{health['freeze']:>7.3f} {health['loop']:>6.3f} {health['off']:>6.2f}   | "
              f"{cool['speed']:.2f} {cool['freeze']:.3f} {cool['loop']:.3f} {cool['off']:.2f}"
              f"   ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
