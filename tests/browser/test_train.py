"""The Train tab in Chromium, from dropped photos to Try it: crops shown and one left out, a refusal on the bar, a
training with its loss curve and samples, then the LoRA in Text to image's prompt and picker, and an image made."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import VIEWPORT, need_playwright, serve_app

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402
from tests.engine.train.test_train import shapes  # noqa: E402

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", "/tmp/train-shots"))
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def train_url(tmp_path_factory):
    """The app on the tiny model with an empty LoRA folder of its own."""
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="torch"),
                              lora_dir=tmp_path_factory.mktemp("Lora"))
    yield from serve_app(manager, tmp_path_factory.mktemp("train-outputs"))


@pytest.fixture
def page(browser, train_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(train_url)
    page.locator("#model-status").wait_for()
    yield page
    context.close()
    if errors:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors[:5]), pytrace=False)


def test_photos_to_try_it(page: Page, tmp_path):
    photos = sorted(shapes(tmp_path / "photos").glob("*.png"))
    panel = open_tab(page, "Train", "train-run")
    # 1. the options first (a new size prepares the crops again), then the photos, as "object"
    page.locator("#train-options").get_by_text("Options", exact=True).click()
    panel.get_by_label("Steps (0 = 100 per photo, 400–1,500)").fill("6")
    panel.get_by_label("Samples every N steps (0: at the end)").fill("3")
    set_slider(panel, "Resolution", 64)
    panel.get_by_label("Class word (or your own)").click()
    page.get_by_role("option", name="object", exact=True).click()
    page.locator("#train-photos input[type=file]").set_input_files([str(p) for p in photos])
    crops = page.locator("#train-crops .thumbnail-item")
    expect(crops).to_have_count(4, timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#train-crop-note")).to_contain_text("4 photos, cropped centred to 64 px")
    expect(page.locator("#train-estimate")).to_contain_text("The tiny test model trains 6 steps")
    expect(panel.get_by_label("Captions (optional): one line per photo, 'photo name: caption'")).to_have_value(
        "shape0.png:\nshape1.png:\nshape2.png:\nshape3.png:")
    # 2. the user leaves one out
    crops.nth(1).click()
    page.locator("#train-drop").click()
    expect(crops).to_have_count(3)
    expect(page.locator("#train-crop-note")).to_contain_text("shape1.png is left out; 3 photos go on.")
    # 3. a refused run ends with its sentence on the bar
    page.locator("#train-run").click()
    expect(page.locator("#train-progress")).to_contain_text(
        "Failed: Give the subject a name: it becomes the trigger word and the LoRA's file name.",
        timeout=RUN_TIMEOUT_MS)
    # 4. the training: progress, loss curve, samples, then the LoRA and Try it
    panel.get_by_label("Name (trigger word and LoRA file name)").fill("disc")
    page.locator("#train-run").click()
    expect(page.locator("#train-result")).to_contain_text("Done: disc.safetensors (6 steps).",
                                                          timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#train-progress")).to_contain_text("Done in")
    expect(page.locator("#train-samples .thumbnail-item")).to_have_count(4)
    expect(page.locator("#train-loss canvas, #train-loss svg").first).to_be_visible()
    expect(panel.get_by_label("Prompt to try")).to_have_value("<lora:disc:1> photo of disc object")
    expect(page.locator("#train-loss path[aria-roledescription='line mark']")).to_have_count(1)  # the curve
    for close in page.locator(".toast-close").all():  # the refusal's toast
        close.click()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "train-1400x900.png"), full_page=False)
    page.screenshot(path=str(SHOTS / "train-1400-full.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.locator("#train-try").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "train-390x844.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)
    # 5. Try it: Text to image opens with the prompt, the picker lists the new LoRA, and an image is made with it
    page.locator("#train-try").click()
    t2i = page.get_by_role("tabpanel").filter(has=page.locator("#txt2img-run"))
    expect(t2i.get_by_label("Prompt", exact=True)).to_have_value("<lora:disc:1> photo of disc object")
    page.locator("#txt2img-networks").get_by_text("LoRAs and embeddings", exact=True).click()
    t2i.get_by_label("Add a LoRA", exact=True).click()
    expect(page.get_by_role("option", name="disc", exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    set_slider(t2i, "Steps", 2)
    page.locator("#txt2img-run").click()
    expect(page.locator("#txt2img-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    expect(t2i.locator(".block.ds-info")).to_contain_text("Seed used")
