"""Use a trained VAE: load it from a run, encode a dataset to latents, reconstruct a video.

``RUN/latents.npz`` (written by :func:`write_latents`) is the motion model's input:
``mean`` and ``log_var`` (frames, latent_size) float32, ``clip_names``, ``clip_starts``,
``clip_stops`` (int64 global frame indices of the dataset), ``fps``, ``vae_hash`` (sha256 of
``vae.safetensors``), ``dataset_hash`` (sha256 of the dataset's manifest) and ``footage`` (each
frame as the copy guard compares it: :func:`dancenet.copies.block_counts`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..dataset import Dataset
from ..errors import DancenetError, input_error
from ..latents import LATENTS_FILE, Latents, file_sha256, save_latents
from .model import VAE, VAEConfig, check_frame_size


def load(run_or_dir: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """The trained VAE of a run (or any directory holding ``vae.safetensors`` + ``vae.json``).

    Returns the model in eval mode on ``device`` with ``.config``, ``.metadata`` and ``.vae_hash``
    set. A missing, corrupt or mismatched model file is a :class:`DancenetError` naming the file.
    """
    from ..checkpoint import load_pretrained

    directory = Path(run_or_dir)
    if not directory.is_dir():
        raise input_error(directory, "no such run directory")
    if not (directory / "vae.safetensors").is_file():
        raise input_error(directory, "holds no trained VAE (vae.safetensors); "
                                     "train one with `dancenet train vae DATASET --out RUN`")
    saved = load_pretrained(directory, "vae", "vae")
    config_values, metadata = saved.config, dict(saved.metadata)
    if saved.version == 1:  # version 1 kept training settings beside the architecture
        known = set(VAEConfig.__dataclass_fields__)
        metadata["training"] = {k: v for k, v in config_values.items() if k not in known}
        config_values = {k: v for k, v in config_values.items() if k in known}
    try:
        config = VAEConfig.from_dict(config_values, f"{directory / 'vae.json'}: config")
    except DancenetError as error:
        raise input_error(directory / "vae.json", f"does not describe a VAE ({error})") from None
    model = VAE(config)
    try:
        model.load_state_dict(saved.state_dict)
    except RuntimeError:
        raise input_error(directory / "vae.safetensors",
                          "does not match the architecture in vae.json") from None
    model.vae_hash = file_sha256(directory / "vae.safetensors")
    model.metadata = metadata
    return model.to(device).eval()


@torch.inference_mode()
def encode_frames(vae: VAE, dataset: Dataset, batch_size: int | None = None, quiet: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior moments of every dataset frame: (mean, log_var), each (frames, L) float32."""
    from ..progress import progress

    check_frame_size(vae.config, dataset.height, dataset.width, str(dataset.path))
    batch_size = batch_size or vae.config.inference_batch_size
    mean = np.empty((len(dataset), vae.config.latent_size), dtype=np.float32)
    log_var = np.empty_like(mean)
    for start, stop in progress(list(_ranges(0, len(dataset), batch_size)), desc="encode",
                                unit="batch", quiet=quiet):
        batch_mean, batch_log_var = vae.encode_moments(torch.from_numpy(dataset.frames(start, stop)))
        mean[start:stop] = batch_mean.cpu().numpy()
        log_var[start:stop] = batch_log_var.cpu().numpy()
    return mean, log_var


def _footage(dataset: Dataset, batch_size: int) -> np.ndarray:
    """Every dataset frame as the copy guard compares it (:func:`dancenet.copies.block_counts`):
    the latents file keeps them, so a dance can be kept from copying the footage itself and not
    only its decoded frames (a few seconds for 10,000 frames)."""
    from ..copies import block_counts

    return np.concatenate([block_counts(dataset.frames(start, stop))
                           for start, stop in _ranges(0, len(dataset), batch_size)])


