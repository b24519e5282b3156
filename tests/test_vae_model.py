"""The VAE models, objective and metric: shapes, parameter counts, math against torch."""

import math

import numpy as np
import pytest
import torch

from dancenet.errors import DancenetError
from dancenet.training import capture_rng_states, learning_rate_at, restore_rng_states
from dancenet.vae.loss import (intersection_over_union, kl_divergence, reconstruction_loss, soft_iou_loss,
                               vae_loss)
from dancenet.vae.model import VAE, VAEConfig, preset_config




def tiny(**overrides):
    values = dict(channels=(8, 16), latent_size=8)
    values.update(overrides)
    return preset_config("default", 32, 48, **values)


def test_2018_preset_has_the_original_parameter_counts_and_shapes():
    torch.manual_seed(0)
    vae = VAE(preset_config("dancenet-2018", 120, 208))
    assert vae.parameter_counts() == (1_724_128, 1_744_545)
    assert vae.config.latent_size == 128
    frames = torch.rand(1, 1, 120, 208)
    with torch.inference_mode():
        posterior = vae.encode(frames)
        assert posterior.loc.shape == posterior.scale.shape == (1, 128)
        decoded = vae.decode(posterior.loc)
        output, mean, log_var = vae(frames)
    assert decoded.shape == (1, 120, 208) and decoded.dtype == torch.float32
    assert 0 <= decoded.min() and decoded.max() <= 1
    assert output.shape == (1, 1, 120, 208) and mean.shape == log_var.shape == (1, 128)


@pytest.mark.parametrize("height,width", [(32, 48), (37, 50)])
def test_default_preset_shapes_for_any_frame_size(height, width):
    torch.manual_seed(0)
    vae = VAE(preset_config("default", height, width, channels=(8, 16), latent_size=6))
    uint8_frames = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (1, height, width),
                                                                      dtype=np.uint8))
    with torch.inference_mode():
        from_uint8 = vae.encode(uint8_frames)
        from_float = vae.encode(uint8_frames.float().unsqueeze(1))
        decoded = vae.decode(from_uint8.loc)
        output, mean, _ = vae(uint8_frames.float().unsqueeze(1))
    assert from_uint8.loc.shape == (1, 6)
    torch.testing.assert_close(from_uint8.loc, from_float.loc)
    assert decoded.shape == (1, height, width) and 0 <= decoded.min() and decoded.max() <= 1
    assert output.shape == (1, 1, height, width) and mean.shape == (1, 6)


@pytest.mark.parametrize("config", [tiny(), preset_config("dancenet-2018", 120, 208)], ids=["default", "2018"])
def test_silhouettes_are_the_decoded_frames_cut_at_one_half(config):
    torch.manual_seed(0)
    vae = VAE(config).eval()
    latents = torch.randn(3, config.latent_size) * 3
    with torch.inference_mode():
        probabilities, shapes = vae.decode(latents), vae.silhouettes(latents)
    assert shapes.dtype == torch.bool and shapes.shape == (3, config.height, config.width)
    assert shapes.any() and not shapes.all()  # some pixels on each side of the cut
    assert torch.equal(shapes, probabilities > 0.5)


def test_bf16_autocast_only_where_the_hardware_computes_bf16(monkeypatch):
    import dancenet.vae.model as model_module

    torch.manual_seed(0)
    fast, exact = VAE(tiny(bf16=True)).eval(), VAE(tiny(bf16=False)).eval()
    exact.load_state_dict(fast.state_dict())
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (4, 32, 48), dtype=np.uint8))
    with torch.inference_mode():
        monkeypatch.setattr(model_module, "native_bf16", lambda device: False)
        assert torch.equal(fast.encode(frames).loc, exact.encode(frames).loc)
        monkeypatch.setattr(model_module, "native_bf16", lambda device: True)
        low, full = fast.encode(frames).loc, exact.encode(frames).loc
        assert low.dtype == torch.float32 and not torch.equal(low, full)
        torch.testing.assert_close(low, full, atol=0.05, rtol=0.05)
        torch.testing.assert_close(fast.decode(full), exact.decode(full), atol=0.02, rtol=0.05)


