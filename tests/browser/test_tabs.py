"""Each image tab driven in Chromium the way a person uses it: type, set sliders, upload, paint, Generate, Stop.

The tiny random model makes coloured noise in a second or two at 64 px, so these tests check the plumbing
(widgets -> handler -> engine -> files -> gallery), not the pictures.
"""
from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Locator, Page, expect  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 60_000  # a 64-px run takes ~2 s on 2 CPU cores; leave room for a busy machine


# 1. helpers a person's actions map onto
def open_tab(page: Page, name: str, run_id: str) -> Locator:
    """Click a tab and return its panel (Gradio renders only the selected tab's panel)."""
    page.get_by_role("tab", name=name, exact=True).click()
    page.locator(f"#{run_id}").wait_for()
    return page.get_by_role("tabpanel").filter(has=page.locator(f"#{run_id}"))


def set_slider(panel: Locator, label: str, value: int) -> None:
    """Type into the number box beside a slider and commit it, then check the slider moved.

    A box in an accordion that has just opened can take the typing before its handlers are attached (a person
    is never that fast), so the typing is repeated, at most three times, until the slider follows.
    """
    box = panel.get_by_label(f"number input for {label}", exact=True)
    slider = panel.get_by_label(f"range slider for {label}", exact=True)
    for _ in range(2):
        box.fill(str(value))
        box.press("Enter")
        try:
            expect(slider).to_have_value(str(value), timeout=3_000)
            return
        except AssertionError:
            continue
    box.fill(str(value))
    box.press("Enter")
    expect(slider).to_have_value(str(value))


def make_photo(path, size=(96, 64)) -> str:
    """A smooth colour gradient PNG, so a painted or redrawn area would be easy to tell apart."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    pixels[..., 2] = 90
    Image.fromarray(pixels).save(path)
    return str(path)


def fetch_image(page: Page, img: Locator) -> Image.Image:
    """The image an <img> shows, downloaded through the page's own session."""
    src = img.get_attribute("src")
    response = page.request.get(src)
    assert response.ok, f"{src} answered HTTP {response.status}"
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def output_image(page: Page, panel: Locator) -> Image.Image:
    """Wait for the output gallery's first image, check the browser decoded it, and return it."""
    img = panel.locator(".ds-output img").first
    img.wait_for(timeout=RUN_TIMEOUT_MS)
    img.scroll_into_view_if_needed()
    natural = img.evaluate("e => e.decode().then(() => [e.naturalWidth, e.naturalHeight])")
    assert natural[0] > 0 and natural[1] > 0, "the gallery image did not load"
    image = fetch_image(page, img)
    assert list(image.size) == natural
    return image


def info(panel: Locator) -> Locator:
    return panel.locator(".block.ds-info")


def saved_pngs(folder, task: str) -> list:
    return sorted((folder / task).rglob("*.png"))


# 2. one test per tab
def test_txt2img_generates_an_image(page: Page, output_dir):
    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a red fox in the snow")
    set_slider(panel, "Steps", 4)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-run").click()

    image = output_image(page, panel)
    assert image.size == (64, 64)
    expect(info(panel)).to_contain_text("Seed used:", timeout=RUN_TIMEOUT_MS)
    # Gradio's copy button sits inside the textbox's <label>, so the textarea has no accessible name.
    params = panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")
    expect(params).to_have_value(re.compile(r"^a red fox in the snow\nSteps: 4, .*Size: 64x64"))
    assert len(saved_pngs(output_dir, "txt2img")) == 1, "the result was not written to STUDIO_OUTPUT_DIR"


def test_img2img_redraws_an_uploaded_photo(page: Page, tmp_path, output_dir):
    photo = make_photo(tmp_path / "start.png", size=(96, 64))
    panel = open_tab(page, "Image to image", "img2img-run")
    page.locator("#img2img-image input[type=file]").set_input_files(photo)
    expect(page.locator("#img2img-image img").first).to_be_visible()
    panel.get_by_label("Prompt", exact=True).fill("an oil painting")
    set_slider(panel, "Steps", 4)
    set_slider(panel, "Longer side (aspect ratio is kept)", 64)
    page.locator("#img2img-run").click()

    image = output_image(page, panel)
    assert max(image.size) == 64 and image.width > image.height, f"aspect ratio lost: {image.size}"
    expect(info(panel)).to_contain_text("Seed used:", timeout=RUN_TIMEOUT_MS)
    assert len(saved_pngs(output_dir, "img2img")) == 1


