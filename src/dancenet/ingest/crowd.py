"""Other people in view: find them, and keep MediaPipe on the most central dancer.

MediaPipe Pose segments one person, whichever it detects first, and may switch. When the sample
frames show other people (moving figures, found by background subtraction, apart from the person
MediaPipe segments), :class:`CentralPersonSegmenter` paints every other person-sized moving figure
over with the background before MediaPipe sees the frame: the dancer is the most central figure at
the start, then the one that continues her previous silhouette.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from .dancer import JOIN_FRACTION, PERSON_FRACTION, grown
from .segment import BackgroundSegmenter, clean_mask

CROWD_SAMPLES = 0.25  # other people in this share of the samples: a crowd worth a warning
MIN_PERSON_AREA = 0.002  # moving figures under this share of the frame are no person


def figures(moving: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Group a moving-pixels mask into figures (blobs within ``reach`` of each other): (labels of
    the moving pixels, (figures + 1,) sizes)."""
    groups, count = ndimage.label(grown(moving, reach))
    labels = np.where(moving, groups, 0)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    return labels, sizes


def others_in(moving: np.ndarray, dancer: np.ndarray) -> np.ndarray:
    """(H, W) bool: the person-sized moving figures that are not ``dancer`` (her silhouette)."""
    reach = max(1, round(JOIN_FRACTION * moving.shape[0]))
    labels, sizes = figures(moving, reach)
    near_her = np.unique(labels[grown(dancer, reach) & moving])
    her_area = max(int(dancer.sum()), 1)
    big = (sizes >= PERSON_FRACTION * her_area) & (sizes >= MIN_PERSON_AREA * moving.size)
    big[near_her] = False
    big[0] = False
    return big[labels]


def crowd_share(samples: Sequence[np.ndarray], background: BackgroundSegmenter) -> float:
    """The share of sample frames ((H, W, 3) uint8) with another person-sized moving figure
    besides the person MediaPipe segments."""
    from .person import PersonSegmenter

    crowded = []
    with PersonSegmenter(video=False) as person:
        for frame in samples:
            dancer = person(frame)
            if dancer.any():
                crowded.append(bool(others_in(clean_mask(background(frame)), dancer).any()))
    return float(np.mean(crowded)) if crowded else 0.0


class CentralPersonSegmenter:
    """MediaPipe on frames from which the other people are painted out (see the module docstring).

    ``segmenter(frame)`` -> (H, W) bool, frames in time order; :meth:`close` when done.
    """

    method = "person"

    def __init__(self, background: BackgroundSegmenter):
        from .person import PersonSegmenter

        self.person = PersonSegmenter()
        self.background = background
        self.previous: np.ndarray | None = None

    def dancer_guess(self, moving: np.ndarray) -> np.ndarray:
        """Her figure among the moving ones: the one continuing her previous silhouette, else
        the most central person-sized one."""
        from .dancer import select_dancer

        kept, _, _, _ = select_dancer(moving, self.previous)
        return kept

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        moving = clean_mask(self.background(frame))
        dancer = self.dancer_guess(moving)
        others = others_in(moving, dancer if self.previous is None else self.previous | dancer)
        if others.any():
            reach = max(1, round(JOIN_FRACTION * frame.shape[0]))
            painted = grown(others, reach) & ~grown(dancer, 1)
            gain = self.background.gain(frame)
            backdrop = np.clip(self.background.background.transpose(1, 2, 0) * gain, 0, 255)
            frame = frame.copy()
            frame[painted] = backdrop[painted].astype(np.uint8)
        mask = self.person(frame)
        self.previous = mask if mask.any() else None
        return mask

    def close(self) -> None:
        self.person.close()


def person_segmenter(samples: Sequence[np.ndarray], source) -> tuple[object, list[str]]:
    """The segmenter for ``--segment person`` on a clip like ``samples``, and warnings to show:
    a plain :class:`~dancenet.ingest.person.PersonSegmenter`, or, when other people are in view,
    a :class:`CentralPersonSegmenter`."""
    from .person import PersonSegmenter

    if len(samples) < 3:  # too few frames for a background model
        return PersonSegmenter(), []
    background = BackgroundSegmenter.fit(samples)
    share = crowd_share(samples, background)
    if share < CROWD_SAMPLES:
        return PersonSegmenter(), []
    return CentralPersonSegmenter(background), [
        f"{source}: other people in view in {share:.0%} of the sample frames; kept the most "
        f"central dancer and painted the others out"]
