"""The motion model: a recurrent network with a mixture-density head over VAE latents.

Given the latents of frames ``0..t`` it predicts a mixture of Gaussians for frame ``t + 1``.
Two presets share this one module:

``dancenet-2018`` (the baseline, kept faithful to the original DanceNet, flaws included):
    min-max scaled latent *samples*, 3 LSTM layers of 512 each followed by dropout 0.4, Dense 1000
    ReLU, 24 mixture components whose spread is ``elu(x) + 1`` (trained as a standard deviation,
    sampled as a variance), Adam lr 5e-4, batch 1024, and every example is ONE frame -> the next
    frame from a zeroed state. So the "recurrent" net is in fact a feed-forward map from one pose to
    the next: it cannot know which way a limb is moving, and it is always run stateless here too,
    because carrying a state it never saw in training would not be the 2018 model. In generation
    the original fed each sample back *unscaled* into a net trained on min-max scaled inputs; we do
    the same (see :mod:`dancenet.generate`). These are the reasons it convulses and loops.

``default``: standardised latent means in and out, a recurrent stack trained on multi-second
    windows with the state carried across consecutive windows (truncated BPTT), component means
    predicted as offsets from the current frame (``residual``), log standard deviations clamped to
    a sane range, and separate temperatures for mixture weights and spread at sampling time.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..config import check_all, config_from_dict
from ..errors import DancenetError, input_error
from .mdn import MixtureParameters


@dataclass(frozen=True)
class MotionConfig:
    """Architecture of a motion model; saved beside its weights and enough to rebuild it."""

    preset: str = "default"
    latent_size: int = 128
    cell: str = "lstm"              # "lstm" or "gru"
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.0            # after every recurrent layer (2018: 0.4)
    dense_size: int = 0             # a ReLU layer between the recurrent stack and the head; 0 = none
    num_mixtures: int = 8
    residual: bool = False          # True: component means are offsets from the input frame (deltas)
    spread: str = "log_sigma"       # "log_sigma" (clamped) or "elu" (2018: sigma = elu(x) + 1)
    min_log_sigma: float = -6.0
    max_log_sigma: float = 2.0
    stateless: bool = False         # 2018: the state is zeroed before every step
    scaling: str = "standard"       # "standard" (mean/std) or "minmax" (2018: to [0, 1])
    sampler: str = "separate"       # "separate" temperatures, or "2018" (see mdn.sample_2018)
    feedback: str = "sample"        # what a rollout feeds back: "sample" or "2018-unscaled"
    # The model steps through every frame_stride-th frame (fps / frame_stride steps a second);
    # generation fills the frames between two steps by linear interpolation of the latents.
    frame_stride: int = 1

    def __post_init__(self):
        checks = [
            (self.cell in ("lstm", "gru"), "cell must be lstm or gru"),
            (self.latent_size >= 1, "latent_size must be >= 1"),
            (self.hidden_size >= 1 and self.num_layers >= 1, "hidden_size and num_layers must be >= 1"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.dense_size >= 0, "dense_size must be >= 0"),
            (self.num_mixtures >= 1, "num_mixtures must be >= 1"),
            (self.spread in ("log_sigma", "elu"), "spread must be log_sigma or elu"),
            (self.min_log_sigma < self.max_log_sigma, "min_log_sigma must be < max_log_sigma"),
            (self.scaling in ("standard", "minmax"), "scaling must be standard or minmax"),
            (self.sampler in ("separate", "2018"), "sampler must be separate or 2018"),
            (self.feedback in ("sample", "2018-unscaled"), "feedback must be sample or 2018-unscaled"),
            (isinstance(self.frame_stride, int) and 1 <= self.frame_stride <= 30,
             "frame_stride must be a whole number from 1 to 30"),
        ]
        check_all(checks, "motion config")

    @classmethod
    def from_dict(cls, values: dict, label: str = "motion config") -> "MotionConfig":
        return config_from_dict(cls, values, label)


# The presets: overrides of MotionConfig's defaults (which are the ``default`` preset).
PRESET_VALUES = {
    "default": {},
    "dancenet-2018": dict(
        preset="dancenet-2018", cell="lstm", hidden_size=512, num_layers=3, dropout=0.4,
        dense_size=1000, num_mixtures=24, residual=False, spread="elu", stateless=True,
        scaling="minmax", sampler="2018", feedback="2018-unscaled"),
}
PRESETS = {name: MotionConfig(**values) for name, values in PRESET_VALUES.items()}


def preset_config(name: str, latent_size: int) -> MotionConfig:
    """The named preset's architecture for latents of ``latent_size`` dimensions."""
    if name not in PRESETS:
        raise DancenetError(f"--preset {name}: choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], latent_size=latent_size)


class LatentScaler:
    """Per-dimension affine map between raw VAE latents and the model's units: ``(x - shift) / scale``.

    ``standard``: shift = mean, scale = std of the training latents. ``minmax``: shift = min,
    scale = max - min (sklearn's MinMaxScaler to [0, 1], as in 2018).
    """

    def __init__(self, kind: str, shift: torch.Tensor, scale: torch.Tensor):
        self.kind = kind
        self.shift = shift.float()
        self.scale = scale.float().clamp_min(1e-6)

    @classmethod
    def fit(cls, kind: str, latents: torch.Tensor) -> "LatentScaler":
        """latents: (frames, L) raw training latents."""
        if kind == "standard":
            return cls(kind, latents.mean(0), latents.std(0))
        low, high = latents.min(0).values, latents.max(0).values
        return cls(kind, low, high - low)

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.shift) / self.scale

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.scale + self.shift

    @property
    def log_det(self) -> float:
        """sum(log scale): converts a log-density in model units to raw latent units (subtract it)."""
        return float(self.scale.log().sum())

    def to(self, device) -> "LatentScaler":
        return LatentScaler(self.kind, self.shift.to(device), self.scale.to(device))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "LatentScaler":
        return cls(values["kind"], torch.tensor(values["shift"]), torch.tensor(values["scale"]))


