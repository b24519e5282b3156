"""Augmentation of VAE training frames: mirrored, zoomed, turned and shifted silhouettes.

A mirrored dancer and a dancer a few pixels off are still plausible frames, and they widen the
poses seen beyond one dancer's few takes. Every draw comes from the generator handed in, so a
resumed run draws the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(frames: torch.Tensor, generator: torch.Generator, flip: bool, shift: int,
            scale: float = 0.0, rotate: float = 0.0) -> torch.Tensor:
    """Randomly mirror each frame left-right, scale each by up to ``scale`` (relative) and rotate
    it by up to ``rotate`` degrees about the frame's centre, then translate the batch by up to
    ``shift`` pixels. Frames stay binary.

    frames: (n, 1, H, W) float; the generator is the step's own, so a resumed run draws the same.
    """
    if flip:
        mirrored = torch.rand(len(frames), generator=generator, device=frames.device) < 0.5
        frames = torch.where(mirrored[:, None, None, None], frames.flip(-1), frames)
    if scale > 0 or rotate > 0:
        frames = _random_affine(frames, generator, scale, rotate)
    if shift > 0:
        dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator, device=frames.device).tolist()
        height, width = frames.shape[-2:]
        shifted = torch.zeros_like(frames)
        shifted[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
            frames[..., max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
        frames = shifted
    return frames


def _random_affine(frames: torch.Tensor, generator: torch.Generator, scale: float,
                   rotate: float) -> torch.Tensor:
    """Each frame zoomed by a factor in [1 - scale, 1 + scale] and turned by an angle in
    [-rotate, rotate] degrees (in pixel space, so a non-square frame is not sheared)."""
    count, (height, width) = len(frames), frames.shape[-2:]
    draws = torch.rand(2, count, generator=generator, device=frames.device) * 2 - 1
    zoom = 1 + scale * draws[0]
    angle = torch.deg2rad(rotate * draws[1])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    zeros = torch.zeros_like(cos)
    # affine_grid maps output to input coordinates normalised to [-1, 1] on each axis
    theta = torch.stack([torch.stack([cos, -sin * height / width, zeros], 1),
                         torch.stack([sin * width / height, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    warped = F.grid_sample(frames.contiguous(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    binary = (warped > 0.5).to(frames.dtype)
    if frames.is_contiguous(memory_format=torch.channels_last):
        binary = binary.contiguous(memory_format=torch.channels_last)
    return binary
