"""Synthetic motion capture and rendered dancers for tests.

A small human-like skeleton (hips, spine, chest, neck, head, arms, legs, End Sites; centimetres,
Y up, facing +Z) does a smooth periodic dance: the hips sway and travel, the torso twists, arms
swing and lift, knees bend. :func:`synthetic_positions` computes its joint positions with
``scipy.spatial.transform.Rotation``, independently of dancenet's own forward kinematics, so tests
can check one against the other.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

# (name, parent name, offset from the parent in cm); "_end" names are End Sites, in file order.
SKELETON = (
    ("Hips", None, (0.0, 0.0, 0.0)),
    ("Spine", "Hips", (0.0, 10.0, 0.0)),
    ("Chest", "Spine", (0.0, 20.0, -1.0)),
    ("Neck", "Chest", (0.0, 22.0, 0.0)),
    ("Head", "Neck", (0.0, 8.0, 1.0)),
    ("Head_end", "Head", (0.0, 18.0, 0.0)),
    ("LeftShoulder", "Chest", (4.0, 18.0, 0.0)),
    ("LeftArm", "LeftShoulder", (13.0, 0.0, 0.0)),
    ("LeftForeArm", "LeftArm", (0.0, -28.0, 0.0)),
    ("LeftHand", "LeftForeArm", (0.0, -25.0, 0.0)),
    ("LeftHand_end", "LeftHand", (0.0, -12.0, 0.0)),
    ("RightShoulder", "Chest", (-4.0, 18.0, 0.0)),
    ("RightArm", "RightShoulder", (-13.0, 0.0, 0.0)),
    ("RightForeArm", "RightArm", (0.0, -28.0, 0.0)),
    ("RightHand", "RightForeArm", (0.0, -25.0, 0.0)),
    ("RightHand_end", "RightHand", (0.0, -12.0, 0.0)),
    ("LeftUpLeg", "Hips", (9.0, -4.0, 0.0)),
    ("LeftLeg", "LeftUpLeg", (0.0, -42.0, 0.0)),
    ("LeftFoot", "LeftLeg", (0.0, -41.0, 0.0)),
    ("LeftFoot_end", "LeftFoot", (0.0, -6.0, 14.0)),
    ("RightUpLeg", "Hips", (-9.0, -4.0, 0.0)),
    ("RightLeg", "RightUpLeg", (0.0, -42.0, 0.0)),
    ("RightFoot", "RightLeg", (0.0, -41.0, 0.0)),
    ("RightFoot_end", "RightFoot", (0.0, -6.0, 14.0)),
)
JOINT_NAMES = tuple(name for name, _, _ in SKELETON)
PARENTS = tuple(-1 if parent is None else JOINT_NAMES.index(parent) for _, parent, _ in SKELETON)
OFFSETS = np.array([offset for _, _, offset in SKELETON])
IS_END_SITE = tuple(name.endswith("_end") for name in JOINT_NAMES)
HIP_HEIGHT = 95.0


def synthetic_pose(frames: int, fps: float) -> tuple[np.ndarray, dict[str, Rotation]]:
    """The dance: root positions (frames, 3) and each channelled joint's local rotation (frames,)."""
    time = np.arange(frames) / fps
    phase = 2 * math.pi * time / 2.0  # a two-second step cycle
    sway, step = np.sin(phase), np.sin(2 * phase)
    root = np.stack([30 * np.sin(phase / 2), HIP_HEIGHT - 3 + 2 * np.cos(2 * phase), 15 * sway], axis=1)
    degrees = {  # (z, x, y) angles in degrees per joint, applied intrinsically as Z, X, Y
        "Hips": (5 * sway, 4 * step, 25 * np.sin(phase / 2)),
        "Spine": (3 * sway, 5 + 3 * step, 12 * sway),
        "Chest": (-4 * sway, 2 * step, 8 * sway),
        "Neck": (2 * sway, 5 * step, -6 * sway),
        "Head": (4 * sway, -6 * step, 10 * sway),
        "LeftShoulder": (5 + 5 * sway, 0 * sway, 0 * sway),
        "LeftArm": (20 + 30 * (1 + sway), 25 * np.cos(phase), 10 * sway),
        "LeftForeArm": (10 * sway, -40 - 30 * (1 + sway) / 2, 0 * sway),
        "LeftHand": (10 * step, -10 * sway, 0 * sway),
        "RightShoulder": (-5 + 5 * sway, 0 * sway, 0 * sway),
        "RightArm": (-20 - 30 * (1 - sway), -25 * np.cos(phase), -10 * sway),
        "RightForeArm": (-10 * sway, -40 - 30 * (1 - sway) / 2, 0 * sway),
        "RightHand": (-10 * step, 10 * sway, 0 * sway),
        "LeftUpLeg": (3 * sway, -25 * np.sin(phase), 5 * sway),
        "LeftLeg": (0 * sway, 35 * (1 + np.sin(phase + 1)) / 2, 0 * sway),
        "LeftFoot": (0 * sway, -10 * sway, 0 * sway),
        "RightUpLeg": (-3 * sway, 25 * np.sin(phase), -5 * sway),
        "RightLeg": (0 * sway, 35 * (1 - np.sin(phase + 1)) / 2, 0 * sway),
        "RightFoot": (0 * sway, 10 * sway, 0 * sway),
    }
    rotations = {name: Rotation.from_euler("ZXY", np.stack(angles, axis=1), degrees=True)
                 for name, angles in degrees.items()}
    return root, rotations


