"""Motion model: step-by-step equals a full pass, save/load, training, resuming, recipes, CLI errors."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dancenet.cli import main
from dancenet.errors import DancenetError
from dancenet.latents import load_latents
from dancenet.motion.batches import split_clips, stream_batches, stride_clips
from dancenet.motion.model import (PRESETS, LatentScaler, MotionConfig, MotionModel,
                                   count_parameters, load_motion, preset_config, save_motion,
                                   validation_nll)
from dancenet.motion.recipe import MotionTraining, load_recipe, preset_training
from dancenet.motion.train import train_motion
from dancenet.training import RunOptions

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write_latents(path, clips=4, length=90, size=6, seed=0, fps=30.0, vae_hash="v1"):
    """Smooth oscillating latent trajectories, one per clip, as `dancenet encode` would write."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(3, size))
    pieces = []
    for _ in range(clips):
        time = np.arange(length)[:, None] / fps
        waves = np.sin(2 * np.pi * np.array([0.7, 1.3, 2.1]) * time + rng.uniform(0, 6, 3))
        pieces.append(waves @ basis + 0.03 * rng.normal(size=(length, size)))
    mean = np.concatenate(pieces).astype(np.float32)
    np.savez(path, mean=mean, log_var=np.full_like(mean, -5.0),
             clip_names=np.array([f"take{index}" for index in range(clips)]),
             clip_starts=np.arange(clips) * length, clip_stops=np.arange(1, clips + 1) * length,
             fps=np.float64(fps), vae_hash=np.array(vae_hash), dataset_hash=np.array("d1"))
    return path


TINY = dict(hidden_size=24, num_layers=2, num_mixtures=3)
QUIET = RunOptions(quiet=True)


def tiny_motion(preset="default", **overrides):
    return replace(preset_config(preset, 6), **{**TINY, **overrides})


@pytest.mark.parametrize("config", [
    MotionConfig(latent_size=5, **TINY),
    MotionConfig(latent_size=5, cell="gru", dense_size=16, **TINY),
    replace(PRESETS["dancenet-2018"], latent_size=5, hidden_size=16, dense_size=20),
])
def test_stateful_steps_equal_a_full_sequence_pass(config):
    torch.manual_seed(0)
    model = MotionModel(config).eval()
    inputs = torch.randn(3, 17, 5)
    with torch.no_grad():
        full, _ = model(inputs)
        state, steps = None, []
        for index in range(inputs.shape[1]):
            params, state = model.step(inputs[:, index], state)
            steps.append(params)
        # and the sequence cut in two pieces with the state carried between them
        first, carried = model(inputs[:, :9])
        second, _ = model(inputs[:, 9:], carried)
    for field_index, name in enumerate(full._fields):
        stepped = torch.stack([params[field_index] for params in steps], dim=1)
        torch.testing.assert_close(stepped, full[field_index], atol=1e-5, rtol=1e-5, msg=name)
        pieces = torch.cat([first[field_index], second[field_index]], dim=1)
        torch.testing.assert_close(pieces, full[field_index], atol=1e-5, rtol=1e-5, msg=name)


def test_the_2018_preset_has_the_original_architecture():
    config = preset_config("dancenet-2018", 128)
    model = MotionModel(config)
    lstm = 4 * 512 * (128 + 512 + 2) + 2 * 4 * 512 * (512 + 512 + 2)  # torch keeps two biases
    dense = 512 * 1000 + 1000
    head = 1000 * (24 + 2 * 24 * 128) + (24 + 2 * 24 * 128)
    assert count_parameters(model) == lstm + dense + head
    assert (config.num_layers, config.dropout, config.num_mixtures, config.stateless) == (3, 0.4, 24, True)
    train = preset_training("dancenet-2018")
    assert (train.learning_rate, train.batch_size, train.sequence_length) == (5e-4, 1024, 1)


def test_save_load_round_trip(tmp_path):
    config = MotionConfig(latent_size=4, **TINY)
    model = MotionModel(config).eval()
    latents = torch.randn(50, 4) * 3 + 1
    scaler = LatentScaler.fit("standard", latents)
    save_motion(tmp_path, model, scaler, {"vae_hash": "abc", "fps": 30.0})
    loaded, loaded_scaler, metadata = load_motion(tmp_path)
    assert loaded.config == config and metadata["vae_hash"] == "abc"
    inputs = torch.randn(2, 7, 4)
    with torch.no_grad():
        for expected, actual in zip(model(inputs)[0], loaded(inputs)[0]):
            assert torch.equal(expected, actual)
    torch.testing.assert_close(loaded_scaler.denormalise(loaded_scaler.normalise(latents)), latents)
    assert loaded_scaler.normalise(latents).std(0).sub(1).abs().max() < 1e-4


