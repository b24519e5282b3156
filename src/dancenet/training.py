"""The one training skeleton both stages run, and the pieces it is made of.

:func:`fit` restores a run, trains epoch by epoch until the budget (epochs or minutes), a signal
or ``max_steps`` stops it, checkpoints by steps and by time, logs a metrics row per epoch and
returns one :class:`TrainResult`. A stage (the VAE, the motion model) supplies only what differs:
its batches and step (:meth:`Stage.train_step`), its validation and its model file.
:func:`open_run` is the one ``--resume`` / ``--overwrite`` rule for both.

- :func:`capture_rng_states` / :func:`restore_rng_states`: all random number generator states as
  plain tensors, so a checkpoint loads with ``torch.load(weights_only=True)`` and resumes exactly;
- :class:`StopSignals`: SIGINT / SIGTERM set a flag the loop checks each step, so training stops
  between steps and saves a checkpoint instead of dying half-way through a write;
- :class:`MetricsLog`: per-epoch metrics to a CSV file and to TensorBoard event files;
- :func:`learning_rate_at`: warm-up + cosine (or constant) schedule of a progress fraction;
- :class:`TrainingClock`: wall-clock time that accumulates across resumed sessions;
- :func:`check_finite`: stop on a NaN/inf loss with a clear message.

"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .atomic import remove_stale_partials_in
from .checkpoint import check_finite_weights, load_checkpoint, save_checkpoint
from .config import check_all, to_dict
from .errors import DancenetError, input_error
from .paths import check_name
from .progress import progress


# --------------------------------------------------------------------------------------------
# random number generators


def capture_rng_states(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every RNG state as tensors / ints (safe for ``torch.load(weights_only=True)``).

    Captures torch's CPU (and CUDA, when present) global generators, numpy's and Python's global
    generators, and each named generator in ``generators`` (e.g. the data-order generator).
    """
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
                  "position": int(numpy_state[2]), "has_gauss": int(numpy_state[3]),
                  "cached_gaussian": float(numpy_state[4])},
        "python": {"version": python_state[0],
                   "internal": torch.tensor(python_state[1], dtype=torch.int64),
                   "gauss_next": python_state[2]},
        "generators": {name: generator.get_state() for name, generator in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of :func:`capture_rng_states`; named generators missing from ``state`` are kept."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(int(v) for v in python_state["internal"].tolist()),
                     python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (generators or {}).items():
        if name in state.get("generators", {}):
            generator.set_state(state["generators"][name])


# --------------------------------------------------------------------------------------------
# stopping


class StopSignals:
    """Context manager: while active, SIGINT and SIGTERM only record that a stop was asked for.

    ``requested`` is the signal number (0 when none); the loop checks it once per step, saves a
    checkpoint and returns. A second Ctrl-C while stopping is honoured immediately. Outside the
    main thread (where Python cannot install handlers) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = 0
        self._previous: dict[int, object] = {}

    def _handle(self, number, frame):
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = number

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


class TrainingClock:
    """Seconds of training so far, including earlier sessions of a resumed run."""

    def __init__(self, previous_seconds: float = 0.0):
        self.previous_seconds = float(previous_seconds)
        self.session_start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.previous_seconds + time.perf_counter() - self.session_start


def diverged(what: str, step: int, checkpoint_path: Path, saved_step: int | None) -> DancenetError:
    """The error for a run whose loss or weights stopped being finite at ``step``."""
    kept = (f"the last good checkpoint {checkpoint_path} (step {saved_step}) is kept "
            "(continue from it with --resume)" if saved_step is not None
            else "no checkpoint had been written yet")
    return DancenetError(f"training stopped: {what} at step {step}; {kept}. "
                         "Try a lower learning rate.")


# --------------------------------------------------------------------------------------------
# schedule


def learning_rate_at(base: float, schedule: str, progress: float, warmup_fraction: float = 0.0,
                     final_fraction: float = 0.02) -> float:
    """Learning rate after ``progress`` in [0, 1] of training.

    ``constant``: ``base`` throughout. ``cosine``: linear warm-up over ``warmup_fraction``, then
    a cosine decay from ``base`` to ``final_fraction * base``. Progress may be steps/total steps
    or elapsed/budget seconds, so a ``--minutes`` run also ends fully annealed.
    """
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup_fraction > 0 and progress < warmup_fraction:
        return base * max(progress / warmup_fraction, 0.01)
    decay = (progress - warmup_fraction) / max(1.0 - warmup_fraction, 1e-9)
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * decay)))


# --------------------------------------------------------------------------------------------
# metrics


class MetricsLog:
    """Append per-epoch metrics to ``directory/metrics.csv`` and TensorBoard ``directory/events``.

    On resume, rows of epochs at or after ``resume_epoch`` are dropped first, so a resumed run's
    CSV reads as one uninterrupted run. ``enabled=False`` (non-zero ranks) makes it a no-op.
    """

    def __init__(self, directory: str | os.PathLike, columns: list[str], enabled: bool = True,
                 resume_epoch: int | None = None):
        self.enabled = enabled
        self.columns = list(columns)
        self.path = Path(directory) / "metrics.csv"
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if resume_epoch is not None and self.path.exists():
            with open(self.path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle)
                        if row.get("epoch", "").isdigit() and int(row["epoch"]) < resume_epoch]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(directory) / "events"))
        except ImportError:  # tensorboard is a dependency, but metrics.csv alone still works
            self._writer = None

    def log(self, step: int, metrics: dict) -> None:
        """One CSV row (missing columns left empty) and one TensorBoard scalar per number."""
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {key: _format(value) for key, value in metrics.items()})
        if self._writer is not None:
            for key, value in metrics.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)) and value == value:
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# --------------------------------------------------------------------------------------------
# the settings both stages share

OPTIMIZERS = ("adamw", "adam", "rmsprop")
SCHEDULES = ("cosine", "constant")
CHECKPOINT = "checkpoint.pt"
LOG_COLUMNS = ["epoch", "step", "elapsed_seconds", "learning_rate", "train_loss", "frames_per_second"]


@dataclass(frozen=True)
class TrainingConfig:
    """What every stage's training recipe holds (a recipe's ``training:`` section); a stage's
    own config (``VAETraining``, ``MotionTraining``) adds its fields and sets its defaults.

    epochs / minutes: the budget, whichever comes first (None: no limit of that kind); minutes
    count every session of a resumed run, and the learning-rate schedule follows the budget.
    val_clips: held-out clips: a count, names (a list or "a,b"), "auto" (the stage decides) or 0.
    checkpoint_every / checkpoint_minutes: a checkpoint after that many steps / that much time
    since the last one (None: not by that measure); stopping always writes one.
    """

    epochs: int | None = 40
    minutes: float | None = None
    batch_size: int = 64
    learning_rate: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_fraction: float = 0.03
    gradient_clip: float = 0.0             # max gradient norm; 0 = none
    val_clips: int | str | tuple | None = "auto"
    seed: int = 0
    checkpoint_every: int | None = 500
    checkpoint_minutes: float | None = 1.0

    def __post_init__(self):
        check_all(self.checks(), "training")

    def checks(self) -> list[tuple[bool, str]]:
        """(ok, message) pairs; stage configs extend the list."""
        return [
            (self.epochs is not None or self.minutes is not None, "give epochs or minutes"),
            (self.epochs is None or self.epochs >= 1, f"epochs {self.epochs}: must be >= 1"),
            (self.minutes is None or self.minutes > 0, f"minutes {self.minutes}: must be > 0"),
            (self.batch_size >= 1, f"batch_size {self.batch_size}: must be >= 1"),
            (self.learning_rate > 0, f"learning_rate {self.learning_rate}: must be > 0"),
            (self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer}: choose {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule {self.schedule}: choose {', '.join(SCHEDULES)}"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
            (self.weight_decay >= 0 and self.gradient_clip >= 0,
             "weight_decay and gradient_clip must be >= 0"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1,
             f"checkpoint_every {self.checkpoint_every}: must be >= 1 step"),
            (self.checkpoint_minutes is None or self.checkpoint_minutes > 0,
             f"checkpoint_minutes {self.checkpoint_minutes}: must be > 0"),
        ]


@dataclass(frozen=True)
class RunOptions:
    """How this session runs, apart from the recipe: none of these changes what is learnt.

    max_steps: stop (as a signal would, with a checkpoint) once the run has taken this many
    steps in all: a testing hook.
    """

    resume: bool = False
    overwrite: bool = False
    device: str = "cpu"
    quiet: bool = False
    max_steps: int | None = None


@dataclass
class TrainResult:
    """What a training session ended with. ``model`` is the plain (unwrapped) module as trained
    (the exported model file may hold the best epoch instead, see the motion stage)."""

    model: torch.nn.Module
    step: int
    epoch: int
    stopped: str          # "finished", "early", "time", "max_steps" or "signal:<number>"
    metrics: dict         # the last validation metrics (empty when none ran)
    seconds: float
    checkpoint_path: Path

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal that stopped it (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + int(self.stopped.split(":")[1]) if self.stopped.startswith("signal") else 0


def make_optimizer(model: torch.nn.Module, training: TrainingConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser. ``adamw`` decays only weights with two or more dimensions."""
    if training.optimizer == "rmsprop":
        # Keras' RMSprop defaults (rho 0.9, epsilon 1e-7), as the 2018 model trained with.
        return torch.optim.RMSprop(model.parameters(), lr=training.learning_rate, alpha=0.9, eps=1e-7)
    if training.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=training.learning_rate,
                                weight_decay=training.weight_decay)
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.dim() > 1 else no_decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": training.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=training.learning_rate, betas=(0.9, 0.99))


