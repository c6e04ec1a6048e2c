"""ControlNet preprocessors: turn a control image into the map a ControlNet model reads, at the generation size.

The names are A1111 sd-webui-controlnet's module names, so PNG info reads the same in both:

- `none`: the upload is already a map; it is only resized.
- `canny`: OpenCV's Canny edges, with A1111's low and high thresholds (100 and 200 by default).
- `depth_anything_v2`: the depth model Animate's 3D mode loads (Depth-Anything-V2-Small by default), near is white.
- `softedge_pidinet`, `softedge_hed`, `lineart_realistic`, `openpose` (the body), `mlsd`: `controlnet_aux`'s
  detectors, with their files from `lllyasviel/Annotators` in weights/Annotators or the HF cache (`annotators`).
- `invert (from white bg & black line)`: a drawing, such as a sketchpad's, as white lines on black, thresholded;
  a drawing that is already light on dark is kept as it is.
- `tile_resample`: the image itself, resampled to the size.
- `inpaint_only`: the image with the masked pixels marked; the map shows them black, and the tensor the
  ControlNet inpaint model takes (masked pixels -1, diffusers' `make_inpaint_condition`) is `inpaint_condition`.

Short names are accepted too (`PREPROCESSOR_ALIASES`): scribble, invert, depth, softedge, pidinet, hed, lineart,
tile, inpaint. The map is made from the image as it sits in the target (scaled and cropped per the resize mode),
then padded, so edges stay one pixel wide whatever the size. Nothing here touches the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.control import annotators
from engine.files.images import MAX_SIDE, load_image
from engine.image.masks import mask_to_l
from engine.pipeline.models import WEIGHTS_DIR
from engine.text.limits import excerpt

SCRIBBLE = "invert (from white bg & black line)"
"""A1111's name for a hand drawing used as a scribble map."""

PREPROCESSORS: tuple[str, ...] = ("none", "canny", "depth_anything_v2", "softedge_pidinet", "softedge_hed",
                                  "lineart_realistic", "openpose", "mlsd", SCRIBBLE, "tile_resample", "inpaint_only")
"""Every preprocessor, by A1111's name, in the order a menu lists them."""

PREPROCESSOR_ALIASES: dict[str, str] = {
    "scribble": SCRIBBLE, "invert": SCRIBBLE, "depth": "depth_anything_v2", "softedge": "softedge_pidinet",
    "pidinet": "softedge_pidinet", "hed": "softedge_hed", "lineart": "lineart_realistic", "tile": "tile_resample",
    "inpaint": "inpaint_only",
}
"""Short names for the command line, each to its A1111 name."""

RESIZE_MODES: tuple[str, ...] = ("Just Resize", "Crop and Resize", "Resize and Fill")
"""A1111's resize modes: stretch to the size; cover it and crop the overflow; fit inside and pad the rest."""

DEFAULT_RESIZE_MODE = "Crop and Resize"
"""A1111's default."""

DEFAULT_LOW_THRESHOLD, DEFAULT_HIGH_THRESHOLD = 100, 200
"""A1111's Canny thresholds."""

MLSD_VALUE_THRESHOLD, MLSD_DISTANCE_THRESHOLD = 0.1, 0.1
"""A1111's MLSD defaults."""

MAX_DETECT_SIDE = 1024
"""Longest short side a neural annotator runs at; larger maps are scaled up from it (A1111 uses 512)."""

_ALWAYS = ("none", "canny", SCRIBBLE, "tile_resample", "inpaint_only")
_DEPTH = "depth_anything_v2"
_README = annotators.README_SECTION


@dataclass(frozen=True)
class PreprocessorInfo:
    """Whether a preprocessor can run on this machine now, and if not, one sentence on what to put where."""

    name: str
    available: bool
    why_not: str  # "" when available


def canonical_preprocessor(name: str) -> str:
    """A1111's name for a preprocessor given by that name or a short one; ValueError naming the choices otherwise."""
    key = str(name).strip().lower() if name is not None else ""
    if key in PREPROCESSORS:
        return key
    if key in PREPROCESSOR_ALIASES:
        return PREPROCESSOR_ALIASES[key]
    raise ValueError(f"{excerpt(str(name))} is not a ControlNet preprocessor; choose one of "
                     f"{', '.join(PREPROCESSORS)}.")


def preprocessors(weights_dir: str | Path | None = None) -> list[PreprocessorInfo]:
    """Every preprocessor and whether it can run here, from the disk and the HF cache alone (no network)."""
    return [_info(name, weights_dir) for name in PREPROCESSORS]


def _info(name: str, weights_dir) -> PreprocessorInfo:
    reason = _why_not(name, weights_dir)
    return PreprocessorInfo(name, not reason, reason)


def _why_not(name: str, weights_dir) -> str:
    if name in _ALWAYS:
        return ""
    if name == _DEPTH:
        return "" if _depth_location(weights_dir) else _depth_missing()
    return annotators.why_unavailable(name, weights_dir)


