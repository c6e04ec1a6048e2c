"""On ZeroGPU (the stand-in `spaces` package), as a visitor sees it: the status line says the model is fixed, the
menu holds only it, a walk says how it is split into GPU calls and plays, and an image says what it asked for."""
from __future__ import annotations

import pytest

from tests.browser.conftest import VIEWPORT, launch_app, need_playwright

need_playwright()

from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402
from tests.browser.test_video_and_face_tabs import wait_until_video_plays  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def zerogpu_url(tmp_path_factory):
    """The app as app.py serves it on ZeroGPU: the model loaded at start-up, walks in GPU calls of 2 frames."""
    import app
    from engine.jobs import gpu_time
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from tabs import walk_common
    from tests.app import fake_spaces

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUDIO_OUTPUT_DIR", str(tmp_path_factory.mktemp("zerogpu-outputs")))
        patch.delenv("SPACES_ZERO_GPU", raising=False)
        fake_spaces.install(patch)
        patch.setattr(gpu_time, "frames_per_call", lambda work, batch=1: 2 * batch)
        walk_common.chunk_call.cache_clear()
        manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
        app.load_for_zero_gpu(manager)
        demo, url = launch_app(manager)
        yield url
        demo.close()
        walk_common.chunk_call.cache_clear()


@pytest.fixture
def zerogpu_page(browser, zerogpu_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(zerogpu_url)
    page.locator("#model-status").wait_for()
    yield page
    context.close()


def test_the_status_line_and_menu_say_the_model_is_fixed_at_start_up(zerogpu_page: Page):
    expect(zerogpu_page.locator("#model-status")).to_contain_text("On ZeroGPU the model is loaded once at start-up")
    expect(zerogpu_page.locator("#model-status")).to_contain_text("loaded")
    zerogpu_page.locator("#model-select input").click()
    expect(zerogpu_page.get_by_role("option")).to_have_count(1)


def test_a_walk_in_gpu_calls_says_so_and_plays(zerogpu_page: Page):
    panel = open_tab(zerogpu_page, "Latent walk", "walk-run")
    panel.locator("#walk-prompts textarea").fill("a red apple\na green pear")
    panel.get_by_label("Seeds, one per prompt ('random' or blank = random)").fill("1, 2")
    set_slider(panel, "Frames (whole video)", 5)
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.locator("#walk-run").click()
    expect(zerogpu_page.get_by_text("This video is made 2 frames per GPU call")).to_be_visible(
        timeout=RUN_TIMEOUT_MS)
    ready, duration = wait_until_video_plays(panel)
    assert ready >= 2 and duration > 0
    expect(panel.locator("#walk-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#walk-frames img")).to_have_count(5)


def test_an_image_says_how_much_gpu_time_it_asked_for(zerogpu_page: Page):
    panel = open_tab(zerogpu_page, "Text to image", "txt2img-run")
    panel.get_by_label("Prompt", exact=True).fill("a red apple")
    set_slider(panel, "Steps", 2)
    panel.locator("#txt2img-run").click()
    expect(zerogpu_page.get_by_text("Asking ZeroGPU for up to 15 s of GPU time")).to_be_visible(
        timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#txt2img-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
