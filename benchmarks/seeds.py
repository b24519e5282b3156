"""Are the motion model's dances robust to its training seed? Issue 14's targets, per training seed.

    python benchmarks/seeds.py RUN --motions motion-s0,motion-s1,motion-s2 [--data DATA]
                               [--seconds 60] [--samples 5]

Each motion model (trained on RUN's latents with the same recipe and a different ``--seed``, e.g.
``dancenet train motion RUN --config configs/motion-default.yaml --epochs 200 --seed 1 --name
motion-s1``) generates ``--samples`` dances (seeds 0..N-1) of ``--seconds``, scored against RUN's
test clips (the clips neither the VAE nor the motion model saw, and that did not choose the
exported epoch). One row per target: each model's value, real dance's, and the target; a value
that misses its target is marked ``*``. ``--data``: a prepared dataset or the salsa BVH folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import ROOT, add_reference_arguments, cell, reference_dataset  # noqa: E402

# (label, how to read the value, target test, target text); summary = the pooled metrics, real = the
# reference level, worst = the worst 10 s window of any dance.
TARGETS = (
    ("Frechet / real-vs-real", lambda s, r: s.get("frechet_over_real_vs_real"), lambda v, r: v <= 1.5, "<= 1.5"),
    ("artifacts", lambda s, r: s["artifact_ratio"], lambda v, r: v < 0.005, "< 0.5%"),
    ("loop", lambda s, r: s["loop_ratio"], lambda v, r: v < 0.02, "< 2%"),
    ("freeze", lambda s, r: s["freeze_ratio"], lambda v, r: v < 0.02, "< 2%"),
    ("diversity / real", lambda s, r: s["diversity"] / r["diversity"] if r.get("diversity") else None,
     lambda v, r: v >= 0.9, ">= 0.9"),
    ("copied frames", lambda s, r: s["copied_frame_ratio"],
     lambda v, r: v <= (r.get("copied_frame_ratio") or 0.0), "<= real"),
    ("memorisation (best IoU)", lambda s, r: s["memorisation_mean_best_iou"],
     lambda v, r: v <= (r.get("memorisation_mean_best_iou") or 1.0), "<= real"),
    ("motion energy / real", lambda s, r: s["motion_energy"]["mean"] / r["motion_energy"]["mean"],
     lambda v, r: 0.8 <= v <= 1.2, "0.8-1.2"),
    ("worst 10 s: artifacts", lambda s, r: _worst(s, "artifact_ratio"), lambda v, r: v < 0.02, "< 2%"),
    ("worst 10 s: loop", lambda s, r: _worst(s, "loop_ratio"), lambda v, r: v < 0.10, "< 10%"),
    # not issue 14's: malformed bodies in one piece, held to the artifacts' targets (docs/metrics.md)
    ("unlike any pose", lambda s, r: s.get("unlike_frame_ratio"), lambda v, r: v < 0.005, "< 0.5%"),
    ("worst 10 s: unlike any pose", lambda s, r: _worst(s, "unlike_frame_ratio"), lambda v, r: v < 0.02, "< 2%"),
)


def _worst(summary: dict, key: str):
    entry = summary.get("worst_window", {}).get(key)
    return None if entry is None else entry["value"]


def real_value(label: str, real: dict):
    """Real dance's own level for a row, where it has one."""
    keys = {"Frechet / real-vs-real": None, "artifacts": "artifact_ratio", "loop": "loop_ratio",
            "freeze": "freeze_ratio", "copied frames": "copied_frame_ratio",
            "memorisation (best IoU)": "memorisation_mean_best_iou", "unlike any pose": "unlike_frame_ratio"}
    key = keys.get(label)
    return real.get(key) if key else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", default=ROOT / "runs" / "salsa",
                        help="run holding the VAE, latents and the motion models (default runs/salsa)")
    parser.add_argument("--motions", default="motion-s0,motion-s1,motion-s2",
                        help="motion model names inside RUN, comma-separated")
    add_reference_arguments(parser, samples=5)
    args = parser.parse_args()

    from dancenet.runtime import configure

    configure()
    import dancenet
    from dancenet.evaluate import suite

    names = [name.strip() for name in args.motions.split(",") if name.strip()]
    missing = [name for name in names if not (args.run / f"{name}.safetensors").is_file()]
    if missing:
        print(f"nothing to measure: {args.run} holds no motion model {', '.join(missing)}; train them "
              "first (see this script's docstring)")
        return 0
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        dataset = reference_dataset(args.data, args.run, args.source_fps, Path(workdir))
        reference = suite.make_reference(dataset, suite.validation_clips(args.run, names[0]))
        for name in names:
            dancer = dancenet.load(args.run, motion_name=name)
            videos = {f"seed {seed}": dancer.generate(seconds=args.seconds, seed=seed)
                      for seed in range(args.samples)}
            evaluation = suite.evaluate_videos(videos, reference)
            results[name] = (evaluation.metrics["summary"], evaluation.metrics["reference_level"],
                             dancer.metadata)
    real = next(iter(results.values()))[1]
    print(f"seeds: {args.samples} x {args.seconds:g} s per model, against {reference.role} "
          f"{', '.join(clip.name for clip in reference.clips)} of {dataset.path.name}")
    print("| model | exported epoch | sigma temperature | noise correlation | component correlation |\n"
          "|---|---:|---:|---:|---:|")
    for name, (_, _, metadata) in results.items():
        sampling = metadata.get("sampling") or {}
        print(f"| {name} | {metadata.get('exported_epoch')} | {sampling.get('sigma_temperature')} | "
              f"{sampling.get('noise_correlation', 0.0)} | {sampling.get('component_correlation', 0.0)} |")
    print()
    print("| target | " + " | ".join(names) + " | real | goal |")
    print("|---" * (len(names) + 3) + "|")
    missed = 0
    for label, read, meets, goal in TARGETS:
        cells = []
        for name in names:
            summary, level, _ = results[name]
            value = read(summary, level)
            ok = value is None or meets(value, level)
            missed += not ok
            cells.append(cell(value) + ("" if ok else " *"))
        print(f"| {label} | " + " | ".join(cells) + f" | {cell(real_value(label, real))} | {goal} |")
    print(f"\n{missed} value(s) miss their target (*)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
