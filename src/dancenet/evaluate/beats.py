"""Beats in dance and music, and how well they line up: pure numpy/scipy, no librosa.

Kinematic beats are the moments where the dancer's motion pauses or turns: local minima of the
silhouette motion energy (share of pixels changing per frame), smoothed first as AIST++ and
Bailando smooth joint speed (Gaussian, 5 frames at 60 fps = ``SMOOTH_SECONDS``).

Two beat-alignment scores, both ``exp(-d^2 / (2 sigma^2))`` averaged, ``sigma`` in seconds
(Bailando's 3 frames at 60 fps = ``SIGMA_SECONDS``, so it does not change with the frame rate):

* :func:`beat_alignment` (Bailando's Beat Alignment Score, ``utils/beat_align_score.py``): the
  mean over music beats, d = distance to the nearest motion beat;
* :func:`motion_beat_alignment` (the AIST++ / FACT direction): the mean over motion beats, d =
  distance to the nearest music beat; extra motion beats off the music lower it.
"""

from __future__ import annotations

import numpy as np

SMOOTH_SECONDS = 5 / 60
SIGMA_SECONDS = 3 / 60


def kinematic_beats(energy: np.ndarray, fps: float, smooth_seconds: float = SMOOTH_SECONDS) -> np.ndarray:
    """Motion energy (time,) at ``fps`` -> kinematic beat times in seconds (sorted).

    ``energy[i]`` is the change from frame i to frame i + 1 (``metrics.motion_energy``), so it is
    placed at time (i + 0.5) / fps. Minima are strict local minima of the smoothed energy
    (``scipy.signal.argrelextrema(..., np.less)``, as Bailando).
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    energy = np.asarray(energy, dtype=np.float64)
    if len(energy) < 3:
        return np.zeros(0)
    smooth = gaussian_filter1d(energy, smooth_seconds * fps, mode="nearest") if smooth_seconds > 0 else energy
    minima = argrelextrema(smooth, np.less)[0]
    return (minima + 0.5) / fps


def _alignment(targets: np.ndarray, candidates: np.ndarray, sigma: float) -> float:
    """Mean over ``targets`` of exp(-d^2 / 2 sigma^2), d = distance to the nearest candidate."""
    targets, candidates = np.asarray(targets, float), np.sort(np.asarray(candidates, float))
    if len(targets) == 0:
        return float("nan")
    if len(candidates) == 0:
        return 0.0
    right = np.clip(np.searchsorted(candidates, targets), 0, len(candidates) - 1)
    left = np.clip(right - 1, 0, len(candidates) - 1)
    distance = np.minimum(np.abs(candidates[right] - targets), np.abs(candidates[left] - targets))
    return float(np.mean(np.exp(-distance ** 2 / (2 * sigma ** 2))))


def beat_alignment(music_beats: np.ndarray, motion_beats: np.ndarray, duration: float | None = None,
                   sigma: float = SIGMA_SECONDS) -> float:
    """Bailando's Beat Alignment Score: the mean over music beats (seconds) of
    exp(-d^2 / 2 sigma^2), d the distance to the nearest motion beat. Music beats after
    ``duration`` (the dance's length) are left out, as Bailando cuts the music to the dance.
    NaN when no music beat falls inside the dance."""
    music_beats = np.asarray(music_beats, float)
    if duration is not None:
        music_beats = music_beats[music_beats <= duration]
    return _alignment(music_beats, motion_beats, sigma)


def motion_beat_alignment(music_beats: np.ndarray, motion_beats: np.ndarray,
                          sigma: float = SIGMA_SECONDS) -> float:
    """The AIST++ direction: the mean over motion beats of exp(-d^2 / 2 sigma^2), d the
    distance to the nearest music beat. NaN when the dance has no motion beat."""
    return _alignment(motion_beats, music_beats, sigma)


TEMPO_RANGE = (50.0, 200.0)


def beat_tempo(beats: np.ndarray, bpm_range: tuple[float, float] = TEMPO_RANGE) -> float | None:
    """The tempo (beats per minute) of a beat train: the period whose grid the beats fit best,
    by phase coherence |mean exp(2 pi i t / period)| over 0.25-bpm steps of ``bpm_range``.

    Kinematic beats hold pauses that fall between musical beats too, so the median interval
    says little; a grid that most beats share is what a viewer hears as the tempo. As for any
    beat tracker, half or double the tempo can fit as well (see :func:`tempo_error`). None with
    fewer than 4 beats."""
    beats = np.asarray(beats, float)
    if len(beats) < 4:
        return None
    bpm = np.arange(bpm_range[0], bpm_range[1] + 0.125, 0.25)
    coherence = np.abs(np.exp(2j * np.pi * beats[None, :] * (bpm[:, None] / 60.0)).mean(axis=1))
    return float(bpm[int(np.argmax(coherence))])


def tempo_error(dance_tempo: float | None, music_tempo: float, octave: bool = True) -> float | None:
    """Relative tempo error |dance - music| / music; with ``octave`` the smallest over the dance
    at x1, x2 and x1/2 (MIREX "accuracy 2": a step on every other beat keeps the tempo)."""
    if dance_tempo is None:
        return None
    factors = (1.0, 2.0, 0.5) if octave else (1.0,)
    return float(min(abs(dance_tempo * factor - music_tempo) / music_tempo for factor in factors))


def dance_beats(frames: np.ndarray, fps: float) -> np.ndarray:
    """(time, H, W) silhouettes -> kinematic beat times in seconds."""
    from .metrics import motion_energy

    return kinematic_beats(motion_energy(frames), fps)


def beat_scores(music_beats: np.ndarray, music_tempo: float, motion_beats: np.ndarray,
                duration: float, sigma: float = SIGMA_SECONDS) -> dict:
    """Every beat figure of one dance against one song (times in seconds) -> JSON-ready dict."""
    tempo = beat_tempo(motion_beats)
    return {
        "beat_alignment": beat_alignment(music_beats, motion_beats, duration, sigma),
        "motion_beat_alignment": motion_beat_alignment(
            np.asarray(music_beats)[np.asarray(music_beats) <= duration], motion_beats, sigma),
        "dance_tempo": tempo,
        "tempo_error": tempo_error(tempo, music_tempo),
        "tempo_error_strict": tempo_error(tempo, music_tempo, octave=False),
        "motion_beats": int(len(motion_beats)),
    }


def mean_scores(scores: list[dict]) -> dict:
    """The mean of each figure over dances (None where no dance has it)."""
    result = {}
    for key in ("beat_alignment", "motion_beat_alignment", "tempo_error", "tempo_error_strict"):
        values = [s[key] for s in scores if s[key] is not None and np.isfinite(s[key])]
        result[key] = float(np.mean(values)) if values else None
    return result


def offset_scores(music_beats: np.ndarray, music_tempo: float, music_duration: float,
                  motion_beats: np.ndarray, duration: float, count: int = 20,
                  generator: np.random.Generator | None = None) -> list[dict]:
    """One dance against the song started at ``count`` random offsets (looped when the dance is
    longer): the chance level of a dance that ignores the song (real dance has no music)."""
    generator = generator or np.random.default_rng(0)
    music_beats = np.asarray(music_beats, float)
    scores = []
    for offset in generator.uniform(0.0, music_duration, count):
        # the song started at ``offset`` and looped: beats keep their spacing, the phase is random
        shifted = np.sort((music_beats - offset) % music_duration)
        looped = np.concatenate([shifted + loop * music_duration
                                 for loop in range(int(np.ceil(duration / music_duration)) + 1)])
        scores.append(beat_scores(looped, music_tempo, motion_beats, duration))
    return scores


def music_alignment(music, fps: float, dances: dict[str, np.ndarray], plain: dict[str, np.ndarray] | None,
                    reference: list[np.ndarray], seed: int = 0) -> dict:
    """Beat figures of generated dances with music, the same seeds without it (the chance level,
    when given) and real dance against the song at random offsets.

    music: a :class:`dancenet.music.Music`; dances / plain: name -> (time, H, W) silhouettes at
    ``fps``; reference: real clips, each (time, H, W). Returns JSON-ready
    {"music", "with_music", "without_music", "real_at_random_offsets", "samples", "beats"}:
    the last holds every beat track (seconds) for the plot.
    """
    generator = np.random.default_rng(seed)
    beats_of = {name: dance_beats(frames, fps) for name, frames in dances.items()}
    samples = [{"name": name, **beat_scores(music.beats, music.tempo, beats_of[name], len(frames) / fps)}
               for name, frames in dances.items()]
    result = {
        "music": {"path": str(music.path), "tempo": music.tempo, "duration": music.duration,
                  "beats": int(len(music.beats))},
        "sigma_seconds": SIGMA_SECONDS,
        "with_music": mean_scores(samples),
        "samples": samples,
    }
    if plain:
        plain_scores = [beat_scores(music.beats, music.tempo, dance_beats(frames, fps), len(frames) / fps)
                        for frames in plain.values()]
        result["without_music"] = mean_scores(plain_scores)
    else:  # the same dances against the song at random offsets
        result["without_music"] = mean_scores([score for name, frames in dances.items() for score in offset_scores(
            music.beats, music.tempo, music.duration, beats_of[name], len(frames) / fps, 10, generator)])
        result["without_music"]["how"] = "the same videos against the song at random offsets"
    real = [score for clip in reference for score in offset_scores(
        music.beats, music.tempo, music.duration, dance_beats(clip, fps), len(clip) / fps, 10, generator)]
    result["real_at_random_offsets"] = mean_scores(real)
    chance = result["without_music"]["beat_alignment"]
    if chance:
        result["with_music"]["over_chance"] = result["with_music"]["beat_alignment"] / chance
    result["beats"] = {"music": music.beats.tolist(), **{name: beats.tolist() for name, beats in beats_of.items()}}
    return result
