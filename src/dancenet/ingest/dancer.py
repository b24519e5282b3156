"""One dancer through a clip: from per-frame masks to her silhouette in every frame she is in.

A clip's masks are first segmented in full (:class:`MaskStore` keeps them compressed), then:

- :func:`select_dancer` keeps one silhouette per frame, the blob that continues the previous
  frame's (at the start, the most central person-sized blob), with the fragments close to it
  joined on (a hand cut off at a thin wrist); other people and objects are dropped;
- :func:`fill_gaps` mends short runs of frames where the segmenter lost her although the frames
  either side have her (a fast, blurred leap): each gets the nearer neighbour's silhouette moved
  along the line between the two;
- :func:`dancer_found` tells a clip with a dancer from one without (a one-line error upstream).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

JOIN_FRACTION = 0.03  # fragments within this share of the frame height of her body are hers
BRIDGE_FRACTION = 0.01  # the stroke joining a fragment to her body: this share of the frame height
PERSON_FRACTION = 0.3  # a blob at least this share of her size is taken for another person
MISSING_FRACTION = 0.4  # a frame with less than this share of her usual area has lost her
REFERENCE_SECONDS = 0.5  # her usual area: the median over this many seconds either side
MAX_GAP_SECONDS = 0.5  # longer losses are not invented: she may have left the frame
MIN_DANCER_AREA = 0.002  # a silhouette under this share of the frame is no dancer
MIN_DANCER_FRAMES = 0.05  # a clip needs her in this share of its frames


class MaskStore:
    """(H, W) bool masks of one clip, zlib-compressed bit-packed (a few hundred bytes each).

    A 2-minute 640x480 clip at 30 fps holds ~3600 masks: ~1 GB as bool arrays, a few MB here.
    """

    def __init__(self, height: int, width: int):
        self.shape = (height, width)
        self.items: list[bytes] = []

    def append(self, mask: np.ndarray) -> None:
        self.items.append(zlib.compress(np.packbits(mask).tobytes(), 1))

    def repeat_last(self) -> None:
        """Store the previous mask again (a source frame shown twice): shares its bytes."""
        self.items.append(self.items[-1])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> np.ndarray:
        bits = np.frombuffer(zlib.decompress(self.items[index]), dtype=np.uint8)
        size = self.shape[0] * self.shape[1]
        return np.unpackbits(bits, count=size).view(bool).reshape(self.shape)

    def __setitem__(self, index: int, mask: np.ndarray) -> None:
        self.items[index] = zlib.compress(np.packbits(mask).tobytes(), 1)


@dataclass
class Selection:
    """What :func:`select_dancer` saw across a clip."""

    others: int = 0  # frames with another person-sized blob besides her
    dropped: int = 0  # frames where anything (another person, an object, a speck) was dropped
    split: int = 0  # frames where fragments had to be joined to her body


def centroid(mask: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    return np.array([rows.mean(), columns.mean()])


def group_centres(mask: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(len(groups), 2) row, column centroids of the labelled groups, in one pass."""
    return np.array(ndimage.center_of_mass(mask, labels, groups), dtype=np.float64).reshape(-1, 2)


def grown(mask: np.ndarray, reach: int) -> np.ndarray:
    """``mask`` grown by about ``reach`` pixels (a disc), for grouping blobs, not for drawing.

    One distance transform (a dilation costs ``reach`` passes), on the mask pooled into blocks
    of a third of ``reach`` when that is 2 or more: 4-9 times fewer pixels, the reach off by at
    most a block.
    """
    block = reach // 3
    if block < 2:
        return ndimage.distance_transform_edt(~mask) <= reach
    height, width = mask.shape
    rows, columns = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, columns * block), dtype=bool)
    padded[:height, :width] = mask
    coarse = padded.reshape(rows, block, columns, block).any(axis=(1, 3))
    coarse = ndimage.distance_transform_edt(~coarse) <= reach / block
    return np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:height, :width]


