"""Pick a motion model by how it dances, not by how well it predicts the next frame.

Held-out NLL does not rank rollouts: the epoch with the best NLL may jitter or loop once it feeds
on its own samples, and a model that dances well for 10 s may drift into jitter or a loop by its
60th second. So every few epochs motion training rolls out a few one-minute dances from the model
as it is (in one batch, latents only), decodes the last seconds of each with the run's VAE and
scores them with the metrics of ``evaluate`` against a validation clip (decoded the same way, so
both sides share the VAE's blur). The rule
that ranks two checks (docs/motion.md, "Selection by rollout"):

1. fewer failed gates: freeze, loop and artifacts under their caps, motion energy 0.8-1.2x the
   dancer's (over all her training footage, decoded alike: one validation clip is one take, and
   takes differ by up to 1.5x in energy), diversity between the seeds' dances at least 0.9x the
   clip's own (its first half against its second), and at most 5 points more copied frames than
   the clip has (an overfit model replays its training dance, which the Frechet distance would
   reward), and in the worst 10 s window of any dance artifacts under 2% and loops under 10%
   (plus the clip's own worst): a mean hides a burst a viewer sees at once; and issue 14's last
   two targets: the dances' frames no closer to the training frames (mean best IoU) than the
   clip's own, and a Frechet distance at most 1.5x the clip's own level (its first half against
   its second). A score that could not be measured fails its gate; a gate whose level the clip
   lacks is left out;
2. then the smaller shortfall: how far the missed gates are missed, each as a fraction of its
   bound, summed (a dance 4% short of the diversity floor beats one 13% short; a dance that stays
   closer to the training frames has a lower Frechet distance, so that must not decide between
   two misses);
3. then the lower Frechet distance to the validation clip, over the clip's own level.

Each check tries a few spreads (``--sigma-temperature``: how much of the predicted spread a
sample keeps; too much jitters, too little settles into loops, and where the balance lies depends on
the dancer and the VAE), each with a few noise correlations (``--noise-correlation``: more strays
further from the training dance, with a few more broken limbs), and keeps the best; the exported
model recommends the spread and correlation of the check that chose it. The final check of the kept
weights (with redraws, as ``dancenet generate`` draws) also tries a few component correlations
(``--component-correlation``: how long a dance keeps to one mixture component), and the model
recommends the best of those too. The rollouts use fixed
seeds, the recipe's temperature and the unprimed start of ``dancenet generate``, so two checks
differ only by the weights, and a resumed run repeats them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..copies import Copies
from ..errors import DancenetError
from .batches import check_clip_names, unquoted_name_hint

# What a check's dances must meet; the caps are issue 14's targets for 60 s dances.
FREEZE_CAP = 0.02
LOOP_CAP = 0.02
ARTIFACT_CAP = 0.005
ENERGY_RANGE = (0.8, 1.2)
WORST_ARTIFACT_CAP = 0.02  # in the worst 10 s window of any dance
WORST_LOOP_CAP = 0.10
DIVERSITY_FLOOR = 0.9
# Copied frames (evaluate's memorisation) may exceed the validation clip's own share by this much:
# an overfit model replays its training dance, which also lowers the Frechet distance.
COPIED_SLACK = 0.05
# The Frechet distance over the validation clip's own level (issue 14's target for 60 s dances).
FRECHET_CAP = 1.5
# The validation frames a check compares with, and the training frames a dance could copy.
REFERENCE_SECONDS = 90.0
LIBRARY_FRAMES = 2000
DECODE_BATCH = 256
# Seeds of the check's rollouts: far from the small seeds users and benchmarks pick.
FIRST_SEED = 1_000_003


class CannotJudge(Exception):
    """The run cannot judge rollouts (then the held-out NLL selects)."""


@dataclass(frozen=True)
class Check:
    """One check's scores. ``failed``: the gates it missed; ``rank`` orders checks (lower wins)."""

    failed: tuple[str, ...]
    frechet_ratio: float
    scores: dict
    sigma_temperature: float = 1.0
    noise_correlation: float = 0.0
    shortfall: float = 0.0  # how far the failed gates are missed (see :func:`judge`)
    component_correlation: float = 0.0

    @property
    def rank(self) -> tuple[int, float, float]:
        return len(self.failed), self.shortfall, self.frechet_ratio

    def columns(self) -> dict:
        """The metrics.csv columns of this check."""
        # plain floats: the best check's columns go into checkpoints, which load weights_only
        return {"rollout_failed_gates": len(self.failed), "rollout_shortfall": float(self.shortfall),
                "rollout_frechet_ratio": float(self.frechet_ratio),
                "rollout_sigma_temperature": float(self.sigma_temperature),
                "rollout_noise_correlation": float(self.noise_correlation),
                "rollout_component_correlation": float(self.component_correlation),
                **{f"rollout_{key}": float(value) for key, value in self.scores.items()}}


