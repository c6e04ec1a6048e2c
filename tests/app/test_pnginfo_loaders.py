"""PNG info in Image to image and Inpaint: a picture made in the tab loads back into that tab's own widgets."""
from __future__ import annotations

import gradio as gr
import pytest
import torch
from gradio_client import handle_file
from PIL import Image, ImageDraw

from engine.control.units import MAX_UNITS, ControlUnit
from engine.files import pnginfo
from engine.image.generate import image_to_image, inpaint
from engine.image.request import ImageRequest
from tabs.control_common import LOADED_FIELDS
from tabs.pnginfo_common import widget_values
from tests.engine import lora_files

CONTROL = "tiny_control"
UNITS = (ControlUnit(module="canny", model=CONTROL, weight=0.8, guidance_start=0.1, guidance_end=0.9,
                     control_mode="My prompt is more important", resize_mode="Just Resize", low_threshold=50,
                     high_threshold=150),
         ControlUnit(module="none", model=CONTROL, weight=1.2, guidance_start=0.0, guidance_end=0.5,
                     control_mode="ControlNet is more important", resize_mode="Resize and Fill"))
UNIT_LABELS = ("Enable", "Preprocessor", "Model", "Control weight", "Starting control step", "Ending control step",
               "Control mode", "Resize mode", "Canny low threshold", "Canny high threshold")
PLAIN = "a cottage\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 4, Size: 64x64"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The app on the tiny model, with a tiny ControlNet and LoRA in its weights folder; its loaders by api_name."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from app import build_demo
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("weights")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=root)
    torch.manual_seed(0)
    model = ControlNetModel.from_unet(manager.base().unet)
    (root / "ControlNet").mkdir()
    save_file(model.state_dict(), root / "ControlNet" / f"{CONTROL}.safetensors")
    (root / "Lora").mkdir()
    save_file(lora_files.kohya_lora(manager.base()), root / "Lora" / "door_style.safetensors")
    demo = build_demo(manager)
    loaders = {f.api_name: f for f in demo.fns.values() if f.api_name and f.api_name.startswith("png_info")}
    return manager, loaders


