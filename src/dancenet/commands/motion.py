"""``dancenet train motion``: learn how a run's latents follow each other."""

from __future__ import annotations

import argparse

from .training_args import add_training_arguments, recipe_from_args, run_options

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
Ctrl-C saves a checkpoint; --resume continues from it. An existing RUN/NAME model is only
replaced with --overwrite.

--minutes counts the training and its rollout checks. The default recipe then checks the kept
weights once more, with generation's redraws, to choose the sampling: on the salsa takes with 2
CPU cores that added 3-4 minutes, more with a larger VAE (--minutes 16 took 20).
"""


def register(commands, train_commands, common) -> None:
    parser = train_commands.add_parser(
        "motion", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG, help="train the motion model on a run's latents",
        description="Train a motion model (recurrent net + mixture-density head) on RUN/latents.npz.")
    parser.add_argument("run", metavar="RUN", help="run directory holding latents.npz")
    parser.add_argument("--name", default="motion",
                        help="model name inside RUN (default motion -> RUN/motion.*); a name, not a path")
    add_training_arguments(parser, "RUN/NAME-train/checkpoint.pt")
    parser.set_defaults(handler=run_train_motion)


def run_train_motion(args) -> int:
    from ..motion.model import PRESETS
    from ..motion.recipe import load_recipe, preset_training
    from ..motion.train import train_motion

    config, training = recipe_from_args(args, PRESETS, preset_training, load_recipe)
    result = train_motion(args.run, config, training, run_options(args), name=args.name)
    if not args.quiet:
        from ..motion.model import count_parameters

        nll = result.metrics.get("val_nll_nats_per_frame")
        stride = result.model.config.frame_stride
        unit = "nats/frame" if stride == 1 else f"nats/step of {stride} frames"
        held_out = "no validation clips" if nll is None else f"held-out NLL {nll:.2f} {unit}"
        print(f"trained {args.name} ({result.model.config.preset}, "
              f"{count_parameters(result.model):,} parameters): {result.epoch} epochs, "
              f"{result.step} steps in {result.seconds / 60:.1f} min ({result.stopped}), "
              f"{held_out}; wrote {args.run}/{args.name}.safetensors")
        print(chosen_epoch(args.run, args.name))
    return result.exit_code


def chosen_epoch(run, name: str) -> str:
    """One line: which epoch the model file holds and why (docs/motion.md, "Selection by rollout")."""
    from ..motion.model import load_motion

    metadata = load_motion(run, name)[2]
    selection, epoch = metadata.get("selection") or {}, metadata.get("exported_epoch")
    scores = selection.get("scores")
    if selection.get("by") == "rollout" and scores:
        failed = int(scores["rollout_failed_gates"])
        verdict = "passed every gate" if failed == 0 else f"missed {failed} gate{'s' * (failed > 1)}"
        return (f"kept epoch {epoch}: its dances scored best ({verdict}; Frechet "
                f"{scores['rollout_frechet_ratio']:.2f}x the validation clip's own level); "
                f"recommended --sigma-temperature {metadata['sampling']['sigma_temperature']:g} "
                f"--noise-correlation {metadata['sampling'].get('noise_correlation', 0.0):g} "
                f"--component-correlation {metadata['sampling'].get('component_correlation', 0.0):g}")
    by = selection.get("by") or ("nll" if (metadata.get("training") or {}).get("keep_best") else "")
    return f"kept epoch {epoch} ({'lowest held-out NLL' if by == 'nll' else 'the last'})"
