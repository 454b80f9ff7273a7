"""``CONNECT_SESSION_HEADER``: the session id in a header for API clients
(docs/behaviour.rst, "Sessions in a header"), beside the cookie.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t
from urllib.parse import unquote

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import Store
from flask_connect_session.options import Options
from flask_connect_session.signing import sign
from flask_connect_session.testing import CountingStore
from flask_connect_session.testing import ServerSessionAccess
from flask_connect_session.testing import server_session
from flask_connect_session.testing import session_headers
from flask_connect_session.testing import set_server_session

import framework as fw
from conftest import SECRET
from conftest import add_views
from framework import App
from framework import session

HEADER = "X-Session-Id"
#: A header request with no session yet.
NO_SESSION = {HEADER: ""}


def make_header_app(framework: str, store: Store | None = None, **config: t.Any) -> App:
    """A test app with the header configured and the generic views."""
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store if store is not None else MemoryStore(),
        CONNECT_SESSION_HEADER=HEADER,
    )
    app.config.update(config)
    fw.connect(app)
    add_views(app)
    return app


@pytest.fixture
def counting() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def app(framework: str, counting: CountingStore) -> App:
    return make_header_app(framework, counting)


def sid_in(value: str) -> str:
    """The id in a signed value (encoded or not); the signature is not checked."""
    return unquote(value)[2:].rpartition(".")[0]


def header_of(response: t.Any) -> str:
    """The header value a response gives a header client; it never sets or
    deletes the cookie.
    """
    assert "Set-Cookie" not in response.headers
    assert response.headers.get_all(HEADER) != [], "no session header in the response"
    [value] = response.headers.get_all(HEADER)
    return t.cast(str, value)


def start(client: t.Any, data: dict[str, t.Any]) -> tuple[str, dict[str, str]]:
    """Start a header session holding ``data``; return its id and headers."""
    response = client.post("/set", json=data, headers=NO_SESSION)
    value = header_of(response)
    assert value.startswith("s%3A")  # encoded as the cookie is
    assert sid_in(value) == response.json["id"]
    return response.json["id"], {HEADER: value}


# -- configuration ----------------------------------------------------------


def test_header_is_off_by_default() -> None:
    assert Options.from_config(Flask(__name__).config).header is None


@pytest.mark.parametrize("name", ["X-Session-Id", "x-auth-token", "Session", "X_Sid"])
def test_header_names_that_are_tokens_are_accepted(name: str) -> None:
    app = Flask(__name__)
    app.config["CONNECT_SESSION_HEADER"] = name
    assert Options.from_config(app.config).header == name


@pytest.mark.parametrize(
    "value",
    [
        "",
        "X Session",
        "X-Session:",
        "X-Session\r\nSet-Cookie: a=b",
        "X-Séssion",
        "(sid)",
        5,
        ["X-Session-Id"],
        "Cookie",
        "set-cookie",
        "Authorization",
        "CONTENT-TYPE",
        "Content-Length",
        # Sent by browsers on their own: every browser request would carry it.
        "Accept",
        "accept-language",
        "Origin",
        "Referer",
        "User-Agent",
        "Host",
        "Cache-Control",
        "Connection",
        "Upgrade-Insecure-Requests",
        "Sec-Fetch-Site",
        "sec-ch-ua",
        "If-None-Match",
        "Proxy-Connection",
    ],
)
def test_bad_header_name_is_a_value_error_naming_the_key(value: object) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_HEADER=value)
    with pytest.raises(ValueError, match="CONNECT_SESSION_HEADER"):
        ConnectSession(app)


# -- header requests ---------------------------------------------------------


def test_header_request_gets_the_signed_id_in_the_header(app: App) -> None:
    """A new session is sent in the header, signed as the cookie would be,
    never as a cookie; ``Vary`` names the header.
    """
    client = app.test_client()
    response = client.post("/set", json={"a": 1}, headers=NO_SESSION)
    sid = response.json["id"]
    assert header_of(response) == sign(sid, SECRET)
    assert response.headers.get_all("Vary") == [HEADER]
    assert client.get_cookie("connect.sid") is None
    seen = client.get("/get", headers={HEADER: header_of(response)})
    assert seen.json == {"data": {"a": 1}, "id": sid, "new": False}
    # A browser-session "cookie" is sent once, as the cookie would be.
    assert HEADER not in seen.headers
    assert seen.headers.get_all("Vary") == [HEADER]


def test_unencoded_value_is_accepted(app: App) -> None:
    client = app.test_client()
    sid, headers = start(client, {"a": 1})
    plain = unquote(headers[HEADER])
    assert plain.startswith("s:") and "%" not in plain
    assert client.get("/get", headers={HEADER: plain}).json["id"] == sid


def test_expiring_session_is_resent_when_modified(framework: str, counting: CountingStore) -> None:
    """With an expiring cookie, a changed session re-sends its (same) value."""
    client = make_header_app(
        framework, counting, CONNECT_SESSION_COOKIE={"max_age": 600}
    ).test_client()
    sid, headers = start(client, {"n": 0})
    response = client.get("/count", headers=headers)
    assert response.json == {"n": 1, "id": sid}
    assert header_of(response) == headers[HEADER]
    assert HEADER not in client.get("/get", headers=headers).headers


def test_rolling_resends_the_header_on_every_response(
    framework: str, counting: CountingStore
) -> None:
    client = make_header_app(framework, counting, CONNECT_SESSION_ROLLING=True).test_client()
    _, headers = start(client, {"a": 1})
    assert header_of(client.get("/get", headers=headers)) == headers[HEADER]
    assert header_of(client.get("/ignore", headers=headers)) == headers[HEADER]


def test_the_cookie_is_ignored_on_header_requests(app: App, counting: CountingStore) -> None:
    """A valid cookie loses to the header, even to an empty one, and is
    neither read, changed nor deleted.
    """
    client = app.test_client()
    cookie_sid = client.post("/set", json={"who": "cookie"}).json["id"]
    assert client.get_cookie("connect.sid") is not None
    counting.reset()
    response = client.post("/set", json={"who": "header"}, headers=NO_SESSION)
    assert response.json["id"] != cookie_sid
    assert response.json["data"] == {"who": "header"}
    assert ("get", cookie_sid) not in counting.calls
    header_sid = sid_in(header_of(response))
    destroyed = client.post("/destroy", headers={HEADER: header_of(response)})
    assert header_of(destroyed) == ""
    # The cookie client still has its session, untouched.
    assert client.get_cookie("connect.sid") is not None
    assert client.get("/get").json == {"data": {"who": "cookie"}, "id": cookie_sid, "new": False}
    assert counting.store.get(header_sid) is None


def test_header_and_cookie_sessions_side_by_side(app: App) -> None:
    """A header client and a cookie client of one app keep two sessions."""
    browser = app.test_client()
    api = app.test_client(use_cookies=False)
    cookie_response = browser.post("/set", json={"who": "browser"})
    header_sid, headers = start(api, {"who": "api"})
    assert cookie_response.json["id"] != header_sid
    # Requests without the header work as before; Vary names the header too,
    # since adding it would change the response.
    assert HEADER not in cookie_response.headers
    assert cookie_response.headers["Set-Cookie"].startswith("connect.sid=s%3A")
    assert cookie_response.headers.get_all("Vary") == [f"Cookie, {HEADER}"]
    for n in (1, 2):
        assert browser.get("/count").json["n"] == n
        assert api.get("/count", headers=headers).json["n"] == n
    assert browser.get("/get").json["data"] == {"who": "browser", "n": 2}
    assert api.get("/get", headers=headers).json["data"] == {"who": "api", "n": 2}
    assert api.get("/get").json["new"] is True  # the API client has no cookie


def test_regenerate_sends_the_new_id_and_destroys_the_old(
    app: App, counting: CountingStore
) -> None:
    client = app.test_client()
    old_sid, headers = start(client, {"a": 1})
    response = client.post("/regenerate?keep=1", headers=headers)
    new_sid = response.json["id"]
    assert new_sid != old_sid
    assert header_of(response) == sign(new_sid, SECRET)
    assert counting.store.get(old_sid) is None
    assert client.get("/get", headers=headers).json["new"] is True
    renewed = {HEADER: header_of(response)}
    assert client.get("/get", headers=renewed).json["data"] == {"a": 1}


def test_destroy_sends_an_empty_header(app: App, counting: CountingStore) -> None:
    client = app.test_client()
    sid, headers = start(client, {"a": 1})
    response = client.post("/destroy", headers=headers)
    assert header_of(response) == ""
    assert response.headers.get_all("Vary") == [HEADER]
    assert counting.store.get(sid) is None
    seen = client.get("/get", headers=headers).json
    assert (seen["data"], seen["new"]) == ({}, True)


def test_emptied_session_sends_an_empty_header(app: App, counting: CountingStore) -> None:
    """``UNSET = "destroy"``: a session emptied by the view is gone."""
    client = app.test_client()
    sid, headers = start(client, {"a": 1})
    assert header_of(client.post("/clear", headers=headers)) == ""
    assert counting.store.get(sid) is None


def test_destroy_then_write_sends_the_new_session(app: App) -> None:
    @app.post("/logout")
    def logout() -> str:
        session.destroy()
        session["flash"] = "bye"
        return session.id

    client = app.test_client()
    sid, headers = start(client, {"user": "ann"})
    response = client.post("/logout", headers=headers)
    assert response.text != sid
    assert header_of(response) == sign(response.text, SECRET)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "s:",
        "s:abc",
        "s:abc.",
        "s:abc.bad-signature",
        "s%3Aabc.%ZZ",
        "s%3A%C3%28.x",
        "s:\xff\xfe.\x80",
        "s:" + "a" * 5000 + ".sig",
        "s:a.b.c.d",
    ],
)
def test_bad_header_value_is_no_session(app: App, counting: CountingStore, value: str) -> None:
    """Tampered or garbage values start a new session, with no store read."""
    client = app.test_client()
    counting.reset()
    response = client.post("/set", json={"a": 1}, headers={HEADER: value})
    assert response.status_code == 200
    assert response.json["data"] == {"a": 1}
    assert [method for method, _ in counting.calls] == ["set"]
    assert sid_in(header_of(response)) == response.json["id"]


def test_tampered_signature_is_no_session(app: App, counting: CountingStore) -> None:
    client = app.test_client()
    sid, headers = start(client, {"a": 1})
    tampered = sign(sid, "another secret")
    counting.reset()
    response = client.get("/get", headers={HEADER: tampered})
    assert response.json["new"] is True
    assert counting.calls == []  # a new, untouched session is not stored
    assert counting.store.get(sid) is not None  # and the real one is left alone


def test_validly_signed_unknown_id_is_not_adopted(app: App) -> None:
    client = app.test_client()
    response = client.post("/set", json={"a": 1}, headers={HEADER: sign("chosen", SECRET)})
    assert response.json["id"] != "chosen"
    assert sid_in(header_of(response)) == response.json["id"]


def test_secret_rotation_applies_to_header_requests(
    framework: str, counting: CountingStore
) -> None:
    """A value signed with a fallback secret still loads; the id is re-sent
    signed with the new secret; a secret dropped from the list no longer
    verifies.
    """
    app = make_header_app(framework, counting, CONNECT_SESSION_COOKIE={"max_age": 600})
    client = app.test_client()
    sid, old_headers = start(client, {"n": 0})
    app.config.update(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=[SECRET])
    response = client.get("/count", headers=old_headers)
    assert response.json == {"n": 1, "id": sid}
    assert header_of(response) == sign(sid, "new secret")
    new_headers = {HEADER: header_of(response)}
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/get", headers=new_headers).json["id"] == sid
    assert client.get("/get", headers=old_headers).json["new"] is True


def test_secure_session_id_is_never_sent_over_plain_http(
    framework: str, counting: CountingStore
) -> None:
    """As with the cookie: a Secure session's id is not sent over plain
    HTTP (the session is still saved), and is over HTTPS.
    """
    client = make_header_app(
        framework, counting, CONNECT_SESSION_COOKIE={"secure": True}
    ).test_client()
    response = client.post("/set", json={"a": 1}, headers=NO_SESSION)
    assert HEADER not in response.headers and "Set-Cookie" not in response.headers
    assert counting.store.get(response.json["id"]) is not None
    secure = client.post("/set", json={"a": 1}, headers=NO_SESSION, base_url="https://localhost")
    assert sid_in(header_of(secure)) == secure.json["id"]


def test_lazy_loading_still_holds(app: App, counting: CountingStore) -> None:
    """A view that ignores the session makes no store call and sends no
    header, cookie or Vary, for header and cookie requests alike (Quart
    reads a session the request names when it starts: that read alone).
    """
    client = app.test_client()
    _, headers = start(client, {"a": 1})
    client.post("/set", json={"a": 1})  # and a cookie session
    quart = fw.framework_of(app) == "quart"
    for request_headers, named in ((headers, True), (NO_SESSION, False), ({}, True)):
        counting.reset()
        response = client.get("/ignore", headers=request_headers)
        reads = ["get_and_touch"] if quart and named else []
        assert [method for method, _ in counting.calls] == reads
        assert HEADER not in response.headers
        assert "Set-Cookie" not in response.headers
        assert "Vary" not in response.headers


def test_vary_names_the_header_once(app: App) -> None:
    @app.get("/vary")
    def vary() -> tuple[str, dict[str, str]]:
        session["a"] = 1
        return "ok", {"Vary": f"Accept-Encoding, {HEADER.lower()}"}

    client = app.test_client()
    response = client.get("/vary", headers=NO_SESSION)
    assert response.headers.get_all("Vary") == [f"Accept-Encoding, {HEADER.lower()}"]
    response = client.get("/vary")
    assert response.headers.get_all("Vary") == [f"Accept-Encoding, {HEADER.lower()}, Cookie"]


@pytest.mark.every_store
def test_round_trip_over_every_store(make_app: cabc.Callable[..., App], store: Store) -> None:
    """Start, change, regenerate and destroy a header session on each store."""
    client = make_app(CONNECT_SESSION_HEADER=HEADER).test_client(use_cookies=False)
    sid, headers = start(client, {"n": 0})
    assert client.get("/count", headers=headers).json == {"n": 1, "id": sid}
    response = client.post("/regenerate?keep=1", headers=headers)
    assert store.get(sid) is None
    headers = {HEADER: header_of(response)}
    assert client.get("/get", headers=headers).json["data"] == {"n": 1}
    assert header_of(client.post("/destroy", headers=headers)) == ""
    assert store.get(sid_in(headers[HEADER])) is None


# -- testing a header client -------------------------------------------------


@pytest.mark.flask_only("the testing helpers are Flask's")
def test_session_headers_start_a_session_for_a_header_client(
    app: App, connect_session_server: ServerSessionAccess
) -> None:
    client = app.test_client()
    headers = connect_session_server.headers(client, {"user": "ann"})
    assert list(headers) == [HEADER]
    seen = client.get("/get", headers=headers).json
    assert seen["data"] == {"user": "ann"} and seen["new"] is False
    assert client.get_cookie("connect.sid") is None
    assert connect_session_server.get(client, headers=headers) == {"user": "ann"}
    assert connect_session_server.id(client, headers=headers) == seen["id"]
    assert connect_session_server.set(client, {"user": "bob"}, headers=headers) == seen["id"]
    assert client.get("/get", headers=headers).json["data"] == {"user": "bob"}
    assert server_session(client) == {}  # the cookie names no session


@pytest.mark.flask_only("the testing helpers are Flask's")
def test_session_headers_with_other_headers_and_empty_data(app: App) -> None:
    client = app.test_client()
    assert session_headers(client, {}) == NO_SESSION
    headers = session_headers(client, {"a": 1}, headers={"User-Agent": "probe"})
    assert server_session(client, headers=headers) == {"a": 1}
    assert set_server_session(client, {}, headers=headers) is None  # destroyed
    assert server_session(client, headers=headers) == {}


def test_session_headers_needs_the_header_configured() -> None:
    app = make_header_app("flask", CONNECT_SESSION_HEADER=None)
    with pytest.raises(RuntimeError, match="CONNECT_SESSION_HEADER"):
        session_headers(app.test_client(), {"a": 1})


def test_session_transaction_on_a_header_request(app: App) -> None:
    """Flask's own ``session_transaction`` opens the header's session."""
    client = app.test_client()
    sid, headers = start(client, {"a": 1})
    with client.session_transaction(headers=headers) as sess:
        assert sess["a"] == 1
        sess["b"] = 2
    assert client.get_cookie("connect.sid") is None
    assert client.get("/get", headers=headers).json == {
        "data": {"a": 1, "b": 2},
        "id": sid,
        "new": False,
    }
