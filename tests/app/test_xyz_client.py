"""The X/Y/Z plot and the img2img/inpaint denoising videos through gradio_client, as a script would use them."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from engine import video
from engine.files import pnginfo

BASE = dict(prompt="a red apple", negative_prompt="", num_inference_steps=2, guidance_scale=7, width=64, height=64,
            seed=5, sampler="Euler", fast=False)
AXES = dict(x_type="CFG Scale", x_values="1, 5, 9", y_type="Steps", y_values="2, 3", z_type="Nothing", z_values="",
            video_axis="No video")


def paths(gallery):
    return [item["image"] for item in gallery]


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_plot_endpoints_have_their_api_names(client):
    names = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/xyz_plot", "/xyz_plan", "/xyz_plot_img2img", "/xyz_plan_img2img"} <= set(names)
    params = [p["parameter_name"] for p in names["/xyz_plot"]["parameters"]]
    assert params[-8:] == ["x_type", "x_values", "y_type", "y_values", "z_type", "z_values", "video_axis",
                           "fast_decode"]


def test_plan_gives_the_count_and_an_estimate_before_the_run(client):
    line = client.predict(**BASE, **AXES, api_name="/xyz_plan")
    assert line.startswith("6 cells (X 3 × Y 2), 15 steps in all: about") and "estimate" in line
    bad = client.predict(**BASE, **{**AXES, "y_type": "Sampler", "y_values": "Euler, Nope"}, api_name="/xyz_plan")
    assert "Y axis (Sampler): unknown sampler 'Nope'" in bad


def test_plot_gives_a_labelled_grid_then_cells_that_equal_plain_runs(client):
    gallery, _, info, params, player, plan, *_ = client.predict(**BASE, **AXES, api_name="/xyz_plot")
    files = paths(gallery)
    assert len(files) == 1 + 6 and player is None
    assert "6 of 6 cells" in info and "Seed used: 5" in info and "measured" in plan
    grid = pnginfo.parse_parameters(pnginfo.read_parameters(files[0]))
    assert grid["X Type"] == "CFG Scale" and grid["Y Values"] == "2, 3" and params.startswith("a red apple")
    assert gallery[6]["caption"] == "CFG Scale: 9, Steps: 3"
    plain = paths(client.predict(**{**BASE, "guidance_scale": 9, "num_inference_steps": 3, "batch_count": 1},
                                 api_name="/txt2img")[0])[0]
    assert np.array_equal(pixels(files[6]), pixels(plain))


def test_sweep_video_has_one_frame_per_value(client):
    out = client.predict(**BASE, **{**AXES, "x_values": "-5-20 [6]", "y_type": "Nothing", "video_axis": "X"},
                         api_name="/xyz_plot")
    player = out[4]
    assert video.video_info(player["video"] if isinstance(player, dict) else player)["frames"] == 6


def test_bad_axis_values_get_a_sentence(client):
    with pytest.raises(Exception, match=r"X axis \(CFG Scale\): 'nan' is not a number"):
        client.predict(**BASE, **{**AXES, "x_values": "5, nan"}, api_name="/xyz_plot")
    with pytest.raises(Exception, match="the limit is 100"):
        client.predict(**BASE, **{**AXES, "x_type": "Seed", "x_values": "1-11", "y_values": "1-10"},
                       api_name="/xyz_plot")


def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_img2img_plot_over_denoising(client, tmp_path):
    gallery = client.predict(image=handle_file(str(photo(tmp_path))), prompt="x", negative_prompt="", strength=0.5,
                             num_inference_steps=2, guidance_scale=7, size=64, seed=1, sampler="Euler", fast=False,
                             x_type="Denoising", x_values="0.5, 1", y_type="Nothing", y_values="", z_type="Nothing",
                             z_values="", video_axis="No video", api_name="/xyz_plot_img2img")[0]
    assert len(gallery) == 3
    assert "Denoising strength: 1" in pnginfo.read_parameters(paths(gallery)[2])


def test_img2img_and_inpaint_denoising_videos(client, tmp_path):
    path = photo(tmp_path)
    out = client.predict(image=handle_file(str(path)), prompt="x", negative_prompt="", strength=0.5,
                         num_inference_steps=4, guidance_scale=7, size=64, seed=1, batch_count=1, sampler="Euler",
                         denoise_video=True, api_name="/img2img")
    assert video.video_info(out[4])["frames"] == 2 + 4  # two steps at strength 0.5, then the final frame held
    layer = tmp_path / "layer.png"
    strokes = np.zeros((64, 64, 4), np.uint8)
    strokes[16:48, 16:48] = (255, 48, 48, 255)
    Image.fromarray(strokes).save(layer)
    editor = {"background": handle_file(str(path)), "layers": [handle_file(str(layer))], "composite": None}
    out = client.predict(editor=editor, prompt="x", negative_prompt="", strength=1.0, mask_blur=0,
                         inpaint_area="Only masked", padding=8, num_inference_steps=3, guidance_scale=7, size=64,
                         seed=2, batch_count=1, sampler="Euler", denoise_video=True, api_name="/inpaint")
    info = video.video_info(out[4])
    assert info["frames"] == 3 + 4 and (info["width"], info["height"]) == (64, 64)
