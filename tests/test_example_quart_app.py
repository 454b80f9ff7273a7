"""The Quart example app: through Quart's test client and over real HTTP
(Hypercorn).
"""

from __future__ import annotations

import collections.abc as cabc
import re
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests
from quart import Quart

from example_quart_app import create_app

import framework as fw
from async_bridge import loop
from set_cookie_headers import parse_set_cookie

HEADER = "X-Session-Id"


def field(html: str, name: str) -> str:
    match = re.search(rf'id="{name}">([^<]*)<', html)
    assert match, f"no #{name} in page"
    return match.group(1)


@pytest.fixture
def example() -> Quart:
    app = create_app()
    app.testing = True
    return app


def run(coroutine: cabc.Coroutine[t.Any, t.Any, t.Any]) -> t.Any:
    return loop().run(coroutine)


async def text(response: t.Any) -> str:
    return t.cast(str, await response.get_data(as_text=True))


def test_counter_login_and_logout(example: Quart) -> None:
    """Each reload counts; login gives a new id and keeps the counter;
    logout empties the session and shows the flash.
    """

    async def scenario() -> None:
        client = example.test_client()
        pages = [await text(await client.get("/")) for _ in range(3)]
        assert [field(p, "views") for p in pages] == ["1", "2", "3"]
        assert len({field(p, "handle") for p in pages}) == 1
        page = await text(await client.post("/login", form={"name": "ann"}, follow_redirects=True))
        assert field(page, "handle") != field(pages[0], "handle")
        assert (field(page, "user"), field(page, "views")) == ("ann", "4")
        assert "Logged in as ann." in page
        page = await text(await client.post("/logout", follow_redirects=True))
        assert "Logged out." in page
        assert (field(page, "user"), field(page, "views")) == ("not logged in", "1")

    run(scenario())


def test_devices_page_logs_out_other_devices(example: Quart) -> None:
    async def scenario() -> None:
        phone, laptop = example.test_client(), example.test_client()
        for client, agent in ((phone, "Phone"), (laptop, "Laptop")):
            await client.post("/login", form={"name": "ann"}, headers={"User-Agent": agent})
        page = await text(await laptop.get("/devices", headers={"User-Agent": "Laptop"}))
        assert page.count('class="device') == 2
        assert re.search(r'class="device current".*?Laptop.*?this device', page, re.S)
        page = await text(await laptop.post("/devices/logout", follow_redirects=True))
        assert "Logged out 1 other device(s)." in page and "Phone" not in page
        assert field(await text(await phone.get("/")), "user") == "not logged in"
        assert field(await text(await laptop.get("/")), "user") == "ann"

    run(scenario())


def test_remember_me_is_a_long_lived_session(example: Quart) -> None:
    async def scenario() -> None:
        client = example.test_client()
        response = await client.post("/login", form={"name": "ann", "remember": "1"})
        [cookie] = [parse_set_cookie(h) for h in response.headers.getlist("Set-Cookie")]
        assert cookie.expires is not None
        assert cookie.expires - datetime.now(UTC) > timedelta(days=29)
        assert "remembered" in field(await text(await client.get("/")), "expires-note")

    run(scenario())


@pytest.fixture
def served(example: Quart) -> t.Iterator[str]:
    with fw.serve_asgi(example) as url:
        yield url


def test_pages_and_api_over_real_http(served: str) -> None:
    """A browser's cookie session and an API client's header session, side
    by side behind Hypercorn.
    """
    with requests.Session() as browser:
        pages = [browser.get(served + "/", timeout=5) for _ in range(2)]
        assert [field(p.text, "views") for p in pages] == ["1", "2"]
        cookie = pages[0].headers["Set-Cookie"]
        assert cookie.startswith("connect.sid=s%3A") and "HttpOnly" in cookie
        assert "Secure" not in cookie  # secure="auto" over plain HTTP
        assert browser.get(served + "/api/me", timeout=5).status_code == 400  # no header
    with requests.Session() as api:
        login = api.post(served + "/api/login", json={"name": "ann"}, headers={HEADER: ""})
        assert login.json() == {"user": "ann"} and "Set-Cookie" not in login.headers
        value = login.headers[HEADER]
        me = api.get(served + "/api/me", headers={HEADER: value}, timeout=5)
        assert (me.status_code, me.json()) == (200, {"user": "ann"})
        logout = api.post(served + "/api/logout", headers={HEADER: value}, timeout=5)
        assert logout.headers[HEADER] == ""
        assert api.get(served + "/api/me", headers={HEADER: value}, timeout=5).status_code == 401
