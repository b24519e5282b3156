"""Motion training picks its epoch by how the model dances (motion/selection.py): the gates and the
ranking rule, the test / validation / training split, the exported epoch and spread, early stopping."""

import csv
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dancenet.commands.motion import chosen_epoch
from dancenet.generate import COMPONENT_CORRELATION
from dancenet.latents import Latents, load_latents
from dancenet.motion.batches import split_with_test
from dancenet.motion.model import load_motion
from dancenet.motion import mdn as selection_mdn, selection
from dancenet.motion.selection import judge
from dancenet.motion.recipe import MotionTraining
from dancenet.motion.train import train_motion
from dancenet.training import RunOptions
from dancenet.vae.model import VAE, preset_config as vae_preset, save_vae

from .test_motion import tiny_motion, write_latents

QUIET = RunOptions(quiet=True)
REAL = {"motion_energy": {"mean": 0.01}, "diversity": 0.6, "frechet_distance": 20.0, "loop_ratio": 0.0}


def summary(**changes):
    values = {"freeze_ratio": 0.0, "loop_ratio": 0.0, "artifact_ratio": 0.001,
              "motion_energy": {"mean": 0.01}, "diversity": 0.6, "frechet_distance": 24.0,
              "copied_frame_ratio": 0.0, "memorisation_mean_best_iou": 0.8}
    return {**values, **changes}


def test_gates_come_first_then_the_frechet_distance_over_the_real_level():
    clean = judge(summary(), REAL)
    assert clean.failed == () and clean.frechet_ratio == pytest.approx(1.2)
    assert judge(summary(loop_ratio=0.05), REAL).failed == ("loop",)
    assert judge(summary(freeze_ratio=0.03), REAL).failed == ("freeze",)
    assert judge(summary(artifact_ratio=0.01), REAL).failed == ("artifacts",)
    assert judge(summary(motion_energy={"mean": 0.013}), REAL).failed == ("energy",)
    assert judge(summary(motion_energy={"mean": 0.007}), REAL).failed == ("energy",)
    # held to the dancer's energy where the judge gives one, not the clip's
    lively = judge(summary(motion_energy={"mean": 0.011}), REAL, energy_level=0.008)
    assert lively.failed == ("energy",) and lively.scores["energy_ratio"] == pytest.approx(1.375)
    assert judge(summary(motion_energy={"mean": 0.013}), REAL, energy_level=0.012).failed == ()
    assert judge(summary(diversity=0.3), REAL).failed == ("diversity",)
    # a jittery model with a low Frechet distance still ranks behind one that passes every gate
    jitter = judge(summary(motion_energy={"mean": 0.03}, frechet_distance=10.0), REAL)
    assert jitter.rank > clean.rank
    assert judge(summary(frechet_distance=22.0), REAL).rank < clean.rank
    # real dance that loops a little moves the loop cap with it
    assert judge(summary(loop_ratio=0.05), {**REAL, "loop_ratio": 0.04}).failed == ()
    # a burst: a clean mean with one bad 10 s window fails its worst-window gate
    burst = {"artifact_ratio": {"value": 0.03}, "loop_ratio": {"value": 0.15}}
    assert judge(summary(worst_window=burst), REAL).failed == ("worst artifacts", "worst loop")
    assert judge(summary(worst_window=burst), REAL, worst_window=False).failed == ()  # runs begun before them
    assert judge(summary(worst_window={"loop_ratio": {"value": 0.15}}),
                 {**REAL, "worst_window": {"loop_ratio": {"value": 0.1}}}).failed == ()


def test_between_checks_missing_as_many_gates_the_smaller_miss_wins_before_the_frechet_distance():
    # both miss only the diversity floor (0.9x real): 0.86x misses it by 4%, 0.78x by 13%; the one
    # nearer the floor wins although its Frechet distance is higher (neither is over any cap)
    near = judge(summary(diversity=0.6 * 0.86, frechet_distance=16.0), REAL)
    far = judge(summary(diversity=0.6 * 0.78, frechet_distance=10.0), REAL)
    assert near.failed == far.failed == ("diversity",)
    assert near.shortfall == pytest.approx(0.04 / 0.9) and far.shortfall == pytest.approx(0.12 / 0.9)
    assert near.rank < far.rank and near.frechet_ratio > far.frechet_ratio
    # misses add up, each relative to its bound: energy 1.5x is 25% over 1.2, loops 3% are 50% over 2%
    both = judge(summary(motion_energy={"mean": 0.015}, loop_ratio=0.03), REAL)
    assert both.failed == ("loop", "energy") and both.shortfall == pytest.approx(0.5 + 0.25)
    assert judge(summary(), REAL).shortfall == 0.0  # nothing missed
    assert near.columns()["rollout_shortfall"] == pytest.approx(near.shortfall)


