"""`dancenet evaluate` (a run's generated dance) and `dancenet evaluate-video` (any video)."""

from __future__ import annotations

import argparse
import sys

EVALUATE_EPILOG = """\
examples:
  dancenet evaluate runs/me --reference data/me -o report/
  dancenet evaluate runs/me --reference data/me --seconds 30 --samples 5 --temperature 0.8 -o report/

Generates --samples videos (seeds 0..N-1) and measures them against real dance: the run's
held-out clips when its config records validation clips, else the whole reference dataset.
Writes report/metrics.json and report/index.html (self-contained: open it from disk).
Beside each metric's mean, the summary gives its worst 10 s window of any sample and where it is.
Metric definitions: docs/metrics.md.
"""

VIDEO_EPILOG = """\
examples:
  dancenet evaluate-video dance.mp4 --reference data/salsa -o report/
  dancenet evaluate-video seed0.mp4 seed1.mp4 seed2.mp4 --reference data/salsa -o report/

Any video from any system: the dancer must be bright on a dark background (silhouettes, as
dancenet writes them). A video of another size is fitted to the reference's size (keeping its
aspect ratio) and resampled to its frame rate; both are reported on stderr. Beside each metric's
mean, the summary gives its worst 10 s window of any video and where it is.
"""


def register(commands, train_commands, common) -> None:
    from ..paths import name_type
    from .generate import add_component_correlation_argument, add_retries_argument

    parser = commands.add_parser("evaluate", parents=[common], help="measure how well a run dances",
                                 description="Generate dance with a run and measure it against real dance.",
                                 epilog=EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="RUN", help="training run directory (with vae.* and motion.*)")
    parser.add_argument("--reference", required=True, metavar="DATASET", help="prepared dataset of real dance")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each generated video (default 60)")
    parser.add_argument("--samples", type=int, default=3, help="videos to generate, seeds 0..N-1 (default 3)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="mixture-weight temperature (default: the model's recommended value, else 1)")
    parser.add_argument("--sigma-temperature", type=float, default=None,
                        help="spread temperature (default: the model's recommended value, else 1)")
    parser.add_argument("--noise-correlation", type=float, default=None, metavar="R",
                        help="how much of each frame's random variation carries into the next, 0 to below 1 "
                             "(0: a fresh draw every frame; 0.7: slower variation that strays further from "
                             "the training dance; default: the model's recommended value, else 0; "
                             "ignored by dancenet-2018)")
    add_component_correlation_argument(parser)
    add_retries_argument(parser)
    parser.add_argument("--motion", default="motion", metavar="NAME", type=name_type("--motion"),
                        help="motion model inside RUN (default motion -> RUN/motion.*)")
    parser.add_argument("--loop-threshold", type=float, default=None,
                        help="mean soft IoU at which a 1 s window counts as a repeat (default: calibrated)")
    parser.add_argument("--music", metavar="SONG", help="generate to SONG and score beat alignment (docs/music.md)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="report directory")
    parser.set_defaults(handler=run_evaluate)

    parser = commands.add_parser("evaluate-video", parents=[common], help="measure any dance video",
                                 description="Measure videos from any system against real dance.",
                                 epilog=VIDEO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s); several = several seeds")
    parser.add_argument("--reference", required=True, metavar="DATASET", help="prepared dataset of real dance")
    parser.add_argument("--loop-threshold", type=float, default=None,
                        help="mean soft IoU at which a 1 s window counts as a repeat (default: calibrated)")
    parser.add_argument("--music", metavar="SONG", help="score beat alignment with SONG (docs/music.md)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="report directory")
    parser.set_defaults(handler=run_evaluate_video)


def _loop_threshold(args):
    from ..errors import DancenetError
    from ..evaluate.metrics import LOOP_THRESHOLD

    if args.loop_threshold is None:
        return LOOP_THRESHOLD
    if not 0 < args.loop_threshold <= 1:
        raise DancenetError(f"--loop-threshold {args.loop_threshold}: must be in (0, 1]")
    return args.loop_threshold


def _finish(evaluation, args, title: str) -> int:
    from ..evaluate.report import write_report

    write_report(evaluation, args.out, title=title)
    summary, real = evaluation.metrics["summary"], evaluation.metrics["reference_level"]
    print(summary_table(summary, real))
    if "music" in evaluation.metrics:
        music = evaluation.metrics["music"]
        print("beat alignment: " + ", ".join(
            f"{label} {music[key]['beat_alignment']:.3f}" for key, label in (
                ("with_music", "dance"), ("without_music", "chance"), ("real_at_random_offsets", "real"))
            if music[key]["beat_alignment"] is not None))
    print(f"report: {args.out}/index.html")
    return 0


def summary_table(summary: dict, real: dict) -> str:
    """The headline metrics as a plain-text table: metric, generated, real reference."""
    rows = [("metric", "generated", "real")]
    for key in ("freeze_ratio", "loop_ratio", "artifact_ratio", "stray_frame_ratio", "empty_frame_ratio",
                "frechet_distance", "diversity", "memorisation_mean_best_iou", "copied_frame_ratio",
                "unlike_frame_ratio", "reconstruction_iou", "motion_nll"):
        if key in summary or key in real:
            rows.append((key, _cell(summary.get(key)), _cell(real.get(key))))
    rows.append(("motion_energy_mean", _cell(summary["motion_energy"]["mean"]),
                 _cell(real["motion_energy"]["mean"])))
    worst, real_worst = summary.get("worst_window", {}), real.get("worst_window", {})
    for key in worst:  # each metric's worst window of any video (docs/metrics.md); older reports have none
        rows.append((f"worst window: {key}", worst_cell(worst[key], key), worst_cell(real_worst.get(key), key)))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}" for row in rows)


def worst_cell(entry: dict | None, key: str) -> str:
    """A worst window as text: its value, then where it is (video or clip, seconds) unless it is
    clean (``suite.worst_is_clean``)."""
    from ..evaluate.suite import worst_is_clean

    if entry is None:
        return "-"
    if worst_is_clean(key, entry):
        return "0"
    start = entry["start_seconds"]
    return (f"{_cell(entry['value'])} ({entry.get('video', entry.get('clip'))} "
            f"{start:g}-{start + entry['seconds']:g} s)")


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_evaluate(args) -> int:
    import time
    from pathlib import Path

    from .. import load
    from ..generate import check_correlation, check_retries
    from ..dataset import Dataset
    from ..errors import DancenetError, input_error
    from ..evaluate import suite
    from ..evaluate.report import check_report_directory
    from ..limits import MAX_EVALUATE_SECONDS, check_seconds
    from ..paths import check_output, run_files
    from ..progress import progress

    if args.samples < 1:
        raise DancenetError(f"--samples {args.samples}: must be at least 1")
    # every generated frame is held for the metrics: the cap is on all samples together
    check_seconds(args.seconds, "--seconds", limit=MAX_EVALUATE_SECONDS)
    if args.seconds * args.samples > MAX_EVALUATE_SECONDS:
        raise DancenetError(f"--samples {args.samples}: {args.samples} x {args.seconds:g} s is more than the "
                            f"{MAX_EVALUATE_SECONDS:g} s of video evaluate measures at most")
    for name, value in (("--temperature", args.temperature), ("--sigma-temperature", args.sigma_temperature)):
        if value is not None and not 0 < value < float("inf"):
            raise DancenetError(f"{name} {value}: must be positive")
    if args.noise_correlation is not None:
        check_correlation(args.noise_correlation)
    if args.component_correlation is not None:
        check_correlation(args.component_correlation, "--component-correlation")
    if args.retries is not None:
        check_retries(args.retries)
    loop_threshold = _loop_threshold(args)
    check_output(args.out, [*run_files(args.run, ("vae", args.motion)), args.reference], "-o")
    check_report_directory(args.out)
    if not Path(args.run).is_dir():
        raise input_error(args.run, "no such run directory")
    dataset = Dataset(args.reference)
    reference = suite.make_reference(dataset, suite.validation_clips(args.run, args.motion))
    music = _load_music(args)
    model = load(args.run, motion_name=args.motion)
    if args.noise_correlation is not None:
        model.noise_correlation = args.noise_correlation
    if args.component_correlation is not None:
        model.component_correlation = args.component_correlation
    elif music is not None:  # as dances to music draw, for the chance level (no music) too
        model.component_correlation = model.component_correlation_for(music=True)
    if args.retries is not None:
        model.retries = args.retries
    temperature, sigma_temperature = model.temperatures(args.temperature, args.sigma_temperature)
    videos = {}
    clock = time.perf_counter()
    for seed in progress(range(args.samples), total=args.samples, desc="generate", unit="video", quiet=args.quiet):
        frames = model.generate(seconds=args.seconds, seed=seed, temperature=temperature,
                                sigma_temperature=sigma_temperature, **({} if music is None else {"music": music}))
        if frames.shape[1:] != (dataset.height, dataset.width):
            raise DancenetError(f"{args.run}: generates {frames.shape[2]}x{frames.shape[1]} frames but the "
                                f"reference {args.reference} is {dataset.width}x{dataset.height}")
        videos[f"seed {seed}"] = frames
    generate_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    extra = suite.model_metrics(args.run, dataset, reference.clips, motion_name=args.motion)
    model_seconds = time.perf_counter() - clock
    for key in ("reconstruction_iou", "motion_nll"):
        if extra[key] is None:
            print(f"dancenet: note: {key} not available for this run", file=sys.stderr)
    evaluation = suite.evaluate_videos(videos, reference, loop_threshold=loop_threshold, extra=extra,
                                       quiet=args.quiet)
    evaluation.metrics["source"] = {"kind": "run", "run": str(args.run), "seconds": args.seconds,
                                    "motion": args.motion, "seeds": list(range(args.samples)),
                                    "temperature": temperature, "sigma_temperature": sigma_temperature,
                                    "noise_correlation": model.noise_correlation,
                                    "component_correlation": model.component_correlation, "retries": model.retries}
    evaluation.metrics["timings_seconds"]["generate"] = round(generate_seconds, 3)
    evaluation.metrics["timings_seconds"]["model_metrics"] = round(model_seconds, 3)
    if music is not None:  # the chance level: the same seeds without music
        plain = {name: model.generate(seconds=args.seconds, seed=seed, temperature=temperature,
                                      sigma_temperature=sigma_temperature)
                 for seed, name in enumerate(videos)}
        _add_music(evaluation, music, plain)
    return _finish(evaluation, args, f"dancenet evaluation of {args.run}")


def _load_music(args):
    """The song of --music, analysed (its first --seconds when given), or None."""
    if getattr(args, "music", None) is None:
        return None
    from ..music import load_music

    return load_music(args.music, getattr(args, "seconds", None))


def _add_music(evaluation, music, plain) -> None:
    """Beat alignment beside the other metrics: metrics["music"], shown in the report."""
    from ..evaluate.beats import music_alignment

    evaluation.metrics["music"] = music_alignment(music, evaluation.fps, evaluation.videos, plain,
                                                  evaluation.reference_frames)


def run_evaluate_video(args) -> int:
    import time
    from pathlib import Path

    from ..dataset import Dataset
    from ..errors import DancenetError
    from ..evaluate import suite
    from ..evaluate.report import check_report_directory
    from ..paths import check_output

    loop_threshold = _loop_threshold(args)
    check_output(args.out, [*args.videos, args.reference], "-o")
    check_report_directory(args.out)
    music = _load_music(args)
    dataset = Dataset(args.reference)
    check_video_lengths(args.videos)
    reference = suite.make_reference(dataset, None)
    videos = {}
    clock = time.perf_counter()
    for path in args.videos:
        frames, notes = suite.read_video(path, dataset.height, dataset.width, dataset.fps)
        for note in notes:
            print(f"dancenet: note: {note}", file=sys.stderr)
        if len(frames) == 0 or not frames.any():
            raise DancenetError(f"{path}: holds no dancer (every frame is empty after segmentation)")
        name = Path(path).name
        while name in videos:
            name += "'"
        videos[name] = frames
    read_seconds = time.perf_counter() - clock
    evaluation = suite.evaluate_videos(videos, reference, loop_threshold=loop_threshold, quiet=args.quiet)
    evaluation.metrics["source"] = {"kind": "video", "videos": [str(path) for path in args.videos]}
    evaluation.metrics["timings_seconds"]["read_videos"] = round(read_seconds, 3)
    if music is not None:  # chance level: the same videos against the song at random offsets
        _add_music(evaluation, music, None)
    return _finish(evaluation, args, "dancenet evaluation of " + ", ".join(Path(p).name for p in args.videos))


def check_video_lengths(videos) -> None:
    """Refuse videos longer than the evaluation limit in all, from their headers, before decoding
    (every frame measured is held in memory). A header without a duration is not refused here."""
    import av

    from ..errors import DancenetError
    from ..limits import MAX_EVALUATE_SECONDS

    total = 0.0
    for path in videos:
        try:
            with av.open(str(path)) as container:
                if container.duration is not None and container.duration > 0:
                    total += container.duration / av.time_base
        except (av.error.FFmpegError, OSError, ValueError):
            continue  # read_video names the problem with the file
    if total > MAX_EVALUATE_SECONDS:
        raise DancenetError(f"{videos[0]}: {total:.0f} s of video in all; evaluate-video measures at most "
                            f"{MAX_EVALUATE_SECONDS:g} s ({MAX_EVALUATE_SECONDS / 3600:g} hour)")