def test_2018_preset_refuses_other_frame_sizes_and_latent_sizes():
    with pytest.raises(DancenetError, match="208x120"):
        preset_config("dancenet-2018", 32, 48)
    with pytest.raises(DancenetError, match="latent size"):
        preset_config("dancenet-2018", 120, 208, latent_size=16)


@pytest.mark.parametrize("bad", [dict(latent_size=0), dict(channels=()), dict(preset="huge"),
                                 dict(normalization="layer"), dict(patch_size=0),
                                 dict(centre=True, latent_size=1), dict(centre_width=-4)])
def test_config_is_validated_on_construction(bad):
    values = dict(height=32, width=48)
    values.update(bad)
    with pytest.raises(DancenetError):
        VAEConfig(**values)


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(learning_rate=-1.0), dict(optimizer="sgd"),
                                 dict(augment_scale=0.5), dict(augment_rotate=-1.0),
                                 dict(epochs=None, minutes=None), dict(checkpoint_every=0)])
def test_training_config_is_validated_on_construction(bad):
    from dancenet.vae.train import VAETraining

    with pytest.raises(DancenetError):
        VAETraining(**bad)


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys():
    config = tiny(bf16=False)
    assert VAEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(DancenetError, match="unknown key learning_rate"):
        VAEConfig.from_dict({**config.to_dict(), "learning_rate": 0.1})
    with pytest.raises(DancenetError, match="latent_size: 'eight'"):
        VAEConfig.from_dict({**config.to_dict(), "latent_size": "eight"})


def _figure(height=32, width=64, left=20):
    """(1, 1, H, W) float: an asymmetric figure (a body and one arm) starting at column ``left``."""
    frame = torch.zeros(1, 1, height, width)
    frame[..., 6:26, left:left + 4] = 1
    frame[..., 8:10, left + 4:left + 11] = 1
    return frame


def test_centred_vae_draws_the_same_pose_wherever_the_dancer_stands():
    torch.manual_seed(0)
    config = preset_config("default", 32, 64, channels=(8, 16), latent_size=6, centre=True,
                           centre_width=32, bf16=False)
    assert config.window_width == 32
    assert config.networks.width == 32 and config.networks.latent_size == 5
    vae = VAE(config).eval()
    here, there = _figure(left=10), _figure(left=27)
    with torch.inference_mode():
        (mean_here, log_var_here), (mean_there, _) = vae.encode_moments(here), vae.encode_moments(there)
        # the pose is the same latent; only the last dimension moves, by 17 columns in units of W / 8
        torch.testing.assert_close(mean_here[:, :-1], mean_there[:, :-1])
        assert mean_there[0, -1] - mean_here[0, -1] == pytest.approx(17 / (64 / 8))
        assert float(log_var_here[0, -1].exp().sqrt()) * 64 / 8 == pytest.approx(0.1)  # 0.1 px
        drawn_here, drawn_there = vae.decode_output(mean_here), vae.decode_output(mean_there)
        torch.testing.assert_close(drawn_there[..., 17:], drawn_here[..., :-17])
        # outside the window around the dancer the decoder draws nothing
        column = int(vae.centre_columns(mean_here))
        outside = torch.ones(64, dtype=torch.bool)
        outside[max(column - 16, 0):column + 16] = False
        assert (torch.sigmoid(drawn_here[..., outside]) < 1e-9).all()
        assert not (torch.sigmoid(drawn_here[..., ~outside]) < 1e-9).all()
        # moving the last dimension by a whole number of columns moves the drawing by as many
        moved = mean_here.clone()
        moved[0, -1] += 5 / 8
        torch.testing.assert_close(vae.decode_output(moved)[..., 5:], drawn_here[..., :-5])


