"""Dance-quality metrics on silhouette videos: pure numpy functions, no model and no files.

Every function takes ``frames: (time, height, width)`` uint8 or bool arrays (nonzero = dancer).
docs/metrics.md defines each metric and says why it is built the way it is; the thresholds below
were calibrated on the CMU salsa reference (real dance against held-out real dance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# A moving window whose mean soft IoU with an earlier window reaches this is a repeat. Calibrated on
# the 13 CMU salsa takes: the median window's best match is ~0.72, the 95th percentile ~0.86.
LOOP_THRESHOLD = 0.9
# Windows moving less than this share of the reference's median motion energy are stillness, which
# the freeze ratio measures; without this, a dancer standing still for 2 s "loops" (real salsa: 3%
# of windows, 11% in one take, all of them near-still). 0.25 keeps every repeated 2 s salsa segment
# tried counted as a loop; 0.5 missed slow ones.
LOOP_MIN_MOTION_SHARE = 0.25
# Frames with less foreground than this share of the frame count as empty.
EMPTY_SHARE = 0.001
# A frame whose shape, centred, matches no training frame this well is unlike any pose of the footage
# (pose_match). Each CMU salsa take against the other 12: 10 of 13 takes never score below 0.68, and
# the lowest real frames are a dip and a lean-back found in one take alone (0.43-0.6); the bundle's
# melted and doubled bodies score 0.42-0.61 (docs/metrics.md, "Unlike any pose").
UNLIKE_IOU = 0.6


def as_binary(frames: np.ndarray) -> np.ndarray:
    """(time, height, width) any dtype -> bool, nonzero = dancer; a clear error for other shapes."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"expected frames of shape (time, height, width), got {frames.shape}")
    return frames if frames.dtype == bool else frames != 0


def downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """Block-average silhouettes: (time, H, W) -> (time, ceil(H/factor), ceil(W/factor)) float32.

    Each output pixel is the share of dancer pixels in its factor x factor block (edges padded
    with background), so thin limbs survive as partial values instead of vanishing.
    """
    frames = as_binary(frames)
    time, height, width = frames.shape
    rows, columns = -(-height // factor), -(-width // factor)
    padded = np.zeros((time, rows * factor, columns * factor), dtype=np.uint8)
    padded[:, :height, :width] = frames
    # Strided adds of uint8 (a block holds at most factor^2 <= 255 pixels) are ~8x faster than a
    # reshape-and-mean over short trailing axes.
    if factor * factor > 255:
        raise ValueError("downsample factor must be at most 15")
    summed_columns = padded[:, :, 0::factor].copy()
    for offset in range(1, factor):
        summed_columns += padded[:, :, offset::factor]
    summed = summed_columns[:, 0::factor].copy()
    for offset in range(1, factor):
        summed += summed_columns[:, offset::factor]
    return summed.astype(np.float32) * np.float32(1.0 / (factor * factor))


def soft_iou_matrix(first: np.ndarray, second: np.ndarray,
                    second_norms: np.ndarray | None = None) -> np.ndarray:
    """Pairwise soft IoU (Tanimoto coefficient) of flattened frames.

    first: (n, features), second: (m, features), values in [0, 1]. Returns (n, m) float32
    ``a.b / (|a|^2 + |b|^2 - a.b)``, which is exactly IoU for binary vectors. Two empty frames are
    identical, so their similarity is 1. ``second_norms``: the (m,) squared norms of ``second``,
    when the caller keeps them (a frame compared with the same many frames again and again).
    """
    first = np.asarray(first, dtype=np.float32)
    second = np.asarray(second, dtype=np.float32)
    if second_norms is None:
        second_norms = np.einsum("ij,ij->i", second, second)
    dots = first @ second.T
    union = np.einsum("ij,ij->i", first, first)[:, None] + second_norms[None, :] - dots
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(union > 0, dots / np.maximum(union, 1e-12), 1.0)
    return similarity.astype(np.float32, copy=False)


def frame_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of time-aligned frames: (time, H, W) x (time, H, W) -> (time,) float; empty & empty = 1."""
    first, second = as_binary(first), as_binary(second)
    if first.shape != second.shape:
        raise ValueError(f"frame shapes differ: {first.shape} vs {second.shape}")
    intersection = (first & second).sum(axis=(1, 2), dtype=np.int64)
    union = (first | second).sum(axis=(1, 2), dtype=np.int64)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


# --- motion energy and freezes ------------------------------------------------------------------

def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Share of all pixels that change from the previous frame: (time, H, W) -> (time - 1,) float."""
    frames = as_binary(frames)
    if len(frames) < 2:
        return np.zeros(0)
    changed = np.empty(len(frames) - 1)
    for start in range(0, len(frames) - 1, 512):  # bounded memory for long videos
        stop = min(start + 512, len(frames) - 1)
        changed[start:stop] = (frames[start + 1:stop + 1] != frames[start:stop]).mean(axis=(1, 2))
    return changed


def freeze_threshold(reference_energy: np.ndarray, pixels: int, percentile: float = 5.0) -> float:
    """Motion energy below which a frame counts as still: the reference's ``percentile``.

    Floored at half a pixel's worth of change, so identical consecutive frames are always still
    even when the reference itself holds identical frames (a 5th percentile of 0).
    """
    if len(reference_energy) == 0:
        raise ValueError("reference motion energy is empty")
    return max(float(np.percentile(reference_energy, percentile)), 0.5 / pixels)


def run_mask(condition: np.ndarray, min_length: int) -> np.ndarray:
    """True where ``condition`` holds inside a run of at least ``min_length`` consecutive Trues."""
    condition = np.asarray(condition, dtype=bool)
    result = np.zeros_like(condition)
    labels, count = ndimage.label(condition)
    if count == 0:
        return result
    lengths = np.bincount(labels.ravel())
    keep = lengths >= min_length
    keep[0] = False
    return keep[labels]


def freeze_mask(energy: np.ndarray, threshold: float, fps: float, min_seconds: float = 0.5) -> np.ndarray:
    """Per frame (one per energy value): still and inside a still run of at least ``min_seconds``."""
    return run_mask(np.asarray(energy) < threshold, max(1, int(round(min_seconds * fps))))


def freeze_ratio(energy: np.ndarray, threshold: float, fps: float, min_seconds: float = 0.5) -> float:
    """Share of frames inside still runs of at least ``min_seconds`` (see :func:`freeze_mask`).

    energy: (time - 1,) from :func:`motion_energy`; threshold from :func:`freeze_threshold`.
    """
    if len(energy) == 0:
        return 0.0
    return float(freeze_mask(energy, threshold, fps, min_seconds).mean())


# --- loops --------------------------------------------------------------------------------------

@dataclass
class LoopResult:
    """What :func:`loop_analysis` found.

    ratio: share of windows that move and whose best match with an earlier window reaches the
        threshold.
    moving: (windows,) bool, windows whose mean motion energy reaches ``min_motion``.
    best_similarity: (windows,) best mean soft IoU with any window starting more than one window
        length earlier (0 where there is none).
    best_lag: (windows,) frames back to that best match (0 where none).
    recurrence: (n, n) soft IoU between frames sampled every ``recurrence_step`` frames.
    """

    ratio: float
    threshold: float
    window: int
    moving: np.ndarray
    best_similarity: np.ndarray
    best_lag: np.ndarray
    recurrence: np.ndarray
    recurrence_step: int

    @property
    def looping(self) -> np.ndarray:
        """(windows,) bool: the windows that count as loops (they move and reach the threshold)."""
        return (self.best_similarity >= self.threshold) & self.moving


def loop_analysis(frames: np.ndarray, fps: float, window_seconds: float = 1.0,
                  threshold: float = LOOP_THRESHOLD, min_motion: float = 0.0, factor: int = 4,
                  block: int = 256, recurrence_size: int = 400) -> LoopResult:
    """Find windows that nearly repeat an earlier window: the signature of a motion model in a loop.

    A window is ``window_seconds`` of frames starting at any frame. Its similarity with an earlier
    window is the mean soft IoU of their time-aligned frames at 1/``factor`` resolution; a window
    repeats when its best similarity with any window starting more than one window earlier (lag
    above ``window_seconds``, so windows never overlap) reaches ``threshold`` and the window
    moves: its mean motion energy (:func:`motion_energy` of its frames) is at least ``min_motion``
    (in the suite, ``LOOP_MIN_MOTION_SHARE`` x the reference's median), since a loop is repeated
    movement and stillness is what the freeze ratio counts.
    Cost: one (block x time) matrix product per block of windows; memory O(block x time).
    """
    descriptors = downsample(frames, factor).reshape(len(frames), -1)
    time = len(descriptors)
    window = max(1, int(round(window_seconds * fps)))
    windows = max(0, time - window + 1)
    best = np.zeros(windows, dtype=np.float32)
    best_lag = np.zeros(windows, dtype=np.int64)
    for start in range(0, windows, block):
        stop = min(start + block, windows)
        candidates = stop - window - 1  # earlier windows j <= i - window - 1 for the last i
        if candidates <= 0:
            continue
        similarity = soft_iou_matrix(descriptors[start:stop + window - 1], descriptors[:candidates + window - 1])
        rows = stop - start
        mean = np.zeros((rows, candidates), dtype=np.float32)
        for offset in range(window):  # average along diagonals: frame k of one window vs frame k of the other
            mean += similarity[offset:offset + rows, offset:offset + candidates]
        mean /= window
        index = np.arange(start, stop)[:, None]
        mean[np.arange(candidates)[None, :] > index - window - 1] = -1.0
        column = mean.argmax(axis=1)
        value = mean[np.arange(rows), column]
        valid = value >= 0
        best[start:stop] = np.where(valid, value, 0.0)
        best_lag[start:stop] = np.where(valid, np.arange(start, stop) - column, 0)
    energy = np.concatenate([[0.0], np.cumsum(motion_energy(frames))])
    moving = np.zeros(windows, dtype=bool)
    if windows:
        moving = (energy[window - 1:window - 1 + windows] - energy[:windows]) / max(window - 1, 1) >= min_motion
    step = max(1, -(-time // recurrence_size))
    sampled = descriptors[::step]
    result = LoopResult(ratio=0.0, threshold=threshold, window=window, moving=moving, best_similarity=best,
                        best_lag=best_lag, recurrence=soft_iou_matrix(sampled, sampled), recurrence_step=step)
    result.ratio = float(result.looping.mean()) if windows else 0.0
    return result


def loop_ratio(frames: np.ndarray, fps: float, window_seconds: float = 1.0,
               threshold: float = LOOP_THRESHOLD, min_motion: float = 0.0) -> float:
    """Share of ``window_seconds`` windows that nearly repeat an earlier one (:func:`loop_analysis`)."""
    return loop_analysis(frames, fps, window_seconds, threshold, min_motion).ratio


# --- artifacts ----------------------------------------------------------------------------------

@dataclass
class ArtifactResult:
    """What :func:`artifact_analysis` found.

    ratio: artifact pixels / foreground pixels over the whole video.
    per_frame: (time,) artifact share of each frame's foreground (0 for empty frames).
    empty: (time,) bool, frames with less foreground than ``EMPTY_SHARE`` of the frame.
    foreground: (time,) int64 foreground pixels of each frame (weights ``per_frame`` into ratios).
    stray_ratio: share of frames with any foreground outside the main body.
    """

    ratio: float
    per_frame: np.ndarray
    empty_ratio: float
    empty: np.ndarray
    gap: int
    foreground: np.ndarray
    stray_ratio: float


def default_gap(height: int) -> int:
    """Pixels of background a body part may be separated by and still belong to the body."""
    return max(1, int(round(height / 60)))


_IN_FRAME = np.zeros((3, 3, 3), dtype=bool)  # 8-connected within a frame, never across frames
_IN_FRAME[1] = True


def _components(frames: np.ndarray, gap: int):
    """Label every frame's 8-connected components and decide which belong to the body.

    Returns (labels (time, H, W) int32, sizes (count + 1,), frame_of (count + 1,), body
    (count + 1,) bool); label 0 is background.
    """
    # One labelling pass over the whole stack, connecting pixels within a frame only.
    labels, count = ndimage.label(frames, structure=_IN_FRAME)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    frame_of = np.zeros(count + 1, dtype=np.int64)
    body = np.zeros(count + 1, dtype=bool)
    if count == 0:
        return labels, sizes, frame_of, body
    # Each label lives in one frame; the largest of each frame is main. (A scatter, not
    # ndimage.find_objects: that builds a Python slice per label, 20x slower on noisy frames.)
    frame_of[labels.reshape(len(labels), -1)] = np.arange(len(labels))[:, None]
    frame_of[0] = 0
    order = np.lexsort((-sizes[1:], frame_of[1:])) + 1  # by frame, largest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = frame_of[order[1:]] != frame_of[order[:-1]]
    largest = np.zeros(count + 1, dtype=bool)
    largest[order[first]] = True
    main = largest[labels]
    near = ndimage.maximum_filter(main, size=(1, 2 * gap + 1, 2 * gap + 1)) if gap > 0 else main
    body[labels[near & frames]] = True
    body[0] = False
    return labels, sizes, frame_of, body


def body_mask(frames: np.ndarray, gap: int | None = None) -> np.ndarray:
    """The dancer's main body in each frame: (time, H, W) -> (time, H, W) bool.

    The body is the largest 8-connected component plus every component that comes within ``gap``
    pixels of it (a hand cut off by a thin wrist is body; a blob across the frame is not).
    """
    frames = as_binary(frames)
    labels, _, _, body = _components(frames, default_gap(frames.shape[1]) if gap is None else gap)
    return body[labels]


def _off_body(frames: np.ndarray, gap: int):
    """:func:`_components`, and per frame its foreground pixels and those off the body, counted
    from component sizes (no per-pixel mask) -> (labels, frame_of, stray (count + 1,) bool,
    foreground (time,), off_body (time,))."""
    labels, sizes, frame_of, body = _components(frames, gap)
    stray = ~body
    stray[0] = False
    foreground = np.bincount(frame_of[1:], weights=sizes[1:], minlength=len(frames))
    off_body = np.bincount(frame_of[stray], weights=sizes[stray], minlength=len(frames))
    return labels, frame_of, stray, foreground, off_body


def remove_specks(frames: np.ndarray, max_share: float, gap: int | None = None) -> np.ndarray:
    """Frames (time, H, W) -> a new bool array of them without their specks: the pieces off the
    main body (:func:`body_mask`) of each frame where together they hold at most ``max_share`` of
    its foreground (generation passes ``generate.BROKEN_SHARE``, the share its redraws let
    through). A frame with more off its body has come apart and is returned as it is, for the
    artifact ratio to count. The input is not modified."""
    given, frames = frames, as_binary(frames)
    if frames is given:
        frames = frames.copy()
    # Most frames are one piece: label them all (cheap), analyse only those in several.
    labels, count = ndimage.label(frames, structure=_IN_FRAME)
    if count == 0:
        return frames
    frame_of = np.zeros(count + 1, dtype=np.int64)
    frame_of[labels.reshape(len(labels), -1)] = np.arange(len(labels))[:, None]
    several = np.flatnonzero(np.bincount(frame_of[1:], minlength=len(frames)) > 1)
    if len(several) == 0:
        return frames
    part = frames[several]
    gap = default_gap(frames.shape[1]) if gap is None else gap
    labels, frame_of, stray, foreground, off_body = _off_body(part, gap)
    drop = stray & (off_body <= max_share * foreground)[frame_of]
    frames[several] = part & ~drop[labels]
    return frames


def artifact_analysis(frames: np.ndarray, gap: int | None = None, chunk: int = 256,
                      empty_share: float = EMPTY_SHARE) -> ArtifactResult:
    """Share of foreground outside the main body (:func:`body_mask`), and empty frames."""
    frames = as_binary(frames)
    time, height, width = frames.shape
    gap = default_gap(height) if gap is None else gap
    foreground = np.zeros(time, dtype=np.int64)
    artifacts = np.zeros(time, dtype=np.int64)
    for start in range(0, time, chunk):
        part = frames[start:start + chunk]
        _, _, _, foreground[start:start + len(part)], artifacts[start:start + len(part)] = _off_body(part, gap)
    total = foreground.sum()
    empty = foreground < empty_share * height * width
    return ArtifactResult(ratio=float(artifacts.sum() / total) if total else 0.0,
                          per_frame=np.where(foreground > 0, artifacts / np.maximum(foreground, 1), 0.0),
                          empty_ratio=float(empty.mean()) if time else 0.0, empty=empty, gap=gap,
                          foreground=foreground, stray_ratio=float((artifacts > 0).mean()) if time else 0.0)


# --- diversity and memorisation -----------------------------------------------------------------

def diversity(videos: list[np.ndarray]) -> float:
    """Mean over pairs of videos of the mean ``1 - IoU`` of their time-aligned frames.

    Videos are cut to the shortest. 0 means every seed made the same video; real dance takes of
    one dancer score around 0.5-0.7 (same body, different poses at the same moment).
    """
    if len(videos) < 2:
        raise ValueError("diversity needs at least two videos")
    length = min(len(video) for video in videos)
    values = [1.0 - frame_iou(videos[a][:length], videos[b][:length]).mean()
              for a in range(len(videos)) for b in range(a + 1, len(videos))]
    return float(np.mean(values))


def _spread_out(library: np.ndarray, max_library: int | None) -> np.ndarray:
    """At most ``max_library`` frames of ``library``, spread evenly (consecutive frames are near
    duplicates); all of them when they fit or ``max_library`` is None."""
    if max_library is not None and len(library) > max_library:
        library = library[np.linspace(0, len(library) - 1, max_library).round().astype(np.int64)]
    return library


def shows_dancer(frames: np.ndarray) -> np.ndarray:
    """(time, H, W) -> (time,) bool: frames with at least ``EMPTY_SHARE`` of their pixels dancer
    (the others are empty, as the artifact analysis counts them)."""
    frames = as_binary(frames)
    return frames.sum(axis=(1, 2)) >= EMPTY_SHARE * frames.shape[1] * frames.shape[2]


def best_match_iou(frames: np.ndarray, library: np.ndarray, factor: int = 4, chunk: int = 1024,
                   max_library: int | None = 4000) -> np.ndarray:
    """For each frame, the best soft IoU with any library frame at 1/``factor`` resolution.

    frames: (time, H, W); library: (n, H, W), e.g. the training frames. Consecutive library
    frames are near duplicates, so a library over ``max_library`` frames is subsampled evenly.
    Returns (time,) float32 in [0, 1]; 1 means a frame copies a library frame.
    """
    library = _spread_out(library, max_library)
    library = downsample(library, factor).reshape(len(library), -1)
    best = np.zeros(len(frames), dtype=np.float32)
    for start in range(0, len(frames), chunk):
        part = downsample(frames[start:start + chunk], factor).reshape(-1, library.shape[1])
        best[start:start + len(part)] = soft_iou_matrix(part, library).max(axis=1)
    return best


def centre_blocks(blocks: np.ndarray) -> np.ndarray:
    """(n, rows, columns) block images (as :func:`downsample` makes them) -> the same, each moved
    by whole blocks so that its centroid lies at the image's centre (what moves out is dropped;
    an empty image stays empty). Where the dancer stands no longer counts, only her shape."""
    blocks = np.asarray(blocks, dtype=np.float32)
    count, rows, columns = blocks.shape
    mass = blocks.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_y = blocks.sum(axis=2) @ np.arange(rows, dtype=np.float64) / mass
        centre_x = blocks.sum(axis=1) @ np.arange(columns, dtype=np.float64) / mass
    moved = np.zeros_like(blocks)
    for index in np.flatnonzero(mass > 0):
        # halves round up, never to even: a shape and the same shape a block away move alike
        down = int(np.floor((rows - 1) / 2 - centre_y[index] + 0.5))
        right = int(np.floor((columns - 1) / 2 - centre_x[index] + 0.5))
        source = blocks[index, max(0, -down):rows - max(0, down), max(0, -right):columns - max(0, right)]
        moved[index, max(0, down):max(0, down) + source.shape[0],
              max(0, right):max(0, right) + source.shape[1]] = source
    return moved


def pose_match(frames: np.ndarray, library: np.ndarray, factor: int = 4, chunk: int = 1024,
               max_library: int | None = 4000) -> np.ndarray:
    """For each frame, the best soft IoU of its shape with any library frame's: both at
    1/``factor`` resolution and centred (:func:`centre_blocks`), so a pose danced elsewhere in
    the picture still matches. Returns (time,) float32 in [0, 1]; below ``UNLIKE_IOU`` a frame is
    unlike any pose of the library (a body melted or doubled, or a pose the footage never had).
    An empty frame (under ``EMPTY_SHARE``) is no pose: in the library it is left out, and a frame
    scores 1 (the empty-frame ratio counts it); so does every frame against a library of none."""
    library = _spread_out(library, max_library)
    library = library[shows_dancer(library)]
    best = np.ones(len(frames), dtype=np.float32)
    if not len(library):
        return best
    library = centre_blocks(downsample(library, factor)).reshape(len(library), -1)
    for start in range(0, len(frames), chunk):
        part = frames[start:start + chunk]
        shown = shows_dancer(part)
        blocks = centre_blocks(downsample(part[shown], factor)).reshape(-1, library.shape[1])
        best[start + np.flatnonzero(shown)] = soft_iou_matrix(blocks, library).max(axis=1)
    return best


def energy_summary(energy: np.ndarray) -> dict:
    """Mean, median, 5th and 95th percentile of a motion-energy series (floats, JSON-ready)."""
    if len(energy) == 0:
        return {"mean": 0.0, "median": 0.0, "p5": 0.0, "p95": 0.0}
    return {"mean": float(np.mean(energy)), "median": float(np.median(energy)),
            "p5": float(np.percentile(energy, 5)), "p95": float(np.percentile(energy, 95))}


# --- worst windows ------------------------------------------------------------------------------

def window_starts(frames: int, window: int, stride: int) -> np.ndarray:
    """First frame of every ``window``-frame window, one every ``stride`` frames, inside ``frames``.

    A video no longer than one window is one window (start 0), however short it is.
    """
    return np.arange(0, max(frames - window, 0) + 1, max(int(stride), 1))


def window_ratios(numerator: np.ndarray, denominator: np.ndarray | None, frames: int, starts: np.ndarray,
                  window: int) -> np.ndarray:
    """``sum(numerator) / sum(denominator)`` over each window of ``window`` frames at ``starts``.

    numerator: a per-frame series of a ``frames``-long video; a series with ``k`` fewer values
        (motion energy: one per pair of frames, k = 1; loop flags: one per loop-window start,
        k = loop window - 1) starts at the same frame and gives each window ``window - k`` values,
        so every value counted lies inside the window.
    denominator: weights of the same length (artifact ratio: foreground pixels), None = a plain mean.
    Returns (len(starts),) float; 0 where a window holds no weight.
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.ones_like(numerator) if denominator is None else np.asarray(denominator, dtype=np.float64)
    length = max(window - (frames - len(numerator)), 1)
    values = np.zeros(len(starts))
    for index, start in enumerate(starts):
        weight = denominator[start:start + length].sum()
        if weight > 0:
            values[index] = numerator[start:start + length].sum() / weight
    return values
