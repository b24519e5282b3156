"""Pieces every dancenet training loop needs, kept apart from any one model.

- :func:`capture_rng_states` / :func:`restore_rng_states`: all random number generator states as
  plain tensors, so a checkpoint loads with ``torch.load(weights_only=True)`` and resumes exactly;
- :class:`StopSignals`: SIGINT / SIGTERM set a flag the loop checks each step, so training stops
  between steps and saves a checkpoint instead of dying half-way through a write;
- :class:`MetricsLog`: per-epoch metrics to a CSV file and to TensorBoard event files;
- :func:`learning_rate_at`: warm-up + cosine (or constant) schedule of a progress fraction;
- :class:`TrainingClock`: wall-clock time that accumulates across resumed sessions;
- :func:`check_finite`: stop on a NaN/inf loss with a clear message.

Used by ``dancenet.vae.train``; the motion model's loop can use the same pieces.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .errors import DancenetError


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


def check_finite(loss: float, step: int, checkpoint_path: str | os.PathLike | None) -> None:
    """Raise a user-facing error when ``loss`` is NaN or infinite (before the bad update)."""
    if math.isfinite(loss):
        return
    kept = (f"the last good checkpoint {checkpoint_path} is kept (continue from it with --resume)"
            if checkpoint_path is not None and Path(checkpoint_path).exists()
            else "no checkpoint had been written yet")
    raise DancenetError(f"training stopped: the loss became {loss} at step {step}; {kept}. "
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
