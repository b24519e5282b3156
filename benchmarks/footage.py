"""Person segmentation on footage of one dancer: split silhouettes, lost frames, frames/s.

For each video, four ways to the dataset's 208x120 masks, side by side:

- ``background``: background subtraction, whole frame (what ``--segment auto`` chose before);
- ``selfie raw``: MediaPipe's selfie segmentation model alone (the wheel's other person model);
- ``person raw``: MediaPipe Pose's mask alone, whole frame, no clean-up over the clip;
- ``person``: what ``prepare --segment person`` writes (one dancer kept, short losses filled,
  ``--framing dancer``).

Columns: the share of frames with a second blob (a split silhouette or a second object), the
share where she is missing (under 40% of the clip's median silhouette area; every clip measured
here has her in view throughout, checked on its contact sheet), the share of mask pixels that
stay on in 90% of the frames (a static object would), and segmentation frames/s at the working
size and at 640x480, the latter with and without the segmentation head (pose alone).
Without videos it measures synthetic footage (the dressed rendered dancer of the tests).

    python benchmarks/footage.py [VIDEO ...] [--sheets DIR] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

HEIGHT, WIDTH = 120, 208


def clip_frames(path: Path, seconds: float, framing: str):
    """The video's frames at 30 fps (first ``seconds``), at the working size for ``framing``,
    with the survey's samples."""
    from dancenet.ingest import PrepareOptions
    from dancenet.ingest.timing import resample_indices
    from dancenet.ingest.video import resampled_frames, survey

    options = PrepareOptions(height=HEIGHT, width=WIDTH, framing=framing, quiet=True)
    info = survey(path, options)
    indices = resample_indices(info.times, info.end_time, 30.0)[: int(seconds * 30)]
    height, width = info.samples[0].shape[:2]
    frames = list(resampled_frames(path, indices, height, width))
    return frames, info.samples


def run(method: str, framing: str, frames, samples, path: Path, fps: float = 30.0):
    """(target masks (T, 120, 208) bool, segmentation frames/s, extra) for one way of doing it."""
    from dancenet.ingest.clip import finish_clip, segment_frames
    from dancenet.ingest.segment import BackgroundSegmenter, clean_mask, fit_mask

    warnings = []
    if method == "background":
        segmenter = BackgroundSegmenter.fit(samples)
    elif method == "selfie raw":
        segmenter = SelfieSegmenter()
    elif method == "person raw":
        from dancenet.ingest.person import PersonSegmenter
        segmenter = PersonSegmenter()
    else:  # as prepare does it: other people in view painted out
        from dancenet.ingest.crowd import person_segmenter
        segmenter, warnings = person_segmenter(samples, path)
    started, cpu_started = time.perf_counter(), time.process_time()
    store = segment_frames(frames, segmenter, total=len(frames), desc="", quiet=True)
    # A source slower than 30 fps shows frames twice; each is segmented once.
    distinct = sum(1 for i in range(len(store)) if i == 0 or store.items[i] is not store.items[i - 1])
    rate = distinct / (time.perf_counter() - started)
    cpu_ms = 1000 * (time.process_time() - cpu_started) / distinct
    started, cpu_started = time.perf_counter(), time.process_time()
    if method.endswith("raw"):
        masks = np.stack([clean_mask(fit_mask(store[i], HEIGHT, WIDTH)) for i in range(len(store))])
        extra = {}
    else:
        iterator, extra = finish_clip(store, path, method, framing, HEIGHT, WIDTH, fps)
        masks = np.stack(list(iterator))
    extra["post_ms"] = 1000 * (time.process_time() - cpu_started) / len(store)
    extra["cpu_ms"] = cpu_ms
    extra["warnings"] = warnings + extra.get("warnings", [])
    if hasattr(segmenter, "close"):
        segmenter.close()
    return masks, rate, extra


class SelfieSegmenter:
    """MediaPipe's other bundled person model, selfie segmentation (landscape), for comparison:
    it segments every person in view, but is trained on people near the camera."""

    def __init__(self):
        from mediapipe.python.solutions import selfie_segmentation

        self.model = selfie_segmentation.SelfieSegmentation(model_selection=1)

    def __call__(self, frame):
        return self.model.process(np.ascontiguousarray(frame)).segmentation_mask > 0.5

    def close(self):
        self.model.close()


def measures(masks: np.ndarray) -> dict:
    """Shares of frames with a second blob, frames where she is missing, persistent pixels."""
    counts = np.array([ndimage.label(mask)[1] for mask in masks])
    areas = masks.sum(axis=(1, 2))
    median = np.median(areas[areas > 0]) if (areas > 0).any() else 0
    persistent = masks.mean(axis=0) >= 0.9
    on = masks.sum()
    return {"second_blob": float(np.mean(counts >= 2)), "missing": float(np.mean(areas < 0.4 * median)),
            "persistent": float((masks & persistent).sum() / on) if on else 0.0}


def rate_at_640(frames, segmentation: bool, count: int = 60) -> tuple[float, float]:
    """MediaPipe on frames scaled to 640x480 (pose with or without its mask): (frames/s of wall
    time, CPU milliseconds a frame over all threads; the latter barely depends on how busy the
    machine is, the former does)."""
    from mediapipe.python.solutions import pose

    scaled = [np.asarray(Image.fromarray(frame).resize((640, 480))) for frame in frames[:count]]
    with pose.Pose(model_complexity=1, enable_segmentation=segmentation,
                   smooth_segmentation=segmentation) as model:
        model.process(scaled[0])  # start-up (model loading) is not throughput
        started, cpu_started = time.perf_counter(), time.process_time()
        for frame in scaled[1:]:
            model.process(frame)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return (len(scaled) - 1) / wall, 1000 * cpu / (len(scaled) - 1)


