"""``dancenet train SOURCE... --out RUN``: the whole pipeline in one command (``dancenet.pipeline``).

``dancenet train vae`` and ``dancenet train motion`` stay the single stages; ``cli.main`` sends
every other ``dancenet train ...`` here (see :func:`is_pipeline_call`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import positive_float

STAGE_COMMANDS = ("vae", "motion")

DESCRIPTION = """\
From a video (or an image folder, BVH motion capture, or a prepared dataset) to a model that
dances, in one command: prepare the silhouettes, train the VAE, encode, train the motion model,
then generate a few dances and measure them. Ctrl-C stops at the next step with a checkpoint;
run the same command with --resume to continue where it stopped."""

EPILOG = """\
examples:
  dancenet train my_dance.mp4 --out runs/me                 # 20 minutes of training
  dancenet train my_dance.mp4 --out runs/me --minutes 60    # longer: smoother, sharper
  dancenet train my_dance.mp4 --out runs/me --resume        # continue after Ctrl-C
  dancenet train ../shared/data/cmu61-salsa-bvh --out runs/salsa --source-fps 60
  dancenet train data/me --out runs/me2                     # an existing dataset

what --minutes buys: the budget is training time, shared by the VAE (75%) and the motion model
(25%). Preparing (about 1.5 s per second of video, finding the dancer), the motion model's
final check (about 2 minutes) and the evaluation come on top: on a 2-core machine, 103 s of
video with --minutes 20 took 25 minutes in all. 1-3 minutes of video want 15-30 minutes.
The run folder then holds the model, its training logs (metrics.csv, TensorBoard),
progress.json, preview.png (real frames above the VAE's reconstructions) and report/index.html.

one stage at a time instead:
  dancenet train vae DATASET --out RUN ...     (see dancenet train vae --help)
  dancenet train motion RUN ...                (see dancenet train motion --help)
"""


def is_pipeline_call(argv: list[str]) -> bool:
    """True for ``dancenet train ...`` unless it names a stage (``train vae``, ``train motion``)."""
    return bool(argv) and argv[0] == "train" and (len(argv) < 2 or argv[1] not in STAGE_COMMANDS)


def build_parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = parser_class(prog="dancenet train", description=DESCRIPTION, epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="video, image folder, BVH file or folder, or a prepared dataset")
    parser.add_argument("--out", "-o", required=True, metavar="RUN", help="run folder to write")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help="training time for VAE + motion model together (default 20; with "
                             "--resume, the run's own budget)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run at the stage where it stopped")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    parser.add_argument("--source-fps", type=positive_float, default=None, metavar="FPS",
                        help="real frame rate of the source when its header is wrong (BVH) or "
                             "absent (image folders)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_pipeline)
    return parser


def run_pipeline(args) -> int:
    import signal

    from tqdm import tqdm

    from ..pipeline import STAGES, train
    from ..progress import progress

    # SIGINT is how Ctrl-C and the app stop a run (with a checkpoint); a shell starts background
    # jobs with it ignored, which would make such a run unstoppable but by a kill.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    bars = []  # made at the first report, so that an early error prints alone
    printed = set()  # prepare's warnings and choices, each printed once above the bar

    def show(values: dict) -> None:
        if not bars:
            bars.append(progress(total=1000, desc="starting", unit="", quiet=args.quiet,
                                 bar_format="{percentage:3.0f}%|{bar}| {desc}"))
        bar = bars[0]
        lines = [(f"dancenet: warning: {warning}", sys.stderr) for warning in values["warnings"]]
        if not args.quiet:
            lines += [(note, sys.stdout) for note in values["notes"]]
        for line, stream in lines:
            if line not in printed:
                printed.add(line)
                tqdm.write(line, file=stream)
        losses = values["losses"]
        shown = {"val_iou": "IoU", "train_loss": "loss", "val_nll_nats_per_frame": "held-out NLL"}
        loss_text = "".join(f", {label} {losses[key]:.3g}" for key, label in shown.items()
                            if key in losses)
        bar.set_description_str(f"{values['stage']} ({values['stage_index'] + 1}/{len(STAGES)}), "
                                f"{_clock(values['seconds_left'])} left{loss_text}", refresh=False)
        bar.n = int(1000 * values["fraction"])
        bar.refresh()

    try:
        result = train(args.sources, args.out, minutes=args.minutes, resume=args.resume,
                       overwrite=args.overwrite, source_fps=args.source_fps, progress=show)
    finally:
        for bar in bars:
            bar.close()
    if result.status != "finished":
        print(f"dancenet: stopped during {result.stage}; continue with: dancenet train "
              f"{shlex.join(args.sources)} --out {shlex.quote(args.out)} --resume", file=sys.stderr)
        return 130
    print(result.summary)  # the result itself, printed with --quiet too (as `evaluate` does)
    print(f"report: {Path(args.out) / 'report' / 'index.html'}")
    print(f"make a video: {result.video_command}")
    return 0


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"
