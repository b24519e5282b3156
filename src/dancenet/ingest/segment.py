"""Segment the dancer out of RGB frames: from a colour frame to a clean silhouette at the target size.

Three methods, each calibrated once per clip from frames sampled across it:

- ``threshold``: the 2018 DanceNet rule, grayscale > 20 is the dancer; for footage that already is
  a silhouette (white dancer on black).
- ``chroma``: key out a uniform backdrop (blue or green screen) whose colour is the median of the
  frame borders; distance in YCbCr with luma down-weighted, so shadows on the screen stay backdrop.
- ``background``: static camera; the background is the per-pixel median of the sampled frames, and
  every frame is compared with it after matching its global brightness (lights flicker).

A fourth, ``person`` (:mod:`dancenet.ingest.person`), is a learned person segmenter from an optional
extra. ``auto`` looks at the samples and picks one (:func:`choose_method`, :func:`choose_auto`). Masks are segmented at a working
resolution of about twice the target (:func:`working_size`), fitted into the target frame keeping
the aspect ratio (:func:`fit_mask`), then cleaned of specks and small holes (:func:`clean_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

METHODS = ("threshold", "chroma", "background")

THRESHOLD_LEVEL = 20  # grayscale level above which the 2018 rule calls a pixel the dancer
# ITU-R BT.601 full-range RGB -> (Y, Cb, Cr) without the +128 offset; rows are output channels.
YCBCR = np.array([[0.299, 0.587, 0.114],
                  [-0.168736, -0.331264, 0.5],
                  [0.5, -0.418688, -0.081312]], dtype=np.float32)
CHROMA_LUMA_WEIGHT = 0.5  # luma counts half in the chroma distance: shadows on a screen stay screen
BORDER_FRACTION = 0.04  # border strip used to estimate a backdrop: 4% of each side
SPECK_FRACTION = 0.05  # components smaller than this fraction of the largest are specks
SPECK_AREA = 0.0005  # ... and so is any component under this fraction of the frame
HOLE_AREA = 0.0005  # holes under this fraction of the frame are filled


def grayscale(frame: np.ndarray) -> np.ndarray:
    """frame: (H, W, 3) uint8 RGB -> (H, W) uint8 luma (ITU-R 601 weights in 8-bit fixed point)."""
    frame = frame.astype(np.uint16)
    return ((frame[..., 0] * 77 + frame[..., 1] * 150 + frame[..., 2] * 29) >> 8).astype(np.uint8)


def border_pixels(frame: np.ndarray) -> np.ndarray:
    """The pixels of a strip along the four edges: (H, W, C) -> (N, C)."""
    height, width = frame.shape[:2]
    strip_y = max(1, round(height * BORDER_FRACTION))
    strip_x = max(1, round(width * BORDER_FRACTION))
    parts = [frame[:strip_y].reshape(-1, *frame.shape[2:]),
             frame[-strip_y:].reshape(-1, *frame.shape[2:]),
             frame[strip_y:-strip_y, :strip_x].reshape(-1, *frame.shape[2:]),
             frame[strip_y:-strip_y, -strip_x:].reshape(-1, *frame.shape[2:])]
    return np.concatenate(parts)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The level that best splits ``values`` into two classes (Otsu 1979: max between-class variance)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    high = float(values.max()) if values.size else 0.0
    if high <= 0:
        return 0.0
    counts, edges = np.histogram(values, bins=bins, range=(0.0, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def noise_level(values: np.ndarray) -> float:
    """A robust upper bound of background noise: median + 6 robust standard deviations (MAD)."""
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median)))
    return median + 6.0 * spread


def subsample(frames: Sequence[np.ndarray], limit: int = 200_000) -> np.ndarray:
    """Pixels of ``frames`` (each (H, W, C)) on a regular stride, at most about ``limit`` in all: (N, C)."""
    pixels = sum(frame.shape[0] * frame.shape[1] for frame in frames)
    step = max(1, pixels // limit)
    return np.concatenate([frame.reshape(-1, frame.shape[-1])[::step] for frame in frames])


@dataclass(frozen=True)
class ThresholdSegmenter:
    """Grayscale > ``level`` is the dancer."""

    level: int = THRESHOLD_LEVEL
    method = "threshold"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 RGB -> (H, W) bool."""
        return grayscale(frame) > self.level