def test_windows_cut_and_paste_back_exactly_even_at_the_frame_edge():
    from dancenet.vae.model import centroid_columns, cut_windows, paste_windows

    frames = torch.cat([_figure(left=0), _figure(left=50), torch.zeros(1, 1, 32, 64)])
    centres = centroid_columns(frames)
    assert centres.tolist()[2] == 32  # an empty frame: the middle column (31.5 rounds up)
    assert centres.tolist()[0] == round(float((frames[0, 0].sum(0) * torch.arange(64)).sum() / frames[0].sum()))
    windows = cut_windows(frames, centres, 32)
    assert windows.shape == (3, 1, 32, 32)
    assert torch.equal(windows.sum(dim=(1, 2, 3)), frames.sum(dim=(1, 2, 3)))  # nothing lost
    assert torch.equal(paste_windows(windows, centres, 64, fill=0.0), frames)


def test_a_model_file_without_centre_is_the_uncentred_model_and_centre_needs_two_dimensions():
    values = tiny(centre=True).to_dict()
    assert values["centre"] is True and VAEConfig.from_dict(values).centre
    old = VAEConfig.from_dict({k: v for k, v in values.items() if k not in ("centre", "centre_width")})
    assert not old.centre and old.window_width == 48 and old.networks == old
    with pytest.raises(DancenetError, match="latent size of at least 2"):
        tiny(centre=True, latent_size=1)
    with pytest.raises(DancenetError, match="centre_width -1"):
        tiny(centre_width=-1)
    with pytest.raises(DancenetError, match="default preset"):
        VAEConfig(preset="dancenet-2018", latent_size=128, normalization="none", centre=True)


def test_frames_of_another_size_are_a_user_error():
    vae = VAE(tiny())
    with pytest.raises(DancenetError, match="48x32"):
        vae.encode(torch.zeros(2, 30, 48, dtype=torch.uint8))


def test_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 7, generator=generator)
    log_var = torch.randn(5, 7, generator=generator)
    posterior = torch.distributions.Normal(mean, torch.exp(0.5 * log_var))
    prior = torch.distributions.Normal(torch.zeros(5, 7), torch.ones(5, 7))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(dim=1)
    torch.testing.assert_close(kl_divergence(mean, log_var), expected)


def test_reconstruction_loss_is_summed_bce_for_logits_and_probabilities():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 1, 4, 5, generator=generator)
    frames = (torch.rand(3, 1, 4, 5, generator=generator) > 0.5).float()
    probabilities = torch.sigmoid(logits)
    manual = -(frames * probabilities.log() + (1 - frames) * (1 - probabilities).log()).sum(dim=(1, 2, 3))
    torch.testing.assert_close(reconstruction_loss(logits, frames, True), manual)
    torch.testing.assert_close(reconstruction_loss(probabilities, frames, False), manual,
                               rtol=1e-4, atol=1e-4)
    total, reconstruction, kl = vae_loss(logits, frames, torch.zeros(3, 2), torch.zeros(3, 2), True, 0.5)
    assert kl.item() == 0 and total.item() == pytest.approx(manual.mean().item(), rel=1e-5)


def test_intersection_over_union():
    target = torch.zeros(3, 4, 4)
    target[:, :2] = 1                       # 8 pixels
    prediction = torch.zeros(3, 4, 4)
    prediction[0, :2] = 0.9                 # exact
    prediction[1, :1] = 0.9                 # 4 of 8
    iou = intersection_over_union(prediction, target)
    assert iou.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert intersection_over_union(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0


def test_soft_iou_term_counts_missed_dancer_pixels_and_adds_with_its_weight():
    target = torch.zeros(3, 1, 4, 4)
    target[:, :, :2] = 1                    # 8 dancer pixels
    probabilities = torch.zeros(3, 1, 4, 4)
    probabilities[0, :, :2] = 1             # exact
    probabilities[1, :, :1] = 1             # half the dancer: IoU 4/8
    probabilities[2] = 1                    # everything: IoU 8/16
    expected = torch.tensor([0.0, 4.0, 4.0])   # 8 x (1 - IoU)
    torch.testing.assert_close(soft_iou_loss(probabilities, target, False), expected)
    logits = torch.where(probabilities > 0.5, 30.0, -30.0)
    torch.testing.assert_close(soft_iou_loss(logits, target, True), expected)
    # a better prediction costs less; an empty frame predicted empty costs nothing
    assert soft_iou_loss(torch.full((1, 1, 4, 4), 0.4) * target[:1] + 0.1, target[:1], False) > \
        soft_iou_loss(torch.full((1, 1, 4, 4), 0.8) * target[:1] + 0.1, target[:1], False)
    assert soft_iou_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), False).item() == 0
    mean, log_var = torch.zeros(3, 2), torch.zeros(3, 2)
    plain, reconstruction, kl = vae_loss(logits, target, mean, log_var, True)
    weighted, reconstruction_2, _ = vae_loss(logits, target, mean, log_var, True, iou_weight=0.5)
    assert reconstruction_2 == reconstruction
    assert weighted.item() == pytest.approx(plain.item() + 0.5 * expected.mean().item())


