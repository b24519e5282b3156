"""Three measurement songs synthesised with numpy: real drum patterns at clearly different tempi,
with a bass line and chords, so no licence question arises and nothing large enters the repo."""

from __future__ import annotations

import numpy as np

RATE = 44100

# name -> (bpm, steps per beat, kick / snare / hat / percussion patterns over one bar of 16 steps)
SONGS = {
    "boom-bap-84": (84, "x.....x...x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", "................"),
    "salsa-clave-112": (112, "x.......x.......", "......x.......x.", "x.xxx.xxx.xxx.xx", "x..x..x...x.x..."),
    "rock-144": (144, "x.x.....x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", "................"),
}


def _envelope(length: int, decay: float) -> np.ndarray:
    return np.exp(-np.arange(length) / RATE * decay)


def song(name: str, seconds: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """-> (stereo samples (2, n) float32, tempo in bpm)."""
    bpm, kick_pattern, snare_pattern, hat_pattern, percussion_pattern = SONGS[name]
    generator = np.random.default_rng(seed)
    total = int(seconds * RATE)
    mix = np.zeros(total)
    step = 60.0 / bpm / 4
    hit = int(0.3 * RATE)
    time = np.arange(hit) / RATE
    kick = np.sin(2 * np.pi * (45 + 110 * np.exp(-time * 35)) * time) * _envelope(hit, 9)
    snare = (generator.standard_normal(hit) * 0.6 + np.sin(2 * np.pi * 190 * time)) * _envelope(hit, 18)
    hat = np.diff(generator.standard_normal(hit + 1)) * _envelope(hit, 70) * 0.25
    percussion = np.sin(2 * np.pi * 800 * time) * _envelope(hit, 30) * 0.35
    roots = [55.0, 55.0 * 2 ** (5 / 12), 55.0 * 2 ** (7 / 12), 55.0 * 2 ** (3 / 12)]
    for index in range(int(seconds / step)):
        start = int(round(index * step * RATE))
        stop = min(total, start + hit)
        position = index % 16
        sound = np.zeros(hit)
        for pattern, sample, gain in ((kick_pattern, kick, 1.0), (snare_pattern, snare, 0.7),
                                      (hat_pattern, hat, 1.0 if position % 4 else 1.3),
                                      (percussion_pattern, percussion, 1.0)):
            if pattern[position] == "x":
                sound += gain * sample
        if position % 4 == 0:  # bass note on each beat, the bar's root
            root = roots[(index // 16) % 4]
            sound += 0.35 * np.sin(2 * np.pi * root * time) * _envelope(hit, 4)
        mix[start:stop] += sound[:stop - start]
    # a sustained chord per bar, quiet: a song, not only drums
    bar = int(round(16 * step * RATE))
    for first in range(0, total, bar):
        root = roots[(first // bar) % 4] * 4
        length = min(bar, total - first)
        time = np.arange(length) / RATE
        chord = sum(np.sin(2 * np.pi * root * ratio * time) for ratio in (1.0, 1.26, 1.5))
        mix[first:first + length] += 0.05 * chord * np.minimum(1.0, time * 20)
    mix = 0.8 * mix / np.abs(mix).max()
    delay = int(0.011 * RATE)  # a little stereo width
    right = np.concatenate([np.zeros(delay), mix[:-delay]])
    return np.stack([mix, 0.7 * mix + 0.3 * right]).astype(np.float32), float(bpm)


def write_song(path, name: str, seconds: float) -> float:
    """Write a song as 16-bit stereo wav -> its tempo in bpm."""
    import wave

    samples, bpm = song(name, seconds)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(samples.T, -1, 1) * 32767).astype("<i2").tobytes())
    return bpm
