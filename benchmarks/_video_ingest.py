"""Video ingest throughput: decode + segmentation + fit to 208x120, frames per second, per method.

A helper of ``benchmarks/prepare.py`` (which prints its table); not run on its own.

Synthesises three H.264 videos (a white dancer on black, on a blue screen, on a static textured
background with noise and flicker), then times `dancenet.ingest.video.iter_clips` end to end
(both passes) for each segmentation method, beside the bare decode rate of the same file.
Target: >= 200 frames/s on 2 cores. Each figure is the best of ``--repeats`` runs, since other
work on a shared machine only ever slows a run down; "per CPU-s" divides frames by the process's
CPU time (all threads), a figure other processes cannot depress: the rate one busy core gives.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np

from dancenet.ingest import PrepareOptions
from dancenet.ingest.video import iter_clips


def dancer_masks(frames: int, height: int, width: int) -> np.ndarray:
    """(frames, height, width) bool: a body-sized ellipse with an arm, swaying across the frame."""
    rows, columns = np.mgrid[:height, :width]
    masks = np.zeros((frames, height, width), dtype=bool)
    for index in range(frames):
        centre_x = width / 2 + width / 4 * np.sin(index / 9)
        centre_y = height / 2 + height / 10 * np.cos(index / 7)
        masks[index] = (((columns - centre_x) / (width / 14)) ** 2
                        + ((rows - centre_y) / (height / 3.2)) ** 2) < 1
        masks[index] |= (((columns - centre_x - width / 12) / (width / 30)) ** 2
                         + ((rows - centre_y + height / 6) / (height / 14)) ** 2) < 1
    return masks


def scene(kind: str, masks: np.ndarray, generator: np.random.Generator):
    """RGB frames of a dancer on a backdrop of ``kind``: black, blue or textured."""
    _, height, width = masks.shape
    if kind == "textured":
        coarse = generator.uniform(60, 170, (height // 24 + 2, width // 24 + 2, 3))
        texture = np.repeat(np.repeat(coarse, 24, axis=0), 24, axis=1)[:height, :width]
    for index, mask in enumerate(masks):
        if kind == "black":
            frame = np.zeros((height, width, 3), np.float32)
            dancer = (255, 255, 255)
        elif kind == "blue":
            frame = np.broadcast_to(np.float32([20, 60, 200]), (height, width, 3)).copy()
            dancer = (240, 230, 220)
        else:
            flicker = 1 + 0.04 * np.sin(index * 1.7)
            frame = texture * flicker + generator.normal(0, 3, texture.shape)
            dancer = (220, 60, 50)
        frame[mask] = dancer
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_video(path: Path, frames, height: int, width: int, fps: int = 30) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_rate(path: Path) -> float:
    """Frames/s of PyAV decoding plus full-size RGB conversion alone: the floor of any ingest."""
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)
    return count / (time.perf_counter() - start)


def ingest_rate(path: Path, segment: str) -> tuple[float, float, str]:
    """(frames per wall-clock second, frames per CPU-second, method used)."""
    options = PrepareOptions(height=120, width=208, fps=30, segment=segment, quiet=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    count = 0
    for clip in iter_clips(path, options):
        for _ in clip.masks:
            count += 1
        method = clip.segmentation
    return (count / (time.perf_counter() - start), count / (time.process_time() - start_cpu),
            method)


def video_rows(size: str = "640x360", frames: int = 300, repeats: int = 3) -> None:
    """Print a row per backdrop and segmentation method: decode-only, ingest, ingest per CPU-s."""
    width, height = (int(part) for part in size.split("x"))
    generator = np.random.default_rng(0)
    masks = dancer_masks(frames, height, width)
    cases = [("black", "threshold"), ("blue", "chroma"), ("textured", "background"),
             ("textured", "auto")]
    with tempfile.TemporaryDirectory() as directory:
        videos = {}
        for kind in ("black", "blue", "textured"):
            videos[kind] = Path(directory) / f"{kind}.mp4"
            write_video(videos[kind], scene(kind, masks, generator), height, width)
        print(f"\n{frames} frames of {width}x{height} H.264 -> 208x120 silhouettes at 30 fps "
              "(target: ingest >= 200 frames/s)\n")
        print("| backdrop | --segment | decode only (frames/s) | ingest (frames/s) | ingest per CPU-s |")
        print("|---|---|---:|---:|---:|")
        for kind, segment in cases:
            baseline = max(decode_rate(videos[kind]) for _ in range(repeats))
            runs = [ingest_rate(videos[kind], segment) for _ in range(repeats)]
            rate, cpu_rate = max(run[0] for run in runs), max(run[1] for run in runs)
            method = runs[0][2]
            label = segment if segment == method else f"{segment}->{method}"
            print(f"| {kind} | {label} | {baseline:.0f} | {rate:.0f} | {cpu_rate:.0f} |")


