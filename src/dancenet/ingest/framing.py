"""Framing: which part of each source frame becomes the dataset frame.

- ``full``: the whole frame, fitted into the target keeping its aspect ratio (DanceNet 2018).
- ``dancer``: one zoom per clip, so that the dancer's standing height fills :data:`STANDING_FILL`
  of the frame height, and a crop that follows her travel across the floor slowly (a heavily
  smoothed track, never a per-frame recentring), or stays put when her whole travel fits.

Everything here works on per-frame bounding boxes of the dancer's silhouette, in working pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

STANDING_FILL = 0.8  # her standing height fills this share of the frame height
STANDING_PERCENTILE = 75  # of the silhouette heights: standing, not crouched, not arms up
PAN_SECONDS = 1.0  # standard deviation of the Gaussian that smooths the horizontal track


@dataclass(frozen=True)
class Framing:
    """Crop windows of one clip and how they were chosen.

    windows: (frames, 4) float64 top, left, height, width of each frame's crop, working pixels;
        a window may reach past the frame edge (padded with background).
    """

    windows: np.ndarray
    description: str


def full_window(source_height: int, source_width: int, height: int, width: int) -> np.ndarray:
    """The window that shows the whole frame at the target aspect ratio: (top, left, h, w)."""
    window_height = max(source_height, source_width * height / width)
    window_width = window_height * width / height
    return np.array([(source_height - window_height) / 2, (source_width - window_width) / 2,
                     window_height, window_width])


def interpolate_missing(values: np.ndarray) -> np.ndarray:
    """Fill NaNs of a (frames,) track linearly between known values, held flat at the ends."""
    known = np.flatnonzero(~np.isnan(values))
    return np.interp(np.arange(values.size), known, values[known])


def dancer_framing(boxes: np.ndarray, source_height: int, source_width: int, height: int,
                   width: int, fps: float) -> Framing:
    """Crop windows that zoom on the dancer once per clip and follow her travel slowly.

    boxes: (frames, 4) top, left, bottom, right of her silhouette per frame, NaN where she is
        not found; at least one frame must have her.
    """
    found = ~np.isnan(boxes[:, 0])
    heights = boxes[found, 2] - boxes[found, 0]
    standing = float(np.percentile(heights, STANDING_PERCENTILE))
    full = full_window(source_height, source_width, height, width)
    window_height = min(standing / STANDING_FILL, full[2])  # never smaller than the whole frame
    window_width = window_height * width / height
    # Feet on the floor: the window is placed so that, standing, she sits in its middle.
    bottom = float(np.median(boxes[found, 2]))
    top = bottom + (window_height - standing) / 2 - window_height
    centres = interpolate_missing((boxes[:, 1] + boxes[:, 3]) / 2)
    left_edge, right_edge = np.percentile(boxes[found, 1], 2), np.percentile(boxes[found, 3], 98)
    if right_edge - left_edge <= window_width or window_width >= source_width:
        lefts = np.full(len(boxes), (left_edge + right_edge) / 2 - window_width / 2)
        how = "fixed crop over her whole travel"
    else:
        smooth = ndimage.gaussian_filter1d(centres, sigma=max(1.0, PAN_SECONDS * fps), mode="nearest")
        lefts = np.clip(smooth - window_width / 2, 0, source_width - window_width)
        how = f"crop following her travel, smoothed over {PAN_SECONDS:g} s"
    if window_height >= full[2]:
        lefts = np.full(len(boxes), full[1])
        top = full[0]
        how = "whole frame: she already fills it"
    windows = np.stack([np.full(len(boxes), top), lefts, np.full(len(boxes), window_height),
                        np.full(len(boxes), window_width)], axis=1)
    zoom = full[2] / window_height
    description = (f"framing dancer: standing height {standing:.0f} px of {source_height}, "
                   f"zoom {zoom:.2f}x, {how}")
    return Framing(windows, description)


def crop_mask(mask: np.ndarray, window: np.ndarray, height: int, width: int) -> np.ndarray:
    """The part of a (H, W) bool mask inside ``window`` (top, left, h, w; may reach past the
    edges, where it is background), scaled to (height, width) bool.

    Shrinking averages each output pixel's area; enlarging interpolates; a pixel is the dancer
    when it is at least half covered.
    """
    top, left, window_height, window_width = (float(value) for value in window)
    source_height, source_width = mask.shape
    pad_top = max(0, int(np.ceil(-top)))
    pad_left = max(0, int(np.ceil(-left)))
    pad_bottom = max(0, int(np.ceil(top + window_height - source_height)))
    pad_right = max(0, int(np.ceil(left + window_width - source_width)))
    image = np.where(mask, np.uint8(255), np.uint8(0))
    if pad_top or pad_left or pad_bottom or pad_right:
        image = np.pad(image, ((pad_top, pad_bottom), (pad_left, pad_right)))
    box = (left + pad_left, top + pad_top, left + pad_left + window_width, top + pad_top + window_height)
    scale = height / window_height
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    scaled = Image.fromarray(image).resize((width, height), resample=resample, box=box)
    return np.asarray(scaled) >= 128
