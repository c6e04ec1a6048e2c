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
from engine.text.limits import count_range, excerpt

PLOT_GUIDANCE = (-30.0, 30.0)  # the CFG axis sweeps past the tabs' 1..30: at 0 and below the prompt pulls less, or away
MAX_CELLS = 100
MAX_VALUES = 100  # one axis alone can't hold more values than the plot has cells
MAX_TEXT = 20_000  # characters of one axis's values: 100 Prompt S/R texts of 200 characters

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
    "Var. seed": "int",
    "Var. strength": "float",

    "ControlNet Weight": "float",  # the weight of ControlNet unit 0
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
    raise ValueError(f"{slot} axis: unknown axis {excerpt(name)}; choose one of: {', '.join(axis_names(task))}.")


def parse_axis_spec(spec: str, task: str = "txt2img", slot: str = "X") -> Axis | None:
    """`"CFG Scale: 1, 5, 9"` -> Axis; an empty spec (or "Nothing") means no axis."""
    spec = (spec or "").strip()
    if not spec or spec.lower() == "nothing":
        return None
    name, colon, values = spec.partition(":")
    if not colon:
        raise ValueError(f"{slot} axis: write it as 'Name: values', e.g. 'CFG Scale: 5, 7.5, 10'; got "
                         f"{excerpt(spec)}.")
    return parse_axis(name, values, task, slot)


def parse_axis(name: str, text: str, task: str = "txt2img", slot: str = "X") -> Axis:
    """Read one axis's values, checked against the setting's own limits."""
    name = find_axis(name, task, slot)
    kind = AXES[name]
    if len(text or "") > MAX_TEXT:
        raise ValueError(f"{slot} axis ({name}): the values are {len(text):,} characters long; keep them under "
                         f"{MAX_TEXT:,}.")
    items = _split(text)
    if not items:
        raise ValueError(f"{slot} axis ({name}): give at least one value, e.g. {_example(name)}.")
    if len(items) > MAX_VALUES:
        _too_many(name, slot, len(items))
    if kind == "sampler":
        values = [_sampler(item, slot) for item in items]
    elif kind == "text":
        values = items
    else:
        values = []
        for item in items:
            values += _numbers(item, name, kind, slot, room=MAX_VALUES - len(values))
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


def _numbers(item: str, name: str, kind: str, slot: str, room: int = MAX_VALUES) -> list:
    """One list item: a plain number or one of A1111's ranges. A range is counted from its ends before it is
    listed, and one giving more than `room` values is refused."""
    text = item.replace("\u2212", "-")  # a typographic minus, as pasted from documents
    where = f"{slot} axis ({name})"
    match = _RANGE.match(text)
    if match:
        start, end = _to_float(match[1], item, where), _to_float(match[2], item, where)
        if kind == "int" and any(v != int(v) for v in (start, end)):
            raise ValueError(f"{where}: {excerpt(item)} must use whole numbers.")
        step = 1.0
        if match[4] is not None:  # [count]
            count = int(match[4]) if len(match[4]) <= 15 else math.inf
        else:  # (step), 1 when left out
            step = _to_float(match[3], item, where) if match[3] is not None else 1.0
            if step == 0:
                raise ValueError(f"{where}: the range {excerpt(item)} has a step of 0; use a step like (+1).")
            count = count_range(start, end, step)
        if count > room:
            _too_many(name, slot, count + MAX_VALUES - room, item)
        if not count:
            raise ValueError(f"{where}: the range {excerpt(item)} gives no values; check its direction and step "
                             "(e.g. 1-20 (+5), 20-1 (-5) or 1-20 [4]).")
        if match[4] is not None:
            values = list(np.linspace(start, end, int(count)))
        else:
            values = [start + i * step for i in range(int(count))]
        if kind == "int":
            return [int(v) for v in values]  # A1111 cuts the fraction of a counted range
        return [round(float(v), 6) for v in values]
    if not _PLAIN.match(text):
        raise ValueError(f"{where}: {excerpt(item)} is not a number; write values like {_example(name)}.")
    if room < 1:
        _too_many(name, slot, MAX_VALUES + 1)
    value = _to_float(text, item, where)
    if kind == "int":
        if value != int(value):
            raise ValueError(f"{where}: {excerpt(item)} is not a whole number.")
        return [int(value)]
    return [value]


def _too_many(name: str, slot: str, total: float, item: str | None = None) -> None:
    """The sentence for an axis with more values than the plot has cells (`total` with the range `item`), said
    before any value is listed."""
    many = f"{int(total):,} values" if total < 1e15 else "more values than can be counted"
    what = f"with the range {excerpt(item)} the axis has {many}" if item else f"the axis has {many}"
    raise ValueError(f"{slot} axis ({name}): {what}, more than the plot's {MAX_CELLS} cells; use fewer values.")


def _to_float(text: str, item: str, where: str) -> float:
    """A number as written; one too large for a float (hundreds of digits) gets a sentence, not infinity."""
    value = float(text.replace(" ", ""))
    if not math.isfinite(value):
        raise ValueError(f"{where}: {excerpt(item)} holds a number too large to use.")
    return value


def _sampler(item: str, slot: str) -> str:
    for known in sampler_names():
        if known.lower() == " ".join(item.split()).lower():
            return known
    raise ValueError(f"{slot} axis (Sampler): unknown sampler {excerpt(item)}; choose from: "
                     f"{', '.join(sampler_names())}.")


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
    if name == "Var. seed" and not (value == -1 or 0 <= value <= MAX_SEED):
        raise ValueError(f"{where}: {value} must be -1 (random) or from 0 to {MAX_SEED}.")
    if name == "Var. strength" and not 0 <= value <= 1:
        raise ValueError(f"{where}: {value:g} must be from 0 (off) to 1.")

    if name == "ControlNet Weight" and not 0 <= value <= 2:
        raise ValueError(f"{where}: {value:g} must be from 0 to 2.")


def _example(name: str) -> str:
    return {"Seed": "1, 2, 3", "Steps": "10, 20, 30 or 2-40 (+2)", "CFG Scale": "5, 7.5, 10 or -5-20 [26]",
            "Sampler": "Euler, DDIM", "Prompt S/R": "cat, dog, fox", "Denoising": "0.3, 0.5, 0.7 or 0.2-1 [5]",
            "Width": "256, 384, 512", "Height": "256, 384, 512", "Var. seed": "1, 2, 3",
            "Var. strength": "0, 0.1, 0.2 or 0-0.5 [11]", "ControlNet Weight": "0, 0.5, 1 or 0-1 [5]"}[name]
