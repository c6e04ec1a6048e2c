"""engine.files.pnginfo: A1111's `parameters` text, written, parsed back, stored in PNGs and read by sd-parsers."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from engine.files.pnginfo import format_parameters, parse_parameters, png_bytes, read_parameters, save_png

SETTINGS = {
    "Steps": 20,
    "Sampler": "DPM++ 2M",
    "Schedule type": "Karras",
    "CFG scale": 7,
    "Seed": 1,
    "Size": "512x512",
    "Model": "name",
    "Denoising strength": 0.75,
}
SETTINGS_LINE = (
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, "
    "Size: 512x512, Model: name, Denoising strength: 0.75"
)


def small_image() -> Image.Image:
    return Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))


# --- format --------------------------------------------------------------------------------


def test_format_matches_the_a1111_layout():
    text = format_parameters("a photo of a cat", "blurry, lowres", SETTINGS)
    assert text == f"a photo of a cat\nNegative prompt: blurry, lowres\n{SETTINGS_LINE}"


def test_empty_negative_prompt_line_is_left_out():
    assert format_parameters("a cat", "", SETTINGS) == f"a cat\n{SETTINGS_LINE}"
    assert format_parameters("a cat", "  \n", SETTINGS) == f"a cat\n{SETTINGS_LINE}"


def test_keys_keep_the_dict_order_and_none_is_skipped():
    text = format_parameters("p", "", {"Seed": 5, "Steps": 3, "VAE": None, "Size": "8x8"})
    assert text.splitlines()[-1] == "Seed: 5, Steps: 3, Size: 8x8"


def test_values_with_commas_colons_or_newlines_are_json_quoted():
    settings = {"Steps": 20, "Lora hashes": "a: 1, b: 2", "Note": "two\nlines", "Seed": 1}
    line = format_parameters("p", "", settings).splitlines()[-1]
    assert line == 'Steps: 20, Lora hashes: "a: 1, b: 2", Note: "two\\nlines", Seed: 1'


@pytest.mark.parametrize(
    "settings",
    [{"bad:key": 1, "Steps": 1, "Seed": 1}, {"": 1}, {"prompt": "x"}, {3: 1}, [("Steps", 20)]],
)
def test_unwritable_settings_are_refused(settings):
    with pytest.raises(ValueError, match="Setting name|settings as a dict"):
        format_parameters("p", "", settings)


def test_non_text_prompt_is_refused():
    with pytest.raises(ValueError, match="prompt as text"):
        format_parameters(None, "", SETTINGS)


# --- parse ---------------------------------------------------------------------------------


def test_parse_returns_prompts_and_string_settings():
    parsed = parse_parameters(format_parameters("a photo of a cat", "blurry, lowres", SETTINGS))
    assert parsed == {
        "prompt": "a photo of a cat",
        "negative_prompt": "blurry, lowres",
        **{key: str(value) for key, value in SETTINGS.items()},
    }
    assert list(parsed)[2:] == list(SETTINGS)


@pytest.mark.parametrize(
    ("prompt", "negative"),
    [
        ("a cat", ""),
        ("", "ugly"),
        ("line one,\n  indented line two\n\nline four: with colon", "neg one\nneg two"),
        ("portrait of a 70 years old woman, (wrinkles:1.2), 8k", "cartoon, painting"),
        ("ünïcødé ☃ prompt", "日本語"),
        ('quote "this", please', 'say "no"'),
    ],
)
def test_round_trip(prompt, negative):
    settings = {
        **SETTINGS,
        "Lora hashes": "a: 1, b: 2",
        "Note": 'multi\nline, "quoted"',
        "Quoted": '"whole"',
        "Padded": " x ",
        "Empty": "",
    }
    parsed = parse_parameters(format_parameters(prompt, negative, settings))
    assert parsed["prompt"] == prompt
    assert parsed["negative_prompt"] == negative
    assert {key: parsed[key] for key in settings} == {key: str(value) for key, value in settings.items()}
    assert set(parsed) == {"prompt", "negative_prompt", *settings}


def test_parse_text_written_by_a1111():
    text = (
        "masterpiece, a castle on a hill\n"
        "at sunset\n"
        "Negative prompt: (worst quality:1.4), blurry\n"
        "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 3770548024, "
        'Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "detail: 0fb2b1a8", '
        "Version: v1.10.1"
    )
    parsed = parse_parameters(text)
    assert parsed["prompt"] == "masterpiece, a castle on a hill\nat sunset"
    assert parsed["negative_prompt"] == "(worst quality:1.4), blurry"
    assert parsed["Sampler"] == "Euler a"
    assert parsed["CFG scale"] == "6.5"
    assert parsed["Seed"] == "3770548024"
    assert parsed["Model"] == "v1-5-pruned-emaonly"
    assert parsed["Lora hashes"] == "detail: 0fb2b1a8"
    assert parsed["Version"] == "v1.10.1"


def test_text_without_a_settings_line_is_all_prompt():
    assert parse_parameters("just a prompt, nothing else") == {
        "prompt": "just a prompt, nothing else",
        "negative_prompt": "",
    }
    assert parse_parameters("a: 1, b: 2")["prompt"] == "a: 1, b: 2"  # fewer than three pairs


def test_windows_line_endings_are_accepted():
    text = format_parameters("one\ntwo", "neg", SETTINGS).replace("\n", "\r\n")
    parsed = parse_parameters(text)
    assert parsed["prompt"] == "one\ntwo" and parsed["negative_prompt"] == "neg" and parsed["Steps"] == "20"


# --- PNG files -----------------------------------------------------------------------------


def test_save_png_writes_the_parameters_chunk(tmp_path):
    text = format_parameters("a cat\non a mat", "dog", SETTINGS)
    path = save_png(small_image(), tmp_path / "out.png", text)
    assert path == tmp_path / "out.png"
    with Image.open(path) as reopened:
        assert reopened.format == "PNG"
        assert reopened.text["parameters"] == text
        np.testing.assert_array_equal(np.asarray(reopened), np.asarray(small_image()))
    assert read_parameters(path) == text
    assert read_parameters(str(path)) == text
    assert read_parameters(path.read_bytes()) == text
    with Image.open(path) as reopened:
        assert read_parameters(reopened) == text


def test_png_bytes_and_unicode_use_itxt():
    text = format_parameters("ünïcødé ☃", "日本語", SETTINGS)
    data = png_bytes(small_image(), text)
    assert data.startswith(b"\x89PNG") and b"iTXtparameters" in data
    assert read_parameters(data) == text
    latin = png_bytes(small_image(), "plain")
    assert b"tEXtparameters\x00plain" in latin


def test_numpy_images_can_be_saved():
    data = png_bytes(np.zeros((4, 6, 3), np.uint8), "x")
    assert Image.open(io.BytesIO(data)).size == (6, 4)


def test_images_without_parameters_give_none():
    assert read_parameters(png_bytes(small_image(), "")) == ""
    plain = io.BytesIO()
    small_image().save(plain, "PNG")
    assert read_parameters(plain.getvalue()) is None
    jpeg = io.BytesIO()
    small_image().save(jpeg, "JPEG")
    assert read_parameters(jpeg.getvalue()) is None
    assert read_parameters(small_image()) is None


def test_save_and_read_refuse_bad_targets(tmp_path):
    with pytest.raises(ValueError, match=r"ending in \.png"):
        save_png(small_image(), tmp_path / "out.jpg", "x")
    with pytest.raises(ValueError, match="does not exist"):
        save_png(small_image(), tmp_path / "missing" / "out.png", "x")
    with pytest.raises(ValueError, match="parameters as text"):
        png_bytes(small_image(), {"Steps": 20})
    with pytest.raises(ValueError, match="not an image"):
        read_parameters(b"definitely not a png")
    with pytest.raises(ValueError, match="was not found"):
        read_parameters(tmp_path / "nope.png")


# --- other readers -------------------------------------------------------------------------


def test_sd_parsers_reads_our_png(tmp_path):
    sd_parsers = pytest.importorskip("sd_parsers")
    text = format_parameters(
        "a photo of an astronaut, detailed",
        "blurry, lowres",
        {
            "Steps": 25,
            "Sampler": "DPM++ 2M",
            "Schedule type": "Karras",
            "CFG scale": 7.5,
            "Seed": 1234,
            "Size": "512x768",
            "Model": "realisticVision",
        },
    )
    path = save_png(small_image(), tmp_path / "astronaut.png", text)

    info = sd_parsers.ParserManager().parse(path)
    assert info is not None and info.generator.name == "AUTOMATIC1111"
    sampler = info.samplers[0]
    assert sampler.name == "DPM++ 2M"
    assert [p.value for p in sampler.prompts] == ["a photo of an astronaut, detailed"]
    assert [p.value for p in sampler.negative_prompts] == ["blurry, lowres"]
    assert sampler.parameters["steps"] == "25"
    assert sampler.parameters["cfg_scale"] == "7.5"
    assert sampler.parameters["seed"] == "1234"
    assert sampler.parameters["scheduler"] == "Karras"
    assert sampler.model.name == "realisticVision"
    assert info.metadata["Size"] == "512x768"
    json.loads(info.to_json())  # the whole record serialises