def synthetic_positions(frames: int, fps: float) -> np.ndarray:
    """(frames, joints, 3) world positions of the dance, End Sites included, in SKELETON order.

    Computed with scipy rotations, independently of dancenet.ingest.bvh.forward_kinematics.
    """
    root, rotations = synthetic_pose(frames, fps)
    positions = np.zeros((frames, len(JOINT_NAMES), 3))
    world: list[Rotation | None] = [None] * len(JOINT_NAMES)
    for joint, (name, parent, offset) in enumerate(SKELETON):
        local = rotations.get(name, Rotation.identity(frames))
        if parent is None:
            positions[:, joint] = root + np.asarray(offset)
            world[joint] = local
        else:
            parent_index = JOINT_NAMES.index(parent)
            positions[:, joint] = positions[:, parent_index] + world[parent_index].apply(np.asarray(offset))
            world[joint] = world[parent_index] * local
    return positions


def bvh_text(frames: int = 240, fps: float = 60, channel_order: str = "ZXY",
             root_channels: tuple[str, ...] | None = None, frame_time: float | None = None,
             newline: str = "\n") -> str:
    """The dance as BVH text.

    channel_order: the rotation order written for every joint (e.g. "ZXY": Zrotation Xrotation
        Yrotation), the Euler angles converted so the pose is the same whatever the order.
    root_channels: the root's six channel names in any order (default: positions, then rotations).
    frame_time: what the header says (default 1 / fps).
    """
    order = channel_order.upper()
    rotation_channels = tuple(f"{axis}rotation" for axis in order)
    if root_channels is None:
        root_channels = ("Xposition", "Yposition", "Zposition") + rotation_channels
    root, rotations = synthetic_pose(frames, fps)

    lines, columns = ["HIERARCHY"], []
    depth_stack: list[str] = []
    for joint, (name, parent, offset) in enumerate(SKELETON):
        while depth_stack and depth_stack[-1] != parent:
            depth_stack.pop()
            lines.append("  " * len(depth_stack) + "}")
        indent = "  " * len(depth_stack)
        if name.endswith("_end"):
            lines.append(f"{indent}End Site")
        else:
            lines.append(f"{indent}{'ROOT' if parent is None else 'JOINT'} {name}")
        lines.append(f"{indent}{{")
        lines.append(f"{indent}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if not name.endswith("_end"):
            channels = root_channels if parent is None else rotation_channels
            lines.append(f"{indent}  CHANNELS {len(channels)} {' '.join(channels)}")
            angles = rotations[name].as_euler(order, degrees=True)  # intrinsic, in file order
            for channel in channels:
                axis = "XYZ".index(channel[0])
                if channel.endswith("position"):
                    columns.append(root[:, axis])
                else:
                    columns.append(angles[:, order.index(channel[0])])
        depth_stack.append(name)
    while depth_stack:
        depth_stack.pop()
        lines.append("  " * len(depth_stack) + "}")
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time if frame_time else 1 / fps:.8f}"]
    values = np.stack(columns, axis=1)
    lines += [" ".join(f"{value:.10f}" for value in row) for row in values]
    return newline.join(lines) + newline


def write_synthetic_bvh(path: str | Path, frames: int = 240, fps: float = 60, channel_order: str = "ZXY",
                        root_channels: tuple[str, ...] | None = None, frame_time: float | None = None,
                        newline: str = "\n") -> Path:
    """Write :func:`bvh_text` to ``path``; returns the path."""
    path = Path(path)
    with open(path, "w", newline="") as file:
        file.write(bvh_text(frames, fps, channel_order, root_channels, frame_time, newline))
    return path


def render_synthetic_dancer(frames: int, height: int, width: int, fps: float = 30,
                            view: str = "front") -> np.ndarray:
    """(frames, height, width) bool silhouettes of the synthetic dancer, by dancenet's renderer."""
    from dancenet.ingest.render import render_silhouettes

    positions = synthetic_positions(frames, fps)
    masks = render_silhouettes(positions, PARENTS, JOINT_NAMES, height, width, view=view)
    return np.stack(list(masks))