def select_dancer(mask: np.ndarray, previous: np.ndarray | None) -> tuple[np.ndarray, bool, bool, bool]:
    """Keep her blob of a (H, W) bool mask; returns (mask, another person seen, anything dropped,
    fragments joined).

    Blobs are grouped when they lie within :data:`JOIN_FRACTION` of the frame height of each
    other; the group kept overlaps most with the previous frame's dancer (``previous``, or None at
    the start or after she was lost), else lies nearest the frame centre.
    """
    if not mask.any():
        return mask, False, False, False
    height, width = mask.shape
    reach = max(1, round(JOIN_FRACTION * height))
    labels, count = ndimage.label(mask)
    if count == 1:
        return mask, False, False, False
    groups, group_count = ndimage.label(grown(mask, reach))
    group_of_pixel = np.where(mask, groups, 0)
    sizes = np.bincount(group_of_pixel.ravel(), minlength=group_count + 1)
    sizes[0] = 0
    candidates = np.flatnonzero(sizes)
    if previous is not None and previous.any():
        near = grown(previous, reach)
        overlap = np.bincount(group_of_pixel[near], minlength=group_count + 1)
        overlap[0] = 0
        if overlap.max() > 0:
            chosen = int(np.argmax(overlap))
        else:
            centres = group_centres(mask, group_of_pixel, candidates)
            chosen = candidates[int(np.argmin(np.hypot(*(centres - centroid(previous)).T)))]
    else:
        big = candidates[sizes[candidates] >= PERSON_FRACTION * sizes.max()]
        centre = np.array([(height - 1) / 2, (width - 1) / 2])
        centres = group_centres(mask, group_of_pixel, big)
        chosen = big[int(np.argmin(np.hypot(*((centres - centre) / [height, width]).T)))]
    kept = group_of_pixel == chosen
    other_person = bool(any(sizes[g] >= PERSON_FRACTION * sizes[chosen] for g in candidates if g != chosen))
    dropped = len(candidates) > 1
    pieces = len(np.unique(labels[kept]))
    if pieces > 1:  # bridged inside her bounding box: a fraction of the frame
        rows, columns = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
        box = np.s_[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
        kept = kept.copy()
        kept[box] = bridge(kept[box], np.where(kept[box], labels[box], 0),
                           max(3, round(BRIDGE_FRACTION * height)))
    return kept, other_person, dropped, pieces > 1


def bridge(kept: np.ndarray, labels: np.ndarray, thickness: int) -> np.ndarray:
    """Join every fragment of ``kept`` (pieces labelled in ``labels``) to the largest piece with a
    straight stroke ``thickness`` pixels wide across the shortest gap, so her silhouette is one
    blob without closing the gaps between her limbs and body (a morphological closing would)."""
    pieces = np.unique(labels[kept])
    sizes = np.bincount(labels[kept], minlength=int(pieces.max()) + 1)
    body_label = int(np.argmax(sizes))
    body = labels == body_label
    distance, (nearest_rows, nearest_columns) = ndimage.distance_transform_edt(
        ~body, return_distances=True, return_indices=True)
    image = Image.fromarray(kept.astype(np.uint8) * 255)
    draw = ImageDraw.Draw(image)
    fragments = [int(piece) for piece in pieces if piece != body_label]
    for row, column in ndimage.minimum_position(distance, labels, fragments):  # one pass for all
        draw.line([(int(column), int(row)), (int(nearest_columns[row, column]), int(nearest_rows[row, column]))],
                  fill=255, width=thickness)
    return np.asarray(image) > 0


def select_clip(store: MaskStore) -> Selection:
    """Run :func:`select_dancer` over a clip in place, tracking her from frame to frame."""
    selection = Selection()
    previous = None
    for index in range(len(store)):
        if index and store.items[index] is store.items[index - 1]:
            continue  # a repeated source frame: already done
        mask = store[index]
        kept, other, dropped, split = select_dancer(mask, previous)
        if dropped or split:
            store[index] = kept
        selection.others += other
        selection.dropped += dropped
        selection.split += split
        previous = kept if kept.any() else None
    return selection


def areas_and_boxes(store: MaskStore) -> tuple[np.ndarray, np.ndarray]:
    """(frames,) int silhouette areas and (frames, 4) float top, left, bottom, right boxes (NaN
    where empty) of the masks in ``store``."""
    areas = np.zeros(len(store), dtype=np.int64)
    boxes = np.full((len(store), 4), np.nan)
    for index in range(len(store)):
        if index and store.items[index] is store.items[index - 1]:
            areas[index], boxes[index] = areas[index - 1], boxes[index - 1]
            continue
        mask = store[index]
        areas[index] = int(mask.sum())
        if areas[index]:
            rows = np.flatnonzero(mask.any(axis=1))
            columns = np.flatnonzero(mask.any(axis=0))
            boxes[index] = (rows[0], columns[0], rows[-1] + 1, columns[-1] + 1)
    return areas, boxes


def missing_frames(areas: np.ndarray, fps: float) -> np.ndarray:
    """(frames,) bool: frames whose silhouette is under :data:`MISSING_FRACTION` of her usual area
    (the median non-empty area within :data:`REFERENCE_SECONDS` either side)."""
    half = max(1, round(REFERENCE_SECONDS * fps))
    present = areas.astype(np.float64)
    present[present == 0] = np.nan
    padded = np.pad(present, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            usual = np.nanmedian(windows, axis=1)
    usual = np.nan_to_num(usual, nan=0.0)
    return areas < MISSING_FRACTION * usual


def gaps(missing: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """Runs [start, stop) of missing frames no longer than :data:`MAX_GAP_SECONDS` with her in the
    frames on both sides."""
    longest = max(1, round(MAX_GAP_SECONDS * fps))
    runs, start = [], None
    for index, lost in enumerate(missing):
        if lost and start is None:
            start = index
        elif not lost and start is not None:
            if start > 0 and index - start <= longest:
                runs.append((start, index))
            start = None
    return runs


def shift(mask: np.ndarray, rows: float, columns: float) -> np.ndarray:
    """``mask`` moved by whole pixels (rounded), what moves out of the frame dropped."""
    rows, columns = int(round(rows)), int(round(columns))
    out = np.zeros_like(mask)
    height, width = mask.shape
    source = mask[max(0, -rows):height - max(0, rows), max(0, -columns):width - max(0, columns)]
    out[max(0, rows):max(0, rows) + source.shape[0], max(0, columns):max(0, columns) + source.shape[1]] = source
    return out


def fill_gaps(store: MaskStore, fps: float) -> int:
    """Mend short losses in place (see the module docstring); returns how many frames were filled."""
    areas, boxes = areas_and_boxes(store)
    filled = 0
    for start, stop in gaps(missing_frames(areas, fps), fps):
        before, after = store[start - 1], store[stop]
        centre_before = (boxes[start - 1, :2] + boxes[start - 1, 2:]) / 2
        centre_after = (boxes[stop, :2] + boxes[stop, 2:]) / 2
        for index in range(start, stop):
            weight = (index - start + 1) / (stop - start + 1)
            centre = (1 - weight) * centre_before + weight * centre_after
            if weight <= 0.5:
                moved = shift(before, *(centre - centre_before))
            else:
                moved = shift(after, *(centre - centre_after))
            store[index] = moved
            filled += 1
    return filled


def dancer_found(areas: np.ndarray, frame_area: int) -> bool:
    """Whether she is in at least :data:`MIN_DANCER_FRAMES` of the frames (and in one at least)."""
    present = areas >= MIN_DANCER_AREA * frame_area
    return bool(present.sum() >= max(1, MIN_DANCER_FRAMES * len(areas)))
