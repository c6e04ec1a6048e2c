"""Make docs/screenshot.png: the app on the tiny model after one Text to image run, captured in Chromium.

    python tests/browser/screenshot.py [--out docs/screenshot.png] [--size 256] [--steps 8]

Not a test. It serves the app on 127.0.0.1 only, uses Debian's Chromium (or STUDIO_CHROMIUM), and downloads nothing.
The tiny model has random weights, so the picture is coloured noise; the point is the layout.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, launch_app  # noqa: E402
from tests.browser.test_tabs import RUN_TIMEOUT_MS, open_tab, set_slider  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshot.png",
                        help="where to write the PNG (default: docs/screenshot.png)")
    parser.add_argument("--size", type=int, default=256, help="image width and height, a multiple of 8 (default: 256)")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps (default: 8)")
    parser.add_argument("--seed", type=int, default=1234, help="seed, so the screenshot is repeatable (default: 1234)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: no Chromium at {CHROMIUM}; install Debian's chromium or set STUDIO_CHROMIUM", file=sys.stderr)
        return 2
    from playwright.sync_api import expect, sync_playwright

    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    # 1. the app on the tiny model, writing its outputs to a throwaway folder
    os.environ["STUDIO_OUTPUT_DIR"] = tempfile.mkdtemp(prefix="ds-screenshot-")
    demo, url = launch_app(PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.locator("#model-status").wait_for()

            # 2. one Text to image run, filled in as a person would
            panel = open_tab(page, "Text to image", "txt2img-run")
            panel.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff at sunset, oil painting")
            panel.get_by_label("Negative prompt", exact=True).fill("blurry, low quality")
            set_slider(panel, "Steps", args.steps)
            set_slider(panel, "Width", args.size)
            set_slider(panel, "Height", args.size)
            seed = panel.get_by_label("Seed (-1 = random)", exact=True)
            seed.fill(str(args.seed))
            seed.press("Tab")
            started = time.monotonic()
            page.locator("#txt2img-run").click()
            image = panel.locator(".ds-output img").first
            image.wait_for(timeout=RUN_TIMEOUT_MS)
            expect(panel.locator(".block.ds-info")).to_contain_text("Seed used", timeout=RUN_TIMEOUT_MS)
            image.evaluate("e => e.decode()")
            page.wait_for_timeout(500)  # let the progress overlay fade out

            # 3. the whole page
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out} (generation took {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
