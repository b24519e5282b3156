"""How much of a VAE's reconstruction error is its encoder's, and how much its decoder's?

    python benchmarks/vae_gap.py [RUN] [--data data/salsa] [--clips 61_07,61_01] [--frames 300]

For each clip (up to ``--frames`` frames spread evenly over it), the IoU of the posterior mean's
reconstruction (what ``dancenet evaluate`` and training report), then the IoU after fitting each
frame's latent to the frame by gradient descent through the frozen decoder (Adam, lr 0.05, on
the frame's binary cross-entropy plus the prior's 0.5 |z|^2: the best latent this decoder has for
the frame). The difference is the encoder's share of the error (the amortisation gap); what is
left is the decoder's, which no better encoder could remove. RUN defaults to the bundled model.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

STEPS = (0, 10, 25, 50, 100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default=None, help="run with a VAE (default: the bundled model)")
    parser.add_argument("--data", default="data/salsa", help="prepared dataset holding the clips")
    parser.add_argument("--clips", default="61_07,61_01", help="clips to measure, comma-separated")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip, spread evenly")
    args = parser.parse_args(argv)

    from dancenet.runtime import configure

    configure()
    import numpy as np
    import torch

    from dancenet.dataset import Dataset
    from dancenet.generate import bundled_directory
    from dancenet.vae.encode import load
    from dancenet.vae.loss import intersection_over_union, reconstruction_loss

    vae = load(args.run or bundled_directory())
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    dataset = Dataset(args.data)
    print(f"VAE {args.run or 'bundled'}, dataset {dataset.path}; torch {torch.get_num_threads()} threads")
    print("| clip | frames | " + " | ".join(f"{steps} steps" for steps in STEPS) + " | seconds |")
    print("|---|---:|" + "---:|" * (len(STEPS) + 1))
    for clip in (name.strip() for name in args.clips.split(",") if name.strip()):
        frames = dataset.clip_frames(clip)
        frames = frames[np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int)]
        target = torch.from_numpy(frames.astype(np.float32))[:, None]
        with torch.no_grad():
            latent = vae.encode_moments(target)[0].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([latent], lr=0.05)
        ious, start = [], time.perf_counter()
        for step in range(STEPS[-1] + 1):
            if step in STEPS:
                with torch.no_grad():
                    ious.append(intersection_over_union(vae.decode(latent), target[:, 0]).mean().item())
            if step == STEPS[-1]:
                break
            optimizer.zero_grad()
            loss = reconstruction_loss(vae.decode_output(latent), target, vae.decoder.outputs_logits)
            (loss + 0.5 * latent.square().sum(dim=1)).sum().backward()
            optimizer.step()
        print(f"| {clip} | {len(frames)} | " + " | ".join(f"{iou:.3f}" for iou in ious)
              + f" | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
