"""Flask's own session tests, run with our session interface installed.

Ported from pallets/flask ``tests/test_basic.py`` (``test_session*``,
``test_flashes``, ``test_extended_flashing``) and ``tests/test_testing.py``
(``session_transaction``, ``test_redirect_session``). Where we differ from
Flask's cookie session on purpose (docs/behaviour.rst, "Deliberate
differences"), the test asserts our behaviour and says so in a comment.
Every test runs on Flask and on Quart (Quart mirrors Flask's session API),
unless marked Flask's own.
"""

from __future__ import annotations

import json
import typing as t
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.globals import request_ctx
from markupsafe import Markup
from werkzeug.test import TestResponse

from flask_connect_session import ConnectSession
from flask_connect_session import Store
from flask_connect_session.signing import unsign

import framework as fw
import set_cookie_headers
from fake_clock import FakeClock
from fake_clock import use_clock
from framework import request
from framework import session
from set_cookie_headers import SetCookie

#: Flask's cookie name, used where a ported test checks the name.
KEY = "session"


# -- helpers -----------------------------------------------------------------


def set_cookies(rv: TestResponse, name: str = KEY) -> list[SetCookie]:
    """Every ``Set-Cookie`` of the response for ``name``."""
    return set_cookie_headers.set_cookies(rv, name)


def the_cookie(rv: TestResponse, name: str = KEY) -> SetCookie:
    """The one ``Set-Cookie`` for ``name`` (fails if there is not exactly one)."""
    return set_cookie_headers.the_cookie(rv, name)


def near(when: datetime | None, seconds_from_now: float, tolerance: float = 3.0) -> bool:
    assert when is not None
    expected = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return abs((when - expected).total_seconds()) <= tolerance


def data_of(store: Store, sid: str) -> dict[str, t.Any]:
    """The stored document without its ``cookie`` and ``_tagged:<key>`` members."""
    document = store.get(sid)
    assert document is not None
    return {k: v for k, v in document.items() if k != "cookie" and not k.startswith("_tagged:")}


# -- test_basic.py: test_session_accessed ------------------------------------


