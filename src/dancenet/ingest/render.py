"""Silhouettes of a skeleton: bones as filled tapered capsules, a torso, a head, a fixed camera.

How a clip is seen:

- **Up** is the Y axis (the BVH convention).
- **Which way is front.** Joints that come in left/right pairs (hips, shoulders...) give, per
  frame, a horizontal "left minus right" vector. The image's horizontal axis is the principal
  axis of these vectors over the whole clip (sign-free, so a dancer's turns do not cancel out),
  oriented along the dancer's average left. So ``front`` is the fixed view in which the body looks
  widest most of the time, the dancer's left on the image's right; ``side`` looks 90 degrees from
  it. Skeletons without recognisable left/right names are viewed along -Z (BVH figures face +Z).
- **Camera** (orthographic, fixed per clip): scale such that the median per-frame figure height
  (joints plus the body's thickness) is 80% of the frame height, centred on the clip's full
  extent. If the dancer's travel would leave the frame at that scale, the scale shrinks just
  enough to fit the whole clip: the figure as large as possible and never cut off.
- **Body.** Every joint gets a thickness from its name (torso and hips wide, limbs thinner, hands
  and feet small; :data:`PART_RADIUS`) as a fraction of the figure's height, so skeletons in any
  unit render alike; unknown names get a limb's thickness, or a torso's where three or more bones
  branch. Each bone is a capsule tapering from its parent's thickness to its child's, the head an
  ellipse, and when shoulders and hips are recognised, the quadrilateral between them fills the
  torso (which capsules along the spine alone draw as a tube).

Drawing uses PIL polygons and ellipses on a 1-bit image: a few thousand frames a second at 208x120
on one core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw

UP_AXIS = 1
FIGURE_FRACTION = 0.8   # standing figure height / frame height
MARGIN_PIXELS = 2.0     # rows and columns kept clear at the frame's border

# Body thickness (radius) at a joint, by the part that starts there, as a fraction of the
# figure's height (its joints' vertical extent: feet to eyes or head top).
PART_RADIUS = {
    "pelvis": 0.075,
    "torso": 0.07,
    "neck": 0.032,
    "head": 0.032,       # at the head joint itself (the top of the neck); the skull is HEAD_RADII
    "clavicle": 0.036,
    "upper_arm": 0.036,
    "forearm": 0.028,
    "hand": 0.024,
    "finger": 0.011,
    "thigh": 0.058,
    "shin": 0.04,
    "foot": 0.03,
    "limb": 0.035,
    "branch": 0.07,
}
HEAD_RADII = (0.058, 0.074)  # (across, up): the skull, an ellipse a little taller than wide
END_SITE_TAPER = 0.7         # an End Site (finger, toe tip) is thinner than the joint before it

# Checked in order: the first part whose pattern occurs in the lower-cased joint name wins.
_PART_PATTERNS = (
    ("finger", r"thumb|index|middle|mid\d|ring|pinky|finger|carpal"),
    ("forearm", r"forearm|lowerarm|elbow|ulna|radius"),
    ("hand", r"hand|wrist|palm"),
    ("head", r"head|eye|skull|jaw|nose"),
    ("neck", r"neck"),
    ("clavicle", r"collar|clavicle|shoulder|scapula"),
    ("upper_arm", r"shldr|upperarm|humerus|arm"),
    ("foot", r"foot|ankle|toe|heel"),
    ("thigh", r"thigh|upleg|upperleg|femur|buttock"),
    ("shin", r"shin|knee|calf|tibia|lowerleg|leg"),
    ("pelvis", r"^(hips?|pelvis|root)$|pelvis"),
    ("torso", r"spine|chest|abdomen|torso|back|belly|waist|hip|thorax"),
)
_TRUNK_PARTS = {"pelvis", "torso"}
_LIMB_ROOT_PARTS = {"clavicle", "upper_arm", "thigh"}
_SIDE_PATTERNS = (  # a side marker and the rest of the name, e.g. lThigh, LeftUpLeg, hand.R
    re.compile(r"^(?P<side>left|right)[ _.]?(?P<base>.+)$", re.IGNORECASE),
    re.compile(r"^(?P<base>.+?)[ _.]?(?P<side>left|right)$", re.IGNORECASE),
    re.compile(r"^(?P<side>[lLrR])(?=[A-Z_.])[_.]?(?P<base>.+)$"),
    re.compile(r"^(?P<base>.+?)[_.](?P<side>[lLrR])$"),
)


def body_part(name: str) -> str | None:
    """The body part a joint's name suggests (a key of :data:`PART_RADIUS`), or None."""
    lower = name.lower()
    if lower.endswith("_end"):
        lower = lower[:-4]
    for part, pattern in _PART_PATTERNS:
        if re.search(pattern, lower):
            return part
    return None


