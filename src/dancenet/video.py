"""Write silhouette videos frame by frame: H.264 mp4, GIF, or a folder of PNGs (chosen by the path).

Frames stream straight to the encoder, so memory does not grow with the video's length, and the
output appears at its path only when writing finished (temporary name, then rename).

Determinism: x264 runs single-threaded with fixed settings, because frame-threaded x264 with
lookahead produced different bytes on repeated runs here; with one thread the same frames give
the same file, byte for byte, on any machine with the same FFmpeg build.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .errors import input_error

FORMATS = {".mp4": "mp4", ".gif": "gif", "": "png"}
INTERPOLATIONS = ("nearest", "bilinear")
# x264 settings: "superfast" keeps up with generation at 4x scale on one core; crf 20 is
# visually lossless for two-tone silhouettes.
X264_OPTIONS = {"preset": "superfast", "crf": "20"}


def output_format(path: str | os.PathLike) -> str:
    """``"mp4"``, ``"gif"`` or ``"png"`` (a folder, given as a path without an extension)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise input_error(path, f"unknown output extension {suffix!r}: use .mp4, .gif, "
                                "or a folder name without an extension for PNG frames")
    return FORMATS[suffix]


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before any work) when ``path`` cannot be written."""
    path = Path(path)
    kind = output_format(path)
    if kind != "png" and path.is_dir():
        raise input_error(path, "is a directory; give a file name such as dance.mp4")
    if kind == "png" and path.exists() and not path.is_dir():
        raise input_error(path, "exists and is not a folder")
    if kind == "png" and path.is_dir() and any(entry.suffix.lower() != ".png" for entry in path.iterdir()):
        raise input_error(path, "is a folder holding files other than PNG frames; choose another")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise input_error(path, f"cannot be written ({ancestor} is not a writable folder)")


def upscale(frames: np.ndarray, scale: int, interpolation: str = "nearest") -> np.ndarray:
    """frames: (n, height, width) uint8 -> (n, height * scale, width * scale) uint8."""
    if scale == 1:
        return frames
    if interpolation == "nearest":
        return frames.repeat(scale, axis=1).repeat(scale, axis=2)
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    tensor = torch.nn.functional.interpolate(tensor, scale_factor=scale, mode="bilinear",
                                             align_corners=False)
    return tensor[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


class VideoWriter:
    """Stream (n, height, width) uint8 grey frames into ``path``; use as a context manager.

    The file (or folder) appears only when the ``with`` block ends without an error.
    """

    def __init__(self, path: str | os.PathLike, fps: float, height: int, width: int,
                 scale: int = 1, interpolation: str = "nearest"):
        if scale < 1:
            raise input_error(None, f"--scale {scale}: must be a whole number >= 1")
        if interpolation not in INTERPOLATIONS:
            raise input_error(None, f"--interpolation {interpolation}: choose nearest or bilinear")
        self.path = Path(path)
        self.kind = output_format(self.path)
        check_writable(self.path)
        self.fps, self.scale, self.interpolation = float(fps), int(scale), interpolation
        self.height, self.width = height * self.scale, width * self.scale
        self.frames_written = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "VideoWriter":
        from .atomic import atomic_directory, atomic_file

        if self.kind == "png":
            self._folder = self._stack.enter_context(atomic_directory(self.path, overwrite=True))
            return self
        import av
        from fractions import Fraction

        temporary = self._stack.enter_context(atomic_file(self.path))
        self._container = av.open(str(temporary), mode="w", format=self.kind)
        self._stack.callback(self._container.close)
        rate = Fraction(self.fps).limit_denominator(1001)
        if self.kind == "mp4":
            # yuv420p needs even sizes; pad odd ones with black on the right/bottom.
            self._padded = (self.height + self.height % 2, self.width + self.width % 2)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = dict(X264_OPTIONS)
            self._stream.codec_context.thread_count = 1
            # Grey -> limited-range luma, neutral chroma: no per-frame colour conversion needed.
            self._luma = np.round(16 + np.arange(256) * 219 / 255).astype(np.uint8)
            self._chroma = np.full((self._padded[0] // 2, self._padded[1]), 128, np.uint8)
        else:
            self._padded = (self.height, self.width)
            self._stream = self._container.add_stream("gif", rate=rate)
            self._stream.pix_fmt = "gray"
        self._stream.height, self._stream.width = self._padded
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append frames: (n, height, width) uint8 (0 = black, 255 = white) at the unscaled size."""
        frames = upscale(np.asarray(frames, dtype=np.uint8), self.scale, self.interpolation)
        if self.kind == "png":
            from PIL import Image

            for frame in frames:
                Image.fromarray(frame, mode="L").save(
                    self._folder / f"frame_{self.frames_written:06d}.png")
                self.frames_written += 1
            return
        import av

        for frame in frames:
            if self.kind == "mp4":
                luma = np.zeros(self._padded, np.uint8) if self._padded != frame.shape else None
                if luma is not None:
                    luma[:self.height, :self.width] = frame
                    frame = luma
                planes = np.concatenate([self._luma[frame], self._chroma])
                video_frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            else:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
            self.frames_written += 1

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is None and self.kind != "png":
            for packet in self._stream.encode():  # flush the encoder's delayed frames
                self._container.mux(packet)
        return bool(self._stack.__exit__(exc_type, exc, traceback))
