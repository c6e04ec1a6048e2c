"""Walk maths: slerp/lerp between latents, frame placement along keyframes, and smooth re-spacing.

Positions along a walk are floats in keyframe units: 0 is keyframe 0, 1.5 is halfway from
keyframe 1 to 2. A looping walk runs on to K, which is keyframe 0 again.

Smooth mode measures change with `frame_distance`: the mean absolute difference of two frames
shrunk to 64 px and slightly blurred, in YCbCr with luma weighted most. It costs about a
millisecond and needs no model; the blur keeps seed grain from counting as change, and re-spacing
only needs distances that rank consistently along one path, not calibrated perception (LPIPS).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageFilter

DISTANCE_SIDE = 64  # long side, in pixels, that frames are shrunk to before comparing
_CHANNEL_WEIGHTS = np.array([0.6, 0.2, 0.2])  # Y, Cb, Cr: brightness changes are seen most


# ---------------------------------------------------------------- interpolation


def _check_pair(t, v0: torch.Tensor, v1: torch.Tensor) -> float:
    """Shared edge checks, so lerp and slerp fail the same way."""
    if not isinstance(v0, torch.Tensor) or not isinstance(v1, torch.Tensor):
        raise ValueError("Pass v0 and v1 as torch tensors.")
    if v0.shape != v1.shape:
        raise ValueError(f"Pass v0 and v1 with the same shape (got {tuple(v0.shape)} and {tuple(v1.shape)}).")
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"Set t between 0 and 1 (got {t}).")
    return t


def lerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Straight-line blend, right for text embeddings and the fallback for nearly parallel noise."""
    t = _check_pair(t, v0, v1)
    return v0 + t * (v1 - v0)


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Blend along the great circle so Gaussian noise keeps its norm (lerp would shrink it toward grey).

    Args:
        t (`float`): 0 gives v0, 1 gives v1.
        v0, v1 (`torch.Tensor`): same shape; treated as flattened vectors.
        dot_threshold (`float`, *optional*, defaults to 0.9995): above this |cosine| the vectors are
            nearly (anti)parallel, the angle is ill-conditioned, and we lerp instead.
    """
    t = _check_pair(t, v0, v1)
    a, b = v0.reshape(-1).double(), v1.reshape(-1).double()
    norms = a.norm() * b.norm()
    dot = float((a @ b) / norms) if norms > 0 else 1.0
    if abs(dot) > dot_threshold:
        return lerp(t, v0, v1)
    theta = math.acos(dot)
    s0 = math.sin((1.0 - t) * theta) / math.sin(theta)
    s1 = math.sin(t * theta) / math.sin(theta)
    return (s0 * a + s1 * b).reshape(v0.shape).to(v0.dtype)


# ---------------------------------------------------------------- frame placement


def _check_counts(num_keyframes: int, total_frames: int) -> None:
    for name, value in (("num_keyframes", num_keyframes), ("total_frames", total_frames)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"Set {name} to a whole number of at least 2 (got {value!r}).")


def keyframe_positions(num_keyframes: int, total_frames: int, loop: bool = False) -> list[tuple[int, float]]:
    """Place frames evenly along the whole path so no boundary frame is rendered twice.

    Returns one (segment, t) per frame, t in [0, 1): segment i runs from keyframe i to i + 1
    (in a loop the last segment runs back to keyframe 0). A plain walk starts on keyframe 0 and
    ends on the last keyframe, as (last segment, 1.0). A loop stops one step short of keyframe 0,
    so the video repeats seamlessly. Keyframes are hit exactly when the spacing allows it.
    """
    _check_counts(num_keyframes, total_frames)
    segments = num_keyframes if loop else num_keyframes - 1
    steps = total_frames if loop else total_frames - 1
    positions = []
    for i in range(total_frames):
        segment, rest = divmod(i * segments, steps)  # integer maths: keyframes land exactly
        positions.append((segment, rest / steps))
    if not loop:
        positions[-1] = (segments - 1, 1.0)
    return positions


def position_to_segment(p: float, num_keyframes: int, loop: bool) -> tuple[int, float]:
    """Map a global position (keyframe units) back to (segment, t) for rendering."""
    _check_counts(num_keyframes, 2)
    end = num_keyframes if loop else num_keyframes - 1
    p = float(p)
    if not -1e-9 <= p <= end + 1e-9:
        raise ValueError(f"Keep positions between 0 and {end} for {num_keyframes} keyframes (got {p}).")
    p = min(max(p, 0.0), float(end))
    if loop:
        p %= num_keyframes  # position K is keyframe 0 again
        segment = int(p)
    else:
        segment = min(int(p), num_keyframes - 2)
    return segment, p - segment


# ---------------------------------------------------------------- smooth mode


def _signature(frame) -> tuple[tuple[int, int], np.ndarray]:
    """Shrink, blur and convert a frame once so comparing it is cheap."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("Pass frames as HxWx3 uint8 arrays or PIL images.")
        image = Image.fromarray(frame)
    elif isinstance(frame, Image.Image):
        image = frame.convert("RGB")
    else:
        raise ValueError("Pass frames as HxWx3 uint8 arrays or PIL images.")
    size = image.size
    scale = DISTANCE_SIDE / max(size)
    if scale < 1:
        image = image.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), Image.BOX)
    image = image.filter(ImageFilter.GaussianBlur(1))
    return size, np.asarray(image.convert("YCbCr"), dtype=np.float32) / 255.0


