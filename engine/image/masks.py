"""Inpaint masks and A1111's "only masked" crop and paste-back, in plain numpy."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

EMPTY_MASK = "Paint the area to change: the mask is empty."

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def read_mask_file(source) -> Image.Image:
    """Open a mask file as-is, keeping its alpha: a transparent PNG with painted strokes is a valid mask."""
    from pathlib import Path

    from engine.files.images import MAX_SIDE

    name = Path(source).name if isinstance(source, (str, Path)) else "The mask"
    try:
        with Image.open(source) as image:
            if max(image.size) > MAX_SIDE:
                raise ValueError(f"{name} is larger than {MAX_SIDE} pixels on a side.")
            image.load()
            return image.copy()
    except (OSError, SyntaxError, Image.DecompressionBombError):
        raise ValueError(f"{name} is not a mask image Diffusion Studio can read (PNG, JPEG or WebP).") from None


def mask_to_l(mask: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Reduce any painted layer or uploaded mask to one 0/255 "L" image, so later steps see one format.

    Painted means: alpha > 0 when the mask has transparency (a brush layer), otherwise brighter
    than mid-grey in any channel (a white-on-black mask; JPEG noise near black stays unpainted).
    `size` is the image's (width, height).
    """
    is_pair = isinstance(size, (tuple, list)) and len(size) == 2
    if not (is_pair and all(isinstance(v, (int, np.integer)) for v in size)):
        raise ValueError(f"Pass the image size as (width, height) in whole pixels, not {size!r}.")
    painted = _painted(mask)
    height, width = painted.shape
    if (width, height) != tuple(size):
        raise ValueError(
            f"The mask is {width}x{height} but the image is {size[0]}x{size[1]}; "
            "draw the mask on this image or resize it to match."
        )
    if not painted.any():
        raise ValueError(EMPTY_MASK)
    return Image.fromarray(painted.astype(np.uint8) * 255, "L")


def blur_mask(mask: Image.Image | np.ndarray, radius: float) -> Image.Image:
    """Feather the mask edge so the inpainted patch fades into the photo (A1111 "mask blur", default 4)."""
    values = _as_l_array(mask)
    _check_number("blur radius", radius, minimum=0)
    if radius == 0:
        return Image.fromarray(values.copy(), "L")
    kernel = 2 * int(2.5 * radius + 0.5) + 1
    return Image.fromarray(cv2.GaussianBlur(values, (kernel, kernel), radius), "L")


def dilate_mask(mask: Image.Image | np.ndarray, pixels: int) -> Image.Image:
    """Grow the mask by `pixels` so detector masks cover hairlines and edges; negative values shrink it."""
    values = _as_l_array(mask)
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)):
        raise ValueError(f"Pass a whole number of pixels to dilate the mask by, not {pixels!r}.")
    if pixels == 0:
        return Image.fromarray(values.copy(), "L")
    reach = abs(int(pixels))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    grow = cv2.dilate if pixels > 0 else cv2.erode
    return Image.fromarray(grow(values, kernel), "L")


