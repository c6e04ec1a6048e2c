"""ControlNet units from JSON (REST): A1111's field names, images as base64 or data URLs, never server paths."""
from __future__ import annotations

import base64
import binascii

from engine.control.models import SUFFIXES
from engine.control.units import ControlUnit, unit_from_dict
from engine.pipeline.models import HUB_ID


def units_from_json(items) -> tuple[ControlUnit, ...]:
    """The units of a request's `controlnet` list; an image that is not base64 is one sentence."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValueError("controlnet must be a list of units, each with module, model and image.")
    units = []
    for index, item in enumerate(items):
        unit = unit_from_dict(item)
        image = unit.image
        if image is not None:
            image = decode_image(image, index)
        check_model_name(unit.model, index)
        units.append(ControlUnit(**{**unit.__dict__, "image": image}))
    return tuple(units)


def decode_image(text, index: int) -> bytes:
    """A base64 string or a data URL as bytes (A1111's API sends either)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"ControlNet unit {index}'s image must be a base64 string or a data URL.")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"ControlNet unit {index}'s image is not valid base64; send the PNG or JPEG bytes "
                         "base64-encoded, or a data URL.") from None


def check_model_name(model, index: int) -> None:
    """Over the network a model is a name in weights/ControlNet or a hub id, never a path on the server."""
    text = str(model or "").strip()
    looks_like_path = (text.startswith(("/", "~", ".")) or "\\" in text or ".." in text
                       or text.lower().endswith(SUFFIXES) or ("/" in text and not HUB_ID.match(text)))
    if looks_like_path:
        raise ValueError(f"ControlNet unit {index}'s model must be a name from weights/ControlNet (or a hub id "
                         "in the local cache), not a path.")
