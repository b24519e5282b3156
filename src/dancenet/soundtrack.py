"""A song muxed into an mp4 beside its video: decoded with PyAV, resampled, AAC-encoded, interleaved.

:class:`~dancenet.video.VideoWriter` calls :meth:`Soundtrack.encode_until` after each chunk of
frames, so audio and video packets alternate in the file (players need not seek), and
:meth:`Soundtrack.finish` at the end, which cuts the song at the video's last frame. Audio
timestamps count samples from 0 and the video's count frames from 0, so both start together;
the AAC encoder's priming samples are hidden by the mp4 edit list that FFmpeg writes.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterator

import numpy as np

from .errors import input_error

AUDIO_RATE = 48000
AUDIO_BIT_RATE = 160_000


class Soundtrack:
    """Encode the song at ``path`` into ``container`` (an open PyAV output); a context manager
    that closes the song's file."""

    def __init__(self, path: str | os.PathLike, container):
        self.path, self.container = path, container
        self.samples_written = 0
        self._pending = np.zeros((2, 0), np.float32)
        self._exhausted = False

    def __enter__(self) -> "Soundtrack":
        from .music import _open

        self._source = _open(self.path)
        self.stream = self.container.add_stream("aac", rate=AUDIO_RATE)
        self.stream.layout = "stereo"
        self.stream.bit_rate = AUDIO_BIT_RATE
        self.stream.time_base = Fraction(1, AUDIO_RATE)
        self._chunks = self._decoded()
        return self

    def __exit__(self, *exc) -> bool:
        self._source.close()
        return False

    def _decoded(self) -> Iterator[np.ndarray]:
        """The song as (2, n) float32 pieces at ``AUDIO_RATE``."""
        import av

        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        try:
            for frame in self._source.decode(self._source.streams.audio[0]):
                for piece in resampler.resample(frame):
                    yield piece.to_ndarray()
            for piece in resampler.resample(None):
                yield piece.to_ndarray()
        except av.error.FFmpegError as error:
            raise input_error(self.path, f"cannot be decoded as audio: {error}") from None

    def encode_until(self, seconds: float, final: bool = False) -> None:
        """Encode the song up to ``seconds`` (whole encoder frames; all of it when ``final``)."""
        import av

        target = int(round(seconds * AUDIO_RATE))
        size = self.stream.codec_context.frame_size or 1024
        while not self._exhausted and self.samples_written + self._pending.shape[1] < target:
            piece = next(self._chunks, None)
            if piece is None:
                self._exhausted = True
            else:
                self._pending = np.concatenate([self._pending, piece], axis=1)
        available = min(self._pending.shape[1], target - self.samples_written)
        count = available if final else available // size * size
        for start in range(0, count, size):
            block = np.ascontiguousarray(self._pending[:, start:min(start + size, count)])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = AUDIO_RATE, self.samples_written
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.samples_written += block.shape[1]
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        self._pending = self._pending[:, count:]

    def finish(self, seconds: float) -> None:
        """Encode what is left of the song up to ``seconds`` (the video's end), then flush."""
        self.encode_until(seconds, final=True)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
