"""From a stream of colour frames to a clip's silhouettes, the steps shared by videos and image
folders: segment every frame (working resolution, kept compressed), keep one dancer and mend
short losses (``--segment person``), refuse a clip without a dancer, then frame and scale."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import input_error
from ..progress import progress
from .dancer import MaskStore, areas_and_boxes, dancer_found, fill_gaps, select_clip
from .framing import crop_mask, dancer_framing
from .segment import clean_mask, fit_mask

OTHERS_WARNING = 0.1  # warn about a second person seen in this share of the frames


def segment_frames(frames: Iterable[np.ndarray], segmenter, total: int, desc: str,
                   quiet: bool) -> MaskStore:
    """Segment (h, w, 3) uint8 frames into a :class:`MaskStore`; a frame repeated as the same
    array (a slow source shown at a higher frame rate) is segmented once. The segmenter is
    closed afterwards (a MediaPipe graph holds threads and memory)."""
    store = previous = None
    try:
        for frame in progress(frames, total=total, desc=desc, unit="frame", quiet=quiet):
            if store is None:
                store = MaskStore(*frame.shape[:2])
            if frame is previous:
                store.repeat_last()
                continue
            previous = frame
            store.append(np.asarray(segmenter(frame), dtype=bool))
    finally:
        if hasattr(segmenter, "close"):
            segmenter.close()
    return store


def finish_clip(store: MaskStore, path: Path, method: str, framing: str, height: int, width: int,
                fps: float) -> tuple[Iterator[np.ndarray], dict]:
    """The clip's (height, width) bool silhouettes as a stream, and what was done (for the
    manifest and for ``prepare`` to print: ``framing``, ``warnings`` and counts).

    Raises a user error naming ``path`` when no dancer is found.
    """
    extra: dict = {"warnings": []}
    if method == "person":
        selection = select_clip(store)
        extra["filled_frames"] = fill_gaps(store, fps)
        extra["joined_frames"] = selection.split
        extra["dropped_frames"] = selection.dropped  # frames where another blob was dropped
        if selection.others >= OTHERS_WARNING * len(store):
            extra["warnings"].append(
                f"{path}: another person-sized figure in {selection.others} of {len(store)} frames; "
                f"kept the dancer nearest the centre at the start, tracked from frame to frame")
    areas, boxes = areas_and_boxes(store)
    frame_area = store.shape[0] * store.shape[1]
    if not dancer_found(areas, frame_area):
        found = int((areas > 0).sum())
        raise input_error(path, f"no dancer found (--segment {method} found a silhouette in "
                                f"{found} of {len(store)} frames); a video source should show one "
                                f"dancer filmed by a static camera")
    if framing == "full":
        extra["framing"] = "framing full: the whole frame"
        return (clean_mask(fit_mask(store[index], height, width)) for index in range(len(store))), extra
    if method != "person":  # the framing follows her largest blob, not specks or a moving door
        boxes = largest_blob_boxes(store, boxes)
    chosen = dancer_framing(boxes, store.shape[0], store.shape[1], height, width, fps)
    extra["framing"] = chosen.description
    return cropped(store, chosen.windows, height, width), extra


def largest_blob_boxes(store: MaskStore, boxes: np.ndarray) -> np.ndarray:
    """(frames, 4) boxes of the largest connected blob of each mask (NaN where empty)."""
    from scipy import ndimage

    out = boxes.copy()
    for index in range(len(store)):
        if np.isnan(boxes[index, 0]) or (index and store.items[index] is store.items[index - 1]):
            if index and store.items[index] is store.items[index - 1]:
                out[index] = out[index - 1]
            continue
        labels, count = ndimage.label(store[index])
        if count > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            rows, columns = np.nonzero(labels == int(np.argmax(sizes)))
            out[index] = (rows.min(), columns.min(), rows.max() + 1, columns.max() + 1)
    return out


def cropped(store: MaskStore, windows: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    for index in range(len(store)):
        yield clean_mask(crop_mask(store[index], windows[index], height, width))

