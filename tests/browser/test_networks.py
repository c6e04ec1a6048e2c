"""The LoRA and embedding picker in Chromium: pick a LoRA, an embedding and Few-step mode, then generate with them."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import VIEWPORT, need_playwright, serve_app

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.test_tabs import RUN_TIMEOUT_MS, info, open_tab, set_slider  # noqa: E402
from tests.engine import lora_files as lf  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def networks_url(tmp_path_factory):
    """The app on the tiny model with a LoRA folder (a style LoRA and an LCM LoRA) and an embedding."""
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("networks")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=root / "Lora",
                              embeddings_dir=root / "embeddings")
    pipe = manager.base()
    lf.write_lora(root / "Lora", "paper_style", lf.kohya_lora(pipe))
    lf.write_lora(root / "Lora", "lcm-lora-sdv1-5", lf.kohya_lora(pipe, seed=9))
    lf.write_a1111_embedding_pt(root / "embeddings", "inkwash", pipe.text_encoder.get_input_embeddings().weight.shape[-1])
    yield from serve_app(manager, tmp_path_factory.mktemp("network-outputs"))


@pytest.fixture
def page(browser, networks_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(networks_url)
    page.locator("#model-status").wait_for()
    yield page
    context.close()
    if errors:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors[:5]), pytrace=False)


def pick(page: Page, panel, label: str, option: str) -> None:
    """Open a Gradio dropdown and click an entry, as a person does."""
    panel.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_picking_a_lora_an_embedding_and_few_step_writes_the_prompt_and_generates(page: Page):
    panel = open_tab(page, "Text to image", "txt2img-run")
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("a harbour at dawn")
    page.locator("#txt2img-networks").get_by_text("LoRAs and embeddings", exact=True).click()
    expect(page.locator("#txt2img-networks")).to_contain_text("2 LoRAs in")

    pick(page, panel, "Add a LoRA", "paper_style")
    expect(prompt).to_have_value("a harbour at dawn <lora:paper_style:1>")
    pick(page, panel, "Add an embedding", "inkwash")
    expect(prompt).to_have_value("a harbour at dawn <lora:paper_style:1>, inkwash")
    pick(page, panel, "Few-step mode", "LCM: lcm-lora-sdv1-5 (LCM, 4 steps, CFG 1)")
    expect(prompt).to_have_value("a harbour at dawn <lora:paper_style:1>, inkwash <lora:lcm-lora-sdv1-5:1>")
    expect(panel.get_by_label("Sampler", exact=True)).to_have_value("LCM")
    expect(panel.get_by_label("number input for Steps", exact=True)).to_have_value("4")

    set_slider(panel, "Width", 64)
    set_slider(panel, "Height", 64)
    page.locator("#txt2img-run").click()
    expect(info(panel)).to_contain_text("Seed used", timeout=RUN_TIMEOUT_MS)
    params = panel.locator("label", has_text="Generation parameters (PNG info)").locator("textarea")
    expect(params).to_have_value(re.compile(r'Sampler: LCM, CFG scale: 1.*Lora hashes: "paper_style: [0-9a-f]{12}, '
                                            r'lcm-lora-sdv1-5: [0-9a-f]{12}", TI hashes: "inkwash: [0-9a-f]{12}"'))
