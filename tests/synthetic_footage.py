"""Synthetic footage of one dancer in a room, for the person segmenter and framing tests.

MediaPipe does not take a white capsule silhouette for a person, so the rendered dancer
(``render_synthetic_dancer``) is dressed: a face with eyes and hair, a red top, dark trousers,
black shoes. The room has a wall, a floor, a picture and a static chair-like object.
"""

from __future__ import annotations

import av
import numpy as np
from PIL import Image, ImageDraw

from tests.synthetic import render_synthetic_dancer

SKIN, TOP, TROUSERS, SHOES, HAIR = (224, 182, 150), (200, 40, 50), (40, 50, 90), (20, 20, 20), (40, 25, 15)


def room(height: int, width: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A static room, (height, width, 3) float32, and where its distractor object is, (H, W) bool."""
    rows, columns = np.mgrid[:height, :width]
    backdrop = np.empty((height, width, 3), np.float32)
    backdrop[:] = (196, 178, 150)
    backdrop[rows > 0.72 * height] = (150, 120, 90)  # the floor
    backdrop += 12 * np.sin(columns / 9.0)[..., None] * (rows <= 0.72 * height)[..., None]  # wallpaper
    backdrop[int(0.2 * height):int(0.4 * height), int(0.06 * width):int(0.2 * width)] = (90, 110, 140)
    chair = np.zeros((height, width), bool)  # a chair: seat, back and legs, right of the stage
    left, seat = int(0.84 * width), int(0.62 * height)
    chair[seat:seat + 6, left:left + 40] = True
    chair[seat - 45:seat, left + 34:left + 40] = True
    chair[seat:int(0.8 * height), left:left + 5] = True
    chair[seat:int(0.8 * height), left + 35:left + 40] = True
    backdrop[chair] = (70, 45, 30)
    backdrop += generator.normal(0, 3, backdrop.shape).astype(np.float32)
    return backdrop, chair


def dress(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paint the dancer ``mask`` onto ``frame`` (H, W, 3) float32 as a clothed person: uint8 RGB."""
    rows = np.arange(mask.shape[0])[:, None]
    found = np.flatnonzero(mask.any(axis=1))
    top, bottom = found[0], found[-1]
    band = (rows - top) / max(1, bottom - top)
    colour = np.where((band < 0.13)[..., None], np.float32(SKIN),
                      np.where((band < 0.5)[..., None], np.float32(TOP),
                               np.where((band < 0.95)[..., None], np.float32(TROUSERS), np.float32(SHOES))))
    image = Image.fromarray(np.clip(np.where(mask[..., None], colour, frame), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    height = bottom - top
    head = mask[top:top + max(2, int(0.05 * height))]
    columns = np.flatnonzero(head.any(axis=0))
    centre, half = (columns[0] + columns[-1]) / 2, max(3.0, (columns[-1] - columns[0]) / 2)
    half = min(half, 0.05 * height)
    eyes = top + 0.06 * height
    draw.pieslice([centre - half, top - 1, centre + half, top + 0.07 * height], 180, 360, fill=HAIR)
    for side in (-0.35, 0.35):
        draw.ellipse([centre + side * half - 1.5, eyes - 1.5, centre + side * half + 1.5, eyes + 1.5],
                     fill=(30, 20, 20))
    return np.asarray(image)


def dancer_in_room(frames: int, height: int, width: int, seed: int = 0, travel: float = 0.25,
                   figure_height: float = 0.5):
    """(frames, H, W, 3) uint8 video of the dressed dancer crossing ``travel`` of the room's width,
    her (frames, H, W) bool masks, and the distractor's (H, W) bool mask."""
    generator = np.random.default_rng(seed)
    backdrop, chair = room(height, width, generator)
    stage_height = int(height * figure_height / 0.8)
    stage_width = int(stage_height * 1.1)
    dancer = render_synthetic_dancer(frames, stage_height, stage_width)
    masks = np.zeros((frames, height, width), bool)
    top = int(0.8 * height) - int(0.9 * stage_height)  # feet on the floor
    start = int(0.05 * width)
    for index, offset in enumerate(np.linspace(start, start + travel * width, frames).round().astype(int)):
        region = masks[index, max(0, top):top + stage_height, offset:offset + stage_width]
        region |= dancer[index][max(0, -top):max(0, -top) + region.shape[0], :region.shape[1]]
    video = np.stack([dress(backdrop, mask) for mask in masks])
    return video, masks, chair


def place(dancer: np.ndarray, height: int, width: int, top: int, offsets) -> np.ndarray:
    """(frames, height, width) bool: the (frames, h, w) ``dancer`` at ``top`` and per-frame
    horizontal ``offsets`` (may reach past the edges)."""
    masks = np.zeros((len(dancer), height, width), bool)
    stage_height, stage_width = dancer.shape[1:]
    for index, offset in enumerate(offsets):
        left, right = max(0, offset), min(width, offset + stage_width)
        if right <= left:
            continue
        masks[index, max(0, top):top + stage_height, left:right] = \
            dancer[index, max(0, -top):max(0, -top) + min(stage_height, height - max(0, top)),
                   left - offset:right - offset]
    return masks


def two_in_room(frames: int, height: int, width: int, seed: int = 0, other_scale: float = 1.3):
    """The dressed dancer near the centre and a second person, ``other_scale`` times her size
    (nearer the camera, so MediaPipe would rather pick them), walking at the left edge:
    (frames, H, W, 3) uint8 video, her masks and the other person's, (frames, H, W) bool each."""
    generator = np.random.default_rng(seed)
    backdrop, _ = room(height, width, generator)
    stage_height = int(height * 0.5 / 0.8)
    stage_width = int(stage_height * 1.1)
    dancer = render_synthetic_dancer(frames + 20, stage_height, stage_width)
    top = int(0.8 * height) - int(0.9 * stage_height)
    centre = width // 2 - stage_width // 2
    hers = place(dancer[:frames], height, width, top, np.linspace(centre, centre + 0.04 * width, frames).astype(int))
    other_height = int(stage_height * other_scale)
    other_dancer = render_synthetic_dancer(frames + 20, other_height, int(other_height * 1.1))[20:]
    walking = np.linspace(-0.06 * width, 0.09 * width, frames).astype(int)
    other = place(other_dancer, height, width, int(0.85 * height) - int(0.9 * other_height), walking)
    video = np.stack([dress(dress(backdrop, a).astype(np.float32), b) if b.any() else dress(backdrop, a)
                      for a, b in zip(hers, other)])
    return video, hers, other


def empty_room(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(frames, H, W, 3) uint8: the room alone, with sensor noise and a lamp that flickers."""
    generator = np.random.default_rng(seed)
    backdrop, _ = room(height, width, generator)
    flicker = 1 + 0.03 * np.sin(np.arange(frames) * 1.3)[:, None, None, None]
    noise = generator.normal(0, 2, (frames, height, width, 3))
    return np.clip(backdrop[None] * flicker + noise, 0, 255).astype(np.uint8)


def write_video(path, frames: np.ndarray, fps: float = 30, codec: str = "libx264", crf: int = 14):
    """Encode (T, H, W, 3) uint8 RGB frames (x264 at ``crf``, yuv420p); returns ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path