def test_dances_closer_to_the_training_frames_than_the_clip_or_too_far_from_it_fail():
    held_out = {**REAL, "memorisation_mean_best_iou": 0.85}  # the clip's own frames: 0.85
    close = judge(summary(memorisation_mean_best_iou=0.884), held_out)
    assert close.failed == ("best IoU",) and close.shortfall == pytest.approx(0.034 / 0.85)
    assert close.columns()["rollout_best_iou"] == pytest.approx(0.884)
    assert judge(summary(memorisation_mean_best_iou=0.85), held_out).failed == ()  # as close as the clip
    # the Frechet distance is capped at 1.5x the clip's own level (20): 30 passes, 33 misses by 10%
    far = judge(summary(frechet_distance=33.0), held_out)
    assert far.failed == ("frechet",) and far.shortfall == pytest.approx(0.1)
    # between two dances that each miss one gate, the nearer miss wins: a little too close to the
    # training frames (4%) beats much too far from the clip (10%)
    assert close.rank < far.rank
    # runs begun before these gates go on without them; no held-out level, no best-IoU gate
    assert judge(summary(memorisation_mean_best_iou=0.884, frechet_distance=33.0), held_out,
                 memorisation=False).failed == ()
    assert judge(summary(memorisation_mean_best_iou=0.884), REAL).failed == ()
    # a clip too short for a Frechet level of its own: no Frechet gate (not the raw distance vs 1.5)
    assert judge(summary(frechet_distance=33.0), {**held_out, "frechet_distance": None}).failed == ()


def test_a_score_that_could_not_be_measured_fails_its_gate():
    broken = judge(summary(freeze_ratio=math.nan), REAL)
    assert broken.failed == ("freeze",) and broken.shortfall == math.inf
    assert broken.rank > judge(summary(loop_ratio=0.5), REAL).rank  # any measured miss ranks ahead
    assert judge(summary(frechet_distance=math.nan), REAL).failed == ("frechet",)
    # the clip has a best-IoU level and the dances none: missed, not passed
    unmeasured = summary()
    del unmeasured["memorisation_mean_best_iou"]
    assert judge(unmeasured, {**REAL, "memorisation_mean_best_iou": 0.85}).failed == ("best IoU",)
    # a level that was not measured sets no bound
    assert judge(summary(), {**REAL, "memorisation_mean_best_iou": math.nan}).failed == ()


def test_a_best_check_kept_before_the_shortfall_existed_still_ranks():
    model = torch.nn.Linear(1, 1)
    check = {"val_nll_nats_per_frame": 1.0, "rollout_failed_gates": 1, "rollout_shortfall": 0.5,
             "rollout_frechet_ratio": 2.0}
    best = selection.BestEpoch(by_rollout=True)
    best.state = {**best.state, "rank": [0, 3.0]}  # [failed gates, Frechet] of an older checkpoint
    best.update(5, check, model)
    assert best.state["epoch"] == 0 and best.state["checks_since"] == 1  # a failed gate still loses
    best.state = {**best.state, "rank": [1, 1.0]}  # one failed gate, by how much unknown
    best.update(6, check, model)
    assert best.state["epoch"] == 6 and best.state["rank"] == [1, 0.5, 2.0]
    # an old check that passed every gate keeps its Frechet distance: only a lower one beats it
    # (read as [failed, Frechet], the new shortfall 0 would wrongly beat any old Frechet)
    clean = {**check, "rollout_failed_gates": 0, "rollout_shortfall": 0.0, "rollout_frechet_ratio": 0.9}
    best.state = {**best.state, "rank": [0, 0.8]}
    best.update(7, clean, model)
    assert best.state["epoch"] == 6
    best.update(8, {**clean, "rollout_frechet_ratio": 0.7}, model)
    assert best.state["epoch"] == 8


