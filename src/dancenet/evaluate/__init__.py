"""Dance-quality evaluation: metrics on silhouette videos, the Frechet feature and the HTML report.

``metrics`` and ``features`` are pure numpy; ``suite`` computes every metric of a set of videos
against a reference dataset; ``report`` writes metrics.json and a self-contained index.html.
Definitions and reasoning: docs/metrics.md.
"""

from .features import FeatureConfig, FrechetFeature, frechet_distance, shape_descriptors
from .metrics import (LOOP_THRESHOLD, artifact_analysis, best_match_iou, diversity, freeze_ratio,
                      freeze_threshold, loop_analysis, loop_ratio, motion_energy)
from .report import write_report
from .suite import Evaluation, Reference, evaluate_videos, make_reference, read_video, validation_clips

__all__ = [
    "FeatureConfig", "FrechetFeature", "frechet_distance", "shape_descriptors", "LOOP_THRESHOLD",
    "artifact_analysis", "best_match_iou", "diversity", "freeze_ratio", "freeze_threshold", "loop_analysis",
    "loop_ratio", "motion_energy", "write_report", "Evaluation", "Reference", "evaluate_videos",
    "make_reference", "read_video", "validation_clips",
]