# --------------------------------------------------------------------------------------------
# the stage interface and the one loop


class Stage:
    """What a training stage gives :func:`fit`. Set by the stage: ``name`` (RUN/NAME.* and
    RUN/NAME-train/), ``kind``, ``model`` (plain module, on its device), ``optimizer``, ``config``
    (model config), ``training`` (its TrainingConfig), ``steps_per_epoch`` (the same every
    epoch), ``metric_columns`` and ``generators`` (named generators saved with the RNG states).
    """

    name: str
    kind: str
    metric_columns: list[str] = []
    generators: dict[str, torch.Generator] = {}

    def begin_epoch(self, epoch: int) -> None:
        """Set up epoch ``epoch``'s batches (called again when resuming inside it)."""

    def train_step(self, step: int, position: int) -> tuple[float, int]:
        """Forward and backward on batch ``position`` of the epoch -> (loss, frames it held)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """After each optimiser step (e.g. to update averaged weights)."""

    def end_epoch(self, metrics: dict) -> None:
        """After an epoch's validation (``metrics``; empty on non-main ranks)."""

    def validate(self) -> dict:
        """Held-out metrics of the model as it is now."""
        return {}

    def should_stop(self) -> bool:
        """After :meth:`end_epoch`: True to stop early (the held-out metrics stopped improving)."""
        return False

    def state(self) -> dict:
        """Stage state a checkpoint needs beyond model, optimiser and RNGs (weights_only-safe)."""
        return {}

    def restore(self, state: dict) -> None:
        """Inverse of :meth:`state`."""

    # what the final export does beyond writing files, shown on the progress bar while it runs
    final_export_note = ""

    def export(self, run: Path, summary: dict, final: bool = True) -> None:
        """Write the model file RUN/NAME.* (``summary``: steps, epochs, seconds, metrics;
        ``final``: False for the periodic saves and a stop by signal, which must be quick)."""
        raise NotImplementedError


