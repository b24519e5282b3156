"""Resample a sequence of timestamped frames to a fixed frame rate."""

from __future__ import annotations

import numpy as np

from ..errors import DancenetError
from ..limits import MAX_CLIP_FRAMES

# Timestamps from containers are rounded; an output time this close after a frame counts as on it.
TOLERANCE_SECONDS = 1e-4


def resample_indices(times: np.ndarray, end_time: float, fps: float) -> np.ndarray:
    """Which source frame to show at each output time ``times[0] + k / fps`` (k = 0, 1, ...).

    Each output time shows the latest source frame at or before it, which works for variable
    frame rates and for GIFs; output times run up to (not including) ``end_time``, when the last
    source frame stops showing.

    times: (frames,) increasing source frame times in seconds. Returns (outputs,) int64 indices
    into ``times``, non-decreasing.
    """
    times = np.maximum.accumulate(np.asarray(times, dtype=np.float64))
    if times.size == 0:
        return np.zeros(0, dtype=np.int64)
    duration = max(float(end_time) - times[0], 0.0)
    count = np.ceil(duration * fps - TOLERANCE_SECONDS * fps)
    if not count <= MAX_CLIP_FRAMES:  # before allocating: a bogus timestamp or --source-fps 1e-9
        raise DancenetError(f"--fps {fps:g}: {duration:.4g} s of source would make {count:.4g} frames; "
                            f"the limit is {MAX_CLIP_FRAMES} frames a clip (lower --fps or check "
                            "--source-fps)")
    count = max(1, int(count))
    output_times = times[0] + np.arange(count) / fps
    indices = np.searchsorted(times, output_times + TOLERANCE_SECONDS, side="right") - 1
    return np.clip(indices, 0, times.size - 1).astype(np.int64)
