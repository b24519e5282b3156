"""The VAE objective (negative ELBO) and the reconstruction metric, all in float32.

Both presets use the 2018 objective: binary cross-entropy summed over the pixels of a frame plus
``beta`` times the KL divergence to a standard normal, averaged over the batch. A recipe may add
``iou_weight`` times a soft-IoU term (``soft_iou_loss``); validation reports the plain ELBO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Keras clips probabilities to [epsilon, 1 - epsilon] inside binary_crossentropy; the 2018
# preset does the same so its loss matches the original.
KERAS_EPSILON = 1e-7


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) summed over the latent: (n, L), (n, L) -> (n,)."""
    return -0.5 * torch.sum(1 + log_var - mean.square() - log_var.exp(), dim=1)


def reconstruction_loss(output: torch.Tensor, frames: torch.Tensor, outputs_logits: bool) -> torch.Tensor:
    """Binary cross-entropy summed over pixels: (n, 1, H, W), (n, 1, H, W) -> (n,).

    output: logits when ``outputs_logits`` (stable BCE-with-logits), else probabilities.
    """
    output, frames = output.float(), frames.float()
    if outputs_logits:
        per_pixel = F.binary_cross_entropy_with_logits(output, frames, reduction="none")
    else:
        per_pixel = F.binary_cross_entropy(output.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON), frames,
                                           reduction="none")
    return per_pixel.flatten(1).sum(dim=1)


def soft_iou_loss(output: torch.Tensor, frames: torch.Tensor, outputs_logits: bool) -> torch.Tensor:
    """Dancer pixels x (1 - soft IoU) per frame: (n, 1, H, W), (n, 1, H, W) -> (n,).

    Soft IoU = sum(p t) / (sum(p) + sum(t) - sum(p t)) over the decoded probabilities p and the
    frame t. Cross-entropy sums over all pixels, so the few pixels at a hand's tip weigh little;
    this term's gradient is largest on the uncertain pixels that decide the IoU. Scaled by the
    dancer's pixels, it is in pixels, like the cross-entropy beside it. A frame with no dancer
    costs 0 here whatever is predicted; the cross-entropy beside it covers such frames.
    """
    probabilities = (torch.sigmoid(output.float()) if outputs_logits else output.float()).flatten(1)
    target = frames.float().flatten(1)
    intersection = (probabilities * target).sum(dim=1)
    union = probabilities.sum(dim=1) + target.sum(dim=1) - intersection
    return target.sum(dim=1) * (1 - intersection / union.clamp(min=1.0))


def vae_loss(output: torch.Tensor, frames: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
             outputs_logits: bool, beta: float = 1.0,
             iou_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-mean (total, reconstruction, kl); scalars.

    total = reconstruction + beta * kl (+ iou_weight * soft_iou_loss where iou_weight > 0).
    """
    reconstruction = reconstruction_loss(output, frames, outputs_logits).mean()
    kl = kl_divergence(mean.float(), log_var.float()).mean()
    total = reconstruction + beta * kl
    if iou_weight:
        total = total + iou_weight * soft_iou_loss(output, frames, outputs_logits).mean()
    return total, reconstruction, kl


def intersection_over_union(probabilities: torch.Tensor, frames: torch.Tensor,
                            threshold: float = 0.5) -> torch.Tensor:
    """Per-frame IoU of ``probabilities > threshold`` against ``frames > 0.5``: (n, ...) -> (n,).

    Two empty silhouettes agree perfectly (IoU 1).
    """
    predicted = (probabilities > threshold).flatten(1)
    target = (frames > 0.5).flatten(1)
    intersection = (predicted & target).sum(dim=1).float()
    union = (predicted | target).sum(dim=1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
