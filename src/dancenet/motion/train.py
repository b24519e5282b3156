"""Train a motion model on the latents of a run (``RUN/latents.npz`` from ``dancenet encode``):
the motion model's batches, step and validation for the shared loop (:func:`dancenet.training.fit`).

Two ways of cutting the data into batches, one per preset:

- ``sequence_length == 1`` (``dancenet-2018``): every example is one frame -> the next frame,
  shuffled across the whole training set each epoch, as Keras ``fit`` did;
- otherwise (``default``): truncated BPTT. ``batch_size`` parallel streams each walk through one
  clip in consecutive windows of ``sequence_length`` frames, carrying their recurrent state from
  window to window; a stream that reaches the end of its clip restarts, with a zero state, at a
  random offset of a random training clip. Windows never cross a clip boundary.

The held-out score is the negative log-likelihood of the next frame's latent mean, in nats per frame
in *raw latent units* (the scaler's log-determinant is added back), so presets with different
scalers are compared on the same scale. Validation clips are whole clips. Each epoch's batch plan
comes from its own seed, so a resumed run replays it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checkpoint import read_model_info
from ..config import config_from_dict, load_recipe as read_recipe_file, preset_of, to_dict
from ..errors import input_error
from ..latents import LATENTS_FILE, Latents, load_latents
from ..training import (RunOptions, Stage, TrainingConfig, TrainResult, fit, make_optimizer,
                        open_run, resumed_recipe)
from .batches import pair_batches, reset_state, split_clips, stream_batches
from .mdn import log_likelihood
from .model import (PRESET_VALUES, LatentScaler, MotionConfig, MotionModel, preset_config,
                    save_motion, validation_nll)


@dataclass(frozen=True)
class MotionTraining(TrainingConfig):
    """How a motion model is trained (a recipe's ``training:``); field defaults are the
    ``default`` preset. val_clips "auto": the clips the VAE held out, else ~15% of the clips."""

    epochs: int | None = 200
    batch_size: int = 16                # parallel streams (one-frame examples for 2018)
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_fraction: float = 0.0
    gradient_clip: float = 1.0
    checkpoint_every: int | None = None
    sequence_length: int = 128          # frames per BPTT window (about 4 s at 30 fps)
    latent_source: str = "sample"       # "mean", "sample" (fresh each epoch) or "sample-once" (2018)
    input_noise: float = 0.0            # std of Gaussian noise added to inputs (model units)
    # Export the weights of the epoch with the lowest held-out NLL (early stopping): a few
    # minutes of dance overfit quickly, and the held-out NLL turns up long before training ends.
    keep_best: bool = True
    # Recommended generation temperatures, stored in the model file and used when a user gives
    # none: chosen by measuring rollouts of the trained model (docs/motion.md), not by training.
    generate_temperature: float = 1.0
    generate_sigma_temperature: float = 0.75

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.sequence_length >= 1, "sequence_length must be >= 1"),
            (self.latent_source in ("mean", "sample", "sample-once"),
             "latent_source must be mean, sample or sample-once"),
            (self.input_noise >= 0, "input_noise must be >= 0"),
            (self.generate_temperature > 0 and self.generate_sigma_temperature > 0,
             "generate temperatures must be > 0"),
        ]

    @classmethod
    def from_dict(cls, values: dict, label: str = "motion training") -> "MotionTraining":
        return config_from_dict(cls, values, label)


TRAINING_PRESETS = {
    "default": {},
    # Adam lr 5e-4, batch 1024, one frame per example, latents sampled once when encoding.
    "dancenet-2018": dict(learning_rate=5e-4, batch_size=1024, sequence_length=1, epochs=100,
                          latent_source="sample-once", gradient_clip=0.0, keep_best=False,
                          generate_sigma_temperature=1.0),
}


def preset_training(preset: str = "default", **overrides) -> MotionTraining:
    """The training recipe of a preset; ``None`` overrides are skipped."""
    return preset_of(MotionTraining, TRAINING_PRESETS, preset, **overrides)


def load_recipe(path: str | Path) -> tuple[MotionConfig, MotionTraining]:
    """A YAML recipe (``configs/motion-*.yaml``) -> (model config, training config)."""
    return read_recipe_file(path, MotionConfig, PRESET_VALUES, MotionTraining, TRAINING_PRESETS)


# --------------------------------------------------------------------------------------------
# Training


def train_motion(run: str | Path, config: MotionConfig | None = None,
                 training: MotionTraining | None = None, options: RunOptions = RunOptions(),
                 name: str = "motion") -> TrainResult:
    """Train (or resume) a motion model on ``RUN/latents.npz``; writes ``RUN/NAME.*``.

    config: the architecture (None: the default preset; latent_size always comes from the
    latents). training: the recipe (None: the config's preset). On resume both come from the
    checkpoint and only ``training``'s epochs / minutes (the budget) are taken.
    """
    from ..runtime import resolve_device

    run = Path(run)
    device = resolve_device(options.device)
    latents = load_latents(run / LATENTS_FILE)
    checkpoint = open_run(run, name, "motion", options)
    if checkpoint is not None:
        if checkpoint["stage"]["vae_hash"] != latents.vae_hash:
            raise input_error(run / LATENTS_FILE, "was made by another VAE than the checkpoint; "
                                                  "train again without --resume")
        config, training = resumed_recipe(checkpoint, MotionConfig, MotionTraining, training)
    size = latents.mean.shape[1]
    config = replace(config or preset_config("default", size), latent_size=size)
    training = training or preset_training(config.preset)
    stage = MotionStage(run, name, latents, config, training, device)
    return fit(stage, run, options, checkpoint,
               describe={"latents": str(run / LATENTS_FILE), "vae_hash": latents.vae_hash})


class MotionStage(Stage):
    """The motion model's part of the loop: a scaler fitted on the training clips, an epoch's
    batch plan from its own seed, the recurrent state carried from window to window, the best
    epoch kept for export."""

    kind = "motion"
    metric_columns = ["val_nll_nats_per_frame", "val_nll_nats_per_dim"]

    def __init__(self, run: Path, name: str, latents: Latents, config: MotionConfig,
                 training: MotionTraining, device: torch.device):
        self.run, self.name, self.latents, self.config, self.device = run, name, latents, config, device
        self.train_clips, val_clips = split_clips(latents, _vae_held_out(run, latents, training.val_clips))
        self.training = replace(training, val_clips=tuple(latents.clip_names[i] for i in val_clips))
        self.ranges, self.val_ranges = latents.clip_ranges(self.train_clips), latents.clip_ranges(val_clips)
        torch.manual_seed(training.seed)  # dropout draws from torch's global generator
        generator = torch.Generator().manual_seed(training.seed)
        self.noise_generator = torch.Generator().manual_seed(training.seed + 1)
        self.generators = {"noise": self.noise_generator}
        self.model = MotionModel(config).to(device)
        self.optimizer = make_optimizer(self.model, training)
        self.mean_rows = torch.from_numpy(latents.mean)
        self.fixed_rows = _training_rows(latents, training, generator) \
            if training.latent_source == "sample-once" else None
        fit_rows = self.fixed_rows if self.fixed_rows is not None else self.mean_rows
        train_index = torch.cat([torch.arange(start, stop) for start, stop in self.ranges])
        self.scaler = LatentScaler.fit(config.scaling, fit_rows[train_index]).to(device)
        self.steps_per_epoch = len(self._plan(torch.Generator().manual_seed(0)))
        self.carried, self.epoch, self.rows, self.plan = None, 0, None, []
        self.best = {"val_nll": math.inf, "epoch": 0, "model": None}

    def _plan(self, generator: torch.Generator) -> list:
        training = self.training
        if training.sequence_length == 1:
            return list(pair_batches(self.ranges, training.batch_size, generator))
        return list(stream_batches(self.ranges, training.batch_size, training.sequence_length,
                                   generator))

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        generator = torch.Generator().manual_seed(self.training.seed * 100_003 + epoch)
        self.rows = self.fixed_rows if self.fixed_rows is not None else \
            _training_rows(self.latents, self.training, generator)
        self.plan = self._plan(generator)

    def train_step(self, step: int, position: int) -> tuple[float, int]:
        window, reset = self.plan[position]
        normalise, device = self.scaler.normalise, self.device
        if window.shape[1] > 1:
            values = normalise(self.rows[window].to(device))
            inputs, targets = values[:, :-1], values[:, 1:]
        else:
            inputs, targets = normalise(self.rows[window].to(device)), normalise(self.rows[window + 1].to(device))
        if self.training.input_noise:
            inputs = inputs + self.training.input_noise * torch.randn(
                inputs.shape, generator=self.noise_generator).to(device)
        state = None if self.config.stateless else reset_state(self.carried, reset)
        params, self.carried = self.model(inputs, state)
        loss = -log_likelihood(params, targets).mean()
        loss.backward()
        return float(loss.detach()), int(targets.shape[0] * targets.shape[1])

    def validate(self) -> dict:
        if not self.val_ranges:
            return {}
        nll = validation_nll(self.model, self.scaler, self.mean_rows, self.val_ranges)
        return {"val_nll_nats_per_frame": nll, "val_nll_nats_per_dim": nll / self.config.latent_size}

    def end_epoch(self, metrics: dict) -> None:
        self.carried = None
        nll = metrics.get("val_nll_nats_per_frame")
        if nll is not None and nll < self.best["val_nll"]:
            self.best = {"val_nll": nll, "epoch": self.epoch + 1,
                         "model": {key: value.detach().cpu().clone()
                                   for key, value in self.model.state_dict().items()}}

    def state(self) -> dict:
        carried = self.carried
        if carried is not None:
            carried = [part.detach().cpu() for part in carried] if isinstance(carried, tuple) \
                else carried.detach().cpu()
        return {"vae_hash": self.latents.vae_hash, "scaler": self.scaler.to_dict(),
                "carried": carried, "best": self.best}

    def restore(self, state: dict) -> None:
        self.scaler = LatentScaler.from_dict(state["scaler"]).to(self.device)
        carried = state["carried"]
        if carried is not None:
            carried = tuple(part.to(self.device) for part in carried) if isinstance(carried, list) \
                else carried.to(self.device)
        self.carried, self.best = carried, state["best"]

    def export(self, run: Path, summary: dict) -> None:
        latents, training = self.latents, self.training
        val_nll, weights, exported_epoch = summary["metrics"].get("val_nll_nats_per_frame"), None, \
            summary["epochs_trained"]
        if training.keep_best and self.best["model"] is not None and \
                (val_nll is None or self.best["val_nll"] <= val_nll):
            val_nll, weights, exported_epoch = self.best["val_nll"], self.best["model"], self.best["epoch"]
        save_motion(run, self.model, self.scaler, {
            "vae_hash": latents.vae_hash, "dataset_hash": latents.dataset_hash, "fps": latents.fps,
            **_frame_size(run), "training": to_dict(training), **summary,
            "exported_epoch": exported_epoch, "val_nll_nats_per_frame": val_nll,
            "sampling": {"temperature": training.generate_temperature,
                         "sigma_temperature": training.generate_sigma_temperature},
            "val_clips": list(training.val_clips),
            # Where an unprimed rollout may start: the first frame of each training clip.
            "start_latents": [latents.mean[latents.offsets[i]].tolist() for i in self.train_clips]},
            name=self.name, state_dict=weights)


def _training_rows(latents: Latents, training: MotionTraining,
                   generator: torch.Generator) -> torch.Tensor:
    """The (frames, L) raw latents the model trains on (means, or samples drawn from ``generator``)."""
    mean = torch.from_numpy(latents.mean)
    if training.latent_source == "mean":
        return mean
    std = torch.exp(0.5 * torch.from_numpy(latents.log_var))
    return mean + std * torch.randn(mean.shape, generator=generator)


def _vae_held_out(run: Path, latents: Latents, val_clips):
    """``auto`` means the clips the VAE held out, when it recorded any: then both stages are
    judged on the same unseen dance. Anything else passes through unchanged."""
    if val_clips != "auto" or not (run / "vae.json").is_file():
        return val_clips
    names = read_model_info(run, "vae", "vae").metadata.get("val_clips")
    if isinstance(names, list) and names and all(name in latents.clip_names for name in names):
        return ",".join(names)
    return val_clips


def _frame_size(run: Path) -> dict:
    """height and width from RUN/vae.json (the motion model itself never sees pixels)."""
    if not (run / "vae.json").is_file():
        return {}
    config = read_model_info(run, "vae", "vae").config
    return {key: config[key] for key in ("height", "width") if key in config}
