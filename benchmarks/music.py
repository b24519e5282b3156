"""How should a dance trained without music follow a song? Three rollout guides, measured.

For 3 synthesised songs of clearly different tempi (benchmarks/_songs.py), the bundled model's
dances for seeds 0..N-1:

* ``plain``: no music (the chance level);
* ``warp`` (what ``--music`` does): time-warp each dance so chosen kinematic beats land on the
  song's beats (``dancenet.choreography``);
* ``rate``: one constant playback rate per song that turns the dance's own tempo into the
  song's (octave-folded into 0.5..2), no phase alignment;
* ``best-of-4``: four independent rollouts per dance, keep the one whose kinematic beats fit the
  song best (no re-timing).

It prints beat alignment (Bailando), motion-beat alignment (AIST++), tempo error, the quality
metrics of ``dancenet evaluate`` (freeze, loop, artifacts, Frechet against the held-out take
61_07) and the time each guide costs, all from the same run.

    python benchmarks/music.py [--data data/salsa] [--seconds 30 --seeds 3 --songs DIR]
                               [--component-correlation R]

``--data`` is a prepared dataset or the salsa BVH folder (prepared here, at the bundled model's
size and rate, into a temporary folder). On the busy 2-core machine the default run took ~25 min.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import _songs  # noqa: E402

import dancenet  # noqa: E402
from dancenet import choreography  # noqa: E402
from dancenet.dataset import Dataset  # noqa: E402
from dancenet.evaluate import beats, suite  # noqa: E402
from dancenet.generate import bundled_directory  # noqa: E402
from dancenet.music import load_music  # noqa: E402

CANDIDATES = 4


def decode_positions(dancer, latents, positions) -> np.ndarray:
    """Decode a re-timed dance: native latents at fractional ``positions``, as the video shows them."""
    retimed = choreography.Choreography(latents, np.clip(positions, 0, len(latents) - 1), np.zeros((0, 2)))
    return np.concatenate([dancer.shown(dancer.decode(retimed.latents(start, min(len(positions), start + 256))))
                           for start in range(0, len(positions), 256)])


def constant_rate(native_beats: np.ndarray, music_tempo: float) -> float:
    """Playback rate that turns the dance's tempo into the song's, folded into 0.5..2 nearest 1."""
    tempo = beats.beat_tempo(native_beats) or music_tempo
    rates = [music_tempo / tempo * factor for factor in (0.5, 1.0, 2.0)]
    rates = [rate for rate in rates if 0.5 <= rate <= 2.0] or [1.0]
    return min(rates, key=lambda rate: abs(np.log(rate)))


def reference_dataset(data: Path, dancer) -> Dataset:
    """``data`` itself when prepared, else the BVH folder prepared at the model's size and rate."""
    from dancenet.ingest import PrepareOptions, prepare

    if (data / "manifest.json").is_file():
        return Dataset(data)
    options = PrepareOptions(height=dancer.height, width=dancer.width, fps=dancer.fps, source_fps=60.0, quiet=True)
    return prepare([data], Path(tempfile.mkdtemp(prefix="dancenet-salsa-")) / "reference", options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "../../shared/data/cmu61-salsa-bvh",
                        help="prepared salsa dataset, or the salsa BVH folder (default: the shared one)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--songs", default=None, help="folder for the synthesised songs (default: a temporary one)")
    parser.add_argument("--component-correlation", type=float, default=None, metavar="R",
                        help="draw every dance at this component correlation (default: as --music does, 0)")
    args = parser.parse_args()

    dancer = dancenet.load(None)
    if args.component_correlation is not None:
        dancer.component_correlation = args.component_correlation
    fps, frames = dancer.fps, dancer.frame_count(args.seconds)
    temperature, sigma_temperature = dancer.temperatures(None, None)
    dataset = reference_dataset(args.data, dancer)
    reference = suite.make_reference(dataset, suite.validation_clips(bundled_directory()))
    real_clips = [dataset.clip_frames(clip) for clip in reference.clips]
    songs_folder = Path(args.songs or tempfile.mkdtemp(prefix="dancenet-songs-"))
    songs_folder.mkdir(parents=True, exist_ok=True)

    # Native rollouts depend on the seed only: seed s + k * seeds is candidate k of dance s.
    clock = time.perf_counter()
    natives = {}
    for seed in range(args.seeds * CANDIDATES):
        latents, energy = choreography.native_dance(dancer, choreography.native_frame_budget(frames), seed,
                                                    temperature, sigma_temperature, None)
        natives[seed] = (latents, energy, beats.kinematic_beats(energy, fps))
    native_seconds = (time.perf_counter() - clock) / len(natives)
    plain = {f"seed {seed}": decode_positions(dancer, natives[seed][0], np.arange(frames, dtype=float))
             for seed in range(args.seeds)}
    quality = {"plain": suite.evaluate_videos(plain, reference).metrics["summary"]}
    rows, costs = [], {"plain": 0.0, "warp": 0.0, "rate": 0.0, "best-of-4": 0.0}
    for name in _songs.SONGS:
        path = songs_folder / f"{name}.wav"
        true_tempo = _songs.write_song(path, name, args.seconds + 5)
        music = load_music(path, args.seconds)
        videos = {"plain": plain, "warp": {}, "rate": {}, "best-of-4": {}}
        for seed in range(args.seeds):
            latents, energy, native_beats = natives[seed]
            clock = time.perf_counter()
            anchors = choreography.plan_anchors(native_beats, music.beats, frames / fps)
            videos["warp"][f"seed {seed}"] = decode_positions(
                dancer, latents, choreography.warp_positions(anchors, frames, fps))
            costs["warp"] += time.perf_counter() - clock
            clock = time.perf_counter()
            rate = constant_rate(native_beats, music.tempo)
            videos["rate"][f"seed {seed}"] = decode_positions(dancer, latents, np.arange(frames) * rate)
            costs["rate"] += time.perf_counter() - clock
            clock = time.perf_counter()
            candidates = [seed + k * args.seeds for k in range(CANDIDATES)]
            best = max(candidates, key=lambda c: beats.beat_alignment(
                music.beats, natives[c][2][natives[c][2] <= args.seconds], args.seconds))
            videos["best-of-4"][f"seed {seed}"] = decode_positions(dancer, natives[best][0],
                                                                   np.arange(frames, dtype=float))
            costs["best-of-4"] += time.perf_counter() - clock
        for method, dances in videos.items():
            alignment = beats.music_alignment(music, fps, dances, None, [])
            scores = beats.mean_scores(alignment["samples"])
            tempi = [s["dance_tempo"] for s in alignment["samples"]]
            if method not in quality:
                quality[method + " " + name] = suite.evaluate_videos(dances, reference).metrics["summary"]
            rows.append((name, true_tempo, music.tempo, method, scores, tempi))
        real = beats.mean_scores([score for clip in real_clips for score in beats.offset_scores(
            music.beats, music.tempo, music.duration, beats.dance_beats(clip[:frames], fps),
            min(len(clip), frames) / fps, 10)])
        rows.append((name, true_tempo, music.tempo, "real, random offsets", real, []))

    print(f"bundled model, {args.seeds} seeds x {args.seconds:g} s at {fps:g} fps; sigma {beats.SIGMA_SECONDS:.3f} s")
    print(f"{'song':<16} {'bpm':>5} {'found':>6} {'guide':<21} {'BAS':>6} {'xplain':>6} {'AIST++':>6} "
          f"{'tempo err':>9} {'strict':>7}  dance tempi")
    chance = {}
    for name, true_tempo, found, method, scores, tempi in rows:
        if method == "plain":
            chance[name] = scores["beat_alignment"]
        ratio = scores["beat_alignment"] / chance[name]
        print(f"{name:<16} {true_tempo:5.0f} {found:6.1f} {method:<21} {scores['beat_alignment']:6.3f} {ratio:6.2f} "
              f"{scores['motion_beat_alignment']:6.3f} {scores['tempo_error']:9.1%} {scores['tempo_error_strict']:7.1%}"
              f"  {' '.join(f'{t:.1f}' for t in tempi)}")
    print()
    print(f"{'quality':<30} {'freeze':>7} {'loop':>7} {'artifact':>9} {'Frechet':>8}")
    for label, summary in quality.items():
        print(f"{label:<30} {summary['freeze_ratio']:7.2%} {summary['loop_ratio']:7.2%} "
              f"{summary['artifact_ratio']:9.3%} {summary['frechet_distance']:8.1f}")
    print()
    per_dance = len(_songs.SONGS) * args.seeds
    print(f"time per {args.seconds:g} s dance: plain rollout of {choreography.native_frame_budget(frames)} frames "
          f"(sample + decode to measure) {native_seconds:.1f} s; then " + ", ".join(
              f"{method} +{seconds / per_dance:.1f} s" for method, seconds in costs.items() if method != "plain")
          + f" (best-of-4 also needs {CANDIDATES - 1} more rollouts)")


if __name__ == "__main__":
    main()