@pytest.mark.flask_only("Flask's test client keeps the request context")
def test_session_accessed(make_app: t.Any) -> None:
    """``accessed``/``modified`` and ``Vary: Cookie`` follow what the view did."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.post("/")
    def do_set() -> str:
        session["value"] = request.form["value"]
        return "value set"

    @app.get("/")
    def do_get() -> str:
        return session.get("value", "None")

    @app.get("/nothing")
    def do_nothing() -> str:
        return ""

    client = app.test_client()
    with client:
        rv = client.get("/nothing")
        assert "cookie" not in rv.vary
        assert not request_ctx._session.accessed
        assert not request_ctx._session.modified

    with client:
        rv = client.post(data={"value": "42"})
        assert rv.text == "value set"
        assert "cookie" in rv.vary
        assert request_ctx._session.accessed
        assert request_ctx._session.modified

    with client:
        rv = client.get()
        assert rv.text == "42"
        assert "cookie" in rv.vary
        assert request_ctx._session.accessed
        assert not request_ctx._session.modified

    with client:
        rv = client.get("/nothing")
        assert rv.text == ""
        assert "cookie" not in rv.vary
        assert not request_ctx._session.accessed
        assert not request_ctx._session.modified


# -- cookie path, domain and attributes --------------------------------------


def test_session_path(make_app: t.Any) -> None:
    """The cookie path defaults to ``APPLICATION_ROOT``."""
    app = make_app(CONNECT_SESSION_KEY=KEY, APPLICATION_ROOT="/foo")

    @app.route("/")
    def index() -> str:
        session["testing"] = 42
        return "Hello World"

    rv = app.test_client().get("/", "http://example.com:8080/foo")
    assert the_cookie(rv).attrs["path"] == "/foo"


@pytest.mark.flask_only("Flask's request context and test client API")
def test_session_using_application_root(make_app: t.Any) -> None:
    """Behind a prefix (``SCRIPT_NAME``), the cookie path is ``APPLICATION_ROOT``."""

    class PrefixPathMiddleware:
        def __init__(self, app: t.Any, prefix: str) -> None:
            self.app = app
            self.prefix = prefix

        def __call__(self, environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
            environ["SCRIPT_NAME"] = self.prefix
            return self.app(environ, start_response)

    app = make_app(CONNECT_SESSION_KEY=KEY, APPLICATION_ROOT="/bar")
    app.wsgi_app = PrefixPathMiddleware(app.wsgi_app, "/bar")  # type: ignore[method-assign]

    @app.route("/")
    def index() -> str:
        session["testing"] = 42
        return "Hello World"

    rv = app.test_client().get("/", "http://example.com:8080/")
    assert the_cookie(rv).attrs["path"] == "/bar"


SESSION_SETTINGS = {
    "SERVER_NAME": "www.example.com:8080",
    "APPLICATION_ROOT": "/test",
    "SESSION_COOKIE_DOMAIN": ".example.com",
    "SESSION_COOKIE_HTTPONLY": False,
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_PARTITIONED": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_PATH": "/",
}


def _settings_app(make_app: t.Any) -> Flask:
    app = make_app(CONNECT_SESSION_KEY=KEY, **SESSION_SETTINGS)

    @app.route("/")
    def index() -> str:
        session["testing"] = 42
        return "Hello World"

    @app.route("/clear")
    def clear_testing() -> str:
        session.pop("testing", None)
        return "Goodbye World"

    return app


def test_session_using_session_settings(make_app: t.Any) -> None:
    """``SESSION_COOKIE_*`` settings shape the cookie, and its deletion.

    Difference (deliberate): the cookie is secure, so it is only sent over HTTPS;
    Flask's test uses plain HTTP, here the request is HTTPS.
    """
    app = _settings_app(make_app)
    client = app.test_client()
    rv = client.get("/", "https://www.example.com:8080/test/")
    cookie = rv.headers["set-cookie"].lower()
    assert "domain=example.com" in cookie or "domain=.example.com" in cookie
    assert "path=/" in cookie
    assert "secure" in cookie
    assert "httponly" not in cookie
    assert "samesite" in cookie
    assert "partitioned" in cookie

    rv = client.get("/clear", "https://www.example.com:8080/test/")
    cookie = rv.headers["set-cookie"].lower()
    assert "session=;" in cookie
    assert "domain=example.com" in cookie or "domain=.example.com" in cookie
    assert "path=/" in cookie
    assert "secure" in cookie
    assert "samesite" in cookie
    assert "partitioned" in cookie


def test_session_settings_secure_cookie_not_sent_over_http(make_app: t.Any, store: Store) -> None:
    """Difference (deliberate): with ``SESSION_COOKIE_SECURE`` the cookie is never
    sent over plain HTTP (Flask sends it); the session is still saved.
    """
    app = _settings_app(make_app)

    @app.route("/id")
    def session_id() -> str:
        session["testing"] = 42
        return session.id

    rv = app.test_client().get("/id", "http://www.example.com:8080/test/")
    assert "set-cookie" not in rv.headers
    assert data_of(store, rv.text) == {"testing": 42}


def test_session_using_samesite_attribute(make_app: t.Any) -> None:
    """``SESSION_COOKIE_SAMESITE`` sets ``SameSite``.

    Difference (deliberate): config is read at ``init_app``, so an invalid value is
    a ``ValueError`` there (Flask raises it at the first request).
    """
    with pytest.raises(ValueError, match="samesite"):
        make_app(CONNECT_SESSION_KEY=KEY, SESSION_COOKIE_SAMESITE="invalid")

    for value, expected in ((None, None), ("Strict", "samesite=strict"), ("Lax", "samesite=lax")):
        app = make_app(CONNECT_SESSION_KEY=KEY, SESSION_COOKIE_SAMESITE=value)

        @app.route("/")
        def index() -> str:
            session["testing"] = 42
            return "Hello World"

        cookie = app.test_client().get("/").headers["set-cookie"].lower()
        if expected is None:
            assert "samesite" not in cookie
        else:
            assert expected in cookie


# -- missing secret ----------------------------------------------------------


def test_missing_session(make_app: t.Any, caplog: pytest.LogCaptureFixture) -> None:
    """Without a secret, ``flask.session`` is Flask's null session: reads
    work, writes raise; ``init_app`` warns.
    """
    with caplog.at_level("WARNING", logger="flask_connect_session"):
        app = make_app(SECRET_KEY=None)
    assert any("SECRET_KEY" in r.getMessage() for r in caplog.records)

    def expect_exception(f: t.Callable[..., t.Any], *args: t.Any) -> None:
        e = pytest.raises(RuntimeError, f, *args)
        assert e.value.args and "session is unavailable" in e.value.args[0]

    with fw.in_request(app) as sess:
        assert sess.get("missing_key") is None
        expect_exception(sess.__setitem__, "foo", 42)
        expect_exception(sess.pop, "foo")


def test_session_secret_key_fallbacks(make_app: t.Any) -> None:
    """``SECRET_KEY``/``SECRET_KEY_FALLBACKS`` rotate at runtime, no restart."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.post("/")
    def set_session() -> str:
        session["a"] = 1
        return ""

    @app.get("/")
    def get_session() -> dict[str, t.Any]:
        return dict(session)

    client = app.test_client()
    app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = ("0 key", ["-1 key", "-2 key"])
    client.post()
    assert client.get().json == {"a": 1}
    # Change secret key, session can't be loaded and appears empty
    app.secret_key = "? key"
    assert client.get().json == {}
    # Rotate the valid keys, session can be loaded
    app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = ("+1 key", ["0 key", "-1 key"])
    assert client.get().json == {"a": 1}


