"""What ``train vae`` and ``train motion`` share on the command line: the same flags, the same
recipe precedence (preset, then ``--config``, then flags) and the one ``--resume`` rule: options
that would change the run are refused; only the budget (``--epochs`` / ``--minutes``) may change.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from . import positive_float, positive_int

# flags that change what a run learns: refused with --resume
RECIPE_FLAGS = ("config", "preset", "batch_size", "learning_rate", "latent_size", "seed", "val_clips",
                "checkpoint_every", "checkpoint_minutes")


def _val_clips(text: str):
    """``2`` (a count), ``auto``, or ``take_a,take_b`` (clip names)."""
    return int(text) if text.strip().isdigit() else text.strip()


def add_training_arguments(parser: argparse.ArgumentParser, continued: str) -> None:
    """The flags every training command takes; ``continued`` names what --resume continues."""
    parser.add_argument("--config", metavar="YAML",
                        help="a recipe (configs/*.yaml); options given here override it")
    parser.add_argument("--preset", choices=("default", "dancenet-2018"),
                        help="model and training preset (default: default; dancenet-2018 is the "
                             "original 2018 model, kept as a baseline)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int,
                        help="passes over the training clips (in all, counting resumed sessions)")
    budget.add_argument("--minutes", type=positive_float,
                        help="wall-clock budget for the whole run instead (a resumed run counts "
                             "its earlier sessions; the learning-rate schedule follows the clock)")
    parser.add_argument("--resume", action="store_true", help=f"continue from {continued}")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a model of this name already in RUN (starts again)")
    parser.add_argument("--val-clips", type=_val_clips, metavar="K|NAMES",
                        help="hold out K clips, or these comma-separated clip names, for "
                             "validation (default: auto; 0: none)")
    parser.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    parser.add_argument("--learning-rate", type=positive_float, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                        help="steps between checkpoints (default: the recipe's)")
    parser.add_argument("--checkpoint-minutes", type=positive_float, metavar="MINUTES",
                        help="minutes between checkpoints (default 1)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help=argparse.SUPPRESS)


def run_options(args):
    """The session options (nothing here changes what is learnt)."""
    from ..training import RunOptions

    return RunOptions(resume=args.resume, overwrite=args.overwrite, device=args.device,
                      quiet=args.quiet, max_steps=args.max_steps)


def recipe_from_args(args, presets: dict, preset_training, load_recipe):
    """(model config, training config) from preset, ``--config`` and flags.

    presets: the model presets (name -> config); preset_training(name) -> training config;
    load_recipe(path) -> (model config, training config). With --resume: (None, a config that
    carries only the new budget, or None), after refusing flags that would change the run.
    """
    from ..errors import DancenetError

    if args.resume:
        fixed = ["--" + name.replace("_", "-") for name in RECIPE_FLAGS
                 if getattr(args, name, None) is not None]
        if fixed:
            raise DancenetError(f"--resume continues the saved recipe; {', '.join(fixed)} cannot "
                                "change it (only --epochs and --minutes can; start a new run instead)")
        if args.epochs is None and args.minutes is None:
            return None, None
        return None, _with_budget(preset_training("default"), args)
    if args.config:
        config, training = load_recipe(args.config)
        if args.preset and args.preset != config.preset:
            raise DancenetError(f"--preset {args.preset} contradicts {args.config} "
                                f"(preset {config.preset})")
    else:
        preset = args.preset or "default"
        config, training = presets[preset], preset_training(preset)
    training = _with_overrides(training, args)
    return config, _with_budget(training, args)


def _with_overrides(training, args):
    from ..config import with_overrides

    return with_overrides(training, "command line", batch_size=args.batch_size,
                          learning_rate=args.learning_rate, seed=args.seed,
                          val_clips=args.val_clips, checkpoint_every=args.checkpoint_every,
                          checkpoint_minutes=args.checkpoint_minutes)


def _with_budget(training, args):
    if args.epochs is not None:
        return replace(training, epochs=args.epochs, minutes=None)
    if args.minutes is not None:
        return replace(training, epochs=None, minutes=args.minutes)
    return training
