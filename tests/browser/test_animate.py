"""The Animate tab in Chromium at 1400x900: run button in the first screen, a run to a playing video, settings file."""
from __future__ import annotations

import json

import pytest

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402
from tests.browser.test_video_and_face_tabs import wait_until_video_plays  # noqa: E402

pytestmark = pytest.mark.browser


def test_animate_runs_to_a_video_with_progress_per_frame(page: Page):
    panel = open_tab(page, "Animate", "animate-run")
    box = page.locator("#animate-run").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900, f"the run button is at y={box['y']:.0f}"
    expect(page.locator("#animate-stop")).to_be_hidden()
    panel.locator("#animate-prompts textarea").fill("0: a forest\n2: a desert")
    set_slider(panel, "Frames", 4)
    set_slider(panel, "Frames per second", 4)
    set_slider(panel, "Cadence", 2)
    expect(panel.locator("#animate-length")).to_contain_text("4 frames at 4 fps = 1.0 s")
    expect(panel.locator("#animate-length")).to_contain_text("Diffusion runs on 2 of the 4 frames")
    expect(panel.get_by_text("diffusers' strength is 1 − this")).to_be_visible()
    panel.get_by_text("More settings", exact=True).click()
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.locator("#animate-run").click()
    ready, duration = wait_until_video_plays(panel)
    assert duration == pytest.approx(1.0, abs=0.1)
    expect(panel.locator("#animate-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    expect(panel.locator("#animate-preview img")).to_be_visible()
    expect(panel.locator("#animate-info")).to_contain_text("2 frames diffused in this run")


def test_a_deforum_settings_file_fills_the_form(page: Page, tmp_path):
    settings = tmp_path / "deforum_settings.txt"
    settings.write_text(json.dumps({"animation_mode": "2D", "max_frames": 48, "zoom": "0:(1.03)",
                                    "diffusion_cadence": "3", "animation_prompts": {"0": "a cave", "24": "a lake"},
                                    "hybrid_motion": "None"}))
    panel = open_tab(page, "Animate", "animate-run")
    panel.get_by_text("Deforum settings file", exact=True).click()
    panel.locator("#animate-settings input[type=file]").set_input_files(str(settings))
    expect(panel.locator("#animate-settings-note")).to_contain_text("Not used from the settings file: hybrid_motion.")
    expect(panel.locator("#animate-prompts textarea")).to_have_value("0: a cave\n24: a lake")
    expect(panel.get_by_label("number input for Frames", exact=True)).to_have_value("48")
    expect(panel.locator("#animate-length")).to_contain_text("Diffusion runs on 16 of the 48 frames (cadence 3)")
