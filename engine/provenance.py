"""Provenance: an invisible watermark in the pixels and an "AI-generated" note, because aging and gender swap edit real faces.

The watermark is the `invisible-watermark` package's `dwtDctSvd` method (the package the reference
SD scripts use): 64 bits, repeated over every 8x8-pixel block of the blue-difference (U) chroma
plane, so a copy stripped of its metadata, or re-encoded as H.264 or GIF, still decodes. Anyone can
check an image with the package's stock call (our step is its default)::

    WatermarkDecoder("bytes", 64).decode(bgr_uint8, "dwtDctSvd") == WATERMARK

Install it without its declared `opencv-python` (the non-headless build would take over the `cv2`
folder that `opencv-python-headless` owns): ``pip install --no-deps invisible-watermark PyWavelets``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WATERMARK = b"DStudio1"  # 8 bytes = 64 bits, the payload every output carries
AI_NOTE = "AI-generated with Diffusion Studio"  # the metadata note: PNG text, MP4 tags, GIF comment
SOFTWARE = "Diffusion Studio"  # the PNG `Software` text
WATERMARK_METHOD = "dwtDctSvd"  # dwtDct lost the payload on 2 of 4 test images; dwtDctSvd on none
WATERMARK_SCALE = 36  # the package's default step for the U plane; a larger step is sturdier but more visible
MIN_PIXELS = 256 * 256  # the package refuses smaller images: too few blocks to repeat 64 bits reliably
MIN_SIDE = 8  # one 4x4 block of the half-size wavelet band needs at least 8 pixels each way
MAX_BIT_ERRORS = 8  # of 64; a random image gets <= 8 wrong bits by chance with odds ~3e-10

INSTALL_HINT = "pip install --no-deps invisible-watermark PyWavelets"
_BITS = len(WATERMARK) * 8
_U = 1  # channel index of U in OpenCV's YUV
_U_OFFSET = 127.5  # float YUV centres U on 0.5, uint8 YUV (what the decoder sees) on 128


def can_watermark(size: tuple[int, int]) -> bool:
    """Say whether an image of this (width, height) is big enough to carry the watermark."""
    width, height = size
    return width * height >= MIN_PIXELS and min(width, height) >= MIN_SIDE


def watermark(image: Image.Image) -> Image.Image:
    """Hide `WATERMARK` in an image so a copy stripped of its metadata can still be recognised as ours.

    Args:
        image (`PIL.Image.Image`): any mode; it is converted to RGB.

    Returns:
        A new RGB image. Images with fewer than 256x256 pixels come back unchanged (converted to RGB):
        the package refuses them, since 64 bits cannot be repeated often enough to survive re-encoding.
    """
    if not isinstance(image, Image.Image):
        raise ValueError(f"Pass the image to watermark as a PIL image, not {type(image).__name__}.")
    rgb = image.convert("RGB")
    if not can_watermark(rgb.size):
        return rgb
    return Image.fromarray(_embed(np.asarray(rgb)))


def watermark_array(frame: np.ndarray) -> np.ndarray:
    """The same as `watermark` for an HxWx3 uint8 RGB array, to spare video frames a PIL round trip."""
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        raise ValueError("Pass the frame as an HxWx3 uint8 RGB array.")
    if not can_watermark((frame.shape[1], frame.shape[0])):
        return frame
    return _embed(frame)


def read_watermark(image: Image.Image | np.ndarray) -> bytes | None:
    """Decode the 8-byte payload hidden in an image (None when it is too small to carry one).

    The result is whatever the pixels say: `WATERMARK` for our outputs, noise for anything else.
    Use `has_watermark` for a yes/no answer that tolerates a few bits lost to compression.
    """
    bits = _decode_bits(image)
    return None if bits is None else np.packbits(bits).tobytes()


def watermark_bit_errors(image: Image.Image | np.ndarray) -> int | None:
    """Count how many of the 64 decoded bits differ from `WATERMARK` (None when the image is too small)."""
    bits = _decode_bits(image)
    if bits is None:
        return None
    return int(np.count_nonzero(bits != np.unpackbits(np.frombuffer(WATERMARK, np.uint8))))


def has_watermark(image: Image.Image | np.ndarray, max_bit_errors: int = MAX_BIT_ERRORS) -> bool:
    """Tell whether an image carries our watermark, allowing `max_bit_errors` (defaults to 8) wrong bits of 64."""
    errors = watermark_bit_errors(image)
    return errors is not None and errors <= max_bit_errors


# ---------------------------------------------------------------- internals


def _imports():
    """Import the watermark package only when an output is written, with a plain install hint."""
    try:
        import cv2
        import pywt
        from imwatermark import WatermarkDecoder
        from imwatermark.dwtDctSvd import EmbedDwtDctSvd
    except ImportError as error:
        raise ImportError(
            f"Install the invisible watermark every output carries ({error}): {INSTALL_HINT}"
        ) from None
    return cv2, pywt, EmbedDwtDctSvd, WatermarkDecoder


def _embed(rgb: np.ndarray) -> np.ndarray:
    """Embed in float and round once, instead of the package's `WatermarkEncoder.encode`.

    The package's encoder (0.2.0) writes floats back into a uint8 array: saturated colours wrap
    around (specks up to 105 levels off on the astronaut photo), every pixel is floored (a colour
    cast of about 2 levels), and it swaps the horizontal and vertical detail bands. We reuse its
    block embedding (`EmbedDwtDctSvd.encode_frame`) on the same U plane, so its decoder still reads it.
    Thread-safe: every call builds its own embedder and arrays; nothing is shared.
    """
    cv2, pywt, EmbedDwtDctSvd, _ = _imports()
    height, width = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32), cv2.COLOR_BGR2YUV)
    plane = yuv[:height, :width, _U].astype(np.float64) + _U_OFFSET
    approx, details = pywt.dwt2(plane, "haar")
    bits = list(np.unpackbits(np.frombuffer(WATERMARK, np.uint8)))
    EmbedDwtDctSvd(bits, wmLen=_BITS, block=4).encode_frame(approx, WATERMARK_SCALE)  # in place
    yuv[:height, :width, _U] = pywt.idwt2((approx, details), "haar") - _U_OFFSET
    bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)
    return np.clip(np.rint(bgr[:, :, ::-1]), 0, 255).astype(np.uint8)


def _decode_bits(image: Image.Image | np.ndarray) -> np.ndarray | None:
    """Read the 64 bits with the package's own decoder, so what we check is what others can check."""
    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        rgb = image
    else:
        raise ValueError("Pass a PIL image or an HxWx3 uint8 RGB array to read its watermark.")
    if not can_watermark((rgb.shape[1], rgb.shape[0])):
        return None
    *_, WatermarkDecoder = _imports()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    payload = WatermarkDecoder("bytes", _BITS).decode(bgr, WATERMARK_METHOD, scales=[0, WATERMARK_SCALE, 0])
    return np.unpackbits(np.frombuffer(payload, np.uint8))