def test_gate_bounds_caps_are_strict_floors_and_ranges_inclusive():
    caps = {"freeze_ratio": selection.FREEZE_CAP, "loop_ratio": selection.LOOP_CAP,
            "artifact_ratio": selection.ARTIFACT_CAP}
    for key, cap in caps.items():
        assert judge(summary(**{key: cap}), REAL).failed  # at the cap: missed
        assert not judge(summary(**{key: cap * 0.99}), REAL).failed
    for energy in (0.8, 1.2):  # the ends of the energy range pass
        assert judge(summary(motion_energy={"mean": 0.01 * energy}), REAL).failed == ()
    assert judge(summary(diversity=0.6 * 0.9), REAL).failed == ()  # exactly the floor passes
    assert judge(summary(copied_frame_ratio=selection.COPIED_SLACK), REAL).failed == ()  # the bound passes
    assert judge(summary(copied_frame_ratio=selection.COPIED_SLACK + 0.01), REAL).failed == ("copied",)
    assert judge(summary(frechet_distance=20.0 * selection.FRECHET_CAP), REAL).failed == ()  # the cap passes
    assert judge(summary(frechet_distance=20.0 * selection.FRECHET_CAP + 0.1), REAL).failed == ("frechet",)
    assert judge(summary(diversity=None), REAL).failed == ()  # one dance: no diversity to judge


def latents_with(names):
    count = len(names)
    return Latents(mean=torch.zeros(count * 10, 2).numpy(), log_var=torch.zeros(count * 10, 2).numpy(),
                   clip_names=list(names), offsets=[10 * index for index in range(count + 1)],
                   fps=30.0, vae_hash="v", dataset_hash="d")


def test_selection_never_sees_the_test_clips_when_there_are_clips_to_spare():
    latents = latents_with([f"take{index}" for index in range(8)])
    train, validation, test = split_with_test(latents, "auto", ["take3"])
    assert test == [3] and len(validation) == 1 and 3 not in validation
    assert sorted(train + validation + test) == list(range(8)) and not set(train) & set(validation)
    # few clips: the test clips validate too, and the others all train
    few = latents_with(["a", "b", "c", "d"])
    assert split_with_test(few, "auto", ["d"]) == ([0, 1, 2], [3], [3])
    # no test clips: the usual automatic validation split
    assert split_with_test(few, "auto", [])[2] == []
    # named validation clips are kept as given, and never trained on with the test clips
    train, validation, test = split_with_test(latents, "take0", ["take3"])
    assert validation == [0] and test == [3] and 0 not in train and 3 not in train
    # a count is taken from the clips that are not test clips; a resumed run (names) keeps its roles
    assert 3 not in split_with_test(latents, 2, ["take3"])[1]
    assert split_with_test(few, ("d",), ["d"]) == ([0, 1, 2], [3], [3])


def run_with_vae(tmp_path, clips=6, held_out="take5", centre=False):
    """A run holding latents and a small VAE (random weights: the judge only needs a decoder);
    ``centre``: a centred VAE, the latents' last dimension its place."""
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz", clips=clips)
    torch.manual_seed(0)
    vae = VAE(vae_preset("default", 32, 48, channels=(8, 16), latent_size=6, centre=centre,
                         centre_width=32 if centre else 0))
    save_vae(run, vae, {"fps": 30.0, "val_clips": [held_out]})
    return run


RECIPE = MotionTraining(epochs=6, batch_size=4, sequence_length=16, learning_rate=3e-2,
                        select_every_frames=1, select_seconds=3, select_scored_seconds=2, select_seeds=2,
                        select_sigma_temperatures=(0.5, 1.0), patience=None)