def preprocess(name: str, image, *, width: int, height: int, low_threshold: int = DEFAULT_LOW_THRESHOLD,
               high_threshold: int = DEFAULT_HIGH_THRESHOLD, mask=None, weights_dir: str | Path | None = None,
               resize_mode: str = DEFAULT_RESIZE_MODE) -> Image.Image:
    """The RGB control map of `image` at width x height, made by the preprocessor `name`.

    low_threshold, high_threshold (`int`, defaults to 100 and 200): Canny's hysteresis thresholds, 0-255.
    mask: the inpaint mask (white is repainted), the size of `image`; needed by `inpaint_only` alone.
    weights_dir (defaults to weights/): where `Annotators/` and the depth model folders are looked for.
    resize_mode (`str`, defaults to "Crop and Resize"): one of `RESIZE_MODES`.
    """
    # 1. check inputs
    name = canonical_preprocessor(name)
    width, height = _check_size(width, height)
    _check_resize_mode(resize_mode)
    if name == "canny":
        check_thresholds(low_threshold, high_threshold)
    image = load_image(image)
    reason = _why_not(name, weights_dir)
    if reason:
        raise ValueError(reason)
    # 2. the maps that are the image itself, resized
    if name in ("none", "tile_resample"):
        return resize_for_control(image, width, height, resize_mode)
    if name == "inpaint_only":
        return _inpaint_map(image, mask, width, height, resize_mode)
    # 3. the detected maps: made at the size the image takes in the target (cropped already), then padded to it
    if resize_mode == "Resize and Fill":
        fitted = image.resize(fitted_size(image.size, width, height, resize_mode), Image.Resampling.LANCZOS)
    else:
        fitted = resize_for_control(image, width, height, resize_mode)
    detected = _detect(name, np.asarray(fitted), low_threshold, high_threshold, weights_dir)
    if detected.shape[:2] != (fitted.height, fitted.width):
        detected = cv2.resize(detected, fitted.size, interpolation=cv2.INTER_LINEAR)
    return resize_for_control(Image.fromarray(_rgb(detected)), width, height, resize_mode)


