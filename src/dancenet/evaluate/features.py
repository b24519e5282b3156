"""The Frechet feature: a silhouette-shape-and-motion descriptor of short windows of dance.

Per frame: 12 shape descriptors (area, centroid, spread, orientation, bounding box, two Hu
invariants) and the silhouette at 1/8 resolution reduced by PCA. Per window of ~0.5 s: the
window's mean of those (pose), their net change (direction of motion) and their mean absolute
frame-to-frame change (speed, and jitter: a convulsing shape has a large mean change and a small
net change). Windows are standardised and whitened with a PCA fitted on the reference, so the
Frechet distance is measured in units of the reference's own spread. See docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import as_binary, downsample

SHAPE_NAMES = ("area", "centroid_x", "centroid_y", "spread_x", "spread_y", "correlation_xy",
               "top", "bottom", "left", "right", "hu1", "hu2")


def shape_descriptors(frames: np.ndarray) -> np.ndarray:
    """(time, H, W) silhouettes -> (time, 12) float64, named by ``SHAPE_NAMES``.

    Positions and spreads are in frame units (0..1); hu1/hu2 are the first two Hu moment
    invariants (scale- and position-free shape); an empty frame is all zeros.
    """
    frames = as_binary(frames)
    time, height, width = frames.shape
    rows = frames.sum(axis=2, dtype=np.float64)  # (time, H)
    columns = frames.sum(axis=1, dtype=np.float64)  # (time, W)
    area = rows.sum(axis=1)
    safe = np.maximum(area, 1.0)
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    centroid_x = columns @ xs / safe
    centroid_y = rows @ ys / safe
    variance_x = np.maximum(columns @ xs ** 2 / safe - centroid_x ** 2, 0.0)
    variance_y = np.maximum(rows @ ys ** 2 / safe - centroid_y ** 2, 0.0)
    # Row-wise x moments, then weighted by y: the cross moment without a (time, H, W) float copy.
    row_x = np.empty((time, height))
    for start in range(0, time, 256):
        row_x[start:start + 256] = frames[start:start + 256].astype(np.float32) @ xs.astype(np.float32)
    covariance = row_x @ ys / safe - centroid_x * centroid_y
    spread_x, spread_y = np.sqrt(variance_x), np.sqrt(variance_y)
    correlation = covariance / np.maximum(spread_x * spread_y, 1e-12)
    any_row, any_column = rows > 0, columns > 0
    top = any_row.argmax(axis=1) / height
    bottom = (height - any_row[:, ::-1].argmax(axis=1)) / height
    left = any_column.argmax(axis=1) / width
    right = (width - any_column[:, ::-1].argmax(axis=1)) / width
    # Normalised central moments eta_pq = mu_pq / m00^(1 + (p+q)/2), in pixel units.
    eta20 = variance_x * width ** 2 / safe
    eta02 = variance_y * height ** 2 / safe
    eta11 = covariance * width * height / safe
    hu1 = eta20 + eta02
    hu2 = (eta20 - eta02) ** 2 + 4 * eta11 ** 2
    result = np.stack([area / (height * width), centroid_x, centroid_y, spread_x, spread_y, correlation,
                       top, bottom, left, right, hu1, hu2], axis=1)
    result[area == 0] = 0.0
    return result


@dataclass(frozen=True)
class FeatureConfig:
    """How windows are cut and reduced; the defaults are what docs/metrics.md describes."""

    window_seconds: float = 0.5
    stride_seconds: float = 1 / 6
    silhouette_factor: int = 8
    silhouette_components: int = 16
    components: int = 32


def _pca(data: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (d,), basis (d, k), scale (k,)) so ``(data - mean) @ basis / scale`` is whitened."""
    mean = data.mean(axis=0)
    _, singular, vectors = np.linalg.svd(data - mean, full_matrices=False)
    scale = singular / np.sqrt(max(len(data) - 1, 1))
    keep = min(components, int((scale > 1e-6 * max(scale.max(initial=0.0), 1e-12)).sum()))
    keep = max(keep, 1)
    return mean, vectors[:keep].T, np.maximum(scale[:keep], 1e-12)


