"""Cheap live previews: latents to a rough RGB image without running the VAE."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

LATENT_RGB_FACTORS = np.array(
    [
        #   R       G       B
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ],
    dtype=np.float32,
)
"""SD 1.x latent channel -> RGB weights (A1111 "Approx cheap"), for scaled UNet-space latents."""

VAE_SCALE = 8
"""Pixels per latent cell in SD 1.5, so the preview has the output's size."""


def latents_to_preview(latents: Any) -> Image.Image:
    """Show progress every step for a tiny fraction of a VAE decode's cost."""
    array = np.asarray(latents, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 4 or 0 in array.shape:
        raise ValueError(f"Pass one SD 1.5 latent shaped (4, h, w) or (1, 4, h, w), not {array.shape}.")
    # A NaN step (fp16 overflow) shows as grey instead of stopping the run over a preview.
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    rgb = np.einsum("chw,cr->hwr", array, LATENT_RGB_FACTORS) * 0.5 + 0.5
    pixels = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    height, width = pixels.shape[:2]
    return Image.fromarray(pixels, "RGB").resize(
        (width * VAE_SCALE, height * VAE_SCALE), Image.Resampling.BILINEAR
    )
