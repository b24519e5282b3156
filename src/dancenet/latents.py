"""The latents contract between the VAE and the motion model: one type, one save, one load.

``RUN/latents.npz`` (written by ``dancenet encode``) and a bundled model's ``prime.npz`` share
these keys: ``mean`` and ``log_var`` (frames, latent_size) float32 (``prime.npz``: ``mean`` only,
float16), ``clip_names``, ``clip_starts``, ``clip_stops`` (int64 frame ranges), ``fps``,
``vae_hash`` (sha256 of the VAE's ``vae.safetensors``) and ``dataset_hash`` (sha256 of the
dataset's manifest). ``latents.npz`` also keeps ``footage``: each frame as filmed, at the copy
guard's resolution (:func:`dancenet.copies.block_counts`; absent from files written before
dancenet kept it). Encoding, motion training, generation and evaluation all import this module;
none of them imports another's training code to read a latents file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_file
from .errors import input_error

LATENTS_FILE = "latents.npz"
PRIME_FILE = "prime.npz"
FOOTAGE_MAX = 16  # a footage value counts the dancer's pixels in a 4 x 4 block (dancenet.copies.FACTOR)


@dataclass
class Latents:
    """The contents of a latents file; clip ``i`` owns rows ``offsets[i]:offsets[i + 1]``.

    mean, log_var: (frames, L) float32. footage: (frames, rows, columns) uint8, the frames the
    latents were encoded from as the copy guard compares them, or None (not kept).
    """

    mean: np.ndarray
    log_var: np.ndarray
    clip_names: list[str]
    offsets: np.ndarray
    fps: float
    vae_hash: str
    dataset_hash: str
    footage: np.ndarray | None = None

    def clip_rows(self, name: str) -> tuple[int, int]:
        """(first row, stop row) of the clip called ``name``."""
        index = self.clip_names.index(name)
        return int(self.offsets[index]), int(self.offsets[index + 1])

    def clip_ranges(self, indices: list[int]) -> list[tuple[int, int]]:
        """(first row, stop row) of each clip index in ``indices``."""
        return [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in indices]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (how a VAE is named in latents and motion-model files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_latents(path: str | os.PathLike, latents: Latents, float16: bool = False) -> Path:
    """Write ``latents`` atomically; ``float16=True`` keeps ``mean`` only, compressed (prime files).
    With ``footage`` the file is compressed (a silhouette's blocks are mostly empty: 1 MB for the
    salsa dataset's 12,873 frames instead of 20)."""
    lengths = np.diff(latents.offsets).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    values = dict(clip_names=np.array(latents.clip_names), clip_starts=starts,
                  clip_stops=starts + lengths, fps=np.float64(latents.fps),
                  vae_hash=np.array(latents.vae_hash), dataset_hash=np.array(latents.dataset_hash))
    with atomic_file(path) as temporary:
        with open(temporary, "wb") as handle:
            if float16:
                np.savez_compressed(handle, mean=latents.mean.astype(np.float16), **values)
            elif latents.footage is not None:
                np.savez_compressed(handle, mean=latents.mean, log_var=latents.log_var,
                                    footage=latents.footage, **values)
            else:
                np.savez(handle, mean=latents.mean, log_var=latents.log_var, **values)
    return Path(path)


def load_latents(path: str | os.PathLike) -> Latents:
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
    log_var, footage = data.get("log_var"), data.get("footage")
    if footage is not None and (footage.dtype != np.uint8 or footage.ndim != 3 or len(footage) != len(mean)
                                or footage.max(initial=0) > FOOTAGE_MAX):
        raise input_error(path, "holds footage that is not one block-count frame per latent row; "
                                "encode the dataset again")
    return Latents(mean=mean, footage=footage,
                   log_var=np.zeros_like(mean) if log_var is None else log_var.astype(np.float32),
                   clip_names=[str(name) for name in data["clip_names"]], offsets=offsets,
                   fps=float(data["fps"]), vae_hash=str(data["vae_hash"]),
                   dataset_hash=str(data.get("dataset_hash", "")))


def write_prime_file(run: str | os.PathLike, out: str | os.PathLike, seconds: float = 4.0) -> Path:
    """Keep the first ``seconds`` of every clip's latents from ``RUN/latents.npz`` in ``out``.

    Used when bundling a model without its full latents (about 0.25 KB per frame for 128-d).
    """
    latents = load_latents(Path(run) / LATENTS_FILE)
    keep = max(1, round(seconds * latents.fps))
    pieces = [latents.mean[start:min(stop, start + keep)]
              for start, stop in latents.clip_ranges(list(range(len(latents.clip_names))))]
    offsets = np.concatenate([[0], np.cumsum([len(piece) for piece in pieces])])
    short = Latents(mean=np.concatenate(pieces), log_var=np.zeros((0, 0), np.float32),
                    clip_names=latents.clip_names, offsets=offsets, fps=latents.fps,
                    vae_hash=latents.vae_hash, dataset_hash=latents.dataset_hash)
    return save_latents(out, short, float16=True)
