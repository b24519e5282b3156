"""Turn sources (videos, image folders, BVH motion capture) into a dataset of silhouettes.

Every source kind provides ``iter_clips(path, options) -> Iterator[ClipSource]``; :func:`prepare`
finds the kind of each source and streams its clips into a :class:`~dancenet.dataset.DatasetWriter`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import DancenetError, input_error

SEGMENT_METHODS = ("auto", "person", "threshold", "chroma", "background")
FRAMINGS = ("full", "dancer")
VIEWS = ("front", "side")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BVH_SUFFIXES = {".bvh"}


@dataclass(frozen=True)
class PrepareOptions:
    """What every source kind needs to know to produce frames for the dataset."""

    height: int = 120
    width: int = 208
    fps: float = 30.0
    segment: str = "auto"
    view: str = "front"
    source_fps: float | None = None
    quiet: bool = False
    framing: str | None = None  # "full" or "dancer"; None: dancer for videos, full for image folders

    def __post_init__(self):
        from ..limits import check_frame_size, check_rate

        check_frame_size(self.height, self.width, "--size")
        check_rate(self.fps, "--fps")
        if self.source_fps is not None:
            check_rate(self.source_fps, "--source-fps")
        if self.segment not in SEGMENT_METHODS:
            raise DancenetError(f"--segment {self.segment}: choose one of {', '.join(SEGMENT_METHODS)}")
        if self.framing is not None and self.framing not in FRAMINGS:
            raise DancenetError(f"--framing {self.framing}: choose one of {', '.join(FRAMINGS)}")
        if self.view not in VIEWS:
            raise DancenetError(f"--view {self.view}: choose one of {', '.join(VIEWS)}")


@dataclass
class ClipSource:
    """One clip as a source kind yields it; ``masks`` is consumed once, as a stream.

    masks: iterable of (height, width) bool silhouettes at the target size and fps.
    joints: (frames, joints, 3) float32 world positions (motion capture only), one per mask.
    """

    name: str
    source: str
    segmentation: str
    source_fps: float
    masks: Iterable[np.ndarray]
    total: int | None = None
    joints: np.ndarray | None = None
    joint_names: Sequence[str] | None = None
    extra: dict = field(default_factory=dict)


def parse_size(text: str) -> tuple[int, int]:
    """``"208x120"`` -> (height 120, width 208)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise DancenetError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 208x120") from None
    from ..limits import check_frame_size

    check_frame_size(height, width, "--size")
    return height, width


def source_kind(path: Path) -> str:
    """``"bvh"``, ``"images"`` or ``"video"``; a user error for anything else."""
    if not path.exists():
        raise input_error(path, "no such file or directory")
    if path.is_dir():
        entries = [entry for entry in path.iterdir() if entry.is_file()]
        if any(entry.suffix.lower() in BVH_SUFFIXES for entry in entries):
            return "bvh"
        if any(entry.suffix.lower() in IMAGE_SUFFIXES for entry in entries):
            return "images"
        if (path / "imgs").is_dir():
            return "images"
        raise input_error(path, "holds no images (.png, .jpg, ...) and no .bvh files")
    if path.suffix.lower() in BVH_SUFFIXES:
        return "bvh"
    return "video"


def iter_source_clips(path: Path, options: PrepareOptions) -> Iterator[ClipSource]:
    """The clips of one source, whatever its kind."""
    kind = source_kind(path)
    if kind == "bvh":
        from .bvh import iter_clips
    elif kind == "images":
        from .frames import iter_clips
    else:
        from .video import iter_clips
    yield from iter_clips(path, options)


def prepare(sources: Sequence[str | os.PathLike], out: str | os.PathLike,
            options: PrepareOptions = PrepareOptions(), overwrite: bool = False):
    """Build a dataset at ``out`` from ``sources``; returns the opened :class:`Dataset`.

    Nothing is written at ``out`` unless every source succeeds.
    """
    from ..dataset import Dataset, DatasetWriter
    from ..paths import check_output
    from ..progress import progress

    paths = [Path(source) for source in sources]
    for path in paths:  # fail before any work on a typo in the last source
        source_kind(path)
    check_output(out, paths, "--out")
    with DatasetWriter(out, options.height, options.width, options.fps, overwrite=overwrite) as writer:
        for path in paths:
            for clip in iter_source_clips(path, options):
                masks = progress(clip.masks, total=clip.total, desc=f"prepare {clip.name}",
                                 unit="frame", quiet=options.quiet)
                writer.add_clip(clip.name, clip.source, clip.segmentation, masks, clip.source_fps,
                                joints=clip.joints, joint_names=clip.joint_names, extra=clip.extra)
    return Dataset(out)


def choices_made(dataset, segment: str = "auto") -> tuple[list[str], list[str]]:
    """What ``prepare`` found and chose for each clip of ``dataset``, as lines to show a user:
    (warnings, e.g. a second person in view; notes: the segmentation ``auto`` chose and why, the
    framing). ``segment``: the method asked for (its reason is shown for ``auto`` only)."""
    warnings, notes = [], []
    for clip in dataset.clips:
        warnings.extend(clip.extra.get("warnings", []))
        reason = clip.extra.get("segment_reason")
        if reason and segment == "auto":
            notes.append(f"{clip.name}: --segment auto chose {clip.segmentation} ({reason})")
        if "framing" in clip.extra:
            notes.append(f"{clip.name}: {clip.extra['framing']}")
    return warnings, notes