def masked_crop_box(
    mask: Image.Image | np.ndarray, padding: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """Pick the region A1111's "only masked" regenerates, so a small mask gets the model's full resolution.

    Returns (left, top, right, bottom), right/bottom exclusive as for `PIL.Image.crop`: the mask's
    bounding box grown by `padding` (A1111 default 32), widened to the `width`:`height` aspect of
    the work size and shifted to stay inside the image. When the image is too small in one
    direction the box takes all of it, and the aspect is then only approximate.
    """
    values = _as_l_array(mask)
    _check_number("padding", padding, minimum=0)
    _check_number("work width", width, minimum=1)
    _check_number("work height", height, minimum=1)
    rows, cols = np.nonzero(values)
    if rows.size == 0:
        raise ValueError(EMPTY_MASK)
    image_height, image_width = values.shape
    pad = int(round(padding))
    left, right = max(int(cols.min()) - pad, 0), min(int(cols.max()) + 1 + pad, image_width)
    top, bottom = max(int(rows.min()) - pad, 0), min(int(rows.max()) + 1 + pad, image_height)

    box_width, box_height = right - left, bottom - top
    if box_width / box_height > width / height:
        wanted = math.ceil(box_width * height / width)
        top, bottom = _widen(top, bottom, wanted, image_height)
    else:
        wanted = math.ceil(box_height * width / height)
        left, right = _widen(left, right, wanted, image_width)
    return left, top, right, bottom


def paste_back(
    original: Image.Image, generated: Image.Image, box: tuple[int, int, int, int], mask: Image.Image | np.ndarray
) -> Image.Image:
    """Put the regenerated crop back through the mask so nothing outside the mask changes by even one level.

    `generated` may be any size; it is resized to `box`. `mask` covers the whole `original`
    (usually blurred); where it is 0 the result equals `original`, where 255 it equals the
    generated pixels, and the box's outside is always `original`.
    """
    base = np.asarray(original.convert("RGB"))
    weights = _as_l_array(mask)
    if weights.shape != base.shape[:2]:
        raise ValueError(
            f"The mask is {weights.shape[1]}x{weights.shape[0]} but the image is "
            f"{base.shape[1]}x{base.shape[0]}; pass the mask made for this image."
        )
    left, top, right, bottom = _check_box(box, base.shape[1], base.shape[0])
    patch = generated.convert("RGB").resize((right - left, bottom - top), Image.Resampling.LANCZOS)

    region = base[top:bottom, left:right].astype(np.uint32)
    alpha = weights[top:bottom, left:right, None].astype(np.uint32)
    blended = (region * (255 - alpha) + np.asarray(patch, dtype=np.uint32) * alpha + 127) // 255
    result = base.copy()
    result[top:bottom, left:right] = blended.astype(np.uint8)
    return Image.fromarray(result, "RGB")


def _painted(mask: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(mask, Image.Image):
        if mask.mode == "1":
            return np.asarray(mask, dtype=bool)
        if mask.mode in _ALPHA_MODES or "transparency" in mask.info:
            mask = mask.convert("RGBA")
        elif mask.mode != "L":
            mask = mask.convert("RGB")
        return _painted(np.asarray(mask))
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"Pass the mask as a PIL image or a numpy array, not {type(mask).__name__}.")
    array = mask[:, :, 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"Pass the mask as an HxW, HxWx3 or HxWx4 array, not one shaped {mask.shape}.")
    if array.dtype == np.bool_:
        return array
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"Pass the mask as bool, uint8 or float 0..1 data, not {array.dtype}.")
    half = 128 if array.dtype == np.uint8 else 0.5
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3]
        if alpha.min() < (255 if array.dtype == np.uint8 else 1.0):
            return alpha > 0
        array = array[:, :, :3]
    return (array >= half) if array.ndim == 2 else (array >= half).any(axis=2)


def _as_l_array(mask: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(mask, Image.Image) and mask.mode in ("L", "1"):
        return np.array(mask.convert("L"), dtype=np.uint8)
    if isinstance(mask, np.ndarray) and mask.ndim == 2 and mask.dtype in (np.uint8, np.bool_):
        return mask.astype(np.uint8) * 255 if mask.dtype == np.bool_ else np.ascontiguousarray(mask)
    raise ValueError("Pass an 'L' mask image or a 2-D uint8 array; convert other masks with mask_to_l first.")


def _widen(low: int, high: int, wanted: int, limit: int) -> tuple[int, int]:
    """Grow [low, high) to `wanted` around its centre, then shift it back inside [0, limit)."""
    wanted = min(wanted, limit)
    extra = wanted - (high - low)
    low -= extra // 2
    high += extra - extra // 2
    if high > limit:
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, high - low
    return low, high


def _check_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    try:
        left, top, right, bottom = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"Pass the box as four numbers (left, top, right, bottom), not {box!r}.") from None
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(
            f"The box {box} does not fit inside the {width}x{height} image; use masked_crop_box to make it."
        )
    return left, top, right, bottom


def _check_number(name: str, value, minimum: float) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        raise ValueError(f"Pass a number of at least {minimum:g} for the {name}, not {value!r}.")
