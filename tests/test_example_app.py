"""The example app: through the test client and over a real HTTP server."""

from __future__ import annotations

import importlib.util
import re
import typing as t
from pathlib import Path

import pytest
import requests
from flask import Flask

from example_app import create_app
from flask_connect_session.testing import session_headers

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


# -- the JSON API, for clients that send the session id in a header --------

HEADER = "X-Session-Id"


def api_client_recipe() -> t.Any:
    """docs/examples/api_client.py, the client the API clients page shows."""
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "api_client.py"
    spec = importlib.util.spec_from_file_location("api_client_recipe", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_with_the_session_in_a_header_over_real_http(served: str) -> None:
    """Log in, ask who we are, log out: the id travels in the header only."""
    api = api_client_recipe().ApiClient(served)
    anonymous = api.request("GET", "/api/me")
    assert anonymous.status_code == 401
    assert HEADER not in anonymous.headers  # nothing stored, nothing sent

    login = api.request("POST", "/api/login", json={"name": "ann"})
    assert login.json() == {"user": "ann"}
    value = login.headers[HEADER]
    assert value.startswith("s%3A")
    assert HEADER in login.headers["Vary"]
    me = api.request("GET", "/api/me")
    assert (me.status_code, me.json()) == (200, {"user": "ann"})

    logout = api.request("POST", "/api/logout")
    assert logout.headers[HEADER] == ""
    assert api.request("GET", "/api/me").status_code == 401
    replayed = requests.get(served + "/api/me", headers={HEADER: value}, timeout=5)
    assert replayed.status_code == 401
    for response in (anonymous, login, me, logout, replayed):
        assert "Set-Cookie" not in response.headers
    assert not api.http.cookies


def test_api_client_recipe_runs_as_written(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api_client_recipe().main(served)
    assert capsys.readouterr().out == "{'user': 'ann'}\n401\n"


def test_browser_and_api_client_keep_separate_sessions(served: str) -> None:
    """A cookie session and a header session side by side; the API refuses
    the cookie, so no cross-site page can drive it.
    """
    api = api_client_recipe().ApiClient(served)
    api.request("POST", "/api/login", json={"name": "api"}).raise_for_status()
    with requests.Session() as browser:
        page = browser.post(served + "/login", data={"name": "web"}, timeout=5)
        assert field(page.text, "user") == "web"
        refused = browser.get(served + "/api/me", timeout=5)
        assert refused.status_code == 400
        assert HEADER in refused.json()["error"]
        assert field(browser.get(served + "/", timeout=5).text, "user") == "web"
    assert api.request("GET", "/api/me").json() == {"user": "api"}


def test_api_cors_lets_an_allowed_origin_send_and_read_the_header(served: str) -> None:
    """The preflight allows the header; responses expose it; other origins
    get no CORS headers.
    """
    origin = "http://localhost:5173"
    preflight = requests.options(
        served + "/api/login",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-session-id",
        },
        timeout=5,
    )
    assert preflight.ok
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    allowed = {
        h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"x-session-id", "content-type"} <= allowed
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # no cookies needed
    login = requests.post(
        served + "/api/login",
        json={"name": "ann"},
        headers={"Origin": origin, HEADER: ""},
        timeout=5,
    )
    assert login.headers["Access-Control-Allow-Origin"] == origin
    assert login.headers["Access-Control-Expose-Headers"] == HEADER
    assert login.headers[HEADER].startswith("s%3A")
    foreign = requests.get(
        served + "/api/me", headers={"Origin": "https://evil.example", HEADER: ""}, timeout=5
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_api_in_the_test_client(example: Flask) -> None:
    """The same API through the test client, with the plugin's helper."""
    client = example.test_client()
    headers = session_headers(client, {"user": "bob"})
    assert client.get("/api/me", headers=headers).json == {"user": "bob"}
    assert client.get("/api/me").status_code == 400
    assert client.get_cookie("connect.sid") is None


def test_devices_page_logs_out_other_devices(example: Flask) -> None:
    """Two clients log in as the same user; one sees both on "Your devices"
    and logs the other out.
    """
    phone, laptop = example.test_client(), example.test_client()
    for client, agent in ((phone, "Phone"), (laptop, "Laptop")):
        client.environ_base["HTTP_USER_AGENT"] = agent
        client.post("/login", data={"name": "ann"})
    page = laptop.get("/devices").text
    assert page.count('class="device') == 2
    assert re.search(r'class="device current".*?Laptop.*?this device', page, re.S)
    assert "Phone" in page
    page = laptop.post("/devices/logout", follow_redirects=True).text
    assert "Logged out 1 other device(s)." in page
    assert "Phone" not in page
    assert field(phone.get("/").text, "user") == "not logged in"
    assert field(laptop.get("/").text, "user") == "ann"
    # Logging out this device from the list ends this session.
    handle = re.search(r'name="handle" value="([^"]+)"', page)
    assert handle
    laptop.post("/devices/logout", data={"handle": handle.group(1)})
    assert field(laptop.get("/").text, "user") == "not logged in"
