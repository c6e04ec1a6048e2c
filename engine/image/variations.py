"""Variation seed and strength (A1111's subseed): the seed's starting noise slerped toward another seed's noise.

A small strength (0.1–0.3) keeps the picture's layout and changes its details, so one result gives a family of
similar images; strength 0 is the plain image and 1 is the variation seed's own noise.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from engine.image.request import MAX_SEED, ImageRequest, as_number, pick_seed

PARALLEL = 0.9995  # above this cosine the two noises point the same way and slerp falls back to a straight line
FIELDS = ("Variation seed", "Variation seed strength")  # A1111's PNG-info names


# 1. the maths
def slerp(t: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A1111's slerp from `low` (t=0) to `high` (t=1), in float64, for latents shaped (..., rows, columns).

    As in A1111's `slerp`, the vectors are the latent's columns (axis -2), one angle each, so the same seeds give
    A1111's starting noise. Two unit-variance noises stay unit variance all the way, which is why no extra
    renormalisation is needed (a straight blend would shrink the noise and soften the image).
    """
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if t == 0:
        return low.copy()
    if t == 1:
        return high.copy()
    low_unit = low / np.linalg.norm(low, axis=-2, keepdims=True)
    high_unit = high / np.linalg.norm(high, axis=-2, keepdims=True)
    dot = np.clip((low_unit * high_unit).sum(axis=-2, keepdims=True), -1.0, 1.0)
    if dot.mean() > PARALLEL:  # A1111 swaps the weights here; this is the straight line the right way round
        return (1.0 - t) * low + t * high
    omega = np.arccos(dot)
    return (np.sin((1.0 - t) * omega) * low + np.sin(t * omega) * high) / np.sin(omega)


# 2. the request
def check_variation(req: ImageRequest, task: str = "txt2img") -> ImageRequest:
    """Strength 0..1 and a variation seed of -1 or 0..MAX_SEED, or one sentence; numbers from forms made exact."""
    strength = as_number(req.variation_strength, "Variation strength")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"Variation strength must be from 0 (off) to 1; got {req.variation_strength}.")
    if strength and task not in ("txt2img", "img2img"):
        raise ValueError("Variation seed and strength work in Text to image and Image to image only; set the "
                         "variation strength to 0.")
    seed = as_number(req.variation_seed, "Variation seed")
    if seed != int(seed) or not (seed == -1 or 0 <= seed <= MAX_SEED):
        raise ValueError(f"Variation seed must be -1 (random) or a whole number from 0 to {MAX_SEED}; "
                         f"got {req.variation_seed}.")
    return replace(req, variation_seed=int(seed), variation_strength=strength)


def first_variation_seed(req: ImageRequest) -> int | None:
    """The batch's first variation seed (-1 picked at random, reported and saved); None when variations are off.

    As in A1111, a batch with a variation strength keeps its seed and counts the variation seed up, so its images
    are variations of one image.
    """
    return pick_seed(req.variation_seed) if req.variation_strength > 0 else None


# 3. PNG info
def variation_fields(variation_seed: int | None, strength: float) -> dict:
    """A1111's `Variation seed: N, Variation seed strength: S`, written only when a variation was made."""
    if variation_seed is None or not strength:
        return {}
    return {"Variation seed": variation_seed, "Variation seed strength": f"{strength:g}"}


def variation_from_fields(req: ImageRequest, fields: dict[str, str]) -> list[str]:
    """Put A1111's variation fields into `req`; returns those that could not be used."""
    skipped = []
    for key, attr, kind in (("Variation seed", "variation_seed", int),
                            ("Variation seed strength", "variation_strength", float)):
        if key not in fields:
            continue
        try:
            value = float(fields[key])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (kind is int and value != int(value)):
            skipped.append(key)
        else:
            setattr(req, attr, kind(value))
    return skipped
