"""The command line's ControlNet groups: each --control starts a unit, the --control-* flags after it set it."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.control.units import CONTROL_MODES, ControlUnit

_FLAGS = {"--control-model": ("model", str), "--control-image": ("image", str),
          "--control-weight": ("weight", float), "--control-start": ("guidance_start", float),
          "--control-end": ("guidance_end", float), "--control-mode": ("control_mode", str),
          "--control-resize": ("resize_mode", str), "--control-low": ("low_threshold", int),
          "--control-high": ("high_threshold", int)}


class _StartUnit(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        units = list(getattr(namespace, "control", None) or [])
        units.append({"module": value})
        namespace.control = units


class _SetField(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        units = getattr(namespace, "control", None) or []
        if not units:
            parser.error(f"{option_string} belongs to a ControlNet unit: give --control PREPROCESSOR before it")
        key, _ = _FLAGS[option_string]
        if key in units[-1]:
            parser.error(f"{option_string} is given twice for ControlNet unit {len(units) - 1}; start a new unit "
                         "with --control")
        units[-1][key] = value


def add_control_flags(p: argparse.ArgumentParser) -> None:
    """--control PREPROCESSOR [--control-model M --control-image P --control-weight W ...], repeatable, up to 3."""
    p.add_argument("--control", action=_StartUnit, default=[], metavar="PREPROCESSOR",
                   help="start a ControlNet unit with this preprocessor (canny, depth, none, ...); give it again "
                        "for another unit, each followed by its --control-* flags")
    for flag, (key, kind) in _FLAGS.items():
        extra = f": one of {', '.join(CONTROL_MODES)}" if key == "control_mode" else ""
        p.add_argument(flag, action=_SetField, type=kind, dest=f"control_{key}", default=argparse.SUPPRESS,
                       help=f"the current unit's {key.replace('_', ' ')}{extra}")


def units_from_args(args) -> tuple[ControlUnit, ...]:
    """The units of --control groups; a missing model or image file is one sentence."""
    units = []
    for index, group in enumerate(getattr(args, "control", None) or []):
        if "model" not in group:
            raise ValueError(f"ControlNet unit {index} has no model: add --control-model NAME_OR_PATH after its "
                             "--control.")
        image = group.get("image")
        if image is not None and not Path(image).is_file():
            raise ValueError(f"The control image {image} of ControlNet unit {index} does not exist.")
        units.append(ControlUnit(**group))
    return tuple(units)