class MotionModel(nn.Module):
    """Recurrent stack + mixture-density head. Works in the scaler's (normalised) units."""

    def __init__(self, config: MotionConfig):
        super().__init__()
        self.config = config
        recurrent = nn.LSTM if config.cell == "lstm" else nn.GRU
        # nn.LSTM's own dropout acts between layers; the extra one covers the last layer's output.
        self.recurrent = recurrent(config.latent_size, config.hidden_size, config.num_layers,
                                   batch_first=True,
                                   dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        features = config.hidden_size
        self.dense = None
        if config.dense_size:
            self.dense = nn.Linear(features, config.dense_size)
            features = config.dense_size
        components, size = config.num_mixtures, config.latent_size
        self.head = nn.Linear(features, components + 2 * components * size)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu"):
        """Zero recurrent state for ``batch_size`` independent sequences."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        zeros = torch.zeros(shape, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, inputs: torch.Tensor, state=None) -> tuple[MixtureParameters, object]:
        """Predict the next frame for every step of a sequence.

        inputs: (batch, time, L) normalised latents of frames t = 0..T-1.
        state: recurrent state from a previous call (None = zeros); ignored when stateless.
        Returns mixture parameters for frames 1..T with leading shape (batch, time), and the state
        after the last step (detach it yourself for truncated BPTT).
        """
        batch, time, size = inputs.shape
        if self.config.stateless:
            # Each frame on its own from a zero state, exactly how the 2018 model was trained.
            output, _ = self.recurrent(inputs.reshape(batch * time, 1, size))
            output, state = output.reshape(batch, time, -1), None
        else:
            output, state = self.recurrent(inputs, state)
        features = self.dropout(output)
        if self.dense is not None:
            features = torch.relu(self.dense(features))
        return self._mixture(self.head(features), inputs), state

    def step(self, latent: torch.Tensor, state=None) -> tuple[MixtureParameters, object]:
        """One step: latent (batch, L) -> mixture with leading shape (batch,), new state."""
        params, state = self(latent[:, None], state)
        return MixtureParameters(*(value[:, 0] for value in params)), state

    def _mixture(self, raw: torch.Tensor, inputs: torch.Tensor) -> MixtureParameters:
        components, size = self.config.num_mixtures, self.config.latent_size
        logits = raw[..., :components]
        mean = raw[..., components:components + components * size].unflatten(-1, (components, size))
        spread = raw[..., components + components * size:].unflatten(-1, (components, size))
        if self.config.residual:
            mean = mean + inputs.unsqueeze(-2)
        if self.config.spread == "elu":
            # keras-mdn's elu_plus_one_plus_epsilon, as a standard deviation.
            log_sigma = torch.log(nn.functional.elu(spread) + 1.0 + 1e-7)
        else:
            log_sigma = spread.clamp(self.config.min_log_sigma, self.config.max_log_sigma)
        return MixtureParameters(logits, mean, log_sigma)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def save_motion(directory: str | os.PathLike, model: MotionModel, scaler: LatentScaler,
                metadata: dict, name: str = "motion", state_dict: dict | None = None) -> None:
    """Write ``NAME.safetensors`` + ``NAME.json``: the config, and metadata holding the scaler,
    vae_hash, fps, frame size, sampling temperatures, ... ``state_dict``: weights to write in
    place of the model's own (e.g. those of its best epoch)."""
    from ..checkpoint import save_pretrained

    weights = model.state_dict() if state_dict is None else state_dict
    save_pretrained(directory, name, "motion", weights, asdict(model.config),
                    {"preset": model.config.preset, "scaler": scaler.to_dict(), **metadata})


def load_motion(directory: str | os.PathLike, name: str = "motion",
                device: torch.device | str = "cpu") -> tuple[MotionModel, LatentScaler, dict]:
    """Rebuild a saved motion model (in eval mode) -> (model, scaler, metadata)."""
    from ..checkpoint import load_pretrained

    directory = Path(directory)
    path = directory / f"{name}.json"
    if not path.is_file():
        raise input_error(directory, f"has no motion model ({name}.json); "
                                     f"train one with `dancenet train motion {directory}`")
    saved = load_pretrained(directory, name, "motion", map_location=device)
    model = MotionModel(MotionConfig.from_dict(saved.config, f"{path}: config"))
    try:
        model.load_state_dict(saved.state_dict)
        scaler = LatentScaler.from_dict(saved.metadata["scaler"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise input_error(directory / f"{name}.safetensors",
                          f"does not match its config ({str(error).splitlines()[0]})") from None
    model.to(device).eval()
    return model, scaler.to(device), saved.metadata


@torch.no_grad()
def validation_nll(model: MotionModel, scaler: LatentScaler, latents: torch.Tensor,
                   ranges: list[tuple[int, int]], chunk: int = 512) -> float:
    """Mean negative log-likelihood of frame t + 1 given frames 0..t, nats per frame, raw units.

    latents: (frames, L) raw latent means; ranges: the clips' rows. The state is carried through
    each clip from its first frame. Used by training (held-out clips) and by ``evaluate``.
    """
    from .mdn import log_likelihood

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start, stop in ranges:
        values = scaler.normalise(latents[start:stop].to(device))[None]
        state = None
        for first in range(0, values.shape[1] - 1, chunk):
            targets = values[:, first + 1:first + chunk + 1]
            inputs = values[:, first:first + chunk][:, :targets.shape[1]]
            params, state = model(inputs, state)
            total += float(log_likelihood(params, targets).sum())
            count += targets.shape[1]
    model.train(was_training)
    if count == 0:
        return float("nan")
    return -(total / count - scaler.log_det)


def nats_per_frame_raw(log_likelihood_model_units: torch.Tensor, scaler: LatentScaler) -> torch.Tensor:
    """Negative log-likelihood of raw latents in nats per frame, from one in model units."""
    return -(log_likelihood_model_units - scaler.log_det)


__all__ = ["MotionConfig", "MotionModel", "LatentScaler", "PRESETS", "preset_config",
           "save_motion", "load_motion", "count_parameters", "nats_per_frame_raw", "validation_nll"]
