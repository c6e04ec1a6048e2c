"""ControlNet runs on the tiny model: loading both ways, weight 0 is exact, several units, control modes, PNG info."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from engine.control.pipelines import soft_injection
from engine.control.units import CONTROL_FIRST, PROMPT_FIRST, ControlUnit, unit_field, units_from_fields
from engine.image.generate import image_to_image, inpaint, request_from_parameters, text_to_image
from engine.image.request import ImageRequest


@pytest.fixture(scope="module")
def drawing():
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((12, 12, 50, 40), outline="white", width=3)
    return image


def _req(units, **extra):
    return ImageRequest(prompt="a house", num_inference_steps=3, width=64, height=64, seed=7,
                        control_units=tuple(units), **extra)


def pixels(result):
    return np.asarray(result.images[0].image).astype(int)


def test_weight_0_is_the_plain_run_pixel_for_pixel(control_manager, drawing):
    plain = pixels(text_to_image(control_manager, _req([])))
    zero = pixels(text_to_image(control_manager, _req([ControlUnit("canny", "tiny_canny", drawing, weight=0)])))
    full = pixels(text_to_image(control_manager, _req([ControlUnit("canny", "tiny_canny", drawing)])))
    assert (zero == plain).all()
    assert np.abs(full - plain).mean() > 1  # the control does change the picture


def test_the_folder_and_the_single_file_load_the_same_model(control_manager, drawing):
    folder = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_canny", drawing)])))
    single = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_single", drawing)])))
    assert (folder == single).all()
    base = control_manager.base()
    first = control_manager.controlnets.get("tiny_canny", base.unet.config, torch.float32, "cpu")
    assert control_manager.controlnets.get("TINY_CANNY [abcdef12]", base.unet.config, torch.float32, "cpu") is first


def test_two_units_and_the_modes_each_change_the_picture(control_manager, drawing):
    one = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_canny", drawing)])))
    two = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_canny", drawing),
                                                      ControlUnit("canny", "tiny_single", drawing.rotate(90))])))
    prompt_first = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_canny", drawing,
                                                                           control_mode=PROMPT_FIRST)])))
    control_first = pixels(text_to_image(control_manager, _req([ControlUnit("none", "tiny_canny", drawing,
                                                                            control_mode=CONTROL_FIRST)])))
    for other in (two, prompt_first, control_first):
        assert np.abs(other - one).mean() > 0.5
    assert np.abs(prompt_first - control_first).mean() > 0.5


def test_soft_injection_scales_as_a1111_and_spares_the_negative_half():
    residuals = [torch.ones(2, 1, 2, 2) for _ in range(13)]
    soft = soft_injection(residuals)
    assert soft[0][0, 0, 0, 0].item() == pytest.approx(0.825 ** 12)
    assert soft[-1][0, 0, 0, 0].item() == 1
    cfg = soft_injection(residuals, cfg_only=True)
    assert cfg[5][0].abs().sum() == 0 and cfg[5][1].min() > 0


def test_img2img_and_inpaint_use_their_own_image_when_the_unit_has_none(control_manager, drawing):
    photo = Image.new("RGB", (64, 64), (120, 90, 60))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 48, 48), fill=255)
    unit = ControlUnit("none", "tiny_canny", None)
    plain = pixels(image_to_image(control_manager, _req([]), drawing))
    controlled = pixels(image_to_image(control_manager, _req([unit]), drawing))
    assert np.abs(plain - controlled).mean() > 0.5
    result = inpaint(control_manager, _req([ControlUnit("inpaint_only", "tiny_canny", None)]), photo, mask)
    outside = np.asarray(result.images[0].image)[:8, :8]
    assert (outside == np.asarray(photo)[:8, :8]).all()
    with pytest.raises(ValueError, match="has no control image"):
        text_to_image(control_manager, _req([unit]))


def test_png_info_carries_a1111_fields_and_reads_back(control_manager, drawing):
    unit = ControlUnit("canny", "tiny_canny", drawing, weight=0.6, guidance_start=0.1, guidance_end=0.8,
                       control_mode=PROMPT_FIRST, resize_mode="Just Resize", low_threshold=50, high_threshold=150)
    result = text_to_image(control_manager, _req([unit]))
    text = result.images[0].parameters
    assert 'ControlNet 0: "Module: canny, Model: tiny_canny [' in text
    assert "Control Mode: My prompt is more important" in text
    back, skipped = request_from_parameters(text)
    assert skipped == []
    (read,) = back.control_units
    assert (read.module, read.model, read.weight, read.guidance_start, read.guidance_end, read.control_mode,
            read.resize_mode, read.low_threshold, read.high_threshold) == (
        "canny", "tiny_canny", 0.6, 0.1, 0.8, PROMPT_FIRST, "Just Resize", 50, 150)


def test_a1111_field_from_its_own_text_reads_back():
    field = ('"Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, Resize Mode: Crop and Resize, '
             'Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0, Guidance End: 1, '
             'Pixel Perfect: False, Control Mode: Balanced"')
    (unit,), skipped = units_from_fields({"ControlNet 0": field, "ControlNet 1": '"Module: x"'})
    assert skipped == ["ControlNet 1"] and unit.model == "control_v11p_sd15_canny"
    assert unit_field(unit, "control_v11p_sd15_canny [d14c016b]", 512, 768) == field.strip('"')


@pytest.mark.parametrize("unit, message", [
    (ControlUnit("canny", "", "x"), "has no model"),
    (ControlUnit("canny", "tiny_canny", "x", weight=3), "weight must be from 0 to 2"),
    (ControlUnit("canny", "tiny_canny", "x", guidance_start=0.9, guidance_end=0.2), "start < end"),
    (ControlUnit("canny", "tiny_canny", "x", control_mode="Loud"), "control mode must be one of"),
    (ControlUnit("nope", "tiny_canny", "x"), "preprocessor"),
])
def test_bad_units_get_one_sentence(unit, message):
    with pytest.raises(ValueError, match=message):
        text_to_image(None, _req([unit]))


def test_more_than_three_units_and_hires_are_refused(drawing):
    unit = ControlUnit("canny", "tiny_canny", drawing)
    with pytest.raises(ValueError, match="At most 3"):
        text_to_image(None, _req([unit] * 4))
    with pytest.raises(ValueError, match="Hires. fix"):
        text_to_image(None, _req([unit], hires_scale=2.0))
