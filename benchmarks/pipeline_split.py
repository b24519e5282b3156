"""How to split `dancenet train --minutes M` between the VAE and the motion model.

    python benchmarks/pipeline_split.py --data ../shared/data/cmu61-salsa-bvh [--minutes 5]
        [--shares 0.5,0.75,0.9] [--work /tmp/split]

Prepares the data once (BVH at 60 fps), then runs the whole pipeline (`dancenet.pipeline.train`)
once per VAE share with the same total budget, and prints, per share: the VAE's held-out IoU, the
motion model's held-out NLL, and the evaluation of 3 x 30 s dances against the held-out take
(freeze, loop, artifacts, Frechet distance), beside the real dance's own level from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/cmu61-salsa-bvh")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--shares", default="0.5,0.75,0.9")
    parser.add_argument("--work", default="/tmp/dancenet-pipeline-split")
    arguments = parser.parse_args()

    from dancenet import pipeline
    from dancenet.ingest import PrepareOptions, prepare
    from dancenet.runtime import configure

    configure()
    work = Path(arguments.work)
    dataset = work / "data"
    if not (dataset / "manifest.json").is_file():
        source = Path(arguments.data)
        if (source / "manifest.json").is_file():
            dataset = source
        else:
            prepare([source], dataset, PrepareOptions(source_fps=60, quiet=True))
    rows = []
    for share in [float(text) for text in arguments.shares.split(",")]:
        pipeline.VAE_SHARE = share
        run = work / f"share-{share:g}"
        shutil.rmtree(run, ignore_errors=True)
        started = time.perf_counter()
        result = pipeline.train([dataset], run, minutes=arguments.minutes)
        seconds = time.perf_counter() - started
        state = json.loads((run / pipeline.STATE_FILE).read_text())
        summary, real = result.metrics["summary"], result.metrics["reference_level"]
        rows.append((share, state["stages"]["vae"].get("val_iou"), state["stages"]["motion"].get("val_nll"),
                     summary, real, seconds, training_counts(run)))
        print_table(arguments.minutes, rows)


def training_counts(run: Path) -> str:
    """VAE steps; motion epochs, and the second at which the kept (best held-out) epoch ended."""
    import csv

    with open(run / "vae-train" / "metrics.csv") as handle:
        vae_steps = [row["step"] for row in csv.DictReader(handle)][-1]
    with open(run / "motion-train" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    kept = json.loads((run / "motion.json").read_text()).get("exported_epoch")
    at = next((row["seconds"] for row in rows if int(row["epoch"]) == kept), "?")
    return f"{vae_steps} / {len(rows)}, best {kept} at {at} s"


def print_table(minutes: float, rows) -> None:
    print(f"\n## dancenet train --minutes {minutes:g}: VAE share of the budget "
          f"(3 x 30 s dances vs the held-out take)\n")
    print("| VAE share | VAE held-out IoU | motion held-out NLL | freeze | loop | artifacts | "
          "Frechet | real: loop / Frechet | wall s | VAE steps / motion epochs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for share, iou, nll, summary, real, seconds, counts in rows:
        print(f"| {share:g} | {iou:.3f} | {nll:.1f} | {summary['freeze_ratio']:.1%} | "
              f"{summary['loop_ratio']:.1%} | {summary['artifact_ratio']:.2%} | "
              f"{summary['frechet_distance']:.1f} | {real['loop_ratio']:.1%} / "
              f"{real.get('frechet_distance', float('nan')):.1f} | {seconds:.0f} | {counts} |", flush=True)


if __name__ == "__main__":
    main()
