"""``dancenet train SOURCE... --out RUN``: from footage to a run that generates, in one call.

The stages, in order: ``prepare`` (video, image folder or BVH -> silhouettes; a prepared dataset
is copied), ``vae`` (train the VAE), ``encode`` (latents), ``motion`` (train the motion
model), ``evaluate`` (generate a few dances and measure them). Each stage is called from exactly
one small function below (``prepare_stage`` ... ``evaluate_stage``), so the glue stays apart from
the work.

Files in RUN besides those of the stages:

    pipeline.json   the plan (sources, budget, split) and each stage's status: resuming reads it
    progress.json   stage, overall fraction, seconds left, latest losses: what the app shows
    preview.png     real frames (top) above the VAE's reconstructions (bottom), while training
    data/           the prepared dataset (a SOURCE dataset is copied, so the run stands alone)
    report/         the evaluation report (index.html, metrics.json)

Stopping: Ctrl-C / SIGINT (or setting ``stop``) ends the current stage at its next step with a
checkpoint; ``train(..., resume=True)`` continues at that stage. Budget: ``minutes`` of training
is split between the VAE and the motion model (``VAE_SHARE``, measured: docs/pipeline.md);
prepare, encode and evaluate take their own (short) time on top.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_file
from .errors import DancenetError, input_error

STAGES = ("prepare", "vae", "encode", "motion", "evaluate")
STATE_FILE = "pipeline.json"
PROGRESS_FILE = "progress.json"
PREVIEW_FILE = "preview.png"
DATASET_DIRECTORY = "data"
REPORT_DIRECTORY = "report"
FORMAT = "dancenet-pipeline"

DEFAULT_MINUTES = 20.0
# Share of the training minutes given to the VAE; the motion model gets the rest. Measured on the
# salsa data with short budgets (docs/pipeline.md): the motion model's held-out NLL bottoms out
# within a minute or two (early stopping keeps that epoch) while the VAE's IoU keeps rising.
VAE_SHARE = 0.75
VAE_CHECKPOINT_STEPS = 100  # the VAE stage's checkpoints (and preview.png refreshes), in steps
MIN_MOTION_SECONDS = 20.0
# A dataset of fewer clips than this is cut into pieces of about SEGMENT_SECONDS, so that whole
# pieces can be held out: the VAE and the motion model then stop on a held-out NLL / IoU instead of
# memorising a single take (copied or looping dances).
MIN_CLIPS = 4
MIN_SECONDS = 5.0
MIN_DANCER_SHARE = 0.002  # of a frame's pixels: less is an empty frame (noise, not a dancer)
SEGMENT_SECONDS = 15.0
# The motion model of a short dataset steps every SHORT_FRAME_STRIDE-th frame and generation
# interpolates between its steps (frame_stride, docs/motion.md "Frame stride"). On 70 s of room
# footage, at equal training time, its dances kept 1.27-1.39x the real motion energy and a Frechet
# distance of 0.72-0.88x the real level, against 1.98x and 1.81x at every frame (more jitter).
# On 7 minutes of salsa a stride of 3 looped and copied more, so longer data keeps every frame.
SHORT_FRAME_STRIDE = 2
SHORT_DATA_SECONDS = 300.0
# Evaluation: dances of this length and count, measured against the held-out pieces.
EVALUATE_SECONDS = 30.0
EVALUATE_SAMPLES = 3
# Rough seconds for the untimed stages, for the "time left" estimate before they have run.
ESTIMATED_SECONDS = {"prepare": 20.0, "encode": 15.0, "evaluate": 60.0}
# ... and for what a timed stage does after its budget: motion training's final check, which
# chooses the sampling with redraws (110-128 s on the room stand-in of docs/pipeline.md, ~3 minutes
# on salsa, 2-core CPU). Without it the estimate read 0:00 left for the last two minutes.
AFTER_BUDGET_SECONDS = {"motion": 120.0}
# Preparing a video with the person segmenter: 157 s for the stand-in's 103 s (480x360, 2 cores).
PREPARE_SECONDS_PER_VIDEO_SECOND = 1.5


@dataclass
class PipelineResult:
    """What :func:`train` ended with.

    status: "finished" or "interrupted" (resume with ``resume=True``).
    summary: the evaluation's headline metrics as a text table ("" until evaluated).
    video_command: the command line that makes a video with the run.
    """

    run: Path
    status: str
    stage: str
    summary: str = ""
    metrics: dict = field(default_factory=dict)
    video_command: str = ""


# --------------------------------------------------------------------------------------------
# the plan and its state file


def plan_budget(minutes: float) -> dict[str, float]:
    """Seconds of training per stage for a total of ``minutes``: {"vae": s, "motion": s}."""
    from .limits import MAX_TRAIN_MINUTES

    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes)
            and 0 < minutes <= MAX_TRAIN_MINUTES):
        raise DancenetError(f"--minutes {minutes}: must be a positive number of minutes, at most "
                            f"{MAX_TRAIN_MINUTES:g} (a week)")
    total = 60.0 * minutes
    motion = max(MIN_MOTION_SECONDS, (1 - VAE_SHARE) * total)
    motion = min(motion, total / 2)
    return {"vae": total - motion, "motion": motion}


def _is_dataset(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def _new_state(sources: Sequence[str | os.PathLike], minutes: float,
               source_fps: float | None) -> dict:
    paths = [Path(source) for source in sources]
    if not paths:
        raise DancenetError("train: give at least one SOURCE (a video, image folder, BVH or dataset)")
    for path in paths:
        if not path.exists():
            raise input_error(path, "no such file or folder")
    if any(_is_dataset(path) for path in paths) and len(paths) > 1:
        raise DancenetError("train: a prepared dataset must be the only SOURCE")
    return {"format": FORMAT, "version": 1,
            "sources": [str(path.resolve()) for path in paths],
            "source_fps": source_fps, "minutes": float(minutes), "budget": plan_budget(minutes),
            "estimates": {"prepare": _prepare_estimate(paths)},
            "stages": {stage: {"status": "pending", "seconds": 0.0} for stage in STAGES}}


def _prepare_estimate(paths: Sequence[Path]) -> float:
    """Rough seconds to prepare ``paths``, for the time left: videos by their length, read from
    their headers (one that cannot be read counts nothing here; preparing it names the problem)."""
    import av

    from .ingest import source_kind
    from .ingest.video import open_video

    seconds = ESTIMATED_SECONDS["prepare"]
    for path in paths:
        if _is_dataset(path) or source_kind(path) != "video":
            continue
        try:
            container, _ = open_video(path)
        except DancenetError:
            continue
        with container:
            seconds += PREPARE_SECONDS_PER_VIDEO_SECOND * (container.duration or 0) / av.time_base
    return seconds


def read_state(run: str | os.PathLike) -> dict | None:
    """RUN/pipeline.json, or None when RUN was not made by the pipeline."""
    path = Path(run) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        raise input_error(path, "is unreadable; start the run again under a new --out") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise input_error(path, "is not a dancenet pipeline state file")
    return state


def _write_json(path: Path, values: dict) -> None:
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(values, indent=1))


# What a pipeline run folder holds (plus the hidden temporaries of atomic writes): --overwrite
# replaces a folder of these alone, never one with a user's own files in it.
RUN_ENTRIES = frozenset({STATE_FILE, PROGRESS_FILE, PREVIEW_FILE, DATASET_DIRECTORY,
                         REPORT_DIRECTORY, ".prepared", "latents.npz", "vae.json", "vae.safetensors",
                         "vae-train", "motion.json", "motion.safetensors", "motion.library.npz", "motion-train"})


def _run_entry(name: str) -> bool:
    return name in RUN_ENTRIES or (name.startswith(".") and ".partial" in name)


def _open_state(run: Path, sources, minutes, source_fps, resume: bool,
                overwrite: bool) -> tuple[dict, Path | None]:
    """The state to run: a fresh plan, or (resume) the saved one with an updated budget; and,
    with ``overwrite``, where the run it replaces was moved (see :func:`train`)."""
    from .paths import check_output, check_replaceable

    if resume and overwrite:
        raise DancenetError("train: --resume continues a run and --overwrite starts it again; "
                            "choose one")
    check_output(run, sources, "--out")  # --overwrite must never remove a source
    saved = read_state(run)
    if resume:
        if saved is None:
            raise input_error(run, "holds no pipeline run to resume; start it without --resume")
        given = [str(Path(source).resolve()) for source in sources]
        # Once prepared, the run holds its own data and the sources are not read again.
        if given != saved["sources"] and saved["stages"]["prepare"]["status"] != "done":
            raise input_error(run, f"was trained on {' '.join(saved['sources'])}; resume with the "
                                   "same SOURCE, or start again with --overwrite")
        if source_fps is not None and source_fps != saved["source_fps"]:
            raise DancenetError(f"--source-fps {source_fps:g}: the run was prepared with "
                                f"{saved['source_fps']}; --resume keeps it")
        if minutes is not None and float(minutes) != saved["minutes"]:
            saved["minutes"], saved["budget"] = float(minutes), plan_budget(minutes)
        return saved, None
    state = _new_state(sources, DEFAULT_MINUTES if minutes is None else minutes, source_fps)
    replaced = None
    if run.exists() and any(run.iterdir()):
        if not overwrite:
            hint = "--resume to continue it, " if saved is not None else ""
            raise input_error(run, f"already exists and is not empty; pass {hint}--overwrite to "
                                   "start again, or choose another --out")
        check_replaceable(run, lambda folder: read_state(folder) is not None
                          or (folder / "vae.json").is_file(), _run_entry, "a dancenet run",
                          flag="--out")
        # Kept aside until the new run has its data: a source that turns out to hold no dancer
        # must not cost the user the run it was meant to replace.
        replaced = run.with_name(f".{run.name}.replaced-{os.getpid()}")
        run.rename(replaced)
    run.mkdir(parents=True, exist_ok=True)
    return state, replaced


def dataset_path(run: Path, state: dict | None = None) -> Path:
    """RUN/data: the run's own copy of its dataset."""
    return run / DATASET_DIRECTORY