def photo() -> Image.Image:
    image = Image.new("RGB", (96, 64), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((20, 10, 70, 54), fill=(230, 200, 60), outline="white", width=3)
    return image


def load(loader, path) -> tuple[str, dict, list[dict]]:
    """The note, the tab's widgets by label, and the ControlNet units' widgets by label, after a drop of `path`."""
    values = loader.fn(str(path))
    units_start = len(values) - MAX_UNITS * len(LOADED_FIELDS)
    widgets = {component.label: value for component, value in zip(loader.outputs[2:units_start], values[2:])}
    assert len(widgets) == units_start - 2  # one value per label
    assert [c.label for c in loader.outputs[units_start:]] == list(UNIT_LABELS) * MAX_UNITS
    units = [dict(zip(UNIT_LABELS, values[i:i + len(UNIT_LABELS)]))
             for i in range(units_start, len(values), len(UNIT_LABELS))]
    return values[1], widgets, units


def unit_widgets(unit: ControlUnit) -> dict:
    return dict(zip(UNIT_LABELS, (True, unit.module, unit.model, unit.weight, unit.guidance_start, unit.guidance_end,
                                  unit.control_mode, unit.resize_mode, unit.low_threshold, unit.high_threshold)))


def made(result, tmp_path, name: str):
    item = result.images[0]
    return pnginfo.save_png(item.image, tmp_path / name, item.parameters)


def test_an_image_to_image_png_loads_back_into_image_to_image(studio, tmp_path):
    manager, loaders = studio
    req = ImageRequest(prompt="a lighthouse, oil painting", negative_prompt="blurry", strength=0.6,
                       num_inference_steps=3, guidance_scale=5.5, width=64, height=64, seed=123,
                       sampler="DPM++ 2M Karras", variation_seed=7, variation_strength=0.25, control_units=UNITS)
    path = made(image_to_image(manager, req, photo()), tmp_path, "img2img.png")
    note, widgets, units = load(loaders["png_info_img2img"], path)
    assert widgets == {"Prompt": "a lighthouse, oil painting", "Negative prompt": "blurry",
                       "Denoising strength": 0.6, "Steps": 3, "Guidance scale (CFG)": 5.5,
                       "Longer side (aspect ratio is kept)": 64, "Seed (-1 = random)": 123,
                       "Sampler": "DPM++ 2M Karras", "Styles (applied when you generate)": [],
                       "Variation seed (-1 = random)": 7, "Variation strength (0 = off)": 0.25,
                       next(label for label in widgets if label.startswith("Fast decode")): False}
    assert units[:2] == [unit_widgets(unit) for unit in UNITS]
    assert units[2]["Enable"] is False
    assert "Not used" not in note and "not in weights/ControlNet" not in note
    assert "leave them empty to use this tab's image" in note


def test_an_inpaint_png_loads_back_into_inpaint_with_its_mask_settings(studio, tmp_path):
    manager, loaders = studio
    mask = Image.new("L", (96, 64), 0)
    ImageDraw.Draw(mask).rectangle((30, 16, 60, 44), fill=255)
    req = ImageRequest(prompt="a red door <lora:door_style:0.7>", strength=0.55, mask_blur=6, only_masked=True,
                       only_masked_padding=16, num_inference_steps=2, guidance_scale=8, width=64, height=64,
                       seed=9, sampler="Euler a", control_units=UNITS)
    path = made(inpaint(manager, req, photo(), mask), tmp_path, "inpaint.png")
    note, widgets, units = load(loaders["png_info_inpaint"], path)
    assert {label: widgets[label] for label in ("Prompt", "Denoising strength", "Mask blur", "Inpaint area",
                                                "Only-masked padding (px)", "Work size (longer side)", "Steps",
                                                "Guidance scale (CFG)", "Seed (-1 = random)", "Sampler")} == {
        "Prompt": "a red door <lora:door_style:0.7>", "Denoising strength": 0.55, "Mask blur": 6,
        "Inpaint area": "Only masked", "Only-masked padding (px)": 16, "Work size (longer side)": 64, "Steps": 2,
        "Guidance scale (CFG)": 8.0, "Seed (-1 = random)": 9, "Sampler": "Euler a"}
    assert units[:2] == [unit_widgets(unit) for unit in UNITS]
    assert "Not used" not in note


def test_a_whole_picture_inpaint_sets_the_area_and_leaves_the_padding():
    fields = widget_values(PLAIN + ", Denoising strength: 0.4, Mask blur: 2",
                           ["strength", "mask_blur", "inpaint_area", "padding"])[0]
    assert fields[:3] == [0.4, 2, "Whole picture"] and isinstance(fields[3], type(gr.skip()))


def test_fields_a_tab_has_no_widget_for_are_named_and_others_left_as_they_are(studio, tmp_path):
    _, loaders = studio
    text = ('a castle <lora:castle:0.8>\nSteps: 12, Sampler: Euler, CFG scale: 6, Seed: 3, Size: 512x768, '
            'Variation seed: 5, Variation seed strength: 0.3, Denoising strength: 0.45, Hires upscale: 2, '
            'Hires upscaler: Latent, Masked content: fill')
    path = pnginfo.save_png(Image.new("RGB", (64, 64)), tmp_path / "a1111.png", text)
    note, widgets, _ = load(loaders["png_info_inpaint"], path)
    assert note.endswith("Not used: Variation seed, Variation seed strength, Hires upscale, Hires upscaler, "
                         "Masked content fill (original used).")
    assert widgets["Prompt"] == "a castle <lora:castle:0.8>" and widgets["Work size (longer side)"] == 768
    assert widgets["Denoising strength"] == 0.45
    skip = type(gr.skip())
    assert all(isinstance(widgets[label], skip) for label in ("Mask blur", "Inpaint area", "Only-masked padding (px)"))
    note, widgets, _ = load(loaders["png_info_img2img"], path)
    assert "Not used: Hires upscale, Hires upscaler, Masked content." in note
    assert widgets["Variation seed (-1 = random)"] == 5 and widgets["Variation strength (0 = off)"] == 0.3


def test_a_missing_controlnet_model_is_named_and_the_unit_still_set(studio, tmp_path):
    _, loaders = studio
    text = (PLAIN + ', Denoising strength: 0.5, ControlNet 0: "Module: depth, Model: control_v11f1p_sd15_depth '
            '[cfd03158], Weight: 0.7, Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 100, '
            'Threshold B: 200, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced"')
    path = pnginfo.save_png(Image.new("RGB", (64, 64)), tmp_path / "depth.png", text)
    for name in ("png_info_img2img", "png_info_inpaint"):
        note, _, units = load(loaders[name], path)
        assert "ControlNet 0's model control_v11f1p_sd15_depth is not in weights/ControlNet" in note
        assert units[0]["Model"] == "control_v11f1p_sd15_depth" and units[0]["Enable"] is True
        assert [unit["Enable"] for unit in units[1:]] == [False, False]


def test_a_picture_without_parameters_gets_one_sentence_over_the_api(client, tmp_path):
    bare = tmp_path / "bare.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(bare)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for endpoint in ("/png_info_img2img", "/png_info_inpaint"):
        with pytest.raises(Exception, match="This image carries no generation parameters."):
            client.predict(handle_file(str(bare)), api_name=endpoint)
        with pytest.raises(Exception, match="notes.txt is not an image Diffusion Studio can read"):
            client.predict(handle_file(str(notes)), api_name=endpoint)


def test_the_loaders_answer_over_the_api(client, tmp_path):
    path = pnginfo.save_png(Image.new("RGB", (64, 64)), tmp_path / "plain.png", PLAIN + ", Denoising strength: 0.3")
    out = client.predict(handle_file(str(path)), api_name="/png_info_img2img")
    assert out[0] == PLAIN + ", Denoising strength: 0.3" and out[2] == "a cottage" and out[4] == 0.3
