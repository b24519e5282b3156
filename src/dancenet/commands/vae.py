"""``dancenet train vae``, ``dancenet encode`` and ``dancenet reconstruct``."""

from __future__ import annotations

import argparse
import sys

from . import positive_float, positive_int

TRAIN_EPILOG = """\
examples:
  dancenet train vae data/salsa --out runs/salsa                 # default preset, its epochs
  dancenet train vae data/salsa --out runs/salsa --minutes 30    # wall-clock budget instead
  dancenet train vae data/salsa --out runs/salsa --resume        # continue after Ctrl-C
  dancenet train vae data/salsa --out runs/2018 --preset dancenet-2018
  dancenet train vae data/salsa --out runs/salsa --config configs/vae-default.yaml
  torchrun --nproc_per_node=2 -m dancenet.cli train vae data/salsa --out runs/salsa

Ctrl-C (or SIGTERM) saves a checkpoint and stops; --resume continues exactly where it stopped.
Files: RUN/vae.safetensors + vae.json (the model), RUN/vae-train/ (checkpoint.pt, config.yaml,
metrics.csv, TensorBoard events: tensorboard --logdir RUN/vae-train/events).
"""

ENCODE_EPILOG = """\
example:
  dancenet encode runs/salsa data/salsa      # writes runs/salsa/latents.npz

latents.npz holds per-frame posterior mean and log_var (frames, latent_size), the clip names
and frame ranges, fps, and the hashes of the VAE and the dataset.
"""

RECONSTRUCT_EPILOG = """\
examples:
  dancenet reconstruct runs/salsa data/salsa -o recon.mp4
  dancenet reconstruct runs/salsa dance.mp4 -o recon.mp4 --max-frames 300

Left: the input silhouette; right: the VAE's reconstruction. Prints the mean IoU.
"""


