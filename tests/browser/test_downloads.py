"""Downloads and Fast decode in Chromium: fetch TAESD and an LCM LoRA from the Hugging Face cache, then Few-step mode
ticks Fast decode and the image says `VAE Decoder: TAESD`."""
from __future__ import annotations

import os
import re

import pytest

from tests.browser.conftest import VIEWPORT, need_playwright, serve_app

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_networks import pick  # noqa: E402
from tests.browser.test_tabs import RUN_TIMEOUT_MS, info, open_tab, set_slider  # noqa: E402
from tests.engine import lora_files as lf  # noqa: E402
from tests.engine.test_downloads import fake_cache  # noqa: E402
from tests.engine.test_tiny_vae import tiny_taesd  # noqa: E402

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("STUDIO_SCREENSHOTS")  # a folder to keep screenshots in, for a look by eye


@pytest.fixture(scope="module")
def downloads_url(tmp_path_factory):
    """The app on the tiny model over an empty weights/, with TAESD and an LCM LoRA in an offline hub cache."""
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("downloads")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=root / "weights")
    snapshot = fake_cache(root / "hub", "madebyollin/taesd", {})
    tiny_taesd().save_pretrained(snapshot)
    lcm = fake_cache(root / "hub", "latent-consistency/lcm-lora-sdv1-5", {})
    lf.write_lora(lcm, "pytorch_lora_weights", lf.kohya_lora(manager.base(), seed=9))
    saved = {name: os.environ.get(name) for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    os.environ.update(HF_HUB_CACHE=str(root / "hub"), HF_HUB_OFFLINE="1")
    try:
        yield from serve_app(manager, tmp_path_factory.mktemp("download-outputs"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def page(browser, downloads_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(downloads_url)
    page.locator("#model-status").wait_for()
    yield page
    context.close()


def download(page: Page, part: str, label: str) -> None:
    pick(page, page.locator("#downloads"), "Part", label)
    page.locator("#downloads-run").click()
    expect(page.locator("#downloads-note")).to_contain_text(f"{part} is in", timeout=RUN_TIMEOUT_MS)


def test_download_then_few_step_turns_fast_decode_on_and_png_info_says_taesd(page: Page):
    open_tab(page, "Text to video", "text2video-run")
    clip_decode = page.locator("#text2video-fast-decode")
    expect(clip_decode.locator("input[type=checkbox]")).to_be_disabled()  # greyed out, saying why
    expect(clip_decode).to_contain_text("Needs TAESD in weights/taesd")
    page.locator("#downloads").get_by_text("Downloads: few-step LoRAs, TAESD, motion adapters", exact=True).click()
    download(page, "taesd", "taesd (TAESD, 5 MB): available to download")
    expect(page.locator("#downloads-note")).to_contain_text("taesd is in weights/taesd")
    expect(page.locator("#downloads-progress")).to_contain_text("Done in")
    open_tab(page, "Text to image", "txt2img-run")
    open_tab(page, "Text to video", "text2video-run")  # opening the tab offers it once TAESD is there
    expect(clip_decode.locator("input[type=checkbox]")).to_be_enabled()
    expect(clip_decode).to_contain_text("On by default with a Lightning adapter")
    download(page, "lcm-lora-sdv1-5", "lcm-lora-sdv1-5 (few-step LoRA, 135 MB): available to download")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/downloads.png", full_page=False)

    panel = open_tab(page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a lighthouse")
    page.locator("#txt2img-networks").get_by_text("LoRAs and embeddings", exact=True).click()
    page.locator("#txt2img-networks-refresh").click()
    fast_decode = page.locator("#txt2img-fast-decode input[type=checkbox]")
    expect(fast_decode).not_to_be_checked()
    pick(page, panel, "Few-step mode", "LCM: lcm-lora-sdv1-5 (LCM, 4 steps, CFG 1)")
    expect(fast_decode).to_be_checked()
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-run").click()
    expect(info(panel)).to_contain_text("Seed used", timeout=RUN_TIMEOUT_MS)
    params = panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")
    expect(params).to_have_value(re.compile(r"Sampler: LCM, CFG scale: 1.*VAE Decoder: TAESD"))
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/txt2img-fast-decode.png", full_page=False)


def test_a_part_missing_offline_says_so(page: Page):
    page.locator("#downloads").get_by_text("Downloads: few-step LoRAs, TAESD, motion adapters", exact=True).click()
    pick(page, page.locator("#downloads"), "Part",
         "animatediff-lightning-4step (motion adapter, 908 MB): available to download")
    page.locator("#downloads-run").click()
    expect(page.locator("#downloads-progress")).to_contain_text("No network: HF_HUB_OFFLINE is set",
                                                               timeout=RUN_TIMEOUT_MS)