def open_run(run: Path, name: str, kind: str, options: RunOptions) -> dict | None:
    """The one --resume / --overwrite rule: the checkpoint to resume (None for a new run).

    A new run refuses to replace a model already in RUN without ``--overwrite``; leftovers of
    a killed session (temporary ``.partial`` files) are removed first.
    """
    check_name(name, "--name")  # a name inside the run, never a path
    directory = run / f"{name}-train"
    path = directory / CHECKPOINT
    _remove_leftovers(run, directory)
    if options.resume:
        if options.overwrite:
            raise DancenetError("--resume and --overwrite: choose one (continue, or start again)")
        if not path.is_file():
            raise input_error(path, "no checkpoint to resume; train without --resume first")
        checkpoint = load_checkpoint(path)
        if checkpoint.get("kind") != f"{kind}-train":
            raise input_error(path, f"is not a {kind} training checkpoint")
        return checkpoint
    if (path.exists() or (run / f"{name}.safetensors").exists()) and not options.overwrite:
        label = "VAE" if kind == "vae" else "motion model"
        raise input_error(run, f"already holds a trained {label} ({name}); pass --resume to "
                               "continue it, --overwrite to start again, or choose another "
                               + ("--out" if kind == "vae" else "--name"))
    return None


def resumed_recipe(checkpoint: dict, config_cls, training_cls, budget: TrainingConfig | None):
    """The (model config, training config) a checkpoint was made with; of ``budget`` only the
    epochs and minutes are taken (a resumed run may run longer, never differently)."""
    saved = training_cls.from_dict(checkpoint["training"])
    budget = budget or saved
    training = replace(saved, epochs=budget.epochs, minutes=budget.minutes)
    return config_cls.from_dict(checkpoint["model_config"]), training


