"""Make a generated dance follow a song, without a model trained on music: time-warp the rollout.

The motion model dances at its own pace (the salsa model's kinematic beats come every ~0.5 s).
:func:`follow_music` rolls it out as usual, finds its kinematic beats (minima of silhouette motion
energy, ``evaluate.beats``), then picks, for each musical beat in turn, the next kinematic beat
closest to where the dance would be at its own pace, within ``MIN_RATE``..``MAX_RATE`` times that
pace. The latent trajectory is re-timed through those (music beat, dance beat) pairs with a
monotone cubic (PCHIP: no time runs backwards, the playback rate changes smoothly) and
interpolated linearly between neighbouring latents, so each chosen pause or turn of the dance
lands on a beat and the dance's tempo becomes the song's. This design beat a constant playback
rate per song and best-of-N seed selection in ``benchmarks/music.py`` (docs/music.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .evaluate.beats import kinematic_beats
from .evaluate.metrics import motion_energy

MIN_RATE = 0.5
MAX_RATE = 2.0
# Kinematic beats within ~3 smoothing sigmas (0.25 s) of the measured end can still move.
PLAN_MARGIN_SECONDS = 1.0


@dataclass
class Choreography:
    """A re-timed dance. native_latents: (native frames, L) raw latents of the plain rollout;
    positions: (frames,) the fractional native frame shown at each output frame; anchors:
    (k, 2) seconds (output time, native time) that the warp passes through."""

    native_latents: torch.Tensor
    positions: np.ndarray
    anchors: np.ndarray

    def latents(self, start: int, stop: int) -> torch.Tensor:
        """Output frames start..stop -> (stop - start, L) raw latents, linearly interpolated."""
        position = torch.from_numpy(self.positions[start:stop]).to(self.native_latents)
        below = position.floor().long().clamp(0, len(self.native_latents) - 1)
        above = (below + 1).clamp(max=len(self.native_latents) - 1)
        weight = (position - below.to(position))[:, None]
        return self.native_latents[below] * (1 - weight) + self.native_latents[above] * weight


def plan_anchors(native_beats: np.ndarray, music_beats: np.ndarray, duration: float,
                 min_rate: float = MIN_RATE, max_rate: float = MAX_RATE) -> np.ndarray:
    """Pair music beats (seconds of output) with native kinematic beats (seconds of the plain
    rollout) -> (k, 2) anchors (output time, native time), starting at (0, 0), both columns
    strictly increasing. Each music beat takes the next native beat nearest to one second of
    dance per second of music, within [min_rate, max_rate]; with none in reach it keeps that pace."""
    native_beats = np.sort(np.asarray(native_beats, float))
    anchors = [(0.0, 0.0)]
    for beat in np.sort(np.asarray(music_beats, float)):
        if beat <= 0 or beat > duration:
            continue
        last_output, last_native = anchors[-1]
        step = beat - last_output
        low, high = last_native + min_rate * step, last_native + max_rate * step
        expected = last_native + step
        reachable = native_beats[(native_beats > low) & (native_beats < high)]
        native = reachable[np.argmin(np.abs(reachable - expected))] if len(reachable) else expected
        anchors.append((beat, float(native)))
    return np.array(anchors)


def warp_positions(anchors: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """(k, 2) anchors -> (frames,) native frame position of each output frame: PCHIP through
    the anchors, one second of dance per second after the last one."""
    from scipy.interpolate import PchipInterpolator

    times = np.arange(frames) / fps
    if len(anchors) < 2:
        return times * fps
    warp = PchipInterpolator(anchors[:, 0], anchors[:, 1], extrapolate=False)
    native = warp(np.minimum(times, anchors[-1, 0]))
    after = times > anchors[-1, 0]
    native[after] = anchors[-1, 1] + (times[after] - anchors[-1, 0])
    return native * fps


def native_dance(dancer, frames: int, seed: int, temperature: float, sigma_temperature: float,
                 prime: str | None, on_frames: Callable[[int], None] | None = None,
                 enough: Callable[[np.ndarray], bool] | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """The plain rollout, drawn as a dance to music draws (``Dancer.component_correlation_for``)
    and decoded only to measure it -> (raw latents (n, L), motion energy (n - 1,)), n =
    ``frames``, or fewer when ``enough(energy so far)`` says so after a decoding chunk. Memory
    holds one decoding chunk of frames at a time."""
    latents, energy, previous, reuse = [], [], None, {}
    for block in dancer.latents(frames, seed, temperature, sigma_temperature, prime,
                                chunk=dancer.decode_chunk, reuse=reuse, music=True):
        decoded = dancer.decode_reusing(block, reuse)
        joined = decoded if previous is None else np.concatenate([previous, decoded])
        energy.append(motion_energy(joined))
        latents.append(block)
        previous = decoded[-1:]
        if on_frames is not None:
            on_frames(len(block))
        if enough is not None and enough(np.concatenate(energy)):
            break
    return torch.cat(latents), np.concatenate(energy)


def follow_music(dancer, music_beats: np.ndarray, frames: int, seed: int, temperature: float,
                 sigma_temperature: float, prime: str | None = None,
                 on_frames: Callable[[int], None] | None = None) -> Choreography:
    """Roll out as much native dance as ``frames`` output frames need (at most ``MAX_RATE``
    times as many) and re-time it onto ``music_beats`` (seconds)."""
    fps, duration = dancer.fps, frames / dancer.fps

    def enough(energy: np.ndarray) -> bool:
        # The plan is final once every beat's search window, and the tail after the last
        # beat, lies inside what was measured, with a margin for the smoothing at its edge.
        anchors = plan_anchors(kinematic_beats(energy, fps), music_beats, duration)
        windows = anchors[:-1, 1] + MAX_RATE * np.diff(anchors[:, 0])
        horizon = max(windows.max(initial=0.0), anchors[-1, 1] + duration - anchors[-1, 0])
        return len(energy) / fps >= horizon + PLAN_MARGIN_SECONDS

    budget = native_frame_budget(frames)
    native_latents, energy = native_dance(dancer, budget, seed, temperature, sigma_temperature, prime,
                                          on_frames, enough)
    if on_frames is not None:
        on_frames(budget - len(native_latents))  # the rest of the budget was not needed
    anchors = plan_anchors(kinematic_beats(energy, fps), music_beats, duration)
    positions = np.clip(warp_positions(anchors, frames, fps), 0, len(native_latents) - 1)
    return Choreography(native_latents, positions, anchors)


def native_frame_budget(frames: int) -> int:
    """Native rollout frames :func:`follow_music` draws for ``frames`` output frames."""
    return int(np.ceil(frames * MAX_RATE)) + 2


def stream_to_music(dancer, music_beats: np.ndarray, frames: int, seed: int, temperature: float,
                    sigma_temperature: float, prime: str | None = None, chunk: int = 64,
                    on_native_frames: Callable[[int], None] | None = None):
    """Generate ``frames`` frames that follow ``music_beats`` -> iterator of (n <= chunk, H, W)
    uint8 chunks, decoded in batches of ``dancer.decode_chunk``."""
    choreography = follow_music(dancer, music_beats, frames, seed, temperature, sigma_temperature,
                                prime, on_native_frames)
    for start in range(0, frames, dancer.decode_chunk):
        latents = choreography.latents(start, min(frames, start + dancer.decode_chunk))
        decoded = dancer.shown(dancer.decode(latents))
        for first in range(0, len(decoded), chunk):
            yield decoded[first:first + chunk]
