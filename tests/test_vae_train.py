"""VAE training: learning, exact resume, interruption, NaN guard, save/load, DDP, encode."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dancenet.checkpoint import load_checkpoint
from dancenet.errors import DancenetError
from dancenet.training import RunOptions
from dancenet.vae import encode_frames, load, preset_config, write_latents
from dancenet.vae.train import VAETraining, train_vae
from dancenet.dataset import Dataset

sys.path.insert(0, str(Path(__file__).parent))
from vae_helpers import make_dataset  # noqa: E402




def tiny_config(**overrides):
    values = dict(channels=(8, 16), latent_size=8)
    values.update(overrides)
    return preset_config("default", 32, 48, **values)


def recipe(**overrides):
    values = dict(epochs=3, batch_size=16, learning_rate=3e-3, checkpoint_every=1000,
                  checkpoint_minutes=None)
    values.update(overrides)
    return VAETraining(**values)


QUIET = RunOptions(quiet=True)
RESUME = RunOptions(quiet=True, resume=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "synthetic", clips=3, frames=40)


def test_tiny_model_learns(dataset, tmp_path):
    result = train_vae(dataset, tmp_path / "run", tiny_config(), recipe(epochs=12), QUIET)
    rows = (tmp_path / "run/vae-train/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = [dict(zip(header, row.split(","))) for row in rows[1:]]
    assert len(values) == 12 and result.stopped == "finished"
    assert float(values[-1]["train_loss"]) < 0.6 * float(values[0]["train_loss"])
    assert float(values[-1]["val_loss"]) < float(values[0]["val_loss"])
    assert float(values[-1]["val_iou"]) > float(values[0]["val_iou"])
    assert (tmp_path / "run/vae-train/config.yaml").is_file()
    assert any((tmp_path / "run/vae-train/events").iterdir())


def test_the_soft_iou_weight_trains_and_is_recorded(dataset, tmp_path):
    plain = train_vae(dataset, tmp_path / "plain", tiny_config(), recipe(epochs=1, iou_weight=0.0), QUIET)
    weighted = train_vae(dataset, tmp_path / "iou", tiny_config(), recipe(epochs=1, iou_weight=2.0), QUIET)
    assert plain.stopped == weighted.stopped == "finished"
    first, second = load(tmp_path / "plain"), load(tmp_path / "iou")
    assert first.metadata["training"]["iou_weight"] == 0 and second.metadata["training"]["iou_weight"] == 2
    changed = [not torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                     second.state_dict().values())]
    assert any(changed)
    # validation reports the plain ELBO, without the term
    header, *rows = (tmp_path / "iou/vae-train/metrics.csv").read_text().splitlines()
    last = dict(zip(header.split(","), map(float, rows[-1].split(","))))
    assert last["val_loss"] == pytest.approx(last["val_reconstruction"] + last["val_kl"], rel=1e-4)


def test_a_centred_vae_takes_its_window_from_the_training_frames(dataset, tmp_path):
    from dancenet.vae.train import CENTRE_MARGIN, centre_width_for

    data = Dataset(dataset)
    frames = data.frames_at(np.arange(data.clips[0].start, data.clips[1].stop))  # take0, take1
    columns = np.arange(data.width)
    reach = 0
    for frame in frames:
        profile = frame.sum(axis=0)
        centre = np.floor(profile @ columns / profile.sum() + 0.5)
        reach = max(reach, int(np.abs(columns[profile > 0] - centre).max()))
    expected = min(-(-2 * (reach + CENTRE_MARGIN) // 8) * 8, data.width)
    assert centre_width_for(data, np.arange(len(frames)), 8) == expected < data.width
    result = train_vae(dataset, tmp_path / "run", tiny_config(centre=True), recipe(epochs=12, val_clips="take2"), QUIET)
    centred = load(tmp_path / "run")
    assert centred.config.centre_width == expected  # the held-out take2 not counted
    # and it learns: better than the whole-frame model on the same recipe (0.55 against 0.49)
    whole = train_vae(dataset, tmp_path / "whole", tiny_config(), recipe(epochs=12, val_clips="take2"), QUIET)
    assert result.metrics["val_iou"] > whole.metrics["val_iou"] > 0.3
    wide = make_dataset(tmp_path / "wide", clips=1, frames=3)
    Path(wide, "frames.bin").write_bytes(np.packbits(np.ones((3, 32, 48), bool), axis=-1).tobytes())
    assert centre_width_for(Dataset(wide), np.arange(3), 8) == 48  # never wider than the frame


def test_resume_after_interruption_equals_uninterrupted(dataset, tmp_path):
    whole = train_vae(dataset, tmp_path / "whole", tiny_config(), recipe(), QUIET)
    first = train_vae(dataset, tmp_path / "split", tiny_config(), recipe(checkpoint_every=3),
                      RunOptions(quiet=True, max_steps=7))
    assert first.stopped == "max_steps" and first.step == 7
    # weights_only loading works on the raw file
    torch.load(tmp_path / "split/vae-train/checkpoint.pt", weights_only=True)
    resumed = train_vae(dataset, tmp_path / "split", None, None, RESUME)
    assert resumed.step == whole.step and resumed.stopped == "finished"
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6)
    whole_rows = (tmp_path / "whole/vae-train/metrics.csv").read_text().splitlines()
    split_rows = (tmp_path / "split/vae-train/metrics.csv").read_text().splitlines()
    assert len(whole_rows) == len(split_rows)


def test_signal_saves_a_checkpoint_and_stops(dataset, tmp_path, monkeypatch):
    import dancenet.vae.train as train_module

    original = train_module._noise_generator

    def interrupting(seed, rank, step, device):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)
        return original(seed, rank, step, device)

    monkeypatch.setattr(train_module, "_noise_generator", interrupting)
    previous = signal.getsignal(signal.SIGTERM)
    result = train_vae(dataset, tmp_path / "run", tiny_config(), recipe(), QUIET)
    assert result.stopped == f"signal:{int(signal.SIGTERM)}" and result.step == 4
    assert load_checkpoint(tmp_path / "run/vae-train/checkpoint.pt")["step"] == 4
    assert signal.getsignal(signal.SIGTERM) == previous


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    import dancenet.vae.train as train_module

    original = train_module.vae_loss
    calls = {"count": 0}

    def poisoned(*args, **kwargs):
        calls["count"] += 1
        total, reconstruction, kl = original(*args, **kwargs)
        return (total * float("nan") if calls["count"] > 5 else total), reconstruction, kl

    monkeypatch.setattr(train_module, "vae_loss", poisoned)
    with pytest.raises(DancenetError, match="step 5.*last good checkpoint.*step 5"):
        train_vae(dataset, tmp_path / "run", tiny_config(), recipe(checkpoint_every=5), QUIET)
    checkpoint = load_checkpoint(tmp_path / "run/vae-train/checkpoint.pt")
    assert checkpoint["step"] == 5  # the checkpoint before the bad step
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values())
    assert load(tmp_path / "run").vae_hash  # the model file of that step still loads


def test_diverged_weights_are_never_saved(dataset, tmp_path, monkeypatch):
    import dancenet.vae.train as train_module

    original = train_module.VAEStage.train_step

    def exploding(self, step, position):
        loss = original(self, step, position)
        if step == 6:  # a finite loss, but the weights blow up in this update
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return loss

    monkeypatch.setattr(train_module.VAEStage, "train_step", exploding)
    with pytest.raises(DancenetError, match="weights became NaN or infinite at step 7.*step 6"):
        train_vae(dataset, tmp_path / "run", tiny_config(), recipe(checkpoint_every=1), QUIET)
    checkpoint = load_checkpoint(tmp_path / "run/vae-train/checkpoint.pt")
    assert checkpoint["step"] == 6
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values())


def test_an_error_before_the_first_checkpoint_leaves_no_run_folder(dataset, tmp_path, monkeypatch):
    import dancenet.vae.train as train_module

    def poisoned(*args, **kwargs):
        raise DancenetError("disk on fire")

    monkeypatch.setattr(train_module, "vae_loss", poisoned)
    with pytest.raises(DancenetError, match="disk on fire"):
        train_vae(dataset, tmp_path / "run", tiny_config(), recipe(), QUIET)
    assert not (tmp_path / "run").exists()


def test_saved_model_loads_back_identically(dataset, tmp_path):
    result = train_vae(dataset, tmp_path / "run", tiny_config(), recipe(epochs=1), QUIET)
    vae = load(tmp_path / "run")
    digest = hashlib.sha256((tmp_path / "run/vae.safetensors").read_bytes()).hexdigest()
    assert vae.vae_hash == digest and vae.config == result.model.config
    frames = torch.from_numpy(Dataset(dataset).frames(0, 5))
    result.model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(vae.encode(frames).loc, result.model.encode(frames).loc)
        latent = torch.randn(2, vae.config.latent_size)
        torch.testing.assert_close(vae.decode(latent), result.model.decode(latent))


def test_encode_writes_latents_and_refuses_another_frame_size(dataset, tmp_path):
    train_vae(dataset, tmp_path / "run", tiny_config(), recipe(epochs=1), QUIET)
    path = write_latents(tmp_path / "run", dataset, quiet=True)
    latents = np.load(path)
    data = Dataset(dataset)
    assert latents["mean"].shape == latents["log_var"].shape == (len(data), 8)
    assert latents["mean"].dtype == np.float32
    assert list(latents["clip_names"]) == [clip.name for clip in data.clips]
    assert latents["clip_stops"].tolist() == [clip.stop for clip in data.clips]
    assert str(latents["dataset_hash"]) == data.manifest_hash
    assert str(latents["vae_hash"]) == load(tmp_path / "run").vae_hash
    expected, _ = encode_frames(load(tmp_path / "run"), data, batch_size=7, quiet=True)
    np.testing.assert_allclose(latents["mean"], expected, atol=1e-5)
    other = make_dataset(tmp_path / "other", height=40, width=48, clips=1, frames=4)
    with pytest.raises(DancenetError, match="48x40"):
        write_latents(tmp_path / "run", other, quiet=True)
    with pytest.raises(DancenetError, match="48x40"):
        train_vae(other, tmp_path / "new", tiny_config(), recipe(epochs=1), QUIET)


def test_bad_runs_and_checkpoints_are_user_errors(dataset, tmp_path):
    with pytest.raises(DancenetError, match="no such run"):
        load(tmp_path / "missing")
    with pytest.raises(DancenetError, match="no checkpoint to resume"):
        train_vae(dataset, tmp_path / "missing", None, None, RESUME)
    assert not (tmp_path / "missing").exists()
    train_vae(dataset, tmp_path / "run", tiny_config(), recipe(epochs=1), QUIET)
    with pytest.raises(DancenetError, match="already holds"):
        train_vae(dataset, tmp_path / "run", tiny_config(), recipe(epochs=1), QUIET)
    checkpoint = tmp_path / "run/vae-train/checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(DancenetError, match="corrupt or truncated"):
        train_vae(dataset, tmp_path / "run", None, None, RESUME)
    weights = tmp_path / "run/vae.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(DancenetError, match="corrupt or truncated"):
        load(tmp_path / "run")


WORKER = """
import sys
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from dancenet.training import RunOptions
from dancenet.vae import preset_config
from dancenet.vae.train import VAETraining, train_vae