def test_learning_rate_schedule():
    assert learning_rate_at(1.0, "constant", 0.7) == 1.0
    assert learning_rate_at(1.0, "cosine", 0.05, warmup_fraction=0.1) == pytest.approx(0.5)
    assert learning_rate_at(1.0, "cosine", 0.1, warmup_fraction=0.1) == pytest.approx(1.0)
    assert learning_rate_at(1.0, "cosine", 1.0, warmup_fraction=0.1) == pytest.approx(0.02)
    middle = learning_rate_at(1.0, "cosine", 0.55, warmup_fraction=0.1)
    assert middle == pytest.approx(0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    from dancenet.checkpoint import load_checkpoint, save_checkpoint

    generator = torch.Generator().manual_seed(3)
    state = capture_rng_states({"data": generator})
    save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=generator))
    restore_rng_states(load_checkpoint(tmp_path / "rng.pt")["rng"], {"data": generator})
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=generator))
    torch.testing.assert_close(expected[0], again[0])
    np.testing.assert_array_equal(expected[1], again[1])
    assert expected[2] == again[2]
    torch.testing.assert_close(expected[3], again[3])


def test_recipes_in_configs_match_the_preset_and_the_bundled_vae():
    from dataclasses import replace
    from pathlib import Path

    from dancenet.config import to_dict
    from dancenet.vae import load
    from dancenet.vae.train import load_recipe, preset_training

    root = Path(__file__).resolve().parents[1]
    for preset in ("default", "dancenet-2018"):
        config, training = load_recipe(root / "configs" / f"vae-{preset}.yaml")
        assert config == preset_config(preset, 120, 208)
        assert training == preset_training(preset)
    config, training = load_recipe(root / "configs" / "vae-salsa-bundled.yaml")
    bundled = load(root / "src/dancenet/pretrained/salsa")
    # the recipe leaves the centred window's width to the training frames; the model records it
    assert bundled.config.centre and bundled.config.centre_width > 0 and not config.centre_width
    assert config == replace(bundled.config, centre_width=0)
    recipe = to_dict(training)  # as the model file writes it (tuples as lists)
    assert {**recipe, **bundled.metadata["training"]} == recipe
    # the whole-frame variant bundled before: the same recipe over the whole frame, shifted sideways
    whole, whole_training = load_recipe(root / "configs" / "vae-salsa-whole.yaml")
    assert whole == replace(config, centre=False)
    assert whole_training == replace(training, augment_shift=4)


@pytest.mark.parametrize("text, message", [
    ("vae:\n  latent_size: 8\n", "unknown key vae"),
    ("preset: default\nmodel:\n  latent_sise: 8\n", "model: unknown key latent_sise"),
    ("training:\n  epochs: ten\n", "training: epochs: 'ten'"),
    ("preset: huge\n", "preset: 'huge'"),
    ("training:\n  epochs: 0\n", ": training: epochs 0: must be >= 1"),
    ("[1, 2]\n", "must be a mapping"),
])
def test_a_bad_recipe_names_the_file_and_the_key(tmp_path, text, message):
    from dancenet.vae.train import load_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(DancenetError) as error:
        load_recipe(path)
    assert str(path) in str(error.value) and message in str(error.value)
