"""The silhouette VAE: model (``model.py``), objective (``loss.py``), training (``train.py``),
and using a trained one (``encode.py``).

Public API::

    vae = dancenet.vae.load(run_or_dir, device="cpu")   # -> VAE, eval mode
    posterior = vae.encode(frames)     # (n, H, W) uint8 {0,1} or (n, 1, H, W) float -> Normal (n, L)
    frames = vae.decode(latent)        # (n, L) -> (n, H, W) float32 probabilities in [0, 1]
    vae.config.latent_size, vae.config.height, vae.config.width, vae.vae_hash

Training lives in :mod:`dancenet.vae.train` (``train_vae``, ``VAETraining``); this package
imports only what inference needs.
"""

from .encode import encode_frames, load, reconstruct, write_latents
from .model import VAE, VAEConfig, build_vae, preset_config

__all__ = ["VAE", "VAEConfig", "build_vae", "encode_frames", "load", "preset_config", "reconstruct",
           "write_latents"]
