"""Limits on what one request may ask for, checked before any memory is spent.

Every count, rate and size that comes from a flag or a file is checked here against what it
implies (frames = fps x duration, pixels = width x height) before arrays are allocated, so an
absurd but legal request (``--seconds 1e9``, ``--size 100000x100000``, a BVH file claiming
millions of joints) is a one-line error stating the limit instead of an out-of-memory crash or a
run that never ends. The limits are far above any real use (the salsa data: 24 joints, 60 fps,
takes under a minute, 208x120 frames).
"""

from __future__ import annotations

import math

from .errors import DancenetError

# Dataset frames (prepare --size, a manifest): frames are stored and trained at this size.
MAX_FRAME_SIDE = 2048
# Frames one clip may have (prepare: source duration x --fps): 9 hours at 30 fps.
MAX_CLIP_FRAMES = 1_000_000
# --fps / --source-fps: well above any camera or motion-capture system.
MAX_FPS = 1000.0
# Images and video frames read from disk: width x height (PIL's own bomb limit is ~89 M).
MAX_SOURCE_PIXELS = 8192 * 8192
# BVH: joints (End Sites included), bytes of the file, and frames x joints of its motion.
MAX_BVH_JOINTS = 2000
MAX_BVH_BYTES = 64 * 1024 * 1024
MAX_BVH_SAMPLES = 10_000_000
# generate: length of one video (streamed: memory stays flat, but time does not) and the size of
# the upscaled frame (--scale) that each chunk of frames is held at.
MAX_GENERATE_SECONDS = 10 * 3600.0
MAX_VIDEO_SIDE = 4096
# dancenet train: the pipeline's training budget (a week; longer is a typo, not a plan).
MAX_TRAIN_MINUTES = 7 * 24 * 60.0
# evaluate / evaluate-video hold every frame they measure in memory.
MAX_EVALUATE_SECONDS = 3600.0


def check_frame_size(height: int, width: int, flag: str = "--size") -> None:
    """Width and height of stored frames: whole numbers in [8, MAX_FRAME_SIDE]."""
    if not (8 <= width <= MAX_FRAME_SIDE and 8 <= height <= MAX_FRAME_SIDE):
        raise DancenetError(f"{flag} {width}x{height}: width and height must be between 8 and "
                            f"{MAX_FRAME_SIDE}")


def check_rate(value: float, flag: str) -> None:
    """A frame rate: a finite number in (0, MAX_FPS]."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= MAX_FPS):
        raise DancenetError(f"{flag} {value}: must be a positive number of frames per second, "
                            f"at most {MAX_FPS:g}")


def check_frame_count(frames: float, what: str, limit: int = MAX_CLIP_FRAMES) -> int:
    """``frames`` (possibly a float product such as fps x seconds) as an int, at most ``limit``.

    what: the input it comes from, named first in the message (a file and the flags involved).
    """
    if not math.isfinite(frames) or frames > limit:
        raise DancenetError(f"{what}: would make {frames:.4g} frames; the limit is {limit} frames a clip")
    return int(frames)


def check_pixels(width: int, height: int, what: str, limit: int = MAX_SOURCE_PIXELS) -> None:
    """A source image or video frame's header size, before decoding it."""
    if width * height > limit:
        raise DancenetError(f"{what}: is {width}x{height} pixels; the limit is {limit} pixels "
                            f"(8192x8192) a frame")


def check_video_size(width: int, height: int, flag: str = "--scale") -> None:
    """An output video frame (after upscaling): at most MAX_VIDEO_SIDE pixels a side."""
    if width > MAX_VIDEO_SIDE or height > MAX_VIDEO_SIDE:
        raise DancenetError(f"{flag}: the video would be {width}x{height}; the limit is "
                            f"{MAX_VIDEO_SIDE} pixels a side")


def check_seconds(seconds: float, flag: str = "--seconds", limit: float = MAX_GENERATE_SECONDS) -> float:
    """A requested length: a finite positive number of seconds, at most ``limit``."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= limit):
        raise DancenetError(f"{flag} {seconds}: must be a positive number of seconds, at most "
                            f"{limit:g} ({limit / 3600:g} h)")
    return float(seconds)
