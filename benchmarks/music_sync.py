"""Audio/video sync of an mp4 with a song, over 3 minutes: a click track and a flash on each click.

Writes a 3-minute mp4 through dancenet's VideoWriter (the same path as ``generate --music``) in
which the frame of every click is white and the others black, with the click track as its song;
then decodes it back and compares, click by click, the time of the white frame (its
presentation timestamp) with the time of the click's onset in the decoded AAC audio. Also
prints both streams' durations. A player is in sync when every difference is under one frame.

    python benchmarks/music_sync.py [--minutes 3 --fps 30 --bpm 97]
"""

from __future__ import annotations

import argparse
import tempfile
import wave
from pathlib import Path

import av
import numpy as np

from dancenet.video import VideoWriter

RATE = 44100


def click_track(path: Path, bpm: float, seconds: float) -> np.ndarray:
    """Write a mono wav of 10 ms clicks -> click times (seconds)."""
    samples = np.zeros(int(seconds * RATE), np.float32)
    times = np.arange(0.5, seconds - 0.5, 60.0 / bpm)
    blip = np.sin(2 * np.pi * 2000 * np.arange(int(0.01 * RATE)) / RATE)
    for time in times:
        start = int(round(time * RATE))
        samples[start:start + len(blip)] = 0.8 * blip
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--bpm", type=float, default=97.0,
                        help="not a divisor of the frame rate: clicks fall between frames")
    args = parser.parse_args()
    seconds, fps = args.minutes * 60, args.fps
    folder = Path(tempfile.mkdtemp(prefix="dancenet-sync-"))
    times = click_track(folder / "clicks.wav", args.bpm, seconds)
    frames = int(round(seconds * fps))
    flash = np.zeros(frames, bool)
    flash[np.floor(times * fps).astype(int)] = True  # the frame on screen when the click sounds
    with VideoWriter(folder / "sync.mp4", fps, 48, 64, audio=folder / "clicks.wav") as writer:
        for start in range(0, frames, 256):
            chunk = flash[start:start + 256]
            writer.write(np.where(chunk[:, None, None], 255, 0).astype(np.uint8).repeat(48, 1).repeat(64, 2))

    with av.open(str(folder / "sync.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        white = [float(frame.pts * frame.time_base) for frame in container.decode(video)
                 if frame.to_ndarray(format="gray").mean() > 128]
    with av.open(str(folder / "sync.mp4")) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        stream = container.streams.audio[0]
        first = None
        pieces = []
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.pts * frame.time_base)
            pieces.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(frame))
    samples = np.abs(np.concatenate(pieces))
    onsets = []
    for time in times:
        window = samples[int((time - 0.02 - first) * RATE):int((time + 0.04 - first) * RATE)]
        onsets.append(time - 0.02 + np.argmax(window > 0.2) / RATE)
    onsets = np.array(onsets)
    # a click at time t shows the white frame k = floor(t * fps), on screen from k / fps
    white = np.array(white)
    offset = onsets - white
    print(f"{seconds:.0f} s at {fps:g} fps, {len(times)} clicks at {args.bpm:g} bpm")
    print(f"durations: video {video_seconds:.4f} s, audio {audio_seconds:.4f} s, "
          f"difference {1000 * (audio_seconds - video_seconds):+.1f} ms (one frame = {1000 / fps:.1f} ms)")
    print(f"first audio timestamp {1000 * first:+.1f} ms; clicks found {len(onsets)}, white frames {len(white)}")
    expected = np.floor(times * fps) / fps
    print(f"click onset minus its frame's start: min {1000 * offset.min():.1f} ms, max {1000 * offset.max():.1f} ms "
          f"(in sync: 0 <= offset < {1000 / fps:.1f})")
    audio_error = 1000 * np.abs(onsets - times)
    print(f"video: white frame start vs floor(click * fps) / fps: max error "
          f"{1000 * np.abs(white - expected).max():.2f} ms; audio: click onset vs its wav time: max error "
          f"{audio_error.max():.2f} ms (first minute {audio_error[:97].max():.2f}, last {audio_error[-97:].max():.2f})")

if __name__ == "__main__":
    main()
