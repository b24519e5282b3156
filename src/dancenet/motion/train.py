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
from dataclasses import replace
from pathlib import Path

import torch

from ..checkpoint import read_model_info
from ..config import to_dict
from ..errors import input_error
from ..latents import LATENTS_FILE, Latents, load_latents
from ..training import RunOptions, Stage, TrainResult, fit, make_optimizer, open_run, resumed_recipe
from .batches import pair_batches, reset_state, split_with_test, stream_batches, stride_clips
from . import selection
from .mdn import log_likelihood
from .model import LatentScaler, MotionConfig, MotionModel, preset_config, save_motion, validation_nll
from .recipe import MotionTraining, preset_training


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
        # a checkpoint of an earlier version: its run goes on as it began (NLL, no average, no patience)
        for key, value in EARLIER_VERSION.items():
            checkpoint["training"].setdefault(key, value)
        config, training = resumed_recipe(checkpoint, MotionConfig, MotionTraining, training)
    size = latents.mean.shape[1]
    config = replace(config or preset_config("default", size), latent_size=size)
    training = training or preset_training(config.preset)
    stage = MotionStage(run, name, latents, config, training, device)
    return fit(stage, run, options, checkpoint,
               describe={"latents": str(run / LATENTS_FILE), "vae_hash": latents.vae_hash})


# What checkpoints of earlier versions trained with: before selection by rollout (NLL, no weight
# average, no early stop), before correlated noise and worst-window gates (checks drew
# independent noise and gated the means only), before the best-IoU and Frechet gates and before
# the final check chose a component correlation (the default one was recommended), and before the
# checks held the energy to the dancer's training clips (the validation clip's).
EARLIER_VERSION = {"select": "nll", "average_decay": None, "patience": None, "test_clips": None,
                   "select_noise_correlations": [0.0], "select_worst_window": False,
                   "select_memorisation": False, "select_component_correlations": [0.0],
                   "select_dancer_energy": False}
# A short video is a short epoch: it is memorised within a hundred or so passes (103 s of footage:
# jittery dances at pass 98, copied ones at 147), so checks come at least this often in epochs.
MAX_EPOCHS_BETWEEN_CHECKS = 16
# The kept check's artifact ratio above which its sampling is not checked again with redraws.
REDRAW_ARTIFACTS = 0.1


