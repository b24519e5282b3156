"""Contact sheets: many frames tiled on one image, for reports and `dancenet preview`."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_file
from .errors import input_error

GRID_COLOUR = (90, 90, 110)
LABEL_COLOUR = (255, 210, 64)


def _to_grey(frames: np.ndarray) -> np.ndarray:
    """bool, {0,1} uint8, 0..255 uint8 or floats in [0,1] -> uint8 0..255 (nonzero dancer = white)."""
    frames = np.asarray(frames)
    if frames.dtype == bool:
        return frames.astype(np.uint8) * 255
    if np.issubdtype(frames.dtype, np.floating):
        return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    if frames.size and frames.max() <= 1:
        return frames.astype(np.uint8) * 255
    return np.clip(frames, 0, 255).astype(np.uint8)


def contact_sheet(frames: np.ndarray, columns: int, labels: Sequence[str] | None = None,
                  scale: int = 1, grid: int = 1) -> Image.Image:
    """Tile frames row by row into one RGB image with thin grid lines between tiles.

    frames: (n, H, W) bool, uint8 ({0,1} or 0..255) or float in [0, 1]; dancer white on black.
    columns: tiles per row (the last row may be short; its empty tiles stay grid-coloured).
    labels: optional text per tile (n strings; None or "" for no label), drawn top-left.
    scale: integer upsampling of each tile (nearest neighbour, so silhouettes stay crisp).
    grid: width in pixels of the lines between and around tiles.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or len(frames) == 0:
        raise ValueError(f"contact_sheet needs frames of shape (n, H, W) with n >= 1, got {frames.shape}")
    if columns < 1 or scale < 1 or grid < 0:
        raise ValueError("columns and scale must be >= 1 and grid >= 0")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    count, height, width = frames.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    tile_height, tile_width = height * scale, width * scale
    sheet = np.empty((rows * tile_height + (rows + 1) * grid, columns * tile_width + (columns + 1) * grid, 3),
                     dtype=np.uint8)
    sheet[:] = GRID_COLOUR
    grey = _to_grey(frames)
    if scale > 1:
        grey = grey.repeat(scale, axis=1).repeat(scale, axis=2)
    for index in range(count):
        row, column = divmod(index, columns)
        top = grid + row * (tile_height + grid)
        left = grid + column * (tile_width + grid)
        sheet[top:top + tile_height, left:left + tile_width] = grey[index][:, :, None]
    image = Image.fromarray(sheet)
    if labels is not None and any(labels):
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default()
        for index, label in enumerate(labels):
            if not label:
                continue
            row, column = divmod(index, columns)
            x = grid + column * (tile_width + grid) + 2
            y = grid + row * (tile_height + grid) + 1
            box = draw.textbbox((x, y), str(label), font=font)
            # A dark box under the text keeps it readable on a white dancer.
            draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
            draw.text((x, y), str(label), fill=LABEL_COLOUR, font=font)
    return image


def save_contact_sheet(path: str | os.PathLike, frames: np.ndarray, columns: int,
                       labels: Sequence[str] | None = None, scale: int = 1, grid: int = 1) -> None:
    """Write :func:`contact_sheet` to ``path`` (format from the extension, e.g. .png), atomically."""
    if os.path.splitext(os.fspath(path))[1].lower() not in Image.registered_extensions():
        raise input_error(path, "unknown image extension; use .png, .jpg or .gif")
    image = contact_sheet(frames, columns, labels=labels, scale=scale, grid=grid)
    with atomic_file(path) as temporary:
        image.save(temporary)
