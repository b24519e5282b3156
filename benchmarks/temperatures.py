"""Rollout quality of a trained run across sampling temperatures: how the recommended
``generate_temperature`` / ``generate_sigma_temperature`` of a recipe are chosen.

    python benchmarks/temperatures.py [--run runs/salsa] [--reference data/salsa]

For each (temperature, sigma temperature) pair, generates ``--samples`` videos and prints motion
energy relative to the held-out real dance (1 is right), artifact, empty, freeze and loop
ratios (docs/metrics.md). Pick the pair with energy near 1, artifacts < 1% and loops < 5%.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

PAIRS = [(1.0, 1.0), (1.0, 0.75), (1.0, 0.5), (0.75, 0.75), (0.5, 0.75), (0.5, 0.5)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/salsa")
    parser.add_argument("--motion", default="motion")
    parser.add_argument("--reference", default="data/salsa")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    if not os.path.isdir(args.run):
        print(f"(no run at {args.run}: skipped)")
        return 0
    import numpy as np

    from dancenet import load
    from dancenet.dataset import Dataset
    from dancenet.evaluate import metrics, suite
    from dancenet.runtime import configure

    configure()
    dataset = Dataset(args.reference)
    reference = suite.make_reference(dataset, suite.validation_clips(args.run, args.motion))
    real = np.concatenate([dataset.clip_frames(clip) for clip in reference.clips])
    real_energy = metrics.motion_energy(real)
    threshold = metrics.freeze_threshold(real_energy, real[0].size)
    dancer = load(args.run, motion_name=args.motion)
    print(f"# sampling temperatures of {args.run} ({args.motion}), {args.samples} x {args.seconds:g} s, "
          f"against held-out {', '.join(clip.name for clip in reference.clips)}\n")
    print("| temperature | sigma temperature | energy / real | artifact | empty | freeze | loop |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for temperature, sigma_temperature in PAIRS:
        rows = []
        for seed in range(args.samples):
            frames = dancer.generate(seconds=args.seconds, seed=seed, temperature=temperature,
                                     sigma_temperature=sigma_temperature)
            energy = metrics.motion_energy(frames)
            artifacts = metrics.artifact_analysis(frames)
            rows.append((energy.mean() / real_energy.mean(), artifacts.ratio, artifacts.empty.mean(),
                         metrics.freeze_ratio(energy, threshold, dancer.fps),
                         metrics.loop_ratio(frames, dancer.fps)))
        energy, artifact, empty, freeze, loop = np.mean(rows, axis=0)
        print(f"| {temperature:g} | {sigma_temperature:g} | {energy:.2f} | {artifact:.2%} | {empty:.2%} | "
              f"{freeze:.2%} | {loop:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
