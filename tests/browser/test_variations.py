"""Make variations in Chromium: generate one image, then ask for three variations of it under the result."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import need_playwright
from tests.browser.test_tabs import RUN_TIMEOUT_MS, info, open_tab, output_image, set_slider

need_playwright()
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_make_variations_fills_the_gallery_with_n_images_of_one_seed(page: Page, output_dir):
    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    set_slider(panel, "Steps", 3)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.get_by_label("Seed (-1 = random)", exact=True).fill("21")
    page.locator("#txt2img-run").click()
    output_image(page, panel)
    expect(info(panel)).to_contain_text("Seed used: 21", timeout=RUN_TIMEOUT_MS)

    panel.get_by_label("Variations", exact=True).fill("3")
    panel.get_by_label("First variation seed (-1 = random)").fill("500")
    page.locator("#txt2img-make-variations-run").click()
    expect(info(panel)).to_contain_text("Seeds used: 21, 21, 21", timeout=RUN_TIMEOUT_MS)
    expect(info(panel)).to_contain_text("Variation seeds: 500, 501, 502")
    expect(panel.locator(".ds-output img")).to_have_count(3)
    params = panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")
    expect(params).to_have_value(re.compile(r"Seed: 21, .*Variation seed: 500, Variation seed strength: 0.2"))
    expect(page.locator("#txt2img-run")).to_be_enabled()  # the run ended in the UI
    assert len(sorted((output_dir / "txt2img").rglob("*.png"))) == 4