def upload_to_editor(page: Page, editor: Locator, path: str) -> None:
    """Upload a photo with Inpaint's "Upload a photo" button, once the editor is ready, and wait until it shows.

    Gradio's editor sets up its canvas after the tab opens, so wait for the canvas and its zoom readout first,
    as a person waits for the widget. The app checks the file, then puts it on the canvas.
    """
    page.wait_for_function("e => e.querySelector('canvas') !== null && /\\d+%/.test(e.innerText)",
                           arg=editor.element_handle())
    with page.expect_file_chooser() as chooser:
        page.locator("#inpaint-upload").click()
    chooser.value.set_files(path)
    editor.get_by_role("button", name="Brush", exact=True).wait_for()
    page.wait_for_function("e => [...e.querySelectorAll('canvas')].some(c => c.width > 0)", arg=editor.element_handle())


def paint_stroke(page: Page, editor: Locator) -> None:
    """Pick the brush and drag the mouse across the middle of the canvas, as a person paints a mask."""
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x0, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.5
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, 6):  # each move redraws the WebGL canvas in software (~0.5 s), so keep them few
        page.mouse.move(x0 + box["width"] * 0.3 * i / 5, y + 4 * (i % 2))
    page.mouse.up()


def test_inpaint_paints_a_mask_and_generates(page: Page, tmp_path, output_dir):
    photo_path = make_photo(tmp_path / "photo.png", size=(96, 64))
    photo = np.asarray(Image.open(photo_path).convert("RGB"), dtype=np.int16)
    panel = open_tab(page, "Inpaint", "inpaint-run")
    editor = page.locator("#inpaint-editor")
    upload_to_editor(page, editor, photo_path)
    expect(page.locator("#inpaint-mask-preview img")).to_have_count(0)  # nothing painted yet

    # The preview tints the painted area red: the middle turns redder, the corners stay as they were.
    # On a loaded machine the editor's brush can miss the first stroke while its software-rendered canvas is still
    # busy (nothing is painted, so there is nothing to preview); a person then paints again, and so does the test.
    preview_img = page.locator("#inpaint-mask-preview img")
    for attempt in range(3):
        paint_stroke(page, editor)
        try:
            preview_img.wait_for(timeout=RUN_TIMEOUT_MS // 3)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    preview = np.asarray(fetch_image(page, preview_img), dtype=np.int16)
    assert preview.shape == photo.shape, "the mask preview should have the photo's size"
    h, w = photo.shape[:2]
    assert preview[h // 2, w // 2, 0] - photo[h // 2, w // 2, 0] > 40, "the stroke is not in the mask"
    assert np.abs(preview[2, 2] - photo[2, 2]).max() <= 2, "an unpainted corner was tinted"

    panel.get_by_label("Prompt", exact=True).fill("a blue flower")
    set_slider(panel, "Steps", 4)
    set_slider(panel, "Work size (longer side)", 64)
    page.locator("#inpaint-run").click()

    image = output_image(page, panel)
    assert image.size == (96, 64), "inpaint pastes back into the photo at its own size"
    result = np.asarray(image, dtype=np.int16)
    assert np.abs(result[2, 2] - photo[2, 2]).max() <= 2, "pixels outside the mask changed"
    expect(info(panel)).to_contain_text("Seed used:", timeout=RUN_TIMEOUT_MS)
    assert len(saved_pngs(output_dir, "inpaint")) == 1


def test_stop_mid_run_keeps_a_partial_image(page: Page, output_dir):
    panel = open_tab(page, "Text to image", "txt2img-run")
    stop = page.locator("#txt2img-stop")
    expect(stop).to_be_hidden()  # Stop shows only while a run goes
    panel.get_by_label("Prompt", exact=True).fill("a very long run")
    set_slider(panel, "Steps", 150)  # ~30 s on 2 cores if Stop did nothing
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    started = time.monotonic()
    page.locator("#txt2img-run").click()

    # The first live preview (after step 4) proves the run is under way; then press Stop.
    panel.locator(".ds-preview img").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(stop).to_be_visible()
    stop.dispatch_event("click")  # no stability wait, as a user's click needs none

    image = output_image(page, panel)
    elapsed = time.monotonic() - started
    assert image.size == (64, 64)
    expect(info(panel)).to_contain_text("Stopped early", timeout=RUN_TIMEOUT_MS)
    expect(info(panel)).to_contain_text("Seed used:")
    assert len(saved_pngs(output_dir, "txt2img")) == 1, "the partial image should be saved too"
    assert elapsed < 25, f"Stop did not cut the run short ({elapsed:.1f} s)"
    expect(panel.locator("#txt2img-progress")).to_contain_text("Stopped after")
    expect(stop).to_be_hidden()
