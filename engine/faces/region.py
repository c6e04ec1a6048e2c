"""The square a face tab repaints around a face, and the soft mask that keeps every other pixel as it was."""
from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from engine.faces.detect import Face
from engine.image.masks import blur_mask

_HAIR_SHARE = 0.6  # share of the square's extra height put above the face (the rest is below)
_MASK_WIDTH = 0.84  # ellipse width as a share of the region side: hair is narrower than tall


def face_region(face: Face, image_size: tuple[int, int], padding: float = 0.5) -> tuple[int, int, int, int]:
    """Square box to regenerate: the face grown to take in hair and neck, kept inside the photo.

    padding (`float`, *optional*, defaults to 0.5): fraction of the face size added on each side,
    0 to 2; 60% of the extra height goes above the face for hair. The square is shifted to stay
    inside the image, and shrunk to the image's shorter side when it would not fit. Returns
    (left, top, right, bottom), right and bottom exclusive.
    """
    width, height = _check_size(image_size)
    _check_face(face, width, height)
    ok = isinstance(padding, (int, float, np.integer, np.floating)) and not isinstance(padding, bool)
    if not ok or not math.isfinite(padding) or not 0 <= padding <= 2:
        raise ValueError(f"Pass a face padding between 0 and 2 (a fraction of the face size), not {padding!r}.")
    size = max(face.width, face.height)
    side = min(round(size * (1 + 2 * padding)), width, height)
    left = round(face.x + face.width / 2 - side / 2)
    top = round(face.y - _HAIR_SHARE * (side - face.height))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def face_mask(
    face: Face, image_size: tuple[int, int], region: tuple[int, int, int, int], feather: int | None = None
) -> Image.Image:
    """Soft ellipse over face, hair and a little neck, so the repaint blends in and nothing else changes.

    feather (`int`, *optional*, defaults to None: the region side / 48): Gaussian blur radius in
    pixels. The ellipse is sized from the face and the region side, so it grows with `padding`;
    a wider feather shrinks it so the fade still ends inside the region (raise `padding` with it).
    Returns an "L" image the size of the photo: 255 over the face centre, exactly 0 everywhere
    outside `region`, so `masks.paste_back(photo, generated, region, mask)` leaves those pixels as
    they were.
    """
    # 1. check inputs
    width, height = _check_size(image_size)
    _check_face(face, width, height)
    left, top, right, bottom = _check_region(region, width, height)
    side = right - left
    if feather is None:
        feather = max(1, round(side / 48))
    if isinstance(feather, bool) or not isinstance(feather, (int, np.integer)) or feather < 0:
        raise ValueError(f"Pass the mask feather as a whole number of pixels, 0 or more, not {feather!r}.")
    face_size = max(face.width, face.height)
    axes = _ellipse_axes(side, face_size, feather)
    if axes is None:
        limit = next((f for f in range(feather, -1, -1) if _ellipse_axes(side, face_size, f)), 0)
        raise ValueError(f"A feather of {feather} pixels is too wide for this region; use at most {limit}.")
    half_width, half_height = axes
    reach = _reach(feather)

    # 2. ellipse inside the ideal square (the one face_region centres on the face before clamping)
    centre_x = face.x + face.width / 2
    centre_y = face.y - _HAIR_SHARE * (side - face.height) + side / 2
    values = np.zeros((height, width), np.uint8)
    cv2.ellipse(
        values, (round(centre_x), round(centre_y)), (round(half_width), round(half_height)), 0, 0, 360, 255, -1
    )

    # 3. keep the blur inside the region: cut back from inner edges, blur, zero the outside
    inner = np.zeros_like(values)
    inner[
        top + (reach if top > 0 else 0) : bottom - (reach if bottom < height else 0),
        left + (reach if left > 0 else 0) : right - (reach if right < width else 0),
    ] = 1
    soft = np.asarray(blur_mask(Image.fromarray(values * inner, "L"), feather))
    outside = np.ones_like(values, bool)
    outside[top:bottom, left:right] = False
    return Image.fromarray(np.where(outside, 0, soft).astype(np.uint8), "L")


def _check_size(image_size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"Pass the image size as (width, height) in pixels, not {image_size!r}.") from None
    if width < 1 or height < 1:
        raise ValueError(f"Pass an image size of at least 1x1 pixels, not {image_size!r}.")
    return width, height


def _check_face(face: Face, width: int, height: int) -> None:
    left, top, right, bottom = face.box
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"The face {face.box} lies outside the {width}x{height} image; detect faces on this image.")


def _check_region(region, width: int, height: int) -> tuple[int, int, int, int]:
    try:
        left, top, right, bottom = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"Pass the region as (left, top, right, bottom), not {region!r}.") from None
    if not (0 <= left < right <= width and 0 <= top < bottom <= height) or right - left != bottom - top:
        raise ValueError(
            f"The region {region!r} is not a square inside the {width}x{height} image; make it with face_region."
        )
    return left, top, right, bottom


def _reach(feather: int) -> int:
    """How far `blur_mask` spreads a mask edge (its kernel half-width), plus one pixel."""
    return int(2.5 * feather + 0.5) + 1 if feather else 0


def _ellipse_axes(side: int, face_size: int, feather: int) -> tuple[float, float] | None:
    """Half-width and half-height of the mask ellipse, or None when the feather leaves too little of it."""
    half_height = side / 2 - _reach(feather)
    half_width = min(_MASK_WIDTH * side / 2, half_height)
    return None if half_width < face_size / 4 else (half_width, half_height)
