"""Mixture-density head maths: a mixture of diagonal Gaussians, its log-likelihood and sampling.

Everything here works on plain tensors with any leading shape ``(...)``; the model decides what
the leading dimensions mean (batch, time). Two samplers:

- :func:`sample` (the default model): separate temperatures for the mixture weights (divides the
  logits, as in sketch-rnn) and for the spread (multiplies each standard deviation);
- :func:`sample_2018` reproduces the 2018 DanceNet / early keras-mdn sampler on purpose, flaws
  included: one temperature divides the logits *and* scales the spread, and the network's spread
  output (trained as a standard deviation) is used as a *variance* when sampling.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch

LOG_TWO_PI = math.log(2.0 * math.pi)


class MixtureParameters(NamedTuple):
    """A mixture of ``K`` diagonal Gaussians over ``D`` dimensions, for every leading index.

    logits: (..., K) unnormalised log mixture weights.
    mean: (..., K, D) component means.
    log_sigma: (..., K, D) log standard deviations of each component.
    """

    logits: torch.Tensor
    mean: torch.Tensor
    log_sigma: torch.Tensor


def log_likelihood(params: MixtureParameters, target: torch.Tensor) -> torch.Tensor:
    """log p(target) under the mixture, computed with a stable log-sum-exp.

    target: (..., D) -> returns (...) in nats.
    """
    target = target.unsqueeze(-2)  # (..., 1, D) broadcasts over the K components
    standardised = (target - params.mean) * torch.exp(-params.log_sigma)
    component = -0.5 * (standardised.square() + LOG_TWO_PI).sum(-1) - params.log_sigma.sum(-1)
    return torch.logsumexp(torch.log_softmax(params.logits, dim=-1) + component, dim=-1)


def to_distribution(params: MixtureParameters) -> torch.distributions.MixtureSameFamily:
    """The same mixture as a ``torch.distributions`` object (for tests and analysis)."""
    components = torch.distributions.Independent(
        torch.distributions.Normal(params.mean, params.log_sigma.exp()), 1)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=params.logits), components)


def _choose_component(logits: torch.Tensor, generator: torch.Generator | None,
                      temperature: float, noise: "CorrelatedNoise | None" = None) -> torch.Tensor:
    """Index (...) of one component per leading index, drawn from softmax(logits / temperature).

    Uses the Gumbel-max trick so that one uniform draw per component is all the randomness used;
    a temperature of 0 picks the most likely component. With a ``noise`` that correlates the
    component draws (:class:`CorrelatedNoise`'s ``component_correlation``), the uniforms are its
    standard normals through the normal CDF: each step still draws from softmax(logits /
    temperature), but a component tends to stay chosen from one step to the next.
    """
    if temperature <= 0.0:
        return logits.argmax(-1)
    if noise is not None and noise.correlates_components:
        normal = torch.randn(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        uniform = torch.special.ndtr(noise.component(normal))
    else:
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
    return (logits / temperature + gumbel).argmax(-1)


def _gather_component(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (..., K, D), index (...) -> (..., D)."""
    index = index[..., None, None].expand(*index.shape, 1, values.shape[-1])
    return values.gather(-2, index).squeeze(-2)


class CorrelatedNoise:
    """Standard normal noise correlated in time, for step-by-step sampling (an AR(1) process).

    Each call mixes the previous draw, weighted ``correlation``, with a fresh one so that every
    draw stays N(0, 1): ``e_t = c e_(t-1) + sqrt(1 - c^2) n_t``. With ``c`` = 0 it returns the
    fresh draw itself. A rollout's deviations from the predicted means then persist for about
    ``1 / (1 - c)`` steps instead of changing every frame: the dance varies more from what the
    model would replay without jittering. ``correlation``: a float in [0, 1) or a (batch, 1)
    tensor of them (one per row).

    ``component_correlation`` (the same kinds of value; 0: fresh draws) correlates the draws that
    choose the mixture component the same way (:meth:`component`): a component drawn afresh at
    every step makes the decoded dancer flicker (docs/motion.md, "What motion energy hides").

    ``loosen`` (0 to 1, set by a redraw within :meth:`loosened`) scales both correlations down
    to ``c (1 - loosen)`` for the next draws: each draw is still N(0, 1), but tied less to the
    previous one, so a redraw can leave the pose the previous noise was carrying the dance into
    (at ``c`` = 0.9 with the full correlation, every redraw of a step is 0.9 of the same previous
    noise and only 0.44 of a fresh draw). :attr:`state` is what a redraw goes back to.
    """

    def __init__(self, correlation, component_correlation=0.0):
        self.correlation, self.component_correlation = correlation, component_correlation
        self.loosen = 0.0
        self.previous: torch.Tensor | None = None
        self.component_previous: torch.Tensor | None = None

    @property
    def correlates_components(self) -> bool:
        """Whether the component draws go through :meth:`component` (else plain uniforms)."""
        return bool(torch.as_tensor(self.component_correlation).gt(0).any())

    @property
    def state(self) -> tuple:
        """The last draws: (noise, component noise), each None before the first."""
        return self.previous, self.component_previous

    @state.setter
    def state(self, value: tuple) -> None:
        self.previous, self.component_previous = value

    @staticmethod
    def choose(rows: torch.Tensor, chosen: tuple, others: tuple) -> tuple:
        """A state made of ``chosen``'s rows where ``rows`` (batch, 1) is true, else ``others``'s
        (two states of draws made the same way: a part is None in both or in neither)."""
        if any((new is None) != (old is None) for new, old in zip(chosen, others)):
            raise ValueError("states of draws made in different ways")
        return tuple(None if new is None else torch.where(rows, new, old) for new, old in zip(chosen, others))

    @contextlib.contextmanager
    def loosened(self, loosen: float):
        """Within the block (a redraw), draws are tied to the previous one at ``1 - loosen`` of the
        correlation; after it, at the full correlation again, however the block ends."""
        self.loosen = loosen
        try:
            yield self
        finally:
            self.loosen = 0.0

    def _mix(self, previous, correlation, fresh: torch.Tensor) -> torch.Tensor:
        if previous is None:
            return fresh
        correlation = correlation * (1.0 - self.loosen)
        return correlation * previous + (1.0 - correlation * correlation) ** 0.5 * fresh

    def __call__(self, fresh: torch.Tensor) -> torch.Tensor:
        self.previous = self._mix(self.previous, self.correlation, fresh)
        return self.previous

    def component(self, fresh: torch.Tensor) -> torch.Tensor:
        """The standard normals (..., K) that choose the next mixture component."""
        self.component_previous = self._mix(self.component_previous, self.component_correlation, fresh)
        return self.component_previous


def sample(params: MixtureParameters, generator: torch.Generator | None = None,
           temperature: float = 1.0, sigma_temperature: float = 1.0,
           noise: CorrelatedNoise | None = None) -> torch.Tensor:
    """Draw one vector per leading index -> (..., D).

    temperature: divides the mixture logits (0 = always the most likely component).
    sigma_temperature: multiplies every standard deviation (0 = the chosen component's mean); a
    tensor broadcast against (..., D) gives each row its own (all > 0).
    noise: turns each fresh standard normal draw into the one used, and chooses the component
    with it too when it correlates components (None: independent draws).
    """
    index = _choose_component(params.logits, generator, temperature, noise)
    mean = _gather_component(params.mean, index)
    if not torch.is_tensor(sigma_temperature) and sigma_temperature <= 0.0:
        return mean
    sigma = _gather_component(params.log_sigma, index).exp()
    draw = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    if noise is not None:
        draw = noise(draw)
    return mean + sigma * sigma_temperature * draw


def most_likely_mean(params: MixtureParameters) -> torch.Tensor:
    """The mean of the most likely component -> (..., D) (the limit of both temperatures -> 0)."""
    return _gather_component(params.mean, params.logits.argmax(-1))


def sample_2018(params: MixtureParameters, generator: torch.Generator | None = None,
                temperature: float = 1.0) -> torch.Tensor:
    """The 2018 sampler, kept faithful as a baseline -> (..., D).

    One temperature divides the logits and multiplies the spread; the spread (``exp(log_sigma)``,
    trained as a standard deviation) is used as a variance: ``x = mu + sqrt(sigma * t) * noise``.
    """
    index = _choose_component(params.logits, generator, temperature)
    mean = _gather_component(params.mean, index)
    if temperature <= 0.0:
        return mean
    variance = _gather_component(params.log_sigma, index).exp() * temperature
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + variance.sqrt() * noise
