"""Hires. fix and styles through the Gradio API (gradio_client), as a script would drive the tabs."""
from pathlib import Path

import pytest
from gradio_client import handle_file
from PIL import Image

from engine.files import pnginfo
from engine.text import styles

T2I = dict(prompt="a red apple", negative_prompt="", num_inference_steps=2, guidance_scale=7, width=64,
           height=64, seed=21, batch_count=1, sampler="Euler")
EXAMPLE = str(Path(__file__).resolve().parents[2] / "presets" / "examples" / "astronaut.jpg")


@pytest.fixture
def style_file(tmp_path, monkeypatch):
    path = tmp_path / "styles.csv"
    path.write_text('name,prompt,negative_prompt\nFilm,"film photo of {prompt}, grain",cartoon\n'
                    'Sharp,"sharp focus",blurry\n', encoding="utf-8")
    monkeypatch.setattr(styles, "_active", styles.StyleFile(path))  # the server runs in this process
    return path


def first_file(gallery):
    return gallery[0]["image"]


def test_txt2img_with_hires_fix_and_png_info_back(client):
    gallery, _, info, params, _ = client.predict(**T2I, hires=True, hires_scale=2, hires_upscaler="Lanczos",
                                                 hires_steps=1, hires_strength=0.4, api_name="/txt2img")
    made = first_file(gallery)
    assert Image.open(made).size == (128, 128)
    assert "Hires upscale: 2, Hires steps: 1, Hires upscaler: Lanczos" in params and "Size: 64x64" in params
    out = client.predict(handle_file(made), api_name="/png_info")
    assert out[10:15] == (True, 2, "Lanczos", 1, 0.4)
    plain = client.predict(**T2I, hires=False, hires_scale=2, api_name="/txt2img")
    assert Image.open(first_file(plain[0])).size == (64, 64)


def test_hires_too_large_gets_a_sentence(client):
    with pytest.raises(Exception, match="above the 2048 px limit"):
        client.predict(**{**T2I, "width": 1536}, hires=True, hires_scale=2, api_name="/txt2img")


def test_styles_are_applied_at_generate_and_recorded(client, style_file):
    _, _, _, params, _ = client.predict(**T2I, styles=["Film", "Sharp"], api_name="/txt2img")
    assert params.startswith("film photo of a red apple, grain, sharp focus\nNegative prompt: cartoon, blurry\n")
    with pytest.raises(Exception, match="no style named 'Anime'; the styles are: Film, Sharp"):
        client.predict(**T2I, styles=["Anime"], api_name="/txt2img")


def test_img2img_applies_styles_too(client, style_file):
    out = client.predict(image=handle_file(EXAMPLE), prompt="a portrait", negative_prompt="", strength=0.5,
                         num_inference_steps=2, guidance_scale=7, size=64, seed=1, batch_count=1, sampler="Euler",
                         styles=["Film"], api_name="/img2img")
    assert pnginfo.parse_parameters(out[3])["prompt"] == "film photo of a portrait, grain"
