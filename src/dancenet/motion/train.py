"""Train a motion model on the latents of a run (``RUN/latents.npz`` from ``dancenet encode``).

Two ways of cutting the data into batches, one per preset:

- ``sequence_length == 1`` (``dancenet-2018``): every example is one frame -> the next frame,
  shuffled across the whole training set each epoch, as Keras ``fit`` did;
- otherwise (``default``): truncated BPTT. ``batch_size`` parallel streams each walk through one
  clip in consecutive windows of ``sequence_length`` frames, carrying their recurrent state from
  window to window; a stream that reaches the end of its clip restarts, with a zero state, at a
  random offset of a random training clip. Windows never cross a clip boundary.

The held-out score is the negative log-likelihood of the next frame's latent mean, in nats per frame
in *raw latent units* (the scaler's log-determinant is added back), so presets with different
scalers are compared on the same scale. Validation clips are whole clips, never frames of a
training clip.

Resuming is exact: each epoch's batch plan comes from its own seed, and the checkpoint stores the
model, optimiser, carried state, RNG states and the step inside the epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import DancenetError, input_error
from .mdn import log_likelihood
from .model import (LatentScaler, check_all, config_from_dict, MotionConfig, MotionModel, count_parameters, preset_config,
                    save_motion)

TRAIN_DIRECTORY_SUFFIX = "-train"
CHECKPOINT_SECONDS = 60  # between epoch-end checkpoints; interruptions and the end always save


@dataclass(frozen=True)
class TrainConfig:
    """How a motion model is trained (saved in RUN/motion-train/config.yaml)."""

    learning_rate: float = 1e-3
    batch_size: int = 16
    sequence_length: int = 128      # frames per BPTT window (about 4 s at 30 fps)
    epochs: int = 200
    minutes: float | None = None    # wall-clock budget; stops at whichever comes first
    latent_source: str = "sample"   # "mean", "sample" (fresh each epoch) or "sample-once" (2018)
    input_noise: float = 0.0        # std of Gaussian noise added to inputs (model units)
    gradient_clip: float = 1.0      # max gradient norm; 0 = none
    weight_decay: float = 0.0
    val_clips: int | str | None = "auto"   # count, comma-separated names, or auto (~15% of clips)
    seed: int = 0
    # Export the weights of the epoch with the lowest held-out NLL (early stopping): a few
    # minutes of dance overfit quickly, and the held-out NLL turns up long before training ends.
    keep_best: bool = False
    # Recommended generation temperatures, stored in motion.json and used when a user gives
    # none: chosen by measuring rollouts of the trained model (docs/motion.md), not by training.
    generate_temperature: float = 1.0
    generate_sigma_temperature: float = 1.0

    def __post_init__(self):
        checks = [
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.sequence_length >= 1, "sequence_length must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.minutes is None or self.minutes > 0, "minutes must be > 0"),
            (self.latent_source in ("mean", "sample", "sample-once"),
             "latent_source must be mean, sample or sample-once"),
            (self.input_noise >= 0, "input_noise must be >= 0"),
            (self.generate_temperature > 0 and self.generate_sigma_temperature > 0,
             "generate temperatures must be > 0"),
        ]
        check_all(checks, "motion training config")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return config_from_dict(cls, values, "motion training config")


TRAIN_PRESETS = {
    # Adam lr 5e-4, batch 1024, one frame per example, latents sampled once when encoding.
    "dancenet-2018": TrainConfig(learning_rate=5e-4, batch_size=1024, sequence_length=1,
                                 epochs=100, latent_source="sample-once", gradient_clip=0.0,
                                 keep_best=False),
    "default": TrainConfig(keep_best=True, generate_sigma_temperature=0.75),
}


# --------------------------------------------------------------------------------------------
# Latents


@dataclass
class Latents:
    """The contents of ``latents.npz``; clip ``i`` owns rows ``offsets[i]:offsets[i + 1]``.

    mean, log_var: (frames, L) float32.
    """

    mean: np.ndarray
    log_var: np.ndarray
    clip_names: list[str]
    offsets: np.ndarray
    fps: float
    vae_hash: str
    dataset_hash: str

    def clip_rows(self, name: str) -> tuple[int, int]:
        index = self.clip_names.index(name)
        return int(self.offsets[index]), int(self.offsets[index + 1])


def load_latents(path: str | Path) -> Latents:
    """Read and check a ``latents.npz`` written by ``dancenet encode`` (or a ``prime.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "is missing; run `dancenet encode RUN DATASET` first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except Exception as error:
        raise input_error(path, f"is not a readable latents file ({type(error).__name__})") from None
    required = ("mean", "clip_names", "clip_starts", "clip_stops", "fps", "vae_hash")
    missing = [key for key in required if key not in data]
    if missing:
        raise input_error(path, f"lacks {', '.join(missing)}; encode the dataset again")
    mean = data["mean"].astype(np.float32)
    lengths = data["clip_stops"].astype(np.int64) - data["clip_starts"].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if mean.ndim != 2 or offsets[-1] != len(mean) or (lengths < 1).any():
        raise input_error(path, "clip ranges do not match the latent rows; encode the dataset again")
    if not np.isfinite(mean).all():
        raise input_error(path, "holds NaN or infinite latents; check the VAE and encode again")
    log_var = data.get("log_var")
    return Latents(mean=mean,
                   log_var=np.zeros_like(mean) if log_var is None else log_var.astype(np.float32),
                   clip_names=[str(name) for name in data["clip_names"]], offsets=offsets,
                   fps=float(data["fps"]), vae_hash=str(data["vae_hash"]),
                   dataset_hash=str(data.get("dataset_hash", "")))


def split_clips(latents: Latents, val_clips) -> tuple[list[int], list[int]]:
    """Clip indices (train, validation), split by whole clip.

    val_clips: an int count (taken evenly across the clips), comma-separated names, "auto"
    (about 15% of the clips, none when there is a single clip) or None / 0.
    """
    count = len(latents.clip_names)
    if val_clips == "auto":
        val_clips = 0 if count < 2 else max(1, round(0.15 * count))
    if isinstance(val_clips, str) and val_clips.isdigit():
        val_clips = int(val_clips)
    if not val_clips:
        return list(range(count)), []
    if isinstance(val_clips, int):
        if val_clips >= count:
            raise DancenetError(f"--val-clips {val_clips}: the latents hold only {count} clips")
        step = count / val_clips
        chosen = {int(step * index + step / 2) for index in range(val_clips)}
    else:
        names = [name.strip() for name in str(val_clips).split(",") if name.strip()]
        unknown = [name for name in names if name not in latents.clip_names]
        if unknown:
            raise DancenetError(f"--val-clips: no clip named {', '.join(unknown)} "
                                f"(clips: {', '.join(latents.clip_names)})")
        chosen = {latents.clip_names.index(name) for name in names}
        if len(chosen) == count:
            raise DancenetError("--val-clips: cannot hold out every clip")
    return [i for i in range(count) if i not in chosen], sorted(chosen)


# --------------------------------------------------------------------------------------------
# Batches


def pair_batches(ranges: list[tuple[int, int]], batch_size: int, generator: torch.Generator):
    """One epoch of (input rows, target rows) for one-frame examples, shuffled -> (batch,) each."""
    inputs = torch.cat([torch.arange(start, stop - 1) for start, stop in ranges if stop - start > 1])
    order = inputs[torch.randperm(len(inputs), generator=generator)]
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        yield rows[:, None], torch.ones(len(rows), dtype=torch.bool)


def stream_batches(ranges: list[tuple[int, int]], batch_size: int, sequence_length: int,
                   generator: torch.Generator):
    """One epoch of truncated-BPTT windows -> (rows (batch, length + 1), reset (batch,)) per step.

    Each of ``batch_size`` streams walks a clip in consecutive windows (the last row of a window
    is the first of the next); ``reset`` marks streams that just started a new clip, whose carried
    state must be zeroed. An epoch covers about as many frames as the training clips hold.
    """
    usable = [(start, stop) for start, stop in ranges if stop - start > sequence_length]
    if not usable:
        raise DancenetError(f"no training clip is longer than sequence_length={sequence_length} "
                            "frames; lower it or add longer clips")
    lengths = torch.tensor([stop - start for start, stop in usable], dtype=torch.float)
    total = int(sum(stop - start - 1 for start, stop in ranges))
    steps = max(1, math.ceil(total / (batch_size * sequence_length)))
    positions, stops = [0] * batch_size, [0] * batch_size
    for _ in range(steps):
        reset = torch.zeros(batch_size, dtype=torch.bool)
        windows = []
        for stream in range(batch_size):
            if positions[stream] + sequence_length + 1 > stops[stream]:
                # Longer clips are picked more often, so every frame is about equally likely.
                clip = int(torch.multinomial(lengths, 1, generator=generator))
                start, stop = usable[clip]
                span = stop - start - sequence_length - 1
                offset = int(torch.randint(0, span + 1, (1,), generator=generator))
                positions[stream], stops[stream] = start + offset, stop
                reset[stream] = True
            windows.append(torch.arange(positions[stream], positions[stream] + sequence_length + 1))
            positions[stream] += sequence_length
        yield torch.stack(windows), reset


def reset_state(state, reset: torch.Tensor):
    """Zero the carried state of the streams marked in ``reset`` (batch,); detach the rest."""
    if state is None:
        return None
    keep = (~reset).to(torch.float32)[None, :, None]
    if isinstance(state, tuple):
        return tuple((part * keep.to(part.device)).detach() for part in state)
    return (state * keep.to(state.device)).detach()


# --------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def validation_nll(model: MotionModel, scaler: LatentScaler, latents: torch.Tensor,
                   ranges: list[tuple[int, int]], chunk: int = 512) -> float:
    """Mean negative log-likelihood of frame t + 1 given frames 0..t, nats per frame, raw units.

    latents: (frames, L) raw latent means; ranges: the clips' rows. The state is carried through
    each clip from its first frame.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start, stop in ranges:
        values = scaler.normalise(latents[start:stop].to(device))[None]
        state = None
        for first in range(0, values.shape[1] - 1, chunk):
            inputs = values[:, first:first + chunk]
            targets = values[:, first + 1:first + chunk + 1]
            inputs = inputs[:, :targets.shape[1]]
            params, state = model(inputs, state)
            total += float(log_likelihood(params, targets).sum())
            count += targets.shape[1]
    model.train(was_training)
    if count == 0:
        return float("nan")
    return -(total / count - scaler.log_det)


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    epochs: int
    steps: int
    seconds: float
    train_nll: float
    val_nll: float | None
    interrupted: bool
    parameters: int
    stop_signal: int = 0   # the signal (SIGINT, SIGTERM) that stopped training, 0 for none


def _training_rows(latents: Latents, train_config: TrainConfig, generator: torch.Generator,
                   epoch_generator: torch.Generator | None) -> torch.Tensor:
    """The (frames, L) raw latents the model trains on this epoch (means or samples)."""
    mean = torch.from_numpy(latents.mean)
    if train_config.latent_source == "mean":
        return mean
    std = torch.exp(0.5 * torch.from_numpy(latents.log_var))
    source = generator if train_config.latent_source == "sample-once" else epoch_generator
    return mean + std * torch.randn(mean.shape, generator=source)


def train_motion(run: str | Path, preset: str = "default", model_config: dict | None = None,
                 train_config: TrainConfig | None = None, name: str = "motion",
                 resume: bool = False, device: str | torch.device = "cpu", quiet: bool = False,
                 max_steps: int | None = None) -> TrainResult:
    """Train (or resume) a motion model on ``RUN/latents.npz``; writes ``RUN/NAME.*`` at the end.

    model_config: overrides of the preset's :class:`MotionConfig` fields (latent_size comes from
    the latents). train_config: None = the preset's recipe (or, resuming, the saved one).
    max_steps: stop after this many optimiser steps in this call, saving a checkpoint as an
    interruption would (tests of resuming use it).
    """
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..progress import progress
    from ..training import (MetricsLog, StopSignals, TrainingClock, capture_rng_states,
                            check_finite, restore_rng_states)

    run = Path(run)
    device = torch.device(device)
    latents = load_latents(run / "latents.npz")
    train_directory = run / f"{name}{TRAIN_DIRECTORY_SUFFIX}"
    checkpoint_path = train_directory / "checkpoint.pt"

    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(checkpoint_path)
        config = MotionConfig.from_dict(checkpoint["model_config"])
        saved = TrainConfig.from_dict(checkpoint["train_config"])
        # A resumed run keeps its recipe; only the budget may change.
        budget = train_config or saved
        train_config = replace(saved, epochs=budget.epochs, minutes=budget.minutes)
        if checkpoint["vae_hash"] != latents.vae_hash:
            raise input_error(run / "latents.npz", "was made by another VAE than the checkpoint; "
                                                   "train again without --resume")
    else:
        train_config = train_config or TRAIN_PRESETS.get(preset, TrainConfig())
        config = MotionConfig.from_dict({**asdict(preset_config(preset, latents.mean.shape[1])),
                                         **(model_config or {}), "preset": preset,
                                         "latent_size": latents.mean.shape[1]})
    if config.latent_size != latents.mean.shape[1]:
        raise input_error(run / "latents.npz", f"holds {latents.mean.shape[1]}-d latents but the "
                                               f"model expects {config.latent_size}")

    train_clips, val_clips = split_clips(latents, _vae_held_out(run, latents, train_config.val_clips))
    ranges = [(int(latents.offsets[i]), int(latents.offsets[i + 1])) for i in train_clips]
    val_ranges = [(int(latents.offsets[i]), int(latents.offsets[i + 1])) for i in val_clips]

    torch.manual_seed(train_config.seed)  # dropout draws from torch's global generator
    generator = torch.Generator().manual_seed(train_config.seed)
    noise_generator = torch.Generator().manual_seed(train_config.seed + 1)
    model = MotionModel(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.learning_rate,
                                 weight_decay=train_config.weight_decay)
    fixed_samples = None
    if train_config.latent_source == "sample-once":
        fixed_samples = _training_rows(latents, train_config, generator, None)
    mean_rows = torch.from_numpy(latents.mean)
    fit_rows = fixed_samples if fixed_samples is not None else mean_rows
    train_index = torch.cat([torch.arange(start, stop) for start, stop in ranges])
    scaler = LatentScaler.fit(config.scaling, fit_rows[train_index])

    epoch, step_in_epoch, steps, state = 0, 0, 0, None
    best = {"val_nll": math.inf, "epoch": 0, "model": None}
    clock = TrainingClock()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler = LatentScaler.from_dict(checkpoint["scaler"])
        epoch, step_in_epoch, steps = checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["steps"]
        clock = TrainingClock(checkpoint["seconds"])
        restore_rng_states(checkpoint["rng"], {"noise": noise_generator})
        if checkpoint.get("state") is not None:
            saved_state = checkpoint["state"]
            state = tuple(part.to(device) for part in saved_state) \
                if isinstance(saved_state, list) else saved_state.to(device)
        if fixed_samples is not None:
            fixed_samples = checkpoint["fixed_samples"]
        if checkpoint.get("best") is not None:
            best = checkpoint["best"]
    scaler = scaler.to(device)

    train_directory.mkdir(parents=True, exist_ok=True)
    _write_yaml(train_directory / "config.yaml", {
        "preset": config.preset, "model": asdict(config), "training": asdict(train_config),
        "latents": str(run / "latents.npz"), "vae_hash": latents.vae_hash,
        "train_clips": [latents.clip_names[i] for i in train_clips],
        "val_clips": [latents.clip_names[i] for i in val_clips]})
    metrics = MetricsLog(train_directory, ["epoch", "step", "seconds", "train_nll_model_units",
                                           "val_nll_nats_per_frame", "val_nll_nats_per_dim",
                                           "learning_rate"],
                         resume_epoch=epoch + 1 if checkpoint is not None else None)

    def save():
        carried = None
        if state is not None:
            carried = [part.detach().cpu() for part in state] if isinstance(state, tuple) \
                else state.detach().cpu()
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "model_config": asdict(config), "train_config": asdict(train_config),
            "scaler": scaler.to_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
            "steps": steps, "seconds": clock.elapsed, "state": carried,
            "rng": capture_rng_states({"noise": noise_generator}),
            "fixed_samples": fixed_samples, "vae_hash": latents.vae_hash, "best": best})

    # The budget counts all sessions of a run, so --resume continues rather than starts over.
    budget_seconds = None if train_config.minutes is None else 60 * train_config.minutes
    interrupted, out_of_time, train_nll, val_nll, steps_this_call = False, False, float("nan"), None, 0
    stop_signal = 0
    last_saved = time.monotonic()
    model.train()
    with StopSignals() as signals:
        while epoch < train_config.epochs and not (interrupted or out_of_time):
            # Each epoch's data order comes from its own seed, so a resume can replay the plan.
            epoch_generator = torch.Generator().manual_seed(train_config.seed * 100_003 + epoch)
            rows = fixed_samples if fixed_samples is not None else \
                _training_rows(latents, train_config, generator, epoch_generator)
            if train_config.sequence_length == 1:
                plan = list(pair_batches(ranges, train_config.batch_size, epoch_generator))
            else:
                plan = list(stream_batches(ranges, train_config.batch_size,
                                           train_config.sequence_length, epoch_generator))
            losses = []
            bar = progress(plan[step_in_epoch:], desc=f"motion epoch {epoch + 1}", unit="step",
                           quiet=quiet)
            for window, reset in bar:
                if window.shape[1] > 1:
                    values = scaler.normalise(rows[window].to(device))
                    inputs, targets = values[:, :-1], values[:, 1:]
                else:
                    inputs = scaler.normalise(rows[window].to(device))
                    targets = scaler.normalise(rows[window + 1].to(device))
                if train_config.input_noise:
                    inputs = inputs + train_config.input_noise * torch.randn(
                        inputs.shape, generator=noise_generator).to(device)
                state = None if config.stateless else reset_state(state, reset)
                params, state = model(inputs, state)
                loss = -log_likelihood(params, targets).mean()
                check_finite(float(loss.detach()), steps + 1, checkpoint_path)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train_config.gradient_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.gradient_clip)
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(nll=f"{losses[-1]:.2f}")
                step_in_epoch, steps, steps_this_call = step_in_epoch + 1, steps + 1, steps_this_call + 1
                out_of_time = budget_seconds is not None and clock.elapsed >= budget_seconds
                if signals.requested or (max_steps is not None and steps_this_call >= max_steps):
                    interrupted, stop_signal = True, signals.requested
                if interrupted or out_of_time:
                    break
            bar.close()
            if losses:
                train_nll = float(np.mean(losses))
            finished_epoch = step_in_epoch >= len(plan)
            if finished_epoch:
                epoch, step_in_epoch, state = epoch + 1, 0, None
                val_nll = validation_nll(model, scaler, mean_rows, val_ranges) if val_ranges else None
                if val_nll is not None and val_nll < best["val_nll"]:
                    best = {"val_nll": val_nll, "epoch": epoch,
                            "model": {key: value.detach().cpu().clone()
                                      for key, value in model.state_dict().items()}}
                metrics.log(steps, {
                    "epoch": epoch, "step": steps, "seconds": round(clock.elapsed, 2),
                    "train_nll_model_units": train_nll,
                    "val_nll_nats_per_frame": "" if val_nll is None else val_nll,
                    "val_nll_nats_per_dim": "" if val_nll is None else val_nll / config.latent_size,
                    "learning_rate": train_config.learning_rate})
            if interrupted or out_of_time or epoch >= train_config.epochs or \
                    time.monotonic() - last_saved >= CHECKPOINT_SECONDS:
                save()
                last_saved = time.monotonic()
    metrics.close()
    if interrupted and not quiet:
        print(f"motion training stopped in epoch {epoch + 1} after step {step_in_epoch}; "
              f"continue with --resume (checkpoint {checkpoint_path})")
    if val_ranges and val_nll is None:
        val_nll = validation_nll(model, scaler, mean_rows, val_ranges)
    exported_epoch = epoch
    if train_config.keep_best and best["model"] is not None and best["val_nll"] <= val_nll:
        model.load_state_dict(best["model"])
        val_nll, exported_epoch = best["val_nll"], best["epoch"]
    save_motion(run, model, scaler, {
        "vae_hash": latents.vae_hash, "dataset_hash": latents.dataset_hash, "fps": latents.fps,
        **_frame_size(run), "training": asdict(train_config), "epochs_trained": epoch,
        "exported_epoch": exported_epoch,
        "sampling": {"temperature": train_config.generate_temperature,
                     "sigma_temperature": train_config.generate_sigma_temperature},
        "steps": steps, "seconds": round(clock.elapsed, 1), "val_nll_nats_per_frame": val_nll,
        "val_clips": [latents.clip_names[i] for i in val_clips],
        # Where an unprimed rollout may start: the first frame of each training clip.
        "start_latents": [latents.mean[latents.offsets[i]].tolist() for i in train_clips]},
        name=name)
    return TrainResult(epochs=epoch, steps=steps, seconds=clock.elapsed, train_nll=train_nll,
                       val_nll=val_nll, interrupted=interrupted, parameters=count_parameters(model),
                       stop_signal=stop_signal)


def _vae_held_out(run: Path, latents: Latents, val_clips):
    """``auto`` means the clips the VAE held out, when it recorded any: then both stages are
    judged on the same unseen dance. Anything else passes through unchanged."""
    import json

    if val_clips != "auto" or not (run / "vae.json").is_file():
        return val_clips
    try:
        names = json.loads((run / "vae.json").read_text()).get("val_clips")
    except json.JSONDecodeError:
        return val_clips
    if isinstance(names, list) and names and all(name in latents.clip_names for name in names):
        return ",".join(names)
    return val_clips


def _frame_size(run: Path) -> dict:
    """height and width from RUN/vae.json (the motion model itself never sees pixels)."""
    import json

    path = run / "vae.json"
    if not path.is_file():
        return {}
    values = json.loads(path.read_text())
    values = values.get("config", values)
    return {key: values[key] for key in ("height", "width") if key in values}


def _write_yaml(path: Path, values: dict) -> None:
    import yaml

    from ..atomic import atomic_file

    with atomic_file(path) as temporary:
        temporary.write_text(yaml.safe_dump(values, sort_keys=False))


def load_recipe(path: str | Path) -> tuple[str, dict, TrainConfig]:
    """A YAML recipe (``configs/motion-*.yaml``) -> (preset, model overrides, training config)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such recipe file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise input_error(path, f"is not valid YAML ({str(error).splitlines()[0]})") from None
    preset = values.get("preset", "default")
    training = {**asdict(TRAIN_PRESETS.get(preset, TrainConfig())), **(values.get("training") or {})}
    return preset, dict(values.get("model") or {}), TrainConfig.from_dict(training)
