"""The video and face tabs driven in Chromium: fill the form, run, and see a video the browser really plays."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Locator, Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402

pytestmark = pytest.mark.browser
EXAMPLE = str(Path(__file__).resolve().parents[2] / "presets" / "examples" / "astronaut.jpg")


def wait_until_video_plays(panel: Locator) -> tuple[int, float]:
    """The <video> element has loaded enough to play (readyState >= 2) and knows its duration."""
    video = panel.locator("video").first
    video.wait_for(timeout=RUN_TIMEOUT_MS)
    handle = video.element_handle()
    panel.page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=handle, timeout=RUN_TIMEOUT_MS)
    return video.evaluate("v => [v.readyState, v.duration]")


def test_latent_walk_makes_a_video_the_browser_plays(page: Page):
    panel = open_tab(page, "Latent walk", "walk-run")
    panel.locator("#walk-prompts textarea").fill("a red apple\na green pear")
    panel.get_by_label("Seeds, one per prompt ('random' or blank = random)").fill("1, 2")
    set_slider(panel, "Frames (whole video)", 4)
    set_slider(panel, "Frames per second", 4)
    expect(panel.locator("#walk-length")).to_contain_text("4 frames at 4 fps = 1.0 s")
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.locator("#walk-run").click()
    ready, duration = wait_until_video_plays(panel)
    assert ready >= 2 and duration > 0
    expect(panel.get_by_text("Seeds: 1, 2")).to_be_visible(timeout=RUN_TIMEOUT_MS)


def test_dream_makes_a_video_and_warns_about_ancestral_samplers(page: Page):
    panel = open_tab(page, "Dream video", "dream-run")
    panel.locator("#dream-prompt textarea").fill("a misty forest")
    set_slider(panel, "Random keyframe noises", 2)
    set_slider(panel, "Frames (whole video)", 3)
    set_slider(panel, "Frames per second", 3)
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    sampler = panel.get_by_label("Sampler")
    sampler.click()
    page.get_by_role("option", name="Euler a", exact=True).click()
    expect(panel.get_by_text("adds fresh noise every step")).to_be_visible()
    panel.locator("#dream-run").click()
    ready, duration = wait_until_video_plays(panel)
    assert duration == pytest.approx(1.0, abs=0.1)


def test_aging_timelapse_from_an_uploaded_photo(page: Page):
    panel = open_tab(page, "Aging timelapse", "aging-run")
    expect(panel.get_by_text("only edit photos of people who agreed")).to_be_visible()
    panel.locator("#aging-photo input[type=file]").set_input_files(EXAMPLE)
    expect(panel.locator("#aging-faces-note")).to_contain_text("1 face found", timeout=RUN_TIMEOUT_MS)
    panel.locator("#aging-ages textarea, #aging-ages input").first.fill("20, 60")
    panel.get_by_text("More settings").click()  # the rarely changed settings wait in an accordion
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Frames per transition (rendered in-betweens)", 0)
    panel.locator("#aging-run").click()
    wait_until_video_plays(panel)
    expect(panel.locator("#aging-stills img")).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#aging-info")).to_contain_text("Seed")


def test_gender_swap_from_an_uploaded_photo(page: Page):
    panel = open_tab(page, "Gender swap", "swap-run")
    panel.locator("#swap-photo input[type=file]").set_input_files(EXAMPLE)
    expect(panel.locator("#swap-faces-note")).to_contain_text("1 face found", timeout=RUN_TIMEOUT_MS)
    panel.get_by_label("to man").check()
    set_slider(panel, "Variants (seeds)", 1)
    panel.get_by_text("More settings").click()
    set_slider(panel, "Steps", 2)
    panel.locator("#swap-run").click()
    expect(panel.locator("#swap-gallery img")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#swap-info")).to_contain_text("Seeds:")


def test_gender_swap_of_all_faces_in_a_group_photo(page: Page, tmp_path):
    from PIL import Image

    photo = Image.open(EXAMPLE).convert("RGB")
    group = Image.new("RGB", (1024, 512))
    group.paste(photo, (0, 0))
    group.paste(photo, (512, 0))
    group.save(tmp_path / "group.png")
    panel = open_tab(page, "Gender swap", "swap-run")
    panel.locator("#swap-photo input[type=file]").set_input_files(str(tmp_path / "group.png"))
    expect(panel.locator("#swap-faces-note")).to_contain_text("2 faces found", timeout=RUN_TIMEOUT_MS)
    panel.locator("#swap-all-faces input").check()
    expect(panel.locator("#swap-keep-identity")).to_be_visible()  # offered, and says how to get its weights
    set_slider(panel, "Variants (seeds)", 1)
    panel.get_by_text("More settings").click()
    set_slider(panel, "Steps", 2)
    panel.locator("#swap-run").click()
    expect(panel.locator("#swap-gallery img")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#swap-info")).to_contain_text("Seeds:")
    expect(panel.locator("#swap-progress")).to_contain_text("Done", timeout=RUN_TIMEOUT_MS)


def test_face_tabs_say_where_to_put_a_restorer_when_none_is_installed(page: Page, tiny_manager):
    from engine.extras.restore import list_restorers

    if list_restorers(tiny_manager.weights_dir):
        pytest.skip("a face restorer is installed in weights/, so the dropdown is offered")
    for tab, task, run in (("Gender swap", "swap", "swap-run"), ("Aging timelapse", "aging", "aging-run")):
        panel = open_tab(page, tab, run)
        restore = panel.locator(f"#{task}-restore-faces")
        expect(restore).to_contain_text("weights/GFPGAN or weights/Codeformer")
        expect(restore.locator("input")).to_be_disabled()
