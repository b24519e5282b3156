"""Folders of images (one frame a file) to silhouette clips, including the DanceNet 2018 layout.

The 2018 layout is ``DATASET/imgs/1.jpg, 2.jpg, ...``: when a folder holds an ``imgs`` subfolder the
frames are read from there. Files are taken in natural order (``2.jpg`` before ``10.jpg``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import input_error
from . import IMAGE_SUFFIXES, ClipSource, PrepareOptions
from .clip import finish_clip, segment_frames
from .crowd import person_segmenter
from .segment import choose_auto, make_segmenter, working_size
from .timing import resample_indices

SAMPLE_COUNT = 24


def natural_key(path: Path) -> tuple:
    """Sort key that orders the digit runs of a file name as numbers: ``frame2`` < ``frame10``."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), path.name


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order; a user error if there are none."""
    files = [entry for entry in folder.iterdir()
             if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise input_error(folder, "holds no images (.png, .jpg, ...)")
    return sorted(files, key=natural_key)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from ..limits import check_pixels

    try:
        with Image.open(path) as image:
            size = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise input_error(path, f"cannot be read as an image ({error})") from None
    check_pixels(size[0], size[1], str(path))  # before any pixel is decoded
    return size


def load_frame(path: Path, height: int, width: int) -> np.ndarray:
    """An image file as (height, width, 3) uint8 RGB, shrunk to the working size."""
    try:
        with Image.open(path) as image:
            # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: much faster for large frames.
            image.draft("RGB", (width, height))
            image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), resample=Image.Resampling.BOX)
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise input_error(path, f"cannot be read as an image ({error})") from None


def iter_clips(path: str | Path, options: PrepareOptions) -> Iterator[ClipSource]:
    """One clip from the folder of images at ``path`` (or its ``imgs`` subfolder).

    Frames are taken to be ``options.source_fps`` apart when that is given, else
    ``options.fps`` apart (one image per output frame); when the two differ the sequence is
    resampled, each output frame showing the latest image at or before its time. All images must
    have one size; a file of another size or one that cannot be read is a user error naming it.
    """
    path = Path(path)
    if not path.is_dir():
        raise input_error(path, "is not a folder of images")
    folder = path / "imgs" if (path / "imgs").is_dir() else path
    files = image_files(folder)
    size = image_size(files[0])
    for file in files[1:]:
        other = image_size(file)
        if other != size:
            raise input_error(file, f"is {other[0]}x{other[1]} but {files[0].name} is "
                                    f"{size[0]}x{size[1]}; all frames of a folder must have one size")
    framing = options.framing or "full"  # a folder of frames is often already framed (2018 layout)
    work_height, work_width = working_size(size[1], size[0], options.height, options.width,
                                           oversample=4.0 if framing == "dancer" else 2.0,
                                           longest=640 if framing == "dancer" else None)
    picks = np.unique(np.linspace(0, len(files) - 1, num=min(SAMPLE_COUNT, len(files))).round())
    samples = [load_frame(files[int(index)], work_height, work_width) for index in picks]
    method, reason = options.segment, "chosen with --segment"
    if method == "auto":
        method, reason = choose_auto(samples)
    warnings: list[str] = []
    if method == "person":
        segmenter, warnings = person_segmenter(samples, path)
    else:
        segmenter = make_segmenter(method, samples)
    source_fps = options.source_fps or options.fps
    times = np.arange(len(files)) / source_fps
    indices = resample_indices(times, len(files) / source_fps, options.fps)
    frames = shown_frames(files, indices, work_height, work_width)
    store = segment_frames(frames, segmenter, total=len(indices), desc=f"segment {path.name}",
                           quiet=options.quiet)
    masks, extra = finish_clip(store, path, method, framing, options.height, options.width,
                               options.fps)
    yield ClipSource(
        name=path.name, source=str(path), segmentation=method, source_fps=source_fps,
        masks=masks, total=len(indices),
        extra={"segment_reason": reason, **extra, "warnings": warnings + extra["warnings"]},
    )


def shown_frames(files: list[Path], indices: np.ndarray, height: int,
                 width: int) -> Iterator[np.ndarray]:
    """The images at ``indices`` (non-decreasing) as (height, width, 3) uint8, each loaded once."""
    loaded_index, frame = -1, None
    for index in indices:
        if index != loaded_index:
            loaded_index, frame = index, load_frame(files[index], height, width)
        yield frame
