"""Upscaling a large picture in overlapping tiles, feathered together, so memory stays bounded and no seams show."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

TILE = 192
OVERLAP = 16


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering 0..length with tiles of `tile` that overlap by at least `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def feather(length: int, ramp: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Weights along one side of a tile: a linear ramp where a neighbour overlaps, 1 elsewhere."""
    weights = np.ones(length, dtype=np.float32)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        rise = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        if at_start:
            weights[:ramp] = rise
        if at_end:
            weights[-ramp:] = rise[::-1]
    return weights


def upscale_tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, tile: int = TILE,
                  overlap: int = OVERLAP, on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run `run` (HxWx3 float in 0..1 -> (H*scale)x(W*scale)x3) over tiles of `image` and blend them."""
    height, width = image.shape[:2]
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        return run(image)
    out = np.zeros((height * scale, width * scale, image.shape[2]), dtype=np.float32)
    total = np.zeros((height * scale, width * scale, 1), dtype=np.float32)
    ramp = overlap * scale
    count, done = len(ys) * len(xs), 0
    for row, y in enumerate(ys):
        for col, x in enumerate(xs):
            piece = run(image[y:y + tile, x:x + tile])
            h, w = piece.shape[:2]
            weight = (feather(h, ramp, row > 0, row < len(ys) - 1)[:, None]
                      * feather(w, ramp, col > 0, col < len(xs) - 1)[None, :])[..., None]
            out[y * scale:y * scale + h, x * scale:x * scale + w] += piece * weight
            total[y * scale:y * scale + h, x * scale:x * scale + w] += weight
            done += 1
            if on_tile:
                on_tile(done, count)
    return out / np.maximum(total, 1e-8)