def check_thresholds(low_threshold, high_threshold) -> tuple[int, int]:
    """Canny's thresholds as two whole numbers 0-255, low <= high; ValueError with the fix otherwise."""
    values = []
    for label, value in (("low", low_threshold), ("high", high_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not float(value).is_integer() or not 0 <= value <= 255:
            raise ValueError(f"The Canny {label} threshold must be a whole number from 0 to 255, not "
                             f"{excerpt(str(value))}.")
        values.append(int(value))
    if values[0] > values[1]:
        raise ValueError(f"The Canny low threshold ({values[0]}) must not be above the high threshold "
                         f"({values[1]}); lower it or raise the high one.")
    return values[0], values[1]


def fitted_size(size: tuple[int, int], width: int, height: int, mode: str = DEFAULT_RESIZE_MODE) -> tuple[int, int]:
    """The size an image of `size` is scaled to inside a width x height target, before any crop or padding."""
    _check_resize_mode(mode)
    if mode == "Just Resize":
        return width, height
    old_width, old_height = size
    scale = (max if mode == "Crop and Resize" else min)(width / old_width, height / old_height)
    new_width, new_height = max(1, round(old_width * scale)), max(1, round(old_height * scale))
    if mode == "Crop and Resize":
        return max(new_width, width), max(new_height, height)
    return min(new_width, width), min(new_height, height)


def resize_for_control(image: Image.Image, width: int, height: int, mode: str = DEFAULT_RESIZE_MODE,
                       fill=None) -> Image.Image:
    """An image brought to width x height as A1111 does for a control map.

    mode: "Just Resize" stretches; "Crop and Resize" scales to cover and crops the centre; "Resize and Fill"
    scales to fit, centres, and fills the rest with `fill` (defaults to the median colour of the image's border).
    """
    width, height = _check_size(width, height)
    new_size = fitted_size(image.size, width, height, mode)
    scaled = image if image.size == new_size else image.resize(new_size, Image.Resampling.LANCZOS)
    if mode == "Just Resize":
        return scaled
    new_width, new_height = new_size
    if mode == "Crop and Resize":
        left, top = (new_width - width) // 2, (new_height - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    if fill is None:
        fill = _border_median(np.asarray(scaled))
    canvas = Image.new(scaled.mode, (width, height), fill)
    canvas.paste(scaled, ((width - new_width) // 2, (height - new_height) // 2))
    return canvas


def inpaint_condition(image, mask, *, width: int | None = None, height: int | None = None,
                      resize_mode: str = DEFAULT_RESIZE_MODE):
    """The control image the ControlNet inpaint model takes: a 1x3xHxW float tensor in 0..1, masked pixels -1.

    This is diffusers' `make_inpaint_condition`; pass it as the pipeline's control image. With width and height,
    image and mask are first resized (a "Resize and Fill" border counts as masked, so it is painted).
    """
    import torch

    values, masked = _inpaint_arrays(image, mask, width, height, resize_mode)
    values = values.astype(np.float32) / 255.0
    values[masked] = -1.0
    return torch.from_numpy(values.transpose(2, 0, 1)[None].copy())


# ---- the maps themselves

def _inpaint_map(image: Image.Image, mask, width: int, height: int, resize_mode: str) -> Image.Image:
    values, masked = _inpaint_arrays(image, mask, width, height, resize_mode)
    values = values.copy()
    values[masked] = 0
    return Image.fromarray(values)


def _inpaint_arrays(image, mask, width, height, resize_mode) -> tuple[np.ndarray, np.ndarray]:
    if mask is None:
        raise ValueError("The inpaint_only preprocessor needs a mask: paint the area to change.")
    image = load_image(image)
    mask = mask_to_l(mask, image.size)
    if width is not None or height is not None:
        if width is None or height is None:
            raise ValueError("Give both the width and the height of the inpaint control image, or neither.")
        _check_resize_mode(resize_mode)
        image = resize_for_control(image, width, height, resize_mode)
        mask = resize_for_control(mask, width, height, resize_mode, fill=255)
    return np.array(image), np.asarray(mask) > 127


def _detect(name: str, image: np.ndarray, low_threshold, high_threshold, weights_dir) -> np.ndarray:
    """An HxW or HxWx3 uint8 map of an HxWx3 uint8 image, about the image's size."""
    if name == "canny":
        return cv2.Canny(image, *check_thresholds(low_threshold, high_threshold))
    if name == SCRIBBLE:
        return _scribble(image)
    if name == _DEPTH:
        return _depth(image, weights_dir)
    detector = annotators.load_detector(name, weights_dir)
    resolution = max(64, min(min(image.shape[:2]), MAX_DETECT_SIDE))
    if name == "mlsd":
        return _mlsd(detector, image, resolution)
    options = {"coarse": False} if name == "lineart_realistic" else {}
    return detector(image, detect_resolution=resolution, image_resolution=resolution, output_type="np", **options)


def _scribble(image: np.ndarray) -> np.ndarray:
    """White lines on black: a dark-on-light drawing is inverted; either way, thresholded at mid-grey."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    lines = grey < 128 if np.median(grey) >= 128 else grey >= 128
    return lines.astype(np.uint8) * 255


def _mlsd(network, image: np.ndarray, resolution: int) -> np.ndarray:
    import torch
    from controlnet_aux.mlsd.utils import pred_lines  # the package is imported by now (annotators.load_detector)
    from controlnet_aux.util import resize_image

    scaled = resize_image(image, resolution)
    lines_map = np.zeros(scaled.shape[:2], dtype=np.uint8)
    with torch.no_grad():
        lines = pred_lines(scaled, network, list(scaled.shape[:2]), MLSD_VALUE_THRESHOLD, MLSD_DISTANCE_THRESHOLD)
    for line in lines:
        x_start, y_start, x_end, y_end = (int(v) for v in line)
        cv2.line(lines_map, (x_start, y_start), (x_end, y_end), 255, 1)
    return lines_map


def _depth_location(weights_dir) -> str | None:
    from engine.video.animate import depth

    try:
        return depth.find_depth_model(None, Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR,
                                      online=False)
    except ValueError:
        return None


def _depth_missing() -> str:
    from engine.video.animate.depth import DEFAULT_DEPTH_MODEL

    return (f"The {_DEPTH} preprocessor needs a depth-estimation model: put a folder such as "
            f"{DEFAULT_DEPTH_MODEL.split('/')[1]} (about 100 MB, from {DEFAULT_DEPTH_MODEL}) in weights/; "
            f"see {_README}.")


def _depth(image: np.ndarray, weights_dir) -> np.ndarray:
    from engine.video.animate import depth

    location = _depth_location(weights_dir)
    if location is None:
        raise ValueError(_depth_missing())
    near = depth.load_depth_model(location, offline=True).nearness(image)
    return np.clip(near * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---- checks and small helpers

def _check_size(width, height) -> tuple[int, int]:
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SIDE:
            raise ValueError(f"The control map {label} must be a whole number of pixels from 1 to {MAX_SIDE}, "
                             f"not {excerpt(str(value))}.")
    return int(width), int(height)


def _check_resize_mode(mode) -> None:
    if mode not in RESIZE_MODES:
        raise ValueError(f"{excerpt(str(mode))} is not a resize mode; choose {', '.join(RESIZE_MODES)}.")


def _border_median(values: np.ndarray):
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]], axis=0)
    median = np.median(border, axis=0)
    return int(median) if np.ndim(median) == 0 else tuple(int(v) for v in median)


def _rgb(values: np.ndarray) -> np.ndarray:
    if values.ndim == 2:
        return np.repeat(values[:, :, None], 3, axis=2)
    return values[:, :, :3] if values.shape[2] >= 3 else np.repeat(values[:, :, :1], 3, axis=2)
