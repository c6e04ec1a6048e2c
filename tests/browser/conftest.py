"""Real-browser fixtures: the app on the tiny model served on localhost, and Debian's Chromium via Playwright.

The browser is the system one (/usr/bin/chromium); nothing is downloaded. Override it with STUDIO_CHROMIUM.
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_app(manager):
    """Build the demo on `manager` and serve it on 127.0.0.1 in this process, as app.py does; returns (demo, url).

    Set STUDIO_OUTPUT_DIR first: the output folder is the one extra folder Gradio may serve files from.
    """
    from app import CSS, build_demo
    from engine.outputs import output_root

    demo = build_demo(manager)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True, css=CSS, allowed_paths=[str(output_root())])
    return demo, demo.local_url


def launch_browser(playwright):
    """Debian's Chromium, headless; skips the test when it is not installed."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}; install Debian's chromium or set STUDIO_CHROMIUM")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, tiny_manager):
    """The whole app on the tiny random model, writing its outputs to a private folder."""
    previous = os.environ.get("STUDIO_OUTPUT_DIR")
    os.environ["STUDIO_OUTPUT_DIR"] = str(tmp_path_factory.mktemp("browser-outputs"))
    demo, url = launch_app(tiny_manager)
    yield url
    demo.close()
    if previous is None:
        os.environ.pop("STUDIO_OUTPUT_DIR", None)
    else:
        os.environ["STUDIO_OUTPUT_DIR"] = previous


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser context (its own Gradio session) with the app loaded."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    page.locator("#model-status").wait_for()  # the model bar sits above every tab
    yield page
    context.close()
    if errors:  # an uncaught JavaScript exception means some part of the page stopped working
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors[:5]), pytrace=False)
