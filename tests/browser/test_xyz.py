"""The X/Y/Z plot in Chromium: open the panel, pick axes, read the count and estimate, run, get the grid and cells."""
from __future__ import annotations

import pytest

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Locator, Page, expect  # noqa: E402

from engine.files import pnginfo  # noqa: E402
from tests.browser.test_tabs import RUN_TIMEOUT_MS, fetch_image, info, open_tab, set_slider  # noqa: E402

pytestmark = pytest.mark.browser


def choose(page: Page, panel: Locator, label: str, option: str) -> None:
    """Pick an option in a Gradio dropdown the way a person does: open it, click the entry."""
    panel.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(panel.get_by_label(label, exact=True)).to_have_value(option)


def test_plot_shows_its_cost_then_makes_a_labelled_grid_and_cells(page: Page, output_dir):
    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.get_by_label("Seed (-1 = random)", exact=True).fill("4")
    expect(page.locator("#txt2img-xyz-run")).to_be_hidden()  # the plot waits in a closed accordion
    page.locator("#txt2img-xyz").get_by_text("X/Y/Z plot", exact=True).click()
    plan = page.locator("#txt2img-xyz-plan")
    expect(plan).to_contain_text("3 cells (X 3)")

    # a bad value gets its sentence before any run; fixing it brings the count back
    values = panel.get_by_label("X values", exact=True)
    values.fill("1, nan")
    expect(plan).to_contain_text("X axis (CFG Scale): 'nan' is not a number")
    values.fill("1, 9")
    choose(page, panel, "Y type", "Steps")
    panel.get_by_label("Y values", exact=True).fill("2-3")
    expect(plan).to_contain_text("4 cells (X 2 × Y 2), 10 steps in all: about")
    expect(plan).to_contain_text("estimate")

    page.locator("#txt2img-xyz-run").click()
    expect(info(panel)).to_contain_text("X/Y/Z plot: 4 of 4 cells, 1 grid", timeout=RUN_TIMEOUT_MS)
    expect(info(panel)).to_contain_text("Seed used: 4")
    expect(plan).to_contain_text("measured on your last plot")
    images = panel.locator(".ds-output img")
    expect(images).to_have_count(5)
    grid = fetch_image(page, images.first)
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # two by two cells plus the label margins
    saved = sorted((output_dir / "txt2img-xyz").rglob("*.png"))
    assert len(saved) == 5
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(saved[0]))
    assert fields["X Type"] == "CFG Scale" and fields["Y Type"] == "Steps"


def test_sweep_video_plays_in_the_panel(page: Page):
    panel = open_tab(page, "Text to image", "txt2img-run")
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-xyz").get_by_text("X/Y/Z plot", exact=True).click()
    panel.get_by_label("X values", exact=True).fill("-5-20 [4]")
    panel.get_by_label("X", exact=True).check()  # render X as a video
    expect(page.locator("#txt2img-xyz-plan")).to_contain_text("4 cells (X 4)")
    page.locator("#txt2img-xyz-run").click()
    player = page.locator("#txt2img-xyz-video video")
    player.wait_for(timeout=RUN_TIMEOUT_MS)
    expect(player).to_have_js_property("readyState", 4, timeout=RUN_TIMEOUT_MS)
    assert player.evaluate("v => v.videoWidth") >= 64