def _val_clips(text: str):
    """``2`` (a count) or ``take_a,take_b`` (clip names)."""
    if text.strip().isdigit():
        return int(text)
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(commands, train_commands, common) -> None:
    train = train_commands.add_parser(
        "vae", parents=[common], help="train the silhouette VAE on a prepared dataset",
        description="Train the VAE that compresses each silhouette frame to a small latent vector.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("dataset", metavar="DATASET", help="a dataset made by `dancenet prepare`")
    train.add_argument("--out", "-o", required=True, metavar="RUN", help="run directory to write")
    train.add_argument("--config", metavar="YAML",
                       help="a recipe (configs/vae-*.yaml); options given here override it")
    train.add_argument("--preset", choices=("default", "dancenet-2018"),
                       help="model and optimiser preset (default: default; dancenet-2018 is the "
                            "original 2018 model, needs 208x120 frames)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="passes over the training clips")
    length.add_argument("--minutes", type=positive_float,
                        help="train for this wall-clock time instead (schedule follows the clock)")
    train.add_argument("--resume", action="store_true", help="continue from RUN's checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a VAE already in RUN")
    train.add_argument("--val-clips", type=_val_clips, metavar="K|NAMES",
                       help="hold out K clips, or these comma-separated clip names, for "
                            "validation (default: 1 when the dataset has several clips; 0: none)")
    train.add_argument("--device", default=None, help="cpu (default) or cuda")
    train.add_argument("--batch-size", type=positive_int, help="frames per optimiser step")
    train.add_argument("--latent-size", type=positive_int, help="latent dimensions (default preset)")
    train.add_argument("--learning-rate", type=positive_float, help="peak learning rate")
    train.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    train.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="STEPS",
                       help="steps between checkpoints (default 500; also at each epoch's end)")
    train.add_argument("--max-steps", type=positive_int, default=None, help=argparse.SUPPRESS)
    train.set_defaults(handler=train_handler)

    encode = commands.add_parser(
        "encode", parents=[common], help="encode a dataset with a run's VAE (latents.npz)",
        description="Encode every frame of a dataset to its latent mean and log-variance; "
                    "writes RUN/latents.npz, the motion model's input.",
        epilog=ENCODE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    encode.add_argument("run", metavar="RUN", help="a run directory with a trained VAE")
    encode.add_argument("dataset", metavar="DATASET", help="a dataset of the VAE's frame size")
    encode.add_argument("--device", default=None, help="cpu (default) or cuda")
    encode.add_argument("--batch-size", type=positive_int, default=None,
                        help="frames per batch (default: 256, or 32 for dancenet-2018)")
    encode.set_defaults(handler=encode_handler)

    reconstruct = commands.add_parser(
        "reconstruct", parents=[common], help="video of frames beside their VAE reconstruction",
        description="Encode and decode every frame of SOURCE and write both side by side.",
        epilog=RECONSTRUCT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    reconstruct.add_argument("run", metavar="RUN", help="a run directory with a trained VAE")
    reconstruct.add_argument("source", metavar="SOURCE",
                             help="a dataset, or a video / image folder / BVH as `prepare` takes")
    reconstruct.add_argument("--output", "-o", required=True, metavar="VIDEO.mp4")
    reconstruct.add_argument("--device", default=None, help="cpu (default) or cuda")
    reconstruct.add_argument("--fps", type=positive_float, default=None,
                             help="frame rate for a non-dataset SOURCE (default: the VAE's)")
    reconstruct.add_argument("--max-frames", type=positive_int, default=None,
                             help="stop after this many frames")
    reconstruct.set_defaults(handler=reconstruct_handler)


def _read_recipe(path: str) -> dict:
    import yaml

    from ..errors import input_error

    try:
        with open(path) as handle:
            document = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise input_error(path, "no such recipe file") from None
    except (OSError, yaml.YAMLError) as error:
        raise input_error(path, f"is not a readable YAML recipe ({type(error).__name__})") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(section) or {}, dict)
                                                 for section in ("vae", "training")):
        raise input_error(path, "must be a mapping with `vae:` and `training:` sections (see configs/)")
    return document


def train_handler(args) -> int:
    from ..dataset import Dataset
    from ..errors import input_error
    from ..paths import check_output
    from ..vae.model import preset_config
    from ..vae.train import TrainOptions, train_vae

    check_output(args.out, [args.dataset, args.config], "--out")  # harden: never overwrite an input
    recipe = _read_recipe(args.config) if args.config else {}
    model_values = dict(recipe.get("vae") or {})
    training_values = dict(recipe.get("training") or {})
    for key in ("height", "width"):
        model_values.pop(key, None)  # the dataset decides the frame size
    preset = args.preset or model_values.pop("preset", "default")
    model_values.pop("preset", None)
    overrides = {"batch_size": args.batch_size, "latent_size": args.latent_size,
                 "learning_rate": args.learning_rate}
    model_values.update({key: value for key, value in overrides.items() if value is not None})
    config = None
    if not args.resume:
        dataset = Dataset(args.dataset)
        try:
            config = preset_config(preset, dataset.height, dataset.width, **model_values)
        except TypeError as error:
            raise input_error(args.config, f"has an unknown setting ({error})") from None
    epochs, minutes = args.epochs, args.minutes
    if epochs is None and minutes is None:
        epochs, minutes = training_values.get("epochs"), training_values.get("minutes")
    val_clips = args.val_clips if args.val_clips is not None else training_values.get("val_clips")
    if isinstance(val_clips, list):
        val_clips = tuple(val_clips)
    options = TrainOptions(
        epochs=epochs, minutes=minutes, resume=args.resume, overwrite=args.overwrite,
        val_clips=val_clips, device=args.device or training_values.get("device", "cpu"),
        seed=args.seed if args.seed is not None else int(training_values.get("seed", 0)),
        checkpoint_every=args.checkpoint_every or int(training_values.get("checkpoint_every", 500)),
        max_steps=args.max_steps, quiet=args.quiet)
    result = train_vae(args.dataset, args.out, config, options)
    if result.stopped.startswith("signal"):
        print(f"continue with: dancenet train vae {args.dataset} --out {args.out} --resume",
              file=sys.stderr)
        return 128 + int(result.stopped.split(":")[1])
    if not args.quiet:
        print(f"trained {result.step} steps ({result.epoch} epochs, {result.stopped}); "
              f"val IoU {result.val_iou:.4f}; model: {args.out}/vae.safetensors")
    return 0


def encode_handler(args) -> int:
    from ..vae.encode import write_latents

    path = write_latents(args.run, args.dataset, device=args.device or "cpu",
                         batch_size=args.batch_size, quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def reconstruct_handler(args) -> int:
    from ..paths import check_output, run_files
    from ..vae.encode import reconstruct

    check_output(args.output, [args.source, *run_files(args.run, ("vae",))], "-o")  # harden: never overwrite an input
    summary = reconstruct(args.run, args.source, args.output, device=args.device or "cpu",
                          fps=args.fps, max_frames=args.max_frames, quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {args.output}: {summary['frames']} frames, mean IoU {summary['iou']:.4f}")
    return 0