# metrics.csv's (not the component correlation: the checks during training all draw at one)
COLUMNS = ["rollout_failed_gates", "rollout_shortfall", "rollout_frechet_ratio", "rollout_sigma_temperature",
           "rollout_noise_correlation", "rollout_freeze", "rollout_loop", "rollout_artifacts",
           "rollout_energy_ratio", "rollout_diversity_ratio", "rollout_copied", "rollout_worst_artifacts",
           "rollout_worst_loop", "rollout_best_iou"]


class RolloutJudge:
    """Scores a motion model's own dances against validation clips (see the module docstring).

    run: the run whose VAE decodes; mean: (frames, L) raw latent means; val_ranges /
    train_ranges: (start, stop) rows of the validation and training clips; starts: raw latents
    an unprimed rollout starts from (the first frame of each training clip).
    """

    def __init__(self, run: Path, mean: torch.Tensor, val_ranges: list[tuple[int, int]],
                 train_ranges: list[tuple[int, int]], starts: list, fps: float, seconds: float,
                 scored_seconds: float, seeds: int, temperature: float,
                 sigma_temperatures: tuple[float, ...], device: torch.device,
                 noise_correlations: tuple[float, ...] = (0.0,), worst_window: bool = True,
                 memorisation: bool = True, dancer_energy: bool = True):
        from ..evaluate import suite
        from ..evaluate.features import FeatureConfig
        from ..evaluate.metrics import as_binary
        from ..vae.encode import load as load_vae

        self.vae = load_vae(run, device)
        self.device, self.fps, self.seeds = device, fps, seeds
        self.temperature, self.worst_window, self.memorisation = temperature, worst_window, memorisation
        # every (spread, noise correlation) pair a check tries
        self.samplings = [(float(spread), float(correlation)) for spread in sigma_temperatures
                          for correlation in noise_correlations]
        self.frames = max(2, round(seconds * fps))
        self.scored = min(self.frames, max(2, round(scored_seconds * fps)))
        self.starts = torch.tensor(starts, dtype=torch.float32, device=device)
        share = max(2, round(REFERENCE_SECONDS * fps) // max(len(val_ranges), 1))
        clips = [self._decode(mean[start:min(stop, start + share)]) for start, stop in val_ranges]
        window = max(2, round(FeatureConfig().window_seconds * fps))
        clips = [clip for clip in clips if len(clip) >= 2 * window]
        if not clips:
            raise CannotJudge("no validation clip is long enough to judge rollouts")
        train_rows = np.concatenate([np.arange(start, stop) for start, stop in train_ranges])
        pick = train_rows[np.linspace(0, len(train_rows) - 1, min(LIBRARY_FRAMES, len(train_rows)))
                          .round().astype(np.int64)]
        library = self._decode(mean[torch.from_numpy(pick)])
        # the copy and pose guards of redraws, as generate's, but on decoded frames alone (no footage here)
        self.copies = Copies.from_frames(library)
        self.settings = suite.MetricSettings()
        self.levels = suite.levels_from_frames(clips, library, True, fps, self.settings, FeatureConfig(),
                                               self.scored)
        # the motion energy the dances are held to (``dancer_energy``): the dancer's over all her
        # training footage, from each library frame and the frame after it; else the clip's own
        self.energy = None
        if dancer_energy:
            followed = np.isin(pick, np.concatenate([np.arange(start, stop - 1) for start, stop in train_ranges]))
            if not followed.any():
                raise CannotJudge("no training clip is long enough to measure the dancer's motion energy")
            after = self._decode(mean[torch.from_numpy(pick[followed] + 1)])
            self.energy = float((as_binary(after) != as_binary(library[followed])).mean())

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        chunks = [self.vae.silhouettes(latents[first:first + DECODE_BATCH].to(self.device))
                  for first in range(0, len(latents), DECODE_BATCH)]
        return torch.cat(chunks).cpu().numpy()

    def draw_check(self, rows: int):
        """The :class:`~dancenet.generate.DrawCheck` of a batch rollout of ``rows`` dances, as
        ``dancenet generate`` checks its draws (whole body, repeat, copy and pose guards)."""
        from ..generate import DrawCheck, Repeats

        return DrawCheck(self._decode, Repeats.for_rate(rows, self.fps), self.copies)

    @torch.no_grad()
    def rollouts(self, model, scaler, retries: int = 0, samplings: list | None = None,
                 component_correlation: float | None = None) -> torch.Tensor:
        """The dances of a check at one component correlation, in one batch: (samplings x seeds,
        frames, L) raw latents, rows grouped by sampling (spread, noise correlation). Same
        sampler, feedback and starts as ``dancenet generate``; ``retries``: whole-body redraws as
        generate makes them (0: plain draws, as the checks during training use); ``samplings``:
        default all of the check's; ``component_correlation``: default
        ``generate.COMPONENT_CORRELATION``."""
        from ..generate import COMPONENT_CORRELATION, next_step, single_step_kernels, start_context
        from .mdn import CorrelatedNoise, MixtureParameters

        samplings = self.samplings if samplings is None else samplings
        component_correlation = COMPONENT_CORRELATION if component_correlation is None else component_correlation
        count = len(samplings) * self.seeds
        generator = torch.Generator(device=self.device).manual_seed(FIRST_SEED)
        spreads, correlations = (torch.tensor(values, device=self.device).repeat_interleave(self.seeds)[:, None]
                                 for values in zip(*samplings))
        noise = CorrelatedNoise(correlations, float(component_correlation))
        was_training = model.training
        model.eval()
        judged = self.draw_check(count) if retries else None
        starts = start_context(self.starts, generator, count)
        params, state = model(scaler.normalise(starts)[:, None], None)
        params = MixtureParameters(*(value[:, -1] for value in params))
        latents = torch.empty(count, self.frames, self.starts.shape[1], device=self.device)
        glide = self.vae.config.centre  # a centred VAE's place glides, as in generate's rollout
        with single_step_kernels():
            for index in range(self.frames):
                place = (latents[:, index - 1] if index else starts)[:, -1] if glide else None
                latents[:, index], params, state = next_step(model, scaler, params, state, generator,
                                                             self.temperature, spreads, noise,
                                                             judged, retries, place)
        model.train(was_training)
        return latents

    def check(self, model, scaler, retries: int = 0, spreads: tuple | None = None,
              component_correlations: tuple | None = None) -> Check:
        """Roll out (with ``retries`` whole-body redraws), score the end of each dance and gate
        the model as it is now, at each spread (of ``spreads``, default all), noise correlation and
        component correlation (of ``component_correlations``, default
        ``generate.COMPONENT_CORRELATION``) -> the best one's check (the first of equals). Each
        component correlation rolls out in a batch of its own, so adding one leaves the dances
        (and scores) of the others as they were."""
        from ..evaluate import suite
        from ..generate import COMPONENT_CORRELATION

        components = (COMPONENT_CORRELATION,) if component_correlations is None else component_correlations
        pairs = [pair for pair in self.samplings if spreads is None or pair[0] in spreads]
        latents = torch.cat([self.rollouts(model, scaler, retries, pairs, component)
                             for component in components])[:, -self.scored:]
        samplings = [(*pair, component) for component in components for pair in pairs]
        checks = []
        for group, (spread, correlation, component) in enumerate(samplings):
            rows = range(group * self.seeds, (group + 1) * self.seeds)
            videos = {f"seed {row}": self._decode(latents[row]) for row in rows}
            summary = suite.score_videos(videos, self.levels, self.fps, self.settings)
            checks.append(replace(judge(summary, self.levels.level, spread, correlation, self.worst_window,
                                        self.memorisation, self.energy), component_correlation=component))
        return min(checks, key=lambda check: check.rank)


def judge(summary: dict, real: dict, sigma_temperature: float = 1.0, noise_correlation: float = 0.0,
          worst_window: bool = True, memorisation: bool = True, energy_level: float | None = None) -> Check:
    """Gate and rank a summary of ``evaluate``'s metrics against the real level (see the module);
    ``worst_window`` / ``memorisation`` False leave out the worst-window gates / the best-IoU and
    Frechet gates (runs begun before they existed); ``energy_level``: the mean motion energy the
    dances are held to (default the real level's)."""
    level = real["motion_energy"]["mean"] if energy_level is None else energy_level
    energy = summary["motion_energy"]["mean"] / max(level, 1e-12)
    diversity = (summary["diversity"] / real["diversity"]
                 if summary.get("diversity") is not None and real.get("diversity") else math.nan)
    floor = real.get("frechet_distance") or 1.0
    frechet = summary["frechet_distance"] / floor
    scores = {"freeze": summary["freeze_ratio"], "loop": summary["loop_ratio"],
              "artifacts": summary["artifact_ratio"], "energy_ratio": energy,
              "diversity_ratio": diversity, "copied": summary["copied_frame_ratio"],
              "worst_artifacts": _worst(summary, "artifact_ratio"), "worst_loop": _worst(summary, "loop_ratio"),
              "best_iou": summary.get("memorisation_mean_best_iou", math.nan)}
    # each gate: its value, the (low, high) bounds it must stay within (None: no bound) and
    # whether reaching ``high`` already fails (the "under" caps: freeze, loops, artifacts); the
    # "at most" bounds (copied, Frechet, best IoU), floors and ranges are inclusive
    bounds = {
        "freeze": (scores["freeze"], None, FREEZE_CAP, True),
        "loop": (scores["loop"], None, LOOP_CAP + (real.get("loop_ratio") or 0.0), True),
        "artifacts": (scores["artifacts"], None, ARTIFACT_CAP, True),
        "energy": (energy, *ENERGY_RANGE, False),
        "diversity": (diversity, DIVERSITY_FLOOR, None, False),
        "copied": (scores["copied"], None, (real.get("copied_frame_ratio") or 0.0) + COPIED_SLACK, False),
    }
    if worst_window:
        bounds["worst artifacts"] = (scores["worst_artifacts"], None, WORST_ARTIFACT_CAP, True)
        bounds["worst loop"] = (scores["worst_loop"], None, WORST_LOOP_CAP + _worst(real, "loop_ratio"), True)
    if memorisation:  # each only where the clip has a level of its own to compare with
        if _measured(real.get("frechet_distance")):  # a clip of at least two Frechet windows
            bounds["frechet"] = (frechet, None, FRECHET_CAP, False)
        if _measured(real.get("memorisation_mean_best_iou")):  # a held-out reference
            bounds["best IoU"] = (scores["best_iou"], None, real["memorisation_mean_best_iou"], False)
    failed, shortfall = [], 0.0
    for name, (value, low, high, strict) in bounds.items():
        if name == "diversity" and math.isnan(value):  # one dance: no diversity to compare
            continue
        if math.isnan(value):  # nothing measured cannot pass, and misses by an unknown amount
            failed.append(name)
            shortfall = math.inf
            continue
        over = high is not None and (value >= high if strict else value > high)
        under = low is not None and value < low
        if over or under:
            failed.append(name)
            bound = high if over else low
            shortfall += abs(value - bound) / max(abs(bound), 1e-9)
    return Check(failed=tuple(failed), frechet_ratio=frechet, scores=scores,
                 sigma_temperature=sigma_temperature, noise_correlation=noise_correlation,
                 shortfall=shortfall)


def _measured(value) -> bool:
    """A level that was measured: a positive number (not None, 0 or NaN)."""
    return value is not None and value > 0


def _worst(summary: dict, key: str) -> float:
    """The value of ``key``'s worst 10 s window in an ``evaluate`` summary (0 when it has none)."""
    return float(((summary.get("worst_window") or {}).get(key) or {}).get("value", 0.0))


# --------------------------------------------------------------------------------------------
# What motion training needs: the clips' roles, the judge, the best epoch so far


def test_clip_names(run: Path, latents, setting) -> list[str]:
    """The run's test clips: ``setting`` "auto" = the clips the VAE held out (when it recorded
    any), else names (a list or "a,b"); none for 0 / None."""
    from ..checkpoint import read_model_info

    if setting == "auto":
        if not (Path(run) / "vae.json").is_file():
            return []
        names = read_model_info(run, "vae", "vae").metadata.get("val_clips")
        ok = isinstance(names, list) and names and all(name in latents.clip_names for name in names)
        return list(names) if ok else []
    if not setting:
        return []
    if isinstance(setting, (int, float)):
        raise DancenetError(f"test_clips {setting}: give clip names, auto or null"
                            + unquoted_name_hint(setting, latents.clip_names))
    names = [name.strip() for name in setting.split(",")] if isinstance(setting, str) else \
        [str(name) for name in setting]
    names = [name for name in names if name]
    check_clip_names(names, latents.clip_names, "test_clips")
    return names


def make_judge(run: Path, latents, starts: list, val_ranges, train_ranges, training, device):
    """The rollout judge of a motion run, or None (with a note saying why) where it cannot roll
    out: no validation clip, no VAE in the run, or no validation clip long enough."""
    why = "no validation clip" if not val_ranges else \
        "no VAE in the run to decode the rollouts" if not (Path(run) / "vae.json").is_file() else ""
    if not why:
        try:
            return RolloutJudge(run, torch.from_numpy(latents.mean), val_ranges, train_ranges, starts,
                                latents.fps, training.select_seconds, training.select_scored_seconds,
                                training.select_seeds, training.generate_temperature,
                                training.select_sigma_temperatures, device, training.select_noise_correlations,
                                training.select_worst_window, training.select_memorisation,
                                training.select_dancer_energy)
        except CannotJudge as error:
            why = str(error)
    print(f"dancenet: note: selecting the motion model by held-out NLL: {why}", file=sys.stderr)
    return None


class BestEpoch:
    """The epoch to export: the best rollout check's (``by_rollout``), else the lowest held-out
    NLL's. ``state`` (checkpointed): val_nll, epoch, model (weights), rank, scores (the check's
    ``rollout_*`` columns), checks_since (validations without a better one)."""

    def __init__(self, by_rollout: bool):
        self.by_rollout = by_rollout
        self.state = {"val_nll": math.inf, "epoch": 0, "model": None, "rank": None, "scores": None,
                      "checks_since": 0}

    def update(self, epoch: int, metrics: dict, model: torch.nn.Module) -> None:
        """After an epoch's validation: keep ``model``'s weights when they beat the best."""
        if self.by_rollout:
            if "rollout_failed_gates" not in metrics:
                return
            rank = [metrics["rollout_failed_gates"], metrics["rollout_shortfall"],
                    metrics["rollout_frechet_ratio"]]
            better = self.state["rank"] is None or rank < _with_shortfall(self.state["rank"])
        else:
            rank, nll = None, metrics.get("val_nll_nats_per_frame")
            if nll is None:  # nothing held out: nothing to compare, nothing to stop on
                return
            better = nll < self.state["val_nll"]
        if not better:
            self.state["checks_since"] += 1
            return
        self.state = {"val_nll": metrics["val_nll_nats_per_frame"], "epoch": epoch, "rank": rank,
                      "model": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
                      "scores": {key: value for key, value in metrics.items() if key.startswith("rollout_")}
                      or None, "checks_since": 0}

    def stale(self, patience: int | None) -> bool:
        """``patience`` validations in a row without a better one."""
        return bool(patience) and self.state["checks_since"] >= patience


def _with_shortfall(rank: list) -> list:
    """A kept rank as [failed gates, shortfall, Frechet]: checkpoints written before the
    shortfall existed kept [failed gates, Frechet]; their shortfall is 0 where no gate failed and
    unknown (infinite: any check missing as many gates ranks ahead) where some did."""
    if len(rank) == 3:
        return rank
    failed, frechet = rank
    return [failed, 0.0 if failed == 0 else math.inf, frechet]
