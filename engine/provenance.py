"""Provenance: an invisible watermark in the pixels and an "AI-generated" note, because aging and gender swap edit real faces.

The watermark is the DWT-DCT-SVD method of the `invisible-watermark` package (the one the reference SD
scripts use), written here on numpy and OpenCV so it installs everywhere with the rest of the app: 64
bits, repeated over every 8x8-pixel block of the blue-difference (U) chroma plane, so a copy stripped
of its metadata, or re-encoded as H.264 or GIF, still decodes. Marks made here and marks made by the
package read the same way, with this module or with the package's stock call::

    WatermarkDecoder("bytes", 64).decode(bgr_uint8, "dwtDctSvd") == WATERMARK

The method, per 4x4 block of the U plane's Haar approximation band: the block's largest singular value
(the same before and after the block's DCT, which is orthonormal) is moved to the quarter or three
quarters of its `WATERMARK_SCALE` step for bit 0 or 1; reading takes which half of the step it is in.

Edits of a real photo (a face, an inpainted area) are marked only where they were regenerated
(`watermark_inside`), so every other pixel stays the input's; the PNG's `Watermark regions` text says
where to read. A copy without that text (metadata stripped, re-saved as JPEG, cropped) is searched for the
marked area: every 8-pixel grid phase, every window and every way 64 bits tile a box (`_search_bits`), trusted
only when the best match stands `SEARCH_MIN_Z` standard deviations above chance. A rescaled copy is not found.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WATERMARK = b"DStudio1"  # 8 bytes = 64 bits, the payload every output carries
AI_NOTE = "AI-generated with Diffusion Studio"  # the metadata note: PNG text, MP4 tags, GIF comment
SOFTWARE = "Diffusion Studio"  # the PNG `Software` text
WATERMARK_SCALE = 36  # the package's default step for the U plane; a larger step is sturdier but more visible
MIN_PIXELS = 256 * 256  # the package refuses smaller images: too few blocks to repeat 64 bits reliably
MIN_SIDE = 8  # one 4x4 block of the half-size wavelet band needs at least 8 pixels each way
MAX_BIT_ERRORS = 8  # of 64; a random image gets <= 8 wrong bits by chance with odds ~3e-10
REGIONS_KEY = "Watermark regions"  # PNG text (and PIL `info`) key: "x0,y0,x1,y1;..." boxes that carry the mark

_BITS = len(WATERMARK) * 8
_PAYLOAD = np.unpackbits(np.frombuffer(WATERMARK, np.uint8))
_PAYLOAD_SPECTRUM = np.fft.fft(1.0 - 2.0 * _PAYLOAD).astype(np.complex64)  # bit 0 -> +1, bit 1 -> -1
_BLOCK = 4  # block size in the approximation band
_U = 1  # channel index of U in OpenCV's YUV
_U_OFFSET = 127.5  # float YUV centres U on 0.5, uint8 YUV (what the decoder sees) on 128

Box = tuple[int, int, int, int]

SEARCH_MIN_Z = 8.0
"""How far a mark found without metadata must stand out from chance, in standard deviations (defaults to 8); it
must also read back within `MAX_BIT_ERRORS`. Of about 300 unmarked photos, crops and JPEGs, none scored over 7.4
but 1.5x-upscaled ones (up to 9.3, with 27 of 64 bits wrong); re-saved face edits scored 8.6 and up."""
SEARCH_PIXELS = 2048 * 2048  # pictures up to this are searched whole (about 3 s); larger ones around faces
SEARCH_AREA = 1024  # the side of the square searched around each face (or the centre, when none is found)
SEARCH_FACES = 3
_SCREEN_SIDES, _SCREEN_STRIDE = (32,), 16  # windows, in 8-pixel blocks, that rank the 64 grid phases
_REFINE_SIDES, _REFINE_STRIDE, _REFINE_PHASES = (24, 32, 40), 8, 3  # finer windows for the best phases
_TILING_INDEX = (np.arange(_BITS)[:, None] * np.arange(_BITS)[None, :]) % _BITS * _BITS + np.arange(_BITS)[None, :]


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
        64 bits cannot be repeated often enough in them to survive re-encoding.
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


def watermark_inside(image: Image.Image, mask: Image.Image, regions: list[Box] | None = None) -> Image.Image:
    """Mark only what was regenerated, so every pixel where `mask` is 0 stays the input photo's, byte for byte.

    Args:
        image (`PIL.Image.Image`): the finished edit (the regenerated area already pasted into the photo).
        mask (`PIL.Image.Image`): the paste-back mask at the image's size; 0 where the photo was kept.
        regions (`list` of `(x0, y0, x1, y1)`, *optional*, defaults to the mask's bounding box): the boxes to mark,
            one per regenerated area (one per face); each is marked on its own and read on its own.

    Returns:
        A new image (RGB, or RGBA when the input had alpha, which is kept). Its `info[REGIONS_KEY]` lists the
        boxes that carry the mark ("" when none was big enough), which `engine.files.pnginfo` writes into the PNG
        and which tells it not to mark the whole picture.
    """
    if not isinstance(image, Image.Image) or not isinstance(mask, Image.Image):
        raise ValueError("Pass the image and its mask as PIL images.")
    if mask.size != image.size:
        raise ValueError(f"The mask is {mask.size[0]}x{mask.size[1]} but the image is "
                         f"{image.size[0]}x{image.size[1]}; they must be the same size.")
    rgb = np.array(image.convert("RGB"))
    inside = np.asarray(mask.convert("L")) > 0
    boxes = [_clamp(box, image.size) for box in regions] if regions else [_bounding_box(inside)]
    marked = []
    for box in boxes:
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0 or not can_watermark((x1 - x0, y1 - y0)):
            continue
        patch = rgb[y0:y1, x0:x1]  # a view: writing it writes `rgb`
        keep = inside[y0:y1, x0:x1]
        patch[keep] = _embed(patch)[keep]
        marked.append(box)
    out = Image.fromarray(rgb)
    if "A" in image.getbands():
        out.putalpha(image.getchannel("A"))
    out.info[REGIONS_KEY] = format_regions(marked)
    return out


def format_regions(boxes: list[Box]) -> str:
    """Boxes as the PNG text stores them: "x0,y0,x1,y1;x0,y0,x1,y1"."""
    return ";".join(",".join(str(int(v)) for v in box) for box in boxes)


def parse_regions(text: str | bytes | None) -> list[Box]:
    """The boxes a `Watermark regions` text names; malformed entries are skipped, not trusted."""
    if isinstance(text, bytes):
        text = text.decode("latin-1", errors="replace")
    boxes = []
    for part in (text or "").split(";"):
        values = part.split(",")
        if len(values) == 4 and all(v.strip().lstrip("-").isdigit() for v in values):
            boxes.append(tuple(int(v) for v in values))
    return boxes


def read_watermark(image: Image.Image | np.ndarray) -> bytes | None:
    """Decode the 8-byte payload hidden in an image (None when it is too small to carry one).

    The result is whatever the pixels say: `WATERMARK` for our outputs, noise for anything else. A PNG
    whose `Watermark regions` text names where an edit was marked is read there (the best-read region).
    When neither those regions nor the whole picture read as ours, the marked area is searched for (about
    0.2 s for 512x512 pixels, 3 s for 2048x2048; larger pictures only around their faces).
    Use `has_watermark` for a yes/no answer that tolerates a few bits lost to compression.
    """
    bits = _best_bits(image)
    return None if bits is None else np.packbits(bits).tobytes()


def watermark_bit_errors(image: Image.Image | np.ndarray) -> int | None:
    """Count how many of the 64 decoded bits differ from `WATERMARK` (None when the image is too small)."""
    bits = _best_bits(image)
    return None if bits is None else int(np.count_nonzero(bits != _PAYLOAD))


def has_watermark(image: Image.Image | np.ndarray, max_bit_errors: int = MAX_BIT_ERRORS) -> bool:
    """Tell whether an image carries our watermark, allowing `max_bit_errors` (defaults to 8) wrong bits of 64."""
    errors = watermark_bit_errors(image)
    return errors is not None and errors <= max_bit_errors


# ---------------------------------------------------------------- internals


def _embed(rgb: np.ndarray) -> np.ndarray:
    """Embed in float and round once, so saturated colours never wrap and no colour cast creeps in.

    A change of the approximation band by d moves each pixel of its 2x2 Haar cell by d/2, so the band's
    detail coefficients (and with them the picture's edges) are left exactly as they were.
    Thread-safe: every call works on its own arrays; nothing is shared.
    """
    import cv2

    height, width = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32), cv2.COLOR_BGR2YUV)
    plane = yuv[:height, :width, _U].astype(np.float64) + _U_OFFSET
    delta = _approx_change(_haar_approx(plane))
    yuv[:height, :width, _U] += np.repeat(np.repeat(delta / 2, 2, axis=0), 2, axis=1).astype(np.float32)
    bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)
    return np.clip(np.rint(bgr[:, :, ::-1]), 0, 255).astype(np.uint8)


def _approx_change(approx: np.ndarray) -> np.ndarray:
    """How much each approximation coefficient moves to put bit `n % 64` into block n (row-major)."""
    blocks, shape = _blocks(approx)
    u, s, vt = np.linalg.svd(blocks)
    bits = _PAYLOAD[np.arange(len(blocks)) % _BITS]
    target = (np.floor(s[:, 0] / WATERMARK_SCALE) + 0.25 + 0.5 * bits) * WATERMARK_SCALE
    change = (target - s[:, 0])[:, None, None] * (u[:, :, :1] @ vt[:, :1, :])
    rows, cols = shape
    delta = np.zeros_like(approx)
    delta[:rows * _BLOCK, :cols * _BLOCK] = change.reshape(rows, cols, _BLOCK, _BLOCK).swapaxes(1, 2).reshape(
        rows * _BLOCK, cols * _BLOCK)
    return delta


def _decode_bits(rgb: np.ndarray) -> np.ndarray | None:
    """The stock decoder's reading: each block votes for a bit by the half of the step its singular value is in."""
    if not can_watermark((rgb.shape[1], rgb.shape[0])):
        return None
    import cv2

    height, width = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)  # uint8, as the decoder sees it
    blocks, _ = _blocks(_haar_approx(yuv[:height, :width, _U].astype(np.float64)))
    largest = np.linalg.svd(blocks, compute_uv=False)[:, 0]
    votes = (largest % WATERMARK_SCALE) > WATERMARK_SCALE * 0.5
    slot = np.arange(len(blocks)) % _BITS
    share = np.bincount(slot, weights=votes, minlength=_BITS) / np.maximum(np.bincount(slot, minlength=_BITS), 1)
    return (share * 255 > 127).astype(np.uint8)


def _best_bits(image: Image.Image | np.ndarray) -> np.ndarray | None:
    """The whole picture's bits, or, where the metadata names marked regions, the region that reads best; when
    neither reads as ours, the marked area found by `_search_bits`, if one stands out."""
    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGB"))
        regions = parse_regions(_text(image, REGIONS_KEY))
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        rgb, regions = image, []
    else:
        raise ValueError("Pass a PIL image or an HxWx3 uint8 RGB array to read its watermark.")
    crops = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in (_clamp(box, (rgb.shape[1], rgb.shape[0])) for box in regions)]
    readings = [bits for bits in map(_decode_bits, crops or [rgb]) if bits is not None]
    if not readings:
        return None
    best = min(readings, key=_errors)
    if _errors(best) > MAX_BIT_ERRORS:
        found = _search_bits(rgb)
        if found is not None and _errors(found) < _errors(best):
            best = found
    return best


