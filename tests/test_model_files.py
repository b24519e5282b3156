"""One model-file format for every model: round trips, version-1 files, bad files, faults."""

import errno
import json

import pytest
import torch

from dancenet.checkpoint import MODEL_FORMAT, load_pretrained, read_model_info
from dancenet.errors import DancenetError
from dancenet.motion.model import LatentScaler, MotionModel, load_motion, preset_config, save_motion
from dancenet.vae import load
from dancenet.vae.model import VAE, save_vae
from dancenet.vae.model import preset_config as vae_preset


def tiny_vae(tmp_path):
    torch.manual_seed(0)
    model = VAE(vae_preset("default", 32, 48, channels=(8, 16), latent_size=8)).eval()
    save_vae(tmp_path, model, {"fps": 25.0, "dataset_hash": "d", "val_clips": ["take1"],
                               "training": {"learning_rate": 0.002}})
    return model


def outputs_equal(first, second):
    latent = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        return torch.equal(first.decode(latent), second.decode(latent))


def test_both_models_share_one_format(tmp_path):
    model = tiny_vae(tmp_path)
    motion = MotionModel(preset_config("default", 8))
    save_motion(tmp_path, motion, LatentScaler.fit("standard", torch.randn(20, 8)), {"fps": 25.0})
    for name in ("vae", "motion"):
        document = json.loads((tmp_path / f"{name}.json").read_text())
        assert (document["format"], document["version"], document["kind"]) == (MODEL_FORMAT, 2, name)
        assert set(document) == {"format", "version", "kind", "config", "metadata"}
    assert "learning_rate" not in json.loads((tmp_path / "vae.json").read_text())["config"]
    loaded = load(tmp_path)
    assert loaded.config == model.config and loaded.metadata["fps"] == 25.0
    assert outputs_equal(model, loaded)
    assert load_motion(tmp_path)[0].config == motion.config
    info = read_model_info(tmp_path, "vae", "vae")  # the JSON half alone, without weights
    assert info.state_dict is None and info.metadata["val_clips"] == ["take1"]
    assert load_pretrained(tmp_path, "vae", "vae").state_dict.keys() == model.state_dict().keys()


def test_version_1_files_still_load(tmp_path):
    model = tiny_vae(tmp_path)
    document = json.loads((tmp_path / "vae.json").read_text())
    metadata = document["metadata"]
    (tmp_path / "vae.json").write_text(json.dumps({
        "format_version": 1, "kind": "vae", **document["config"], **metadata.pop("training"),
        **metadata}))
    loaded = load(tmp_path)
    assert loaded.config == model.config and outputs_equal(model, loaded)
    assert loaded.metadata["val_clips"] == ["take1"]
    assert loaded.metadata["training"] == {"learning_rate": 0.002}
    motion = MotionModel(preset_config("default", 8))
    save_motion(tmp_path, motion, LatentScaler.fit("standard", torch.randn(20, 8)), {"vae_hash": "v"})
    document = json.loads((tmp_path / "motion.json").read_text())
    (tmp_path / "motion.json").write_text(json.dumps({
        "format_version": 1, "format": "dancenet-motion", "config": document["config"],
        **document["metadata"]}))
    reloaded, scaler, metadata = load_motion(tmp_path)
    assert reloaded.config == motion.config and metadata["vae_hash"] == "v"


@pytest.mark.parametrize("document, message", [
    ({"format": MODEL_FORMAT, "version": 3, "kind": "vae", "config": {}, "metadata": {}}, "upgrade dancenet"),
    ({"weights": "elsewhere"}, "no format marker"),
    ({"format": MODEL_FORMAT, "version": 2, "kind": "motion", "config": {}, "metadata": {}}, "not a dancenet vae"),
    ({"format": MODEL_FORMAT, "version": 2, "kind": "vae", "config": {"latent_size": 8, "depth": 9},
      "metadata": {}}, "unknown key depth"),
])
def test_bad_model_files_are_user_errors_naming_the_file(tmp_path, document, message):
    tiny_vae(tmp_path)
    (tmp_path / "vae.json").write_text(json.dumps(document))
    with pytest.raises(DancenetError) as error:
        load(tmp_path)
    assert str(tmp_path / "vae.json") in str(error.value) and message in str(error.value)


def test_weights_that_are_not_finite_are_never_written(tmp_path):
    model = VAE(vae_preset("default", 32, 48, channels=(8, 16), latent_size=8))
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(DancenetError, match="not finite"):
        save_vae(tmp_path, model, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target, number, text", [
    ("save_checkpoint", errno.ENOSPC, "No space left on device"),
    ("MetricsLog.log", errno.EROFS, "Read-only file system"),
])
def test_a_full_disk_or_read_only_folder_is_a_one_line_error_naming_the_folder(
        tmp_path, monkeypatch, target, number, text):
    import sys
    from pathlib import Path

    import dancenet.training as training
    from dancenet.training import RunOptions
    from dancenet.vae.train import VAETraining, train_vae

    sys.path.insert(0, str(Path(__file__).parent))
    from vae_helpers import make_dataset

    def failing(*args, **kwargs):
        raise OSError(number, text)

    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(getattr(training, owner) if owner else training, name, failing)
    data = make_dataset(tmp_path / "data", clips=2, frames=20)
    with pytest.raises(DancenetError, match=f"vae-train: cannot be written .{text}"):
        train_vae(data, tmp_path / "run", vae_preset("default", 32, 48, channels=(8, 16), latent_size=8),
                  VAETraining(epochs=1, batch_size=8), RunOptions(quiet=True))
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_an_earlier_format_is_a_clear_error(tmp_path):
    from dancenet.checkpoint import load_checkpoint

    torch.save({"format_version": 1, "model": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(DancenetError, match="format 1.*--overwrite"):
        load_checkpoint(tmp_path / "checkpoint.pt")
