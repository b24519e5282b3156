"""Synthetic dancers for the evaluation tests: a stick figure of thick limbs drawn with PIL.

Joint angles follow sums of sinusoids with incommensurate frequencies and a random phase per
seed, so a clip never repeats within a test's length, moves every frame, and is one connected body.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def dancer_video(frames: int, height: int = 60, width: int = 104, seed: int = 0, fps: float = 30.0) -> np.ndarray:
    """(frames, height, width) bool silhouettes of a dancing stick figure."""
    random = np.random.default_rng(seed)
    phases = random.uniform(0, 2 * np.pi, size=(8, 3))
    frequencies = np.array([0.53, 0.91, 1.37]) * random.uniform(0.8, 1.2, size=(8, 1))
    unit = height / 12
    thickness = max(2, int(round(unit * 0.9)))
    result = np.zeros((frames, height, width), dtype=bool)
    for index in range(frames):
        time = index / fps
        angle = (np.sin(2 * np.pi * frequencies * time + phases) * np.array([0.9, 0.5, 0.3])).sum(axis=1)
        hip_x = width / 2 + width * 0.18 * np.sin(2 * np.pi * 0.13 * time + phases[0, 0])
        hip_y = height * 0.6 + unit * 0.3 * np.sin(2 * np.pi * 1.1 * time)
        neck = (hip_x + 3.5 * unit * np.sin(angle[0] * 0.3), hip_y - 3.5 * unit * np.cos(angle[0] * 0.3))
        image = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(image)

        def limb(start, base_angle, upper, lower, first, second):
            elbow = (start[0] + upper * np.sin(base_angle + first), start[1] + upper * np.cos(base_angle + first))
            hand = (elbow[0] + lower * np.sin(base_angle + first + second),
                    elbow[1] + lower * np.cos(base_angle + first + second))
            draw.line([start, elbow, hand], fill=255, width=thickness, joint="curve")

        draw.line([(hip_x, hip_y), neck], fill=255, width=int(thickness * 1.8))
        radius = unit * 0.9
        head = (neck[0], neck[1] - radius)
        draw.ellipse([head[0] - radius, head[1] - radius, head[0] + radius, head[1] + radius], fill=255)
        limb(neck, 0.9, 1.8 * unit, 1.6 * unit, angle[1], angle[2])
        limb(neck, -0.9, 1.8 * unit, 1.6 * unit, angle[3], angle[4])
        limb((hip_x, hip_y), 0.25, 2.2 * unit, 2.0 * unit, angle[5] * 0.6, abs(angle[6]) * 0.5)
        limb((hip_x, hip_y), -0.25, 2.2 * unit, 2.0 * unit, angle[7] * 0.6, -abs(angle[6]) * 0.5)
        result[index] = np.asarray(image) > 127
    return result