dataset, run, out = sys.argv[1:4]
config = preset_config("default", 32, 48, channels=(8, 16), latent_size=8)
result = train_vae(dataset, run, config, VAETraining(epochs=1, batch_size=16),
                   RunOptions(max_steps=3, quiet=True))
rank = int(__import__("os").environ["RANK"])
save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
"""


def test_two_process_ddp_ranks_hold_identical_weights(dataset, tmp_path):
    from safetensors.torch import load_file

    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(WORKER))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "THP_MEM_ALLOC_ENABLE": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(worker), str(dataset), str(tmp_path / "run"), str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in (0, 1))
    assert first.keys() == second.keys()
    # BatchNorm running statistics are buffers each rank updates from its own shard (rank 0's
    # are saved); the trained parameters must agree exactly.
    parameters = [name for name in first if not name.endswith(("running_mean", "running_var",
                                                                  "num_batches_tracked"))]
    assert len(parameters) > 10
    for name in parameters:
        assert torch.equal(first[name], second[name]), name
    # rank 0 wrote the run; the weights moved from their initialisation
    assert load_checkpoint(tmp_path / "run/vae-train/checkpoint.pt")["step"] == 3
    saved = load(tmp_path / "run").state_dict()
    for name in first:
        torch.testing.assert_close(saved[name], first[name])


def test_augmentation_mirrors_zooms_turns_and_stays_binary_and_reproducible():
    from dancenet.vae.augment import augment

    frames = torch.zeros(32, 1, 40, 60)
    frames[..., 10:30, 12:22] = 1  # a 20x10 upright bar left of centre
    area = frames[0].sum()

    def draw(seed, **options):
        settings = dict(flip=False, shift=0)
        settings.update(options)
        return augment(frames, torch.Generator().manual_seed(seed), **settings)

    mirrored = draw(0, flip=True)
    columns = mirrored[:, 0].sum(1).nonzero()[:, 1].view(32, -1)
    on_right = (columns.min(1).values == 60 - 22)
    assert 4 < on_right.sum() < 28 and (columns.min(1).values[~on_right] == 12).all()

    zoomed = draw(1, scale=0.2)
    ratios = zoomed.sum((1, 2, 3)) / area
    assert ratios.min() > 0.8 ** 2 * 0.85 and ratios.max() < 1.2 ** 2 * 1.15 and ratios.std() > 0.05

    turned = draw(2, rotate=30)
    ratios = turned.sum((1, 2, 3)) / area
    assert (ratios - 1).abs().max() < 0.15
    widths = (turned[:, 0].sum(1) > 0).sum(1)
    assert widths.max() > 14  # a bar turned by up to 30 degrees covers more columns than its 10

    for result in (mirrored, zoomed, turned, draw(3, flip=True, shift=3, scale=0.1, rotate=10)):
        assert result.shape == frames.shape and set(result.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(draw(3, flip=True, shift=3, scale=0.1, rotate=10),
                       draw(3, flip=True, shift=3, scale=0.1, rotate=10))
    assert torch.equal(draw(4), frames)
