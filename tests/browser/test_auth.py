"""With --auth on, a person logs in through the login page before seeing the app."""
from __future__ import annotations

import pytest

from tests.browser.conftest import need_playwright  # noqa: E402

need_playwright()  # a missing Playwright fails with the install line (skips only with STUDIO_SKIP_BROWSER=1)
from playwright.sync_api import expect  # noqa: E402

from tests.browser.conftest import VIEWPORT, free_port  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def locked_app():
    import app

    args = app.parse_args(["--model", "tiny", "--dtype", "float32", "--port", str(free_port()),
                           "--auth", "ann:s3cret"])
    demo = app.launch(args, block=False)
    yield f"http://127.0.0.1:{args.port}/"
    demo.close()


def test_login_page_guards_the_app(browser, locked_app):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(locked_app)
    expect(page.locator("#model-status")).to_have_count(0)
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("wrong")
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text("Incorrect Credentials", exact=False)).to_be_visible()
    page.get_by_label("username").fill("ann")  # the form clears itself after a failed try
    page.get_by_label("password").fill("s3cret")
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#model-status")).to_contain_text("tiny", timeout=30_000)
    context.close()