def test_clip_split_and_windows_never_mix_clips(tmp_path):
    latents = load_latents(write_latents(tmp_path / "latents.npz", clips=5, length=60))
    train, validation = split_clips(latents, 2)
    assert len(validation) == 2 and not set(train) & set(validation)
    assert split_clips(latents, "take1,take3")[1] == [1, 3]
    ranges = [(int(latents.offsets[i]), int(latents.offsets[i + 1])) for i in train]
    plan = list(stream_batches(ranges, 4, 16, torch.Generator().manual_seed(0)))
    for windows, _ in plan:
        for window in windows.tolist():
            assert any(start <= window[0] and window[-1] < stop for start, stop in ranges)
            assert window == list(range(window[0], window[0] + 17))


def test_training_learns_and_resuming_equals_an_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz")
    recipe = MotionTraining(epochs=20, batch_size=4, sequence_length=16, val_clips=1,
                            learning_rate=1e-2, input_noise=0.05, latent_source="sample",
                            keep_best=False)
    untrained = MotionModel(MotionConfig(latent_size=6, **TINY))
    full = train_motion(run, tiny_motion(), recipe, QUIET)
    reference, scaler, metadata = load_motion(run)
    assert metadata["vae_hash"] == "v1" and metadata["val_clips"] == ["take2"]
    # learning: the held-out NLL is far below an untrained model's
    latents = torch.from_numpy(load_latents(run / "latents.npz").mean)
    held_out = [(180, 270)]
    nll = full.metrics["val_nll_nats_per_frame"]
    assert nll == pytest.approx(validation_nll(reference, scaler, latents, held_out), rel=1e-5)
    assert nll < validation_nll(untrained, scaler, latents, held_out) - 5
    # interrupted after 7 steps (mid-epoch, with carried state), then resumed
    first = train_motion(run, tiny_motion(), recipe, RunOptions(quiet=True, max_steps=7), name="split")
    assert first.stopped == "max_steps" and first.step == 7
    resumed = train_motion(run, options=RunOptions(quiet=True, resume=True), name="split")
    assert resumed.step == full.step
    split, _, _ = load_motion(run, "split")
    for key, value in reference.state_dict().items():
        assert torch.equal(value, split.state_dict()[key]), key
    metrics = (run / "split-train" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in metrics[1:]] == [str(epoch) for epoch in range(1, recipe.epochs + 1)]


def test_a_strided_model_trains_on_every_phase_and_holds_out_whole_clips(tmp_path):
    latents = load_latents(write_latents(tmp_path / "latents.npz", clips=4, length=91))
    strided, train, validation, test = stride_clips(latents, 3, [0, 2], [1], [3])
    assert strided.fps == 10.0
    names = strided.clip_names
    assert [names[i] for i in train] == ["take0", "take0~1", "take0~2", "take2", "take2~1", "take2~2"]
    assert [names[i] for i in validation] == ["take1"] and [names[i] for i in test] == ["take3"]
    # a training clip's phases hold each of its frames once; a held-out clip keeps its first phase
    rows = np.concatenate([strided.mean[slice(*strided.clip_rows(name))]
                           for name in ("take0", "take0~1", "take0~2")])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, latents.mean[:91].tolist()))
    np.testing.assert_array_equal(strided.mean[slice(*strided.clip_rows("take1"))], latents.mean[91:182:3])
    assert stride_clips(latents, 1, [0, 2], [1], [3])[0] is latents
    # trained at a stride: the file records the video's rate and the stride, and the held-out NLL
    # evaluate reports is the training's (the model reads every third frame there too)
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz", clips=4, length=150)
    recipe = MotionTraining(epochs=3, batch_size=4, sequence_length=12, val_clips="take1",
                            keep_best=False)
    result = train_motion(run, tiny_motion(frame_stride=3), recipe, QUIET)
    model, scaler, metadata = load_motion(run)
    assert model.config.frame_stride == 3 and metadata["fps"] == 30.0
    assert metadata["val_clips"] == ["take1"] and len(metadata["start_latents"]) == 9
    every_third = torch.from_numpy(load_latents(run / "latents.npz").mean[150:300:3])
    assert result.metrics["val_nll_nats_per_frame"] == pytest.approx(
        validation_nll(model, scaler, every_third, [(0, 50)]), rel=1e-5)
    with pytest.raises(DancenetError, match="frame_stride"):
        tiny_motion(frame_stride=0)


