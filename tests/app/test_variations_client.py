"""Make variations through gradio_client: N images from a result's seed, variation seeds counting up."""
import pytest
from gradio_client import handle_file

from engine.files import pnginfo

T2I = dict(prompt="a red apple", negative_prompt="", num_inference_steps=2, guidance_scale=7, width=64,
           height=64, seed=11, batch_count=1, sampler="Euler")


def fields(path) -> dict:
    return pnginfo.parse_parameters(pnginfo.read_parameters(path))


def test_make_variations_gives_n_similar_images_of_the_results_seed(client):
    result = client.predict(**T2I, api_name="/txt2img")[0]
    gallery = [{"image": handle_file(item["image"]), "caption": None} for item in result]
    made = client.predict(**{k: v for k, v in T2I.items() if k not in ("seed", "batch_count")}, gallery=gallery,
                          batch_count=3, variation_seed=40, variation_strength=0.25, api_name="/make_variations")
    images = [item["image"] for item in made[0]]
    assert len(images) == 3
    read = [fields(path) for path in images]
    assert [f["Seed"] for f in read] == ["11", "11", "11"]
    assert [f["Variation seed"] for f in read] == ["40", "41", "42"]
    assert {f["Variation seed strength"] for f in read} == {"0.25"}
    assert "Seed" in made[2] and "11" in made[2]
    loaded = client.predict(handle_file(images[1]), api_name="/png_info")
    assert loaded[8] == 11 and loaded[16:18] == (41, 0.25)  # PNG info fills the Extra group back in


def test_make_variations_without_a_result_says_what_to_do(client):
    with pytest.raises(Exception, match="Generate an image first"):
        client.predict(**{k: v for k, v in T2I.items() if k not in ("seed", "batch_count")}, gallery=[],
                       batch_count=2, variation_seed=-1, variation_strength=0.2, api_name="/make_variations")


def test_the_tab_refuses_a_strength_outside_0_to_1(client):
    with pytest.raises(Exception, match="greater than maximum value 1|Variation strength must be from 0"):
        client.predict(**T2I, variation_seed=1, variation_strength=1.5, api_name="/txt2img")


def test_the_plot_takes_the_tabs_variation_strength_for_a_var_seed_axis(client):
    base = dict(prompt="a red apple", negative_prompt="", num_inference_steps=2, guidance_scale=7, width=64,
                height=64, seed=5, sampler="Euler", fast=False)
    axes = dict(x_type="Var. seed", x_values="7, 8", y_type="Nothing", y_values="", z_type="Nothing", z_values="",
                video_axis="No video")
    gallery = client.predict(**base, **axes, variation_seed=-1, variation_strength=0.3, api_name="/xyz_plot")[0]
    cells = [fields(item["image"]) for item in gallery[1:]]
    assert [(f["Seed"], f["Variation seed"], f["Variation seed strength"]) for f in cells] == [
        ("5", "7", "0.3"), ("5", "8", "0.3")]
    line = client.predict(**base, **axes, variation_seed=-1, variation_strength=0, api_name="/xyz_plan")
    assert "Var. seed axis changes nothing" in line
