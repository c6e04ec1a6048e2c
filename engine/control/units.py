"""ControlNet units: what each one asks for, checked once at the engine's edge, and its A1111 PNG info field."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from engine.control.preprocess import (
    DEFAULT_HIGH_THRESHOLD,
    DEFAULT_LOW_THRESHOLD,
    DEFAULT_RESIZE_MODE,
    RESIZE_MODES,
    canonical_preprocessor,
)
from engine.image.request import as_number
from engine.text.limits import excerpt

MAX_UNITS = 3
MAX_WEIGHT = 2.0
BALANCED, PROMPT_FIRST, CONTROL_FIRST = "Balanced", "My prompt is more important", "ControlNet is more important"
CONTROL_MODES: tuple[str, ...] = (BALANCED, PROMPT_FIRST, CONTROL_FIRST)
"""A1111's control modes, in its order."""


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet unit in A1111's terms; `image` is a path, bytes or PIL image, None = the tab's own image."""

    module: str = "none"  # the preprocessor (engine.control.preprocess)
    model: str = ""  # a name in weights/ControlNet, a path, or a hub id in the local HF cache
    image: object = None
    weight: float = 1.0  # 0..2; 0 leaves the image exactly as without the unit
    guidance_start: float = 0.0  # 0..1, the fraction of steps where the control starts
    guidance_end: float = 1.0  # 0..1, where it ends
    control_mode: str = BALANCED
    resize_mode: str = DEFAULT_RESIZE_MODE
    low_threshold: int = DEFAULT_LOW_THRESHOLD  # canny: A1111's Threshold A
    high_threshold: int = DEFAULT_HIGH_THRESHOLD  # canny: A1111's Threshold B


def check_units(units, has_own_image: bool = False) -> tuple[ControlUnit, ...]:
    """The units made valid (names in A1111's spelling, numbers as numbers), or ValueError with one sentence."""
    units = tuple(units or ())
    if len(units) > MAX_UNITS:
        raise ValueError(f"At most {MAX_UNITS} ControlNet units can be used at once; got {len(units)}.")
    checked = []
    for index, unit in enumerate(units):
        if isinstance(unit, dict):
            unit = unit_from_dict(unit)
        name = f"ControlNet unit {index}"
        if not str(unit.model or "").strip():
            raise ValueError(f"{name} has no model: choose a ControlNet model (a file in weights/ControlNet).")
        module = canonical_preprocessor(unit.module or "none")
        weight = as_number(unit.weight, f"{name}'s weight")
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"{name}'s weight must be from 0 to {MAX_WEIGHT:g}; got {weight:g}.")
        start = as_number(unit.guidance_start, f"{name}'s guidance start")
        end = as_number(unit.guidance_end, f"{name}'s guidance end")
        if not 0 <= start < end <= 1:
            raise ValueError(f"{name}'s guidance start and end must satisfy 0 ≤ start < end ≤ 1; got {start:g} "
                             f"and {end:g}.")
        mode = _choice(unit.control_mode or BALANCED, CONTROL_MODES, f"{name}'s control mode")
        resize = _choice(unit.resize_mode or DEFAULT_RESIZE_MODE, RESIZE_MODES, f"{name}'s resize mode")
        low = as_number(unit.low_threshold, f"{name}'s low threshold")
        high = as_number(unit.high_threshold, f"{name}'s high threshold")
        if not 0 <= low <= high <= 255:
            raise ValueError(f"{name}'s Canny thresholds must satisfy 0 ≤ low ≤ high ≤ 255; got {low:g} and "
                             f"{high:g}.")
        if unit.image is None and not has_own_image:
            raise ValueError(f"{name} has no control image: give it one.")
        checked.append(replace(unit, module=module, model=str(unit.model).strip(), weight=weight,
                               guidance_start=start, guidance_end=end, control_mode=mode, resize_mode=resize,
                               low_threshold=int(low), high_threshold=int(high)))
    return tuple(checked)


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """A choice matched ignoring case, or one sentence listing them."""
    folded = {choice.lower(): choice for choice in choices}
    key = str(value).strip().lower()
    if key not in folded:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {excerpt(value)}.")
    return folded[key]


