"""The mixture-density maths against torch.distributions, and the samplers' limits."""

import math

import pytest
import torch

from dancenet.motion import mdn
from dancenet.motion.mdn import (CorrelatedNoise, MixtureParameters, log_likelihood, most_likely_mean, sample,
                                 sample_2018, to_distribution)


def random_params(*leading, components=5, size=3, seed=0, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    return MixtureParameters(
        logits=torch.randn(*leading, components, generator=generator) * 2,
        mean=torch.randn(*leading, components, size, generator=generator) * 3,
        log_sigma=torch.randn(*leading, components, size, generator=generator) * spread - 0.5)


def test_log_likelihood_equals_mixture_same_family():
    params = random_params(4, 6)
    target = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1)) * 3
    expected = to_distribution(params).log_prob(target)
    assert log_likelihood(params, target).shape == (4, 6)
    torch.testing.assert_close(log_likelihood(params, target), expected, rtol=1e-5, atol=1e-5)


def test_log_likelihood_is_stable_far_from_every_component():
    params = random_params(2, components=3, size=4)
    params = params._replace(log_sigma=torch.full_like(params.log_sigma, -6.0))
    target = torch.full((2, 4), 50.0)
    value = log_likelihood(params, target)
    assert torch.isfinite(value).all()
    # float64 reference: the naive sum of exp underflows to log(0) = -inf in float32.
    double = MixtureParameters(*(part.double() for part in params))
    torch.testing.assert_close(value.double(), to_distribution(double).log_prob(target.double()),
                               rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_cold_sampling_returns_the_most_likely_components_mean(temperature):
    params = random_params(64, components=6, size=4)
    drawn = sample(params, torch.Generator().manual_seed(0), temperature, temperature)
    expected = params.mean[torch.arange(64), params.logits.argmax(-1)]
    torch.testing.assert_close(drawn, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(most_likely_mean(params), expected)
    torch.testing.assert_close(sample_2018(params, torch.Generator().manual_seed(0), temperature),
                               expected, atol=1e-2, rtol=0)


def test_sampling_is_deterministic_per_seed_and_differs_between_seeds():
    params = random_params(10)
    first = sample(params, torch.Generator().manual_seed(3))
    again = sample(params, torch.Generator().manual_seed(3))
    other = sample(params, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_temperatures_act_on_weights_and_spread_separately():
    count = 40_000
    logits = torch.tensor([math.log(0.8), math.log(0.2)])
    params = MixtureParameters(logits.expand(count, 2),
                               torch.tensor([[0.0], [100.0]]).expand(count, 2, 1),
                               torch.tensor([[math.log(2.0)], [math.log(2.0)]]).expand(count, 2, 1))
    generator = torch.Generator().manual_seed(0)
    # temperature 2: weights softmax(log p / 2) = sqrt(p) normalised -> 2/3, 1/3
    drawn = sample(params, generator, temperature=2.0, sigma_temperature=0.5)[:, 0]
    far = drawn > 50
    assert abs(far.float().mean().item() - 1 / 3) < 0.015
    # sigma temperature 0.5 halves the standard deviation 2 -> 1, whatever the weights
    assert abs(drawn[~far].std().item() - 1.0) < 0.03
    assert abs(drawn[far].std().item() - 1.0) < 0.05


def test_the_2018_sampler_uses_the_spread_as_a_variance():
    count = 40_000
    params = MixtureParameters(torch.zeros(count, 1), torch.zeros(count, 1, 1),
                               torch.full((count, 1, 1), math.log(4.0)))
    drawn = sample_2018(params, torch.Generator().manual_seed(0), temperature=1.0)
    # sigma = 4 trained as a standard deviation, sampled as a variance -> std 2
    assert abs(drawn.std().item() - 2.0) < 0.05
    halved = sample_2018(params, torch.Generator().manual_seed(0), temperature=0.25)
    assert abs(halved.std().item() - 1.0) < 0.03


def test_correlated_noise_keeps_each_draw_standard_normal_and_carries_the_last_one():
    generator = torch.Generator().manual_seed(0)
    noise = CorrelatedNoise(torch.tensor([[0.0], [0.8]]))  # one correlation per row
    draws = torch.stack([noise(torch.randn(2, 4000, generator=generator)) for _ in range(50)])  # (steps, 2, n)
    assert draws.mean().abs() < 0.02
    assert torch.allclose(draws.std(dim=(0, 2)), torch.ones(2), atol=0.02)
    lag_one = (draws[1:] * draws[:-1]).mean(dim=(0, 2))
    assert abs(lag_one[0]) < 0.02 and abs(lag_one[1] - 0.8) < 0.02
    # correlation 0 hands the fresh draw on untouched: independent draws, the same bits
    fresh = torch.randn(3, 5, generator=generator)
    plain = CorrelatedNoise(0.0)
    plain(torch.randn(3, 5, generator=generator))
    assert torch.equal(plain(fresh), fresh)


def test_correlated_component_draws_keep_the_mixture_weights_and_switch_less():
    """With component_correlation, each step still chooses component k with probability
    softmax(logits)_k, but the chosen component changes less often from one step to the next."""
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).expand(20_000, 4)
    params = MixtureParameters(logits, torch.zeros(20_000, 4, 1), torch.zeros(20_000, 4, 1))
    switches = {}
    for correlation in (0.0, 0.6):
        generator, noise = torch.Generator().manual_seed(5), CorrelatedNoise(0.0, correlation)
        chosen = [mdn._choose_component(params.logits, generator, 1.0, noise) for _ in range(3)]
        for step in chosen:
            shares = torch.bincount(step, minlength=4) / len(step)
            assert torch.allclose(shares, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)
        switches[correlation] = float((chosen[2] != chosen[1]).float().mean())
    assert switches[0.0] == pytest.approx(1 - (0.25 + 0.09 + 0.0225 + 0.0025), abs=0.015)  # independent
    assert switches[0.6] < 0.8 * switches[0.0]
    # component correlation 0 is the plain draw, the same bits
    plain = mdn._choose_component(params.logits, torch.Generator().manual_seed(6), 1.0)
    same = mdn._choose_component(params.logits, torch.Generator().manual_seed(6), 1.0, CorrelatedNoise(0.9, 0.0))
    assert torch.equal(plain, same)


def test_a_redraw_keeps_the_rows_it_improves_of_each_part_of_the_noise_state():
    kept, again = (torch.zeros(3, 2), None), (torch.ones(3, 2), None)
    rows = torch.tensor([[True], [False], [True]])
    chosen = CorrelatedNoise.choose(rows, again, kept)
    assert chosen[1] is None and chosen[0][:, 0].tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        CorrelatedNoise.choose(rows, (torch.ones(3, 2), torch.ones(3, 4)), kept)


def test_sampling_with_correlated_noise_moves_each_row_less_from_step_to_step():
    params = random_params(200, components=1, size=3)
    params = params._replace(log_sigma=torch.zeros_like(params.log_sigma))  # unit spread, fixed means
    for correlation, expected in ((0.0, 2.0), (0.9, 0.2)):  # E (e_t - e_(t-1))^2 = 2 (1 - c)
        generator = torch.Generator().manual_seed(3)
        noise = CorrelatedNoise(correlation)
        draws = torch.stack([sample(params, generator, 1.0, 1.0, noise) for _ in range(40)])
        steps = (draws[1:] - draws[:-1]).square().mean()
        assert abs(steps - expected) < 0.1 * expected