def test_keep_best_exports_the_epoch_with_the_lowest_held_out_nll(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz")
    recipe = MotionTraining(epochs=6, batch_size=4, sequence_length=16, val_clips=1,
                            learning_rate=3e-2, keep_best=True)
    train_motion(run, tiny_motion(), recipe, QUIET)
    _, _, metadata = load_motion(run)
    rows = (run / "motion-train" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = [float(dict(zip(header, row.split(",")))["val_nll_nats_per_frame"]) for row in rows[1:]]
    best = int(np.argmin(values))
    assert metadata["exported_epoch"] == best + 1
    assert metadata["val_nll_nats_per_frame"] == pytest.approx(values[best], rel=1e-4)


def test_the_2018_preset_trains_one_frame_at_a_time(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_latents(run / "latents.npz")
    recipe = preset_training("dancenet-2018", epochs=2, batch_size=64)
    config = replace(preset_config("dancenet-2018", 6), hidden_size=16, dense_size=20)
    result = train_motion(run, config, recipe, QUIET, name="baseline")
    model, scaler, metadata = load_motion(run, "baseline")
    assert model.config.stateless and scaler.kind == "minmax" and result.step == 2 * -(-3 * 89 // 64)
    assert np.isfinite(result.metrics["val_nll_nats_per_frame"])


def test_recipes_in_configs_match_the_presets():
    for preset, filename in (("default", "motion-default.yaml"),
                             ("dancenet-2018", "motion-dancenet-2018.yaml")):
        model, training = load_recipe(CONFIGS / filename)
        assert model == PRESETS[preset], filename
        assert training == preset_training(preset), filename


def test_the_bundled_recipe_is_the_bundled_models():
    """configs/motion-salsa-bundled.yaml retrains the bundle: its model and training are what the
    bundled motion.json records (as the model file writes them: ``config.to_dict``), but for the
    checks added since the bundle was trained, which it trained without (``EARLIER_VERSION``: the
    energy held to the validation take's, README "The bundled model")."""
    import json

    from dancenet.config import to_dict
    from dancenet.generate import bundled_directory
    from dancenet.motion.train import EARLIER_VERSION

    model, training = load_recipe(CONFIGS / "motion-salsa-bundled.yaml")
    info = json.loads((bundled_directory() / "motion.json").read_text())
    recipe, bundled = to_dict(training), info["metadata"]["training"]
    newer = sorted(set(recipe) - set(bundled))
    assert newer == ["select_dancer_energy"]  # nothing else differs, and no field the recipe lacks
    assert recipe == {**bundled, **{key: recipe[key] for key in newer}}
    assert EARLIER_VERSION["select_dancer_energy"] is False  # what a model trained before it used
    assert {**to_dict(model), "latent_size": info["config"]["latent_size"]} == info["config"]


def test_cli_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "motion", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "latents.npz" in capsys.readouterr().err
    (tmp_path / "latents.npz").write_bytes(b"not a zip")
    assert main(["train", "motion", str(tmp_path), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dancenet: error:") and len(error.strip().splitlines()) == 1
    write_latents(tmp_path / "latents.npz")
    assert main(["train", "motion", str(tmp_path), "--val-clips", "nosuchclip", "--quiet"]) == 2
    assert main(["train", "motion", str(tmp_path), "--epochs", "0", "--quiet"]) == 2
    assert main(["train", "motion", str(tmp_path), "--resume", "--quiet"]) == 2
    capsys.readouterr()
    assert main(["train", "motion", str(tmp_path), "--resume", "--learning-rate", "0.1", "--quiet"]) == 2
    assert "--learning-rate cannot change it" in capsys.readouterr().err
    for name in ("../x", "/tmp/x", "a/b", ".hidden", ""):
        assert main(["train", "motion", str(tmp_path), "--name", name, "--quiet"]) == 2
        assert "not a path" in capsys.readouterr().err
    assert main(["train", "motion", str(tmp_path), "--device", "bogus", "--quiet"]) == 2
    assert "--device bogus" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "motion", str(tmp_path), "--device", "cuda", "--quiet"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latents.npz"]


def test_an_existing_motion_model_is_replaced_only_with_overwrite(tmp_path, capsys):
    write_latents(tmp_path / "latents.npz")
    recipe = tmp_path.parent / f"{tmp_path.name}-tiny.yaml"
    recipe.write_text("model: {hidden_size: 16, num_layers: 1, num_mixtures: 2}\n"
                      "training: {epochs: 1, batch_size: 4, sequence_length: 16}\n")
    tiny = ["--config", str(recipe), "--quiet"]
    assert main(["train", "motion", str(tmp_path), *tiny]) == 0
    before = (tmp_path / "motion.safetensors").read_bytes()
    assert main(["train", "motion", str(tmp_path), *tiny, "--seed", "3"]) == 2
    assert "already holds a trained motion model" in capsys.readouterr().err
    assert (tmp_path / "motion.safetensors").read_bytes() == before
    assert main(["train", "motion", str(tmp_path), *tiny, "--seed", "3", "--overwrite"]) == 0
    assert (tmp_path / "motion.safetensors").read_bytes() != before
