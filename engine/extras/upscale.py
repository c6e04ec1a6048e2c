"""Making a picture larger by a factor or to a size, with an upscaler model or Lanczos, within a pixel cap."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from engine.extras import tiles, upscalers

MAX_SCALE = 8.0
MODEL_PASSES = 3  # as A1111: a 4x model reaches 8x in two passes, then Lanczos makes the exact size


def max_megapixels() -> float:
    """The largest result, in megapixels: `STUDIO_MAX_UPSCALE_MEGAPIXELS` (default 64, about 8000x8000)."""
    text = os.environ.get("STUDIO_MAX_UPSCALE_MEGAPIXELS", "64")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"STUDIO_MAX_UPSCALE_MEGAPIXELS must be a number of megapixels, not {text[:20]!r}.") from None
    return value if value > 0 else 64.0


def target_size(width: int, height: int, upscale_by: float | None = None,
                upscale_to: tuple[int, int] | None = None) -> tuple[int, int]:
    """The result's size for a factor (1 to 8) or a width x height, refused over the pixel cap."""
    if upscale_to:
        try:
            new_width, new_height = (int(v) for v in upscale_to)
        except (TypeError, ValueError):
            raise ValueError("Give the size to upscale to as two whole numbers, width and height.") from None
        if new_width < 1 or new_height < 1:
            raise ValueError("Give a width and height to upscale to of at least 1 pixel.")
    else:
        scale = 2.0 if upscale_by is None else upscale_by
        if not isinstance(scale, (int, float)) or not 1 <= scale <= MAX_SCALE:
            raise ValueError(f"Choose an upscale factor from 1 to {MAX_SCALE:g}.")
        new_width, new_height = round(width * scale), round(height * scale)
    cap = max_megapixels()
    if new_width * new_height > cap * 1e6:
        raise ValueError(f"A {new_width}x{new_height} result is over the {cap:g}-megapixel cap; choose a smaller "
                         "factor or size.")
    return new_width, new_height


def upscale(image: Image.Image, size: tuple[int, int], upscaler: str, weights_dir: Path,
            on_tile: Callable[[int, int], None] | None = None, allow_path: bool = False) -> Image.Image:
    """`image` at `size`: model passes while it is still smaller (within the cap), then Lanczos to the exact size."""
    path = upscalers.resolve(upscaler, weights_dir, allow_path)
    image = image.convert("RGB")
    if path is not None:
        model = upscalers.load_upscaler(path)
        cap = max_megapixels() * 1e6
        for _ in range(MODEL_PASSES):
            if image.width >= size[0] and image.height >= size[1]:
                break
            if image.width * image.height * model.scale ** 2 > cap:
                break
            image = run_model(model, image, on_tile)
    if image.size != tuple(size):
        image = image.resize(size, Image.LANCZOS)
    return image


def run_model(model, image: Image.Image, on_tile: Callable[[int, int], None] | None = None) -> Image.Image:
    """One pass of a spandrel model over tiles, in float32 on the CPU."""
    import torch

    def run(piece: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(piece.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            result = model(tensor)
        return result[0].clamp(0, 1).numpy().transpose(1, 2, 0)

    array = np.asarray(image, dtype=np.float32) / 255.0
    out = tiles.upscale_tiled(run, array, model.scale, on_tile=on_tile)
    return Image.fromarray((np.clip(out, 0, 1) * 255.0 + 0.5).astype(np.uint8))