def test_secret_key_as_a_class_attribute(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The default secret is ``app.secret_key`` as Flask reads it: a Flask
    subclass may set it as a class attribute (Flask-WTF's tests do), which
    ``config["SECRET_KEY"]`` never shows. ``init_app`` does not warn, the
    fallbacks follow it, and a new value applies at the next request.
    """

    class App(Flask):
        secret_key = "s3cret"

    app = App(__name__)
    app.config.update(TESTING=True, CONNECT_SESSION_KEY=KEY, CONNECT_SESSION_STORE=store)
    assert app.config["SECRET_KEY"] is None
    with caplog.at_level("WARNING", logger="flask_connect_session"):
        ConnectSession(app)
    assert not [r for r in caplog.records if "SECRET_KEY" in r.getMessage()]

    @app.post("/")
    def set_session() -> str:
        session["x"] = 1
        return ""

    @app.get("/")
    def get_session() -> dict[str, t.Any]:
        return dict(session)

    client = app.test_client()
    assert client.post("/").status_code == 200
    assert client.get("/").json == {"x": 1}
    cookie = client.get_cookie(KEY)
    assert cookie is not None and unsign(cookie.value, ("s3cret",)) is not None
    app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = "rotated", ["s3cret"]
    assert client.get("/").json == {"x": 1}
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/").json == {}


# -- permanent sessions ------------------------------------------------------


def _expiration_app(make_app: t.Any, permanent: list[bool]) -> Flask:
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/")
    def index() -> str:
        session["test"] = 42
        session.permanent = permanent[0]
        return ""

    @app.route("/test")
    def test() -> str:
        return str(session.permanent)

    return app


def test_session_expiration(make_app: t.Any) -> None:
    """A permanent session's cookie lives ``PERMANENT_SESSION_LIFETIME``."""
    app = _expiration_app(make_app, [True])
    client = app.test_client()
    rv = client.get("/")
    # Flask compares the calendar day; comparing to the second cannot flake
    # at midnight.
    assert near(the_cookie(rv).expires, app.permanent_session_lifetime.total_seconds())
    assert client.get("/test").data == b"True"


def test_session_made_non_permanent_gets_browser_session_cookie(make_app: t.Any) -> None:
    """The last step of Flask's ``test_session_expiration``: a permanent
    session set back to ``permanent = False`` is sent a browser-session cookie
    (no ``Expires``): ``session.permanent`` keeps its meaning in Flask.
    """
    permanent = [True]
    client = _expiration_app(make_app, permanent).test_client()
    assert the_cookie(client.get("/")).expires is not None
    permanent[0] = False
    rv = client.get("/")
    assert "expires" not in the_cookie(rv).attrs


def test_permanent_session_lifetime(make_app: t.Any, store: Store) -> None:
    """``PERMANENT_SESSION_LIFETIME`` (timedelta or seconds) sets the cookie's
    and the stored session's lifetime.
    """
    for lifetime in (timedelta(hours=1), 3600):
        app = make_app(CONNECT_SESSION_KEY=KEY, PERMANENT_SESSION_LIFETIME=lifetime)

        @app.route("/login")
        def login() -> str:
            session["user_id"] = 1
            session.permanent = True
            return session.id

        rv = app.test_client().get("/login")
        assert near(the_cookie(rv).expires, 3600)
        document = store.get(rv.text)
        assert document["cookie"]["originalMaxAge"] == 3_600_000
        assert document["_permanent"] is True


def test_configured_max_age_wins_over_permanent_lifetime(make_app: t.Any) -> None:
    """A permanent session with a configured ``max_age`` keeps that max age."""
    app = make_app(CONNECT_SESSION_KEY=KEY, CONNECT_SESSION_COOKIE={"max_age": 600})

    @app.route("/login")
    def login() -> str:
        session["user_id"] = 1
        session.permanent = True
        return ""

    assert near(the_cookie(app.test_client().get("/login")).expires, 600)


def test_session_stored_last(make_app: t.Any) -> None:
    """Changes made in ``after_request`` are saved."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.after_request
    def modify_session(response: t.Any) -> t.Any:
        session["foo"] = 42
        return response

    @app.route("/")
    def dump_session_contents() -> str:
        return repr(session.get("foo"))

    client = app.test_client()
    assert client.get("/").data == b"None"
    assert client.get("/").data == b"42"


# -- special types (Flask's tagged JSON) --------------------------------------


def test_session_special_types(make_app: t.Any, store: Store) -> None:
    """tuple, bytes, Markup, UUID, datetime and look-alike dicts round-trip
    through the store, with their types.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)
    now = datetime.now(UTC).replace(microsecond=0)
    the_uuid = uuid.uuid4()
    expected: dict[str, t.Any] = {
        "t": (1, 2, 3),
        "b": b"\xff",
        "m": Markup("<html>"),
        "u": the_uuid,
        "d": now,
        "t_tag": {" t": "not-a-tuple"},
        "di_t_tag": {" t__": "not-a-tuple"},
        "di_tag": {" di": "not-a-dict"},
    }

    @app.route("/")
    def dump_session_contents() -> tuple[str, int]:
        session.update(expected)
        return session.id, 200

    @app.route("/read")
    def read() -> dict[str, t.Any]:
        return {
            key: [type(session[key]).__name__, session[key] == value]
            for key, value in expected.items()
        }

    client = app.test_client()
    if fw.framework_of(app) == "flask":
        with client:  # Flask's client keeps the request's session to look at
            sid = client.get("/").text
            s = session
            assert s["t"] == (1, 2, 3)
            assert type(s["b"]) is bytes
            assert s["m"] == Markup("<html>")
    else:
        sid = client.get("/").text

    assert client.get("/read").json == {
        "t": ["tuple", True],
        "b": ["bytes", True],
        "m": ["Markup", True],
        "u": ["UUID", True],
        "d": ["datetime", True],
        "t_tag": ["dict", True],
        "di_t_tag": ["dict", True],
        "di_tag": ["dict", True],
    }
    stored = data_of(store, sid)
    json.dumps(stored)  # stored as JSON, never pickle
    assert stored["t"] == {" t": [1, 2, 3]}


# -- when the cookie is (re)sent ---------------------------------------------


@pytest.mark.parametrize(
    ("is_permanent", "refresh", "expect_header"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_session_cookie_setting(
    make_app: t.Any, is_permanent: bool, refresh: bool, expect_header: bool
) -> None:
    """A read-only request re-sends the cookie only for a permanent session
    with ``SESSION_REFRESH_EACH_REQUEST``.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY, SESSION_REFRESH_EACH_REQUEST=refresh)

    @app.route("/bump")
    def bump() -> str:
        rv = session["foo"] = session.get("foo", 0) + 1
        session.permanent = is_permanent
        return str(rv)

    @app.route("/read")
    def read() -> str:
        return str(session.get("foo", 0))

    with app.test_client() as c:
        assert c.get("/bump").data == b"1"
        assert c.get("/bump").data == b"2"
        assert c.get("/bump").data == b"3"

        rv = c.get("/read")
        set_cookie = rv.headers.get("set-cookie")
        assert (set_cookie is not None) == expect_header
        assert rv.data == b"3"


def test_permanent_session_not_refreshed_by_untouching_request(make_app: t.Any) -> None:
    """Difference (deliberate): a permanent session is refreshed on requests that
    touch it, not on requests that never do (Flask refreshes on every one).
    """
    app = make_app(CONNECT_SESSION_KEY=KEY, SESSION_REFRESH_EACH_REQUEST=True)

    @app.route("/login")
    def login() -> str:
        session["user_id"] = 1
        session.permanent = True
        return ""

    client = app.test_client()
    assert the_cookie(client.get("/login")).expires is not None
    rv = client.get("/ignore")
    assert "set-cookie" not in rv.headers
    assert "Vary" not in rv.headers


def test_browser_session_cookie_not_resent_on_change(make_app: t.Any, store: Store) -> None:
    """Difference (deliberate): a browser-session cookie is sent once, not re-sent
    when the session changes (Flask re-sends it); the change is saved.
    """
    client = make_app(CONNECT_SESSION_KEY=KEY).test_client()
    cookie = the_cookie(client.get("/count"))
    rv = client.get("/count")
    assert rv.json["n"] == 2
    assert set_cookies(rv) == []
    assert data_of(store, cookie.sid) == {"n": 2}


# -- Vary: Cookie ------------------------------------------------------------


def test_session_vary_cookie(make_app: t.Any) -> None:
    """Every way of touching the session adds ``Vary: Cookie`` exactly once;
    a view that does not touch it adds none.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/v/set")
    def set_session() -> str:
        session["test"] = "test"
        return ""

    @app.route("/v/get")
    def get_value() -> str | None:
        return session.get("test")

    @app.route("/v/getitem")
    def getitem() -> str:
        return session["test"]

    @app.route("/v/setdefault")
    def setdefault() -> str:
        return session.setdefault("test", "default")

    @app.route("/v/clear")
    def clear_session() -> str:
        session.clear()
        return ""

    @app.route("/v/vary-cookie-header-set")
    def vary_cookie_header_set() -> t.Any:
        response = fw.Response()
        response.vary.add("Cookie")
        session["test"] = "test"
        return response

    @app.route("/v/vary-header-set")
    def vary_header_set() -> t.Any:
        response = fw.Response()
        response.vary.update(("Accept-Encoding", "Accept-Language"))
        session["test"] = "test"
        return response

    @app.route("/v/no-vary-header")
    def no_vary_header() -> str:
        return ""

    client = app.test_client()

    def expect(path: str, header_value: str | None = "Cookie") -> None:
        rv = client.get(path)
        if header_value:
            assert len(rv.headers.get_all("Vary")) == 1, path
            assert rv.headers["Vary"] == header_value, path
        else:
            assert "Vary" not in rv.headers, path

    expect("/v/set")
    expect("/v/get")
    expect("/v/getitem")
    expect("/v/setdefault")
    expect("/v/clear")
    expect("/v/vary-cookie-header-set")
    expect("/v/vary-header-set", "Accept-Encoding, Accept-Language, Cookie")
    expect("/v/no-vary-header", None)


def test_session_refresh_vary(make_app: t.Any) -> None:
    """``Vary: Cookie`` on login.

    Difference (deliberate): Flask also adds it to a request that ignores the
    session (its permanent cookie is refreshed there); ours neither loads nor
    refreshes an untouched session, so that response has no ``Vary``.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.get("/login")
    def login() -> str:
        session["user_id"] = 1
        session.permanent = True
        return ""

    @app.get("/ignored")
    def ignored() -> str:
        return ""

    client = app.test_client()
    rv = client.get("/login")
    assert rv.headers["Vary"] == "Cookie"
    rv = client.get("/ignored")
    assert "Vary" not in rv.headers
    assert "set-cookie" not in rv.headers


# -- flashing ----------------------------------------------------------------


@pytest.mark.flask_only("Flask's request context and test client API")
def test_flashes(make_app: t.Any) -> None:
    """``flash`` marks the session modified; messages come back in order."""
    app = make_app()
    with app.test_request_context():
        assert not session.modified
        fw.flash("Zap")
        session.modified = False
        fw.flash("Zip")
        assert session.modified
        assert list(fw.get_flashed_messages()) == ["Zap", "Zip"]


def test_extended_flashing(make_app: t.Any) -> None:
    """Flashed messages with categories and Markup survive the store and are
    filtered as in Flask.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/")
    def index() -> str:
        fw.flash("Hello World")
        fw.flash("Hello World", "error")
        fw.flash(Markup("<em>Testing</em>"), "warning")
        return ""

    @app.route("/test/")
    def test() -> str:
        messages = fw.get_flashed_messages()
        assert list(messages) == ["Hello World", "Hello World", Markup("<em>Testing</em>")]
        assert type(messages[2]) is Markup
        return "ok"

    @app.route("/test_with_categories/")
    def test_with_categories() -> str:
        messages = fw.get_flashed_messages(with_categories=True)
        assert len(messages) == 3
        assert list(messages) == [
            ("message", "Hello World"),
            ("error", "Hello World"),
            ("warning", Markup("<em>Testing</em>")),
        ]
        return "ok"

    @app.route("/test_filter/")
    def test_filter() -> str:
        messages = fw.get_flashed_messages(category_filter=["message"], with_categories=True)
        assert list(messages) == [("message", "Hello World")]
        return "ok"

    @app.route("/test_filters/")
    def test_filters() -> str:
        messages = fw.get_flashed_messages(
            category_filter=["message", "warning"], with_categories=True
        )
        assert list(messages) == [
            ("message", "Hello World"),
            ("warning", Markup("<em>Testing</em>")),
        ]
        return "ok"

    @app.route("/test_filters_without_returning_categories/")
    def test_filters2() -> str:
        messages = fw.get_flashed_messages(category_filter=["message", "warning"])
        assert len(messages) == 2
        assert messages[0] == "Hello World"
        assert messages[1] == Markup("<em>Testing</em>")
        return "ok"

    for path in (
        "/test/",
        "/test_with_categories/",
        "/test_filter/",
        "/test_filters/",
        "/test_filters_without_returning_categories/",
    ):
        # A new client each time: a fresh session with the three messages.
        client = app.test_client()
        client.get("/")
        assert client.get(path).text == "ok", path


def test_flash_after_destroy(make_app: t.Any, store: Store) -> None:
    """Logout (``destroy()``) followed by ``flash()`` works: the message
    lives in a new session with a new id.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/logout")
    def logout() -> str:
        session.destroy()
        fw.flash("Logged out")
        return session.id

    @app.route("/messages")
    def messages() -> dict[str, t.Any]:
        return {"messages": fw.get_flashed_messages()}

    client = app.test_client()
    old = the_cookie(client.get("/count")).sid
    rv = client.get("/logout")
    new = the_cookie(rv).sid
    assert new == rv.text != old
    assert store.get(old) is None
    assert client.get("/messages").json == {"messages": ["Logged out"]}


# -- test_testing.py ---------------------------------------------------------


@pytest.mark.flask_only("Flask's request context and test client API")
def test_redirect_session(make_app: t.Any) -> None:
    """A session written before a redirect is there after following it."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/redirect")
    def index() -> t.Any:
        session["redirect"] = True
        return fw.redirect("/target")

    @app.route("/target")
    def get_session() -> str:
        session["target"] = True
        return ""

    client = app.test_client()
    with client:
        client.get("/redirect", follow_redirects=True)
        assert session["redirect"] is True
        assert session["target"] is True


def test_session_transactions(make_app: t.Any, store: Store) -> None:
    """``session_transaction`` reads and writes the client's stored session."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/")
    def index() -> str:
        return str(session["foo"])

    client = app.test_client()
    with client:
        with client.session_transaction() as sess:
            assert len(sess) == 0
            sess["foo"] = [42]
            assert len(sess) == 1
        rv = client.get("/")
        assert rv.data == b"[42]"
        with client.session_transaction() as sess:
            assert len(sess) == 1
            assert sess["foo"] == [42]
    cookie = client.get_cookie(KEY)
    assert cookie is not None
    assert data_of(store, unquote(cookie.value)[2:].rpartition(".")[0]) == {"foo": [42]}


def test_session_transactions_no_null_sessions(make_app: t.Any) -> None:
    """Without a secret, ``session_transaction`` has no session to open."""
    app = make_app(SECRET_KEY=None)
    with app.test_client() as c:
        with pytest.raises(RuntimeError) as e:
            with c.session_transaction():
                pass
        assert "Session backend did not open a session" in str(e.value)


@pytest.mark.flask_only("Flask's request context and test client API")
def test_session_transactions_keep_context(make_app: t.Any) -> None:
    """``session_transaction`` leaves the current request context alone."""
    app = make_app(CONNECT_SESSION_KEY=KEY)
    client = app.test_client()
    with app.test_request_context():
        client.get("/ignore")
        req = request._get_current_object()  # type: ignore[attr-defined]
        assert req is not None
        with client.session_transaction():
            assert req is request._get_current_object()  # type: ignore[attr-defined]


def test_session_transaction_needs_cookies(make_app: t.Any) -> None:
    """``session_transaction`` needs the client's cookie jar."""
    c = make_app().test_client(use_cookies=False)
    with pytest.raises(TypeError, match="Cookies are disabled."):
        with c.session_transaction():
            pass


# -- our session object (docs/behaviour.rst, "When sessions are loaded...") ---


def test_nested_mutation_is_saved(make_app: t.Any, store: Store) -> None:
    """A change nested in a value is saved without ``session.modified = True``."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/add/<int:item>")
    def add(item: int) -> dict[str, t.Any]:
        session.setdefault("cart", {"items": []})["items"].append(item)
        return {"id": session.id, "modified": session.modified}

    client = app.test_client()
    sid = client.get("/add/1").json["id"]
    rv = client.get("/add/2")
    assert rv.json == {"id": sid, "modified": True}
    assert data_of(store, sid) == {"cart": {"items": [1, 2]}}
    assert client.get("/get").json["data"] == {"cart": {"items": [1, 2]}}


def test_cookie_is_not_a_data_key(make_app: t.Any, store: Store) -> None:
    """``cookie`` is not a data key: ``len``, iteration, ``dict()`` and ``in``
    see the user's data only, though the stored document has the member.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/look")
    def look() -> dict[str, t.Any]:
        session["a"] = 1
        return {
            "len": len(session),
            "keys": list(session),
            "dict": dict(session),
            "in": "cookie" in session,
            "get": session.get("cookie", "absent"),
            "id": session.id,
        }

    rv = app.test_client().get("/look").json
    assert rv["len"] == 1
    assert rv["keys"] == ["a"]
    assert rv["dict"] == {"a": 1}
    assert rv["in"] is False
    assert rv["get"] == "absent"
    assert isinstance(store.get(rv["id"])["cookie"], dict)


def test_session_id_is_read_only(make_app: t.Any) -> None:
    """Assigning ``session.id`` raises ``AttributeError``; the id is unchanged."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/hijack")
    def hijack() -> dict[str, t.Any]:
        before = session.id
        try:
            session.id = "chosen"  # type: ignore[misc]
        except AttributeError:
            return {"raised": True, "same": session.id == before}
        return {"raised": False, "same": session.id == before}

    assert app.test_client().get("/hijack").json == {"raised": True, "same": True}


def test_session_new(make_app: t.Any) -> None:
    """``session.new`` is true on the request that creates the session only."""
    client = make_app(CONNECT_SESSION_KEY=KEY).test_client()
    client.get("/count")
    assert client.get("/get").json["new"] is False
    assert make_app().test_client().get("/get").json["new"] is True


def test_cookie_fields(make_app: t.Any) -> None:
    """``session.cookie``: ``max_age`` is the remaining seconds (float),
    ``original_max_age`` the configured ones, ``expires`` an aware UTC datetime.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY, CONNECT_SESSION_COOKIE={"max_age": 60})
    clock = FakeClock()
    use_clock(app, clock)

    @app.route("/fields")
    def fields() -> dict[str, t.Any]:
        session["a"] = 1
        cookie = session.cookie
        expires = cookie.expires
        assert expires is not None
        return {
            "max_age": cookie.max_age,
            "original": cookie.original_max_age,
            "offset": expires.utcoffset().total_seconds(),  # type: ignore[union-attr]
            "from_now": (expires - datetime.now(UTC)).total_seconds(),
            "path": cookie.path,
            "httponly": cookie.httponly,
            "secure": cookie.secure,
        }

    client = app.test_client()
    first = client.get("/fields").json
    assert isinstance(first["max_age"], float)
    assert first["max_age"] == 60
    assert first["original"] == 60
    assert first["offset"] == 0
    assert 59 < first["from_now"] <= 60
    assert (first["path"], first["httponly"], first["secure"]) == ("/", True, False)
    clock.set(5)
    later = client.get("/fields").json
    assert later["original"] == 60
    assert later["max_age"] == 55


def test_cookie_max_age_and_expires_settable(make_app: t.Any, store: Store) -> None:
    """Setting ``session.cookie.max_age`` / ``expires`` changes the cookie sent
    and stored; ``expires = False`` makes a browser-session cookie.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)
    in_two_hours = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)

    @app.route("/max-age")
    def max_age() -> str:
        session["a"] = 1
        session.cookie.max_age = timedelta(minutes=10)
        return session.id

    @app.route("/expires")
    def expires() -> str:
        session["a"] = 2
        session.cookie.expires = in_two_hours.replace(tzinfo=None)  # naive means UTC
        return session.id

    @app.route("/browser")
    def browser() -> dict[str, t.Any]:
        session["b"] = 1
        session.cookie.expires = False
        return {"id": session.id, "max_age": session.cookie.max_age}

    client = app.test_client()
    rv = client.get("/max-age")
    assert near(the_cookie(rv).expires, 600)
    assert store.get(rv.text)["cookie"]["originalMaxAge"] == 600_000

    rv = client.get("/expires")
    assert the_cookie(rv).expires == in_two_hours
    assert near(the_cookie(rv).expires, 7200)

    rv = app.test_client().get("/browser")
    assert rv.json["max_age"] is None
    assert "expires" not in the_cookie(rv).attrs
    assert store.get(rv.json["id"])["cookie"]["expires"] is None


def test_unstorable_value_type_error_names_key(make_app: t.Any) -> None:
    """A value with no JSON form raises ``TypeError`` naming its key, at the
    end of the request and from ``session.save()``.
    """
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/bad")
    def bad() -> str:
        session["thing"] = object()
        return ""

    @app.route("/bad-save")
    def bad_save() -> str:
        session["other_thing"] = {1, 2}
        session.save()
        return ""

    with pytest.raises(TypeError, match="thing"):
        app.test_client().get("/bad")
    with pytest.raises(TypeError, match="other_thing"):
        app.test_client().get("/bad-save")


def test_permanent_and_flashes_are_data_keys(make_app: t.Any, store: Store) -> None:
    """``_permanent`` and ``_flashes`` are ordinary stored keys, as in Flask."""
    app = make_app(CONNECT_SESSION_KEY=KEY)

    @app.route("/both")
    def both() -> str:
        session.permanent = True
        fw.flash("hi")
        return session.id

    sid = app.test_client().get("/both").text
    assert data_of(store, sid) == {"_permanent": True, "_flashes": [{" t": ["message", "hi"]}]}
