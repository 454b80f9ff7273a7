"""The example app: through the test client and over a real HTTP server."""

from __future__ import annotations

import re
import typing as t

import pytest
import requests
from flask import Flask

from example_app import create_app

from server_fixtures import serve_wsgi


def field(html: str, name: str) -> str:
    match = re.search(rf'id="{name}">([^<]*)<', html)
    assert match, f"no #{name} in page"
    return match.group(1)


@pytest.fixture
def example() -> Flask:
    app = create_app()
    app.testing = True
    return app


def test_counter_increases_in_the_test_client(example: Flask) -> None:
    """Each reload increments the counter; the id stays the same."""
    client = example.test_client()
    pages = [client.get("/").text for _ in range(3)]
    assert [field(p, "views") for p in pages] == ["1", "2", "3"]
    assert len({field(p, "sid") for p in pages}) == 1
    assert 3590 < float(field(pages[-1], "max-age").split()[0]) <= 3600


def test_example_config_uses_the_recommended_touch_interval(example: Flask) -> None:
    """The README recommends ``CONNECT_SESSION_TOUCH_AFTER = 60`` for
    production; the example app's config shows it.
    """
    assert example.session_interface.options.touch_after == 60  # type: ignore[attr-defined]


def test_login_regenerates_and_logout_destroys(example: Flask) -> None:
    """Login gives a new id and keeps the counter; logout empties the session
    and shows the flash.
    """
    client = example.test_client()
    before = field(client.get("/").text, "sid")
    page = client.post("/login", data={"name": "ann"}, follow_redirects=True).text
    assert field(page, "sid") != before
    assert field(page, "user") == "ann"
    assert field(page, "views") == "2"
    assert "Logged in as ann." in page
    page = client.post("/logout", follow_redirects=True).text
    assert "Logged out." in page
    assert field(page, "user") == "not logged in"
    assert field(page, "views") == "1"


@pytest.fixture
def served(example: Flask) -> t.Iterator[str]:
    with serve_wsgi(example) as url:
        yield url


def test_counter_increases_over_real_http(served: str) -> None:
    """A browser-like client (cookie jar over real HTTP) sees the counter rise."""
    with requests.Session() as browser:
        pages = [browser.get(served + "/", timeout=5) for _ in range(3)]
        assert [field(p.text, "views") for p in pages] == ["1", "2", "3"]
        cookie = pages[0].headers["Set-Cookie"]
        assert cookie.startswith("connect.sid=s%3A")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # secure="auto" over plain HTTP
        # An expiring cookie is re-sent when the session changes: same id.
        assert pages[1].headers["Set-Cookie"].split(";")[0] == cookie.split(";")[0]