def with_control_weight(req, weight: float):
    """The request with ControlNet unit 0 at this weight (the X/Y/Z plot's ControlNet Weight axis)."""
    if not req.control_units:
        raise ValueError("The ControlNet Weight axis changes ControlNet unit 0: enable a ControlNet unit first.")
    first = req.control_units[0]
    first = replace(first, weight=weight) if isinstance(first, ControlUnit) else {**first, "weight": weight}
    return replace(req, control_units=(first, *req.control_units[1:]))


UNIT_KEYS = ("module", "model", "image", "weight", "guidance_start", "guidance_end", "control_mode", "resize_mode",
             "low_threshold", "high_threshold")
_KEY_ALIASES = {"preprocessor": "module", "threshold_a": "low_threshold", "threshold_b": "high_threshold",
                "input_image": "image"}


def unit_from_dict(data: dict) -> ControlUnit:
    """A unit from JSON (REST) in A1111's API key names; unknown keys are named in one sentence."""
    if not isinstance(data, dict):
        raise ValueError("Each ControlNet unit must be a JSON object with module, model and image.")
    values = {}
    for key, value in data.items():
        key = _KEY_ALIASES.get(key, key)
        if key not in UNIT_KEYS:
            raise ValueError(f"Unknown ControlNet unit field {excerpt(key)}; the fields are: {', '.join(UNIT_KEYS)}.")
        if value is not None:
            values[key] = value
    return ControlUnit(**values)


# PNG info: A1111 sd-webui-controlnet writes one field per unit, `ControlNet 0: "Module: canny, Model: ..."`
def unit_field(unit: ControlUnit, model_label: str, width: int, height: int) -> str:
    """The value of A1111's `ControlNet N` field (before the usual quoting)."""
    parts = {"Module": unit.module, "Model": model_label, "Weight": f"{unit.weight:g}",
             "Resize Mode": unit.resize_mode, "Processor Res": min(width, height),
             "Threshold A": unit.low_threshold, "Threshold B": unit.high_threshold,
             "Guidance Start": f"{unit.guidance_start:g}", "Guidance End": f"{unit.guidance_end:g}",
             "Pixel Perfect": False, "Control Mode": unit.control_mode}
    return ", ".join(f"{key}: {value}" for key, value in parts.items())


_FIELD = re.compile(r"^ControlNet (\d+)$")
_PART = re.compile(r"\s*([A-Za-z][A-Za-z ]*?):\s*([^,]*)(?:,|$)")


def units_from_fields(fields: dict) -> tuple[tuple[ControlUnit, ...], list[str]]:
    """The units read back from PNG info fields (settings only: the control image is not stored), and skipped ones."""
    units, skipped = [], []
    for key in sorted((k for k in fields if _FIELD.match(k)), key=lambda k: int(_FIELD.match(k).group(1))):
        value = fields[key]
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        parts = {name.strip(): text.strip() for name, text in _PART.findall(value)}
        try:
            model = re.sub(r"\s*\[[0-9a-fA-F]+\]$", "", parts["Model"])
            unit = ControlUnit(module=parts.get("Module", "none"), model=model,
                               weight=float(parts.get("Weight", 1)),
                               guidance_start=float(parts.get("Guidance Start", 0)),
                               guidance_end=float(parts.get("Guidance End", 1)),
                               control_mode=parts.get("Control Mode", BALANCED),
                               resize_mode=parts.get("Resize Mode", DEFAULT_RESIZE_MODE),
                               low_threshold=int(float(parts.get("Threshold A", DEFAULT_LOW_THRESHOLD))),
                               high_threshold=int(float(parts.get("Threshold B", DEFAULT_HIGH_THRESHOLD))))
            units.append(check_units([unit], has_own_image=True)[0])
        except (KeyError, ValueError):
            skipped.append(key)
    return tuple(units), skipped
