"""The X/Y/Z plot's axes: A1111's names, its comma lists and ranges, each value checked with a plain sentence.

Values are written as A1111 writes them:
- a comma list: `5, 7.5, 10` (quote a value that holds a comma: `"red, blue", green`);
- a range with a step: `1-20 (+5)` gives 1, 6, 11, 16; `20-1 (-5)` counts down;
- a range with a count: `1-20 [4]` gives 1, 7, 13, 20 (whole-number axes cut the fraction, as A1111 does);
- a plain range on a whole-number axis: `1-5` gives 1, 2, 3, 4, 5;
- for Sampler, names (any case); for Prompt S/R, texts: the first is searched for in the prompt and each value
  replaces it in turn.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass

import numpy as np

from engine.image.request import MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE
from engine.pipeline.schedulers import sampler_names

PLOT_GUIDANCE = (-30.0, 30.0)  # the CFG axis sweeps past the tabs' 1..30: at 0 and below the prompt pulls less, or away
MAX_CELLS = 100
MAX_VALUES = 100  # one axis alone can't hold more values than the plot has cells

# A1111's spelling, in the order its menu lists them; the kind says how values are read.
AXES: dict[str, str] = {
    "Seed": "int",
    "Steps": "int",
    "CFG Scale": "float",
    "Sampler": "sampler",
    "Prompt S/R": "text",
    "Denoising": "float",
    "Width": "int",
    "Height": "int",
}
IMG2IMG_ONLY = {"Denoising"}

_NUMBER = r"[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*\)|\[\s*(\d+)\s*\])?$")
_PLAIN = re.compile(rf"^{_NUMBER}$")


@dataclass(frozen=True)
class Axis:
    """One axis of the plot: which setting it changes and the values it takes, in order."""

    name: str  # A1111's spelling, e.g. "CFG Scale"
    values: tuple  # ints, floats or strings, as the axis takes them
    text: str  # the values as written, for PNG info ("X Values")

    @property
    def labels(self) -> list[str]:
        """What the grid writes on its edge for each value, e.g. "CFG Scale: 7.5"."""
        return [f"{self.name}: {format_value(v)}" for v in self.values]

    def __len__(self) -> int:
        return len(self.values)


def format_value(value) -> str:
    """7.0 -> '7', 0.75 -> '0.75', text as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def axis_names(task: str = "txt2img") -> list[str]:
    """The axes a task offers (Denoising only where there is a start image)."""
    return [name for name in AXES if task != "txt2img" or name not in IMG2IMG_ONLY]


def find_axis(name: str, task: str = "txt2img", slot: str = "X") -> str:
    """A1111's spelling of an axis name given in any case; a sentence naming the slot and the name if unknown."""
    wanted = " ".join(str(name).split()).lower()
    for known in AXES:
        if known.lower() == wanted:
            if task == "txt2img" and known in IMG2IMG_ONLY:
                raise ValueError(f"{slot} axis: {known} is the img2img denoising strength; it applies only to "
                                 "Image to image.")
            return known
    raise ValueError(f"{slot} axis: unknown axis {name!r}; choose one of: {', '.join(axis_names(task))}.")


def parse_axis_spec(spec: str, task: str = "txt2img", slot: str = "X") -> Axis | None:
    """`"CFG Scale: 1, 5, 9"` -> Axis; an empty spec (or "Nothing") means no axis."""
    spec = (spec or "").strip()
    if not spec or spec.lower() == "nothing":
        return None
    name, colon, values = spec.partition(":")
    if not colon:
        raise ValueError(f"{slot} axis: write it as 'Name: values', e.g. 'CFG Scale: 5, 7.5, 10'; got {spec!r}.")
    return parse_axis(name, values, task, slot)


def parse_axis(name: str, text: str, task: str = "txt2img", slot: str = "X") -> Axis:
    """Read one axis's values, checked against the setting's own limits."""
    name = find_axis(name, task, slot)
    kind = AXES[name]
    items = _split(text)
    if not items:
        raise ValueError(f"{slot} axis ({name}): give at least one value, e.g. {_example(name)}.")
    if kind == "sampler":
        values = [_sampler(item, slot) for item in items]
    elif kind == "text":
        values = items
    else:
        values = [v for item in items for v in _numbers(item, name, kind, slot)]
    if len(values) > MAX_VALUES:
        raise ValueError(f"{slot} axis ({name}): {len(values)} values is more than the plot's {MAX_CELLS} cells; "
                         "use fewer values.")
    for value in values:
        _check_value(name, value, slot)
    return Axis(name, tuple(values), ", ".join(items))


