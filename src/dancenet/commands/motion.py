"""``dancenet train motion``: learn how a run's latents follow each other."""

from __future__ import annotations

import argparse

from . import positive_float, positive_int

EPILOG = """\
presets:
  default         multi-second windows with the recurrent state carried across them (truncated
                  BPTT), standardised latents, clamped log standard deviations; what you want
  dancenet-2018   the original DanceNet model, kept as a baseline: one frame -> next frame,
                  min-max scaled latent samples, 3x512 LSTM, 24 mixtures (see docs/motion.md)

examples:
  dancenet train motion runs/me                          # default preset, default budget
  dancenet train motion runs/me --minutes 20 --val-clips 2
  dancenet train motion runs/me --resume --minutes 40    # continue, up to 40 minutes in all
  dancenet train motion runs/me --preset dancenet-2018 --name motion-2018 --minutes 20
  dancenet train motion runs/me --config configs/motion-default.yaml

Reads RUN/latents.npz (from `dancenet encode`); writes RUN/NAME.safetensors + RUN/NAME.json and
the training state in RUN/NAME-train/ (checkpoint.pt, metrics.csv, config.yaml, events/).
Ctrl-C saves a checkpoint; --resume continues from it.
"""


def register(commands, train_commands, common) -> None:
    parser = train_commands.add_parser(
        "motion", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG, help="train the motion model on a run's latents",
        description="Train a motion model (recurrent net + mixture-density head) on RUN/latents.npz.")
    parser.add_argument("run", metavar="RUN", help="run directory holding latents.npz")
    parser.add_argument("--preset", default=None, choices=("default", "dancenet-2018"),
                        help="model and training recipe (default: default)")
    parser.add_argument("--config", metavar="YAML", help="a recipe file such as configs/motion-default.yaml")
    parser.add_argument("--name", default="motion",
                        help="model name inside RUN (default motion -> RUN/motion.*)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, help="epochs to train (total, counting resumed ones)")
    budget.add_argument("--minutes", type=positive_float,
                        help="wall-clock budget in minutes for the whole run (a resumed run counts its "
                             "earlier sessions)")
    parser.add_argument("--val-clips", default=None, metavar="N|NAMES",
                        help="held-out clips: a count, comma-separated names, or auto (default auto, ~15%%)")
    parser.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    parser.add_argument("--learning-rate", type=positive_float, help="override the recipe's learning rate")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/NAME-train/checkpoint.pt")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.set_defaults(handler=run_train_motion)


def run_train_motion(args) -> int:
    from dataclasses import replace

    from ..errors import DancenetError
    from ..motion.train import TRAIN_PRESETS, load_recipe, train_motion
    from ..runtime import resolve_device

    device = resolve_device(args.device)
    preset, model_overrides = args.preset or "default", {}
    train_config = TRAIN_PRESETS[preset]
    if args.config:
        preset, model_overrides, train_config = load_recipe(args.config)
        if args.preset and args.preset != preset:
            raise DancenetError(f"--preset {args.preset} contradicts {args.config} (preset {preset})")
    fixed = [flag for flag, value in (("--batch-size", args.batch_size), ("--learning-rate", args.learning_rate),
                                      ("--seed", args.seed), ("--val-clips", args.val_clips),
                                      ("--config", args.config)) if value is not None]
    if args.resume and fixed:
        raise DancenetError(f"--resume continues the saved recipe; {', '.join(fixed)} cannot change it "
                            "(only --epochs and --minutes can; train under a new --name instead)")
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size,
                 "learning_rate": args.learning_rate, "seed": args.seed, "val_clips": args.val_clips}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if args.minutes is not None:
        overrides["minutes"] = args.minutes
        overrides.setdefault("epochs", 1_000_000)  # the clock decides
    train_config = replace(train_config, **overrides)
    result = train_motion(args.run, preset=preset, model_config=model_overrides,
                          train_config=train_config if (overrides or args.config or not args.resume) else None,
                          name=args.name, resume=args.resume, device=device, quiet=args.quiet)
    if not args.quiet:
        held_out = "no validation clips" if result.val_nll is None else \
            f"held-out NLL {result.val_nll:.2f} nats/frame"
        print(f"trained {args.name} ({preset}, {result.parameters:,} parameters): {result.epochs} "
              f"epochs, {result.steps} steps in {result.seconds / 60:.1f} min, {held_out}; "
              f"wrote {args.run}/{args.name}.safetensors")
    if result.stop_signal:
        return 128 + result.stop_signal  # 130 for Ctrl-C, 143 for SIGTERM, as the VAE's training
    return 130 if result.interrupted else 0
