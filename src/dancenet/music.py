"""A song to dance to: read it (wav, mp3, flac, ogg through PyAV), find its tempo and beats (librosa).

librosa is the ``dancenet[music]`` extra and is imported only here, inside the functions that need
it, so ``dancenet --help`` and generation without music never pay for it. Its first call in a
fresh environment compiles numba kernels (about a minute on 2 cores, then cached in the
environment); ``make setup`` runs :func:`warm_up` once so that no user waits for it.

Bad audio is one line: not audio, no audio stream, empty, under ``MIN_SECONDS``, silent (peak
below ``SILENCE_PEAK``), or longer than ``MAX_SECONDS`` (the stated cap; ``seconds`` reads only
the start of a longer song).

The seam for training with music: :func:`load_music` reads any file with an audio stream (a
dance video's own soundtrack included), so a dataset of dance with music can store the same
:class:`Music` analysis beside its frames and condition a motion model on it; generation then
swaps the rollout guide (``choreography.follow_music``) for that model, behind the same
``music=`` argument.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DancenetError, input_error

EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
SAMPLE_RATE = 22050   # analysis rate: librosa's default, plenty for beats
HOP_LENGTH = 512      # onset envelope step: 23 ms at 22050 Hz
MAX_SECONDS = 20 * 60.0
MIN_SECONDS = 2.0
SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS: below that there is no beat to hear
INSTALL_HINT = "music needs the music extra: pip install 'dancenet[music]'"


@dataclass(frozen=True)
class Music:
    """A song's analysis. beats: (beats,) seconds from the start; onset_strength: (steps,) at
    ``onset_rate`` steps per second; tempo in beats per minute; duration in seconds."""

    path: Path
    duration: float
    tempo: float
    beats: np.ndarray
    onset_strength: np.ndarray
    onset_rate: float

    def beats_within(self, seconds: float) -> np.ndarray:
        """The beats that fall inside the first ``seconds``."""
        return self.beats[self.beats <= seconds]


def require_librosa():
    """Import librosa or raise a one-line error that says how to install it."""
    try:
        import librosa
    except ImportError as error:
        raise DancenetError(INSTALL_HINT) from error
    return librosa


def probe_seconds(path: str | os.PathLike) -> float:
    """The song's length in seconds from its container, without decoding; a user error for a
    file that is not audio."""
    container = _open(path)
    with container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
    return float("nan")


def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such file" if not path.exists() else "is not a file")
    if path.stat().st_size == 0:
        raise input_error(path, "is empty")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise input_error(path, f"is not an audio file dancenet can read ({', '.join(EXTENSIONS)}): "
                                f"{error}") from None
    if not container.streams.audio:
        container.close()
        raise input_error(path, "holds no audio stream")
    return container


def read_audio(path: str | os.PathLike, seconds: float | None = None, sample_rate: int = SAMPLE_RATE,
               channels: int = 1) -> np.ndarray:
    """Decode up to ``seconds`` (None: the whole song, at most ``MAX_SECONDS``) ->
    (channels, samples) float32 in [-1, 1] at ``sample_rate``."""
    import av

    path = Path(path)
    length = probe_seconds(path)
    if seconds is None and length > MAX_SECONDS:
        raise input_error(path, f"is {length / 60:.0f} minutes long; dancenet dances to at most "
                                f"{MAX_SECONDS / 60:.0f} minutes: give --seconds to use its start")
    limit = int(round(min(seconds or MAX_SECONDS, MAX_SECONDS) * sample_rate))
    layout = {1: "mono", 2: "stereo"}[channels]
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
    pieces, count = [], 0
    try:
        with _open(path) as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for piece in resampler.resample(frame):
                    pieces.append(piece.to_ndarray())
                    count += pieces[-1].shape[1]
                if count >= limit:
                    break
            else:
                for piece in resampler.resample(None):
                    pieces.append(piece.to_ndarray())
    except av.error.FFmpegError as error:
        raise input_error(path, f"cannot be decoded as audio: {error}") from None
    samples = np.concatenate(pieces, axis=1)[:, :limit] if pieces else np.zeros((channels, 0), np.float32)
    return samples.astype(np.float32, copy=False)


def analyse(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Mono samples (n,) -> (tempo bpm, beat times in seconds, onset strength, onset steps per
    second), with librosa's onset envelope and dynamic-programming beat tracker."""
    librosa = require_librosa()
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    onset = librosa.onset.onset_strength(y=samples, sr=sample_rate, hop_length=HOP_LENGTH)
    tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sample_rate, hop_length=HOP_LENGTH,
                                           units="time")
    return float(np.atleast_1d(tempo)[0]), np.asarray(beats, dtype=np.float64), onset, sample_rate / HOP_LENGTH


def load_music(path: str | os.PathLike, seconds: float | None = None) -> Music:
    """Read and analyse a song (its first ``seconds`` when given); user errors for bad audio."""
    require_librosa()
    path = Path(path)
    samples = read_audio(path, seconds)[0]
    duration = len(samples) / SAMPLE_RATE
    if seconds is not None and seconds < MIN_SECONDS:
        raise DancenetError(f"--seconds {seconds:g}: a dance to music needs at least {MIN_SECONDS:g} s")
    if duration < MIN_SECONDS:
        raise input_error(path, f"holds {duration:.2f} s of audio; a song needs at least {MIN_SECONDS:g} s")
    if not np.isfinite(samples).all() or np.abs(samples).max() < SILENCE_PEAK:
        raise input_error(path, "is silent: there is no beat to dance to")
    tempo, beats, onset, onset_rate = analyse(samples)
    if len(beats) < 2 or not math.isfinite(tempo) or tempo <= 0:
        raise input_error(path, "has no beat librosa can find (too quiet, or no rhythm)")
    return Music(path, duration, tempo, beats, onset, onset_rate)


def warm_up() -> None:
    """Analyse 4 s of synthetic clicks once, so librosa's numba kernels compile and are cached
    now (``make setup``) rather than on a user's first ``--music``. Does nothing without librosa."""
    try:
        require_librosa()
    except DancenetError:
        return
    samples = np.zeros(4 * SAMPLE_RATE, np.float32)
    samples[::SAMPLE_RATE // 2] = 1.0
    analyse(samples)