def _split(text: str) -> list[str]:
    """A1111 reads values as one CSV line, so a quoted value may hold a comma."""
    text = (text or "").replace("\n", ",").strip()
    if not text:
        return []
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [item.strip() for item in row if item.strip()]


def _numbers(item: str, name: str, kind: str, slot: str) -> list:
    """One list item: a plain number or one of A1111's ranges."""
    text = item.replace("\u2212", "-")  # a typographic minus, as pasted from documents
    where = f"{slot} axis ({name})"
    match = _RANGE.match(text)
    if match:
        start, end = _to_float(match[1]), _to_float(match[2])
        if match[4] is not None:  # [count]
            values = list(np.linspace(start, end, int(match[4])))
        else:  # (step), 1 when left out
            step = _to_float(match[3]) if match[3] is not None else 1.0
            if step == 0:
                raise ValueError(f"{where}: the range {item!r} has a step of 0; use a step like (+1).")
            count = math.floor((end - start) / step + 1e-9) + 1
            values = [start + i * step for i in range(max(count, 0))]
        if not values:
            raise ValueError(f"{where}: the range {item!r} gives no values; check its direction and step "
                             "(e.g. 1-20 (+5), 20-1 (-5) or 1-20 [4]).")
        if kind == "int":
            if any(v != int(v) for v in (start, end)):
                raise ValueError(f"{where}: {item!r} must use whole numbers.")
            return [int(v) for v in values]  # A1111 cuts the fraction of a counted range
        return [round(float(v), 6) for v in values]
    if not _PLAIN.match(text):
        raise ValueError(f"{where}: {item!r} is not a number; write values like {_example(name)}.")
    value = _to_float(text)
    if kind == "int":
        if value != int(value):
            raise ValueError(f"{where}: {item!r} is not a whole number.")
        return [int(value)]
    return [value]


def _to_float(text: str) -> float:
    return float(text.replace(" ", ""))


def _sampler(item: str, slot: str) -> str:
    for known in sampler_names():
        if known.lower() == " ".join(item.split()).lower():
            return known
    raise ValueError(f"{slot} axis (Sampler): unknown sampler {item!r}; choose from: {', '.join(sampler_names())}.")


def _check_value(name: str, value, slot: str) -> None:
    """Each setting's own limits, said with the axis and the value."""
    where = f"{slot} axis ({name})"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number.")
    if name == "Steps" and not 1 <= value <= MAX_STEPS:
        raise ValueError(f"{where}: {value} is outside 1 to {MAX_STEPS} steps.")
    if name == "CFG Scale" and not PLOT_GUIDANCE[0] <= value <= PLOT_GUIDANCE[1]:
        raise ValueError(f"{where}: {value:g} is outside {PLOT_GUIDANCE[0]:g} to {PLOT_GUIDANCE[1]:g}.")
    if name == "Seed" and not (value == -1 or 0 <= value <= MAX_SEED):
        raise ValueError(f"{where}: {value} must be -1 (random) or from 0 to {MAX_SEED}.")
    if name in ("Width", "Height") and not MIN_SIDE <= value <= MAX_SIDE:
        raise ValueError(f"{where}: {value} is outside {MIN_SIDE} to {MAX_SIDE} pixels.")
    if name == "Denoising" and not 0 < value <= 1:
        raise ValueError(f"{where}: {value:g} must be above 0 and at most 1.")


def _example(name: str) -> str:
    return {"Seed": "1, 2, 3", "Steps": "10, 20, 30 or 2-40 (+2)", "CFG Scale": "5, 7.5, 10 or -5-20 [26]",
            "Sampler": "Euler, DDIM", "Prompt S/R": "cat, dog, fox", "Denoising": "0.3, 0.5, 0.7 or 0.2-1 [5]",
            "Width": "256, 384, 512", "Height": "256, 384, 512"}[name]
