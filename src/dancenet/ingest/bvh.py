"""BVH motion capture: parsing, forward kinematics, and clips of rendered silhouettes.

A BVH file has a HIERARCHY (joints with an OFFSET from their parent and a list of CHANNELS, in any
order per joint) and a MOTION block (one line of channel values per frame). Conventions we follow:

- Rotation channels are Euler angles in degrees, composed in the order the file lists them:
  for ``CHANNELS 3 Zrotation Xrotation Yrotation`` the joint's local rotation is
  ``R = Rz @ Rx @ Ry`` (intrinsic rotations, the way BVH exporters mean it).
- A joint's local translation is its OFFSET plus its position channels (usually only the root has
  any; its OFFSET is usually zero).
- ``End Site`` blocks become joints named ``PARENT_end`` with no channels, so that hand, foot and
  head tips have positions too.

Lines starting with ``#`` or ``//`` (and anything after them) are comments; blank lines, extra
whitespace and CRLF line ends are fine. Anything else malformed is a :class:`DancenetError` naming
the file and the line.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import input_error
from ..limits import MAX_BVH_BYTES, MAX_BVH_JOINTS, MAX_BVH_SAMPLES, check_frame_count
from . import ClipSource, PrepareOptions

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
_CHANNEL_BY_LOWER = {name.lower(): name for name in CHANNEL_NAMES}
_AXIS = {"X": 0, "Y": 1, "Z": 2}
_TOKEN = re.compile(r"[{}]|[^\s{}]+")
_COMMENT = re.compile(r"(#|//).*")

# The first frames of a capture are often a calibration pose (T-pose); skip them when the take is
# long enough that losing them does not matter.
CALIBRATION_FRAMES = 5
MIN_FRAMES_TO_SKIP_CALIBRATION = 60


@dataclass(frozen=True, eq=False)
class Skeleton:
    """The joint tree of a BVH file, joints in file order (every parent before its children).

    names: joint names, End Sites named ``PARENT_end``.
    parents: (joints,) int, index of each joint's parent, -1 for a root.
    offsets: (joints, 3) float64, each joint's offset from its parent in the parent's frame.
    channels: per joint, its channel names in file order (empty for End Sites).
    is_end_site: (joints,) bool.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    is_end_site: np.ndarray

    @property
    def joint_count(self) -> int:
        return len(self.names)

    @property
    def channel_count(self) -> int:
        return sum(len(channels) for channels in self.channels)

    @property
    def channel_starts(self) -> np.ndarray:
        """(joints,) int: the column of each joint's first channel in a frame's values."""
        counts = np.array([len(channels) for channels in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Motion:
    """A parsed BVH file.

    values: (frames, channels) float64, one row per frame, columns in hierarchy order.
    """

    skeleton: Skeleton
    frame_time: float
    values: np.ndarray

    @property
    def frame_count(self) -> int:
        return len(self.values)

    @property
    def fps(self) -> float:
        """The frame rate the header claims: ``1 / Frame Time``, rounded to a whole number when
        it is within 0.02% of one (headers print the time rounded: 0.008333 means 120 fps)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) <= 2e-4 * fps else fps


class _Tokens:
    """The HIERARCHY section as a stream of (token, line number) pairs."""

    def __init__(self, path, items: list[tuple[str, int]], end_line: int):
        self.path, self.items, self.position, self.end_line = path, items, 0, end_line

    def error(self, line: int, problem: str):
        return input_error(self.path, f"line {line}: {problem}")

    def peek(self) -> tuple[str, int] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def next(self, what: str) -> tuple[str, int]:
        if self.position >= len(self.items):
            raise self.error(self.end_line, f"hierarchy ends early, expected {what}")
        item = self.items[self.position]
        self.position += 1
        return item

    def expect(self, keyword: str):
        token, line = self.next(repr(keyword))
        if token.lower() != keyword.lower():
            raise self.error(line, f"expected {keyword!r}, found {token!r}")

    def number(self, what: str) -> float:
        token, line = self.next(what)
        try:
            value = float(token)
        except ValueError:
            raise self.error(line, f"expected a number for {what}, found {token!r}") from None
        if not math.isfinite(value):
            raise self.error(line, f"{what} is not a finite number: {token!r}")
        return value


def _strip_comment(line: str) -> str:
    return _COMMENT.sub("", line).strip()


def parse_bvh(path: str | os.PathLike) -> Motion:
    """Read a BVH file; any malformed content is a user error naming the file and line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BVH_BYTES:
            raise input_error(path, f"is {size / 2**20:.0f} MB; a BVH file is at most "
                                    f"{MAX_BVH_BYTES // 2**20} MB (split the take)")
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise input_error(path, "no such file") from None
    except OSError as error:
        raise input_error(path, f"cannot read: {error.strerror or error}") from None
    lines = text.splitlines()

    # Split at the MOTION keyword; everything before is the hierarchy.
    hierarchy_items: list[tuple[str, int]] = []
    motion_line = None
    for index, raw in enumerate(lines):
        line = _strip_comment(raw)
        if not line:
            continue
        if line.split()[0].upper() == "MOTION":
            motion_line = index
            break
        hierarchy_items.extend((token, index + 1) for token in _TOKEN.findall(line))
    if not hierarchy_items or hierarchy_items[0][0].upper() != "HIERARCHY":
        where = hierarchy_items[0][1] if hierarchy_items else 1
        raise input_error(path, f"line {where}: not a BVH file (it must start with HIERARCHY)")
    end_line = (motion_line + 1) if motion_line is not None else len(lines)
    skeleton = _parse_hierarchy(_Tokens(path, hierarchy_items[1:], end_line))
    if motion_line is None:
        raise input_error(path, f"line {len(lines)}: no MOTION section after the hierarchy")
    frame_time, values = _parse_motion(path, lines, motion_line + 1, skeleton.channel_count)
    return Motion(skeleton, frame_time, values)


def _parse_hierarchy(tokens: _Tokens) -> Skeleton:
    """Joints in file order, parsed with an explicit stack: any depth, no recursion limit, and
    at most :data:`~dancenet.limits.MAX_BVH_JOINTS` joints (checked as each one is met)."""
    names: list[str] = []
    taken: set[str] = set()
    parents: list[int] = []
    offsets: list[tuple[float, float, float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: list[bool] = []

    def add_joint(parent: int, name: str, end_site: bool, line: int) -> int:
        if len(names) >= MAX_BVH_JOINTS:
            raise tokens.error(line, f"more than {MAX_BVH_JOINTS} joints (End Sites included); "
                                     "the limit is there to keep memory bounded")
        names.append(name)
        taken.add(name)
        parents.append(parent)
        end_sites.append(end_site)
        offsets.append((0.0, 0.0, 0.0))
        channels.append(())
        tokens.expect("{")
        return len(names) - 1

    def end_site_name(parent: int) -> str:
        base = f"{names[parent]}_end"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}{suffix}", suffix + 1
        return name

    stack: list[int] = []  # the joints whose '{' is open, innermost last
    while stack or tokens.peek() is not None:
        if not stack:
            token, line = tokens.next("ROOT")
            if token.upper() != "ROOT":
                raise tokens.error(line, f"expected ROOT, found {token!r}")
            root_name, _ = tokens.next("a root joint name")
            stack.append(add_joint(-1, root_name, False, line))
            continue
        index = stack[-1]
        name = names[index]
        if end_sites[index]:
            token, line = tokens.next("'}' closing an End Site")
            if token == "}":
                stack.pop()
            elif token.upper() == "OFFSET":
                offsets[index] = tuple(tokens.number("End Site OFFSET") for _ in range(3))
            else:
                raise tokens.error(line, f"unexpected {token!r} in an End Site")
            continue
        token, line = tokens.next("'}' closing joint " + repr(name))
        keyword = token.upper()
        if keyword == "}":
            stack.pop()
        elif keyword == "OFFSET":
            offsets[index] = tuple(tokens.number(f"OFFSET of {name}") for _ in range(3))
        elif keyword == "CHANNELS":
            count_token, count_line = tokens.next("a channel count")
            if not count_token.isdigit() or int(count_token) > len(CHANNEL_NAMES):
                raise tokens.error(count_line, f"expected a channel count from 0 to {len(CHANNEL_NAMES)}, "
                                               f"found {count_token[:20]!r}")
            listed = []
            for _ in range(int(count_token)):
                channel, channel_line = tokens.next("a channel name")
                if channel.lower() not in _CHANNEL_BY_LOWER:
                    raise tokens.error(channel_line, f"unknown channel {channel[:40]!r} in joint {name!r} "
                                                     f"(expected one of {', '.join(CHANNEL_NAMES)})")
                listed.append(_CHANNEL_BY_LOWER[channel.lower()])
            channels[index] = tuple(listed)
        elif keyword == "JOINT":
            child_name, _ = tokens.next("a joint name")
            stack.append(add_joint(index, child_name, False, line))
        elif keyword == "END":
            tokens.expect("Site")
            stack.append(add_joint(index, end_site_name(index), True, line))
        else:
            raise tokens.error(line, f"unexpected {token[:40]!r} in joint {name!r}")
    if not names:
        raise tokens.error(tokens.end_line, "the hierarchy has no ROOT joint")
    return Skeleton(tuple(names), np.array(parents, dtype=np.int64), np.array(offsets, dtype=np.float64),
                    tuple(channels), np.array(end_sites, dtype=bool))


def _header_value(path, lines: list[str], index: int, pattern: str, what: str) -> tuple[str, int]:
    """Find the next non-blank line at or after ``index``; it must match ``pattern``."""
    while index < len(lines) and not _strip_comment(lines[index]):
        index += 1
    if index >= len(lines):
        raise input_error(path, f"line {len(lines)}: MOTION section ends before {what!r}")
    match = re.fullmatch(pattern, _strip_comment(lines[index]), flags=re.IGNORECASE)
    if match is None:
        raise input_error(path, f"line {index + 1}: expected {what!r}, found {lines[index].strip()[:60]!r}")
    return match.group(1), index + 1


def _parse_motion(path, lines: list[str], index: int, channel_count: int) -> tuple[float, np.ndarray]:
    frames_text, index = _header_value(path, lines, index, r"Frames\s*:\s*(\S+)", "Frames: N")
    if not frames_text.isdigit():
        raise input_error(path, f"line {index}: Frames must be a whole number, found {frames_text!r}")
    frame_count = int(frames_text)
    if frame_count == 0:
        raise input_error(path, f"line {index}: the file holds zero frames")
    time_text, index = _header_value(path, lines, index, r"Frame\s+Time\s*:\s*(\S+)", "Frame Time: T")
    try:
        frame_time = float(time_text)
    except ValueError:
        frame_time = float("nan")
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise input_error(path, f"line {index}: Frame Time must be a positive number, found {time_text!r}")

    # Values are converted line by line into one preallocated array: memory stays at 8 bytes a
    # value, however many lines (a list of token strings took ~60 bytes a value).
    row_lines = [number for number in range(index, len(lines)) if _strip_comment(lines[number])]
    if len(row_lines) < frame_count:
        raise input_error(path, f"line {len(lines)}: truncated MOTION block: the header says {frame_count} "
                                f"frames, the file holds {len(row_lines)}")
    if len(row_lines) > frame_count:
        raise input_error(path, f"line {row_lines[frame_count] + 1}: more frame lines than the header's "
                                f"Frames: {frame_count}")
    values = np.empty((frame_count, channel_count), dtype=np.float64)
    for row, number in enumerate(row_lines):
        line = lines[number]
        tokens = (_strip_comment(line) if "#" in line or "//" in line else line).split()
        if len(tokens) != channel_count:
            raise input_error(path, f"line {number + 1}: {len(tokens)} values for {channel_count} channels")
        try:
            values[row] = np.array(tokens, dtype=np.float64)
        except ValueError:
            values[row] = [_number_or_nan(token) for token in tokens]
    finite = np.isfinite(values)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        number = row_lines[row]
        token = (_strip_comment(lines[number])).split()[column]
        raise input_error(path, f"line {number + 1}: not a finite number: {token[:40]!r}")
    return frame_time, values


def _number_or_nan(token: str) -> float:
    try:
        return float(token)
    except ValueError:
        return float("nan")


def _rotation_matrices(axis: int, degrees: np.ndarray) -> np.ndarray:
    """(frames,) angles -> (frames, 3, 3) rotations about one coordinate axis."""
    radians = np.deg2rad(degrees)
    cosine, sine = np.cos(radians), np.sin(radians)
    matrices = np.zeros((len(degrees), 3, 3))
    first, second = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns, right-handed
    matrices[:, axis, axis] = 1.0
    matrices[:, first, first] = cosine
    matrices[:, first, second] = -sine
    matrices[:, second, first] = sine
    matrices[:, second, second] = cosine
    return matrices


def forward_kinematics(motion: Motion, chunk_frames: int = 2048) -> np.ndarray:
    """World positions of every joint (End Sites included) in every frame.

    Returns (frames, joints, 3) float64, in the file's units and axes. Frames are done
    ``chunk_frames`` at a time, so the (frames, joints, 3, 3) rotations never exist whole.
    """
    values = motion.values
    positions = np.empty((len(values), motion.skeleton.joint_count, 3))
    for first in range(0, len(values), chunk_frames):
        positions[first:first + chunk_frames] = _forward_kinematics(motion.skeleton,
                                                                    values[first:first + chunk_frames])
    return positions


def _forward_kinematics(skeleton: Skeleton, values: np.ndarray) -> np.ndarray:
    """(frames, channels) values -> (frames, joints, 3) world positions."""
    frame_count, joint_count = len(values), skeleton.joint_count
    positions = np.zeros((frame_count, joint_count, 3))
    rotations = np.zeros((frame_count, joint_count, 3, 3))
    for joint, (parent, start) in enumerate(zip(skeleton.parents, skeleton.channel_starts)):
        translation = np.broadcast_to(skeleton.offsets[joint], (frame_count, 3)).copy()
        rotation = None
        for column, channel in enumerate(skeleton.channels[joint], start=start):
            axis = _AXIS[channel[0]]
            if channel.endswith("position"):
                translation[:, axis] += values[:, column]
            else:
                elementary = _rotation_matrices(axis, values[:, column])
                rotation = elementary if rotation is None else rotation @ elementary
        if rotation is None:
            rotation = np.broadcast_to(np.eye(3), (frame_count, 3, 3))
        if parent < 0:
            positions[:, joint] = translation
            rotations[:, joint] = rotation
        else:
            parent_rotation = rotations[:, parent]
            positions[:, joint] = positions[:, parent] + np.einsum("fij,fj->fi", parent_rotation, translation)
            rotations[:, joint] = parent_rotation @ rotation
    return positions


def resample(positions: np.ndarray, source_fps: float, fps: float) -> np.ndarray:
    """Linearly interpolate (frames, ...) samples taken at ``source_fps`` onto a ``fps`` grid.

    The output starts at the first source frame and covers the take's duration:
    ``floor((frames - 1) * fps / source_fps) + 1`` frames.
    """
    frame_count = len(positions)
    duration = (frame_count - 1) / source_fps
    count = int(math.floor(duration * fps + 1e-6)) + 1  # the tolerance keeps 60 -> 30 exact
    source_index = np.arange(count) * (source_fps / fps)
    source_index = np.minimum(source_index, frame_count - 1)
    lower = np.floor(source_index + 1e-9).astype(np.int64)
    lower = np.minimum(lower, frame_count - 1)
    upper = np.minimum(lower + 1, frame_count - 1)
    weight = np.clip(source_index - lower, 0.0, 1.0).reshape((-1,) + (1,) * (positions.ndim - 1))
    return positions[lower] * (1.0 - weight) + positions[upper] * weight


def bvh_files(path: Path) -> list[Path]:
    """``path`` itself, or the .bvh files in the folder ``path``, sorted by name."""
    if not path.exists():
        raise input_error(path, "no such file or directory")
    if path.is_dir():
        files = sorted(entry for entry in path.iterdir()
                       if entry.is_file() and entry.suffix.lower() == ".bvh")
        if not files:
            raise input_error(path, "holds no .bvh files")
        return files
    if not path.is_file():  # a pipe or a device would block or never end
        raise input_error(path, "is not a regular file")
    return [path]


def iter_clips(path: str | os.PathLike, options: PrepareOptions) -> Iterator[ClipSource]:
    """One clip per BVH file: joints resampled to ``options.fps`` and their rendered silhouettes.

    The frame rate is the header's ``1 / Frame Time`` unless ``options.source_fps`` overrides it.
    Each file is parsed only when its clip is reached; the masks are rendered lazily.
    """
    from .render import render_silhouettes

    for file in bvh_files(Path(path)):
        motion = parse_bvh(file)
        if motion.skeleton.joint_count < 2:
            raise input_error(file, "the skeleton has a single joint and no End Site: no bone to draw")
        source_fps = float(options.source_fps) if options.source_fps is not None else motion.fps
        joint_count = motion.skeleton.joint_count
        if motion.frame_count * joint_count > MAX_BVH_SAMPLES:
            raise input_error(file, f"{motion.frame_count} frames x {joint_count} joints is more than "
                                    f"{MAX_BVH_SAMPLES} joint positions; split the take")
        skipped = CALIBRATION_FRAMES if motion.frame_count >= MIN_FRAMES_TO_SKIP_CALIBRATION else 0
        frames = (motion.frame_count - skipped - 1) / source_fps * options.fps + 1
        rates = f"{file} at {source_fps:g} fps (--source-fps) resampled to --fps {options.fps:g}"
        check_frame_count(frames, rates)
        check_frame_count(frames * joint_count, rates + f" x {joint_count} joints",
                          limit=MAX_BVH_SAMPLES)
        positions = forward_kinematics(motion)
        joints = resample(positions[skipped:], source_fps, options.fps).astype(np.float32)
        skeleton = motion.skeleton
        masks = render_silhouettes(joints, skeleton.parents, skeleton.names, options.height, options.width,
                                   view=options.view)
        yield ClipSource(name=file.stem, source=str(file), segmentation=f"render-{options.view}",
                         source_fps=source_fps, masks=masks, total=len(joints), joints=joints,
                         joint_names=list(skeleton.names),
                         extra={"view": options.view, "skipped_calibration_frames": skipped})
