"""End-to-end generation speed: sampling + decoding + mp4 encoding, default beside dancenet-2018.

    python benchmarks/generate.py --run runs/salsa                  # RUN/motion.* and RUN/motion-2018.*
    python benchmarks/generate.py --run runs/salsa --baseline-name motion-2018 --seconds 30
    python benchmarks/generate.py                                   # untrained models, same shapes

Both motion models drive the same VAE, so the figures differ only by the motion model. Where a
run (or one of its motion models) is missing, an untrained model of the right shape stands in:
speed does not depend on training, except for the whole-body redraws, which an untrained
model needs far more often (measure those on a trained run). Prints frames/s at the default --scale 4 and at --scale 1
(best of --rounds), with whole-body sampling (the default) and without (--retries 0), the process CPU time per frame (the fairer figure on a shared machine: frames/s falls with other
load, CPU ms per frame much less), and the machine's load average.
Target: >= 300 frames/s on 2 cores for the default preset (set before whole-body sampling, which
decodes each step to check it: the target holds for --retries 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dancenet.generate import CHUNK, Dancer, load  # noqa: E402
from dancenet.generate import threads_beside_writer  # noqa: E402
from dancenet.motion.model import LatentScaler, MotionModel, preset_config  # noqa: E402
from dancenet.runtime import configure  # noqa: E402
from dancenet.video import X264_OPTIONS, VideoWriter  # noqa: E402


def untrained_dancer(preset: str, vae=None) -> Dancer:
    """A Dancer of the right shapes with random weights (default VAE, 120x208 frames)."""
    if vae is None:
        from dancenet.vae import build_vae
        from dancenet.vae import preset_config as vae_preset

        vae = build_vae(vae_preset("default")).eval()
    size = vae.config.latent_size
    torch.manual_seed(0)
    motion = MotionModel(preset_config(preset, size)).eval()
    kind = "minmax" if motion.config.scaling == "minmax" else "standard"
    scaler = LatentScaler(kind, torch.zeros(size), torch.ones(size))
    dancer = Dancer(vae, motion, scaler, {"fps": 30.0, "preset": preset}, Path("."), torch.device("cpu"))
    dancer.copies = None  # no footage: nothing to copy (and nothing read from the working folder)
    return dancer


def dancer_for(run: str | None, name: str, preset: str, vae=None) -> tuple[Dancer, str]:
    if run and (Path(run) / f"{name}.json").is_file():
        dancer = load(run, motion_name=name)
        return dancer, f"{run}/{name}"
    if run and vae is not None:  # the run's VAE with an untrained motion model of the preset
        dancer = untrained_dancer(preset, vae)
        return dancer, f"untrained {preset} motion on {run}'s VAE"
    return untrained_dancer(preset, vae), f"untrained {preset}"


def frames_per_second(dancer: Dancer, seconds: float, scale: int, retries: int | None = None
                      ) -> tuple[float, float]:
    """-> (frames/s, process CPU milliseconds per frame) of one end-to-end mp4 write, with
    ``retries`` whole-body redraws (None: the dancer's own)."""
    kept = dancer.retries
    dancer.retries = kept if retries is None else retries
    try:
        with tempfile.TemporaryDirectory() as directory:
            dancer.write(Path(directory) / "warmup.mp4", seconds=64 / dancer.fps, scale=scale)
            started, cpu_started = time.perf_counter(), time.process_time()
            dancer.write(Path(directory) / "dance.mp4", seconds=seconds, seed=1, scale=scale)
            count = dancer.frame_count(seconds)
            return (count / (time.perf_counter() - started),
                    1000 * (time.process_time() - cpu_started) / count)
    finally:
        dancer.retries = kept


def timed(work, count: int) -> tuple[object, str]:
    """-> (what ``work()`` returned, "frames/s (CPU ms per frame)" for ``count`` frames)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return result, f"{count / wall:.0f} f/s ({1000 * cpu / count:.2f} CPU ms/f)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/salsa" if os.path.isdir("runs/salsa") else None,
                        help="run with vae.* and motion models (default runs/salsa when present, "
                             "else untrained stand-ins)")
    parser.add_argument("--default-name", default="motion", help="default motion model name in RUN")
    parser.add_argument("--baseline-name", default="motion-2018", help="dancenet-2018 motion model name in RUN")
    parser.add_argument("--seconds", type=float, default=20.0, help="video length per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2 cores)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure; the best is shown")
    args = parser.parse_args()
    configure(args.threads)

    vae = None
    if args.run and (Path(args.run) / "vae.json").is_file():
        from dancenet.vae import load as load_vae

        vae = load_vae(args.run)
    default, default_source = dancer_for(args.run, args.default_name, "default", vae)
    baseline, baseline_source = dancer_for(args.run, args.baseline_name, "dancenet-2018", vae)
    print(f"generate benchmark, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {args.seconds:g} s videos at {default.fps:g} fps, "
          f"{default.width}x{default.height} frames")
    print(f"  default:       {default_source}")
    print(f"  dancenet-2018: {baseline_source}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'scale':>6} {'default f/s':>12} {'retries 0 f/s':>14} {'2018 f/s':>10} {'default/2018':>13} "
          f"{'default CPU ms/f':>17} {'retries 0 CPU ms/f':>19} {'2018 CPU ms/f':>14}")
    for scale in (4, 1):
        # Best of several rounds, the two presets alternating, so a burst of other load on a
        # shared machine hits both alike and the best round is the least disturbed one.
        rounds = [(frames_per_second(default, args.seconds, scale),
                   frames_per_second(default, args.seconds, scale, retries=0),
                   frames_per_second(baseline, args.seconds, scale)) for _ in range(args.rounds)]
        (fast, fast_cpu), (plain, plain_cpu), (slow, slow_cpu) = (
            (max(row[column][0] for row in rounds), min(row[column][1] for row in rounds)) for column in range(3))
        print(f"{scale:>6} {fast:>12.0f} {plain:>14.0f} {slow:>10.0f} {fast / slow:>12.2f}x "
              f"{fast_cpu:>17.2f} {plain_cpu:>19.2f} {slow_cpu:>14.2f}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    # Where the time goes, default preset, each part alone (write() runs them in two threads:
    # sampling + decoding with one torch thread fewer, beside the mp4 writer).
    count, chunk = 640, default.decode_chunk
    default.retries = 0  # the parts without whole-body redraws (which decode as they sample)
    latents, sampling = timed(lambda: torch.cat(list(default.latents(count, seed=0, chunk=chunk))),
                              count)
    with threads_beside_writer():
        frames, decoding = timed(lambda: np.concatenate([default.decode(latents[first:first + chunk])
                                                         for first in range(0, count, chunk)]), count)

    def write_frames() -> None:
        with tempfile.TemporaryDirectory() as directory:
            with VideoWriter(Path(directory) / "parts.mp4", default.fps, default.height,
                             default.width, scale=4) as writer:
                for first in range(0, count, CHUNK):
                    writer.write(frames[first:first + CHUNK])

    _, writing = timed(write_frames, count)
    print(f"default parts, --retries 0: sampling {sampling}, decoding {decoding} "
          f"({max(1, torch.get_num_threads() - 1)} torch threads), "
          f"mp4 writing at scale 4 {writing} (upscale + x264 {X264_OPTIONS})")


if __name__ == "__main__":
    main()