def rows(run, name="motion"):
    with open(run / f"{name}-train" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_clip_name_that_yaml_read_as_a_number_is_named_in_the_error():
    from dancenet.errors import DancenetError
    from dancenet.motion.batches import split_clips

    latents = latents_with(["61_01", "61_07", "61_09", "61_10"])
    for setting in (6107, [6107], "6107"):  # `val_clips: 61_07` / `[61_07]` unquoted
        with pytest.raises(DancenetError, match="'61_07': unquoted, YAML reads it as 6107"):
            split_clips(latents, setting)
    with pytest.raises(DancenetError, match="'61_09': unquoted, YAML reads it as 6109"):
        selection.test_clip_names(None, latents, 6109)
    assert split_clips(latents, ["61_07"]) == ([0, 2, 3], [1])
    with pytest.raises(DancenetError, match="'05_01': unquoted, YAML reads it as 321"):  # octal 0o501
        split_clips(latents_with(["05_01", "05_02"]), 321)
    with pytest.raises(DancenetError) as plain:
        split_clips(latents, 9)
    assert "YAML" not in str(plain.value)


def test_the_exported_model_is_the_best_checked_epoch_with_its_spread(tmp_path, monkeypatch):
    run = run_with_vae(tmp_path)
    checks = []
    original = selection.RolloutJudge.check

    def recording(self, model, scaler, retries=0, spreads=None, component_correlations=None):
        found = original(self, model, scaler, retries, spreads, component_correlations)
        checks.append((retries, {key: value.clone() for key, value in model.state_dict().items()}, found))
        return found

    monkeypatch.setattr(selection.RolloutJudge, "check", recording)
    train_motion(run, tiny_motion(), replace(RECIPE, select_retries=0), QUIET)
    assert [retries for retries, _, _ in checks] == [0] * RECIPE.epochs  # no redraws when set to 0
    _, _, metadata = load_motion(run)
    assert metadata["selection"]["sampling_retries"] == 0 and metadata["selection"]["sampling_scores"] is None
    assert metadata["test_clips"] == ["take5"]
    assert len(metadata["val_clips"]) == 1 and metadata["val_clips"] != ["take5"]
    checked = [row for row in rows(run) if row["rollout_failed_gates"]]
    assert len(checked) == RECIPE.epochs  # select_every_frames=1: a check after every epoch
    ranks = [(int(row["rollout_failed_gates"]), float(row["rollout_shortfall"]), float(row["rollout_frechet_ratio"]))
             for row in checked]
    best = ranks.index(min(ranks))
    assert metadata["exported_epoch"] == int(checked[best]["epoch"])
    assert metadata["selection"]["by"] == "rollout"
    assert metadata["sampling"]["sigma_temperature"] == float(checked[best]["rollout_sigma_temperature"])
    assert metadata["sampling"]["sigma_temperature"] in RECIPE.select_sigma_temperatures
    assert metadata["sampling"]["noise_correlation"] == float(checked[best]["rollout_noise_correlation"])
    assert metadata["sampling"]["noise_correlation"] in RECIPE.select_noise_correlations
    assert metadata["sampling"]["component_correlation"] == COMPONENT_CORRELATION  # as its checks drew
    assert all(found.component_correlation == COMPONENT_CORRELATION for _, _, found in checks)
    assert all(math.isfinite(float(row["rollout_energy_ratio"])) for row in checked)
    assert all(0 <= float(row["rollout_best_iou"]) <= 1 for row in checked)
    # what `dancenet train motion` prints about it
    line = chosen_epoch(run, "motion")
    assert line.startswith(f"kept epoch {metadata['exported_epoch']}: its dances scored best")
    assert (f"--sigma-temperature {metadata['sampling']['sigma_temperature']:g} "
            f"--noise-correlation {metadata['sampling']['noise_correlation']:g} "
            f"--component-correlation {metadata['sampling']['component_correlation']:g}") in line

    # by default the spread and correlation come from one more check of the kept weights, with
    # the redraws generation makes (whole-body sampling); the epoch is chosen as before
    checks.clear()
    train_motion(run, tiny_motion(), RECIPE, QUIET, name="redrawn")
    model, _, redrawn = load_motion(run, "redrawn")
    assert [retries for retries, _, _ in checks] == [0] * RECIPE.epochs + [RECIPE.select_retries]
    _, weights, final = checks[-1]
    assert all(torch.equal(weights[key], value) for key, value in model.state_dict().items())
    assert redrawn["exported_epoch"] == metadata["exported_epoch"]
    assert redrawn["selection"]["sampling_retries"] == RECIPE.select_retries == 7
    # ... at the kept check's spread, with each noise and each component correlation
    assert redrawn["sampling"]["sigma_temperature"] == final.sigma_temperature == metadata["sampling"]["sigma_temperature"]
    assert redrawn["sampling"]["noise_correlation"] == final.noise_correlation
    assert redrawn["sampling"]["component_correlation"] == final.component_correlation
    assert final.component_correlation in RECIPE.select_component_correlations
    assert redrawn["selection"]["sampling_scores"] == final.columns()
    # a model whose kept dances were mostly broken frames is not checked again (redraws cannot
    # mend noise, and an undertrained model would make the check slow)
    checks.clear()
    monkeypatch.setattr("dancenet.motion.train.REDRAW_ARTIFACTS", -1.0)
    train_motion(run, tiny_motion(), RECIPE, QUIET, name="broken")
    assert [retries for retries, _, _ in checks] == [0] * RECIPE.epochs
    assert load_motion(run, "broken")[2]["selection"]["sampling_retries"] == 0


def test_patience_stops_training_after_that_many_checks_without_a_better_one(tmp_path):
    run = run_with_vae(tmp_path)
    result = train_motion(run, tiny_motion(), replace(RECIPE, epochs=40, patience=2), QUIET)
    _, _, metadata = load_motion(run)
    assert result.stopped == "early" and result.epoch < 40
    assert result.epoch == metadata["exported_epoch"] + 2


def test_without_a_vae_the_held_out_nll_selects_and_a_note_says_why(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz")
    train_motion(run, tiny_motion(), replace(RECIPE, epochs=2, val_clips=1), QUIET)
    assert "selecting the motion model by held-out NLL: no VAE in the run" in capsys.readouterr().err
    _, _, metadata = load_motion(run)
    assert metadata["selection"]["by"] == "nll"
    assert chosen_epoch(run, "motion") == f"kept epoch {metadata['exported_epoch']} (lowest held-out NLL)"
    assert not any(row["rollout_failed_gates"] for row in rows(run))


def test_a_checkpoint_of_the_earlier_version_resumes(tmp_path):
    """A checkpoint holding rollout checks loads (weights_only: plain floats only), and one of the
    earlier version (the best epoch as val_nll, epoch and model; no average) resumes."""
    from dancenet.checkpoint import load_checkpoint, save_checkpoint

    run = run_with_vae(tmp_path)
    first = train_motion(run, tiny_motion(), replace(RECIPE, epochs=4), RunOptions(quiet=True, max_steps=7))
    assert first.stopped == "max_steps"
    path = run / "motion-train" / "checkpoint.pt"
    checkpoint = load_checkpoint(path)
    checkpoint["stage"].pop("averaged")
    checkpoint["stage"]["best"] = {key: checkpoint["stage"]["best"][key] for key in ("val_nll", "epoch", "model")}
    for key in ("select", "select_every_frames", "select_seconds", "select_scored_seconds", "select_seeds",
                "select_sigma_temperatures", "select_noise_correlations", "select_worst_window",
                "select_memorisation", "patience",
                "average_decay", "test_clips"):
        checkpoint["training"].pop(key)
    save_checkpoint(path, checkpoint)
    resumed = train_motion(run, options=RunOptions(quiet=True, resume=True))
    assert resumed.stopped == "finished" and resumed.epoch == 4
    metadata = load_motion(run)[2]
    # it goes on as it began: the lowest held-out NLL, no average, no early stop
    assert metadata["training"]["select"] == "nll" and metadata["training"]["average_decay"] is None
    assert metadata["selection"]["by"] == "nll" and metadata["selection"]["scores"] is None
    nll = [float(row["val_nll_nats_per_frame"]) for row in rows(run)]
    assert metadata["exported_epoch"] == nll.index(min(nll)) + 1


def test_a_run_begun_before_the_best_iou_and_frechet_gates_resumes_without_them(tmp_path):
    """A checkpoint that judged by rollout without ``select_memorisation`` goes on judging as it
    began (its kept check was ranked without those gates); a new run keeps them on resume. The
    same for ``select_component_correlations`` (a run begun before recommends the default) and
    ``select_dancer_energy`` (it holds the energy to the validation clip's)."""
    from dancenet.checkpoint import load_checkpoint, save_checkpoint

    for label, begun_before in (("old", True), ("new", False)):
        (tmp_path / label).mkdir()
        run = run_with_vae(tmp_path / label)
        first = train_motion(run, tiny_motion(), replace(RECIPE, epochs=4), RunOptions(quiet=True, max_steps=7))
        assert first.stopped == "max_steps"
        path = run / "motion-train" / "checkpoint.pt"
        checkpoint = load_checkpoint(path)
        assert checkpoint["training"]["select_memorisation"] is True
        if begun_before:
            checkpoint["training"].pop("select_memorisation")
            checkpoint["training"].pop("select_component_correlations")
            checkpoint["training"].pop("select_dancer_energy")
            save_checkpoint(path, checkpoint)
        train_motion(run, options=RunOptions(quiet=True, resume=True))
        metadata = load_motion(run)[2]
        training = metadata["training"]
        assert training["select"] == "rollout" and training["select_memorisation"] is not begun_before
        assert training["select_dancer_energy"] is not begun_before
        assert training["select_component_correlations"] == ([0.0] if begun_before else [0.0, 0.6])
        if begun_before:
            assert metadata["sampling"]["component_correlation"] == COMPONENT_CORRELATION


def test_clip_settings_that_cannot_work_are_one_line_errors(tmp_path):
    from dancenet.errors import DancenetError

    run = run_with_vae(tmp_path, clips=2, held_out="take1")
    for recipe, message in ((replace(RECIPE, val_clips="take0"), "no clip is left to train on"),
                            (replace(RECIPE, test_clips=1), "test_clips 1: give clip names"),
                            (replace(RECIPE, test_clips="nope"), "test_clips: no clip named nope")):
        with pytest.raises(DancenetError, match=message):
            train_motion(run, tiny_motion(), recipe, QUIET, name="bad")


def test_a_run_without_validation_clips_trains_its_whole_budget(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz", clips=1)
    result = train_motion(run, tiny_motion(), replace(RECIPE, epochs=12, val_clips=0, patience=2), QUIET)
    assert result.stopped == "finished" and result.epoch == 12
    assert load_motion(run)[2]["selection"]["by"] == "last epoch"


def trained_judge(tmp_path, spreads, noise_correlations=(0.0,), centre=False):
    """A run with a VAE and a motion model trained one epoch -> (run, model, scaler, metadata, a
    :class:`RolloutJudge` of 3 s dances, 2 s scored, 2 seeds, at ``spreads`` x ``noise_correlations``
    against the run's validation clips)."""
    run = run_with_vae(tmp_path, centre=centre)
    train_motion(run, tiny_motion(), replace(RECIPE, epochs=1), QUIET)
    model, scaler, metadata = load_motion(run)
    return run, model, scaler, metadata, judge_of(run, metadata, spreads, noise_correlations)


def judge_of(run, metadata, spreads=(1.0,), noise_correlations=(0.0,), mean=None, **options):
    """The :class:`RolloutJudge` of :func:`trained_judge` for a trained ``run`` (its latent means,
    or ``mean`` in their place; ``options``: the judge's keyword options)."""
    from dancenet.motion.selection import RolloutJudge

    latents = load_latents(run / "latents.npz")
    val = [latents.clip_names.index(name) for name in metadata["val_clips"]]
    train = [index for index in range(len(latents.clip_names)) if index not in val]
    mean = torch.from_numpy(latents.mean) if mean is None else mean
    return RolloutJudge(run, mean, latents.clip_ranges(val), latents.clip_ranges(train), metadata["start_latents"],
                        latents.fps, 3.0, 2.0, 2, 1.0, spreads, torch.device("cpu"), noise_correlations, **options)


def test_a_check_holds_the_energy_to_the_dancer_s_training_clips_not_the_validation_clip(tmp_path):
    """The energy a judge holds dances to is the decoded training clips', so training clips that
    never move give 0 whatever the validation clip does; without ``dancer_energy`` there is none,
    and the validation clip's own level is used."""
    from dancenet.evaluate.metrics import motion_energy

    run, model, scaler, metadata, judge_ = trained_judge(tmp_path, (1.0,))
    latents = load_latents(run / "latents.npz")
    val = [latents.clip_names.index(name) for name in metadata["val_clips"]]
    train_ranges = latents.clip_ranges([index for index in range(len(latents.clip_names)) if index not in val])
    mean = torch.from_numpy(latents.mean)
    # a small run's library is every training frame: the energy is theirs, each clip's frames in turn
    changes = np.concatenate([motion_energy(judge_._decode(mean[start:stop])) for start, stop in train_ranges])
    assert len(changes) < selection.LIBRARY_FRAMES and judge_.energy == pytest.approx(changes.mean())
    assert judge_.energy > 0
    still = mean.clone()
    for start, stop in train_ranges:
        still[start:stop] = mean[start]
    stilled = judge_of(run, metadata, mean=still)
    assert stilled.energy == 0.0
    # the same dances: any motion is too much for a dancer who never moves, and fine for this one
    assert stilled.check(model, scaler).scores["energy_ratio"] > 1e6 > judge_.check(model, scaler).scores["energy_ratio"]
    assert stilled.levels.level["motion_energy"]["mean"] == pytest.approx(
        judge_.levels.level["motion_energy"]["mean"])  # the validation clip is as it was
    assert judge_of(run, metadata, dancer_energy=False).energy is None


@pytest.mark.parametrize("centre", [False, True])
def test_a_check_glides_a_centred_vae_s_place_as_generate_does(tmp_path, monkeypatch, centre):
    """With a centred VAE, every step of a check's rollouts glides from the place its row kept the
    step before (the first from its start's), as ``dancenet generate`` draws; with a whole-frame
    VAE no step does."""
    import dancenet.generate

    run, model, scaler, metadata, judge_ = trained_judge(tmp_path, (1.0,), centre=centre)
    places, next_step = [], dancenet.generate.next_step
    monkeypatch.setattr(dancenet.generate, "next_step",
                        lambda *args: places.append(args[-1]) or next_step(*args))
    dances = judge_.rollouts(model, scaler, retries=2)
    assert len(places) == dances.shape[1] == 90
    if not centre:
        assert places == [None] * 90
        return
    starts = torch.as_tensor(metadata["start_latents"], dtype=torch.float32)[:, -1]
    assert all(torch.isclose(place, starts).any() for place in places[0])
    torch.testing.assert_close(torch.stack(places[1:], dim=1), dances[:, :-1, -1])


def test_a_check_dances_every_spread_with_every_noise_and_component_correlation(tmp_path, monkeypatch):
    run, model, scaler, metadata, judge_ = trained_judge(tmp_path, (0.5, 1.0), (0.0, 0.9))
    latents = load_latents(run / "latents.npz")
    assert judge_.samplings == [(0.5, 0.0), (0.5, 0.9), (1.0, 0.0), (1.0, 0.9)]
    dances = judge_.rollouts(model, scaler)
    assert dances.shape == (8, 90, latents.mean.shape[1]) and torch.isfinite(dances).all()
    assert judge_.check(model, scaler).noise_correlation in (0.0, 0.9)

    # with component correlations: every (spread, noise, component) triple, each component in a
    # rollout of its own, so the first component's checks are those of a check without the others;
    # the best of all their checks is the check's
    drawn, judged = [], []
    noise_class, judge_function = selection_mdn.CorrelatedNoise, selection.judge

    class Recording(noise_class):
        def __init__(self, correlation, component_correlation=0.0):
            super().__init__(correlation, component_correlation)
            drawn.append(component_correlation)

    def judging(*args, **kwargs):
        judged.append(judge_function(*args, **kwargs))
        return judged[-1]

    monkeypatch.setattr(selection_mdn, "CorrelatedNoise", Recording)
    monkeypatch.setattr(selection, "judge", judging)
    judge_.check(model, scaler, spreads=(1.0,))
    alone, drawn, judged = judged[:], [], []
    assert len(alone) == 2
    found = judge_.check(model, scaler, spreads=(1.0,), component_correlations=(0.0, 0.6))
    assert drawn == [0.0, 0.6]
    assert len(judged) == 4 and [check.sigma_temperature for check in judged] == [1.0] * 4
    assert all(math.isclose(a, b, rel_tol=0, abs_tol=0) or (math.isnan(a) and math.isnan(b))  # NaN: unmeasured
               for new, old in zip(judged[:2], alone) for a, b in zip(new.scores.values(), old.scores.values()))
    ranks = [check.rank for check in judged]
    best = ranks.index(min(ranks))
    assert found.rank == ranks[best] and found.component_correlation == (0.0, 0.6)[best // 2]
    assert found.noise_correlation == (0.0, 0.9)[best % 2]
    assert found.columns()["rollout_component_correlation"] == found.component_correlation
    from dancenet.errors import DancenetError

    with pytest.raises(DancenetError, match="select_noise_correlations"):
        replace(RECIPE, select_noise_correlations=(0.0, 1.0))
    with pytest.raises(DancenetError, match="select_component_correlations"):
        replace(RECIPE, select_component_correlations=())