def _errors(bits: np.ndarray) -> int:
    return int(np.count_nonzero(bits != _PAYLOAD))


# ---------------------------------------------------------------- finding a mark without its metadata


def _search_bits(rgb: np.ndarray) -> np.ndarray | None:
    """The bits of the marked area that stands out most, or None when none stands out by `SEARCH_MIN_Z`.

    A face edit's mark fills a box of unknown place and width, so its blocks sit on an 8-pixel grid of unknown
    phase, and block (row, col) of the box carries bit (row * cols + col) % 64. For each of the 64 phases, the
    blocks' soft votes are correlated, in windows, with every way the payload can tile a box: (cols % 64, offset),
    4096 tilings per window, all at once with one FFT. The score is in standard deviations of chance.
    """
    import cv2

    plane = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:, :, _U].astype(np.float32)
    best = None
    for x0, y0, x1, y1 in _search_areas(rgb):
        found = _search_area(plane[y0:y1, x0:x1])
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return None if best is None or best[0] < SEARCH_MIN_Z else best[1]


def _search_areas(rgb: np.ndarray) -> list[Box]:
    """The whole picture up to `SEARCH_PIXELS`; in a larger one, a `SEARCH_AREA` square around each face found (at
    most `SEARCH_FACES`), else around its centre, so the cost stays bounded."""
    height, width = rgb.shape[:2]
    if width * height <= SEARCH_PIXELS:
        return [(0, 0, width, height)]
    from engine.faces.detect import detect_faces

    side = SEARCH_AREA
    centres = [(f.x + f.width // 2, f.y + f.height // 2) for f in detect_faces(Image.fromarray(rgb))[:SEARCH_FACES]]
    areas = []
    for cx, cy in centres or [(width // 2, height // 2)]:
        x0, y0 = min(max(cx - side // 2, 0), max(width - side, 0)), min(max(cy - side // 2, 0), max(height - side, 0))
        areas.append((x0, y0, min(x0 + side, width), min(y0 + side, height)))
    return areas


def _search_area(plane: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(score, bits) of the best window: every phase screened with coarse windows, the best few searched finely."""
    cells = (plane[:-1, :-1] + plane[:-1, 1:] + plane[1:, :-1] + plane[1:, 1:]) / 2  # the Haar band at every phase
    screened = []
    for phase in np.ndindex(8, 8):
        found = _best_window(_soft_votes(cells, *phase), _SCREEN_SIDES, _SCREEN_STRIDE)
        if found is not None:
            screened.append((found[0], phase))
    best = None
    for _, phase in sorted(screened, reverse=True)[:_REFINE_PHASES]:
        found = _best_window(_soft_votes(cells, *phase), _REFINE_SIDES, _REFINE_STRIDE)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return best


def _soft_votes(cells: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Each 8x8 block's vote at this phase, +1 for bit 0 to -1 for bit 1, less its 5x5-block mean: flat or smooth
    areas, whose votes agree by chance, then vote nothing."""
    import cv2

    band = cells[dy::2, dx::2]
    rows, cols = band.shape[0] // _BLOCK, band.shape[1] // _BLOCK
    if rows < 1 or cols < 1:
        return np.zeros((0, 0), np.float32)
    blocks = np.ascontiguousarray(band[:rows * _BLOCK, :cols * _BLOCK].reshape(rows, _BLOCK, cols, _BLOCK).swapaxes(1, 2))
    vector = np.ones((rows, cols, _BLOCK), np.float32)
    for _ in range(3):  # power iteration: the U plane is positive, so one singular value dominates every block
        vector = np.einsum("rcij,rci->rcj", blocks, np.einsum("rcij,rcj->rci", blocks, vector))
        vector /= np.linalg.norm(vector, axis=2, keepdims=True)
    largest = np.linalg.norm(np.einsum("rcij,rcj->rci", blocks, vector), axis=2)
    votes = np.sin(2 * np.pi * (largest % WATERMARK_SCALE) / WATERMARK_SCALE).astype(np.float32)
    return votes - cv2.blur(votes, (5, 5), borderType=cv2.BORDER_REFLECT)


def _best_window(votes: np.ndarray, sides: tuple[int, ...], stride: int) -> tuple[float, np.ndarray] | None:
    """(score, bits) of the window and tiling whose votes match the payload best, in standard deviations."""
    from numpy.lib.stride_tricks import sliding_window_view

    best = None
    for side in sides:
        if min(votes.shape) < side:
            continue
        windows = sliding_window_view(votes, (side, side))[::stride, ::stride].reshape(-1, side, side)
        energy = (windows ** 2).sum(axis=(1, 2))
        windows, energy = windows[energy > 0.1 * side * side], energy[energy > 0.1 * side * side]  # not flat
        if not len(windows):
            continue
        scores = _tilings(windows) / np.sqrt(energy)[:, None, None]
        index, cols, offset = np.unravel_index(np.argmax(scores), scores.shape)
        if best is None or scores[index, cols, offset] > best[0]:
            rows, columns = np.indices((side, side))
            slots = (columns + rows * cols + offset) % _BITS
            sums = np.bincount(slots.ravel(), weights=windows[index].ravel(), minlength=_BITS)
            best = (float(scores[index, cols, offset]), (sums < 0).astype(np.uint8))
    return best


def _tilings(windows: np.ndarray) -> np.ndarray:
    """scores[n, k, s] = sum over block (r, c) of window n of its vote times the payload's sign for bit
    (c + r * k + s) % 64: every tiling of every window, by a 64x64 FFT of each window."""
    from scipy import fft

    count, side, _ = windows.shape
    padded = np.zeros((count, _BITS, _BITS), np.float32)
    padded[:, :side, :side] = windows
    spectrum = fft.fft2(padded).reshape(count, _BITS * _BITS)
    picked = np.conj(np.take(spectrum, _TILING_INDEX, axis=1)) * _PAYLOAD_SPECTRUM
    return fft.ifft(picked, axis=2).real


def _haar_approx(plane: np.ndarray) -> np.ndarray:
    """The approximation band of a one-level 2D Haar transform (PyWavelets' `dwt2(plane, "haar")[0]`)."""
    return (plane[0::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 0::2] + plane[1::2, 1::2]) / 2


def _blocks(band: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The band's whole 4x4 blocks, row by row, as an (n, 4, 4) stack, and the (rows, cols) of blocks."""
    rows, cols = band.shape[0] // _BLOCK, band.shape[1] // _BLOCK
    stack = band[:rows * _BLOCK, :cols * _BLOCK].reshape(rows, _BLOCK, cols, _BLOCK).swapaxes(1, 2)
    return stack.reshape(-1, _BLOCK, _BLOCK), (rows, cols)


def _bounding_box(inside: np.ndarray) -> Box:
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _clamp(box, size: tuple[int, int]) -> Box:
    width, height = size
    x0, y0, x1, y1 = (int(v) for v in box)
    return (max(0, x0), max(0, y0), min(width, x1), min(height, y1))


def _text(image: Image.Image, key: str):
    """A PNG text chunk (including those after the pixel data) or an `info` entry."""
    text = getattr(image, "text", None) if hasattr(image, "text") else None
    try:
        value = (text or {}).get(key)
    except Exception:  # noqa: BLE001 - a damaged chunk must not stop the pixels from being read
        value = None
    return value if value is not None else image.info.get(key)
