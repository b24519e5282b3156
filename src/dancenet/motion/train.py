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

import copy
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checkpoint import read_model_info
from ..config import config_from_dict, load_recipe as read_recipe_file, preset_of, to_dict
from ..errors import input_error
from ..latents import LATENTS_FILE, Latents, load_latents
from ..training import (RunOptions, Stage, TrainingConfig, TrainResult, fit, make_optimizer,
                        open_run, resumed_recipe)
from .batches import pair_batches, reset_state, split_with_test, stream_batches
from .mdn import log_likelihood
from . import selection
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
    # Export the weights of the best epoch rather than the last: a few minutes of dance overfit
    # quickly (copied, looping or jittering dances), long before the budget ends.
    keep_best: bool = True
    # What "best" means: "rollout" (the dances of the model, scored every few epochs against a
    # validation clip: motion/selection.py) or "nll" (the held-out NLL, every epoch).
    select: str = "rollout"
    select_every_frames: int = 100_000  # training frames between two rollout checks
    select_seconds: float = 60.0        # length of each check's dances (drift shows late)
    select_scored_seconds: float = 15.0  # the end of each dance that is decoded and scored
    select_seeds: int = 2               # dances per check and spread
    # The spreads a check tries (--sigma-temperature); the exported model recommends the best.
    select_sigma_temperatures: tuple[float, ...] = (0.5, 0.75, 1.0)
    patience: int | None = 10           # checks without a better one before training stops
    # Validate, check and export an exponential moving average of the weights (this decay per
    # step; null: the weights as trained). Smooths the epoch-to-epoch swings of the rollouts.
    average_decay: float | None = 0.98
    # Clips never trained on nor used to choose the epoch: "auto" = the clips the VAE held out.
    test_clips: int | str | tuple | None = "auto"
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
            (self.select in ("rollout", "nll"), "select must be rollout or nll"),
            (self.select_every_frames >= 1 and self.select_seeds >= 2, "select_every_frames must be "
             ">= 1 and select_seeds >= 2"),
            (2 <= self.select_scored_seconds <= self.select_seconds,
             "select_scored_seconds must be at least 2 and at most select_seconds"),
            (len(self.select_sigma_temperatures) >= 1 and all(value > 0 for value in self.select_sigma_temperatures),
             "select_sigma_temperatures must hold at least one value, all > 0"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or null"),
            (self.average_decay is None or 0 < self.average_decay < 1, "average_decay must be in (0, 1) or null"),
        ]

    @classmethod
    def from_dict(cls, values: dict, label: str = "motion training") -> "MotionTraining":
        return config_from_dict(cls, values, label)


