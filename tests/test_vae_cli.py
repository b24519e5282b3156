"""`dancenet train vae`, `encode` and `reconstruct` through the real command line."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from vae_helpers import make_dataset  # noqa: E402


TINY = ["--batch-size", "16", "--latent-size", "8", "--quiet"]


def main(argv):
    from dancenet.cli import main as cli_main

    return cli_main([str(part) for part in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset and a run trained on it for one epoch through the CLI, with a tiny recipe."""
    root = tmp_path_factory.mktemp("cli")
    dataset = make_dataset(root / "data", clips=2, frames=24)
    recipe = root / "tiny.yaml"
    recipe.write_text("preset: default\nmodel:\n  channels: [8, 16]\ntraining:\n  epochs: 2\n")
    assert main(["train", "vae", dataset, "--out", root / "run", "--config", recipe, *TINY]) == 0
    return dataset, root / "run", recipe


def test_train_encode_reconstruct(trained, tmp_path, capsys):
    dataset, run, recipe = trained
    assert (run / "vae.safetensors").is_file() and (run / "vae-train/metrics.csv").is_file()
    assert main(["encode", run, dataset, "--quiet"]) == 0
    latents = np.load(run / "latents.npz")
    assert latents["mean"].shape == (48, 8)
    # and every frame as filmed, as the copy guard compares it: 1/4 resolution counts of dancer pixels
    from dancenet.dataset import Dataset

    frames = Dataset(dataset).frames(0, 48).astype(bool)
    assert latents["footage"].shape == (48, 8, 12) and latents["footage"].dtype == np.uint8
    blocks = frames.reshape(48, 8, 4, 12, 4).sum(axis=(2, 4))
    np.testing.assert_array_equal(latents["footage"], blocks)
    output = tmp_path / "recon.mp4"
    assert main(["reconstruct", run, dataset, "-o", output]) == 0
    assert "mean IoU" in capsys.readouterr().out

    import av

    with av.open(str(output)) as container:
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert len(frames) == 48 and frames[0].shape == (32, 96)  # input | reconstruction
    assert not list(tmp_path.glob("*partial*"))


def test_resume_continues_and_extends(trained):
    dataset, run, _ = trained
    assert main(["train", "vae", dataset, "--out", run, "--resume", "--epochs", "3", "--quiet"]) == 0
    rows = (run / "vae-train/metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


@pytest.mark.parametrize("arguments,message", [
    (["train", "vae", "{tmp}/nothing", "--out", "{tmp}/run"], "no such dataset"),
    (["train", "vae", "{data}", "--out", "{tmp}/run", "--preset", "dancenet-2018"], "208x120"),
    (["train", "vae", "{data}", "--out", "{run}"], "already holds a trained VAE"),
    (["train", "vae", "{data}", "--out", "{tmp}/fresh", "--resume"], "no checkpoint to resume"),
    (["train", "vae", "{data}", "--out", "{run}", "--resume", "--batch-size", "8"],
     "--batch-size cannot change it"),
    (["train", "vae", "{data}", "--out", "{run}", "--resume", "--overwrite"], "choose one"),
    (["train", "vae", "{data}", "--out", "{tmp}/run", "--device", "bogus"], "--device bogus"),
    (["train", "vae", "{data}", "--out", "{tmp}/run", "--config", "{data}/manifest.json"],
     "unknown key"),
    (["train", "vae", "{data}", "--out", "{tmp}/run", "--config", "{tmp}/none.yaml"], "no such recipe"),
    (["train", "vae", "{data}", "--out", "{tmp}/run", "--val-clips", "nope"], "no clip named"),
    (["encode", "{tmp}/missing", "{data}"], "no such run"),
    (["encode", "{run}", "{other}"], "48x40"),
    (["reconstruct", "{run}", "{data}", "-o", "{tmp}/out.gif"], ".mp4"),
    (["reconstruct", "{run}", "{tmp}/nothing", "-o", "{tmp}/out.mp4"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys, arguments, message):
    dataset, run, _ = trained
    other = make_dataset(tmp_path / "other", height=40, width=48, clips=1, frames=3)
    values = {"tmp": tmp_path, "data": dataset, "run": run, "other": other}
    argv = [part.format(**values) for part in arguments] + ["--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("dancenet: error:") and message in error[0]
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.gif").exists()
    assert not (tmp_path / "run").exists() and not (tmp_path / "fresh").exists()


def test_a_recipe_with_a_negative_iou_weight_is_exit_2(trained, tmp_path, capsys):
    dataset, _, _ = trained
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("preset: default\ntraining:\n  iou_weight: -1\n")
    assert main(["train", "vae", dataset, "--out", tmp_path / "run", "--config", recipe, "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "iou_weight" in error[0] and str(recipe) in error[0]
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint_on_resume_is_exit_2(trained, tmp_path, capsys):
    import shutil

    dataset, run, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    checkpoint = copy / "vae-train/checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    assert main(["train", "vae", dataset, "--out", copy, "--resume", "--quiet"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_a_run_writes_its_recipe_and_the_recipe_trains_the_same_model(trained, tmp_path):
    import json

    dataset, run, _ = trained
    assert main(["train", "vae", dataset, "--out", tmp_path / "again", "--config",
                 run / "vae-train/config.yaml", "--epochs", "1", "--quiet"]) == 0
    first, second = (json.loads((folder / "vae.json").read_text()) for folder in (run, tmp_path / "again"))
    assert first["config"] == second["config"]
    first["metadata"]["training"].pop("epochs")
    second["metadata"]["training"].pop("epochs")
    assert first["metadata"]["training"] == second["metadata"]["training"]
    assert first["metadata"]["val_clips"] == second["metadata"]["val_clips"]
