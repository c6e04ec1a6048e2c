"""The X/Y/Z plot's ControlNet Weight axis: unit 0's weight per cell, checked like every axis."""
from __future__ import annotations

import pytest

from engine.cli import build_parser, request_from_args
from engine.control.units import ControlUnit
from engine.image.request import ImageRequest
from engine.xyz.axes import parse_axis_spec
from engine.xyz.plot import apply_value


def test_the_axis_sets_unit_0s_weight_and_leaves_the_others():
    axis = parse_axis_spec("controlnet weight: 0-1 [3]")
    assert axis.name == "ControlNet Weight" and axis.values == (0.0, 0.5, 1.0)
    req = ImageRequest(control_units=(ControlUnit("canny", "a", "x"), ControlUnit("depth", "b", "y", weight=0.3)))
    cells = [apply_value(req, axis, value, "txt2img") for value in axis.values]
    assert [c.control_units[0].weight for c in cells] == [0.0, 0.5, 1.0]
    assert all(c.control_units[1].weight == 0.3 for c in cells)


def test_weights_outside_0_to_2_and_a_plot_without_a_unit_are_refused():
    with pytest.raises(ValueError, match="must be from 0 to 2"):
        parse_axis_spec("ControlNet Weight: 1, 3")
    with pytest.raises(ValueError, match="enable a ControlNet unit first"):
        apply_value(ImageRequest(), parse_axis_spec("ControlNet Weight: 1"), 1.0, "txt2img")


def test_the_xyz_command_takes_control_groups(tmp_path):
    image = tmp_path / "map.png"
    image.write_bytes(b"")
    args = build_parser().parse_args(["xyz", "--out", "g.png", "--x", "ControlNet Weight: 0, 1", "--control",
                                      "canny", "--control-model", "m", "--control-image", str(image)])
    assert request_from_args(args).control_units[0].model == "m"
