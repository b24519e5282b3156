"""``--segment person``: a learned person segmenter, MediaPipe Pose with its segmentation mask.

The model ships inside the MediaPipe 0.10.14 wheel (``pose_landmark_full.tflite``), so nothing is
downloaded at run time; it is an optional extra, ``pip install 'dancenet[person]'``. Pose runs in
video mode: it detects the dancer once, then tracks her from frame to frame, and smooths its mask
over time. What it still gets wrong (a frame lost on a fast leap, a detached hand) is mended over
the whole clip by :mod:`dancenet.ingest.dancer`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings

import numpy as np

from ..errors import DancenetError

INSTALL_HINT = "pip install 'dancenet[person]'"
MASK_LEVEL = 0.5  # the segmentation mask is a per-pixel probability of "person"
SAMPLE_DETECTIONS = 0.5  # auto picks person when MediaPipe finds her in this share of samples


def available() -> bool:
    """Whether the optional MediaPipe extra is installed (without importing it: that is slow)."""
    return importlib.util.find_spec("mediapipe") is not None


def missing_error() -> DancenetError:
    return DancenetError(f"--segment person: needs the optional person segmenter (MediaPipe); "
                         f"install it with: {INSTALL_HINT}")


class PersonSegmenter:
    """MediaPipe Pose in video mode: ``segmenter(frame)`` -> (H, W) bool person mask.

    Frames must come in time order, one clip per segmenter (it tracks the person across frames);
    call :meth:`close` (or use ``with``) to free the graph.
    """

    method = "person"

    def __init__(self, video: bool = True):
        if not available():
            raise missing_error()
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logs: errors only
        with warnings.catch_warnings(), silenced_stderr():
            warnings.simplefilter("ignore")  # protobuf deprecation notices from inside MediaPipe
            from mediapipe.python.solutions import pose

            # model_complexity=1 is pose_landmark_full, the model the wheel carries (0 and 2
            # would be downloaded on first use, which must never happen).
            self.pose = pose.Pose(static_image_mode=not video, model_complexity=1,
                                  smooth_landmarks=True, enable_segmentation=True,
                                  smooth_segmentation=video, min_detection_confidence=0.5,
                                  min_tracking_confidence=0.5)

    def probability(self, frame: np.ndarray) -> np.ndarray | None:
        """frame: (H, W, 3) uint8 RGB -> (H, W) float32 person probability, or None: nobody found."""
        frame = np.ascontiguousarray(frame)
        # TensorFlow Lite and MediaPipe announce each model's set-up when it first runs (the
        # landmark model only once a person is found, again after she is lost), from C++ threads
        # that Python's logging cannot reach; protobuf warns on every call. Errors still raise.
        with warnings.catch_warnings(), silenced_stderr():
            warnings.simplefilter("ignore")
            return self.pose.process(frame).segmentation_mask

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 RGB -> (H, W) bool."""
        probability = self.probability(frame)
        if probability is None:
            return np.zeros(frame.shape[:2], dtype=bool)
        return probability > MASK_LEVEL

    def close(self) -> None:
        self.pose.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


@contextlib.contextmanager
def silenced_stderr():
    """Send file descriptor 2 to /dev/null for a moment: MediaPipe and TensorFlow Lite print
    start-up notices from C++, which Python's own redirection cannot catch."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def detection_share(samples) -> float:
    """The share of sample frames ((H, W, 3) uint8, far apart in time) where a person is found."""
    with PersonSegmenter(video=False) as segmenter:
        found = [segmenter(frame).mean() > 0.002 for frame in samples]
    return float(np.mean(found)) if found else 0.0
