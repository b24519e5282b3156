"""``dancenet train vae``, ``dancenet encode`` and ``dancenet reconstruct``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import positive_float, positive_int
from .training_args import add_training_arguments, recipe_from_args, run_options

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


def register(commands, train_commands, common) -> None:
    train = train_commands.add_parser(
        "vae", parents=[common], help="train the silhouette VAE on a prepared dataset",
        description="Train the VAE that compresses each silhouette frame to a small latent vector.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("dataset", metavar="DATASET", help="a dataset made by `dancenet prepare`")
    train.add_argument("--out", "-o", required=True, metavar="RUN", help="run directory to write")
    add_training_arguments(train, "RUN/vae-train/checkpoint.pt")
    train.add_argument("--latent-size", type=positive_int, help="latent dimensions (default preset)")
    train.set_defaults(handler=train_handler)

    encode = commands.add_parser(
        "encode", parents=[common], help="encode a dataset with a run's VAE (latents.npz)",
        description="Encode every frame of a dataset to its latent mean and log-variance; "
                    "writes RUN/latents.npz, the motion model's input.",
        epilog=ENCODE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    encode.add_argument("run", metavar="RUN", help="a run directory with a trained VAE")
    encode.add_argument("dataset", metavar="DATASET", help="a dataset of the VAE's frame size")
    encode.add_argument("--device", default="cpu", help="cpu (default) or cuda")
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
    reconstruct.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    reconstruct.add_argument("--fps", type=positive_float, default=None,
                             help="frame rate for a non-dataset SOURCE (default: the VAE's)")
    reconstruct.add_argument("--max-frames", type=positive_int, default=None,
                             help="stop after this many frames")
    reconstruct.set_defaults(handler=reconstruct_handler)


def train_handler(args) -> int:
    from dataclasses import replace

    from ..dataset import Dataset
    from ..paths import check_output
    from ..vae.model import PRESETS, preset_config
    from ..vae.train import load_recipe, preset_training, train_vae

    # What the run gains (a dataset may live inside the run, as `dancenet train` lays it out):
    # none of it may be, hold or sit inside an input.
    for written in ("vae.safetensors", "vae.json", "vae-train"):
        check_output(Path(args.out) / written, [args.dataset, args.config], "--out")
    presets = {name: preset_config(name) for name in PRESETS}
    config, training = recipe_from_args(args, presets, preset_training, load_recipe)
    if config is not None:
        dataset = Dataset(args.dataset)
        config = replace(config, height=dataset.height, width=dataset.width,
                         latent_size=args.latent_size or config.latent_size)
    result = train_vae(args.dataset, args.out, config, training, run_options(args))
    if result.exit_code:
        print(f"continue with: dancenet train vae {args.dataset} --out {args.out} --resume",
              file=sys.stderr)
        return result.exit_code
    if not args.quiet:
        iou = result.metrics.get("val_iou", float("nan"))
        print(f"trained {result.step} steps ({result.epoch} epochs, {result.stopped}); "
              f"val IoU {iou:.4f}; model: {args.out}/vae.safetensors")
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
