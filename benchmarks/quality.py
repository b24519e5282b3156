"""Dance quality of the `default` model beside the `dancenet-2018` baseline, from the same run.

    python benchmarks/quality.py [--data DATA] [--default RUN] [--baseline RUN] [--seconds 60] [--samples 3]

Generates ``--samples`` videos (seeds 0..N-1) with each run and prints every metric of
docs/metrics.md side by side, with the real reference's own level in the last column; under each
metric, its worst 10 s window of any seed (and of the real clips), with where it is. Both runs
are measured against the same reference: the default run's held-out clips (the whole dataset if
it records none). ``--data`` is a prepared dataset, or a source (BVH folder, video) that is
prepared on the fly at the default run's size and frame rate (``--source-fps``, default 60 for the
CMU salsa BVH files). Defaults: the bundled model beside runs/dancenet-2018.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "dancenet" / "pretrained" / "salsa"

ROWS = (
    ("freeze_ratio", "freeze ratio"),
    ("loop_ratio", "loop ratio"),
    ("artifact_ratio", "artifact ratio"),
    ("empty_frame_ratio", "empty frames"),
    ("frechet_distance", "Frechet distance"),
    ("diversity", "diversity (1 - IoU)"),
    ("memorisation_mean_best_iou", "memorisation (best IoU)"),
    ("copied_frame_ratio", "copied frames"),
    ("reconstruction_iou", "VAE reconstruction IoU"),
    ("motion_nll", "motion NLL / frame"),
)


def reference_dataset(data: Path, run: Path, source_fps: float, workdir: Path):
    """A prepared dataset: ``data`` itself, or ``data`` prepared at the run's size and rate."""
    from dancenet.dataset import Dataset
    from dancenet.ingest import PrepareOptions, prepare

    if (data / "manifest.json").is_file():
        return Dataset(data)
    from dancenet.checkpoint import read_model_info

    vae = read_model_info(run, "vae", "vae")
    options = PrepareOptions(height=int(vae.config["height"]), width=int(vae.config["width"]),
                             fps=float(vae.metadata.get("fps", 30.0)), source_fps=source_fps, quiet=True)
    return prepare([data], workdir / "reference", options)


def measure(run: Path, reference, seconds: float, samples: int) -> dict:
    """Generate and evaluate: the summary metrics plus generation and evaluation timings."""
    import dancenet
    from dancenet.evaluate import suite

    model = dancenet.load(run)
    started = time.perf_counter()
    videos = {f"seed {seed}": model.generate(seconds=seconds, seed=seed) for seed in range(samples)}
    generate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    extra = suite.model_metrics(run, reference.dataset, reference.clips)
    evaluation = suite.evaluate_videos(videos, reference, extra=extra)
    summary = dict(evaluation.metrics["summary"])
    summary["generate_frames_per_s"] = sum(len(v) for v in videos.values()) / generate_seconds
    summary["evaluate_seconds"] = time.perf_counter() - started
    return {"summary": summary, "reference_level": evaluation.metrics["reference_level"],
            "worst_window_seconds": evaluation.metrics["settings"]["worst_window_seconds"]}


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def worst_row(label: str, key: str, results: dict, names: list[str], real: dict) -> list[str]:
    """A metric's worst window (docs/metrics.md) for each model and for real dance, with where it is."""
    from dancenet.commands.evaluate import worst_cell

    return ([label] + [worst_cell(results[n]["summary"]["worst_window"].get(key), key) for n in names]
            + [worst_cell(real.get("worst_window", {}).get(key), key)])


def add_reference_arguments(parser: argparse.ArgumentParser, samples: int) -> None:
    """--data, --seconds, --samples and --source-fps: what to generate and what to compare with."""
    parser.add_argument("--data", type=Path, default=ROOT / "../shared/data/cmu61-salsa-bvh",
                        help="prepared dataset or source of real dance (default: the shared salsa BVH)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument("--source-fps", type=float, default=60.0, help="frame rate of a BVH --data source")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default", type=Path, default=BUNDLED, help="run of the default preset")
    parser.add_argument("--baseline", type=Path, default=ROOT / "runs" / "salsa-2018",
                        help="run of the dancenet-2018 preset")
    add_reference_arguments(parser, samples=3)
    args = parser.parse_args()

    from dancenet.runtime import configure

    configure()
    from dancenet.evaluate import suite

    runs = {"default": args.default, "dancenet-2018": args.baseline}
    available = {name: run for name, run in runs.items() if (run / "motion.safetensors").is_file()}
    for name, run in runs.items():
        if name not in available:
            print(f"skipped {name}: {run} holds no trained motion model")
    if not available:
        print("nothing to measure: train the runs first (see README)")
        return 0
    first = next(iter(available.values()))
    with tempfile.TemporaryDirectory() as workdir:
        dataset = reference_dataset(args.data, first, args.source_fps, Path(workdir))
        reference = suite.make_reference(dataset, suite.validation_clips(first))
        results = {name: measure(run, reference, args.seconds, args.samples) for name, run in available.items()}

    names = list(results)
    real = next(iter(results.values()))["reference_level"]
    worst_label = f"  worst {next(iter(results.values()))['worst_window_seconds']:g} s window"
    print(f"quality: {args.samples} x {args.seconds:g} s per model, reference {dataset.path.name} "
          f"({reference.role}: {', '.join(clip.name for clip in reference.clips)})")
    table = [["metric"] + names + ["real"]]
    for key, label in ROWS:
        table.append([label] + [cell(results[n]["summary"].get(key)) for n in names] + [cell(real.get(key))])
        if key in real.get("worst_window", {}) or any(key in results[n]["summary"]["worst_window"] for n in names):
            table.append(worst_row(worst_label, key, results, names, real))
    table.append(["real-vs-real Frechet (floor)"] + [cell(results[n]["summary"]["frechet_real_vs_real"])
                                                     for n in names] + [""])
    table.append(["motion energy mean"] + [cell(results[n]["summary"]["motion_energy"]["mean"]) for n in names]
                 + [cell(real["motion_energy"]["mean"])])
    table.append(worst_row(worst_label + " (mean / real mean)", "motion_energy_over_real", results, names, real))
    table.append(["generate frames/s"] + [f"{results[n]['summary']['generate_frames_per_s']:.0f}" for n in names]
                 + [""])
    table.append(["evaluate seconds"] + [f"{results[n]['summary']['evaluate_seconds']:.1f}" for n in names] + [""])
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for index, row in enumerate(table):
        print("| " + " | ".join(value.ljust(width) for value, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
