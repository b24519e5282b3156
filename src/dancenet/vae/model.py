"""The silhouette VAE: a frame of (height, width) pixels <-> a small latent vector.

Two architectures share one interface (:class:`VAE`):

- ``dancenet-2018``: the original DanceNet model, layer for layer (jsn5/dancenet ``model.py``),
  kept as the baseline. Full-resolution 3x3 convolutions with 128 channels make it slow on CPUs.
- ``default``: a lean encoder/decoder chosen by measurement on 2 CPU cores. The frame is first
  folded into patch channels (space-to-depth), so no convolution ever runs at full resolution;
  strided 4x4 convolutions halve the size at each stage; the decoder mirrors it with transposed
  convolutions and unfolds patch channels back into pixels (depth-to-space). It outputs logits,
  so the loss uses the numerically stable binary cross-entropy with logits.

The frame size comes from the dataset: the default model pads frames internally to a multiple of
its total downsampling factor and crops the output back; the 2018 model needs 120x208.

**Centred** (``centre: true``, a recipe's choice; not yet the preset's): the default model sees
each frame cut to a window ``centre_width`` columns wide around the dancer's centroid, and the
latent's last dimension is where that centroid lies in the frame, exactly (a posterior a tenth of
a pixel wide). The decoder draws the dancer in the window and puts the window back at that column.
So the networks need not learn to draw every pose at every place, and run on fewer pixels: on the
salsa takes a 96-column window of the 208 (docs/vae.md, "The dancer centred").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_from_dict, preset_of, to_dict
from ..errors import DancenetError
from ..runtime import native_bf16

NORMALIZATIONS = ("batch", "group", "none")


@dataclass(frozen=True)
class VAEConfig:
    """The architecture of a VAE: exactly what :class:`VAE` takes, saved as ``vae.json``'s
    ``config``. Field defaults are the ``default`` preset; training settings live in
    :class:`dancenet.vae.train.VAETraining`.
    """

    preset: str = "default"
    height: int = 120
    width: int = 208
    latent_size: int = 32
    # default architecture: space-to-depth factor, then one strided stage per entry of channels
    patch_size: int = 2
    channels: tuple[int, ...] = (48, 96, 192)
    normalization: str = "batch"       # after each hidden convolution: batch, group or none
    # how the forward pass computes (inference too): bfloat16 autocast where the hardware has
    # bf16 (outputs in float32), and the channels-last memory layout
    bf16: bool = True
    channels_last: bool = True
    # the dancer centred in a window of centre_width columns, her column the last latent
    # dimension (the module docstring); centre_width 0 is the frame's width until training sets
    # it from the data (vae/train.py: centre_width_for)
    centre: bool = False
    centre_width: int = 0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise DancenetError(f"--preset {self.preset}: choose one of {', '.join(PRESETS)}")
        if self.height < 8 or self.width < 8:
            raise DancenetError(f"frame size {self.width}x{self.height}: must be at least 8x8")
        if self.preset == "dancenet-2018":
            if (self.height, self.width) != (120, 208):
                raise DancenetError(f"preset dancenet-2018 needs 208x120 frames, the dataset has "
                                    f"{self.width}x{self.height}; use --preset default or prepare "
                                    "the data with --size 208x120")
            if self.latent_size != 128:
                raise DancenetError("preset dancenet-2018 has a latent size of 128; "
                                    "use --preset default for another --latent-size")
        if not 1 <= self.latent_size <= 4096:
            raise DancenetError(f"--latent-size {self.latent_size}: must be between 1 and 4096")
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise DancenetError(f"channels {self.channels}: need at least one positive entry")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.patch_size < 1:
            raise DancenetError(f"patch_size {self.patch_size}: must be >= 1")
        if self.normalization not in NORMALIZATIONS:
            raise DancenetError(f"normalization {self.normalization}: choose one of "
                                f"{', '.join(NORMALIZATIONS)}")
        if self.centre_width < 0:
            raise DancenetError(f"centre_width {self.centre_width}: must be >= 0")
        if self.centre and (self.preset != "default" or self.latent_size < 2):
            raise DancenetError("centre needs the default preset and a latent size of at least 2 "
                                "(the last dimension is the dancer's place)")

    @property
    def window_width(self) -> int:
        """Columns the networks see: the centred window, or the whole frame."""
        return min(self.centre_width or self.width, self.width) if self.centre else self.width

    @property
    def networks(self) -> "VAEConfig":
        """The config the encoder and decoder are built for: the window, and the latent without
        the place's dimension, when centred; this config otherwise."""
        if not self.centre:
            return self
        return replace(self, width=self.window_width, latent_size=self.latent_size - 1,
                       centre=False, centre_width=0)

    @property
    def downsampling(self) -> int:
        """How much smaller the deepest feature map is than the frame (default model)."""
        return self.patch_size * 2 ** len(self.channels)

    @property
    def inference_batch_size(self) -> int:
        """Frames per batch when encoding or decoding without gradients: the 2018 model keeps
        128 channels at full resolution (13 MB a frame per activation), so it gets small batches
        to stay well under 4 GB."""
        return 32 if self.preset == "dancenet-2018" else 256

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, values: dict, label: str = "VAE config") -> "VAEConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are errors naming ``label``."""
        return config_from_dict(cls, values, label)


