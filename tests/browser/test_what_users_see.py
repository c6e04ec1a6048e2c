"""What a person sees in Chromium at 1400x900 (and on a 390-px phone): the run button in the first screen, the
progress line in view once it is pressed, every tab in reach, a live preview no overlay covers under a progress bar
that keeps counting, plain sentences for files that aren't images, readable face labels whose highlight follows the
picker, and results shown whole."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import need_playwright

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_runs_end import REFUSALS  # noqa: E402
from tests.browser.test_tabs import RUN_TIMEOUT_MS, fetch_image, open_tab, set_slider  # noqa: E402
from tests.browser.test_video_and_face_tabs import EXAMPLE  # noqa: E402

pytestmark = pytest.mark.browser

TABS = [("Aging timelapse", "aging-run"), ("Gender swap", "swap-run"), ("Text to image", "txt2img-run"),
        ("Image to image", "img2img-run"), ("Inpaint", "inpaint-run"), ("Dream video", "dream-run"),
        ("Latent walk", "walk-run"), ("Animate", "animate-run"), ("Text to video", "text2video-run"),
        ("Train", "train-run"), ("Extras", "extras-run")]
SENTENCE = "fake.png is not an image Diffusion Studio can read (PNG, JPEG or WebP)."


def watch_toasts(page: Page) -> None:
    """Keep the text of every toast that appears (they fade out after a while) in window.toastTexts."""
    page.evaluate("""() => { window.toastTexts = []; const seen = new WeakSet();
        new MutationObserver(() => document.querySelectorAll('.toast-body').forEach(t => {
            if (!seen.has(t) && t.innerText.trim()) { seen.add(t); window.toastTexts.push(t.innerText); } }))
        .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")


def wait_for_toasts_saying(page: Page, text: str, count: int) -> list[str]:
    """Wait until `count` toasts have said `text`, then close them (Gradio won't repeat a toast still shown)."""
    page.wait_for_function("([text, n]) => window.toastTexts.filter(t => t.includes(text)).length >= n",
                           arg=[text, count], timeout=RUN_TIMEOUT_MS)
    for close in page.locator(".toast-close").all():
        close.click()
    expect(page.locator(".toast-body")).to_have_count(0)
    return page.evaluate("window.toastTexts")


def shown_rect(img) -> dict:
    """Where the picture itself is drawn inside an <img>, allowing for object-fit (contain letterboxes it)."""
    return img.evaluate("""e => {
        const r = e.getBoundingClientRect(), fit = getComputedStyle(e).objectFit;
        let w = r.width, h = r.height;
        if (fit === 'contain' || fit === 'scale-down') {
            const s = Math.min(r.width / e.naturalWidth, r.height / e.naturalHeight,
                               fit === 'scale-down' ? 1 : Infinity);
            w = e.naturalWidth * s; h = e.naturalHeight * s;
        }
        return {x: r.x + (r.width - w) / 2, y: r.y + (r.height - h) / 2, width: w, height: h, fit: fit,
                natural: [e.naturalWidth, e.naturalHeight]};
    }""")


def test_every_tab_has_its_run_button_in_the_first_screen_and_no_upload_box_for_outputs(page: Page):
    for name, run_id in TABS:
        panel = open_tab(page, name, run_id)
        box = page.locator(f"#{run_id}").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 900, f"{name}: the run button is at y={box['y']:.0f}"
        expect(page.locator(f"#{run_id.replace('-run', '-stop')}")).to_be_hidden()  # Stop only while running
        for gallery in panel.locator(".ds-gallery").all():
            expect(gallery).not_to_contain_text("Drop")  # output galleries are not upload boxes
            expect(gallery).not_to_contain_text("Click to Upload")


@pytest.mark.parametrize("width, height", [(1400, 900), (390, 844)], ids=["desktop", "phone"])
def test_every_tab_is_in_reach_and_its_progress_line_comes_into_view_when_its_button_is_pressed(browser, app_url,
                                                                                              width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(app_url)
    page.locator("#model-status").wait_for()
    for name, _ in TABS:  # no tab hides in a "⋯" menu, on a phone either
        expect(page.get_by_role("tab", name=name, exact=True)).to_be_in_viewport()
    for name, task, field, value, sentence in REFUSALS:  # a refused input: the button's effect, without the work
        page.evaluate("window.scrollTo(0, 0)")
        panel = open_tab(page, name, f"{task}-run")
        if field:
            box = page.locator(field) if field.startswith("#") else panel.get_by_label(field, exact=True)
            box.fill(value)
        page.locator(f"#{task}-run").click()
        bar = page.locator(f"#{task}-progress")
        expect(bar).to_contain_text(sentence, timeout=RUN_TIMEOUT_MS)
        expect(bar.locator(".ds-bar-text"), f"{name} at {width} px").to_be_in_viewport(ratio=1)
        if width < 640:  # on a phone the preview above the line comes into view too
            expect(page.locator(f"#{task}-preview"), f"{name} at {width} px").to_be_in_viewport(ratio=0.5)
        for close in page.locator(".toast-close").all():  # toasts pile up over the tabs
            close.click()
    context.close()


def test_the_xyz_plot_brings_its_progress_and_grid_into_view(page: Page):
    panel = open_tab(page, "Text to image", "txt2img-run")
    set_slider(panel, "Steps", 3)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    panel.locator("#txt2img-xyz").get_by_text("X/Y/Z plot").first.click()
    run = page.locator("#txt2img-xyz-run")
    run.scroll_into_view_if_needed()
    expect(page.locator("#txt2img-progress")).not_to_be_in_viewport()  # the situation the scroll is for
    run.click()
    expect(page.locator("#txt2img-progress .ds-bar-text")).to_be_in_viewport(ratio=1)
    expect(page.locator("#txt2img-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#txt2img-gallery img").first).to_be_in_viewport()


def test_inpaint_results_start_in_the_first_screen(page: Page):
    open_tab(page, "Inpaint", "inpaint-run")
    box = page.locator("#inpaint-gallery").bounding_box()
    assert box["y"] < 900 - 150, f"the result gallery starts at y={box['y']:.0f}"


def test_a_video_tabs_frames_gallery_shows_every_column_whole(page: Page):
    panel = open_tab(page, "Dream video", "dream-run")
    set_slider(panel, "Frames (whole video)", 7)
    set_slider(panel, "Steps", 2)
    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#dream-run").click()
    expect(page.locator("#dream-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    frames = page.locator("#dream-frames")
    expect(frames.locator("img")).to_have_count(7)
    edge = frames.bounding_box()
    for img in frames.locator("img").all()[:6]:  # the first row: six columns
        box = img.bounding_box()
        assert box["x"] >= edge["x"] and box["x"] + box["width"] <= edge["x"] + edge["width"] + 0.5, (box, edge)
    assert frames.locator(".grid-wrap").evaluate("e => e.scrollWidth <= e.clientWidth")


def test_preview_stays_visible_under_a_progress_bar_that_keeps_counting(page: Page, output_dir):
    panel = open_tab(page, "Text to image", "txt2img-run")
    set_slider(panel, "Steps", 100)  # a few seconds, so the bar is seen counting
    set_slider(panel, "Width", 128)  # a wide result, to check the gallery shows it whole
    set_slider(panel, "Height", 64)
    page.evaluate("""() => { window.barTexts = []; const bar = document.querySelector('#txt2img-progress');
        new MutationObserver(() => window.barTexts.push(bar.innerText)).observe(bar,
            {subtree: true, childList: true, characterData: true}); }""")
    page.locator("#txt2img-run").click()

    # At least once after the first preview, the point at the preview's centre is the preview image itself.
    page.wait_for_function("""() => {
        const img = document.querySelector('#txt2img-preview img');
        if (!img || !img.complete || img.naturalWidth === 0) return false;
        const r = img.getBoundingClientRect();
        return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === img;
    }""", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#txt2img-progress")).to_contain_text(re.compile(r"left|almost done|Done in"),
                                                              timeout=RUN_TIMEOUT_MS)
    gallery_img = panel.locator("#txt2img-gallery img").first
    gallery_img.wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#txt2img-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)

    # One bar: its elapsed time never goes back, and once there is an ETA it stays until the end.
    texts = [t for t in page.evaluate("window.barTexts") if "elapsed" in t]
    elapsed = [float(m.group(1)) * (60 if m.group(2) == " min" else 1)
               for t in texts for m in [re.search(r"([\d.]+)( min| s)[^·]* elapsed", t)] if m]
    assert len(elapsed) >= 3 and elapsed == sorted(elapsed), f"the elapsed time went back: {texts}"
    with_eta = [i for i, t in enumerate(texts) if "left" in t or "almost done" in t]
    assert with_eta and all("left" in t or "almost done" in t for t in texts[with_eta[0]:]), texts

    # The result is drawn whole, at the file's aspect ratio, inside the gallery's box.
    gallery_img.evaluate("e => e.decode()")
    drawn = shown_rect(gallery_img)
    assert drawn["fit"] == "contain"
    assert drawn["natural"] == [128, 64]
    assert drawn["width"] / drawn["height"] == pytest.approx(2.0, rel=0.02)
    frame = panel.locator("#txt2img-gallery .grid-wrap").bounding_box()
    assert frame["y"] - 1 <= drawn["y"] and drawn["y"] + drawn["height"] <= frame["y"] + frame["height"] + 1
    assert frame["x"] - 1 <= drawn["x"] and drawn["x"] + drawn["width"] <= frame["x"] + frame["width"] + 1


def test_a_file_that_is_not_an_image_gets_one_sentence_and_no_server_path(page: Page, tmp_path):
    import gradio.utils

    fake = tmp_path / "fake.png"
    fake.write_text("this is text, not a picture\n")
    temp_folder = str(gradio.utils.get_upload_folder())

    watch_toasts(page)
    panel = open_tab(page, "Image to image", "img2img-run")
    page.locator("#img2img-image input[type=file]").set_input_files(str(fake))
    wait_for_toasts_saying(page, SENTENCE, 1)
    expect(panel.locator("#img2img-image img")).to_have_count(0)  # no broken image left in the box

    panel = open_tab(page, "Aging timelapse", "aging-run")
    page.locator("#aging-photo input[type=file]").set_input_files(str(fake))
    wait_for_toasts_saying(page, SENTENCE, 2)
    expect(panel.locator("#aging-photo img")).to_have_count(0)

    open_tab(page, "Inpaint", "inpaint-run")
    page.locator("#inpaint-editor canvas").first.wait_for()
    with page.expect_file_chooser() as chooser:
        page.locator("#inpaint-upload").click()
    chooser.value.set_files(str(fake))
    shown = wait_for_toasts_saying(page, SENTENCE, 3)

    for text in shown:
        assert temp_folder not in text and "/tmp/" not in text and "preprocess" not in text, text


def two_faces(path) -> str:
    """A 2000x1000 photo with two people: face 1 (the larger) on the left, face 2 on the right."""
    person = Image.open(EXAMPLE).convert("RGB")
    photo = Image.new("RGB", (2000, 1000), (200, 200, 200))
    photo.paste(person.resize((1000, 1000)), (0, 0))
    photo.paste(person.resize((700, 700)), (1200, 150))
    photo.save(path)
    return str(path)


def test_face_labels_are_readable_and_the_highlight_follows_the_face_number(page: Page, tmp_path):
    photo_path = two_faces(tmp_path / "two.png")
    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    panel = open_tab(page, "Gender swap", "swap-run")
    page.locator("#swap-photo input[type=file]").set_input_files(photo_path)
    note = panel.locator("#swap-faces-note")
    expect(note).to_contain_text("2 faces found", timeout=RUN_TIMEOUT_MS)
    expect(note).to_contain_text("face 1: left")
    expect(note).to_contain_text("face 2: right")
    expect(panel.locator("#swap-face input")).to_have_attribute("max", "2")

    def drawn():
        img = panel.locator("#swap-faces img")
        img.wait_for()
        img.evaluate("e => e.decode()")
        return img, np.asarray(fetch_image(page, img))

    def green_x(preview) -> float:
        green = np.all(preview == (0, 230, 64), axis=-1)
        return float(np.nonzero(green)[1].mean())

    img, preview = drawn()
    assert preview.shape == photo.shape
    # the numbers' pixels: black where the photo was not, one digit per half of the photo
    glyph = np.all(preview == 0, axis=-1) & np.any(preview != photo, axis=-1)
    rect = shown_rect(img)
    scale = rect["width"] / photo.shape[1]
    for half in (glyph[:, :1000], glyph[:, 1000:]):
        rows = np.nonzero(half.any(axis=1))[0]
        assert rows.size, "a face label is missing"
        assert (rows[-1] - rows[0] + 1) * scale >= 16, f"label {(rows[-1] - rows[0] + 1) * scale:.1f} px tall"
    assert green_x(preview) < 1000, "face 1 (the larger, on the left) should be highlighted first"

    src = img.get_attribute("src")
    box = panel.locator("#swap-face input")
    box.fill("2")
    box.press("Enter")
    page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
                           arg=["#swap-faces img", src], timeout=RUN_TIMEOUT_MS)
    _, preview = drawn()
    assert green_x(preview) > 1000, "the highlight should move to face 2, on the right"
    expect(note).to_contain_text(re.compile(r"face 2: right, \d+ px ← chosen"))


def test_animate_starts_at_the_models_own_size_like_the_other_tabs(page: Page):
    panel = open_tab(page, "Text to image", "txt2img-run")
    size = panel.get_by_label("range slider for Width", exact=True).input_value()
    panel = open_tab(page, "Animate", "animate-run")
    panel.get_by_text("More settings").click()
    for label in ("Width", "Height"):
        expect(panel.get_by_label(f"range slider for {label}", exact=True)).to_have_value(size)
    assert size == "128"  # the tiny model's own size, not 512


def test_without_its_files_keep_identity_points_to_the_readme_in_a_short_sentence(page: Page, tiny_manager):
    if tiny_manager.identity_available():
        pytest.skip("the IP-Adapter files are installed here")
    for name, run_id, slider in (("Aging timelapse", "aging-run", "#aging-keep-identity"),
                                 ("Gender swap", "swap-run", "#swap-keep-identity")):
        open_tab(page, name, run_id)
        text = page.locator(slider).inner_text()
        assert "README" in text and "hf download" not in text and len(text) < 200, text


def test_img2img_progress_counts_steps_the_fields_explain(page: Page, tmp_path):
    from tests.browser.test_tabs import make_photo

    panel = open_tab(page, "Image to image", "img2img-run")
    page.locator("#img2img-image input[type=file]").set_input_files(make_photo(tmp_path / "photo.png"))
    expect(panel.locator("#img2img-image img")).to_have_count(1)
    set_slider(panel, "Steps", 120)  # long enough (about 2 s on the tiny model) for the bar's 0.5-s timer
    set_slider(panel, "Denoising strength", 0.5)
    page.evaluate("""() => { window.barTexts = []; const bar = document.querySelector('#img2img-progress');
        new MutationObserver(() => window.barTexts.push(bar.innerText)).observe(bar,
            {subtree: true, childList: true, characterData: true}); }""")
    page.locator("#img2img-run").click()
    expect(page.locator("#img2img-progress")).to_contain_text("Done in", timeout=RUN_TIMEOUT_MS)
    texts = page.evaluate("window.barTexts")
    assert any(re.search(r"step \d+ of 60 \(120 steps × strength 0\.5\)", t) for t in texts), texts