def blurred_leaps(frames, share: float, period: int = 30, length: int = 3):
    """A copy of ``frames`` in which ``length`` frames every ``period`` are smeared sideways over
    ``share`` of the frame width, as a fast leap blurs in a dim room (a stress test: the clips
    measured here have no such frames)."""
    out = []
    for index, frame in enumerate(frames):
        if index % period >= period - length:
            size = max(3, int(share * frame.shape[1]))
            frame = ndimage.uniform_filter1d(frame, size=size, axis=1)
        out.append(frame)
    return out


def contact_sheet(path: Path, frames, rows: dict[str, np.ndarray], count: int = 8) -> None:
    """Source frames on the first row, each way's masks on the next rows."""
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    tile_height = HEIGHT
    lines = []
    source = [np.asarray(Image.fromarray(frames[i]).resize(
        (round(frames[i].shape[1] * tile_height / frames[i].shape[0]), tile_height))) for i in picks]
    source = [np.pad(tile, ((0, 0), (0, max(0, WIDTH - tile.shape[1])), (0, 0)))[:, :max(WIDTH, tile.shape[1])]
              for tile in source]
    lines.append(np.concatenate([np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=90) for tile in source], axis=1))
    for masks in rows.values():
        tiles = []
        for index, tile_source in zip(picks, source):
            tile = np.repeat((masks[index] * 255).astype(np.uint8)[..., None], 3, axis=2)
            tile = np.pad(tile, ((0, 0), (0, tile_source.shape[1] - WIDTH), (0, 0)))
            tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=90))
        lines.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(lines, axis=0)).save(path)


def synthetic_video(directory: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.synthetic_footage import dancer_in_room, write_video

    video, _, _ = dancer_in_room(90, 480, 640)
    return write_video(directory / "synthetic_room.mp4", video)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="videos of one dancer (default: synthetic)")
    parser.add_argument("--sheets", type=Path, default=None, help="folder for contact sheets (PNG)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each video measured")
    parser.add_argument("--blur", type=float, default=0.0, metavar="SHARE",
                        help="also measure with 3 frames a second smeared over SHARE of the width")
    args = parser.parse_args()
    from dancenet.ingest import person

    if not person.available():
        print(f"skipped: the person extra is not installed ({person.INSTALL_HINT})")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        videos = args.videos or [synthetic_video(Path(scratch))]
        print("| video | working size | frames | method | second blob | missing | persistent pixels "
              "| segmentation frames/s (CPU ms a frame) | clean-up + framing CPU ms a frame |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for path in videos:
            full_frames, samples_full = clip_frames(path, args.seconds, "full")
            dancer_frames, samples_dancer = clip_frames(path, args.seconds, "dancer")
            rows = {}
            for method, framing, frames, samples in (
                    ("background", "full", full_frames, samples_full),
                    ("selfie raw", "full", dancer_frames, samples_dancer),
                    ("person raw", "full", dancer_frames, samples_dancer),
                    ("person", "dancer", dancer_frames, samples_dancer)):
                masks, rate, extra = run(method, framing, frames, samples, path)
                rows[method] = masks
                found = measures(masks)
                size = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
                print(f"| {path.name} | {size} | {len(frames)} | {method} | {found['second_blob']:.1%} | "
                      f"{found['missing']:.1%} | {found['persistent']:.1%} | {rate:.1f} "
                      f"({extra['cpu_ms']:.0f}) | {extra['post_ms']:.1f} |", flush=True)
                if method == "person":
                    print(f"|  |  |  | {extra['framing']}; filled {extra['filled_frames']}, "
                          f"joined {extra['joined_frames']}; {' '.join(extra['warnings']) or 'no warning'} "
                          f"|  |  |  |  |  |")
            if args.blur:
                blurred = blurred_leaps(dancer_frames, args.blur)
                for method, framing in (("person raw", "full"), ("person", "dancer")):
                    masks, rate, extra = run(method, framing, blurred, samples_dancer, path)
                    found = measures(masks)
                    print(f"| {path.name} | blurred leaps | {len(blurred)} | {method} | "
                          f"{found['second_blob']:.1%} | {found['missing']:.1%} | {found['persistent']:.1%} | "
                          f"{rate:.1f} ({extra['cpu_ms']:.0f}) | {extra['post_ms']:.1f} |", flush=True)
                    if method == "person":
                        rows["person, blurred leaps"] = masks
            (mask_rate, mask_cpu), (pose_rate, pose_cpu) = (rate_at_640(dancer_frames, True),
                                                            rate_at_640(dancer_frames, False))
            print(f"| {path.name} | 640x480 | 59 | MediaPipe pose + mask / pose alone (CPU ms a frame: "
                  f"{mask_cpu:.0f} / {pose_cpu:.0f}; load {os.getloadavg()[0]:.1f}) |  |  |  | "
                  f"{mask_rate:.1f} / {pose_rate:.1f} |  |", flush=True)
            if args.sheets:
                args.sheets.mkdir(parents=True, exist_ok=True)
                contact_sheet(args.sheets / f"{path.stem}.png", dancer_frames, rows)


if __name__ == "__main__":
    main()