TRAINING_PRESETS = {
    "default": {},
    # Adam lr 5e-4, batch 1024, one frame per example, latents sampled once when encoding.
    "dancenet-2018": dict(learning_rate=5e-4, batch_size=1024, sequence_length=1, epochs=100,
                          latent_source="sample-once", gradient_clip=0.0, keep_best=False,
                          patience=None, average_decay=None, generate_sigma_temperature=1.0),
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
    metric_columns = ["val_nll_nats_per_frame", "val_nll_nats_per_dim", *selection.COLUMNS]

    def __init__(self, run: Path, name: str, latents: Latents, config: MotionConfig,
                 training: MotionTraining, device: torch.device):
        self.run, self.name, self.latents, self.config, self.device = run, name, latents, config, device
        test_clips = _vae_held_out(run, latents) if training.test_clips == "auto" else \
            _names(training.test_clips)
        self.train_clips, val_clips, test_clips = split_with_test(latents, training.val_clips, test_clips)
        names = latents.clip_names
        self.training = replace(training, val_clips=tuple(names[i] for i in val_clips),
                                test_clips=tuple(names[i] for i in test_clips))
        self.ranges, self.val_ranges = latents.clip_ranges(self.train_clips), latents.clip_ranges(val_clips)
        torch.manual_seed(training.seed)  # dropout draws from torch's global generator
        generator = torch.Generator().manual_seed(training.seed)
        self.noise_generator = torch.Generator().manual_seed(training.seed + 1)
        self.generators = {"noise": self.noise_generator}
        self.model = MotionModel(config).to(device)
        self.optimizer = make_optimizer(self.model, training)
        # the weights validation, checks and export see: an average of the trained ones, or them
        self.averaged = copy.deepcopy(self.model) if training.average_decay else self.model
        self.mean_rows = torch.from_numpy(latents.mean)
        self.fixed_rows = _training_rows(latents, training, generator) \
            if training.latent_source == "sample-once" else None
        fit_rows = self.fixed_rows if self.fixed_rows is not None else self.mean_rows
        train_index = torch.cat([torch.arange(start, stop) for start, stop in self.ranges])
        self.scaler = LatentScaler.fit(config.scaling, fit_rows[train_index]).to(device)
        self.steps_per_epoch = len(self._plan(torch.Generator().manual_seed(0)))
        self.carried, self.epoch, self.rows, self.plan = None, 0, None, []
        self.best = {"val_nll": math.inf, "epoch": 0, "model": None, "rank": None, "scores": None,
                     "checks_since": 0}
        self.judge, self.check_every = self._judge(), 1
        if self.judge is not None:
            frames_per_epoch = self.steps_per_epoch * training.batch_size * training.sequence_length
            self.check_every = max(1, round(training.select_every_frames / frames_per_epoch))

    @property
    def selects_by_rollout(self) -> bool:
        return self.training.keep_best and self.training.select == "rollout"

    def _judge(self):
        """The rollout judge, or None where selection is by NLL or cannot roll out (no VAE in
        the run, or no validation clip long enough); then the NLL chooses, and a note says so."""
        from .selection import CannotJudge, RolloutJudge

        if not self.selects_by_rollout:
            return None
        why = "no validation clip" if not self.val_ranges else \
            "no VAE in the run to decode the rollouts" if not (self.run / "vae.json").is_file() else ""
        if not why:
            starts = [self.latents.mean[self.latents.offsets[i]].tolist() for i in self.train_clips]
            training = self.training
            try:
                return RolloutJudge(self.run, self.mean_rows, self.val_ranges, self.ranges, starts,
                                    self.latents.fps, training.select_seconds,
                                    training.select_scored_seconds, training.select_seeds,
                                    training.generate_temperature, training.select_sigma_temperatures,
                                    self.device)
            except CannotJudge as error:
                why = str(error)
        print(f"dancenet: note: selecting the motion model by held-out NLL: {why}", file=sys.stderr)
        self.training = replace(self.training, select="nll")
        return None

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

    @torch.no_grad()
    def after_step(self) -> None:
        if self.averaged is not self.model:
            for average, current in zip(self.averaged.state_dict().values(), self.model.state_dict().values()):
                average.lerp_(current, 1 - self.training.average_decay)

    def validate(self) -> dict:
        if not self.val_ranges:
            return {}
        nll = validation_nll(self.averaged, self.scaler, self.mean_rows, self.val_ranges)
        metrics = {"val_nll_nats_per_frame": nll, "val_nll_nats_per_dim": nll / self.config.latent_size}
        if self.judge is not None and (self.epoch + 1) % self.check_every == 0:
            metrics.update(self.judge.check(self.averaged, self.scaler).columns())
        return metrics

    def end_epoch(self, metrics: dict) -> None:
        self.carried = None
        if self.judge is not None:
            if "rollout_failed_gates" not in metrics:
                return
            rank = [metrics["rollout_failed_gates"], metrics["rollout_frechet_ratio"]]
            better = self.best["rank"] is None or rank < self.best["rank"]
        else:
            nll = metrics.get("val_nll_nats_per_frame")
            better = nll is not None and nll < self.best["val_nll"]
        if better:
            self.best = {"val_nll": metrics["val_nll_nats_per_frame"], "epoch": self.epoch + 1,
                         "model": {key: value.detach().cpu().clone()
                                   for key, value in self.averaged.state_dict().items()},
                         "rank": rank if self.judge is not None else None, "checks_since": 0,
                         "scores": {key: value for key, value in metrics.items()
                                    if key.startswith("rollout_")} or None}
        else:
            self.best["checks_since"] += 1

    def should_stop(self) -> bool:
        """Early stopping: ``patience`` checks (epochs, when the NLL selects) without a better one."""
        patience = self.training.patience
        return bool(self.training.keep_best and patience and self.best["checks_since"] >= patience)

    def state(self) -> dict:
        carried = self.carried
        if carried is not None:
            carried = [part.detach().cpu() for part in carried] if isinstance(carried, tuple) \
                else carried.detach().cpu()
        return {"vae_hash": self.latents.vae_hash, "scaler": self.scaler.to_dict(),
                "carried": carried, "best": self.best,
                "averaged": None if self.averaged is self.model else
                {key: value.detach().cpu().clone() for key, value in self.averaged.state_dict().items()}}

    def restore(self, state: dict) -> None:
        self.scaler = LatentScaler.from_dict(state["scaler"]).to(self.device)
        carried = state["carried"]
        if carried is not None:
            carried = tuple(part.to(self.device) for part in carried) if isinstance(carried, list) \
                else carried.to(self.device)
        self.carried, self.best = carried, state["best"]
        if state.get("averaged") is not None and self.averaged is not self.model:
            self.averaged.load_state_dict(state["averaged"])

    def _recommended_spread(self, weights) -> float:
        """The sigma temperature generation uses by default: the chosen check's, else the recipe's."""
        scores = self.best["scores"] if weights is not None else None
        if scores and scores.get("rollout_sigma_temperature") is not None:
            return float(scores["rollout_sigma_temperature"])
        return self.training.generate_sigma_temperature

    def export(self, run: Path, summary: dict) -> None:
        latents, training = self.latents, self.training
        val_nll, weights, exported_epoch = summary["metrics"].get("val_nll_nats_per_frame"), None, \
            summary["epochs_trained"]
        if training.keep_best and self.best["model"] is not None and \
                (self.judge is not None or val_nll is None or self.best["val_nll"] <= val_nll):
            val_nll, weights, exported_epoch = self.best["val_nll"], self.best["model"], self.best["epoch"]
        save_motion(run, self.averaged, self.scaler, {
            "vae_hash": latents.vae_hash, "dataset_hash": latents.dataset_hash, "fps": latents.fps,
            **_frame_size(run), "training": to_dict(training), **summary,
            "exported_epoch": exported_epoch, "val_nll_nats_per_frame": val_nll,
            "sampling": {"temperature": training.generate_temperature,
                         "sigma_temperature": self._recommended_spread(weights)},
            "val_clips": list(training.val_clips), "test_clips": list(training.test_clips),
            "selection": {"by": training.select if training.keep_best else "last epoch",
                          "scores": self.best["scores"] if weights is not None else None},
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


def _vae_held_out(run: Path, latents: Latents) -> list[str]:
    """The clips the VAE held out (the run's test clips), when it recorded any."""
    if not (run / "vae.json").is_file():
        return []
    names = read_model_info(run, "vae", "vae").metadata.get("val_clips")
    if isinstance(names, list) and names and all(name in latents.clip_names for name in names):
        return list(names)
    return []


def _names(clips) -> list[str]:
    """test_clips given as names (a list or "a,b"); none for 0 / None."""
    if not clips:
        return []
    if isinstance(clips, str):
        return [name.strip() for name in clips.split(",") if name.strip()]
    return [str(name) for name in clips]


def _frame_size(run: Path) -> dict:
    """height and width from RUN/vae.json (the motion model itself never sees pixels)."""
    if not (run / "vae.json").is_file():
        return {}
    config = read_model_info(run, "vae", "vae").config
    return {key: config[key] for key in ("height", "width") if key in config}
