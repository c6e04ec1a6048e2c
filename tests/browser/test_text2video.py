"""The Text to video tab in Chromium at 1400x900: run button in the first screen, a run to a playing clip, Stop,
and Resume."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402
from tests.browser.test_video_and_face_tabs import wait_until_video_plays  # noqa: E402

pytestmark = pytest.mark.browser


def small_clip(panel, steps: int) -> None:
    set_slider(panel, "Frames", 8)
    set_slider(panel, "Frames per second", 4)
    set_slider(panel, "Steps", steps)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)


def test_text2video_runs_to_a_playing_clip_with_an_estimate_and_progress_per_step(page: Page):
    panel = open_tab(page, "Text to video", "text2video-run")
    box = page.locator("#text2video-run").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900, f"the run button is at y={box['y']:.0f}"
    expect(page.locator("#text2video-stop")).to_be_hidden()
    expect(panel.locator("#text2video-stop-note")).to_contain_text("Stop ends the denoising early")
    expect(panel.locator("#text2video-adapter-note")).to_contain_text("Motion adapter: tiny")
    small_clip(panel, 2)
    expect(panel.locator("#text2video-estimate")).to_contain_text("8 frames at 4 fps = 2.0 s")
    panel.locator("#text2video-run").click()
    ready, duration = wait_until_video_plays(panel)
    assert duration == pytest.approx(2.0, abs=0.1)
    expect(panel.locator("#text2video-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#text2video-info")).to_contain_text("Seed:")
    expect(panel.locator("#text2video-estimate")).to_contain_text("Estimated time")
    expect(panel.locator("#text2video-frames img")).to_have_count(8)


def test_stop_keeps_the_clip_made_so_far(page: Page):
    panel = open_tab(page, "Text to video", "text2video-run")
    small_clip(panel, 150)  # several seconds on 2 cores if Stop did nothing
    stop = page.locator("#text2video-stop")
    panel.locator("#text2video-run").click()
    panel.locator("#text2video-preview img").wait_for(timeout=RUN_TIMEOUT_MS)  # the run is under way
    expect(panel.locator("#text2video-progress")).to_contain_text("all frames together")
    stop.dispatch_event("click")  # no stability wait: each progress tick re-renders the button
    expect(panel.locator("#text2video-info")).to_contain_text("Stopped at step", timeout=RUN_TIMEOUT_MS)
    wait_until_video_plays(panel)
    expect(panel.locator("#text2video-progress")).to_contain_text("Stopped after")
    expect(stop).to_be_hidden()


def test_resume_continues_a_stopped_clip_from_its_step(page: Page):
    panel = open_tab(page, "Text to video", "text2video-run")
    small_clip(panel, 150)
    stop = page.locator("#text2video-stop")
    panel.locator("#text2video-run").click()
    panel.locator("#text2video-preview img").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#text2video-progress")).to_contain_text("all frames together")  # denoising, not loading
    stop.dispatch_event("click")  # no stability wait: each progress tick re-renders the button
    expect(panel.locator("#text2video-info")).to_contain_text("Stopped at step", timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#text2video-run-folder textarea")).to_have_value(
        re.compile(r"text2video\.json$"), timeout=RUN_TIMEOUT_MS)
    expect(stop).to_be_hidden(timeout=RUN_TIMEOUT_MS)
    page.locator("#text2video-resume").click()
    expect(panel.locator("#text2video-progress")).to_contain_text("all frames together", timeout=RUN_TIMEOUT_MS)
    stop.dispatch_event("click")  # no stability wait: each progress tick re-renders the button
    expect(panel.locator("#text2video-info")).to_contain_text("Resumed from step", timeout=RUN_TIMEOUT_MS)
