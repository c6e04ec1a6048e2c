"""The X/Y/Z plot: the value parser, the grid's layout, cells equal to plain runs, and sweep videos."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine import video
from engine.files import pnginfo
from engine.image.generate import image_to_image, text_to_image
from engine.image.request import ImageRequest
from engine.xyz import (
    PlotRequest,
    draw_grid,
    layout,
    parse_axis,
    parse_axis_spec,
    plan_plot,
    run_plot,
    write_plot,
)

BASE = dict(prompt="a red apple", num_inference_steps=2, guidance_scale=7, width=64, height=64, seed=3,
            sampler="Euler")


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# 1. the value parser
@pytest.mark.parametrize("spec, name, values", [
    ("CFG Scale: 5, 7.5, 10", "CFG Scale", (5.0, 7.5, 10.0)),
    ("cfg scale: 1-20 (+5)", "CFG Scale", (1.0, 6.0, 11.0, 16.0)),
    ("Steps: 1-20 (+5)", "Steps", (1, 6, 11, 16)),
    ("STEPS: 1-20 [4]", "Steps", (1, 7, 13, 20)),
    ("Steps: 20-1 (-5)", "Steps", (20, 15, 10, 5)),
    ("Steps: 2-5", "Steps", (2, 3, 4, 5)),
    ("Steps: 2, 4-6, 9", "Steps", (2, 4, 5, 6, 9)),
    ("CFG Scale: -5-20 [26]", "CFG Scale", tuple(float(v) for v in range(-5, 21))),
    ("CFG Scale: \u22125-20 [26]", "CFG Scale", tuple(float(v) for v in range(-5, 21))),
    ("CFG Scale: 1-2 [3]", "CFG Scale", (1.0, 1.5, 2.0)),
    ("Sampler: euler, DDIM ,dpm++ 2m karras", "Sampler", ("Euler", "DDIM", "DPM++ 2M Karras")),
    ('Prompt S/R: apple, "pear, ripe", fig', "Prompt S/R", ("apple", "pear, ripe", "fig")),
    ("Seed: -1, 0, 7", "Seed", (-1, 0, 7)),
    ("Width: 64, 128", "Width", (64, 128)),
])
def test_values_as_a1111_writes_them(spec, name, values):
    axis = parse_axis_spec(spec)
    assert axis.name == name and axis.values == values


def test_denoising_is_an_image_to_image_axis():
    assert parse_axis("denoising", "0.2-1 [5]", task="img2img").values == (0.2, 0.4, 0.6, 0.8, 1.0)
    with pytest.raises(ValueError, match="X axis: Denoising .* only to Image to image"):
        parse_axis("Denoising", "0.5")


@pytest.mark.parametrize("spec, message", [
    ("Sharpness: 1, 2", r"X axis: unknown axis 'Sharpness'; choose one of: Seed, Steps, CFG Scale"),
    ("Sampler: Euler, Eulr", r"X axis \(Sampler\): unknown sampler 'Eulr'"),
    ("Steps: 5-1 (+1)", r"X axis \(Steps\): the range '5-1 \(\+1\)' gives no values"),
    ("Steps: 1-20 [0]", r"X axis \(Steps\): the range '1-20 \[0\]' gives no values"),
    ("CFG Scale: 1-5 (0)", r"step of 0"),
    ("CFG Scale: 5, nan", r"X axis \(CFG Scale\): 'nan' is not a number"),
    ("CFG Scale: inf", r"'inf' is not a number"),
    ("Steps: 2.5", r"X axis \(Steps\): '2.5' is not a whole number"),
    ("Steps: 0, 5", r"X axis \(Steps\): 0 is outside 1 to 150"),
    ("CFG Scale: 40", r"X axis \(CFG Scale\): 40 is outside -30 to 30"),
    ("Width: 32", r"X axis \(Width\): 32 is outside 64 to 2048"),
    ("Steps:", r"X axis \(Steps\): give at least one value"),
    ("Steps 1, 2", r"write it as 'Name: values'"),
])
def test_bad_values_get_a_sentence_naming_the_axis_and_value(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_axis_spec(spec)


def test_plan_checks_the_whole_plot():
    base = ImageRequest(**BASE)
    with pytest.raises(ValueError, match=r"120 cells \(X 10 × Y 12\); the limit is 100"):
        plan_plot(PlotRequest(base, x="Steps: 1-10", y="Seed: 1-12"))
    with pytest.raises(ValueError, match="X and Y axes are both Steps"):
        plan_plot(PlotRequest(base, x="Steps: 2, 3", y="steps: 4"))
    with pytest.raises(ValueError, match=r"Y axis \(Prompt S/R\): 'dog' is not in the prompt"):
        plan_plot(PlotRequest(base, y="Prompt S/R: dog, cat"))
    with pytest.raises(ValueError, match="at least one axis"):
        plan_plot(PlotRequest(base))
    with pytest.raises(ValueError, match="Z axis: unknown axis 'Nope'"):
        plan_plot(PlotRequest(base, x="Steps: 2", z="Nope: 1"))


def test_every_cell_shares_the_seed_unless_seed_is_an_axis():
    plan = plan_plot(PlotRequest(ImageRequest(**{**BASE, "seed": -1}), x="CFG Scale: 1, 5", y="Steps: 2, 3"))
    assert len({c.request.seed for c in plan.cells}) == 1 and plan.cells[0].request.seed >= 0
    assert [c.request.guidance_scale for c in plan.cells] == [1, 5, 1, 5]
    assert [c.request.num_inference_steps for c in plan.cells] == [2, 2, 3, 3]
    seeded = plan_plot(PlotRequest(ImageRequest(**BASE), x="Seed: 10, 11", y="Prompt S/R: apple, pear"))
    assert [c.request.seed for c in seeded.cells] == [10, 11, 10, 11]
    assert [c.request.prompt for c in seeded.cells] == ["a red apple"] * 2 + ["a red pear"] * 2


# 2. the grid
def test_grid_size_is_cells_times_cell_size_plus_margins():
    cell = Image.new("RGB", (64, 48), (255, 0, 0))
    xs, ys = ["CFG Scale: 1", "CFG Scale: 5", "CFG Scale: 9"], ["Steps: 2", "Steps: 3"]
    grid = draw_grid([[cell] * 3, [cell] * 2 + [None]], xs, ys)
    plan = layout((64, 48), xs, ys)
    assert plan.left > 0 and plan.top > 0
    assert grid.size == (plan.left + 3 * 64, plan.top + 2 * 48)
    values = np.asarray(grid)
    assert (values[plan.top + 10, plan.left + 10] == (255, 0, 0)).all()  # cell (0, 0) where the layout says
    assert (values[plan.top + 48 + 10, plan.left + 128 + 10] == (200, 200, 200)).all()  # the unmade cell
    assert (values[: plan.top, plan.left:] < 128).any(), "no X labels drawn above the cells"
    assert (values[plan.top:, : plan.left] < 128).any(), "no Y labels drawn left of the cells"
    no_labels = draw_grid([[cell, cell]], [], [])
    assert no_labels.size == (128, 48)
    titled = layout((64, 48), xs, [], title="Sampler: Euler")
    assert titled.left == 0 and titled.top > layout((64, 48), xs, []).top


# 3. running on the tiny model
def test_each_cell_equals_a_plain_run_with_its_settings(tiny_manager, monkeypatch):
    encoded = []
    original = tiny_manager.encode
    monkeypatch.setattr(tiny_manager, "encode", lambda *a, **k: encoded.append(a) or original(*a, **k))
    req = PlotRequest(ImageRequest(**BASE), x="CFG Scale: 1, 5, 9", y="Steps: 2, 3")
    result = run_plot(tiny_manager, req)
    assert len(result.cells) == 6 and all(result.cells) and not result.interrupted
    for x, y in [(0, 0), (2, 1), (1, 1)]:
        cell = result.plan.cell(x, y)
        plain = text_to_image(tiny_manager, ImageRequest(**{**BASE, "guidance_scale": [1, 5, 9][x],
                                                             "num_inference_steps": [2, 3][y]})).images[0]
        made = result.cells[result.plan.cells.index(cell)]
        assert np.array_equal(pixels(made.image), pixels(plain.image)), f"cell ({x}, {y}) differs"
        assert made.parameters == plain.parameters
    assert len({a for a in encoded}) == 1  # one prompt: the embeddings come from one encoding
    # one grid: cells x cell size plus margins, with PNG info naming the axes
    grid = result.grids[0]
    plan = layout((64, 64), result.plan.axes["X"].labels, result.plan.axes["Y"].labels)
    assert grid.image.size == (plan.left + 3 * 64, plan.top + 2 * 64)
    fields = pnginfo.parse_parameters(grid.parameters)
    assert fields["X Type"] == "CFG Scale" and fields["X Values"] == "1, 5, 9"
    assert fields["Y Type"] == "Steps" and fields["Seed"] == "3"
    assert result.seconds_per_step and result.seconds_per_step > 0


def test_img2img_cell_equals_a_plain_run(tiny_manager, photo_64):
    base = ImageRequest(**{**BASE, "strength": 0.5})
    result = run_plot(tiny_manager, PlotRequest(base, x="Denoising: 0.5, 1"), image=photo_64)
    plain = image_to_image(tiny_manager, ImageRequest(**{**BASE, "strength": 1.0}), photo_64).images[0]
    assert np.array_equal(pixels(result.cells[1].image), pixels(plain.image))
    assert "Denoising strength: 1" in result.cells[1].parameters


def test_z_gives_one_grid_per_value_and_files_carry_parameters(tiny_manager, tmp_path):
    req = PlotRequest(ImageRequest(**BASE), x="Seed: 1, 2", z="Sampler: Euler, DDIM")
    result = run_plot(tiny_manager, req)
    assert len(result.grids) == 2 and result.grids[1].name == "grid-z2"
    assert "Z Type: Sampler" in result.grids[1].parameters
    written = write_plot(result, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").exists() and (tmp_path / "plot-z2.png").exists()
    cell = pnginfo.parse_parameters(pnginfo.read_parameters(tmp_path / "plot-cells" / "x2-z2.png"))
    assert cell["Seed"] == "2" and cell["Sampler"] == "DDIM"
    assert len(written) == 2 + 4


def test_cfg_below_one_applies_the_guidance_formula(tiny_manager):
    result = run_plot(tiny_manager, PlotRequest(ImageRequest(**BASE), x="CFG Scale: -5, 0, 0.5, 1"))
    images = [pixels(c.image) for c in result.cells]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])
    assert np.abs(images[2] - images[3]).mean() > 0  # 0.5 is not the unguided image diffusers would make at <= 1
    assert "CFG scale: -5" in result.cells[0].parameters
    with pytest.raises(ValueError, match="Guidance scale must be between 1 and 30"):
        text_to_image(tiny_manager, ImageRequest(**{**BASE, "guidance_scale": 0}))  # the tabs keep A1111's range


def test_sweep_video_has_one_captioned_frame_per_value(tiny_manager, tmp_path):
    req = PlotRequest(ImageRequest(**BASE), x="CFG Scale: -5-20 [6]", y="Steps: 2, 3", video="X", fps=3)
    result = run_plot(tiny_manager, req)
    assert len(result.frames) == 6
    assert result.frames[0].size == result.frames[-1].size
    path = write_plot(result, tmp_path / "sweep.mp4", video_out=tmp_path / "sweep.mp4")[0]
    info = video.video_info(path)
    assert info["frames"] == 6 and info["fps"] == 3
    assert "X Type" in video.read_metadata(path)["parameters"]


def test_stop_keeps_the_cells_made(tiny_manager):
    from engine.image.request import RunControl

    control = RunControl()
    seen = []

    def on_step(update):
        seen.append(update.image_index)
        if update.image_index == 1:
            control.stop()

    result = run_plot(tiny_manager, PlotRequest(ImageRequest(**BASE), x="Seed: 1, 2, 3"), on_step=on_step,
                      control=control)
    assert result.interrupted and result.cells[0] is not None and result.cells[2] is None
    assert "Stopped early: 1 of 3 cells made." in result.notes
    assert result.grids and set(seen) == {0, 1}


@pytest.mark.parametrize("task", ["img2img", "inpaint"])
def test_denoising_video_for_img2img_and_inpaint(tiny_manager, photo_64, task):
    from engine.image.generate import inpaint

    req = ImageRequest(**{**BASE, "num_inference_steps": 4, "strength": 0.5, "denoise_video": True, "mask_blur": 0})
    if task == "img2img":
        item = image_to_image(tiny_manager, req, photo_64).images[0]
    else:
        mask = np.zeros((64, 64), bool)
        mask[16:48, 16:48] = True
        item = inpaint(tiny_manager, req, photo_64, mask).images[0]
    assert len(item.steps) == 2  # strength 0.5 of 4 steps
    assert item.steps[0].size == item.image.size
    if task == "inpaint":  # the whole photo, the predicted region pasted back
        assert np.array_equal(pixels(item.steps[0])[:10], pixels(photo_64)[:10])
        assert np.abs(pixels(item.steps[-1]) - pixels(item.image)).mean() < 2


# 4. the command line
CLI = ["xyz", "--model", "tiny", "--dtype", "float32", "--prompt", "a cat", "--seed", "3", "--width", "64",
       "--height", "64"]


def test_cli_writes_the_grid_and_each_cell(tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "grid.png"
    assert main([*CLI, "--x", "CFG Scale: 1, 5, 9", "--y", "Steps: 2, 3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "6 cells (X 3 × Y 2)" in captured.err and "seed 3" in captured.out
    assert pnginfo.parse_parameters(pnginfo.read_parameters(out))["X Type"] == "CFG Scale"
    assert len(list((tmp_path / "grid-cells").glob("*.png"))) == 6


def test_cli_video_along_x(tmp_path):
    from engine.cli import main

    out = tmp_path / "sweep.mp4"
    assert main([*CLI, "--steps", "2", "--x", "CFG Scale: -5-20 [4]", "--video", "--fps", "2", "--out", str(out)]) == 0
    assert video.video_info(out)["frames"] == 4


@pytest.mark.parametrize("flags, message", [
    (["--x", "Colour: 1"], "X axis: unknown axis 'Colour'"),
    (["--x", "Sampler: Euler, Nope"], "unknown sampler 'Nope'"),
    (["--x", "CFG Scale: nan"], "'nan' is not a number"),
    (["--x", "Steps: 1-10", "--y", "Seed: 1-11"], "110 cells"),
    (["--x", "Steps: 2", "--video"], "with --video, --out is the MP4"),
])
def test_cli_bad_values_exit_2_with_one_line(tmp_path, capsys, flags, message):
    from engine.cli import main

    out = tmp_path / "x.png"
    assert main([*CLI, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
