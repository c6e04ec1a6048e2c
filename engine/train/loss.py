"""The training loss: Min-SNR weighting per sample, and an optional heavier weight on the face."""
from __future__ import annotations

import torch

from engine.train.crops import Box


def min_snr_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float,
                    prediction_type: str = "epsilon") -> torch.Tensor:
    """Hang et al.'s Min-SNR-γ weights, so the easy low-noise steps don't dominate: min(SNR, γ) / SNR (ε-prediction)."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alpha / (1 - alpha)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def face_weight_map(boxes: list[Box | None], pixels: int, latent: int, weight: float) -> torch.Tensor:
    """(batch, 1, latent, latent) weights: `weight` inside each face box (mapped to latent cells), 1 elsewhere."""
    maps = torch.ones(len(boxes), 1, latent, latent)
    scale = latent / pixels
    for i, box in enumerate(boxes):
        if box is None:
            continue
        left, top = int(box[0] * scale), int(box[1] * scale)
        right, bottom = max(left + 1, round(box[2] * scale)), max(top + 1, round(box[3] * scale))
        maps[i, :, top:bottom, left:right] = weight
    return maps


def weighted_loss(prediction: torch.Tensor, target: torch.Tensor, sample_weights: torch.Tensor | None = None,
                  pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per sample (pixel-weighted mean when given), then the samples' weighted mean."""
    error = (prediction.float() - target.float()) ** 2
    if pixel_weights is None:
        per_sample = error.mean(dim=(1, 2, 3))
    else:
        pixel_weights = pixel_weights.to(error.device).expand_as(error)
        per_sample = (error * pixel_weights).sum(dim=(1, 2, 3)) / pixel_weights.sum(dim=(1, 2, 3))
    if sample_weights is not None:
        per_sample = per_sample * sample_weights.to(per_sample.device)
    return per_sample.mean()


def smooth_curve(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the curve starts at the first value.

    weight (`float`, *optional*, defaults to 0.9): how much each point keeps of the curve so far.
    """
    out, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** count))
    return out
