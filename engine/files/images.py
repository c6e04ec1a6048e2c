"""Loading user images safely: every upload ends as a plain 8-bit RGB image or a clear ValueError."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 4096
"""Longest side, in pixels, that `load_image` accepts."""

MAX_PIXELS = 40_000_000
"""Largest width x height that `load_image` accepts."""

READABLE_FORMATS = ("PNG", "JPEG", "WEBP")
"""Pillow format ids `load_image` opens from files; "JPEG" also covers phone MPO files."""

ImageSource = Union[str, Path, bytes, bytearray, Image.Image, np.ndarray]

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def load_image(source: ImageSource) -> Image.Image:
    """Turn whatever the user handed us into an RGB image, so the pipelines never see odd modes or huge files."""
    if isinstance(source, Image.Image):
        return _finish(source, "The image")
    if isinstance(source, np.ndarray):
        return _to_rgb(_array_to_image(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), "The uploaded file")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path} was not found; check the path and try again.")
        return _decode(path, path.name)  # the file's name only: messages never show server folders
    raise ValueError(
        f"Pass an image as a file path, bytes, a PIL image or a numpy array, not {type(source).__name__}."
    )


def snap_size(width: float, height: float, multiple: int = 8) -> tuple[int, int, str | None]:
    """Round a size to what the UNet accepts, and say so, rather than fail deep inside diffusers."""
    multiple = _check_multiple(multiple)
    _check_positive(width=width, height=height)
    new_width, new_height = _snap(width, multiple), _snap(height, multiple)
    changed = [
        (name, old, new)
        for name, old, new in (("Width", width, new_width), ("Height", height, new_height))
        if old != new
    ]
    if not changed:
        return new_width, new_height, None
    if len(changed) == 1:
        name, old, new = changed[0]
        return new_width, new_height, f"{name} {old:g} was rounded to {new} (a multiple of {multiple})."
    note = (
        f"Width {width:g} and height {height:g} were rounded to {new_width} and {new_height} "
        f"(multiples of {multiple})."
    )
    return new_width, new_height, note


def scale_to_long_side(width: float, height: float, long_side: float, multiple: int = 8) -> tuple[int, int]:
    """Size img2img output like its init image, so faces are not stretched."""
    multiple = _check_multiple(multiple)
    _check_positive(width=width, height=height, long_side=long_side)
    scale = long_side / max(width, height)
    return _snap(width * scale, multiple), _snap(height * scale, multiple)


def _decode(fp, name: str) -> Image.Image:
    """Open lazily, check the header size, then force a full decode so truncation surfaces here."""
    unreadable = f"{name} is not an image Diffusion Studio can read (PNG, JPEG or WebP)."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=READABLE_FORMATS)
    except Image.DecompressionBombError:
        raise ValueError(_too_large_message(None, None)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(_damaged_message(name) if _has_image_signature(fp) else unreadable) from None
    with image:
        return _finish(image, name)


def _finish(image: Image.Image, name: str) -> Image.Image:
    _check_size(*image.size)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except Exception:  # Pillow raises many types (OSError, SyntaxError, zlib.error ...) for damaged data
        raise ValueError(_damaged_message(name)) from None
    return _to_rgb(upright)


def _damaged_message(name: str) -> str:
    return f"{name} is damaged or incomplete; save or download it again and retry."


def _has_image_signature(fp) -> bool:
    """True when the file starts like a PNG, JPEG or WebP, so a failed open means damage, not a wrong type."""
    if isinstance(fp, Path):
        with fp.open("rb") as handle:
            head = handle.read(12)
    else:
        fp.seek(0)
        head = fp.read(12)
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return is_webp or head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))


def _check_size(width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ValueError(_too_large_message(width, height))


def _too_large_message(width: int | None, height: int | None) -> str:
    size = "The image" if width is None else f"The image is {width}x{height}, which"
    return (
        f"{size} is too large: resize it to at most {MAX_SIDE} pixels per side "
        f"and {MAX_PIXELS / 1e6:g} megapixels, then try again."
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to 8-bit RGB; transparency becomes white, as on a page."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        return Image.fromarray(_sixteen_to_eight(values), "L").convert("RGB")
    if image.mode == "F":
        return Image.fromarray(_unit_float_to_eight(np.asarray(image)), "L").convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image.copy()
    try:
        return image.convert("RGB")
    except ValueError:
        raise ValueError(f"Images in Pillow mode {image.mode} are not supported; save it as an RGB PNG.") from None


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"Pass an image array shaped HxW, HxWx3 or HxWx4, not {array.shape}.")
    height, width = array.shape[:2]
    if width == 0 or height == 0:
        raise ValueError("The image array is empty; pass one with at least one pixel.")
    _check_size(width, height)
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _sixteen_to_eight(array.astype(np.float64))
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        pixels = _unit_float_to_eight(array)
    else:
        raise ValueError(f"Pass image data as uint8, uint16 or float 0..1, not {array.dtype}.")
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    return Image.fromarray(np.ascontiguousarray(pixels), mode)


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)


def _unit_float_to_eight(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("The image array contains NaN or infinite values; pass finite floats in 0..1.")
    if values.size and (values.min() < -1e-3 or values.max() > 1 + 1e-3):
        raise ValueError(
            f"Float image data must lie in 0..1 but spans {values.min():.3g}..{values.max():.3g}; rescale it first."
        )
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def _snap(value: float, multiple: int) -> int:
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def _check_multiple(multiple) -> int:
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"Pass a whole number of at least 1 as the multiple, not {multiple!r}.")
    return multiple


def _check_positive(**values) -> None:
    for name, value in values.items():
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise ValueError(f"Pass a positive number of pixels for {name.replace('_', ' ')}, not {value!r}.")
