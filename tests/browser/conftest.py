"""Real-browser fixtures: the app on the tiny model served on localhost, and Chromium driven by Playwright.

The browser is the system one (/usr/bin/chromium, or STUDIO_CHROMIUM), else Playwright's own Chromium build;
nothing is downloaded here. With neither, the browser tests fail and say how to install one
(`bash scripts/install-browser.sh`); set STUDIO_SKIP_BROWSER=1 to skip them on purpose instead.
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
VIEWPORT = {"width": 1400, "height": 900}  # the first screen every tab's run button must fit in
INSTALL = "bash scripts/install-browser.sh"


def browser_missing(what: str):
    """Fail with the install line, or skip when STUDIO_SKIP_BROWSER=1 says the browser tests are off on purpose."""
    if os.environ.get("STUDIO_SKIP_BROWSER") == "1":
        pytest.skip(f"{what}; browser tests skipped (STUDIO_SKIP_BROWSER=1)", allow_module_level=True)
    pytest.fail(f"{what}: run `{INSTALL}` inside the virtual environment, or set STUDIO_SKIP_BROWSER=1 to skip "
                "the browser tests on purpose", pytrace=False)


def need_playwright():
    """Called at the top of each browser test module, before it imports Playwright."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        browser_missing("Playwright is not installed")


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
    from engine.files.outputs import output_root

    demo = build_demo(manager)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True, css=CSS, allowed_paths=[str(output_root())])
    return demo, demo.local_url


def system_chromium() -> str | None:
    return CHROMIUM if (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)) else None


def launch_browser(playwright):
    """The system Chromium, else Playwright's own build; with neither, fail with the install line (see above)."""
    executable = system_chromium()
    try:
        return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # Playwright raises its own Error when its browser build is not installed
        if executable:
            raise
        browser_missing(f"no Chromium at {CHROMIUM} and no Playwright Chromium ({str(exc).splitlines()[0]})")


def serve_app(manager, outputs: Path):
    """Serve the app on `manager` with its outputs in `outputs`; yields the URL, then stops it and restores the
    output folder setting."""
    previous = os.environ.get("STUDIO_OUTPUT_DIR")
    os.environ["STUDIO_OUTPUT_DIR"] = str(outputs)
    demo, url = launch_app(manager)
    yield url
    demo.close()
    if previous is None:
        os.environ.pop("STUDIO_OUTPUT_DIR", None)
    else:
        os.environ["STUDIO_OUTPUT_DIR"] = previous


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, tiny_manager):
    """The whole app on the tiny random model, writing its outputs to a private folder."""
    yield from serve_app(tiny_manager, tmp_path_factory.mktemp("browser-outputs"))


@pytest.fixture(scope="session")
def browser():
    need_playwright()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
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