def _remove_leftovers(run: Path, directory: Path) -> None:
    """Temporaries that a killed session left beside its outputs (their writer is gone)."""
    for folder in (run, directory):
        remove_stale_partials_in(folder)


@contextlib.contextmanager
def _writing(directory: Path):
    """A full disk or a read-only folder while writing the run: one line naming the folder."""
    try:
        yield
    except OSError as error:
        raise input_error(directory, f"cannot be written ({error.strerror or error})") from None


def fit(stage: Stage, run: Path, options: RunOptions, checkpoint: dict | None,
        context: distributed.DistributedContext | None = None, describe: dict | None = None
        ) -> TrainResult:
    """Train ``stage`` (restored from ``checkpoint`` when given) until its budget, a signal or
    ``options.max_steps`` stops it. Only the main rank writes. An error before the first
    checkpoint of a new run removes what this session created."""
    context = context or distributed.DistributedContext()
    session = _Session(stage, Path(run), options, checkpoint, context)
    created = [path for path in (session.run, session.directory) if not path.exists()]
    try:
        return session.train(describe or {})
    except BaseException:
        if session.saved_step is None and context.is_main:
            for path in reversed(created):
                shutil.rmtree(path, ignore_errors=True)
        raise


class _Session:
    """One session of :func:`fit`: the counters, the clock and the loop's parts."""

    def __init__(self, stage: Stage, run: Path, options: RunOptions, checkpoint: dict | None,
                 context: distributed.DistributedContext):
        self.stage, self.run, self.options, self.context = stage, run, options, context
        self.directory = run / f"{stage.name}-train"
        self.checkpoint_path = self.directory / CHECKPOINT
        training = stage.training
        self.total_steps = training.epochs * stage.steps_per_epoch if training.epochs else None
        self.budget = training.minutes * 60 if training.minutes else None
        self.step = self.epoch = self.loss_count = self.session_frames = 0
        self.loss_sum, self.learning_rate, self.metrics = 0.0, training.learning_rate, {}
        self.saved_step, elapsed = None, 0.0
        if checkpoint is not None:
            stage.model.load_state_dict(checkpoint["model"])
            stage.optimizer.load_state_dict(checkpoint["optimizer"])
            restore_rng_states(checkpoint["rng"], stage.generators)
            stage.restore(checkpoint["stage"])
            self.step, self.epoch = checkpoint["step"], checkpoint["epoch"]
            self.loss_sum, self.loss_count = checkpoint["epoch_loss_sum"], checkpoint["epoch_loss_count"]
            self.metrics, elapsed = dict(checkpoint["last_metrics"]), checkpoint["elapsed_seconds"]
            self.saved_step = self.step
        self.clock = TrainingClock(elapsed)
        self.session_start, self.last_save = elapsed, time.monotonic()

    # ---------------------------------------------------------------- orchestration

    def train(self, describe: dict) -> TrainResult:
        stage, main = self.stage, self.context.is_main
        with _writing(self.directory):
            if main:
                self._write_config(describe)
            self.log = MetricsLog(self.directory, LOG_COLUMNS + stage.metric_columns, enabled=main,
                                  resume_epoch=self.epoch + 1)
        self.bar = self._progress_bar()
        stage.model.train()
        try:
            with StopSignals() as signals:
                stopped = self._epochs(signals)
                inside_epoch = self.step % stage.steps_per_epoch != 0
                if stopped == "time" and inside_epoch:  # a --minutes run: measure where it ended
                    self._log_epoch(stage.validate() if main else {})
                self._save(stopped)
        finally:
            self.bar.close()
            self.log.close()
        if stopped.startswith("signal") and main:
            print(f"dancenet: stopped at step {self.step}; checkpoint saved to "
                  f"{self.checkpoint_path}", file=sys.stderr)
        return TrainResult(model=stage.model, step=self.step, epoch=self.epoch, stopped=stopped,
                           metrics=self.metrics, seconds=self.clock.elapsed,
                           checkpoint_path=self.checkpoint_path)

    def _epochs(self, signals: StopSignals) -> str:
        """Run epochs until something stops the run -> why it stopped."""
        stage, epochs = self.stage, self.stage.training.epochs or math.inf
        while self.epoch < epochs:
            stage.begin_epoch(self.epoch)
            for position in range(self.step - self.epoch * stage.steps_per_epoch,
                                  stage.steps_per_epoch):
                stopped = self._stop_or_save(signals)
                if stopped:
                    return stopped
                self._step(position)
                every = stage.training.checkpoint_every
                if every and self.step % every == 0:
                    self._save("periodic")
            metrics = stage.validate() if self.context.is_main else {}
            self._log_epoch(metrics)
            self.epoch += 1
            self.loss_sum, self.loss_count = 0.0, 0
            stage.end_epoch(metrics)
            if distributed.all_reduce_max(torch.tensor([float(stage.should_stop())]), self.context) > 0:
                return "early"
        return "finished"

    # ---------------------------------------------------------------- the work

    def _stop_or_save(self, signals: StopSignals) -> str:
        """Before a step: why to stop ("" to go on); writes a checkpoint when one is due by
        time. Every rank agrees (the flags are all-reduced)."""
        minutes = self.stage.training.checkpoint_minutes
        flags = distributed.all_reduce_max(torch.tensor([
            float(signals.requested),
            float(self.budget is not None and self.clock.elapsed >= self.budget),
            float(self.options.max_steps is not None and self.step >= self.options.max_steps),
            float(minutes is not None and time.monotonic() - self.last_save >= 60 * minutes),
        ]), self.context)
        if flags[0] > 0:
            return f"signal:{int(flags[0])}"
        if flags[1] > 0:
            return "time"
        if flags[2] > 0:
            return "max_steps"
        if flags[3] > 0 and self.saved_step != self.step:
            self._save("periodic")
        return ""

    def _step(self, position: int) -> None:
        stage, training = self.stage, self.stage.training
        self.learning_rate = learning_rate_at(training.learning_rate, training.schedule,
                                              self._progress(), training.warmup_fraction)
        for group in stage.optimizer.param_groups:
            group["lr"] = self.learning_rate
        loss, frames = stage.train_step(self.step, position)
        bad = distributed.all_reduce_max(torch.tensor([float(not math.isfinite(loss))]), self.context)
        if bad.item() > 0:
            shown = loss if not math.isfinite(loss) else float("nan")
            raise diverged(f"the loss became {shown}", self.step, self.checkpoint_path, self.saved_step)
        if training.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_(stage.model.parameters(), training.gradient_clip)
        stage.optimizer.step()
        stage.optimizer.zero_grad(set_to_none=True)
        stage.after_step()
        self.step += 1
        self.loss_sum, self.loss_count = self.loss_sum + loss, self.loss_count + 1
        self.session_frames += frames * self.context.world_size
        if self.budget:
            self.bar.n = min(int(self.clock.elapsed), int(self.budget))
            self.bar.refresh()
        else:
            self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3g}", lr=f"{self.learning_rate:.2g}",
                             epoch=self.epoch + 1, refresh=False)

    def _progress(self) -> float:
        """How far through its budget the run is, in [0, 1] (the schedule's clock)."""
        fractions = [self.step / self.total_steps] if self.total_steps else []
        if self.budget:
            fractions.append(self.clock.elapsed / self.budget)
        return max(fractions)

    def _log_epoch(self, metrics: dict) -> None:
        self.metrics = dict(metrics)
        seconds = max(self.clock.elapsed - self.session_start, 1e-9)
        with _writing(self.directory):
            self.log.log(self.step, {"epoch": self.epoch + 1, "step": self.step,
                                     "elapsed_seconds": round(self.clock.elapsed, 2),
                                     "learning_rate": self.learning_rate,
                                     "train_loss": self.loss_sum / max(self.loss_count, 1),
                                     "frames_per_second": self.session_frames / seconds, **metrics})

    def _save(self, reason: str) -> None:
        """Checkpoint and model file, written only from finite weights; a full disk or a
        read-only folder is a user error naming the folder."""
        stage = self.stage
        if self.context.is_main:
            weights = stage.model.state_dict()
            try:
                check_finite_weights(weights, self.checkpoint_path)
            except DancenetError:
                raise diverged("the weights became NaN or infinite", self.step,
                               self.checkpoint_path, self.saved_step) from None
            payload = {
                "kind": f"{stage.kind}-train", "model_config": to_dict(stage.config),
                "training": to_dict(stage.training), "model": weights,
                "optimizer": stage.optimizer.state_dict(),
                "rng": capture_rng_states(stage.generators), "stage": stage.state(),
                "step": self.step, "epoch": self.epoch, "elapsed_seconds": self.clock.elapsed,
                "epoch_loss_sum": self.loss_sum, "epoch_loss_count": self.loss_count,
                "last_metrics": self.metrics, "reason": reason,
            }
            # the periodic saves and a stop by signal must be quick: no final work in the export
            final = reason != "periodic" and not reason.startswith("signal")
            if final and stage.final_export_note:
                self.bar.set_description(f"train {stage.name}: {stage.final_export_note}")
            with _writing(self.directory):
                save_checkpoint(self.checkpoint_path, payload)
                stage.export(self.run, {"steps": self.step, "epochs_trained": self.epoch,
                                        "seconds": round(self.clock.elapsed, 1),
                                        "metrics": self.metrics},
                             final=final)
        self.saved_step, self.last_save = self.step, time.monotonic()
        distributed.barrier(self.context)

    def _write_config(self, describe: dict) -> None:
        """RUN/NAME-train/config.yaml: the run's recipe (usable with --config) and its data."""
        import yaml

        from .atomic import atomic_file

        document = {"preset": self.stage.config.preset, "model": to_dict(self.stage.config),
                    "training": to_dict(self.stage.training)}
        text = yaml.safe_dump(document, sort_keys=False)
        if describe:  # as comments, so the file stays a recipe that --config reads
            text = "".join(f"# {line}\n" for line in
                           yaml.safe_dump(describe, sort_keys=False).splitlines()) + text
        with atomic_file(self.directory / "config.yaml") as temporary:
            temporary.write_text(text)

    def _progress_bar(self):
        desc, quiet = f"train {self.stage.name}", self.options.quiet or not self.context.is_main
        if self.budget:
            return progress(total=int(self.budget), desc=desc, unit="s", quiet=quiet,
                            initial=min(int(self.clock.elapsed), int(self.budget)))
        return progress(total=self.total_steps, desc=desc, unit="step", quiet=quiet, initial=self.step)
