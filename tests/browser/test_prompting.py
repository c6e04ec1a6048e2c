"""Hires. fix and styles in Chromium, the way a person uses them in Text to image."""
from __future__ import annotations

import re

import pytest

from engine.text import styles
from tests.browser.conftest import need_playwright
from tests.browser.test_tabs import RUN_TIMEOUT_MS, info, open_tab, output_image, set_slider

need_playwright()
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


def params_box(panel):
    return panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")


def test_hires_fix_makes_the_larger_image(page: Page):
    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a harbour at night")
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-hires").get_by_text("Hires. fix", exact=True).click()
    page.locator("#txt2img-hires-enable input[type=checkbox]").check()
    set_slider(panel, "Upscale by", 2)
    set_slider(panel, "Hires steps (0 = same as Steps)", 1)
    expect(page.locator("#txt2img-hires-size")).to_contain_text("Draws at 64×64, then upscales and redraws at 128×128")
    page.locator("#txt2img-run").click()

    image = output_image(page, panel)
    assert image.size == (128, 128)
    expect(info(panel)).to_contain_text("Seed used:", timeout=RUN_TIMEOUT_MS)
    expect(params_box(panel)).to_have_value(re.compile(r"Size: 64x64, .*Denoising strength: 0\.5, "
                                                       r"Hires upscale: 2, Hires steps: 1, Hires upscaler: Latent"))


def choose_style(page: Page, name: str) -> None:
    page.locator("#txt2img-styles input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_a_chosen_style_is_applied_and_shows_in_the_parameters(page: Page, tmp_path, monkeypatch):
    path = tmp_path / "styles.csv"
    path.write_text('name,prompt,negative_prompt\nFilm,"film photo of {prompt}, grain",cartoon\n', encoding="utf-8")
    monkeypatch.setattr(styles, "_active", styles.StyleFile(path))  # the app runs in this process
    panel = open_tab(page, "Text to image", "txt2img-run")
    page.locator("#txt2img-styles-reload").click()  # the picker reads the file again
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("a red fox")
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    choose_style(page, "Film")
    chips = page.locator("#txt2img-styles .token")
    expect(chips).to_have_count(1)
    page.locator("#txt2img-run").click()

    output_image(page, panel)
    expect(params_box(panel)).to_have_value(re.compile(r"^film photo of a red fox, grain\nNegative prompt: cartoon\n"))
    expect(prompt).to_have_value("a red fox")  # applied at Generate, as A1111 does: the box keeps what was typed

    page.locator("#txt2img-styles-apply").click()  # A1111's brush: write the style into the boxes
    expect(prompt).to_have_value("film photo of a red fox, grain")
    expect(panel.get_by_label("Negative prompt", exact=True)).to_have_value("cartoon")
    expect(chips).to_have_count(0)  # the choice is cleared, so the style is not applied twice