def side_of(name: str) -> tuple[str, str] | None:
    """``("left" | "right", base name)`` when the name marks a side, else None."""
    for pattern in _SIDE_PATTERNS:
        match = pattern.match(name)
        if match:
            side = "left" if match.group("side").lower().startswith("l") else "right"
            return side, match.group("base").lower()
    return None


def _paired_joints(joint_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Base name -> {"left": joint, "right": joint} for names marked with a side."""
    sides: dict[str, dict[str, int]] = {}
    for joint, name in enumerate(joint_names):
        marked = side_of(name)
        if marked:
            sides.setdefault(marked[1], {}).setdefault(marked[0], joint)
    return {base: pair for base, pair in sides.items() if len(pair) == 2}


@dataclass(frozen=True, eq=False)
class Figure:
    """How to draw one skeleton, in units of the figure's height.

    bones: (bones, 2) int joint indices (parent, child), each drawn as a tapered capsule.
    bone_radii: (bones, 2) float thickness at the parent's and at the child's end.
    head: the head joint (top of the neck), or -1; the skull is an ellipse of ``HEAD_RADII``
        centred halfway between it and the mean of ``head_children``.
    torso: joint indices (left shoulder, right shoulder, right hip, left hip), or () if unknown.
    """

    bones: np.ndarray
    bone_radii: np.ndarray
    head: int
    head_children: tuple[int, ...]
    torso: tuple[int, ...]


def build_figure(parents: Sequence[int], joint_names: Sequence[str]) -> Figure:
    """Classify every joint and bone of a skeleton by the joint names (see the module docstring)."""
    parents = np.asarray(parents, dtype=np.int64)
    joint_count = len(parents)
    parts = [body_part(name) for name in joint_names]
    children = [np.flatnonzero(parents == joint) for joint in range(joint_count)]
    radius = np.empty(joint_count)
    for joint in range(joint_count):  # parents come before their children
        part = parts[joint]
        if len(children[joint]) == 0 and parents[joint] >= 0:
            radius[joint] = END_SITE_TAPER * radius[parents[joint]]
        elif part is None:
            radius[joint] = PART_RADIUS["branch" if len(children[joint]) >= 3 else "limb"]
        else:
            radius[joint] = PART_RADIUS[part]

    heads = [joint for joint in range(joint_count)
             if parts[joint] == "head" and (parents[joint] < 0 or parts[parents[joint]] != "head")]
    head = heads[0] if heads else -1
    in_head = np.zeros(joint_count, dtype=bool)
    if head >= 0:
        for joint in range(joint_count):
            in_head[joint] = joint == head or (parents[joint] >= 0 and in_head[parents[joint]])

    bones, radii = [], []
    for child in range(joint_count):
        parent = parents[child]
        if parent < 0 or in_head[parent]:
            continue  # the skull's inner segments (eyes, head top) are drawn as the head ellipse
        start, end = radius[parent], radius[child]
        if parts[parent] in _TRUNK_PARTS and parts[child] in _LIMB_ROOT_PARTS:
            start = end  # a limb's root bone across the trunk keeps the limb's thickness
        bones.append((int(parent), child))
        radii.append((start, end))
    return Figure(np.array(bones, dtype=np.int64).reshape(-1, 2), np.array(radii).reshape(-1, 2),
                  head, tuple(int(child) for child in children[head]) if head >= 0 else (),
                  _torso_corners(parents, parts, joint_names))


def _torso_corners(parents: np.ndarray, parts: list, joint_names: Sequence[str]) -> tuple[int, ...]:
    """(left shoulder, right shoulder, right hip, left hip): the joints where the upper arms and
    thighs start, i.e. the parents of the first forearm and shin joints on each side."""
    corners = {}
    for joint, name in enumerate(joint_names):
        marked = side_of(name)
        if marked is None or parents[joint] < 0:
            continue
        for part, corner in (("forearm", "shoulder"), ("shin", "hip")):
            if parts[joint] == part and parts[parents[joint]] != part:
                corners.setdefault((marked[0], corner), int(parents[joint]))
    order = [("left", "shoulder"), ("right", "shoulder"), ("right", "hip"), ("left", "hip")]
    if all(key in corners for key in order):
        return tuple(corners[key] for key in order)
    return ()


def lateral_axis(positions: np.ndarray, joint_names: Sequence[str]) -> np.ndarray:
    """The clip's horizontal left axis: a (3,) unit vector with no Y component.

    positions: (frames, joints, 3) float. See the module docstring for how it is chosen.
    """
    pairs = [(pair["left"], pair["right"]) for pair in _paired_joints(joint_names).values()]
    trunk = [(left, right) for left, right in pairs
             if body_part(joint_names[left]) in ("thigh", "clavicle", "upper_arm", "pelvis", "torso")]
    pairs = trunk or pairs
    if not pairs:
        return np.array([1.0, 0.0, 0.0])
    left = positions[:, [left for left, _ in pairs]].mean(axis=1)
    right = positions[:, [right for _, right in pairs]].mean(axis=1)
    horizontal = (left - right)[:, [0, 2]]  # (frames, 2): x and z
    covariance = horizontal.T @ horizontal
    if not np.isfinite(covariance).all() or np.trace(covariance) <= 1e-12:
        return np.array([1.0, 0.0, 0.0])
    _, vectors = np.linalg.eigh(covariance)
    axis = vectors[:, -1]
    if (horizontal @ axis).sum() < 0:
        axis = -axis
    return np.array([axis[0], 0.0, axis[1]])


@dataclass(frozen=True, eq=False)
class Camera:
    """An orthographic camera: world point -> pixel ``(x, y)``, Y up.

    pixel x = (width - 1) / 2 + scale * (dot(point, horizontal) - center[0])
    pixel y = (height - 1) / 2 - scale * (point[1] - center[1])

    Pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5]`` (PIL's convention).
    """

    horizontal: np.ndarray   # (3,) unit vector: the image's rightward direction in the world
    center: tuple[float, float]
    scale: float             # pixels per world unit
    height: int
    width: int

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) float pixel coordinates (x right, y down)."""
        across = points @ self.horizontal
        x = (self.width - 1) / 2 + self.scale * (across - self.center[0])
        y = (self.height - 1) / 2 - self.scale * (points[..., UP_AXIS] - self.center[1])
        return np.stack([x, y], axis=-1)


def head_centres(positions: np.ndarray, figure: Figure) -> np.ndarray:
    """(frames, 3): halfway between the head joint and the mean of its children."""
    head = positions[:, figure.head]
    if not figure.head_children:
        return head
    return 0.5 * (head + positions[:, list(figure.head_children)].mean(axis=1))


def figure_unit(positions: np.ndarray) -> float:
    """The figure's size: median over frames of the joints' vertical extent (world units)."""
    vertical = positions[..., UP_AXIS]
    extent = float(np.median(vertical.max(axis=1) - vertical.min(axis=1)))
    if not extent > 0:  # a flat or single-joint skeleton: fall back to its overall size
        extent = float(np.ptp(positions.reshape(-1, 3), axis=0).max()) or 1.0
    return extent


def _joint_radii(figure: Figure, joint_count: int) -> np.ndarray:
    """(joints,) the largest bone thickness at each joint: the discs that round the capsules."""
    radii = np.zeros(joint_count)
    np.maximum.at(radii, figure.bones[:, 0], figure.bone_radii[:, 0])
    np.maximum.at(radii, figure.bones[:, 1], figure.bone_radii[:, 1])
    return radii


def fit_camera(positions: np.ndarray, parents: Sequence[int], joint_names: Sequence[str],
               height: int, width: int, view: str = "front") -> tuple[Camera, Figure, float]:
    """Choose the clip's fixed camera (see the module docstring).

    positions: (frames, joints, 3) float world positions, Y up.
    Returns (camera, figure, unit): unit is the figure height that :class:`Figure` radii scale by.
    """
    if view not in ("front", "side"):
        raise ValueError(f"view must be 'front' or 'side', not {view!r}")
    positions = np.asarray(positions, dtype=np.float64)
    figure = build_figure(parents, joint_names)
    unit = figure_unit(positions)
    left = lateral_axis(positions, joint_names)
    horizontal = left if view == "front" else np.array([-left[2], 0.0, left[0]])

    # Capsules are convex hulls of their end discs, so discs bound the drawing.
    radii = _joint_radii(figure, positions.shape[1])
    used = np.flatnonzero(radii > 0)
    across = positions[:, used] @ horizontal
    up = positions[:, used, UP_AXIS]
    low_across, high_across = across - radii[used] * unit, across + radii[used] * unit
    low_up, high_up = up - radii[used] * unit, up + radii[used] * unit
    if figure.head >= 0:
        head = head_centres(positions, figure)
        head_across, head_up = head @ horizontal, head[:, UP_AXIS]
        radius_across, radius_up = HEAD_RADII[0] * unit, HEAD_RADII[1] * unit
        low_across = np.column_stack([low_across, head_across - radius_across])
        high_across = np.column_stack([high_across, head_across + radius_across])
        low_up = np.column_stack([low_up, head_up - radius_up])
        high_up = np.column_stack([high_up, head_up + radius_up])
    low_across, high_across = low_across.min(axis=1), high_across.max(axis=1)
    low_up, high_up = low_up.min(axis=1), high_up.max(axis=1)

    standing = float(np.median(high_up - low_up))
    usable_width, usable_height = width - 1 - 2 * MARGIN_PIXELS, height - 1 - 2 * MARGIN_PIXELS
    scale = min(FIGURE_FRACTION * height / standing,
                usable_width / max(high_across.max() - low_across.min(), 1e-12),
                usable_height / max(high_up.max() - low_up.min(), 1e-12))
    center = (float(low_across.min() + high_across.max()) / 2, float(low_up.min() + high_up.max()) / 2)
    return Camera(horizontal, center, scale, height, width), figure, unit


def render_silhouettes(positions: np.ndarray, parents: Sequence[int], joint_names: Sequence[str],
                       height: int, width: int, view: str = "front") -> Iterator[np.ndarray]:
    """Draw a clip of skeleton poses as silhouettes, lazily, one frame at a time.

    positions: (frames, joints, 3) float world positions, Y up.
    parents: (joints,) int, -1 for a root. joint_names: (joints,) names, used for thickness.
    Yields (height, width) bool masks, True on the dancer. The camera is fixed on this call
    (it looks at all frames), the drawing happens as frames are taken.
    """
    camera, figure, unit = fit_camera(positions, parents, joint_names, height, width, view)
    positions = np.asarray(positions, dtype=np.float64)
    pixels = camera.project(positions)                                   # (frames, joints, 2)

    # Each capsule's side polygon: both ends offset along the bone's normal by their radius.
    start, end = pixels[:, figure.bones[:, 0]], pixels[:, figure.bones[:, 1]]  # (frames, bones, 2)
    direction = end - start
    length = np.linalg.norm(direction, axis=-1, keepdims=True)
    normal = np.stack([-direction[..., 1], direction[..., 0]], axis=-1) / np.maximum(length, 1e-9)
    radius = figure.bone_radii * unit * camera.scale                          # (bones, 2) pixels
    start_offset, end_offset = normal * radius[:, :1], normal * radius[:, 1:]
    polygons = np.stack([start + start_offset, end + end_offset, end - end_offset,
                         start - start_offset], axis=2)                # (frames, bones, 4, 2)

    joint_radius = _joint_radii(figure, positions.shape[1]) * unit * camera.scale
    discs = np.flatnonzero(joint_radius >= 0.5)  # thinner than a pixel: the polygon alone shows it
    disc_boxes = np.concatenate([pixels[:, discs] - joint_radius[discs, None],
                                 pixels[:, discs] + joint_radius[discs, None]], axis=-1)
    if figure.head >= 0:
        head = camera.project(head_centres(positions, figure))                # (frames, 2)
        head_radius = np.array(HEAD_RADII) * unit * camera.scale
        head_boxes = np.concatenate([head - head_radius, head + head_radius], axis=-1)  # (frames, 4)
    else:
        head_boxes = None
    torso = pixels[:, list(figure.torso)] if figure.torso else None          # (frames, 4, 2)
    return _draw_frames(polygons, disc_boxes, head_boxes, torso, height, width)


def _draw_frames(polygons, disc_boxes, head_boxes, torso, height, width) -> Iterator[np.ndarray]:
    for frame in range(len(polygons)):
        image = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(image)
        if torso is not None:
            draw.polygon(torso[frame].ravel().tolist(), fill=1)
        for polygon in polygons[frame].reshape(-1, 8).tolist():
            draw.polygon(polygon, fill=1)
        for box in disc_boxes[frame].tolist():
            draw.ellipse(box, fill=1)
        if head_boxes is not None:
            draw.ellipse(head_boxes[frame].tolist(), fill=1)
        # PIL stores a "1" pixel as byte 255; compare so the bools are canonical 0/1 bytes.
        yield np.asarray(image, dtype=bool).view(np.uint8) != 0
