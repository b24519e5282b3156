"""Train the silhouette VAE on a prepared dataset; resumable, interruptible, data-parallel.

The loop, top to bottom: open the dataset and split it by whole clips; build (or restore) model,
optimiser and generators; then for each step draw the next batch of frame indices from this
epoch's permutation, unpack those frames from the memory-mapped dataset, take one optimiser step,
and every ``checkpoint_every`` steps / at each epoch's end validate, log and checkpoint.

Files under ``RUN/vae-train/``: ``checkpoint.pt`` (everything needed to resume exactly),
``config.yaml``, ``metrics.csv``, ``events/`` (TensorBoard). ``RUN/vae.safetensors`` +
``RUN/vae.json`` hold the weights, rewritten at each checkpoint and at the end.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..checkpoint import load_checkpoint, save_checkpoint, save_model
from ..dataset import Dataset
from ..errors import DancenetError, input_error
from ..progress import progress
from ..training import (MetricsLog, StopSignals, TrainingClock, capture_rng_states, check_finite,
                        learning_rate_at, restore_rng_states)
from .loss import intersection_over_union, vae_loss
from .model import VAE, VAEConfig, check_frame_size

STATE_DIRECTORY = "vae-train"
CHECKPOINT = "checkpoint.pt"
METRIC_COLUMNS = ["epoch", "step", "elapsed_seconds", "learning_rate", "train_loss", "val_loss",
                  "val_reconstruction", "val_kl", "val_iou", "frames_per_second"]


@dataclass(frozen=True)
class TrainOptions:
    """How long and where to train (the model itself is described by :class:`VAEConfig`).

    epochs: passes over the training clips (None: the config's ``epochs``).
    minutes: wall-clock budget instead of epochs (the schedule then follows elapsed time).
    val_clips: clips held out for validation: a count, a list of names, 0 for none, or None for
        one clip when the dataset has several.
    checkpoint_every: steps between checkpoints (and at every epoch's end).
    max_steps: stop after this many steps in all, as an interruption would (a testing hook).
    val_max_frames: validation uses at most this many frames, evenly spread over the clips.
    """

    epochs: int | None = None
    minutes: float | None = None
    resume: bool = False
    overwrite: bool = False
    val_clips: int | tuple[str, ...] | None = None
    device: str = "cpu"
    seed: int = 0
    checkpoint_every: int = 500
    max_steps: int | None = None
    val_max_frames: int = 2048
    quiet: bool = False

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise DancenetError(f"--epochs {self.epochs}: must be >= 1")
        if self.minutes is not None and not self.minutes > 0:
            raise DancenetError(f"--minutes {self.minutes}: must be a positive number")
        if self.checkpoint_every < 1:
            raise DancenetError(f"--checkpoint-every {self.checkpoint_every}: must be >= 1")


@dataclass
class TrainResult:
    """What a training session ended with. ``model`` is the plain (unwrapped) module."""

    model: VAE
    step: int
    epoch: int
    stopped: str          # "finished", "time", "max_steps", or "signal:<number>"
    val_iou: float
    val_loss: float
    checkpoint_path: Path


def train_vae(dataset_path: str | os.PathLike, run: str | os.PathLike, config: VAEConfig | None,
              options: TrainOptions = TrainOptions()) -> TrainResult:
    """Train (or with ``options.resume`` continue training) the VAE of ``run`` on a dataset.

    config: the model and optimiser settings for a new run (ignored on resume, where the
    checkpoint's config is used). Under torchrun every rank calls this; only rank 0 writes.
    """
    from ..runtime import resolve_device

    dataset = Dataset(dataset_path)
    run = Path(run)
    state_directory = run / STATE_DIRECTORY
    checkpoint_path = state_directory / CHECKPOINT
    context, device = distributed.setup(resolve_device(options.device))
    try:
        checkpoint = _open_run(run, checkpoint_path, dataset, options)
        if checkpoint is not None:
            config = VAEConfig.from_dict(checkpoint["config"])
        if config is None:
            raise ValueError("a new run needs a VAEConfig")
        check_frame_size(config, dataset.height, dataset.width, str(dataset.path))
        return _train(dataset, run, config, options, checkpoint, context, device)
    finally:
        distributed.teardown(context)


def _open_run(run: Path, checkpoint_path: Path, dataset: Dataset, options: TrainOptions) -> dict | None:
    """The checkpoint to resume from (None for a fresh run); refuse to clobber an existing run."""
    if options.resume:
        if not run.exists():
            raise input_error(run, "no such run directory to resume; train without --resume first")
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint.get("kind") != "vae-train":
            raise input_error(checkpoint_path, "is not a VAE training checkpoint")
        if checkpoint["dataset_hash"] != dataset.manifest_hash:
            raise input_error(dataset.path, "is not the dataset this run was trained on (its "
                                            "manifest hash differs); resume with the same dataset")
        return checkpoint
    if checkpoint_path.exists() or (run / "vae.safetensors").exists():
        if not options.overwrite:
            raise input_error(run, "already holds a trained VAE; pass --resume to continue it, "
                                   "--overwrite to start again, or choose another --out")
    return None


def _batch_indices(permutation: torch.Tensor, position: int, batch_size: int,
                   context: distributed.DistributedContext) -> np.ndarray:
    """This rank's share of batch ``position`` of the epoch, sorted for memory-map locality."""
    batch = permutation[position * batch_size:(position + 1) * batch_size]
    share = batch.tensor_split(context.world_size)[context.rank]
    return np.sort(share.numpy())


def _make_optimizer(model: VAE, config: VAEConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        # Keras' RMSprop defaults (rho 0.9, epsilon 1e-7), as the 2018 model trained with.
        return torch.optim.RMSprop(model.parameters(), lr=config.learning_rate, alpha=0.9, eps=1e-7)
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.dim() > 1 else no_decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate, betas=(0.9, 0.99))


def _noise_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The sampling noise of one step on one rank: seeded from (seed, rank, step), so resuming
    needs no per-rank generator state."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2 ** 63))
    return generator


def augment(frames: torch.Tensor, generator: torch.Generator, flip: bool, shift: int,
            scale: float = 0.0, rotate: float = 0.0) -> torch.Tensor:
    """Randomly mirror each frame left-right, scale each by up to ``scale`` (relative) and rotate
    it by up to ``rotate`` degrees about the frame's centre, then translate the batch by up to
    ``shift`` pixels. Frames stay binary.

    frames: (n, 1, H, W) float; the generator is the step's own, so a resumed run draws the same.
    """
    if flip:
        mirrored = torch.rand(len(frames), generator=generator, device=frames.device) < 0.5
        frames = torch.where(mirrored[:, None, None, None], frames.flip(-1), frames)
    if scale > 0 or rotate > 0:
        frames = _random_affine(frames, generator, scale, rotate)
    if shift > 0:
        dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator, device=frames.device).tolist()
        height, width = frames.shape[-2:]
        shifted = torch.zeros_like(frames)
        shifted[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
            frames[..., max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
        frames = shifted
    return frames


def _random_affine(frames: torch.Tensor, generator: torch.Generator, scale: float,
                   rotate: float) -> torch.Tensor:
    """Each frame zoomed by a factor in [1 - scale, 1 + scale] and turned by an angle in
    [-rotate, rotate] degrees (in pixel space, so a non-square frame is not sheared)."""
    count, (height, width) = len(frames), frames.shape[-2:]
    draws = torch.rand(2, count, generator=generator, device=frames.device) * 2 - 1
    zoom = 1 + scale * draws[0]
    angle = torch.deg2rad(rotate * draws[1])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    zeros = torch.zeros_like(cos)
    # affine_grid maps output to input coordinates normalised to [-1, 1] on each axis
    theta = torch.stack([torch.stack([cos, -sin * height / width, zeros], 1),
                         torch.stack([sin * width / height, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    warped = F.grid_sample(frames.contiguous(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    binary = (warped > 0.5).to(frames.dtype)
    if frames.is_contiguous(memory_format=torch.channels_last):
        binary = binary.contiguous(memory_format=torch.channels_last)
    return binary


def _clip_indices(clips) -> np.ndarray:
    if not clips:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(clip.start, clip.stop, dtype=np.int64) for clip in clips])


@torch.inference_mode()
def evaluate(model: VAE, dataset: Dataset, indices: np.ndarray, batch_size: int | None = None) -> dict:
    """Validation metrics reconstructing from the posterior mean.

    Returns loss / reconstruction / kl (per frame, beta as configured) and IoU at 0.5, averaged
    over ``indices`` (NaN for an empty set).
    """
    if len(indices) == 0:
        return {"val_loss": float("nan"), "val_reconstruction": float("nan"),
                "val_kl": float("nan"), "val_iou": float("nan")}
    batch_size = batch_size or model.config.inference_batch_size
    was_training = model.training
    model.eval()
    totals = np.zeros(4)
    for start in range(0, len(indices), batch_size):
        frames = model.prepare_frames(torch.from_numpy(dataset.frames_at(indices[start:start + batch_size])))
        mean, log_var = model.encode_moments(frames)
        output = model.decode_output(mean)
        loss, reconstruction, kl = vae_loss(output, frames, mean, log_var,
                                            model.decoder.outputs_logits, model.config.beta)
        probabilities = torch.sigmoid(output) if model.decoder.outputs_logits else output
        iou = intersection_over_union(probabilities, frames).mean()
        totals += len(frames) * np.array([loss.item(), reconstruction.item(), kl.item(), iou.item()])
    model.train(was_training)
    totals /= len(indices)
    return dict(zip(["val_loss", "val_reconstruction", "val_kl", "val_iou"], totals.tolist()))


def _spread(indices: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``indices``, evenly spaced."""
    if len(indices) <= limit:
        return indices
    return indices[np.linspace(0, len(indices) - 1, num=limit).round().astype(np.int64)]


def _train(dataset: Dataset, run: Path, config: VAEConfig, options: TrainOptions,
           checkpoint: dict | None, context: distributed.DistributedContext,
           device: torch.device) -> TrainResult:
    state_directory = run / STATE_DIRECTORY
    checkpoint_path = state_directory / CHECKPOINT
    quiet = options.quiet or not context.is_main

    # ---- data: split by whole clips
    if checkpoint is not None:
        validation_names = list(checkpoint["val_clip_names"])
        train_clips = [clip for clip in dataset.clips if clip.name not in validation_names]
        validation_clips = [dataset.clip(name) for name in validation_names]
    else:
        val_clips = options.val_clips
        if val_clips is None:
            val_clips = 1 if len(dataset.clips) > 1 else 0
        train_clips, validation_clips = dataset.split_clips(val_clips)
    if not train_clips:
        raise input_error(dataset.path, "has no clips left for training after the validation split")
    train_indices = torch.from_numpy(_clip_indices(train_clips))
    validation_indices = _spread(_clip_indices(validation_clips), options.val_max_frames)
    batch_size = min(config.batch_size, len(train_indices))
    steps_per_epoch = max(1, len(train_indices) // batch_size)
    epochs = options.epochs or (10 ** 9 if options.minutes else config.epochs)
    if checkpoint is not None and options.epochs is None and options.minutes is None:
        epochs = checkpoint["epochs"]
    total_steps = epochs * steps_per_epoch
    budget_seconds = options.minutes * 60 if options.minutes else None
    if checkpoint is not None and options.minutes is None and options.epochs is None:
        budget_seconds = checkpoint.get("budget_seconds")

    # ---- model, optimiser, generators
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = VAE(config)
    model.to(device)
    optimizer = _make_optimizer(model, config)
    data_generator = torch.Generator().manual_seed(options.seed)
    step, epoch, elapsed, seed = 0, 0, 0.0, options.seed
    epoch_loss_sum, epoch_loss_count = 0.0, 0
    epoch_start_state = data_generator.get_state()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng_states(checkpoint["rng"], {"data": data_generator})
        step, epoch, elapsed, seed = (checkpoint["step"], checkpoint["epoch"],
                                      checkpoint["elapsed_seconds"], checkpoint["seed"])
        epoch_loss_sum, epoch_loss_count = checkpoint["epoch_loss_sum"], checkpoint["epoch_loss_count"]
        epoch_start_state = checkpoint["epoch_start_data_state"]
    trained = model
    if context.enabled:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()

    if context.is_main:
        state_directory.mkdir(parents=True, exist_ok=True)
        _write_config_yaml(state_directory / "config.yaml", config, options, dataset,
                           [clip.name for clip in validation_clips], epochs, budget_seconds)
    metrics = MetricsLog(state_directory, METRIC_COLUMNS, enabled=context.is_main,
                         resume_epoch=epoch if checkpoint is not None else 0)
    model_config = {"kind": "vae", **config.to_dict(), "fps": dataset.fps,
                    "dataset_hash": dataset.manifest_hash, "val_clips": [c.name for c in validation_clips]}

    def save(reason: str) -> None:
        if not context.is_main:
            return
        save_checkpoint(checkpoint_path, {
            "kind": "vae-train", "preset": config.preset, "config": config.to_dict(),
            "dataset_hash": dataset.manifest_hash, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {"schedule": config.schedule, "total_steps": total_steps,
                          "budget_seconds": budget_seconds},
            "rng": capture_rng_states({"data": data_generator}),
            "epoch_start_data_state": epoch_start_state,
            "step": step, "epoch": epoch, "epochs": epochs, "budget_seconds": budget_seconds,
            "elapsed_seconds": clock.elapsed, "seed": seed,
            "epoch_loss_sum": epoch_loss_sum, "epoch_loss_count": epoch_loss_count,
            "val_clip_names": [clip.name for clip in validation_clips], "reason": reason,
        })
        save_model(run, "vae", model.state_dict(), model_config)

    clock = TrainingClock(elapsed)
    if budget_seconds:
        bar = progress(total=int(budget_seconds), desc="train vae", unit="s", quiet=quiet,
                       initial=min(int(elapsed), int(budget_seconds)))
    else:
        bar = progress(total=total_steps, desc="train vae", unit="step", quiet=quiet, initial=step)
    micro_batch = config.micro_batch or batch_size
    stopped, last_metrics = "finished", {"val_iou": float("nan"), "val_loss": float("nan")}
    session_frames, session_start = 0, clock.elapsed
    learning_rate = config.learning_rate
    try:
        with StopSignals() as signals:
            data_generator.set_state(epoch_start_state)
            permutation = torch.randperm(len(train_indices), generator=data_generator)
            while epoch < epochs:
                position = step - epoch * steps_per_epoch
                # ---- should we stop before this step? (every rank must agree)
                budget_over = budget_seconds is not None and clock.elapsed >= budget_seconds
                step_limit = options.max_steps is not None and step >= options.max_steps
                flags = distributed.all_reduce_max(
                    torch.tensor([float(signals.requested), float(budget_over), float(step_limit)]),
                    context)
                if flags[0] > 0:
                    stopped = f"signal:{int(flags[0])}"
                elif flags[1] > 0:
                    stopped = "time"
                elif flags[2] > 0:
                    stopped = "max_steps"
                if stopped != "finished":
                    break

                progress_fraction = (clock.elapsed / budget_seconds if budget_seconds
                                     else step / total_steps)
                learning_rate = learning_rate_at(config.learning_rate, config.schedule,
                                                 progress_fraction, config.warmup_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate

                # ---- one optimiser step, in micro-batches when memory asks for it
                indices = train_indices[_batch_indices(permutation, position, batch_size, context)]
                frames = model.prepare_frames(torch.from_numpy(dataset.frames_at(indices.numpy())))
                generator = _noise_generator(seed, context.rank, step, device)
                frames = augment(frames, generator, config.augment_flip, config.augment_shift,
                                 config.augment_scale, config.augment_rotate)
                chunks = frames.split(micro_batch)
                step_loss = 0.0
                for index, chunk in enumerate(chunks):
                    sync = index == len(chunks) - 1 or not context.enabled
                    with (nullcontext() if sync else trained.no_sync()):
                        output, mean, log_var = trained(chunk, generator)
                        loss, _, _ = vae_loss(output, chunk, mean, log_var,
                                              model.decoder.outputs_logits, config.beta)
                        (loss * (len(chunk) / len(frames))).backward()
                    step_loss += loss.item() * len(chunk) / len(frames)
                finite = distributed.all_reduce_max(torch.tensor([float(not math.isfinite(step_loss))]),
                                                    context)
                if finite.item() > 0:
                    check_finite(step_loss if not math.isfinite(step_loss) else float("nan"), step,
                                 checkpoint_path)
                if config.gradient_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_loss_sum += step_loss
                epoch_loss_count += 1
                session_frames += len(frames) * context.world_size
                if budget_seconds:
                    bar.n = min(int(clock.elapsed), int(budget_seconds))
                    bar.refresh()
                else:
                    bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.1f}", lr=f"{learning_rate:.2g}", epoch=epoch,
                                refresh=False)

                # ---- end of an epoch: validate, log, checkpoint
                if step % steps_per_epoch == 0:
                    if context.is_main:
                        last_metrics = evaluate(model, dataset, validation_indices)
                        seconds = max(clock.elapsed - session_start, 1e-9)
                        metrics.log(step, {"epoch": epoch, "step": step,
                                           "elapsed_seconds": clock.elapsed,
                                           "learning_rate": learning_rate,
                                           "train_loss": epoch_loss_sum / max(epoch_loss_count, 1),
                                           "frames_per_second": session_frames / seconds,
                                           **last_metrics})
                    epoch += 1
                    epoch_loss_sum, epoch_loss_count = 0.0, 0
                    epoch_start_state = data_generator.get_state()
                    if epoch < epochs:
                        permutation = torch.randperm(len(train_indices), generator=data_generator)
                    save("epoch")
                    distributed.barrier(context)
                elif step % options.checkpoint_every == 0:
                    save("periodic")
            if stopped == "time" and step % steps_per_epoch != 0 and context.is_main:
                # a --minutes run ends inside an epoch: measure where it ended
                last_metrics = evaluate(model, dataset, validation_indices)
                metrics.log(step, {"epoch": epoch, "step": step, "elapsed_seconds": clock.elapsed,
                                   "learning_rate": learning_rate,
                                   "train_loss": epoch_loss_sum / max(epoch_loss_count, 1),
                                   "frames_per_second": session_frames
                                   / max(clock.elapsed - session_start, 1e-9), **last_metrics})
            save(stopped)
            distributed.barrier(context)
    finally:
        bar.close()
        metrics.close()
    if stopped.startswith("signal") and context.is_main:
        print(f"dancenet: stopped at step {step}; checkpoint saved to {checkpoint_path}",
              file=sys.stderr)
    return TrainResult(model=model, step=step, epoch=epoch, stopped=stopped,
                       val_iou=float(last_metrics["val_iou"]), val_loss=float(last_metrics["val_loss"]),
                       checkpoint_path=checkpoint_path)


def _write_config_yaml(path: Path, config: VAEConfig, options: TrainOptions, dataset: Dataset,
                       validation_names: list[str], epochs: int, budget_seconds: float | None) -> None:
    import yaml

    from ..atomic import atomic_file

    document = {
        "vae": config.to_dict(),
        "training": {"epochs": epochs if budget_seconds is None else None,
                     "minutes": budget_seconds / 60 if budget_seconds else None,
                     "seed": options.seed, "device": options.device,
                     "checkpoint_every": options.checkpoint_every, "val_clips": validation_names},
        "dataset": {"path": str(dataset.path), "manifest_hash": dataset.manifest_hash,
                    "frames": len(dataset), "fps": dataset.fps},
    }
    with atomic_file(path) as temporary:
        temporary.write_text(yaml.safe_dump(document, sort_keys=False))
