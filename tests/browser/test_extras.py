"""The Extras tab in Chromium: one picture upscaled with before/after and a download, then a batch with a bad file."""
from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from tests.browser.conftest import need_playwright

need_playwright()
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab  # noqa: E402

pytestmark = pytest.mark.browser


def test_one_picture_is_upscaled_and_a_batch_names_its_bad_file(page: Page, tmp_path):
    photo = tmp_path / "boat.png"
    Image.new("RGB", (40, 60), (20, 120, 200)).save(photo)  # portrait: taller than the slider is high
    panel = open_tab(page, "Extras", "extras-run")
    page.locator("#extras-photo input[type=file]").set_input_files(photo)
    expect(page.locator("#extras-photo img").first).to_be_visible()
    page.locator("#extras-run").click()
    expect(page.locator("#extras-info")).to_contain_text("40×60 → 80×120", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#extras-preview img").first).to_be_visible()
    frame = page.locator("#extras-preview .slider-wrap").bounding_box()
    for picture in page.locator("#extras-preview img").all():  # both shown whole, not cropped by the slider
        assert picture.bounding_box()["height"] <= frame["height"] + 1
    link = page.locator("#extras-download a").first
    expect(link).to_be_visible()
    body = page.request.get(link.get_attribute("href")).body()
    assert Image.open(io.BytesIO(body)).size == (80, 120)
    page.screenshot(path=str(tmp_path / "extras.png"))

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    panel.get_by_text("Batch (images or a zip)").click()
    page.locator("#extras-files input[type=file]").set_input_files([photo, bad])
    expect(page.locator("#extras-files")).to_contain_text("13.0 B")
    page.locator("#extras-run").click()
    expect(page.locator("#extras-info")).to_contain_text("1 of 2 pictures upscaled", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#extras-info")).to_contain_text("Skipped notes.png")
    href = page.locator("#extras-download a").first.get_attribute("href")
    with zipfile.ZipFile(io.BytesIO(page.request.get(href).body())) as archive:
        assert archive.namelist() == ["boat.png"]
