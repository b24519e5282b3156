"""The copy guard's training frames: a dance should make new poses, not replay its footage.

Generation redraws a step whose frame matches one of the frames the model learnt from at
``evaluate``'s copied-frame IoU (docs/motion.md, "The copy guard"). Those frames are the run's
training latents decoded by its VAE: a generated frame is a decoded latent too, so a replayed
training pose matches its decoded twin almost exactly, whatever the VAE blurs.

The same frames as they were filmed are compared too, where the run has them (``footage`` in
``latents.npz``, which ``dancenet encode`` writes): ``evaluate`` counts a copy against the real
footage, and a generated frame can match a filmed pose at its threshold while its decoded twin
stays just below it (docs/motion.md, "The footage as filmed").

``RUN/NAME.library.npz`` (written when motion training exports ``NAME``; the bundle ships
``motion.library.npz``) keeps up to ``LIBRARY_FRAMES`` of them, spread evenly over every clip but
those held out to test the model (:func:`held_out_clips`), at 1/``FACTOR`` resolution as
uint8 counts of dancer pixels per block: ``counts`` (n, rows, columns) decoded, ``footage`` (the
same rows as filmed; absent for latents encoded before dancenet kept them), ``factor``, and what
they were made from: ``vae_hash``, ``dataset_hash``, ``held_out`` (the test clips left out),
``clips``. A run without the file, or with a stale one, builds the same frames in memory from its
``latents.npz`` when it first generates (a few seconds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import input_error

LIBRARY_FRAMES = 4000  # as many as evaluate's memorisation compares with
FACTOR = 4  # evaluate compares frames at 1/4 resolution
LIBRARY_SUFFIX = ".library.npz"
DECODE_BATCH = 256


def library_path(run: str | os.PathLike, name: str) -> Path:
    """Where the training frames of motion model ``name`` live in ``run``."""
    return Path(run) / f"{name}{LIBRARY_SUFFIX}"


class Copies:
    """Training frames, to tell how closely a frame copies one of them: the best soft IoU at
    1/``FACTOR`` resolution (``evaluate``'s memorisation measure); a frame at ``threshold``
    (``evaluate``'s copied-frame IoU) or above is a copy.

    With ``poses`` (block images (n, rows, columns) of training frames, e.g. as filmed),
    also how well a frame's shape matches any of theirs wherever it stands (:meth:`pose`,
    ``evaluate``'s :func:`~dancenet.evaluate.metrics.pose_match`); below ``floor`` a frame is
    unlike any pose of the footage: a body melted or doubled (docs/metrics.md, "Unlike any pose").

    The frames are kept feature by feature, (features, n): a silhouette covers a tenth of its
    frame, so a frame is compared on its own dancer blocks alone, reading a tenth of the library
    (4000 frames are 25 MB, twice that with the footage as filmed, three times with the poses; read
    whole for every draw, 4000 made generation 1.35x slower)."""

    def __init__(self, descriptors: np.ndarray, source: str = "frames", poses: np.ndarray | None = None):
        """``source``: where :func:`load_copies` took them from: "library" (a current
        NAME.library.npz), "stale" (decoded from latents.npz past a library made for another VAE,
        dataset or held-out clips), "latents" (decoded from latents.npz: no library)."""
        from .evaluate.metrics import UNLIKE_IOU, centre_blocks
        from .evaluate.suite import MetricSettings

        self.source = source
        self.features, self.norms = _by_feature(descriptors)
        # evaluate counts a copy in float32 (its IoU at or above float32(copied_iou)); the guard
        # compares in float64, so its threshold is that float32 value, not the decimal above it
        self.threshold = float(np.float32(MetricSettings().copied_iou))
        self.floor = UNLIKE_IOU
        if poses is not None:  # an empty frame is no pose (evaluate.metrics.EMPTY_SHARE)
            poses = poses[_shown(np.asarray(poses).reshape(len(poses), -1))]
        self.shape = None if poses is None or not len(poses) else tuple(poses.shape[1:])
        if self.shape is not None:
            self.pose_features, self.pose_norms = _by_feature(centre_blocks(poses).reshape(len(poses), -1))

    @classmethod
    def from_frames(cls, frames: np.ndarray) -> "Copies":
        """Training frames (n, H, W), binary or 0/255 (their poses too)."""
        from .evaluate.metrics import downsample

        blocks = downsample(frames, FACTOR)
        return cls(blocks.reshape(len(frames), -1), poses=blocks)

    @classmethod
    def from_counts(cls, counts: np.ndarray, source: str = "frames",
                    poses: np.ndarray | None = None) -> "Copies | None":
        """Block counts (n, rows, columns) as :func:`decode_counts` makes them; None for none.
        ``poses``: block counts of the frames whose poses a frame should match (default: these)."""
        if not len(counts):
            return None
        poses = counts if poses is None else poses
        return cls(counts.reshape(len(counts), -1).astype(np.float32) / (FACTOR * FACTOR), source,
                   poses.astype(np.float32) / (FACTOR * FACTOR))

    def __len__(self) -> int:
        return self.features.shape[1]

    def closest(self, descriptor: np.ndarray) -> float:
        """A frame's descriptor (its flat 1/``FACTOR`` downsample) -> the best soft IoU with
        any training frame (0 without any), as ``evaluate.metrics.soft_iou_matrix`` gives it."""
        return _best_soft_iou(descriptor, self.features, self.norms)

    def pose(self, descriptor: np.ndarray) -> float:
        """A frame's descriptor -> how well its shape matches the closest training pose, both
        centred (``evaluate.metrics.pose_match``); 1 for an empty frame (no pose: the whole-body
        check counts it) and without poses to compare with (none, or only empty frames)."""
        descriptor = np.asarray(descriptor, np.float32)
        if self.shape is None or not _shown(descriptor[None])[0]:
            return 1.0
        from .evaluate.metrics import centre_blocks

        centred = centre_blocks(descriptor.reshape(1, *self.shape)).reshape(-1)
        return _best_soft_iou(centred, self.pose_features, self.pose_norms)


def _shown(descriptors: np.ndarray) -> np.ndarray:
    """Flat block descriptors (n, features), dancer share per block -> (n,) whether each frame
    shows a dancer: at least ``EMPTY_SHARE`` of its pixels, as ``evaluate`` counts frames empty."""
    from .evaluate.metrics import EMPTY_SHARE

    return descriptors.sum(axis=1) >= EMPTY_SHARE * descriptors.shape[1]


def _by_feature(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat descriptors (n, features) -> (features, n) contiguous, and their squared norms (n,)."""
    descriptors = np.asarray(descriptors, dtype=np.float32)
    return np.ascontiguousarray(descriptors.T), np.einsum("ij,ij->i", descriptors, descriptors)


def _best_soft_iou(descriptor: np.ndarray, features: np.ndarray, norms: np.ndarray) -> float:
    """The best soft IoU of a flat descriptor with the columns of ``features`` (0 without any),
    reading only the features the descriptor covers."""
    if not features.shape[1]:
        return 0.0
    present = np.flatnonzero(descriptor)
    values = descriptor[present].astype(np.float32)
    dots = values @ features[present]
    union = float(values @ values) + norms - dots
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(union > 0, dots / np.maximum(union, 1e-12), 1.0)
    return float(similarity.max())


def training_rows(latents, excluded: set[str], limit: int = LIBRARY_FRAMES) -> tuple[np.ndarray, list[str]]:
    """Rows of ``latents`` (a :class:`~dancenet.latents.Latents`) in clips not named in
    ``excluded``, at most ``limit`` spread evenly -> (rows, the clips they come from)."""
    names = [name for name in latents.clip_names if name not in excluded]
    ranges = [latents.clip_rows(name) for name in names]
    rows = np.concatenate([np.arange(start, stop) for start, stop in ranges] or [np.zeros(0, np.int64)])
    if len(rows) > limit:
        rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]
    return rows.astype(np.int64), names


def block_counts(frames: np.ndarray) -> np.ndarray:
    """Frames (n, H, W), binary or 0/255 -> uint8 counts of dancer pixels per ``FACTOR`` x
    ``FACTOR`` block (n, rows, columns): how the copy guard keeps frames."""
    from .evaluate.metrics import downsample

    return np.rint(downsample(frames, FACTOR) * FACTOR * FACTOR).astype(np.uint8)


def decode_counts(mean: np.ndarray, decode: Callable[[torch.Tensor], np.ndarray],
                  batch: int = DECODE_BATCH) -> np.ndarray:
    """Raw latents (n, L) -> their decoded frames as uint8 block counts (n, rows, columns), decoded
    ``batch`` frames at a time (a VAE's ``inference_batch_size`` bounds its memory)."""
    pieces = []
    for first in range(0, len(mean), max(1, batch)):
        frames = decode(torch.from_numpy(np.ascontiguousarray(mean[first:first + batch], np.float32)))
        pieces.append(block_counts(frames))
    return np.concatenate(pieces) if pieces else np.zeros((0, 1, 1), np.uint8)


def held_out_clips(run: str | os.PathLike, name: str) -> list[str]:
    """The clips motion model ``name`` of ``run`` held out to test it, as ``evaluate`` takes them
    (:func:`~dancenet.evaluate.suite.validation_clips`: its test clips, else its validation clips,
    else the VAE's). Every other clip is footage a dance should not replay, the validation clips
    that chose the model's epoch among them."""
    from .evaluate.suite import validation_clips

    names = validation_clips(run, name)
    return sorted(str(clip) for clip in names) if isinstance(names, list) else []


def _library_from_latents(run: Path, name: str, decode, batch: int) -> tuple[dict, dict] | None:
    """({"counts": decoded block counts[, "footage": the same rows as filmed]}, what they were
    made from) from ``RUN/latents.npz``, or None without it."""
    from .latents import LATENTS_FILE, load_latents

    source = run / LATENTS_FILE
    if not source.is_file():
        return None
    latents = load_latents(source)
    held_out = held_out_clips(run, name)
    rows, clips = training_rows(latents, set(held_out))
    made_from = {"vae_hash": latents.vae_hash, "dataset_hash": latents.dataset_hash,
                 "held_out": held_out, "clips": clips}
    frames = {"counts": decode_counts(latents.mean[rows], decode, batch)}
    if latents.footage is not None:
        frames["footage"] = latents.footage[rows]
    return frames, made_from


def _library_copies(library: dict, source: str) -> "Copies | None":
    """A library's decoded frames and, where it has them, the same frames as filmed, as one
    :class:`Copies` (a draw that copies either is a copy). Poses are matched on the frames as
    filmed where it has them, as ``evaluate`` matches them (else on the decoded ones): a poor VAE
    decodes its footage poorly, and every pose of a dancer is in what she danced."""
    counts = poses = library["counts"]
    if library.get("footage") is not None and len(counts):
        counts, poses = np.concatenate([counts, library["footage"]]), library["footage"]
    return Copies.from_counts(counts, source, poses)


def write_library(run: str | os.PathLike, name: str, decode: Callable[[torch.Tensor], np.ndarray],
                  batch: int = DECODE_BATCH, out: str | os.PathLike | None = None) -> Path | None:
    """Decode the footage of motion model ``name`` from ``RUN/latents.npz`` and write
    ``RUN/NAME.library.npz`` (or ``out``, e.g. a bundle being made) atomically -> the path, or
    None for a run without latents. It records what it was made from (the VAE, the dataset, the
    held-out clips), so a stale one is never used."""
    from .atomic import atomic_file

    made = _library_from_latents(Path(run), name, decode, batch)
    if made is None:
        return None
    frames, made_from = made
    path = library_path(run, name) if out is None else Path(out)
    with atomic_file(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **frames, factor=np.int64(FACTOR),
                                **{key: np.array(value) for key, value in made_from.items()})
    return path


def load_copies(run: str | os.PathLike, name: str, metadata: dict, vae_hash: str,
                decode: Callable[[torch.Tensor], np.ndarray], frame_size: tuple[int, int],
                batch: int = DECODE_BATCH) -> Copies | None:
    """The copy guard's training frames for motion model ``name`` of ``run`` (``metadata``: its
    motion.json metadata; ``frame_size``: the VAE's (height, width)): from ``NAME.library.npz``
    when it was made from this VAE, dataset and held-out clips, else decoded from ``latents.npz``
    (not written back: generating never writes into a run), else None (nothing to compare with:
    no copy guard). A file that is not a library is a user error naming it."""
    run = Path(run)
    library = _current_library(run, name, metadata, vae_hash, frame_size)
    if library is not None:
        return _library_copies(library, "library")
    made = _library_from_latents(run, name, decode, batch)
    if made is None or made[1]["vae_hash"] != vae_hash:
        return None  # latents of another VAE: encode again (priming says so); no guard meanwhile
    return _library_copies(made[0], "stale" if library_path(run, name).is_file() else "latents")


def _current_library(run: Path, name: str, metadata: dict, vae_hash: str,
                     frame_size: tuple[int, int]) -> dict | None:
    """``NAME.library.npz``'s arrays when it was made from this VAE, dataset and held-out clips;
    None when there is none or it is stale (a motion model stopped before its final export wrote
    a new one)."""
    path = library_path(run, name)
    if not path.is_file():
        return None
    library = _read_library(path, frame_size)
    made_from = (library["vae_hash"], library["dataset_hash"], library["held_out"])
    if made_from != (vae_hash, metadata.get("dataset_hash", ""), held_out_clips(run, name)):
        return None
    if library["footage"] is None and _latents_keep_footage(run):
        return None  # written before the latents kept the footage (encoded again since): rebuild
    return library


def _latents_keep_footage(run: Path) -> bool:
    """Whether ``RUN/latents.npz`` keeps the footage as filmed (read from the zip's directory)."""
    from .latents import LATENTS_FILE

    try:
        with np.load(run / LATENTS_FILE, allow_pickle=False) as data:
            return "footage" in data.files
    except Exception:  # no file, or not a zip: the library stands
        return False


def _read_library(path: Path, frame_size: tuple[int, int]) -> dict:
    """A library file's arrays, checked; a user error naming the file for anything else."""
    rows, columns = (-(-size // FACTOR) for size in frame_size)
    try:
        with np.load(path, allow_pickle=False) as data:
            library = {"counts": data["counts"], "factor": int(data["factor"]),
                       "vae_hash": str(data["vae_hash"]), "dataset_hash": str(data["dataset_hash"]),
                       "held_out": sorted(str(clip) for clip in np.atleast_1d(data["held_out"])),
                       "footage": data["footage"] if "footage" in data.files else None}
    except Exception:  # whatever a damaged zip, array or key raises
        library = None
    footage = None if library is None else library["footage"]
    if library is None or library["factor"] != FACTOR or not _block_counts_fit(library["counts"], rows, columns) \
            or (footage is not None and (footage.shape != library["counts"].shape or
                                         not _block_counts_fit(footage, rows, columns))):
        raise input_error(path, "is not a file of training frames written by dancenet for this model; "
                                "delete it or train the motion model again")
    return library


def _block_counts_fit(counts: np.ndarray, rows: int, columns: int) -> bool:
    """Whether ``counts`` are :func:`block_counts` of frames of the model's size."""
    return counts.dtype == np.uint8 and counts.ndim == 3 and counts.shape[1:] == (rows, columns) and \
        counts.max(initial=0) <= FACTOR * FACTOR