def write_latents(run: str | os.PathLike, dataset_path: str | os.PathLike, device: str = "cpu",
                  batch_size: int | None = None, quiet: bool = False) -> Path:
    """Encode a dataset with the run's VAE and write ``RUN/latents.npz`` atomically."""
    vae = load(run, device)
    dataset = Dataset(dataset_path)
    mean, log_var = encode_frames(vae, dataset, batch_size, quiet)
    footage = _footage(dataset, batch_size or vae.config.inference_batch_size)
    offsets = np.concatenate([[0], np.cumsum([clip.length for clip in dataset.clips])])
    if offsets[-1] != len(mean):  # clips must tile the dataset for the rows to be theirs
        mean, log_var, footage = (np.concatenate([values[clip.start:clip.stop] for clip in dataset.clips])
                                  for values in (mean, log_var, footage))
    latents = Latents(mean=mean, log_var=log_var, clip_names=[clip.name for clip in dataset.clips],
                      offsets=offsets, fps=dataset.fps, vae_hash=vae.vae_hash,
                      dataset_hash=dataset.manifest_hash, footage=footage)
    return save_latents(Path(run) / LATENTS_FILE, latents)


# --------------------------------------------------------------------------------------------
# reconstruct


def _source_clips(source: Path, vae: VAE, fps: float, quiet: bool) -> Iterator[tuple[str, Iterable[np.ndarray]]]:
    """(clip name, stream of (H, W) masks) from a dataset directory or anything prepare takes."""
    if (source / "manifest.json").is_file():
        dataset = Dataset(source)
        check_frame_size(vae.config, dataset.height, dataset.width, str(source))
        for clip in dataset.clips:
            yield clip.name, (dataset.frames(start, stop)
                              for start, stop in _ranges(clip.start, clip.stop, 256))
        return
    from ..ingest import PrepareOptions, iter_source_clips

    options = PrepareOptions(height=vae.config.height, width=vae.config.width, fps=fps, quiet=quiet)
    for clip in iter_source_clips(source, options):
        yield clip.name, (np.asarray(mask)[None] for mask in clip.masks)


def _ranges(start: int, stop: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(start, stop, size):
        yield first, min(first + size, stop)


def _rebatch(chunks: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Regroup a stream of (k, H, W) arrays into (batch_size, H, W) arrays (last one shorter)."""
    pending, count = [], 0
    for chunk in chunks:
        pending.append(chunk)
        count += len(chunk)
        while count >= batch_size:
            joined = np.concatenate(pending)
            yield joined[:batch_size]
            pending, count = [joined[batch_size:]], count - batch_size
    if count:
        yield np.concatenate(pending)


def reconstruct(run: str | os.PathLike, source: str | os.PathLike, output: str | os.PathLike,
                device: str = "cpu", fps: float | None = None, max_frames: int | None = None,
                quiet: bool = False) -> dict:
    """Write ``output`` (mp4): each source frame (left) beside its reconstruction (right).

    source: a dataset directory, or a video / image folder / BVH that ``prepare`` accepts (made
    into silhouettes at the VAE's size). Returns {"frames": n, "iou": mean IoU at 0.5}.
    """
    from ..progress import progress
    from ..video import VideoWriter
    from .loss import intersection_over_union

    output = Path(output)
    if output.suffix.lower() != ".mp4":
        raise input_error(output, "reconstruct writes an .mp4 video; give -o NAME.mp4")
    source = Path(source)
    if not source.exists():
        raise input_error(source, "no such file or directory")
    vae = load(run, device)
    fps = fps or float(vae.metadata.get("fps", 30.0))
    ious, count = [], 0

    def frames() -> Iterator[np.ndarray]:
        nonlocal count
        for _, masks in _source_clips(source, vae, fps, quiet):
            for batch in _rebatch(((np.asarray(m) != 0).astype(np.uint8) for m in masks),
                                  vae.config.inference_batch_size):
                if max_frames is not None:
                    batch = batch[:max_frames - count]
                if len(batch) == 0:
                    return
                with torch.inference_mode():
                    probabilities = vae.decode(vae.encode_moments(torch.from_numpy(batch))[0]).cpu()
                ious.append(intersection_over_union(probabilities, torch.from_numpy(batch)).sum().item())
                count += len(batch)
                reconstruction = (probabilities.numpy() * 255).round().astype(np.uint8)
                yield np.concatenate([batch * 255, reconstruction], axis=2)
                if max_frames is not None and count >= max_frames:
                    return

    # Written atomically: a source that fails or holds no frames leaves no video behind.
    with VideoWriter(output, fps, vae.config.height, 2 * vae.config.width) as writer:
        for batch in progress(frames(), desc="reconstruct", unit="batch", quiet=quiet):
            writer.write(batch)
        if count == 0:
            raise input_error(source, "holds no frames")
    return {"frames": count, "iou": sum(ious) / count}
