"""Colour coherence: match each frame's colour histogram to frame 0's, so colours don't drift over a long run."""
from __future__ import annotations

import numpy as np

from engine.text.limits import excerpt

MODES = ("none", "rgb", "hsv", "lab")


def check_mode(mode: str | None) -> str:
    """none, rgb, hsv or lab, in any case; Deforum's 'Match Frame 0 LAB' style names are accepted too."""
    value = str(mode or "none").strip().lower().replace("match frame 0", "").strip()
    if value not in MODES:
        raise ValueError(f"Colour coherence must be one of None, RGB, HSV or LAB; got {excerpt(mode)}.")
    return value


def match_colors(image: np.ndarray, reference: np.ndarray, mode: str) -> np.ndarray:
    """An HxWx3 uint8 frame with its histogram matched to `reference` in the given colour space (scikit-image)."""
    mode = check_mode(mode)
    if mode == "none":
        return image
    from skimage import color, exposure

    if mode == "rgb":
        matched = exposure.match_histograms(image, reference, channel_axis=-1)
        return np.clip(np.rint(matched), 0, 255).astype(np.uint8)
    to_space, from_space = {"hsv": (color.rgb2hsv, color.hsv2rgb), "lab": (color.rgb2lab, color.lab2rgb)}[mode]
    matched = exposure.match_histograms(to_space(image), to_space(reference), channel_axis=-1)
    if mode == "hsv":
        matched = np.clip(matched, 0, 1)
    return np.clip(np.rint(from_space(matched) * 255), 0, 255).astype(np.uint8)


def mean_lab(image: np.ndarray) -> np.ndarray:
    """The frame's mean L, a and b: what colour drift is measured by."""
    from skimage import color

    return color.rgb2lab(image).reshape(-1, 3).mean(axis=0)
