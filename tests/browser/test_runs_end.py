"""Every run ends in Chromium: after a refused input, a server error or Stop, each tab's progress line stops
counting and says what happened in text that stays (the toast fades), Stop hides and the run button is back."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, make_photo, open_tab, set_slider  # noqa: E402

pytestmark = pytest.mark.browser

# tab, element id prefix, the field to fill (a CSS selector, or a label in the panel) with what, and the sentence
REFUSALS = [
    ("Aging timelapse", "aging", None, None, "Upload a face photo to start."),
    ("Gender swap", "swap", None, None, "Upload a photo to start."),
    ("Text to image", "txt2img", "Prompt", "<lora:nope:1> a cat", "No LoRA named 'nope'"),
    ("Image to image", "img2img", None, None, "Upload an image to start from."),
    ("Inpaint", "inpaint", None, None, "Upload a photo, then paint the area to change."),
    ("Dream video", "dream", "#dream-prompt textarea", "", "Write a prompt for the dream."),
    ("Latent walk", "walk", "#walk-prompts textarea", "only one prompt", "A latent walk needs at least 2 prompts"),
    ("Animate", "animate", "#animate-prompts textarea", "", "Write at least one prompt"),
    ("Text to video", "text2video", "#text2video-prompt textarea", "", "Write a prompt for the clip."),
    ("Extras", "extras", None, None, "Upload a picture to upscale."),
]


def check_ended(page: Page, task: str, sentence: str) -> str:
    """The line says `sentence`, is still the same 5 s later, Stop is hidden and the run button is back."""
    bar = page.locator(f"#{task}-progress")
    expect(bar).to_contain_text(sentence, timeout=RUN_TIMEOUT_MS)
    first = bar.inner_text()
    page.wait_for_timeout(5_000)
    assert bar.inner_text() == first, "the progress line still changes after the run ended"
    expect(page.locator(f"#{task}-stop")).to_be_hidden()
    expect(page.locator(f"#{task}-run")).to_be_visible()
    expect(page.locator(f"#{task}-run")).to_be_enabled()
    for close in page.locator(".toast-close").all():  # the toast goes; the sentence stays on the page
        close.click()
    expect(bar).to_contain_text(sentence)
    return first


@pytest.mark.parametrize("name, task, field, value, sentence", REFUSALS, ids=[r[1] for r in REFUSALS])
def test_a_refused_input_ends_the_run_with_its_sentence_on_the_page(page: Page, name, task, field, value,
                                                                    sentence):
    panel = open_tab(page, name, f"{task}-run")
    if field:
        box = page.locator(field) if field.startswith("#") else panel.get_by_label(field, exact=True)
        box.fill(value)
    page.locator(f"#{task}-run").click()
    assert check_ended(page, task, sentence).startswith("Failed: ")


def test_a_refused_xyz_plot_ends_the_run_too(page: Page):
    panel = open_tab(page, "Image to image", "img2img-run")
    panel.locator("#img2img-xyz").get_by_text("X/Y/Z plot").first.click()
    page.locator("#img2img-xyz-run").click()
    check_ended(page, "img2img", "Failed: Upload an image to start from.")


def test_a_server_error_ends_the_run_and_says_where_to_look(page: Page, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in /some/server/path")

    monkeypatch.setattr("tabs.txt2img.text_to_image", broken)
    open_tab(page, "Text to image", "txt2img-run")
    page.locator("#txt2img-run").click()
    text = check_ended(page, "txt2img", "Failed: an error on the server (RuntimeError)")
    assert "/some/server" not in text


def test_stop_while_waiting_for_a_slot_ends_at_once_and_the_run_never_starts(page: Page, browser, app_url,
                                                                              tmp_path):
    # another visitor holds the only slot with a long run
    other = browser.new_context(viewport={"width": 1400, "height": 900})
    busy = other.new_page()
    busy.goto(app_url)
    panel = open_tab(busy, "Text to image", "txt2img-run")
    set_slider(panel, "Steps", 150)
    set_slider(panel, "Batch count", 8)  # far longer than this test needs: it is stopped below
    busy.locator("#txt2img-run").click()
    expect(busy.locator("#txt2img-progress")).to_contain_text("elapsed", timeout=RUN_TIMEOUT_MS)

    panel = open_tab(page, "Image to image", "img2img-run")
    page.locator("#img2img-image input[type=file]").set_input_files(make_photo(tmp_path / "photo.png"))
    expect(panel.locator("#img2img-image img")).to_have_count(1)
    set_slider(panel, "Steps", 2)
    page.locator("#img2img-run").click()
    expect(page.locator("#img2img-progress")).to_contain_text("Waiting for a free slot")
    page.locator("#img2img-stop").dispatch_event("click")
    check_ended(page, "img2img", "Stopped before it started.")

    if busy.locator("#txt2img-stop").is_visible():  # the slot frees; the dropped run must not start
        busy.locator("#txt2img-stop").dispatch_event("click")
    expect(busy.locator("#txt2img-progress")).to_contain_text(re.compile("Stopped after|Done in"),
                                                             timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(3_000)
    expect(page.locator("#img2img-progress")).to_have_text(re.compile(r"^\s*Stopped before it started\.\s*$"))
    expect(panel.locator("#img2img-gallery img")).to_have_count(0)
    other.close()

    page.locator("#img2img-run").click()  # the next press runs
    check_ended(page, "img2img", "Done in")
    expect(panel.locator("#img2img-gallery img")).to_have_count(1)
