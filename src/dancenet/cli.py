"""The ``dancenet`` command line: parse arguments, call library functions, print.

Each command lives in ``dancenet.commands.<name>`` with a ``register`` function; this file only
assembles them and turns a user's mistake (:class:`DancenetError`) into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("prepare", "vae", "motion", "generate", "evaluate", "app")

DESCRIPTION = """\
dancenet learns how a dancer moves from video or motion capture, then generates new dance videos.

in one command (prepare, train, evaluate; see dancenet train --help):
  dancenet train dance.mp4 --out runs/me --minutes 20
  dancenet generate runs/me -o dance.mp4 --seconds 60

step by step:
  dancenet prepare dance.mp4 --out data/me          # video, image folder or BVH -> silhouettes
  dancenet train vae data/me --out runs/me          # compress frames to latents
  dancenet encode runs/me data/me                   # latents for the motion model
  dancenet train motion runs/me                     # learn how latents follow each other
  dancenet generate runs/me -o dance.mp4 --seconds 60
  dancenet generate -o dance.mp4                    # the bundled salsa model
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (``dancenet: error: ...``), exit 2."""

    def error(self, message: str):
        print(f"dancenet: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="dancenet", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars or chatter")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train a run from a video in one go (train SOURCE... "
                                              "--out RUN), or one stage (train vae, train motion)",
                                description="Train one stage of a run: `train vae`, then "
                                            "`encode`, then `train motion`.")
    train_commands = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dancenet.commands.{name}")
        module.register(commands, train_commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Must be set before torch allocates anything (see dancenet.runtime).
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    from .commands.pipeline import build_parser as build_pipeline_parser, is_pipeline_call

    if is_pipeline_call(argv):  # `dancenet train SOURCE...`; `train vae|motion` are the stages
        parser, argv = build_pipeline_parser(OneLineErrorParser), argv[1:]
    else:
        parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), returned for in-process callers
        return int(exit_.code or 0)
    from .errors import DancenetError, one_line
    from .runtime import configure

    configure()
    try:
        result = args.handler(args)
    except (DancenetError, OSError, MemoryError) as error:
        print(f"dancenet: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dancenet: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
