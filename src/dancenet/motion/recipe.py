"""The motion model's training recipe (a recipe file's ``training:`` section) and its presets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import config_from_dict, load_recipe as read_recipe_file, preset_of
from ..training import TrainingConfig
from .model import PRESET_VALUES, MotionConfig


@dataclass(frozen=True)
class MotionTraining(TrainingConfig):
    """How a motion model is trained (a recipe's ``training:``); field defaults are the
    ``default`` preset. test_clips "auto": the clips the VAE held out; val_clips "auto": about 10%
    of the others, or the test clips when fewer than 4 others remain (motion/batches.py)."""

    epochs: int | None = 200
    batch_size: int = 16                # parallel streams (one-frame examples for 2018)
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_fraction: float = 0.0
    gradient_clip: float = 1.0
    checkpoint_every: int | None = None
    sequence_length: int = 128          # steps per BPTT window (frames: about 4 s at 30 fps; a
                                        # model of frame_stride k steps k frames at a time)
    latent_source: str = "sample"       # "mean", "sample" (fresh each epoch) or "sample-once" (2018)
    input_noise: float = 0.0            # std of Gaussian noise added to inputs (model units)
    # Export the weights of the best epoch rather than the last: a few minutes of dance overfit
    # quickly (copied, looping or jittering dances), long before the budget ends.
    keep_best: bool = True
    # What "best" means: "rollout" (the dances of the model, scored every few epochs against a
    # validation clip: motion/selection.py) or "nll" (the held-out NLL, every epoch).
    select: str = "rollout"
    select_every_frames: int = 100_000  # training frames between two rollout checks
    select_seconds: float = 60.0        # length of each check's dances (drift shows late)
    select_scored_seconds: float = 15.0  # the end of each dance that is decoded and scored
    select_seeds: int = 2               # dances per check and sampling (spread, correlation)
    # The spreads a check tries (--sigma-temperature); the exported model recommends the best.
    select_sigma_temperatures: tuple[float, ...] = (0.5, 0.75, 1.0)
    # The noise correlations it tries with each spread (--noise-correlation): correlated draws
    # vary the dance more from the training takes (fewer copied frames and loops) at the cost of a
    # few more broken limbs; each spread and correlation is judged alike and the best recommended.
    select_noise_correlations: tuple[float, ...] = (0.5, 0.7, 0.9)
    # The component correlations (--component-correlation) the final check with redraws tries
    # with each noise correlation, at the kept spread; the model recommends the best. The checks
    # during training draw at generate.COMPONENT_CORRELATION. A model trained on little footage
    # flickers with fresh component draws (0), and 0.6 calms it; others keep 0 where it wins.
    select_component_correlations: tuple[float, ...] = (0.0, 0.6)
    # Gate the worst 10 s window of the check's dances too (artifacts < 2%, loops < 10%).
    select_worst_window: bool = True
    # Gate how close the dances' frames stay to the training frames (mean best IoU no higher than
    # the validation clip's own) and their Frechet distance (at most 1.5x the clip's own level).
    select_memorisation: bool = True
    # Hold the dances' motion energy to the dancer's over all her training footage (decoded), not
    # to the validation clip's alone: takes differ (salsa: 0.55-0.84% of the pixels change a frame),
    # and held to a lively validation take, a check kept a sampling that danced 1.35x the test
    # take's energy (docs/motion.md, "Selection by rollout").
    select_dancer_energy: bool = True
    # Generation redraws broken frames (whole-body sampling: generate.RETRIES); the noise and
    # component correlations the model recommends are chosen by one more check of the kept
    # weights (at their spread) with as many redraws (0: the check that kept them chooses the
    # noise correlation, for plain draws, and the component correlation is the default).
    select_retries: int = 7
    patience: int | None = 10           # checks without a better one before training stops
    # Validate, check and export an exponential moving average of the weights (this decay per
    # step; null: the weights as trained). Smooths the epoch-to-epoch swings of the rollouts.
    average_decay: float | None = 0.98
    # Clips never trained on nor used to choose the epoch: "auto" = the clips the VAE held out.
    test_clips: int | str | tuple | None = "auto"
    # Recommended generation temperatures, stored in the model file and used when a user gives
    # none: chosen by measuring rollouts of the trained model (docs/motion.md), not by training.
    generate_temperature: float = 1.0
    generate_sigma_temperature: float = 0.75

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.sequence_length >= 1, "sequence_length must be >= 1"),
            (self.latent_source in ("mean", "sample", "sample-once"),
             "latent_source must be mean, sample or sample-once"),
            (self.input_noise >= 0, "input_noise must be >= 0"),
            (self.generate_temperature > 0 and self.generate_sigma_temperature > 0,
             "generate temperatures must be > 0"),
            (self.select in ("rollout", "nll"), "select must be rollout or nll"),
            (self.select_every_frames >= 1 and self.select_seeds >= 2, "select_every_frames must be "
             ">= 1 and select_seeds >= 2"),
            (2 <= self.select_scored_seconds <= self.select_seconds,
             "select_scored_seconds must be at least 2 and at most select_seconds"),
            (len(self.select_sigma_temperatures) >= 1 and all(value > 0 for value in self.select_sigma_temperatures),
             "select_sigma_temperatures must hold at least one value, all > 0"),
            (len(self.select_noise_correlations) >= 1
             and all(0 <= value < 1 for value in self.select_noise_correlations),
             "select_noise_correlations must hold at least one value, each at least 0 and below 1"),
            (len(self.select_component_correlations) >= 1
             and all(0 <= value < 1 for value in self.select_component_correlations),
             "select_component_correlations must hold at least one value, each at least 0 and below 1"),
            (0 <= self.select_retries <= 100, "select_retries must be from 0 to 100"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or null"),
            (self.average_decay is None or 0 < self.average_decay < 1, "average_decay must be in (0, 1) or null"),
        ]

    @classmethod
    def from_dict(cls, values: dict, label: str = "motion training") -> "MotionTraining":
        return config_from_dict(cls, values, label)


TRAINING_PRESETS = {
    "default": {},
    # Adam lr 5e-4, batch 1024, one frame per example, latents sampled once when encoding.
    "dancenet-2018": dict(learning_rate=5e-4, batch_size=1024, sequence_length=1, epochs=100,
                          latent_source="sample-once", gradient_clip=0.0, keep_best=False,
                          patience=None, average_decay=None, generate_sigma_temperature=1.0),
}


def preset_training(preset: str = "default", **overrides) -> MotionTraining:
    """The training recipe of a preset; ``None`` overrides are skipped."""
    return preset_of(MotionTraining, TRAINING_PRESETS, preset, **overrides)


def load_recipe(path: str | Path) -> tuple[MotionConfig, MotionTraining]:
    """A YAML recipe (``configs/motion-*.yaml``) -> (model config, training config)."""
    return read_recipe_file(path, MotionConfig, PRESET_VALUES, MotionTraining, TRAINING_PRESETS)
