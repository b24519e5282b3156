"""The on-disk dataset: a manifest, bit-packed memory-mapped silhouettes, clip-bounded windows.

Layout of a dataset directory::

    manifest.json   format, version, height, width, fps, clips (name, source, segmentation,
                    start, stop, source_fps), joint names when motion capture was the source
    frames.bin      uint8, shape (frames, height, ceil(width / 8)): each row of a silhouette
                    packed 8 pixels a byte (numpy.packbits), so 12k frames of 208x120 are ~40 MB
    joints.npy      float32 (frames, joints, 3) world positions, only for motion-capture sources

Frames are global indices ``0..len(dataset)``; every clip owns the contiguous range
``[clip.start, clip.stop)``. Windows never cross a clip boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .atomic import atomic_directory
from .errors import DancenetError, input_error
from .limits import check_frame_size
from .paths import check_replaceable, member

FORMAT = "dancenet-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FRAMES = "frames.bin"
JOINTS = "joints.npy"
# The files a dataset folder holds; a folder with anything else is not dancenet's to replace.
DATASET_FILES = frozenset({MANIFEST, FRAMES, JOINTS})


def is_dataset_folder(path: Path) -> bool:
    """Whether ``path`` holds a manifest carrying the dataset format marker."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def check_dataset_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail unless ``path`` is new, an empty folder, or (with ``overwrite``) a dataset dancenet
    made and nothing else: a folder holding any other file is never replaced."""
    return check_replaceable(path, is_dataset_folder, DATASET_FILES.__contains__, "a dataset",
                             overwrite=overwrite, flag="--out")


@dataclass(frozen=True)
class Clip:
    """One continuous take: frames ``[start, stop)`` of the dataset."""

    name: str
    source: str
    segmentation: str
    start: int
    stop: int
    source_fps: float
    extra: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.stop - self.start


def packed_width(width: int) -> int:
    return (width + 7) // 8


class DatasetWriter:
    """Stream clips of silhouettes into a new dataset, written atomically.

    Use as a context manager; the dataset appears at ``path`` only when the block ends without an
    error, so an interrupted prepare leaves nothing behind.
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, fps: float,
                 overwrite: bool = False):
        self.path = Path(path)
        self.height, self.width, self.fps = int(height), int(width), float(fps)
        check_frame_size(self.height, self.width, "--size")
        self.overwrite = overwrite
        self.clips: list[Clip] = []
        self._joints: list[np.ndarray] = []
        self._joint_names: list[str] | None = None
        self._context = None
        self._directory: Path | None = None
        self._frames_file = None

    def __enter__(self) -> "DatasetWriter":
        check_dataset_output(self.path, self.overwrite)
        self._context = atomic_directory(self.path, overwrite=True)
        self._directory = self._context.__enter__()
        self._frames_file = open(self._directory / FRAMES, "wb")
        return self

    def add_clip(self, name: str, source: str, segmentation: str, masks: Iterable[np.ndarray],
                 source_fps: float, joints: np.ndarray | None = None,
                 joint_names: Sequence[str] | None = None, extra: dict | None = None) -> Clip:
        """Append one clip.

        masks: iterable of (height, width) bool/uint8 silhouettes (nonzero = dancer), streamed.
        joints: optional (frames, joints, 3) float positions, one row per mask.
        """
        start = sum(clip.length for clip in self.clips)
        count = 0
        for mask in masks:
            mask = np.asarray(mask)
            if mask.shape != (self.height, self.width):
                raise ValueError(f"mask shape {mask.shape} != {(self.height, self.width)}")
            self._frames_file.write(np.packbits(mask != 0, axis=-1).tobytes())
            count += 1
        if count == 0:
            raise input_error(source, "holds no frames")
        if joints is not None:
            if len(joints) != count:
                raise ValueError(f"{len(joints)} joint rows for {count} frames")
            if self._joint_names is None:
                self._joint_names = list(joint_names or [])
            elif joint_names is not None and list(joint_names) != self._joint_names:
                raise input_error(source, "has a different skeleton from the other motion-capture clips")
            self._joints.append(np.asarray(joints, dtype=np.float32))
        unique = name
        taken = {clip.name for clip in self.clips}
        suffix = 2
        while unique in taken:
            unique, suffix = f"{name}-{suffix}", suffix + 1
        clip = Clip(unique, str(source), segmentation, start, start + count, float(source_fps),
                    dict(extra or {}))
        self.clips.append(clip)
        return clip

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            self._frames_file.close()
            if exc_type is None:
                if not self.clips:
                    raise DancenetError("no clips were prepared")
                manifest = {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "height": self.height,
                    "width": self.width,
                    "fps": self.fps,
                    "num_frames": self.clips[-1].stop,
                    "frames": {"file": FRAMES, "encoding": "packbits-rows"},
                    "clips": [asdict(clip) for clip in self.clips],
                }
                if self._joints:
                    if len(self._joints) != len(self.clips):
                        raise DancenetError("cannot mix motion-capture clips with video or image clips "
                                            "in one dataset")
                    np.save(self._directory / JOINTS, np.concatenate(self._joints))
                    manifest["joints"] = {"file": JOINTS, "names": self._joint_names}
                with open(self._directory / MANIFEST, "w") as handle:
                    json.dump(manifest, handle, indent=2)
                    handle.write("\n")
        except BaseException as error:
            self._context.__exit__(type(error), error, error.__traceback__)
            raise
        return bool(self._context.__exit__(exc_type, exc, traceback))


MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def _whole(value, what: str) -> int:
    """A whole number from a manifest (``12`` or ``12.0``, not ``"12"``, ``true`` or ``12.5``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{what} must be a whole number, found {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, found {value!r}")
    return int(value)


class Dataset:
    """Random access to a prepared dataset without reading it into memory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.exists():
            raise input_error(self.path, "no such dataset directory")
        if not manifest_path.is_file():
            raise input_error(self.path, f"is not a dancenet dataset (no {MANIFEST}); "
                                         "make one with `dancenet prepare`")
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise input_error(manifest_path, f"is {manifest_path.stat().st_size} bytes; a manifest is "
                                             f"at most {MAX_MANIFEST_BYTES} bytes")
        raw = manifest_path.read_bytes()
        try:
            manifest = json.loads(raw)
        except (ValueError, RecursionError) as error:
            reason = getattr(error, "msg", "nested too deeply")
            raise input_error(manifest_path, f"is not valid JSON ({reason})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise input_error(manifest_path, "is not a dancenet dataset manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise input_error(manifest_path, f"has format version {manifest.get('version')}; "
                                             f"this dancenet reads version {FORMAT_VERSION}")
        self.manifest = manifest
        self.manifest_hash = hashlib.sha256(raw).hexdigest()
        try:
            self.height = _whole(manifest["height"], "height")
            self.width = _whole(manifest["width"], "width")
            self.fps = float(manifest["fps"])
            self.num_frames = _whole(manifest["num_frames"], "num_frames")
            self.clips = [Clip(**clip) for clip in manifest["clips"]]
            frames_name = manifest["frames"]["file"]
        except (KeyError, TypeError, ValueError) as error:
            raise input_error(manifest_path, f"is malformed ({type(error).__name__}: {error}); "
                                             "prepare the dataset again") from None
        self._check_manifest(manifest_path)
        frames_path = member(self.path, frames_name, "frames.file", source=manifest_path)
        expected = self.num_frames * self.height * packed_width(self.width)
        if not frames_path.is_file() or frames_path.stat().st_size != expected:
            raise input_error(frames_path, f"is missing or truncated (expected {expected} bytes)")
        self._packed = np.memmap(frames_path, dtype=np.uint8, mode="r",
                                 shape=(self.num_frames, self.height, packed_width(self.width)))
        self.joint_names: list[str] | None = None
        self._joints_path = None
        if "joints" in manifest:
            joints = manifest["joints"]
            if not isinstance(joints, dict) or not isinstance(joints.get("names"), list) \
                    or not all(isinstance(name, str) for name in joints["names"]):
                raise input_error(manifest_path, "is malformed (joints needs a file and a list of names); "
                                                 "prepare the dataset again")
            self.joint_names = list(joints["names"])
            self._joints_path = member(self.path, joints.get("file"), "joints.file", source=manifest_path)

    def _check_manifest(self, manifest_path: Path) -> None:
        """Every count in the manifest checked against the others before any memory is spent."""
        problem = None
        try:
            check_frame_size(self.height, self.width, "size")
        except DancenetError as error:
            problem = str(error)
        if problem is None and not (0 < self.fps < float("inf")):
            problem = f"fps {self.fps} is not a positive number"
        if problem is None and not self.clips:
            problem = "lists no clips"
        position = 0
        for clip in self.clips:
            if problem is not None:
                break
            if not (isinstance(clip.name, str) and isinstance(clip.start, int) and isinstance(clip.stop, int)
                    and not isinstance(clip.start, bool) and not isinstance(clip.stop, bool)):
                problem = f"clip {clip.name!r} needs a text name and whole-number start and stop"
            elif clip.start != position or clip.stop <= clip.start:
                problem = (f"clip {clip.name!r} covers frames [{clip.start}, {clip.stop}), expected "
                           f"a non-empty range starting at {position}")
            position = clip.stop if problem is None else position
        if problem is None and position != self.num_frames:
            problem = f"its clips cover {position} frames but num_frames is {self.num_frames}"
        if problem is not None:
            raise input_error(manifest_path, f"is inconsistent: {problem}; prepare the dataset again")

    def __len__(self) -> int:
        return self.num_frames

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return self.height, self.width

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as (n, height, width) uint8 in {0, 1}."""
        stop = self.num_frames if stop is None else stop
        return np.unpackbits(self._packed[start:stop], axis=-1, count=self.width)

    def frames_at(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at arbitrary indices as (n, height, width) uint8 in {0, 1}."""
        indices = np.asarray(indices, dtype=np.int64)
        return np.unpackbits(self._packed[indices], axis=-1, count=self.width)

    def clip(self, name: str) -> Clip:
        for clip in self.clips:
            if clip.name == name:
                return clip
        raise input_error(self.path, f"has no clip named {name!r} "
                                     f"(clips: {', '.join(c.name for c in self.clips)})")

    def clip_frames(self, clip: Clip | str) -> np.ndarray:
        clip = self.clip(clip) if isinstance(clip, str) else clip
        return self.frames(clip.start, clip.stop)

    def windows(self, length: int, stride: int | None = None,
                clips: Sequence[Clip] | None = None) -> list[tuple[int, int]]:
        """All ``(start, stop)`` frame ranges of ``length`` frames lying inside one clip."""
        if length < 1:
            raise ValueError("window length must be >= 1")
        stride = length if stride is None else stride
        result = []
        for clip in self.clips if clips is None else clips:
            for start in range(clip.start, clip.stop - length + 1, stride):
                result.append((start, start + length))
        return result

    @property
    def joints(self) -> np.ndarray | None:
        """(frames, joints, 3) float32 world positions for motion-capture datasets, else None."""
        if self._joints_path is None:
            return None
        try:
            joints = np.load(self._joints_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise input_error(self._joints_path, f"cannot be read as joint positions ({error})") from None
        expected = (self.num_frames, len(self.joint_names or ()), 3)
        if not isinstance(joints, np.ndarray) or joints.shape != expected:
            raise input_error(self._joints_path, f"holds shape {getattr(joints, 'shape', None)}, "
                                                 f"expected {expected}")
        return joints

    def split_clips(self, val_clips: Sequence[str] | int | None) -> tuple[list[Clip], list[Clip]]:
        """Split by whole clips into (train, validation).

        ``val_clips``: clip names, or a count of clips taken evenly across the dataset, or None /
        0 for no validation. A single-clip dataset cannot be split and trains on everything.
        """
        if not val_clips:
            return list(self.clips), []
        if isinstance(val_clips, int):
            if val_clips >= len(self.clips):
                raise DancenetError(f"{self.path}: cannot hold out {val_clips} of "
                                    f"{len(self.clips)} clips for validation")
            step = len(self.clips) / val_clips
            chosen = {self.clips[int(step * index + step / 2)].name for index in range(val_clips)}
        else:
            chosen = {self.clip(name).name for name in val_clips}
        train = [clip for clip in self.clips if clip.name not in chosen]
        validation = [clip for clip in self.clips if clip.name in chosen]
        return train, validation

    def describe(self) -> dict:
        """Summary statistics for ``dancenet info``: clips, frames, fps, size, foreground share."""
        sample = np.linspace(0, self.num_frames - 1, num=min(self.num_frames, 512)).astype(np.int64)
        foreground = self.frames_at(sample).reshape(len(sample), -1).mean(axis=1)
        return {
            "path": str(self.path),
            "clips": len(self.clips),
            "frames": self.num_frames,
            "fps": self.fps,
            "seconds": self.num_frames / self.fps,
            "size": f"{self.width}x{self.height}",
            "foreground_mean": float(foreground.mean()),
            "foreground_min": float(foreground.min()),
            "foreground_max": float(foreground.max()),
            "empty_frames_sampled": int((foreground == 0).sum()),
            "has_joints": self.joint_names is not None,
            "per_clip": [{"name": c.name, "frames": c.length, "segmentation": c.segmentation,
                          "source": c.source} for c in self.clips],
        }
