"""The example app in a real browser: headless Chromium (Debian's
``chromium``) driven by Playwright, against the app served over real HTTP.

Without Chromium or Playwright these tests skip, naming the package to
install; under CI (``CI`` set to a true value) they fail instead.
"""

from __future__ import annotations

import collections.abc as cabc
import shutil
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from example_app import create_app
from flask_connect_session.interface import ConnectSessionInterface
from flask_connect_session.users import handle as session_handle

from server_fixtures import _unavailable
from server_fixtures import serve_wsgi

if t.TYPE_CHECKING:
    from playwright.sync_api import Browser
    from playwright.sync_api import BrowserContext
    from playwright.sync_api import Page
    from playwright.sync_api import Playwright

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Keep the profile's cookie store off any desktop keyring.
    "--password-store=basic",
]
#: Milliseconds Playwright waits for a page or an element.
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _unavailable("chromium not found: apt-get install chromium")
    return path


@pytest.fixture(scope="module")
def playwright() -> cabc.Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python package 'playwright' not installed: pip install playwright")
    chromium_path()
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> cabc.Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser) -> cabc.Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


class Served(t.NamedTuple):
    app: Flask
    url: str


@pytest.fixture
def served() -> cabc.Iterator[Served]:
    """The example app with its own config (cookie max_age 3600 s)."""
    app = create_app()
    with serve_wsgi(app) as url:
        yield Served(app, url)


def text(page: Page, selector: str) -> str:
    content = page.text_content(selector)
    assert content is not None, f"no {selector}"
    return content.strip()


def test_counter_increments_on_reload(page: Page, served: Served) -> None:
    page.goto(served.url + "/")
    handle = text(page, "#handle")
    counts = [text(page, "#views")]
    for _ in range(2):
        page.reload()
        counts.append(text(page, "#views"))
        assert text(page, "#handle") == handle
    assert counts == ["1", "2", "3"]


def test_login_regenerates_and_logout_destroys(page: Page, served: Served) -> None:
    page.goto(served.url + "/")
    anonymous = text(page, "#handle")

    page.fill("input[name=name]", "ann")
    page.click("#login")
    page.wait_for_selector(".flash")
    logged_in = text(page, "#handle")
    assert logged_in != anonymous
    assert text(page, "#user") == "ann"
    assert text(page, ".flash") == "Logged in as ann."
    assert text(page, "#views") == "2"  # regenerate(keep=True) kept the counter

    page.click("#logout")
    page.wait_for_selector(".flash")
    assert text(page, ".flash") == "Logged out."
    assert text(page, "#user") == "not logged in"
    assert text(page, "#views") == "1"
    assert text(page, "#handle") not in (anonymous, logged_in)
    store = t.cast(ConnectSessionInterface, served.app.session_interface).store
    live = {session_handle(sid) for sid in store.all()}
    assert anonymous not in live and logged_in not in live


def test_cookie_is_http_only(page: Page, context: BrowserContext, served: Served) -> None:
    page.goto(served.url + "/")
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    session_cookie = cookies["connect.sid"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["value"].startswith("s%3A")
    assert session_cookie["sameSite"] == "Lax"
    assert session_cookie["secure"] is False  # secure="auto" over plain HTTP
    # Scripts see other cookies, never the session's.
    page.evaluate("document.cookie = 'probe=1; path=/'")
    visible = page.evaluate("document.cookie")
    assert "probe=1" in visible
    assert "connect.sid" not in visible


@pytest.mark.parametrize(
    ("max_age", "survives"), [(None, False), (3600, True)], ids=["browser-session", "expiring"]
)
def test_browser_session_cookie_ends_with_the_browser(
    playwright: Playwright, tmp_path: Path, max_age: int | None, survives: bool
) -> None:
    """A cookie without ``max_age`` lives as long as the browser: gone when
    the browser (a persistent profile on disk) is closed and started again,
    while an expiring cookie survives the restart.
    """
    config = tmp_path / "config.toml"
    lines = [
        'SECRET_KEY = "browser test"',
        'CONNECT_SESSION_STORE = "memory://"',
        "[CONNECT_SESSION_COOKIE]",
        'samesite = "Lax"',
    ]
    if max_age is not None:
        lines.append(f"max_age = {max_age}")
    config.write_text("\n".join(lines) + "\n")
    profile = tmp_path / "profile"

    def open_browser() -> BrowserContext:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        context.set_default_timeout(TIMEOUT_MS)
        return context

    with serve_wsgi(create_app(config)) as base:
        context = open_browser()
        try:
            page = context.new_page()
            page.goto(base + "/")
            page.reload()
            assert text(page, "#views") == "2"
            first_handle = text(page, "#handle")
            (cookie,) = [c for c in context.cookies() if c["name"] == "connect.sid"]
            # Playwright reports -1 for a cookie without Expires/Max-Age.
            assert (cookie["expires"] > 0) is survives
        finally:
            context.close()

        context = open_browser()
        try:
            names = [c["name"] for c in context.cookies()]
            assert ("connect.sid" in names) is survives
            page = context.new_page()
            page.goto(base + "/")
            assert (text(page, "#handle") == first_handle) is survives
            assert text(page, "#views") == ("3" if survives else "1")
        finally:
            context.close()


def test_devices_page_logs_out_another_browser(browser: Browser, served: Served) -> None:
    """Two browser contexts log in as the same user; one logs the other out
    from "Your devices"; the other's next page load shows it logged out.
    """
    contexts = [browser.new_context(user_agent=agent) for agent in ("Phone", "Laptop")]
    try:
        phone, laptop = (context.new_page() for context in contexts)
        for page in (phone, laptop):
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(served.url + "/")
            page.fill("input[name=name]", "ann")
            page.click("#login")
            page.wait_for_selector(".flash")
        laptop.click("#devices")
        laptop.wait_for_selector("tr.device.current")
        assert laptop.locator("tr.device").count() == 2
        assert text(laptop, "tr.device.current .agent") == "Laptop"
        assert text(laptop, "tr.device:not(.current) .agent") == "Phone"
        laptop.click("#logout-others")
        laptop.wait_for_selector(".flash")
        assert text(laptop, ".flash") == "Logged out 1 other device(s)."
        assert laptop.locator("tr.device").count() == 1
        phone.reload()
        assert text(phone, "#user") == "not logged in"
        assert phone.locator("#devices").count() == 0
        laptop.goto(served.url + "/")
        assert text(laptop, "#user") == "ann"
    finally:
        for context in contexts:
            context.close()
