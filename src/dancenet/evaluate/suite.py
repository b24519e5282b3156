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
    """The validation clips a run recorded (``val_clips`` in the metadata of RUN/MOTION.json,
    else of RUN/vae.json), or None when it recorded none."""
    from ..checkpoint import read_model_info

    for name, kind in ((motion_name, "motion"), ("vae", "vae")):
        if not (Path(run) / f"{name}.json").is_file():
            continue
        try:
            names = read_model_info(run, name, kind).metadata.get("val_clips")
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


def _even_indices(clips: list[Clip], limit: int) -> np.ndarray:
    """Up to ``limit`` global frame indices spread evenly over ``clips``."""
    indices = np.concatenate([np.arange(clip.start, clip.stop) for clip in clips])
    if len(indices) > limit:
        indices = indices[np.linspace(0, len(indices) - 1, limit).round().astype(np.int64)]
    return indices


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

    dataset = reference.dataset
    fps, height, width = dataset.fps, dataset.height, dataset.width
    timings: dict[str, float] = {}
    clock = time.perf_counter()

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
    reference_frames = [dataset.clip_frames(clip).astype(bool) for clip in long_clips]
    timings["load_reference"] = time.perf_counter() - clock

    clock = time.perf_counter()
    reference_energy = np.concatenate([metrics.motion_energy(clip) for clip in reference_frames])
    threshold = metrics.freeze_threshold(reference_energy, height * width)
    loop_min_motion = metrics.LOOP_MIN_MOTION_SHARE * float(np.median(reference_energy))
    reference_freeze = np.concatenate([metrics.freeze_mask(metrics.motion_energy(clip), threshold, fps)
                                       for clip in reference_frames])
    timings["motion_energy_and_freeze"] = time.perf_counter() - clock

    clock = time.perf_counter()
    feature = FrechetFeature.fit(reference_frames, fps, feature_config)
    reference_windows = feature.transform(reference_frames)
    first_half, second_half = _halves(reference_frames)
    try:
        floor = frechet_distance(feature.transform(first_half), feature.transform(second_half))
    except ValueError:
        floor = None  # too little reference to split; the report says so
    timings["frechet_fit_and_floor"] = time.perf_counter() - clock

    # Reference levels: how real dance scores on the same metrics (the yardstick beside each figure).
    clock = time.perf_counter()
    reference_loops = [metrics.loop_analysis(clip, fps, threshold=loop_threshold, min_motion=loop_min_motion)
                       for clip in reference_frames]
    reference_loop = np.concatenate([(loop.best_similarity >= loop_threshold) & loop.moving
                                     for loop in reference_loops])
    reference_similarity = np.concatenate([loop.best_similarity for loop in reference_loops])
    sample_indices = _even_indices(long_clips, MAX_REFERENCE_FRAMES)
    reference_artifacts = metrics.artifact_analysis(dataset.frames_at(sample_indices))
    timings["reference_levels"] = time.perf_counter() - clock

    clock = time.perf_counter()
    training_indices = _even_indices(reference.training_clips, 4000)
    library = dataset.frames_at(training_indices)
    reference_memorisation = None
    if reference.role == "held-out clips":
        reference_memorisation = metrics.best_match_iou(dataset.frames_at(sample_indices), library)
    timings["memorisation_reference"] = time.perf_counter() - clock

    energy, freeze, loops, artifacts, memorisation, windows, samples = {}, {}, {}, {}, {}, {}, []
    section_times = {"motion_energy": 0.0, "loops": 0.0, "artifacts": 0.0, "frechet": 0.0, "memorisation": 0.0}
    for name, video in progress(videos.items(), total=len(videos), desc="evaluate", unit="video", quiet=quiet):
        video = metrics.as_binary(video)
        start = time.perf_counter()
        energy[name] = metrics.motion_energy(video)
        freeze[name] = metrics.freeze_mask(energy[name], threshold, fps)
        section_times["motion_energy"] += time.perf_counter() - start
        start = time.perf_counter()
        loops[name] = metrics.loop_analysis(video, fps, threshold=loop_threshold, min_motion=loop_min_motion)
        section_times["loops"] += time.perf_counter() - start
        start = time.perf_counter()
        artifact = metrics.artifact_analysis(video)
        artifacts[name] = artifact.per_frame
        section_times["artifacts"] += time.perf_counter() - start
        start = time.perf_counter()
        windows[name] = feature.transform([video])
        section_times["frechet"] += time.perf_counter() - start
        start = time.perf_counter()
        memorisation[name] = metrics.best_match_iou(video, library)
        section_times["memorisation"] += time.perf_counter() - start
        samples.append({
            "name": name,
            "frames": int(len(video)),
            "seconds": len(video) / fps,
            "motion_energy": metrics.energy_summary(energy[name]),
            "freeze_ratio": float(freeze[name].mean()),
            "loop_ratio": loops[name].ratio,
            "artifact_ratio": artifact.ratio,
            "empty_frame_ratio": artifact.empty_ratio,
            "frechet_distance": frechet_distance(windows[name], reference_windows),
            "memorisation_mean_best_iou": float(memorisation[name].mean()),
            "copied_frame_ratio": float((memorisation[name] >= 0.95).mean()),
        })
    timings.update(section_times)

    clock = time.perf_counter()
    names = list(videos)
    pooled_energy = np.concatenate([energy[name] for name in names])
    pooled_windows = np.concatenate([windows[name] for name in names])
    pooled_memorisation = np.concatenate([memorisation[name] for name in names])
    total_frames = sum(len(videos[name]) for name in names)
    foreground = {name: metrics.as_binary(videos[name]).sum() for name in names}
    artifact_pixels = sum(float((artifacts[name] * metrics.as_binary(videos[name]).sum(axis=(1, 2))).sum())
                          for name in names)
    summary = {
        "freeze_ratio": float(np.concatenate([freeze[name] for name in names]).mean()),
        "loop_ratio": float(np.concatenate([(loops[name].best_similarity >= loop_threshold) & loops[name].moving
                                            for name in names]).mean()),
        "artifact_ratio": artifact_pixels / max(sum(foreground.values()), 1),
        "empty_frame_ratio": float(sum(s["empty_frame_ratio"] * s["frames"] for s in samples) / total_frames),
        "frechet_distance": frechet_distance(pooled_windows, reference_windows),
        "frechet_real_vs_real": floor,
        "motion_energy": metrics.energy_summary(pooled_energy),
        "motion_energy_wasserstein": _wasserstein(pooled_energy, reference_energy),
        "memorisation_mean_best_iou": float(pooled_memorisation.mean()),
        "copied_frame_ratio": float((pooled_memorisation >= 0.95).mean()),
        "diversity": metrics.diversity([videos[name] for name in names]) if len(names) > 1 else None,
    }
    if floor:
        summary["frechet_over_real_vs_real"] = summary["frechet_distance"] / floor
    # Between real takes: at most 5 takes (10 pairs) of at most 30 s, plenty for a level.
    chosen = np.unique(np.linspace(0, len(reference_frames) - 1, min(5, len(reference_frames))).round().astype(int))
    length = min(max(len(v) for v in videos.values()), int(30 * fps))
    diversity_clips = [reference_frames[index][:length] for index in chosen]
    if len(diversity_clips) == 1:
        diversity_clips = list(_halves(reference_frames)[0][:1]) + list(_halves(reference_frames)[1][:1])
    reference_level = {
        "freeze_ratio": float(reference_freeze.mean()),
        "loop_ratio": float(reference_loop.mean()) if len(reference_loop) else None,
        "loop_best_similarity_p95": float(np.percentile(reference_similarity, 95)) if len(reference_loop) else None,
        "artifact_ratio": reference_artifacts.ratio,
        "empty_frame_ratio": reference_artifacts.empty_ratio,
        "frechet_distance": floor,
        "motion_energy": metrics.energy_summary(reference_energy),
        "memorisation_mean_best_iou": (float(reference_memorisation.mean())
                                       if reference_memorisation is not None else None),
        "copied_frame_ratio": (float((reference_memorisation >= 0.95).mean())
                               if reference_memorisation is not None else None),
        "diversity": metrics.diversity(diversity_clips) if len(diversity_clips) > 1 else None,
    }
    if extra:
        summary.update({key: value for key, value in extra.items() if not key.startswith("reference_")})
        reference_level.update({key[len("reference_"):]: value for key, value in extra.items()
                                if key.startswith("reference_")})
    timings["summary"] = time.perf_counter() - clock
    result = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "reference": {
            "path": str(dataset.path),
            "role": reference.role,
            "clips": [clip.name for clip in long_clips],
            "frames": int(sum(clip.length for clip in long_clips)),
            "training_clips": [clip.name for clip in reference.training_clips],
            "fps": fps,
            "height": height,
            "width": width,
            "manifest_hash": dataset.manifest_hash,
        },
        "settings": {
            "freeze_threshold": threshold,
            "freeze_min_seconds": 0.5,
            "loop_threshold": loop_threshold,
            "loop_window_seconds": 1.0,
            "loop_min_motion": loop_min_motion,
            "artifact_gap_pixels": metrics.default_gap(height),
            "empty_share": metrics.EMPTY_SHARE,
            "frechet_window_frames": feature.window,
            "frechet_stride_frames": feature.stride,
            "frechet_dimensions": feature.dimensions,
            "copied_iou": 0.95,
        },
        "summary": summary,
        "reference_level": reference_level,
        "samples": samples,
        "timings_seconds": {key: round(value, 3) for key, value in timings.items()},
    }
    return Evaluation(metrics=result, videos=dict(videos), reference_frames=reference_frames, fps=fps,
                      energy=energy, reference_energy=reference_energy, freeze=freeze, loops=loops,
                      artifacts=artifacts, memorisation=memorisation,
                      reference_memorisation=reference_memorisation, timings=timings)


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
        latents = torch.cat(means)
        offsets = np.cumsum([0] + [stop - start for start, stop in ranges])
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
