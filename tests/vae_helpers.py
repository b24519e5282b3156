"""Tiny synthetic silhouette datasets for the VAE tests (a blob figure that moves)."""

from __future__ import annotations

import numpy as np

from dancenet.dataset import DatasetWriter


def figure_masks(count: int, height: int, width: int, phase: float = 0.0) -> np.ndarray:
    """(count, height, width) bool: a head, a body and two swinging arms drifting sideways."""
    rows, columns = np.mgrid[0:height, 0:width]
    masks = np.zeros((count, height, width), dtype=bool)
    for index in range(count):
        angle = phase + 0.35 * index
        centre_x = width * (0.5 + 0.2 * np.sin(angle * 0.5))
        head_y, body_top, body_bottom = 0.2 * height, 0.3 * height, 0.75 * height
        head = (rows - head_y) ** 2 + (columns - centre_x) ** 2 <= (0.1 * height) ** 2
        body = (np.abs(columns - centre_x) <= 0.08 * width) & (rows >= body_top) & (rows <= body_bottom)
        arms = np.zeros_like(head)
        for side in (-1, 1):
            tip_x = centre_x + side * 0.25 * width * np.cos(angle)
            tip_y = body_top + 0.25 * height * np.sin(angle * side)
            for t in np.linspace(0, 1, 12):
                x = centre_x + t * (tip_x - centre_x)
                y = body_top + t * (tip_y - body_top)
                arms |= (rows - y) ** 2 + (columns - x) ** 2 <= (0.05 * height) ** 2
        masks[index] = head | body | arms
    return masks


def make_dataset(path, height: int = 32, width: int = 48, clips: int = 3, frames: int = 40,
                 fps: float = 30.0):
    """Write a dataset of ``clips`` clips of ``frames`` frames; returns its path."""
    with DatasetWriter(path, height, width, fps) as writer:
        for clip in range(clips):
            writer.add_clip(f"take{clip}", "synthetic", "threshold",
                            figure_masks(frames, height, width, phase=clip * 1.3), fps)
    return path