class MotionStage(Stage):
    """The motion model's part of the loop: a scaler fitted on the training clips, an epoch's
    batch plan from its own seed, the recurrent state carried from window to window, the best
    epoch kept for export."""

    kind = "motion"
    metric_columns = ["val_nll_nats_per_frame", "val_nll_nats_per_dim", *selection.COLUMNS]

    def __init__(self, run: Path, name: str, latents: Latents, config: MotionConfig,
                 training: MotionTraining, device: torch.device):
        self.run, self.name, self.config, self.device = run, name, config, device
        test_clips = selection.test_clip_names(run, latents, training.test_clips)
        train_clips, val_clips, test_clips = split_with_test(latents, training.val_clips, test_clips)
        names = latents.clip_names
        self.training = replace(training, val_clips=tuple(names[i] for i in val_clips),
                                test_clips=tuple(names[i] for i in test_clips))
        self.fps = latents.fps  # the video's rate; the model steps at fps / frame_stride
        latents, self.train_clips, val_clips, test_clips = stride_clips(
            latents, config.frame_stride, train_clips, val_clips, test_clips)
        self.latents = latents
        self.ranges, self.val_ranges = latents.clip_ranges(self.train_clips), latents.clip_ranges(val_clips)
        # where an unprimed rollout starts (generation and rollout checks): each training clip's
        # first frame (with frame_stride k, frames 0..k-1 of each: one per phase)
        self.starts = [latents.mean[latents.offsets[i]].tolist() for i in self.train_clips]
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
        self.judge, self.check_every = None, 1
        if training.keep_best and training.select == "rollout":
            self.judge = selection.make_judge(run, latents, self.starts, self.val_ranges, self.ranges,
                                              training, device)
            if self.judge is None:
                self.training = replace(self.training, select="nll")
            else:
                frames_per_epoch = self.steps_per_epoch * training.batch_size * training.sequence_length
                self.check_every = max(1, min(round(training.select_every_frames / frames_per_epoch),
                                              MAX_EPOCHS_BETWEEN_CHECKS))
        self.best = selection.BestEpoch(by_rollout=self.judge is not None)

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
        self.best.update(self.epoch + 1, metrics, self.averaged)

    def should_stop(self) -> bool:
        """Early stopping: ``patience`` checks (epochs, when the NLL selects) without a better one."""
        return bool(self.training.keep_best and self.best.stale(self.training.patience))

    def state(self) -> dict:
        carried = self.carried
        if carried is not None:
            carried = [part.detach().cpu() for part in carried] if isinstance(carried, tuple) \
                else carried.detach().cpu()
        return {"vae_hash": self.latents.vae_hash, "scaler": self.scaler.to_dict(),
                "carried": carried, "best": self.best.state,
                "averaged": None if self.averaged is self.model else
                {key: value.detach().cpu().clone() for key, value in self.averaged.state_dict().items()}}

    def restore(self, state: dict) -> None:
        self.scaler = LatentScaler.from_dict(state["scaler"]).to(self.device)
        carried = state["carried"]
        if carried is not None:
            carried = tuple(part.to(self.device) for part in carried) if isinstance(carried, list) \
                else carried.to(self.device)
        # a checkpoint of an earlier version kept fewer keys and no average: start those afresh
        self.carried, self.best.state = carried, {**self.best.state, **state["best"]}
        if self.averaged is not self.model:
            self.averaged.load_state_dict(state.get("averaged") or self.model.state_dict())

    def export(self, run: Path, summary: dict, final: bool = True) -> None:
        from ..generate import COMPONENT_CORRELATION

        latents, training = self.latents, self.training
        val_nll, weights, exported_epoch = summary["metrics"].get("val_nll_nats_per_frame"), None, \
            summary["epochs_trained"]
        best = self.best.state
        if training.keep_best and best["model"] is not None and \
                ((self.judge is not None and best["rank"] is not None) or val_nll is None
                 or best["val_nll"] <= val_nll):
            val_nll, weights, exported_epoch = best["val_nll"], best["model"], best["epoch"]
        scores = best["scores"] if weights is not None else None
        sampling = self._sampling_with_redraws(weights) if scores is not None and final else None
        metadata = {
            "vae_hash": latents.vae_hash, "dataset_hash": latents.dataset_hash, "fps": self.fps,
            **_frame_size(run), "training": to_dict(training), **summary,
            "exported_epoch": exported_epoch, "val_nll_nats_per_frame": val_nll,
            "sampling": {"temperature": training.generate_temperature,
                         "sigma_temperature": (sampling or scores or {}).get(
                             "rollout_sigma_temperature", training.generate_sigma_temperature),
                         "noise_correlation": (sampling or scores or {}).get("rollout_noise_correlation", 0.0),
                         "component_correlation": (sampling or {}).get("rollout_component_correlation",
                                                                       COMPONENT_CORRELATION)},
            "val_clips": list(training.val_clips), "test_clips": list(training.test_clips),
            "selection": {"by": training.select if weights is not None else "last epoch",
                          "scores": scores, "sampling_retries": training.select_retries if sampling else 0,
                          "sampling_scores": sampling},
            "start_latents": self.starts}
        save_motion(run, self.averaged, self.scaler, metadata, name=self.name, state_dict=weights)
        if final:  # not at periodic saves and Ctrl-C, which must be quick (a stale one is not used)
            self._write_library(run)

    def _write_library(self, run: Path) -> None:
        """The footage the copy guard compares dances with (``NAME.library.npz``,
        :mod:`dancenet.copies`), decoded by the run's VAE; nothing for a run without one."""
        from ..copies import write_library

        if not (run / "vae.json").is_file():
            return
        vae = self.judge.vae if self.judge is not None else None
        if vae is None:
            from ..vae.encode import load as load_vae

            vae = load_vae(run, self.device)

        @torch.no_grad()
        def decode(latents: torch.Tensor):
            return vae.silhouettes(latents.to(self.device)).cpu().numpy()

        write_library(run, self.name, decode, int(vae.config.inference_batch_size))


    @property
    def final_export_note(self) -> str:
        return "choosing the sampling with redraws" if self._redraw_check_due() else ""

    def _redraw_check_due(self) -> bool:
        """Whether the final export checks the kept weights with redraws: ``select_retries`` set,
        a judge, and kept dances that were not mostly broken (over ``REDRAW_ARTIFACTS``: not a
        body yet, which redraws cannot mend)."""
        scores = self.best.state["scores"] or {}
        return bool(self.training.select_retries) and self.judge is not None and \
            scores.get("rollout_artifacts", 1.0) <= REDRAW_ARTIFACTS

    def _sampling_with_redraws(self, weights: dict) -> dict | None:
        """The ``rollout_*`` columns of a check of ``weights`` with ``select_retries`` redraws,
        whose noise and component correlations the model then recommends, or None when it is not
        due (:meth:`_redraw_check_due`). It tries the kept check's spread with each noise
        correlation and each of ``select_component_correlations`` (with two: two thirds of a
        check's dances, each decoded at every step)."""
        if not self._redraw_check_due():
            return None
        model = copy.deepcopy(self.averaged)
        model.load_state_dict(weights)
        spread = float(self.best.state["scores"]["rollout_sigma_temperature"])
        return self.judge.check(model, self.scaler, self.training.select_retries, spreads=(spread,),
                                component_correlations=self.training.select_component_correlations).columns()


def _training_rows(latents: Latents, training: MotionTraining,
                   generator: torch.Generator) -> torch.Tensor:
    """The (frames, L) raw latents the model trains on (means, or samples drawn from ``generator``)."""
    mean = torch.from_numpy(latents.mean)
    if training.latent_source == "mean":
        return mean
    std = torch.exp(0.5 * torch.from_numpy(latents.log_var))
    return mean + std * torch.randn(mean.shape, generator=generator)


def _frame_size(run: Path) -> dict:
    """height and width from RUN/vae.json (the motion model itself never sees pixels)."""
    if not (run / "vae.json").is_file():
        return {}
    config = read_model_info(run, "vae", "vae").config
    return {key: config[key] for key in ("height", "width") if key in config}