class FrechetFeature:
    """Window features whitened on a reference; build with :meth:`fit`."""

    def __init__(self, config: FeatureConfig, fps: float, silhouette: tuple, shape: tuple, window: tuple):
        self.config = config
        self.fps = fps
        self.window = max(2, int(round(config.window_seconds * fps)))
        self.stride = max(1, int(round(config.stride_seconds * fps)))
        self._silhouette = silhouette  # (mean, basis, scale) over low-res frames
        self._shape = shape  # (mean, std) of shape descriptors
        self._window = window  # (mean, std, basis, scale) over window vectors

    @property
    def dimensions(self) -> int:
        return self._window[2].shape[1]

    @classmethod
    def fit(cls, clips: list[np.ndarray], fps: float, config: FeatureConfig = FeatureConfig()) -> "FrechetFeature":
        """Fit every normalisation on reference clips: list of (time, H, W) continuous takes.

        Raises ValueError when no clip is long enough for one window.
        """
        window = max(2, int(round(config.window_seconds * fps)))
        clips = [clip for clip in clips if len(clip) >= window]
        if not clips:
            raise ValueError(f"no reference clip holds a {window}-frame window")
        low = np.concatenate([downsample(clip, config.silhouette_factor).reshape(len(clip), -1) for clip in clips])
        shapes = np.concatenate([shape_descriptors(clip) for clip in clips])
        silhouette = _pca(low, config.silhouette_components)
        shape = (shapes.mean(axis=0), np.maximum(shapes.std(axis=0), 1e-6))
        partial = cls(config, fps, silhouette, shape, (None, None, None, None))
        windows = np.concatenate([partial._raw_windows(clip) for clip in clips])
        window_mean = windows.mean(axis=0)
        window_std = np.maximum(windows.std(axis=0), 1e-6)
        standard = (windows - window_mean) / window_std
        # Whitening needs well-estimated directions: at most a quarter as many as windows.
        components = min(config.components, max(1, len(windows) // 4))
        _, basis, scale = _pca(standard, components)
        return cls(config, fps, silhouette, shape, (window_mean, window_std, basis, scale))

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """(time, H, W) -> (time, silhouette components + 12), each dimension ~unit variance."""
        mean, basis, scale = self._silhouette
        low = downsample(frames, self.config.silhouette_factor).reshape(len(frames), -1)
        shape_mean, shape_std = self._shape
        return np.concatenate([(low - mean) @ basis / scale, (shape_descriptors(frames) - shape_mean) / shape_std],
                              axis=1)

    def _raw_windows(self, frames: np.ndarray) -> np.ndarray:
        """(time, H, W) continuous frames -> (windows, 3 x frame features) before whitening."""
        per_frame = self.frame_features(frames)
        starts = np.arange(0, len(frames) - self.window + 1, self.stride)
        if len(starts) == 0:
            return np.zeros((0, 3 * per_frame.shape[1]))
        change = np.abs(np.diff(per_frame, axis=0))
        cumulative = np.concatenate([np.zeros((1, per_frame.shape[1])), np.cumsum(per_frame, axis=0)])
        cumulative_change = np.concatenate([np.zeros((1, change.shape[1])), np.cumsum(change, axis=0)])
        stops = starts + self.window
        pose = (cumulative[stops] - cumulative[starts]) / self.window
        net = per_frame[stops - 1] - per_frame[starts]
        speed = (cumulative_change[stops - 1] - cumulative_change[starts]) / (self.window - 1)
        return np.concatenate([pose, net, speed], axis=1)

    def transform(self, clips: list[np.ndarray]) -> np.ndarray:
        """Whitened window features of continuous clips: list of (time, H, W) -> (windows, dimensions).

        Windows never cross from one clip into the next.
        """
        mean, std, basis, scale = self._window
        raw = [self._raw_windows(clip) for clip in clips]
        raw = np.concatenate(raw) if raw else np.zeros((0, len(mean)))
        return ((raw - mean) / std) @ basis / scale


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets: (n, d), (m, d) -> float.

    ``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)``, the matrix square root taken by
    symmetric eigendecomposition (stable, no complex parts). Needs at least two rows each.
    """
    if len(first) < 2 or len(second) < 2:
        raise ValueError("Frechet distance needs at least two windows on each side")
    mean_first, mean_second = first.mean(axis=0), second.mean(axis=0)
    covariance_first = np.atleast_2d(np.cov(first, rowvar=False))
    covariance_second = np.atleast_2d(np.cov(second, rowvar=False))
    values, vectors = np.linalg.eigh(covariance_first)
    root_first = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_first @ covariance_second @ root_first
    cross_trace = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = (np.sum((mean_first - mean_second) ** 2) + np.trace(covariance_first)
                + np.trace(covariance_second) - 2 * cross_trace)
    return float(max(distance, 0.0))
