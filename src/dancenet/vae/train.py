"""Train the silhouette VAE on a prepared dataset: the VAE's step and validation for the shared
loop (:func:`dancenet.training.fit`), which resumes, stops, checkpoints and logs.

A step draws the next batch of frame indices from this epoch's permutation, unpacks those frames
from the memory-mapped dataset, augments them and runs forward and backward (in micro-batches when
memory asks for it, under DistributedDataParallel with torchrun).

Files: ``RUN/vae.safetensors`` + ``RUN/vae.json`` (the model, rewritten at each checkpoint) and
``RUN/vae-train/`` (``checkpoint.pt``, ``config.yaml``, ``metrics.csv``, ``events/``).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..config import config_from_dict, load_recipe as read_recipe_file, preset_of, to_dict
from ..dataset import Dataset
from ..errors import input_error
from ..training import (RunOptions, Stage, TrainingConfig, TrainResult, fit, make_optimizer,
                        open_run, resumed_recipe)
from .augment import augment
from .loss import intersection_over_union, vae_loss
from .model import PRESETS, VAE, VAEConfig, centroid_columns, check_frame_size, preset_config, save_vae

NAME = "vae"


@dataclass(frozen=True)
class VAETraining(TrainingConfig):
    """How a VAE is trained (a recipe's ``training:``); field defaults are the ``default`` preset.

    val_clips "auto": one clip when the dataset has several, else none.
    """

    beta: float = 1.0                  # weight of the KL term (1 = the plain ELBO)
    # weight of a soft-IoU term in the training loss (loss.py; train_loss includes it, validation
    # is the plain ELBO): a small gain that fades over an hour of training, so 0 (docs/vae.md)
    iou_weight: float = 0.0
    micro_batch: int = 0               # >0: accumulate gradients in chunks to cap memory
    # augmentation of training frames: a mirrored dancer and a dancer a few pixels off are still
    # plausible frames, and they widen the poses seen beyond one dancer's few takes
    augment_flip: bool = True
    augment_shift: int = 4             # max pixels of random translation (zero-filled)
    augment_scale: float = 0.08        # max relative zoom in or out, per frame
    augment_rotate: float = 6.0        # max degrees of rotation, per frame
    val_max_frames: int = 2048         # validation uses at most this many frames, spread evenly

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.beta >= 0 and self.micro_batch >= 0 and self.iou_weight >= 0,
             "beta, iou_weight and micro_batch must be >= 0"),
            (0 <= self.augment_scale < 0.5 and 0 <= self.augment_rotate <= 45
             and self.augment_shift >= 0, "augment_scale must be in [0, 0.5), augment_rotate in "
                                          "[0, 45] degrees and augment_shift >= 0"),
            (self.val_max_frames >= 1, "val_max_frames must be >= 1"),
        ]

    @classmethod
    def from_dict(cls, values: dict, label: str = "VAE training") -> "VAETraining":
        return config_from_dict(cls, values, label)


TRAINING_PRESETS = {
    "default": {},
    # RMSprop with Keras' defaults as in the original; batch 100, no augmentation.
    "dancenet-2018": dict(learning_rate=1e-3, batch_size=100, optimizer="rmsprop", weight_decay=0.0,
                          schedule="constant", warmup_fraction=0.0, epochs=50, micro_batch=25,
                          augment_flip=False, augment_shift=0, augment_scale=0.0,
                          augment_rotate=0.0),
}


def preset_training(preset: str = "default", **overrides) -> VAETraining:
    """The training recipe of a preset; ``None`` overrides are skipped."""
    return preset_of(VAETraining, TRAINING_PRESETS, preset, **overrides)


def load_recipe(path: str | os.PathLike) -> tuple[VAEConfig, VAETraining]:
    """A YAML recipe (``configs/vae-*.yaml``) -> (model config, training config); the frame size
    is the dataset's, set by the caller."""
    return read_recipe_file(path, VAEConfig, PRESETS, VAETraining, TRAINING_PRESETS)


def train_vae(dataset_path: str | os.PathLike, run: str | os.PathLike, config: VAEConfig | None,
              training: VAETraining | None = None, options: RunOptions = RunOptions()
              ) -> TrainResult:
    """Train (or with ``options.resume`` continue training) the VAE of ``run`` on a dataset.

    config, training: the model and its recipe for a new run (None: the default preset); on
    resume both come from the checkpoint and only ``training``'s epochs / minutes (the budget)
    are taken. Under torchrun every rank calls this; only rank 0 writes.
    """
    from ..runtime import resolve_device

    dataset = Dataset(dataset_path)
    run = Path(run)
    device = resolve_device(options.device)
    checkpoint = open_run(run, NAME, "vae", options)
    if checkpoint is not None:
        if checkpoint["stage"]["dataset_hash"] != dataset.manifest_hash:
            raise input_error(dataset.path, "is not the dataset this run was trained on (its "
                                            "manifest hash differs); resume with the same dataset")
        config, training = resumed_recipe(checkpoint, VAEConfig, VAETraining, training)
    config = config or preset_config("default", dataset.height, dataset.width)
    training = training or VAETraining()
    check_frame_size(config, dataset.height, dataset.width, str(dataset.path))
    if config.centre and not config.centre_width:
        train_clips, _ = _split(dataset, training.val_clips)
        config = replace(config, centre_width=centre_width_for(dataset, _clip_indices(train_clips),
                                                               config.downsampling))
    context, device = distributed.setup(device)
    try:
        stage = VAEStage(dataset, config, training, device, context)
        describe = {"dataset": {"path": str(dataset.path), "manifest_hash": dataset.manifest_hash,
                                "frames": len(dataset), "fps": dataset.fps}}
        return fit(stage, run, options, checkpoint, context, describe)
    finally:
        distributed.teardown(context)


class VAEStage(Stage):
    """The VAE's part of the loop: whole clips held out, one permutation of the training frames
    per epoch, augmented batches, reconstruction loss + KL."""

    name, kind = NAME, "vae"
    metric_columns = ["val_loss", "val_reconstruction", "val_kl", "val_iou"]

    def __init__(self, dataset: Dataset, config: VAEConfig, training: VAETraining,
                 device: torch.device, context: distributed.DistributedContext):
        self.dataset, self.config, self.device, self.context = dataset, config, device, context
        train_clips, validation_clips = _split(dataset, training.val_clips)
        self.training = replace(training, val_clips=tuple(clip.name for clip in validation_clips))
        self.train_indices = torch.from_numpy(_clip_indices(train_clips))
        self.validation_indices = _spread(_clip_indices(validation_clips), training.val_max_frames)
        self.batch_size = min(training.batch_size, len(self.train_indices))
        self.steps_per_epoch = max(1, len(self.train_indices) // self.batch_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training.seed)
            self.model = VAE(config)
        self.model.to(device)
        self.trained = self.model
        if context.enabled:
            self.trained = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.model, training)
        self.data_generator = torch.Generator().manual_seed(training.seed)
        self.generators = {"data": self.data_generator}
        self.epoch_start_state = None
        self.permutation = None

    def begin_epoch(self, epoch: int) -> None:
        if self.epoch_start_state is None:
            self.epoch_start_state = self.data_generator.get_state()
        self.data_generator.set_state(self.epoch_start_state)
        self.permutation = torch.randperm(len(self.train_indices), generator=self.data_generator)

    def end_epoch(self, metrics: dict) -> None:
        self.epoch_start_state = None

    def train_step(self, step: int, position: int) -> tuple[float, int]:
        training, model = self.training, self.model
        indices = self.train_indices[_batch_indices(self.permutation, position, self.batch_size,
                                                    self.context)]
        frames = model.prepare_frames(torch.from_numpy(self.dataset.frames_at(indices.numpy())))
        generator = _noise_generator(training.seed, self.context.rank, step, self.device)
        frames = augment(frames, generator, training.augment_flip, training.augment_shift,
                         training.augment_scale, training.augment_rotate)
        chunks = frames.split(training.micro_batch or self.batch_size)
        step_loss = 0.0
        for index, chunk in enumerate(chunks):
            sync = index == len(chunks) - 1 or not self.context.enabled
            with (nullcontext() if sync else self.trained.no_sync()):
                output, mean, log_var = self.trained(chunk, generator)
                loss, _, _ = vae_loss(output, chunk, mean, log_var, model.decoder.outputs_logits,
                                      training.beta, training.iou_weight)
                (loss * (len(chunk) / len(frames))).backward()
            step_loss += loss.item() * len(chunk) / len(frames)
        return step_loss, len(frames)

    def validate(self) -> dict:
        return evaluate(self.model, self.dataset, self.validation_indices, self.training.beta)

    def state(self) -> dict:
        return {"dataset_hash": self.dataset.manifest_hash, "epoch_start_state": self.epoch_start_state}

    def restore(self, state: dict) -> None:
        self.epoch_start_state = state["epoch_start_state"]

    def export(self, run: Path, summary: dict, final: bool = True) -> None:
        metadata = {"fps": self.dataset.fps, "dataset_hash": self.dataset.manifest_hash,
                    "val_clips": list(self.training.val_clips), "training": to_dict(self.training),
                    **summary}
        save_vae(run, self.model, metadata, NAME)


def _split(dataset: Dataset, val_clips) -> tuple[list, list]:
    """(train, validation) clips; "auto" holds out one clip when there are several."""
    if val_clips == "auto":
        val_clips = 1 if len(dataset.clips) > 1 else 0
    if isinstance(val_clips, str):
        val_clips = int(val_clips) if val_clips.isdigit() else \
            [name.strip() for name in val_clips.split(",") if name.strip()]
    train, validation = dataset.split_clips(val_clips)
    if not train:
        raise input_error(dataset.path, "has no clips left for training after the validation split")
    return train, validation


def _batch_indices(permutation: torch.Tensor, position: int, batch_size: int,
                   context: distributed.DistributedContext) -> np.ndarray:
    """This rank's share of batch ``position`` of the epoch, sorted for memory-map locality."""
    batch = permutation[position * batch_size:(position + 1) * batch_size]
    share = batch.tensor_split(context.world_size)[context.rank]
    return np.sort(share.numpy())


def _noise_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The sampling noise of one step on one rank: seeded from (seed, rank, step), so resuming
    needs no per-rank generator state."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2 ** 63))
    return generator


# Columns of room the centred window leaves beyond the widest reach of the training frames, on
# each side: a new pose may reach a little further than any the footage holds.
CENTRE_MARGIN = 4


def centre_width_for(dataset: Dataset, indices: np.ndarray, multiple: int, chunk: int = 4096) -> int:
    """The centred window's width for these frames: twice the furthest any dancer pixel lies
    from its frame's centroid column, plus ``CENTRE_MARGIN`` a side (one fewer on the right: a
    window of an even width has one column more left of its centre), rounded up to ``multiple``
    and at most the frame's width. The salsa takes reach 44 columns: a window of 96."""
    reach = 0
    for start in range(0, len(indices), chunk):
        frames = torch.from_numpy(dataset.frames_at(indices[start:start + chunk]))[:, None]
        centres = centroid_columns(frames)
        occupied = frames.sum(dim=(1, 2)) > 0  # (n, W): the columns holding some of the dancer
        columns = torch.arange(dataset.width)[None, :]
        distance = torch.where(occupied, (columns - centres[:, None]).abs(), torch.zeros_like(columns))
        reach = max(reach, int(distance.max()) if len(distance) else 0)
    width = 2 * (reach + CENTRE_MARGIN)
    return min(-(-width // multiple) * multiple, dataset.width)


def _clip_indices(clips) -> np.ndarray:
    if not clips:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(clip.start, clip.stop, dtype=np.int64) for clip in clips])


@torch.inference_mode()
def evaluate(model: VAE, dataset: Dataset, indices: np.ndarray, beta: float = 1.0,
             batch_size: int | None = None) -> dict:
    """Validation metrics reconstructing from the posterior mean.

    Returns loss / reconstruction / kl (per frame, KL weighted by ``beta``) and IoU at 0.5,
    averaged over ``indices`` (NaN for an empty set).
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
                                            model.decoder.outputs_logits, beta)
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
