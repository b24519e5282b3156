"""Music made with numpy for the tests: click tracks and a kick/snare/hat pattern at known tempi."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 22050


def click_track(bpm: float, seconds: float, rate: int = RATE, first: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """-> (samples (n,) float32, click times in seconds): 20 ms 1 kHz blips on every beat."""
    samples = np.zeros(int(seconds * rate), np.float32)
    times = np.arange(first, seconds - 0.05, 60.0 / bpm)
    blip = np.sin(2 * np.pi * 1000 * np.arange(int(0.02 * rate)) / rate) * np.hanning(int(0.02 * rate))
    for time in times:
        start = int(round(time * rate))
        samples[start:start + len(blip)] += 0.8 * blip[:len(samples) - start]
    return samples, times


def drum_pattern(bpm: float, seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A four-on-the-floor kick, snare on 2 and 4, eighth-note hats -> (n,) float32."""
    generator = np.random.default_rng(seed)
    samples = np.zeros(int(seconds * rate), np.float32)
    beat = 60.0 / bpm
    length = int(0.25 * rate)
    time = np.arange(length) / rate
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-time * 30)) * time) * np.exp(-time * 12)
    snare = generator.standard_normal(length) * np.exp(-time * 20) * 0.5
    hat = generator.standard_normal(length) * np.exp(-time * 80) * 0.15
    for index, start in enumerate(np.arange(0, seconds - 0.3, beat / 2)):
        offset = int(round(start * rate))
        sound = hat.copy()
        if index % 2 == 0:
            sound += kick
            if (index // 2) % 2 == 1:
                sound += snare
        samples[offset:offset + length] += sound.astype(np.float32)
    return (samples / np.abs(samples).max() * 0.8).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """16-bit mono wav."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