# The presets: overrides of VAEConfig's defaults (which are the ``default`` preset). A model file
# without a key means the field's default, so a new field defaults to what models did before it.
PRESETS = {
    "default": {},
    "dancenet-2018": dict(preset="dancenet-2018", latent_size=128, normalization="none",
                          bf16=False, channels_last=False),
}


def preset_config(preset: str = "default", height: int = 120, width: int = 208,
                  **overrides) -> VAEConfig:
    """The architecture of a preset for frames of ``height`` x ``width``; ``None`` overrides are
    skipped."""
    return preset_of(VAEConfig, PRESETS, preset, height=height, width=width, **overrides)


# --------------------------------------------------------------------------------------------
# dancenet-2018


def _glorot_(module: nn.Module) -> None:
    """Keras' initialisation (glorot_uniform kernels, zero biases), as the original used."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class Encoder2018(nn.Module):
    """frames (n, 1, 120, 208) -> mean, log_var (n, 128). 1,724,128 parameters.

    The original's ``Dense(128)`` after flattening has no activation (Keras' default is linear).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.convolutions = nn.Sequential(
            nn.Conv2d(1, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.hidden = nn.Linear(32 * 15 * 26, 128)
        self.mean = nn.Linear(128, config.latent_size)
        self.log_var = nn.Linear(128, config.latent_size)
        _glorot_(self)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.convolutions(frames)
        # Keras flattens channels-last (h, w, c); keep that order so weights map one to one.
        hidden = self.hidden(features.permute(0, 2, 3, 1).flatten(1))
        return self.mean(hidden), self.log_var(hidden)


class Decoder2018(nn.Module):
    """latent (n, 128) -> probabilities (n, 1, 120, 208). 1,744,545 parameters.

    Exactly the original: Dense(15*26*32, ReLU), reshape to (15, 26, 32), a per-pixel Dense(128)
    without activation (Keras applies Dense to the last axis: a 1x1 convolution), then
    Conv 32 / up / Conv 64 / up / Conv 128 / up (3x3, same, ReLU), Conv 1 3x3 sigmoid.
    """

    outputs_logits = False

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.expand = nn.Linear(config.latent_size, 15 * 26 * 32)
        self.per_pixel = nn.Conv2d(32, 128, 1)
        self.convolutions = nn.Sequential(
            nn.Conv2d(128, 32, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 1, 3, padding=1), nn.Sigmoid(),
        )
        _glorot_(self)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.expand(latent)).view(-1, 15, 26, 32).permute(0, 3, 1, 2)
        return self.convolutions(self.per_pixel(hidden))


# --------------------------------------------------------------------------------------------
# default


class EncoderDefault(nn.Module):
    """frames (n, 1, H, W) -> mean, log_var (n, latent_size).

    Pad to a multiple of ``config.downsampling``, fold ``patch_size``^2 pixels into channels,
    then one 4x4 stride-2 convolution + SiLU per entry of ``config.channels``.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        layers, previous = [], config.patch_size ** 2
        for channels in config.channels:
            layers += [nn.Conv2d(previous, channels, 4, stride=2, padding=1),
                       _normalization(config, channels), nn.SiLU()]
            previous = channels
        self.convolutions = nn.Sequential(*layers)
        self.padded_height, self.padded_width = padded_size(config)
        grid = (self.padded_height // config.downsampling) * (self.padded_width // config.downsampling)
        self.to_latent = nn.Linear(previous * grid, 2 * config.latent_size)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = frames.shape[-2:]
        frames = F.pad(frames, (0, self.padded_width - width, 0, self.padded_height - height))
        features = self.convolutions(F.pixel_unshuffle(frames, self.config.patch_size))
        mean, log_var = self.to_latent(features.flatten(1)).float().chunk(2, dim=1)
        return mean, log_var


class DecoderDefault(nn.Module):
    """latent (n, latent_size) -> logits (n, 1, H, W); mirror of :class:`EncoderDefault`."""

    outputs_logits = True

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.padded_height, self.padded_width = padded_size(config)
        self.grid = (self.padded_height // config.downsampling, self.padded_width // config.downsampling)
        channels = list(config.channels)[::-1]
        self.from_latent = nn.Linear(config.latent_size, channels[0] * self.grid[0] * self.grid[1])
        layers = []
        for index, current in enumerate(channels):
            following = channels[index + 1] if index + 1 < len(channels) else config.patch_size ** 2
            layers.append(nn.ConvTranspose2d(current, following, 4, stride=2, padding=1))
            if index + 1 < len(channels):
                layers += [_normalization(config, following), nn.SiLU()]
        self.convolutions = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.from_latent(latent)).view(-1, self.config.channels[-1], *self.grid)
        if self.config.channels_last:
            hidden = hidden.contiguous(memory_format=torch.channels_last)
        logits = F.pixel_shuffle(self.convolutions(hidden), self.config.patch_size)
        return logits[..., :self.config.height, :self.config.width]


def _normalization(config: VAEConfig, channels: int) -> nn.Module:
    if config.normalization == "batch":
        return nn.BatchNorm2d(channels)
    if config.normalization == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


# Where the dancer is, as the latent's last dimension: her centroid's column less the frame's
# middle, in eighths of the frame's width (so a dancer anywhere in the frame lies within +-4), and
# a posterior this many pixels wide, narrow enough that sampling never moves her by a pixel.
POSITION_UNITS = 8
POSITION_STD_PIXELS = 0.1
# What the decoder says outside the centred window: no dancer (sigmoid(-30) ~ 1e-13).
BACKGROUND_LOGIT = -30.0


def centroid_columns(frames: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) float -> (n,) int64: the column of each frame's centroid, rounded (half up);
    the middle column for an empty frame."""
    width = frames.shape[-1]
    columns = frames.float().sum(dim=(1, 2))
    mass = columns.sum(dim=1)
    centre = columns @ torch.arange(width, dtype=torch.float32, device=frames.device) / mass.clamp(min=1e-6)
    centre = torch.where(mass > 0, centre, torch.full_like(centre, (width - 1) / 2))
    return torch.floor(centre + 0.5).long()


def cut_windows(frames: torch.Tensor, centres: torch.Tensor, window: int) -> torch.Tensor:
    """(n, 1, H, W), (n,) -> (n, 1, H, window): each frame's ``window`` columns around its centre
    column (``window // 2`` to its left), zero where the window leaves the frame."""
    n, channels, height, width = frames.shape
    columns = (centres - window // 2)[:, None] + torch.arange(window, device=frames.device)
    inside = (columns >= 0) & (columns < width)
    index = columns.clamp(0, width - 1)[:, None, None, :].expand(n, channels, height, window)
    return frames.gather(-1, index) * inside[:, None, None, :].to(frames.dtype)


def paste_windows(windows: torch.Tensor, centres: torch.Tensor, width: int,
                  fill: float = BACKGROUND_LOGIT) -> torch.Tensor:
    """The inverse of :func:`cut_windows` for decoder output: (n, 1, H, window) -> (n, 1, H,
    width), each window put back around its centre column, ``fill`` elsewhere."""
    n, channels, height, window = windows.shape
    offsets = torch.arange(width, device=windows.device)[None, :] - (centres - window // 2)[:, None]
    inside = (offsets >= 0) & (offsets < window)
    index = offsets.clamp(0, window - 1)[:, None, None, :].expand(n, channels, height, width)
    pasted = windows.gather(-1, index)
    return torch.where(inside[:, None, None, :], pasted, torch.full_like(pasted, fill))


def padded_size(config: VAEConfig) -> tuple[int, int]:
    """(height, width) rounded up to a multiple of the default model's downsampling factor."""
    factor = config.downsampling
    return math.ceil(config.height / factor) * factor, math.ceil(config.width / factor) * factor


# --------------------------------------------------------------------------------------------


class VAE(nn.Module):
    """Encoder + decoder with the public interface used by encode, generate and evaluate.

    ``vae_hash`` is the sha256 of the safetensors file the weights came from (set by
    :func:`dancenet.vae.load`; empty for a freshly built model).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        if config.preset == "dancenet-2018":
            self.encoder, self.decoder = Encoder2018(config), Decoder2018(config)
        else:
            self.encoder, self.decoder = EncoderDefault(config.networks), DecoderDefault(config.networks)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)
        self.vae_hash = ""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _autocast(self):
        """bfloat16 autocast when the config asks for it and the device computes bf16 natively
        (1.5-1.7x faster training on an AVX512-BF16 CPU, measured); float32 elsewhere."""
        enabled = self.config.bf16 and native_bf16(self.device)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def prepare_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, H, W) uint8 {0,1} or (n, 1, H, W) float [0,1] -> (n, 1, H, W) float on the device.

        Any other shape, or a frame size other than the model's, is a user error.
        """
        frames = torch.as_tensor(frames)
        if frames.dim() == 3:
            frames = frames.unsqueeze(1)
        expected = (self.config.height, self.config.width)
        if frames.dim() != 4 or frames.shape[1] != 1 or tuple(frames.shape[-2:]) != expected:
            raise DancenetError(f"frames of shape {tuple(frames.shape)} do not fit this VAE, which "
                                f"takes {self.config.width}x{self.config.height} silhouettes "
                                f"(n, {expected[0]}, {expected[1]})")
        frames = frames.to(self.device, torch.float32, non_blocking=True)
        if self.config.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return frames

    def encode(self, frames: torch.Tensor) -> torch.distributions.Normal:
        """Posterior over latents.

        frames: (n, H, W) uint8 in {0, 1} (as ``Dataset.frames_at`` returns them) or
            (n, 1, H, W) float in [0, 1].
        Returns Normal with ``loc`` (n, latent_size) and ``scale`` = exp(log_var / 2), float32.
        Wrap calls in ``torch.inference_mode()`` when no gradients are needed.
        """
        mean, log_var = self.encode_moments(frames)
        return torch.distributions.Normal(mean, torch.exp(0.5 * log_var))

    def encode_moments(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames as in :meth:`encode` -> (mean, log_var), each (n, latent_size) float32."""
        frames = self.prepare_frames(frames)
        if not self.config.centre:
            with self._autocast():
                mean, log_var = self.encoder(frames)
            return mean.float(), log_var.float()
        centres = centroid_columns(frames)
        with self._autocast():
            mean, log_var = self.encoder(cut_windows(frames, centres, self.config.window_width))
        scale = self.config.width / POSITION_UNITS
        place = (centres.float() - (self.config.width - 1) / 2) / scale
        spread = torch.full_like(place, 2 * math.log(POSITION_STD_PIXELS / scale))
        return (torch.cat([mean.float(), place[:, None]], dim=1),
                torch.cat([log_var.float(), spread[:, None]], dim=1))

    def centre_columns(self, latent: torch.Tensor) -> torch.Tensor:
        """(n, latent_size) of a centred VAE -> (n,) int64: the column the dancer is drawn
        around, rounded from the last dimension and kept inside the frame."""
        width = self.config.width
        column = latent[:, -1].float() * (width / POSITION_UNITS) + (width - 1) / 2
        return torch.floor(column + 0.5).clamp(0, width - 1).long()

    def decode_output(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (n, latent_size) -> raw decoder output (n, 1, H, W) float32: logits for
        ``default``, probabilities for ``dancenet-2018`` (see ``decoder.outputs_logits``)."""
        latent = latent.to(self.device, torch.float32)
        if not self.config.centre:
            with self._autocast():
                output = self.decoder(latent)
            return output.float()
        with self._autocast():
            windows = self.decoder(latent[:, :-1])
        return paste_windows(windows.float(), self.centre_columns(latent), self.config.width)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (n, latent_size) -> frames (n, H, W) float32 probabilities in [0, 1]."""
        output = self.decode_output(latent)
        if self.decoder.outputs_logits:
            output = torch.sigmoid(output)
        return output[:, 0]

    def silhouettes(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (n, latent_size) -> (n, H, W) bool on the model's device: the decoded frames
        binarised at 0.5 (generation, the rollout checks, the copy guard's footage and the preview
        all cut here; a generated video then drops the specks of a frame that is otherwise whole:
        ``generate.Dancer.shown``)."""
        return self.decode(latent) > 0.5

    def forward(self, frames: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training pass with a reparameterised sample.

        frames: (n, 1, H, W) float in [0, 1]; generator: draws the sampling noise.
        Returns (decoder output (n, 1, H, W) float32 as in :meth:`decode_output`,
        mean (n, L), log_var (n, L)).
        """
        mean, log_var = self.encode_moments(frames)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        latent = mean + torch.exp(0.5 * log_var) * noise
        return self.decode_output(latent), mean, log_var

    def parameter_counts(self) -> tuple[int, int]:
        """(encoder, decoder) parameter counts."""
        return (sum(p.numel() for p in self.encoder.parameters()),
                sum(p.numel() for p in self.decoder.parameters()))


def build_vae(config: VAEConfig) -> VAE:
    """A freshly initialised VAE for ``config`` (on the CPU; move it with ``.to(device)``)."""
    return VAE(config)


def save_vae(directory, model: VAE, metadata: dict, name: str = "vae") -> None:
    """Write ``NAME.safetensors`` + ``NAME.json`` (the config and ``metadata``: fps, dataset_hash,
    val_clips, training summary); :func:`dancenet.vae.load` reads them back."""
    from ..checkpoint import save_pretrained

    save_pretrained(directory, name, "vae", model.state_dict(), model.config.to_dict(), metadata)


def check_frame_size(config: VAEConfig, height: int, width: int, where: str) -> None:
    """Refuse data whose frame size differs from the model's, naming ``where`` it came from."""
    if (height, width) != (config.height, config.width):
        raise DancenetError(f"{where}: frames are {width}x{height} but the VAE was trained on "
                            f"{config.width}x{config.height}; prepare the data with "
                            f"--size {config.width}x{config.height} or train a new VAE")


__all__ = ["VAE", "VAEConfig", "PRESETS", "preset_config", "build_vae", "check_frame_size", "save_vae",
           "padded_size", "centroid_columns", "cut_windows", "paste_windows"]
