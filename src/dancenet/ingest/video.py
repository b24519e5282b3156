"""Video files (anything PyAV decodes: mp4, avi, mov, mkv, webm, gif) to silhouette clips.

Two streaming passes over the file, never the whole video in memory:

1. a survey: decode every frame (cheap: no colour conversion) to learn the frame times, and keep
   about :data:`SAMPLE_COUNT` frames spread evenly over the video to calibrate segmentation
   (a background model, a backdrop colour) and, for ``--segment auto``, to pick the method;
2. the clip itself: decode again, convert only the frames the target frame rate shows, scaled by
   FFmpeg to the working resolution, and segment them as they come.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from ..errors import DancenetError, input_error
from . import ClipSource, PrepareOptions
from .clip import finish_clip, segment_frames
from .crowd import person_segmenter
from .segment import choose_auto, make_segmenter, working_size
from .timing import resample_indices

SAMPLE_COUNT = 24
WORKING_LONGEST = 640  # longer side of the working frames with --framing dancer (see longest_side)
# Nearest-pixel shrinking, deliberately: every working pixel is a real source pixel, so a rule like
# "grayscale > 20" means what it says; an averaging scaler would blend dancer and background at
# the outline and grow every silhouette. fit_mask then averages the masks, not the colours.
SCALER = "POINT"


@dataclass
class VideoSurvey:
    """What the first pass learned about a video.

    times: (frames,) float64 presentation time of every decoded frame, seconds.
    samples: (height, width, 3) uint8 RGB frames at the working size, spread over the video.
    """

    times: np.ndarray
    end_time: float
    source_fps: float
    source_height: int
    source_width: int
    samples: list[np.ndarray]


def open_video(path: Path):
    """Open ``path`` with PyAV; returns (container, video stream) or raises a user error."""
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise input_error(path, f"cannot be read as a video ({describe(error)})") from None
    if not container.streams.video:
        container.close()
        raise input_error(path, "has no video stream")
    stream = container.streams.video[0]
    from ..limits import check_pixels

    try:  # a header claiming a huge frame, refused before a frame is decoded
        check_pixels(stream.codec_context.width or 0, stream.codec_context.height or 0, str(path))
    except DancenetError:
        container.close()
        raise
    # Frame threading lets FFmpeg decode on every core; safe because frames come out in order.
    stream.thread_type = "AUTO"
    return container, stream


def describe(error: Exception) -> str:
    """A short reason from a PyAV error, without the file name it repeats."""
    return getattr(error, "strerror", None) or str(error).splitlines()[0]


def timed_frames(container, stream) -> Iterator[tuple[float, "av.VideoFrame"]]:
    """Decoded frames with their presentation time in seconds, in presentation order."""
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    for index, frame in enumerate(container.decode(stream)):
        if frame.pts is not None and frame.time_base is not None:
            time = float(frame.pts * frame.time_base)
        elif frame.time is not None:
            time = float(frame.time)
        else:
            time = index / rate
        yield time, frame


def frame_duration(frame, stream, rate: float) -> float:
    """How long ``frame`` shows, in seconds: its own duration when the container says, else 1/rate."""
    duration = getattr(frame, "duration", None)
    if duration and frame.time_base is not None:
        return float(duration * frame.time_base)
    return 1.0 / rate


def to_rgb(frame, reformatter: VideoReformatter, height: int, width: int) -> np.ndarray:
    """An av.VideoFrame as (height, width, 3) uint8 RGB, scaled by FFmpeg (fast, in C).

    One reformatter serves a whole video: it keeps FFmpeg's scaler, whose set-up costs several
    times more than scaling a frame (``frame.to_ndarray(width=...)`` would redo it every frame).
    """
    return reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                interpolation=SCALER).to_ndarray()


def survey(path: Path, options: PrepareOptions) -> VideoSurvey:
    """First pass: frame times, the source's size and rate, and evenly spread sample frames.

    Samples are kept at a stride that doubles whenever too many are held, since the length of
    the video is not known for sure until it has been decoded.
    """
    container, stream = open_video(path)
    with container:
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        times: list[float] = []
        kept: list[tuple[int, np.ndarray]] = []
        # Start at the stride the container's frame count suggests (it may be missing or wrong).
        estimate = stream.frames or int(float(stream.duration * stream.time_base) * (rate or 0)
                                        if stream.duration and stream.time_base else 0)
        stride = max(1, estimate // SAMPLE_COUNT)
        last_frame = None
        work_height = work_width = 0
        reformatter = VideoReformatter()
        try:
            for index, (time, frame) in enumerate(timed_frames(container, stream)):
                if index == 0:
                    source_height, source_width = frame.height, frame.width
                    work_height, work_width = working_size(
                        source_height, source_width, options.height, options.width,
                        oversample=oversample(options), longest=longest_side(options))
                times.append(time)
                last_frame = frame
                if index % stride == 0:
                    kept.append((index, to_rgb(frame, reformatter, work_height, work_width)))
                    if len(kept) >= 2 * SAMPLE_COUNT:
                        stride *= 2
                        kept = [(i, sample) for i, sample in kept if i % stride == 0]
        except av.error.FFmpegError as error:
            raise input_error(path, f"is corrupt or truncated ({describe(error)})") from None
        if not times:
            raise input_error(path, "has no video frames")
        # FFmpeg stops quietly at the end of a cut-off file; the index (mp4, mov) says how many
        # frames there should be. A little slack for edit lists and dropped leading frames.
        if stream.frames and len(times) < stream.frames - max(2, stream.frames // 50):
            raise input_error(path, f"is truncated: {len(times)} of its {stream.frames} frames decode")
        if rate is None and len(times) > 1 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        rate = rate or options.fps
        end_time = max(times) + frame_duration(last_frame, stream, rate)
    spread = np.linspace(0, len(kept) - 1, num=min(SAMPLE_COUNT, len(kept))).round().astype(int)
    samples = [kept[i][1] for i in np.unique(spread)]
    return VideoSurvey(np.asarray(times), end_time, rate, source_height, source_width, samples)


def framing(options: PrepareOptions) -> str:
    """The framing for videos: ``--framing``, by default ``dancer``."""
    return options.framing or "dancer"


def oversample(options: PrepareOptions) -> float:
    """How many working pixels per target pixel to keep: twice as many when the dancer's crop
    (typically half the frame or less) is enlarged to the whole target frame."""
    return 4.0 if framing(options) == "dancer" else 2.0


def longest_side(options: PrepareOptions) -> int | None:
    """With ``--framing dancer``, frames are segmented at most 640 pixels on their longer side:
    MediaPipe computes its mask at 256x256 around the person anyway, and the clean-up over the
    clip costs in proportion to the pixels (measured in docs/footage.md: a 1280x720 clip
    segmented at full size ran at a fifth of the speed for no visible gain)."""
    return WORKING_LONGEST if framing(options) == "dancer" else None


def iter_clips(path: str | Path, options: PrepareOptions) -> Iterator[ClipSource]:
    """One clip from the video at ``path``: silhouettes at ``options.fps`` and size.

    The video is resampled by timestamps: each output time shows the latest decoded frame at or
    before it (so variable frame rates and GIFs work). Errors in the file, found here or while the
    masks stream, are :class:`DancenetError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such file")
    info = survey(path, options)
    method, reason = options.segment, "chosen with --segment"
    if method == "auto":
        method, reason = choose_auto(info.samples)
    warnings: list[str] = []
    if method == "person":
        segmenter, warnings = person_segmenter(info.samples, path)
    else:
        segmenter = make_segmenter(method, info.samples)
    indices = resample_indices(info.times, info.end_time, options.fps)
    work_height, work_width = info.samples[0].shape[:2]
    frames = resampled_frames(path, indices, work_height, work_width)
    store = segment_frames(frames, segmenter, total=len(indices), desc=f"segment {path.stem}",
                           quiet=options.quiet)
    masks, extra = finish_clip(store, path, method, framing(options), options.height,
                               options.width, options.fps)
    yield ClipSource(
        name=path.stem, source=str(path), segmentation=method, source_fps=info.source_fps,
        masks=masks, total=len(indices),
        extra={"segment_reason": reason, **extra, "warnings": warnings + extra["warnings"]},
    )


def resampled_frames(path: Path, indices: np.ndarray, height: int,
                     width: int) -> Iterator[np.ndarray]:
    """Second pass: the frames at ``indices`` (non-decreasing, repeats allowed) as (height, width, 3)
    uint8 RGB; a source frame is converted only if shown."""
    repeats = np.bincount(indices, minlength=int(indices.max()) + 1 if indices.size else 0)
    container, stream = open_video(path)
    reformatter = VideoReformatter()
    with container:
        try:
            decoded = 0
            for index, (_, frame) in enumerate(timed_frames(container, stream)):
                if index >= repeats.size:
                    break
                decoded = index + 1
                if repeats[index]:
                    rgb = to_rgb(frame, reformatter, height, width)
                    for _ in range(repeats[index]):
                        yield rgb
        except av.error.FFmpegError as error:
            raise input_error(path, f"is corrupt or truncated ({describe(error)})") from None
    if decoded < repeats.size:
        raise DancenetError(f"{path}: gave fewer frames on the second read ({decoded} of "
                            f"{repeats.size}); did the file change while it was being prepared?")