# --------------------------------------------------------------------------------------------
# the stages: each calls the library once


def prepare_stage(run: Path, state: dict, quiet: bool) -> str:
    """Silhouettes in RUN/data, cut into pieces when there are few clips (a dataset is copied)."""
    from .dataset import Dataset
    from .ingest import choices_made

    sources = [Path(source) for source in state["sources"]]
    staging = run / ".prepared"
    try:
        if _is_dataset(sources[0]):
            dataset = Dataset(sources[0])  # a readable dataset, or a one-line error
            check_dataset(dataset, sources[0])
        else:
            dataset = prepare_dataset(sources, staging, state.get("source_fps"))
        split_for_validation(dataset, run / DATASET_DIRECTORY)
        state["warnings"], state["notes"] = choices_made(dataset)  # shown by the CLI and the app
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "done"


def prepare_dataset(sources: Sequence[str | os.PathLike], out: str | os.PathLike,
                    source_fps: float | None = None, quiet: bool = True):
    """``dancenet prepare`` with its defaults into ``out``, then :func:`check_dataset`.

    Returns the :class:`~dancenet.dataset.Dataset`; on too little dance nothing is left at ``out``.
    """
    from .ingest import PrepareOptions, prepare

    dataset = prepare(list(sources), out, PrepareOptions(source_fps=source_fps, quiet=quiet),
                      overwrite=True)
    try:
        check_dataset(dataset, sources[0] if len(sources) == 1 else "the sources")
    except DancenetError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return dataset


