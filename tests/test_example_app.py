"""The example app: through the test client and over a real HTTP server."""

from __future__ import annotations

import importlib.util
import re
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask

from example_app import create_app
from flask_connect_session.signing import unsign
from flask_connect_session.testing import session_headers
from flask_connect_session.users import handle

from server_fixtures import serve_wsgi
from set_cookie_headers import the_cookie


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
    assert len({field(p, "handle") for p in pages}) == 1
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
    before = field(client.get("/").text, "handle")
    page = client.post("/login", data={"name": "ann"}, follow_redirects=True).text
    assert field(page, "handle") != before
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


# -- what the page shows, remember me, a planted token (issue 22) -------------


def test_the_page_shows_the_handle_never_the_session_id(example: Flask) -> None:
    """An injected script can read the page: it must not find the id there,
    which HttpOnly keeps out of its reach.
    """
    client = example.test_client()
    page = client.get("/").text
    cookie = client.get_cookie("connect.sid")
    assert cookie is not None
    sid = t.cast(str, unsign(cookie.value, (example.config["SECRET_KEY"],)))
    assert field(page, "handle") == handle(sid)
    assert sid not in page


def test_remember_me_is_a_long_lived_session_that_revoke_ends(example: Flask) -> None:
    phone, laptop = example.test_client(), example.test_client()
    rv = phone.post("/login", data={"name": "ann", "remember": "1"})
    remembered = the_cookie(rv, "connect.sid").expires
    assert remembered is not None and remembered - datetime.now(UTC) > timedelta(days=29)
    plain = the_cookie(laptop.post("/login", data={"name": "ann"}), "connect.sid").expires
    assert plain is not None and plain - datetime.now(UTC) < timedelta(hours=2)
    assert "remembered" in field(phone.get("/").text, "expires-note")
    laptop.post("/devices/logout")  # every other device
    assert field(phone.get("/").text, "user") == "not logged in"


def test_a_token_planted_before_login_does_not_survive_it(example: Flask) -> None:
    """The login keeps the visitor's data (``regenerate(keep=True)``), but
    not a CSRF token an attacker may have planted with his own session
    (``CONNECT_SESSION_REGENERATE_DROP``).
    """
    victim = example.test_client()
    with victim.session_transaction() as planted:
        planted["csrf_token"] = "the attacker's"
        planted["views"] = 5
    victim.post("/login", data={"name": "ann"})
    cookie = victim.get_cookie("connect.sid")
    assert cookie is not None
    sid = t.cast(str, unsign(cookie.value, (example.config["SECRET_KEY"],)))
    document = example.session_interface.store.get(sid)  # type: ignore[attr-defined]
    assert document is not None and document["user"] == "ann" and document["views"] == 5
    assert "csrf_token" not in document