def frame_distance(a, b) -> float:
    """How much the picture changes between two frames, 0 (same) to 1; see the module docstring for why this measure."""
    size_a, sig_a = _signature(a)
    size_b, sig_b = _signature(b)
    if size_a != size_b:
        raise ValueError(f"Compare frames of the same size (got {size_a} and {size_b}).")
    per_channel = np.abs(sig_a - sig_b).mean(axis=(0, 1))
    return float(per_channel @ _CHANNEL_WEIGHTS)


def respace(positions: np.ndarray, distances: np.ndarray, count: int) -> np.ndarray:
    """Pick positions an equal amount of visible change apart, instead of bunched near keyframes.

    Args:
        positions: increasing probe positions (keyframe units) where frames were rendered.
        distances: `frame_distance` between consecutive probe frames (one fewer than positions).
        count: how many positions to return; the first and last probes are kept exactly.

    Change is assumed linear between probes (piecewise-linear arc length). For a loop, probe up to
    K (keyframe 0 again), call with count + 1 and drop the last position.
    """
    positions = np.asarray(positions, dtype=np.float64)
    distances = np.asarray(distances, dtype=np.float64)
    if positions.ndim != 1 or positions.size < 2 or not np.all(np.diff(positions) > 0):
        raise ValueError("Pass at least two strictly increasing probe positions.")
    if distances.shape != (positions.size - 1,):
        raise ValueError(f"Pass one distance per pair of probes: {positions.size - 1}, not {distances.size}.")
    if not np.all(np.isfinite(distances)) or np.any(distances < 0):
        raise ValueError("Pass finite, non-negative distances.")
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise ValueError(f"Ask for at least 2 positions (got {count!r}).")
    if distances.sum() == 0:
        return np.linspace(positions[0], positions[-1], count)
    # a tiny floor keeps the arc length strictly increasing, so its inverse is well defined
    distances = np.maximum(distances, 1e-6 * distances.mean())
    arc = np.concatenate([[0.0], np.cumsum(distances)])
    result = np.interp(np.linspace(0.0, arc[-1], count), arc, positions)
    result[0], result[-1] = positions[0], positions[-1]
    return result


def max_over_mean(distances) -> float:
    """Smoothness of a walk in one number: 1.0 is perfectly even change between frames."""
    distances = np.asarray(distances, dtype=np.float64)
    if distances.size == 0 or not np.all(np.isfinite(distances)) or np.any(distances < 0):
        raise ValueError("Pass at least one finite, non-negative distance.")
    mean = distances.mean()
    return 1.0 if mean == 0 else float(distances.max() / mean)
