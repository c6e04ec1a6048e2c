"""The ControlNet accordion in Chromium: enable a unit, upload a drawing, preview its map, then generate with it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.browser.conftest import VIEWPORT, need_playwright, serve_app

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, fetch_image, info, open_tab, set_slider  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def control_url(tmp_path_factory):
    """The app on the tiny model with a tiny random ControlNet in weights/ControlNet."""
    from diffusers import ControlNetModel

    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("weights")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=root)
    torch.manual_seed(2)
    model = ControlNetModel.from_unet(manager.base().unet)
    model.save_pretrained(root / "ControlNet" / "tiny_canny")
    yield from serve_app(manager, tmp_path_factory.mktemp("control-outputs"))


@pytest.fixture
def page(browser, control_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(control_url)
    page.locator("#model-status").wait_for()
    yield page
    context.close()
    if errors:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors[:5]), pytrace=False)


def test_a_unit_previews_its_canny_map_and_generates(page: Page, tmp_path):
    shots = Path(os.environ.get("STUDIO_SHOTS") or tmp_path)
    drawing = Image.new("RGB", (96, 96), (30, 30, 30))
    ImageDraw.Draw(drawing).rectangle((20, 20, 76, 70), fill=(230, 230, 230))
    drawing.save(tmp_path / "drawing.png")
    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a white box")
    set_slider(panel, "Steps", 3)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-controlnet").get_by_text("ControlNet", exact=True).first.click()
    page.locator("#txt2img-controlnet0-enable input").check()
    page.locator("#txt2img-controlnet0-image input[type=file]").set_input_files(str(tmp_path / "drawing.png"))
    expect(page.locator("#txt2img-controlnet0-image img").first).to_be_visible()
    page.locator("#txt2img-controlnet0-module input").click()
    page.get_by_role("option", name="canny", exact=True).click()
    expect(page.locator("#txt2img-controlnet0-model input")).to_have_value("tiny_canny")
    page.locator("#txt2img-controlnet0-preview-button").click()
    preview = page.locator("#txt2img-controlnet0-preview img").first
    preview.wait_for(timeout=RUN_TIMEOUT_MS)
    edges = np.asarray(fetch_image(page, preview).convert("L"))
    assert edges.shape == (64, 64) and 0 < (edges > 128).mean() < 0.3  # thin edges, not the filled box
    page.screenshot(path=str(shots / "control-txt2img-1400.png"), full_page=True)
    page.locator("#txt2img-run").click()
    expect(info(panel)).to_contain_text("Seed used:", timeout=RUN_TIMEOUT_MS)
    params = panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")
    expect(params).to_have_value(re.compile(r'ControlNet 0: "Module: canny, Model: tiny_canny \['))
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#txt2img-controlnet0-preview-button").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "control-txt2img-390.png"), full_page=True)


def test_png_info_in_image_to_image_fills_the_tab_and_its_controlnet_units(page: Page, tmp_path):
    from engine.files import pnginfo

    shots = Path(os.environ.get("STUDIO_SHOTS") or tmp_path)
    unit = ('"Module: canny, Model: {} [0123abcd], Weight: 0.6, Resize Mode: Just Resize, Processor Res: 64, '
            'Threshold A: 40, Threshold B: 160, Guidance Start: 0.2, Guidance End: 0.7, Pixel Perfect: False, '
            'Control Mode: My prompt is more important"')
    text = ("a lighthouse at dusk\nNegative prompt: fog\nSteps: 9, Sampler: Euler, CFG scale: 4.5, Seed: 321, "
            f"Size: 96x64, Denoising strength: 0.35, ControlNet 0: {unit.format('tiny_canny')}, "
            f"ControlNet 1: {unit.format('control_v11p_sd15_lineart')}")
    pnginfo.save_png(Image.new("RGB", (96, 64), (90, 60, 30)), tmp_path / "made.png", text)
    panel = open_tab(page, "Image to image", "img2img-run")
    page.locator("#img2img-png-info-panel").get_by_text("PNG info: load parameters from an image").click()
    page.locator("#img2img-png-info input[type=file]").set_input_files(str(tmp_path / "made.png"))
    expect(page.locator("#img2img-png-info-note")).to_contain_text(
        "ControlNet 1's model control_v11p_sd15_lineart is not in weights/ControlNet", timeout=RUN_TIMEOUT_MS)
    expect(panel.get_by_label("Prompt", exact=True)).to_have_value("a lighthouse at dusk")
    expect(panel.get_by_label("number input for Denoising strength", exact=True)).to_have_value("0.35")
    expect(panel.get_by_label("number input for Steps", exact=True)).to_have_value("9")
    expect(panel.get_by_label("number input for Longer side (aspect ratio is kept)", exact=True)).to_have_value("96")
    page.locator("#img2img-controlnet").get_by_text("ControlNet", exact=True).first.click()
    expect(page.locator("#img2img-controlnet0-enable input")).to_be_checked()
    expect(page.locator("#img2img-controlnet0-model input")).to_have_value("tiny_canny")
    expect(page.locator("#img2img-controlnet0-weight input[type=number]")).to_have_value("0.6")
    page.screenshot(path=str(shots / "pnginfo-img2img-1400.png"), full_page=True)
