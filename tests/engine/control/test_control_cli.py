"""`python -m engine txt2img --control ...`: one unit per --control group, bad input exits 2 with one line."""
from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from engine.cli import build_parser, main, request_from_args
from engine.files import pnginfo

TINY = ["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--backend", "torch", "--steps", "2",
        "--width", "64", "--height", "64"]


@pytest.fixture
def drawing(tmp_path):
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).ellipse((10, 10, 54, 54), outline="white", width=3)
    image.save(tmp_path / "map.png")
    return str(tmp_path / "map.png")


def test_each_control_starts_a_unit_with_its_own_flags(drawing):
    args = build_parser().parse_args(["txt2img", "--out", "x.png", "--control", "canny", "--control-model", "a",
                                      "--control-image", drawing, "--control-weight", "0.5", "--control", "depth",
                                      "--control-model", "b", "--control-image", drawing, "--control-start", "0.2",
                                      "--control-end", "0.7", "--control-mode", "ControlNet is more important"])
    first, second = request_from_args(args).control_units
    assert (first.module, first.model, first.weight, first.guidance_end) == ("canny", "a", 0.5, 1.0)
    assert (second.module, second.model, second.guidance_start, second.guidance_end, second.control_mode) == (
        "depth", "b", 0.2, 0.7, "ControlNet is more important")


def test_a_run_with_a_unit_writes_its_png_info(control_weights, drawing, tmp_path):
    out = tmp_path / "out.png"
    model = str(control_weights / "ControlNet" / "tiny_single.safetensors")
    assert main(["txt2img", "--prompt", "a ring", "--seed", "3", "--out", str(out), *TINY, "--control", "canny",
                 "--control-model", model, "--control-image", drawing]) == 0
    assert 'ControlNet 0: "Module: canny, Model: tiny_single [' in pnginfo.read_parameters(out)


@pytest.mark.parametrize("flags, message", [
    (["--control-model", "x"], "give --control PREPROCESSOR before it"),
    (["--control", "canny", "--control-image", "MAP"], "has no model"),
    (["--control", "canny", "--control-model", "x", "--control-image", "nowhere.png"], "does not exist"),
    (["--control", "canny", "--control-model", "x", "--control-image", "MAP", "--control-weight", "5"],
     "weight must be from 0 to 2"),
    (["--control", "canny", "--control-model", "x", "--control-model", "y"], "given twice"),
    (["--control", "blur", "--control-model", "x", "--control-image", "MAP"], "preprocessor"),
    (["--control", "canny", "--control-model", "nothing_here", "--control-image", "MAP"], "No ControlNet model"),
])
def test_bad_control_flags_exit_2_with_one_line(flags, message, drawing, tmp_path, capsys):
    flags = [drawing if f == "MAP" else f for f in flags]
    assert main(["txt2img", "--out", str(tmp_path / "x.png"), *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
