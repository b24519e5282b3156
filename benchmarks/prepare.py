"""Throughput of `dancenet prepare`: BVH rendering and video decoding + segmentation at 208x120.

Targets on 2 cores: BVH rendering >= 1,000 frames/s; video ingest >= 200 frames/s.

    python benchmarks/prepare.py [--bvh ../shared/data/cmu61-salsa-bvh]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

HEIGHT, WIDTH = 120, 208


def bvh_rendering(folder: Path, limit: int) -> dict:
    """Frames/s of parsing + forward kinematics, and of rendering alone, over ``limit`` frames."""
    from dancenet.ingest.bvh import bvh_files, forward_kinematics, parse_bvh, resample
    from dancenet.ingest.render import render_silhouettes

    started = time.perf_counter()
    clips = []
    for path in bvh_files(folder):
        motion = parse_bvh(path)
        clips.append((motion.skeleton, resample(forward_kinematics(motion), 60.0, 30.0)))
    parse_seconds = time.perf_counter() - started
    frames = sum(len(positions) for _, positions in clips)
    rendered, started = 0, time.perf_counter()
    for skeleton, positions in clips:
        positions = positions[: max(0, limit - rendered)]
        if len(positions) == 0:
            break
        for _ in render_silhouettes(positions, skeleton.parents, skeleton.names, HEIGHT, WIDTH):
            rendered += 1
    render_seconds = time.perf_counter() - started
    return {"parse_fk_frames_per_s": frames / parse_seconds, "render_frames_per_s": rendered / render_seconds,
            "frames": rendered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bvh", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/cmu61-salsa-bvh")
    parser.add_argument("--data", type=Path, default=None, help="alias of --bvh (for benchmarks/run_all.py)")
    parser.add_argument("--frames", type=int, default=4000, help="frames to render")
    parser.add_argument("--video-size", nargs="+", default=["640x360", "1280x720"], help="source video sizes")
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = args.data or args.bvh
    from dancenet.runtime import configure

    configure()
    print(f"# prepare throughput at {WIDTH}x{HEIGHT}")
    print("| stage | frames/s | target |")
    print("|---|---:|---:|")
    if folder.is_dir():
        result = bvh_rendering(folder, args.frames)
        print(f"| BVH parse + forward kinematics (60->30 fps) | {result['parse_fk_frames_per_s']:,.0f} | |")
        print(f"| BVH silhouette rendering | {result['render_frames_per_s']:,.0f} | >= 1,000 |")
    else:
        print(f"(no BVH folder at {folder}: BVH rendering skipped)", file=sys.stderr)
    sys.path.insert(0, str(Path(__file__).parent))
    from _video_ingest import video_rows

    for size in args.video_size:
        video_rows(size, args.video_frames, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
