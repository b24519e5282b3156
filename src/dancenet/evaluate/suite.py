"""Evaluate generated videos against a reference dataset: every metric of docs/metrics.md in one call.

The glue between the metric functions (metrics.py, features.py), a run (generation, the VAE and
the motion model) and the report (report.py). No drawing and no file formats here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dataset import Clip, Dataset
from ..errors import DancenetError, input_error
from . import metrics
from .features import FeatureConfig, FrechetFeature, frechet_distance

FORMAT = "dancenet-evaluation"
FORMAT_VERSION = 1
# Reference-level metrics only give context; a few thousand frames estimate them well.
MAX_REFERENCE_FRAMES = 3000


@dataclass
class Reference:
    """Real dance to compare with.

    clips: the evaluation reference (held-out clips of the run, or the whole dataset).
    training_clips: the frames the model saw, for memorisation (the whole dataset if unknown).
    role: "held-out clips" or "whole dataset", printed in the report.
    """

    dataset: Dataset
    clips: list[Clip]
    training_clips: list[Clip]
    role: str


@dataclass
class Evaluation:
    """Everything the report needs: JSON-ready ``metrics`` and the arrays behind the plots."""

    metrics: dict
    videos: dict[str, np.ndarray]
    reference_frames: list[np.ndarray]
    fps: float
    energy: dict[str, np.ndarray]
    reference_energy: np.ndarray
    freeze: dict[str, np.ndarray]
    loops: dict[str, metrics.LoopResult]
    artifacts: dict[str, np.ndarray]
    memorisation: dict[str, np.ndarray]
    reference_memorisation: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


def validation_clips(run: str | os.PathLike, motion_name: str = "motion") -> list[str] | int | None:
    """The clips a run held out for testing: ``test_clips`` in the metadata of RUN/MOTION.json
    (never trained on nor used to pick the model), else its ``val_clips``, else RUN/vae.json's
    ``val_clips``; None when it recorded none."""
    from ..checkpoint import read_model_info

    for name, kind, key in ((motion_name, "motion", "test_clips"), (motion_name, "motion", "val_clips"),
                            ("vae", "vae", "val_clips")):
        if not (Path(run) / f"{name}.json").is_file():
            continue
        try:
            names = read_model_info(run, name, kind).metadata.get(key)
        except DancenetError:  # a broken model file is reported by the loader that needs it
            continue
        if names and isinstance(names, list):
            return names
    return None


def make_reference(dataset: Dataset, val_clips: list[str] | int | None = None) -> Reference:
    """The held-out clips when ``val_clips`` names some (training = the rest), else the whole dataset."""
    if val_clips:
        try:
            training, held_out = dataset.split_clips(val_clips)
        except DancenetError:
            held_out = []
        if held_out:
            return Reference(dataset, held_out, training, "held-out clips")
    return Reference(dataset, list(dataset.clips), list(dataset.clips), "whole dataset")


def _halves(clips: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every clip cut at its middle: (first halves, second halves), so both halves see every take."""
    return [clip[:len(clip) // 2] for clip in clips], [clip[len(clip) // 2:] for clip in clips]


def _even_positions(total: int, limit: int) -> np.ndarray:
    """Up to ``limit`` positions spread evenly over ``total`` frames (all of them when they fit)."""
    if total > limit:
        return np.linspace(0, total - 1, limit).round().astype(np.int64)
    return np.arange(total)


def _even_indices(clips: list[Clip], limit: int) -> np.ndarray:
    """Up to ``limit`` global frame indices spread evenly over ``clips``."""
    indices = np.concatenate([np.arange(clip.start, clip.stop) for clip in clips])
    return indices[_even_positions(len(indices), limit)]


@dataclass(frozen=True)
class MetricSettings:
    """Every metric setting, named once; all of them are written into the report's JSON."""

    loop_threshold: float = metrics.LOOP_THRESHOLD
    loop_window_seconds: float = 1.0        # a loop compares windows of this length
    freeze_min_seconds: float = 0.5         # a freeze is a still run of at least this long
    copied_iou: float = 0.95                # a frame this close to a training frame is copied
    unlike_iou: float = metrics.UNLIKE_IOU  # a frame whose centred shape matches none this well is unlike any pose
    max_reference_frames: int = MAX_REFERENCE_FRAMES
    memorisation_library_frames: int = 4000  # training frames a generated frame is matched against
    diversity_takes: int = 5                # real takes compared with each other (<= 10 pairs)
    diversity_seconds: float = 30.0
    worst_window_seconds: float = 10.0      # each metric's worst window this long, per video
    worst_window_stride_seconds: float = 1.0


@dataclass
class ReferenceLevels:
    """What real dance scores: the yardsticks (and fitted features) every video is compared with."""

    clips: list[Clip]
    frames: list[np.ndarray]
    energy: np.ndarray
    freeze_threshold: float
    loop_min_motion: float
    feature: FrechetFeature
    windows: np.ndarray
    library: np.ndarray
    memorisation: np.ndarray | None
    level: dict


def evaluate_videos(videos: dict[str, np.ndarray], reference: Reference, *,
                    loop_threshold: float = metrics.LOOP_THRESHOLD,
                    feature_config: FeatureConfig = FeatureConfig(),
                    extra: dict | None = None, quiet: bool = True) -> Evaluation:
    """Every video-level metric of each video, pooled over videos, beside the reference's own level.

    videos: name -> (time, H, W) uint8/bool silhouettes at the reference's size and frame rate.
    extra: model-level figures (reconstruction IoU, motion NLL) merged into the summary.
    Raises DancenetError when the reference has no clip long enough for a feature window or a
    video is too short or of another size.
    """
    from ..progress import progress

    settings = MetricSettings(loop_threshold=loop_threshold)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    long_clips = _check_inputs(videos, reference, feature_config)
    levels = reference_levels(reference, long_clips, settings, feature_config, max(map(len, videos.values())))
    timings["reference_levels"] = time.perf_counter() - clock
    clock = time.perf_counter()
    per_video = {name: _video_metrics(name, metrics.as_binary(video), levels, reference.dataset.fps, settings)
                 for name, video in progress(videos.items(), total=len(videos), desc="evaluate",
                                             unit="video", quiet=quiet)}
    timings["videos"] = time.perf_counter() - clock
    summary = _summary(videos, per_video, levels, settings)
    reference_level = dict(levels.level)
    if extra:
        summary.update({key: value for key, value in extra.items() if not key.startswith("reference_")})
        reference_level.update({key[len("reference_"):]: value for key, value in extra.items()
                                if key.startswith("reference_")})
    result = report_json(reference, levels, settings, summary, reference_level,
                         [item["sample"] for item in per_video.values()], timings)
    return Evaluation(metrics=result, videos=dict(videos), reference_frames=levels.frames,
                      fps=reference.dataset.fps, energy={n: v["energy"] for n, v in per_video.items()},
                      reference_energy=levels.energy, freeze={n: v["freeze"] for n, v in per_video.items()},
                      loops={n: v["loops"] for n, v in per_video.items()},
                      artifacts={n: v["artifacts"] for n, v in per_video.items()},
                      memorisation={n: v["memorisation"] for n, v in per_video.items()},
                      reference_memorisation=levels.memorisation, timings=timings)


def _check_inputs(videos: dict[str, np.ndarray], reference: Reference,
                  feature_config: FeatureConfig) -> list[Clip]:
    """The reference clips long enough to evaluate against; user errors for unusable input."""
    dataset = reference.dataset
    fps, height, width = dataset.fps, dataset.height, dataset.width
    window = max(2, int(round(feature_config.window_seconds * fps)))
    long_clips = [clip for clip in reference.clips if clip.length >= 2 * window]
    if not long_clips:
        raise input_error(dataset.path, f"no reference clip is long enough for evaluation: need at least "
                                        f"{2 * window} frames ({2 * window / fps:.2f} s at {fps:g} fps); "
                                        f"the longest has {max(c.length for c in reference.clips)}")
    if not videos:
        raise DancenetError("nothing to evaluate: no videos")
    for name, video in videos.items():
        if video.ndim != 3 or video.shape[1:] != (height, width):
            raise DancenetError(f"{name}: frames of shape {video.shape[1:]} do not match the reference "
                                f"{(height, width)}")
        if len(video) < 2 * window:
            raise DancenetError(f"{name}: {len(video)} frames is too short to evaluate; need at least "
                                f"{2 * window} ({2 * window / fps:.2f} s)")
    return long_clips


def reference_levels(reference: Reference, long_clips: list[Clip], settings: MetricSettings,
                     feature_config: FeatureConfig, video_length: int) -> ReferenceLevels:
    """How real dance scores on every metric, and the fitted features videos are compared with."""
    dataset = reference.dataset
    frames = [dataset.clip_frames(clip).astype(bool) for clip in long_clips]
    library = dataset.frames_at(_even_indices(reference.training_clips, settings.memorisation_library_frames))
    return levels_from_frames(frames, library, reference.role == "held-out clips", dataset.fps,
                              settings, feature_config, video_length, clips=long_clips)


def levels_from_frames(frames: list[np.ndarray], library: np.ndarray, held_out: bool, fps: float,
                       settings: MetricSettings, feature_config: FeatureConfig, video_length: int,
                       clips: list[Clip] | None = None) -> ReferenceLevels:
    """:func:`reference_levels` from frames in memory: ``frames`` the reference takes (bool, each
    long enough for two feature windows), ``library`` the training frames a video could copy;
    ``held_out``: the reference is unseen (memorisation is measured only then). Motion
    training's rollout selection uses this."""
    height, width = frames[0].shape[1:]
    edges = np.cumsum([0, *map(len, frames)])
    positions = _even_positions(int(edges[-1]), settings.max_reference_frames)
    owner = np.searchsorted(edges, positions, side="right") - 1
    sample = np.stack([frames[clip][position - edges[clip]] for clip, position in zip(owner, positions)])
    energy = np.concatenate([metrics.motion_energy(clip) for clip in frames])
    threshold = metrics.freeze_threshold(energy, height * width)
    loop_min_motion = metrics.LOOP_MIN_MOTION_SHARE * float(np.median(energy))
    freeze = np.concatenate([metrics.freeze_mask(metrics.motion_energy(clip), threshold, fps,
                                                 settings.freeze_min_seconds) for clip in frames])
    feature = FrechetFeature.fit(frames, fps, feature_config)
    first_half, second_half = _halves(frames)
    try:
        floor = frechet_distance(feature.transform(first_half), feature.transform(second_half))
    except ValueError:
        floor = None  # too little reference to split; the report says so
    loops = [metrics.loop_analysis(clip, fps, settings.loop_window_seconds, threshold=settings.loop_threshold,
                                   min_motion=loop_min_motion) for clip in frames]
    looping = np.concatenate([loop.looping for loop in loops])
    similarity = np.concatenate([loop.best_similarity for loop in loops])
    artifacts = metrics.artifact_analysis(sample)
    memorisation = metrics.best_match_iou(sample, library) if held_out else None
    unlike = (metrics.pose_match(sample, library) < settings.unlike_iou) if held_out else None
    chosen = np.unique(np.linspace(0, len(frames) - 1, min(settings.diversity_takes, len(frames))).round().astype(int))
    length = min(video_length, int(settings.diversity_seconds * fps))
    diversity_clips = [frames[index][:length] for index in chosen]
    if len(diversity_clips) == 1:
        diversity_clips = list(first_half[:1]) + list(second_half[:1])
    level = {
        "freeze_ratio": float(freeze.mean()),
        "loop_ratio": float(looping.mean()) if len(looping) else None,
        "loop_best_similarity_p95": float(np.percentile(similarity, 95)) if len(looping) else None,
        "artifact_ratio": artifacts.ratio,
        "stray_frame_ratio": artifacts.stray_ratio,
        "empty_frame_ratio": artifacts.empty_ratio,
        "frechet_distance": floor,
        "motion_energy": metrics.energy_summary(energy),
        "memorisation_mean_best_iou": float(memorisation.mean()) if memorisation is not None else None,
        "copied_frame_ratio": (float((memorisation >= settings.copied_iou).mean())
                               if memorisation is not None else None),
        "unlike_frame_ratio": float(unlike.mean()) if unlike is not None else None,
        "diversity": metrics.diversity(diversity_clips) if len(diversity_clips) > 1 else None,
    }
    names = [clip.name for clip in clips] if clips else [f"clip {index + 1}" for index in range(len(frames))]
    level["worst_window"] = reference_worst_windows(  # issue 14: real dance's worst window, for context
        names, frames, energy, freeze, loops, artifacts, memorisation, unlike, fps, settings)
    return ReferenceLevels(clips or [], frames, energy, threshold, loop_min_motion, feature,
                           feature.transform(frames), library, memorisation, level)


def _video_metrics(name: str, video: np.ndarray, levels: ReferenceLevels, fps: float,
                   settings: MetricSettings) -> dict:
    """One video's per-frame arrays and its row of the report (``sample``)."""
    energy = metrics.motion_energy(video)
    freeze = metrics.freeze_mask(energy, levels.freeze_threshold, fps, settings.freeze_min_seconds)
    loops = metrics.loop_analysis(video, fps, settings.loop_window_seconds, threshold=settings.loop_threshold,
                                  min_motion=levels.loop_min_motion)
    artifact = metrics.artifact_analysis(video)
    windows = levels.feature.transform([video])
    memorisation = metrics.best_match_iou(video, levels.library)
    unlike = metrics.pose_match(video, levels.library) < settings.unlike_iou
    sample = {
        "name": name, "frames": int(len(video)), "seconds": len(video) / fps,
        "motion_energy": metrics.energy_summary(energy), "freeze_ratio": float(freeze.mean()),
        "loop_ratio": loops.ratio, "artifact_ratio": artifact.ratio,
        "stray_frame_ratio": artifact.stray_ratio,
        "empty_frame_ratio": artifact.empty_ratio,
        "frechet_distance": frechet_distance(windows, levels.windows),
        "memorisation_mean_best_iou": float(memorisation.mean()),
        "copied_frame_ratio": float((memorisation >= settings.copied_iou).mean()),
        "unlike_frame_ratio": float(unlike.mean()),
    }
    sample["worst_window"] = worst_windows(
        window_series(energy, freeze, loops.looping, artifact.per_frame * artifact.foreground, artifact.foreground,
                      artifact.empty, memorisation >= settings.copied_iou, unlike=unlike),
        len(video), fps, settings, levels.level["motion_energy"]["mean"])
    return {"energy": energy, "freeze": freeze, "loops": loops, "artifacts": artifact.per_frame,
            "windows": windows, "memorisation": memorisation, "unlike": unlike, "sample": sample}


def _summary(videos: dict[str, np.ndarray], per_video: dict[str, dict], levels: ReferenceLevels,
             settings: MetricSettings) -> dict:
    """The metrics pooled over every video."""
    names = list(videos)
    pooled = {key: np.concatenate([per_video[name][key] for name in names])
              for key in ("energy", "windows", "memorisation", "freeze", "unlike")}
    samples = [per_video[name]["sample"] for name in names]
    foreground = sum(metrics.as_binary(videos[name]).sum() for name in names)
    artifact_pixels = sum(float((per_video[name]["artifacts"] * metrics.as_binary(videos[name]).sum(axis=(1, 2))).sum())
                          for name in names)
    floor = levels.level["frechet_distance"]
    summary = {
        "freeze_ratio": float(pooled["freeze"].mean()),
        "loop_ratio": float(np.concatenate([per_video[name]["loops"].looping for name in names]).mean()),
        "artifact_ratio": artifact_pixels / max(foreground, 1),
        "stray_frame_ratio": _per_frame_mean(samples, "stray_frame_ratio"),
        "empty_frame_ratio": _per_frame_mean(samples, "empty_frame_ratio"),
        "frechet_distance": frechet_distance(pooled["windows"], levels.windows),
        "frechet_real_vs_real": floor,
        "motion_energy": metrics.energy_summary(pooled["energy"]),
        "motion_energy_wasserstein": _wasserstein(pooled["energy"], levels.energy),
        "memorisation_mean_best_iou": float(pooled["memorisation"].mean()),
        "copied_frame_ratio": float((pooled["memorisation"] >= settings.copied_iou).mean()),
        "unlike_frame_ratio": float(pooled["unlike"].mean()),
        "diversity": metrics.diversity([videos[name] for name in names]) if len(names) > 1 else None,
    }
    if floor:
        summary["frechet_over_real_vs_real"] = summary["frechet_distance"] / floor
    summary["worst_window"] = worst_across({name: per_video[name]["sample"]["worst_window"] for name in names},
                                           "video")
    return summary


def _per_frame_mean(samples: list[dict], key: str) -> float:
    """A per-video share of frames pooled over the videos (weighted by their frame counts)."""
    return float(sum(s[key] * s["frames"] for s in samples) / sum(s["frames"] for s in samples))


def score_videos(videos: dict[str, np.ndarray], levels: ReferenceLevels, fps: float,
                 settings: MetricSettings = MetricSettings()) -> dict:
    """The summary metrics of ``videos`` (name -> (time, H, W)) against ``levels`` that were
    computed once (:func:`levels_from_frames`): the same numbers ``evaluate`` pools, without the
    report's arrays."""
    per_video = {name: _video_metrics(name, metrics.as_binary(video), levels, fps, settings)
                 for name, video in videos.items()}
    return _summary(videos, per_video, levels, settings)


def worst_is_clean(key: str, entry: dict) -> bool:
    """A worst window with nothing bad in it (every window of the metric is 0), so there is no
    place to point at; for motion energy 0 is the worst value (a frozen dance), never clean."""
    return entry["value"] == 0 and key != "motion_energy_over_real"


def report_json(reference: Reference, levels: ReferenceLevels, settings: MetricSettings, summary: dict,
                reference_level: dict, samples: list[dict], timings: dict[str, float]) -> dict:
    """The report's ``metrics.json`` document."""
    dataset = reference.dataset
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "reference": {
            "path": str(dataset.path), "role": reference.role,
            "clips": [clip.name for clip in levels.clips],
            "frames": int(sum(clip.length for clip in levels.clips)),
            "training_clips": [clip.name for clip in reference.training_clips],
            "fps": dataset.fps, "height": dataset.height, "width": dataset.width,
            "manifest_hash": dataset.manifest_hash,
        },
        "settings": {
            "freeze_threshold": levels.freeze_threshold,
            "freeze_min_seconds": settings.freeze_min_seconds,
            "loop_threshold": settings.loop_threshold,
            "loop_window_seconds": settings.loop_window_seconds,
            "loop_min_motion": levels.loop_min_motion,
            "artifact_gap_pixels": metrics.default_gap(dataset.height),
            "empty_share": metrics.EMPTY_SHARE,
            "frechet_window_frames": levels.feature.window,
            "frechet_stride_frames": levels.feature.stride,
            "frechet_dimensions": levels.feature.dimensions,
            "copied_iou": settings.copied_iou,
            "worst_window_seconds": settings.worst_window_seconds,
            "worst_window_stride_seconds": settings.worst_window_stride_seconds,
        },
        "summary": summary,
        "reference_level": reference_level,
        "samples": samples,
        "timings_seconds": {key: round(value, 3) for key, value in timings.items()},
    }


# --- worst windows: each metric's worst stretch, not only its mean (docs/metrics.md) ------------

def window_series(energy: np.ndarray, freeze: np.ndarray, looping: np.ndarray, artifact_pixels: np.ndarray,
                  foreground: np.ndarray, empty: np.ndarray, copied: np.ndarray | None,
                  measured: np.ndarray | None = None, unlike: np.ndarray | None = None) -> dict:
    """One video's per-frame series, metric -> (numerator, denominator) for :func:`worst_windows`.

    energy, freeze: (time - 1,); looping: (loop windows,) moving and repeating an earlier window;
    artifact_pixels, foreground, empty, copied, unlike: (time,). measured: (time,) 1 where a frame's
    artifacts, emptiness, copying and pose were measured (None: every frame was).
    """
    series = {"freeze_ratio": (freeze, None), "loop_ratio": (looping, None),
              "artifact_ratio": (artifact_pixels, foreground), "empty_frame_ratio": (empty, measured),
              "motion_energy": (energy, None)}
    if copied is not None:
        series["copied_frame_ratio"] = (copied, measured)
    if unlike is not None:
        series["unlike_frame_ratio"] = (unlike, measured)
    return series


def _badness(key: str, values):
    """How bad window values are: the ratio itself, or for motion energy over real its distance from 1
    in ratio (half and double are equally bad)."""
    if key == "motion_energy_over_real":
        return np.abs(np.log(np.maximum(values, 1e-12)))
    return values


def worst_windows(series: dict, frames: int, fps: float, settings: MetricSettings, real_energy_mean: float) -> dict:
    """Each metric's worst window of one ``frames``-long video.

    Windows of ``settings.worst_window_seconds`` every ``worst_window_stride_seconds``; a shorter
    video is one window. Returns {metric: {"value", "start_seconds", "seconds"}}; motion energy
    becomes "motion_energy_over_real", the window mean over ``real_energy_mean`` farthest from 1
    (with the window's "mean").
    """
    window = max(1, int(round(settings.worst_window_seconds * fps)))
    starts = metrics.window_starts(frames, window, int(round(settings.worst_window_stride_seconds * fps)))
    result = {}
    for key, (numerator, denominator) in series.items():
        values = metrics.window_ratios(numerator, denominator, frames, starts, window)
        means = values
        if key == "motion_energy":
            if real_energy_mean <= 0:
                continue
            key, values = "motion_energy_over_real", values / real_energy_mean
        index = int(np.argmax(_badness(key, values)))
        result[key] = {"value": float(values[index]), "start_seconds": float(starts[index] / fps),
                       "seconds": min(window, frames) / fps}
        if key == "motion_energy_over_real":
            result[key]["mean"] = float(means[index])
    return result


def worst_across(per_name: dict[str, dict], label: str) -> dict:
    """The worst of several videos' (or clips') :func:`worst_windows`, each naming where it is (``label``)."""
    result = {}
    for name, windows in per_name.items():
        for key, entry in windows.items():
            if key not in result or _badness(key, entry["value"]) > _badness(key, result[key]["value"]):
                result[key] = {label: name, **entry}
    return result


def reference_worst_windows(names: list[str], frames: list[np.ndarray], energy: np.ndarray, freeze: np.ndarray,
                            loops: list[metrics.LoopResult], artifacts: metrics.ArtifactResult,
                            memorisation: np.ndarray | None, unlike: np.ndarray | None, fps: float,
                            settings: MetricSettings) -> dict:
    """Real dance's worst windows: :func:`worst_windows` on every reference clip (``frames``, named
    ``names``; windows never cross clips), the worst of all clips.

    energy, freeze: the clips' series concatenated; loops: one per clip. artifacts and memorisation
    were measured on the frames :func:`_even_positions` spreads over the clips (every frame of a
    reference of at most ``max_reference_frames``); a window's artifact, empty and copied shares
    count those frames only, as do its unlike-any-pose shares (``unlike``, measured with memorisation).
    """
    lengths = np.array([len(clip) for clip in frames])
    positions = _even_positions(int(lengths.sum()), settings.max_reference_frames)

    def spread(values: np.ndarray) -> np.ndarray:  # sample values back at their frames, 0 elsewhere
        full = np.zeros(int(lengths.sum()))
        full[positions] = values
        return full

    measured = spread(np.ones(len(positions)))
    pixels, foreground = spread(artifacts.per_frame * artifacts.foreground), spread(artifacts.foreground)
    empty = spread(artifacts.empty)
    copied = None if memorisation is None else spread(memorisation >= settings.copied_iou)
    unlike = None if unlike is None else spread(unlike)
    frame_edges, energy_edges = np.cumsum([0, *lengths]), np.cumsum([0, *(lengths - 1)])
    per_clip = {}
    for index, name in enumerate(names):
        clip = slice(frame_edges[index], frame_edges[index + 1])
        pairs = slice(energy_edges[index], energy_edges[index + 1])
        loop = loops[index]
        series = window_series(energy[pairs], freeze[pairs],
                               loop.looping,
                               pixels[clip], foreground[clip], empty[clip],
                               None if copied is None else copied[clip], measured[clip],
                               None if unlike is None else unlike[clip])
        per_clip[name] = worst_windows(series, int(lengths[index]), fps, settings, float(energy.mean()))
    return worst_across(per_clip, "clip")


def _wasserstein(first: np.ndarray, second: np.ndarray) -> float:
    """Earth mover's distance between two motion-energy distributions (in shares of the frame)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(first, second))


# --- run-level figures: the VAE and the motion model on held-out real frames ---------------------

def _clip_prefixes(clips: list[Clip], max_frames: int) -> list[tuple[int, int]]:
    """(start, stop) of each clip, cut so that together they hold at most ``max_frames`` frames."""
    share = max(2, max_frames // max(len(clips), 1))
    return [(clip.start, min(clip.stop, clip.start + share)) for clip in clips]


def model_metrics(run: str | os.PathLike, dataset: Dataset, clips: list[Clip], max_frames: int = 3000,
                  batch: int | None = None, motion_name: str = "motion") -> dict:
    """VAE reconstruction IoU and motion-model NLL per frame on real ``clips``.

    Each clip's first frames (``max_frames`` in all) are encoded once with the run's VAE; the
    posterior means are decoded and binarised at 0.5 (reconstruction IoU against the real frames)
    and fed to the motion model, its state carried through each clip (mean latent negative
    log-likelihood per frame, nats, in raw latent units as ``dancenet train motion`` reports it).
    Returns {"reconstruction_iou", "motion_nll", "model_frames"}; a figure is None when the run
    has no such model.
    """
    import torch

    from ..vae import load as load_vae

    result = {"reconstruction_iou": None, "motion_nll": None, "model_frames": 0}
    run = Path(run)
    if not (run / "vae.safetensors").is_file():
        return result
    vae = load_vae(run)
    batch = batch or vae.config.inference_batch_size  # the 2018 VAE needs small batches to fit 4 GB
    ranges = _clip_prefixes(clips, max_frames)
    means, scores = [], []
    with torch.inference_mode():
        for start, stop in ranges:
            for first in range(start, stop, batch):
                frames = dataset.frames(first, min(first + batch, stop))
                mean = vae.encode(torch.from_numpy(frames)).mean
                reconstruction = vae.decode(mean).cpu().numpy() >= 0.5
                scores.append(metrics.frame_iou(reconstruction, frames))
                means.append(mean.cpu())
    result["reconstruction_iou"] = float(np.concatenate(scores).mean())
    result["model_frames"] = int(sum(stop - start for start, stop in ranges))
    if (run / f"{motion_name}.safetensors").is_file():
        from ..motion.model import load_motion, validation_nll

        model, scaler, _ = load_motion(run, motion_name)
        everything = torch.cat(means)
        bounds = np.cumsum([0] + [stop - start for start, stop in ranges])
        # each clip's every frame_stride-th frame: what the model reads
        pieces = [everything[first:last:model.config.frame_stride]
                  for first, last in zip(bounds[:-1], bounds[1:])]
        latents = torch.cat(pieces)
        offsets = np.cumsum([0] + [len(piece) for piece in pieces])
        with torch.inference_mode():
            result["motion_nll"] = float(validation_nll(model, scaler, latents,
                                                        list(zip(offsets[:-1].tolist(), offsets[1:].tolist()))))
    return result


# --- videos from any system ---------------------------------------------------------------------

def read_video(path: str | os.PathLike, height: int, width: int, fps: float) -> tuple[np.ndarray, list[str]]:
    """Decode a video into (time, height, width) bool silhouettes at the reference's size and rate.

    Uses dancenet's video ingest (threshold segmentation: the dancer is bright on a dark ground,
    fitted into the frame keeping aspect ratio, resampled by timestamps to ``fps``) but skips its
    mask cleaning: cleaning removes the specks and fills the holes that the artifact metric exists
    to count. Returns the frames and notes about resizing / resampling for the user.
    """
    from ..ingest import PrepareOptions
    from ..ingest.segment import fit_mask, make_segmenter
    from ..ingest.timing import resample_indices
    from ..ingest.video import resampled_frames, survey

    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such file" if not path.exists() else "is not a video file")
    info = survey(path, PrepareOptions(height=height, width=width, fps=fps, segment="threshold", quiet=True))
    notes = []
    if (info.source_height, info.source_width) != (height, width):
        same_aspect = abs(info.source_width / info.source_height - width / height) < 0.02
        notes.append(f"{path}: {info.source_width}x{info.source_height} resized to {width}x{height} to match the "
                     f"reference" + ("" if same_aspect else " (aspect ratio kept, padded with background)"))
    if abs(info.source_fps - fps) > 0.01:
        notes.append(f"{path}: {info.source_fps:g} fps resampled to the reference's {fps:g} fps")
    segmenter = make_segmenter("threshold", info.samples)
    indices = resample_indices(info.times, info.end_time, fps)
    work_height, work_width = info.samples[0].shape[:2]
    frames = np.zeros((len(indices), height, width), dtype=bool)
    for index, rgb in enumerate(resampled_frames(path, indices, work_height, work_width)):
        frames[index] = fit_mask(segmenter(rgb), height, width)
    return frames, notes