@dataclass(frozen=True)
class ChromaSegmenter:
    """Everything farther than ``threshold`` from the backdrop colour ``key`` (Y, Cb, Cr) is the dancer.

    Frames are classified through ``table``, the answer for every RGB colour quantised to 6 bits a
    channel (an error of at most 2 levels, far below any useful threshold): one lookup a pixel.
    """

    key: np.ndarray  # (3,) float32 Y, Cb, Cr (no offset) of the backdrop
    threshold: float
    table: np.ndarray  # (64 ** 3,) bool: is the quantised colour (r, g, b) the dancer?
    method = "chroma"

    @classmethod
    def fit(cls, samples: Sequence[np.ndarray]) -> "ChromaSegmenter":
        """Estimate the backdrop colour from the borders of sample frames, each (H, W, 3) uint8."""
        borders = np.concatenate([border_pixels(frame) for frame in samples])
        key = np.median(borders.astype(np.float32) @ YCBCR.T, axis=0).astype(np.float32)
        distances = np.sqrt(chroma_squared_distance(subsample(samples, 50_000), key))
        border_distances = np.sqrt(chroma_squared_distance(borders, key))
        # Otsu splits backdrop from dancer; the noise floor keeps a frame without a dancer empty.
        threshold = max(otsu_threshold(distances), noise_level(border_distances) + 4.0)
        levels = np.arange(64, dtype=np.float32) * 4 + 1.5  # centre of each quantisation bin
        squared = np.zeros((64, 64, 64), np.float32)
        for channel, weight in enumerate((CHROMA_LUMA_WEIGHT, 1.0, 1.0)):
            # YCbCr is linear in RGB, so a channel over the whole grid is a broadcast sum.
            red, green, blue = weight * YCBCR[channel, :, None] * levels
            value = red[:, None, None] + green[None, :, None] + (blue - weight * key[channel])
            squared += value * value
        return cls(key, threshold, (squared > threshold ** 2).ravel())

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 RGB -> (H, W) bool."""
        quantised = frame >> 2
        index = quantised[..., 0].astype(np.int32) << 12
        index |= quantised[..., 1].astype(np.int32) << 6
        index |= quantised[..., 2]
        return self.table[index]


def chroma_squared_distance(colours: np.ndarray, key: np.ndarray) -> np.ndarray:
    """colours: (..., 3) RGB -> (...) float32 squared YCbCr distance to ``key``, luma down-weighted."""
    colour = colours.astype(np.float32) @ YCBCR.T - key
    colour[..., 0] *= CHROMA_LUMA_WEIGHT
    return np.einsum("...c,...c->...", colour, colour)


@dataclass(frozen=True)
class BackgroundSegmenter:
    """Pixels that differ from a static background by more than ``threshold`` are the dancer.

    The background is brightness-matched to every frame first (one gain per colour channel, the
    median ratio over the frame), so flickering light does not light up the whole frame.
    """

    background: np.ndarray  # (3, H, W) float32, one plane per colour channel
    threshold: float
    method = "background"

    @classmethod
    def fit(cls, samples: Sequence[np.ndarray]) -> "BackgroundSegmenter":
        """The per-pixel median of sample frames spread over the clip, each (H, W, 3) uint8.

        The dancer moves, so at each pixel most samples see the background.
        """
        background = np.median(np.stack(samples), axis=0).astype(np.float32)
        segmenter = cls(np.ascontiguousarray(background.transpose(2, 0, 1)), 0.0)
        differences = np.concatenate([segmenter.difference(frame).ravel() for frame in samples])
        step = max(1, differences.size // 400_000)
        differences = differences[::step]
        # Otsu alone sits midway between the noise and the dancer and loses dancer pixels that look
        # like the background; the noise floor alone grows the outline by the blur of compression
        # and 4:2:0 chroma. A geometric mean weighted towards Otsu balances the two.
        noise = noise_level(differences) + 6.0
        threshold = max(noise, float(noise ** (1 / 3) * otsu_threshold(differences) ** (2 / 3)))
        return cls(segmenter.background, threshold)

    def gain(self, frame: np.ndarray) -> np.ndarray:
        """(3,) float32: how much brighter each channel of ``frame`` is than the background.

        The median ratio over a regular subsample of pixels, so the dancer (a minority) and noise
        do not sway it.
        """
        step = max(1, frame.shape[0] * frame.shape[1] // 3000)  # ~3k pixels: plenty for a median
        pixels = frame.reshape(-1, 3)[::step].T.astype(np.float32)
        reference = self.background.reshape(3, -1)[:, ::step]
        usable = reference.min(axis=0) > 8  # ratios of near-black pixels are noise
        if usable.sum() < 50:
            return np.ones(3, np.float32)
        return np.median(pixels[:, usable] / reference[:, usable], axis=1).astype(np.float32)

    def difference(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 -> (H, W) float32 sum over channels of |frame - gain * background|."""
        gain = self.gain(frame)
        total = None
        for channel in range(3):  # plane by plane: numpy is slow at reducing a length-3 last axis
            plane = frame[..., channel].astype(np.float32)
            plane -= self.background[channel] * gain[channel]
            np.abs(plane, out=plane)
            total = plane if total is None else total.__iadd__(plane)
        return total

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 RGB -> (H, W) bool."""
        return self.difference(frame) > self.threshold


Segmenter = ThresholdSegmenter | ChromaSegmenter | BackgroundSegmenter


def choose_method(samples: Sequence[np.ndarray]) -> tuple[str, str]:
    """Pick a method for frames like ``samples`` ((H, W, 3) uint8 each); returns (method, reason).

    Dark borders (the frame is already a silhouette on black) -> threshold; a uniform, saturated
    border colour (a blue or green screen) -> chroma; anything else -> background.
    """
    borders = np.concatenate([border_pixels(frame) for frame in samples])
    dark = float(np.mean(grayscale(borders[None])[0] <= THRESHOLD_LEVEL))
    if dark >= 0.95:
        return "threshold", f"{dark:.0%} of the border pixels are black"
    colour = borders.astype(np.float32) @ YCBCR.T
    key = np.median(colour, axis=0)
    saturation = float(np.hypot(key[1], key[2]))
    near_key = float(np.mean(np.hypot(colour[:, 1] - key[1], colour[:, 2] - key[2]) < 20))
    if saturation >= 40 and near_key >= 0.9:
        red, green, blue = np.clip(np.linalg.solve(YCBCR, key), 0, 255).round().astype(int)
        return "chroma", (f"the border is a uniform saturated colour, RGB ({red}, {green}, {blue}), "
                          f"on {near_key:.0%} of its pixels")
    return "background", "the border is neither black nor a uniform screen colour"


def choose_auto(samples: Sequence[np.ndarray]) -> tuple[str, str]:
    """:func:`choose_method`, then, for footage that is neither black nor a screen (an ordinary
    room, a stage, outdoors), the person segmenter when it is installed and finds a person in at
    least half the samples; returns (method, reason)."""
    from . import person

    method, reason = choose_method(samples)
    if method != "background":
        return method, reason
    if not person.available():
        return method, (f"{reason}; the person segmenter suits such footage better: "
                        f"{person.INSTALL_HINT}")
    share = person.detection_share(samples)
    if share >= person.SAMPLE_DETECTIONS:
        return "person", f"{reason}, and MediaPipe finds a person in {share:.0%} of the sample frames"
    return method, f"{reason}, and MediaPipe finds a person in only {share:.0%} of the sample frames"


def make_segmenter(method: str, samples: Sequence[np.ndarray]) -> Segmenter:
    """A segmenter for ``method`` (one of :data:`METHODS` or ``"person"``) calibrated on
    ``samples`` (H, W, 3) uint8."""
    if method == "person":
        from .person import PersonSegmenter

        return PersonSegmenter()
    if method == "threshold":
        return ThresholdSegmenter()
    if method == "chroma":
        return ChromaSegmenter.fit(samples)
    if method == "background":
        return BackgroundSegmenter.fit(samples)
    raise ValueError(f"unknown segmentation method {method!r}")


def working_size(source_height: int, source_width: int, height: int, width: int,
                 oversample: float = 2.0, longest: int | None = None) -> tuple[int, int]:
    """(height, width) at which to segment a source frame: the source shrunk by a whole factor that
    keeps at least ``oversample`` times the size the frame will have in the target, and, given
    ``longest``, brings its longer side to at most that (when a whole factor can).

    A whole factor makes nearest-pixel shrinking a regular subsample: every working pixel is a real
    source pixel, and the outline lands where it would at full resolution.
    """
    ratio = 1.0 / min(height / source_height, width / source_width)  # source pixels per target pixel
    factor = max(1, int(ratio // oversample))
    if longest:
        factor = max(factor, -(-max(source_height, source_width) // longest))
    return max(1, source_height // factor), max(1, source_width // factor)


def fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit a (h, w) mask into (height, width) keeping its aspect ratio, centred, padded with False.

    Shrinking averages each output pixel's area and keeps pixels that are at least half dancer.
    """
    mask = np.asarray(mask, dtype=bool)
    source_height, source_width = mask.shape
    scale = min(height / source_height, width / source_width)
    fitted_height = min(height, max(1, round(source_height * scale)))
    fitted_width = min(width, max(1, round(source_width * scale)))
    if (fitted_height, fitted_width) != mask.shape:
        image = Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)))
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        image = image.resize((fitted_width, fitted_height), resample=resample)
        mask = np.asarray(image) >= 128
    if mask.shape == (height, width):
        return mask
    out = np.zeros((height, width), dtype=bool)
    top, left = (height - fitted_height) // 2, (width - fitted_width) // 2
    out[top:top + fitted_height, left:left + fitted_width] = mask
    return out


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Remove specks and fill small holes of a (H, W) bool mask.

    Specks: connected components under 5% of the largest one or 0.05% of the frame. Holes: enclosed
    background regions under 0.05% of the frame (a gap between an arm and the body stays open).
    """
    area = mask.size
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        keep = sizes >= max(SPECK_FRACTION * sizes.max(), SPECK_AREA * area)
        keep[0] = False
        mask = keep[labels]
    holes, count = ndimage.label(~mask)
    if count > 1:
        sizes = np.bincount(holes.ravel())
        border_labels = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        small = sizes < HOLE_AREA * area
        small[0] = False
        small[border_labels] = False  # touching the frame edge: outside the dancer, not a hole
        mask = mask | small[holes]
    return mask


def silhouettes(frames: Iterable[np.ndarray], segmenter: Segmenter, height: int,
                width: int) -> Iterator[np.ndarray]:
    """Segment, fit and clean a stream of (h, w, 3) uint8 frames into (height, width) bool masks.

    A frame repeated as the same array (a slow source shown at a higher frame rate) is segmented once.
    """
    previous_frame = previous_mask = None
    for frame in frames:
        if frame is not previous_frame:
            previous_frame, previous_mask = frame, clean_mask(fit_mask(segmenter(frame), height, width))
        yield previous_mask