def check_dataset(dataset, source) -> None:
    """Refuse data to learn nothing from: under MIN_SECONDS, or no dancer in most frames."""
    seconds = len(dataset) / dataset.fps
    if seconds < MIN_SECONDS:
        raise input_error(source, f"holds only {seconds:.1f} s of dance; dancenet needs at least "
                                  f"{MIN_SECONDS:g} s (1-3 minutes is best)")
    sample = np.linspace(0, len(dataset) - 1, num=min(len(dataset), 256)).round().astype(np.int64)
    foreground = dataset.frames_at(sample).reshape(len(sample), -1).mean(axis=1)
    if np.mean(foreground > MIN_DANCER_SHARE) < 0.5:
        raise input_error(source, "no dancer found: most frames hold no silhouette (one dancer, "
                                  "a static camera, and the whole body in view work best)")


def split_for_validation(dataset, out: Path) -> None:
    """Write ``dataset`` to ``out``, cutting clips into ~SEGMENT_SECONDS pieces when it has few.

    Pieces are named ``CLIP.1``, ``CLIP.2``...; a dataset of MIN_CLIPS clips or more is copied
    as it is. Frames stay in order, so nothing but the clip boundaries changes.
    """
    from .dataset import DatasetWriter

    piece_frames = max(1, int(round(SEGMENT_SECONDS * dataset.fps)))
    cut = len(dataset.clips) < MIN_CLIPS
    joints = dataset.joints
    with DatasetWriter(out, dataset.height, dataset.width, dataset.fps, overwrite=True) as writer:
        for clip in dataset.clips:
            pieces = max(1, clip.length // piece_frames) if cut else 1
            bounds = np.linspace(clip.start, clip.stop, pieces + 1).round().astype(int)
            for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
                name = clip.name if pieces == 1 else f"{clip.name}.{index + 1}"
                masks = (frame for chunk in range(int(start), int(stop), 512)
                         for frame in dataset.frames(chunk, min(chunk + 512, int(stop))))
                writer.add_clip(name, clip.source, clip.segmentation, masks, clip.source_fps,
                                joints=None if joints is None else joints[start:stop],
                                joint_names=getattr(dataset, "joint_names", None),
                                extra=clip.extra)


def vae_stage(run: Path, state: dict, quiet: bool) -> str:
    """Train (or continue) the VAE for the stage's share of the budget."""
    from dataclasses import replace

    from .dataset import Dataset
    from .training import RunOptions
    from .vae.train import preset_training, train_vae

    dataset = Dataset(dataset_path(run, state))
    resume = (run / "vae-train" / "checkpoint.pt").is_file()
    # The budget alone bounds the run (no epoch count); checkpoints every VAE_CHECKPOINT_STEPS
    # (not 500): each one also refreshes preview.png for the app.
    training = replace(preset_training("default", checkpoint_every=VAE_CHECKPOINT_STEPS,
                                       val_clips=1 if len(dataset.clips) > 1 else 0),
                       epochs=None, minutes=state["budget"]["vae"] / 60)
    result = train_vae(dataset.path, run, None, training,
                       RunOptions(resume=resume, overwrite=not resume, quiet=True))
    state["stages"]["vae"]["val_iou"] = result.metrics.get("val_iou")
    return "interrupted" if result.exit_code else "done"


def encode_stage(run: Path, state: dict, quiet: bool) -> str:
    """RUN/latents.npz from the trained VAE."""
    from .vae.encode import write_latents

    write_latents(run, dataset_path(run, state), quiet=True)
    return "done"


def motion_stage(run: Path, state: dict, quiet: bool) -> str:
    """Train (or continue) the motion model; it keeps the epoch whose own dances scored best
    (docs/motion.md, "Selection by rollout") and may stop before its budget."""
    from dataclasses import replace

    from .dataset import Dataset
    from .motion.model import preset_config
    from .motion.recipe import preset_training
    from .motion.train import train_motion
    from .training import RunOptions

    resume = (run / "motion-train" / "checkpoint.pt").is_file()
    default = preset_training("default")
    dataset = Dataset(dataset_path(run, state))
    stride = SHORT_FRAME_STRIDE if len(dataset) / dataset.fps < SHORT_DATA_SECONDS else 1
    # Windows must fit inside the shortest piece (a short video gives short pieces), in steps.
    shortest = min(clip.length for clip in dataset.clips) // stride
    training = replace(default, epochs=None, minutes=state["budget"]["motion"] / 60,
                       sequence_length=max(4, min(default.sequence_length, shortest - 2)))
    config = replace(preset_config("default", 1), frame_stride=stride)  # latent size: the latents'
    result = train_motion(run, config, training,
                          RunOptions(resume=resume, overwrite=not resume, quiet=True))
    state["stages"]["motion"]["val_nll"] = result.metrics.get("val_nll_nats_per_frame")
    return "interrupted" if result.exit_code else "done"


def evaluate_stage(run: Path, state: dict, quiet: bool) -> str:
    """RUN/report/: ``dancenet evaluate`` on a few 30 s dances against the held-out pieces."""
    plan = state.get("evaluation") or {}
    state["summary"] = evaluate_run(run, plan.get("seconds", EVALUATE_SECONDS),
                                    plan.get("samples", EVALUATE_SAMPLES))
    return "done"


def evaluate_run(run: str | os.PathLike, seconds: float = EVALUATE_SECONDS,
                 samples: int = EVALUATE_SAMPLES) -> str:
    """``dancenet evaluate RUN --reference RUN/data -o RUN/report``; returns the summary table."""
    from .cli import build_parser
    from .commands.evaluate import run_evaluate

    run = Path(run)
    # Parsed by the command's own parser, so every other option keeps the CLI's default.
    arguments = build_parser().parse_args(
        ["evaluate", str(run), "--reference", str(dataset_path(run)), "--seconds", f"{seconds!r}",
         "--samples", str(int(samples)), "-o", str(run / REPORT_DIRECTORY), "--quiet"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_evaluate(arguments)
    return printed.getvalue().split("\nreport:")[0].rstrip()


STAGE_FUNCTIONS: dict[str, Callable[[Path, dict, bool], str]] = {
    "prepare": prepare_stage, "vae": vae_stage, "encode": encode_stage,
    "motion": motion_stage, "evaluate": evaluate_stage}


# --------------------------------------------------------------------------------------------
# progress: a watcher thread writes progress.json (and preview.png) while a stage works


class ProgressReporter:
    """Every ``interval`` seconds: progress.json in RUN, and ``callback(progress_dict)``.

    The dict: stage, stage_index, stages, status, fraction (0..1 overall), seconds_left,
    stage_fraction, losses (latest row of the stage's metrics.csv), preview (path or None),
    updated (unix time). It also renders preview.png whenever the VAE's weights change.
    """

    def __init__(self, run: Path, state: dict, callback=None, interval: float = 1.0):
        self.run, self.state, self.callback, self.interval = run, state, callback, interval
        self.stage, self.status = STAGES[0], "running"
        self.stage_started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dancenet-progress", daemon=True)
        self._preview_mtime = None
        self._lock, self._preview_lock = threading.Lock(), threading.Lock()

    def __enter__(self) -> "ProgressReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def begin(self, stage: str) -> None:
        with self._lock:
            self.stage, self.stage_started = stage, time.monotonic()
        self.report()

    def stage_seconds(self) -> float:
        """Seconds spent in the current stage, earlier sessions included."""
        return self.state["stages"][self.stage]["seconds"] + time.monotonic() - self.stage_started

    def end(self, stage: str) -> None:
        with self._lock:
            self.state["stages"][stage]["seconds"] += time.monotonic() - self.stage_started
            self.stage_started = time.monotonic()
        if stage == "vae":
            self._maybe_preview()  # the final weights, whatever the watcher last saw

    def snapshot(self) -> dict:
        """The progress dict (see the class docstring)."""
        with self._lock:
            planned, done = {}, {}
            for stage in STAGES:
                entry = self.state["stages"][stage]
                estimate = self.state.get("estimates", {}).get(stage, ESTIMATED_SECONDS.get(stage, 0.0))
                budget = self.state["budget"].get(stage, estimate) + AFTER_BUDGET_SECONDS.get(stage, 0.0)
                spent = entry["seconds"] + (time.monotonic() - self.stage_started
                                            if stage == self.stage and self.status == "running" else 0)
                if entry["status"] == "done":
                    planned[stage] = done[stage] = entry["seconds"]
                else:
                    planned[stage] = max(budget, spent)
                    done[stage] = min(spent, planned[stage])
            total = sum(planned.values())
            fraction = sum(done.values()) / total if total else 0.0
            stage_fraction = done[self.stage] / planned[self.stage] if planned[self.stage] else 0.0
            preview = self.run / PREVIEW_FILE
            return {"stage": self.stage, "stage_index": STAGES.index(self.stage), "stages": list(STAGES),
                    "status": self.status, "fraction": round(fraction, 4),
                    "stage_fraction": round(min(stage_fraction, 1.0), 4),
                    "seconds_left": round(total - sum(done.values()), 1),
                    "minutes": self.state["minutes"], "losses": self._losses(),
                    "preview": str(preview) if preview.is_file() else None,
                    "summary": self.state.get("summary", ""),
                    "warnings": self.state.get("warnings", []), "notes": self.state.get("notes", []),
                    "updated": time.time()}

    def report(self, status: str | None = None) -> dict:
        if status is not None:
            self.status = status
        values = self.snapshot()
        with contextlib.suppress(OSError):
            _write_json(self.run / PROGRESS_FILE, values)
        if self.callback is not None:
            self.callback(values)
        return values

    def _losses(self) -> dict:
        directory = {"vae": "vae-train", "motion": "motion-train"}.get(self.stage)
        if directory is None:
            return {}
        return latest_metrics(self.run / directory / "metrics.csv")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.stage == "vae":
                self._maybe_preview()
            self.report()

    def _maybe_preview(self) -> None:
        weights = self.run / "vae.safetensors"
        with self._preview_lock, contextlib.suppress(OSError):
            mtime = weights.stat().st_mtime
            if mtime != self._preview_mtime:
                self._preview_mtime = mtime
                try:
                    write_preview(self.run, dataset_path(self.run, self.state), self.run / PREVIEW_FILE)
                except (DancenetError, RuntimeError, ValueError, OSError):
                    pass  # a preview read mid-write is skipped: the next checkpoint brings another


def latest_metrics(path: Path) -> dict:
    """The last row of a metrics.csv as numbers (empty cells dropped); {} when there is none."""
    import csv

    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return {}
    if not rows:
        return {}
    values = {}
    for key, text in rows[-1].items():
        with contextlib.suppress(TypeError, ValueError):
            values[key] = float(text)
    return values


def write_preview(run: Path, dataset: Path, out: Path, count: int = 6) -> Path:
    """A PNG: ``count`` real frames (top row) above the run's VAE reconstructions (bottom row)."""
    import torch

    from .dataset import Dataset
    from .sheet import save_contact_sheet
    from .vae.encode import load

    data = Dataset(dataset)
    vae = load(run)
    indices = np.linspace(0, len(data) - 1, num=min(count, len(data))).round().astype(np.int64)
    real = data.frames_at(indices)
    with torch.inference_mode():
        mean, _ = vae.encode_moments(torch.from_numpy(real))
        decoded = vae.silhouettes(mean).numpy().astype(np.uint8) * 255
    frames = np.concatenate([real.astype(np.uint8) * 255, decoded])
    labels = ["real"] + [""] * (len(real) - 1) + ["VAE"] + [""] * (len(real) - 1)
    save_contact_sheet(out, frames, columns=len(real), labels=labels)
    return out


# --------------------------------------------------------------------------------------------
# the pipeline


@contextlib.contextmanager
def _stop_on(stop: threading.Event | None):
    """While active, setting ``stop`` interrupts training as Ctrl-C would (main thread only).

    The training loops stop on SIGINT at their next step with a checkpoint; outside them SIGINT
    raises KeyboardInterrupt, which :func:`train` records as an interruption. In another thread
    Python cannot take signals, so there ``stop`` is honoured between stages only.
    """
    if stop is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    finished = threading.Event()

    def watch():
        while not finished.is_set():
            if stop.wait(0.2):
                if not finished.is_set():
                    signal.raise_signal(signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, name="dancenet-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()


def train(sources: Sequence[str | os.PathLike], out: str | os.PathLike,
          minutes: float | None = None, resume: bool = False, overwrite: bool = False,
          source_fps: float | None = None, progress: Callable[[dict], None] | None = None,
          stop: threading.Event | None = None, quiet: bool = True,
          evaluate_seconds: float | None = None, evaluate_samples: int | None = None
          ) -> PipelineResult:
    """Prepare, train the VAE, encode, train the motion model and evaluate, into run ``out``.

    sources: videos, image folders, BVH files/folders, or one prepared dataset.
    minutes: training budget for VAE + motion together (default 20; on resume, the saved one).
    resume: continue an interrupted run at the stage where it stopped.
    progress: called about once a second with the dict that progress.json holds.
    stop: set it to interrupt (as Ctrl-C does); the result then has status "interrupted".
    evaluate_seconds, evaluate_samples: the final evaluation's dances (default 3 x 30 s).
    """
    run = Path(out)
    existed = run.exists()
    state, replaced = _open_state(run, sources, minutes, source_fps, resume, overwrite)
    evaluation = state.setdefault("evaluation", {"seconds": EVALUATE_SECONDS, "samples": EVALUATE_SAMPLES})
    if evaluate_seconds is not None:
        evaluation["seconds"] = float(evaluate_seconds)
    if evaluate_samples is not None:
        evaluation["samples"] = int(evaluate_samples)
    try:
        _write_json(run / STATE_FILE, state)
        result = _run_stages(run, state, progress, stop, quiet)
    except BaseException:
        if not resume and state["stages"]["prepare"]["status"] != "done":
            if not existed or replaced is not None:  # bad input: leave no half-made run behind
                shutil.rmtree(run, ignore_errors=True)
            if replaced is not None:  # ... and give back the run it was to replace
                replaced.rename(run)
                replaced = None
        raise
    finally:
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    return result


def _run_stages(run: Path, state: dict, progress, stop, quiet: bool) -> PipelineResult:
    reporter = ProgressReporter(run, state, progress)
    status, stage = "finished", STAGES[-1]
    with reporter, _stop_on(stop):
        try:
            for stage in STAGES:
                if state["stages"][stage]["status"] == "done":
                    continue
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                outcome = _run_stage(run, state, stage, reporter, quiet)
                if outcome != "done":
                    status = "interrupted"
                    break
        except KeyboardInterrupt:
            status = "interrupted"
        reporter.report(status)
    return _result(run, state, status, stage)


def _run_stage(run: Path, state: dict, stage: str, reporter: ProgressReporter, quiet: bool) -> str:
    """Run one stage and record its outcome ("done" or "interrupted") in pipeline.json."""
    state["stages"][stage]["status"] = "running"
    _write_json(run / STATE_FILE, state)
    reporter.begin(stage)
    outcome = "failed"
    try:
        outcome = STAGE_FUNCTIONS[stage](run, state, quiet)
    except KeyboardInterrupt:
        outcome = "interrupted"
    finally:
        reporter.end(stage)
        state["stages"][stage]["status"] = outcome
        _write_json(run / STATE_FILE, state)
        if outcome == "failed":
            reporter.report("failed")
    return outcome


def _result(run: Path, state: dict, status: str, stage: str) -> PipelineResult:
    metrics = {}
    with contextlib.suppress(OSError, ValueError):
        metrics = json.loads((run / REPORT_DIRECTORY / "metrics.json").read_text())
    return PipelineResult(run=run, status=status, stage=stage, summary=state.get("summary", ""),
                          metrics=metrics,
                          video_command=f"dancenet generate {shlex.quote(str(run))} -o dance.mp4 --seconds 60")
