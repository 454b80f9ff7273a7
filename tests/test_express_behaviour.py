"""express-session's own test suite (``test/session.js``), ported to our API.

Each test drives an app from ``make_app`` through Flask's test client, on
Flask and on Quart (see :mod:`framework`); the ``every_store`` ones once per
store kind. Where we differ from express-session on purpose
(docs/behaviour.rst, "Deliberate differences": ``unset`` defaults to
``"destroy"``, ``resave`` and ``saveUninitialized`` default to false, no path
gating, ``"cookie"`` is not a data key, secure cookies never go over plain
HTTP), the test follows our behaviour and says so.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import copy
import hashlib
import hmac
import re
import time
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from urllib.parse import quote
from urllib.parse import unquote

import pytest
from werkzeug.test import TestResponse

from flask_connect_session import SessionNotFound
from flask_connect_session import Store
from flask_connect_session import StoreError
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores.base import implements

import framework as fw
import set_cookie_headers
from conftest import SECRET
from framework import App
from framework import Response
from framework import request
from framework import session
from framework import stream_with_context
from set_cookie_headers import EPOCH
from set_cookie_headers import SetCookie
from set_cookie_headers import parse_set_cookie

KEY = "connect.sid"
#: express-session's test helper gives every session a one-minute cookie.
MINUTE = {"maxAge": 60_000}
WRITES = ("set", "merge")
#: Store calls that read a session.
READS = ("get", "get_and_touch")


# -- helpers -----------------------------------------------------------------


def express_sign(sid: str, secret: str) -> str:
    """Sign ``sid`` as express-session does (cookie-signature, then
    ``encodeURIComponent``), independently of the package's own code.
    """
    mac = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    sig = base64.b64encode(mac).decode().rstrip("=")
    return quote(f"s:{sid}.{sig}", safe="!*'()")


def apple_genid(request: t.Any) -> str:
    """A ``genid`` reachable by import path."""
    return "apple"


def set_cookies(rv: TestResponse, name: str = KEY) -> list[SetCookie]:
    """Every ``Set-Cookie`` of the response for ``name``."""
    return set_cookie_headers.set_cookies(rv, name)


def the_cookie(rv: TestResponse, name: str = KEY) -> SetCookie:
    """The one ``Set-Cookie`` for ``name`` (fails if there is not exactly one)."""
    return set_cookie_headers.the_cookie(rv, name)


def client(app: App) -> t.Any:
    """A client without a cookie jar: tests send cookies explicitly, as
    express's tests do with ``.set('Cookie', cookie(res))``.
    """
    return app.test_client(use_cookies=False)


def with_cookie(cookie: SetCookie | str, **headers: str) -> dict[str, str]:
    value = cookie if isinstance(cookie, str) else cookie.header
    return {"Cookie": value, **headers}


def iso(when: datetime) -> str:
    """JavaScript's ``Date.prototype.toJSON``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed(
    store: Store,
    sid: str,
    data: dict[str, t.Any],
    *,
    max_age: float | None = None,
    remaining: float | None = None,
    secret: str = SECRET,
) -> str:
    """Store a session document as express-session writes it; return the
    ``Cookie`` header that names it.

    :param max_age: the cookie's original lifetime in seconds (``None``: a
        browser-session cookie).
    :param remaining: seconds left until it expires (default ``max_age``).
    """
    expires = None
    if max_age is not None:
        left = max_age if remaining is None else remaining
        expires = iso(datetime.now(UTC) + timedelta(seconds=left))
    cookie = {
        "originalMaxAge": None if max_age is None else int(max_age * 1000),
        "expires": expires,
        "httpOnly": True,
        "path": "/",
    }
    store.set(sid, {**data, "cookie": cookie})
    return f"{KEY}={express_sign(sid, secret)}"


def recording(store: Store, fail: cabc.Container[str] = ()) -> tuple[Store, list[tuple[str, str]]]:
    """Return the real store under a subclass of its own class that records
    each top-level store call as ``(operation, sid)``, and the call list.

    The copy shares the real store's backend, so what it writes is what
    ``store.get`` then reads. An operation named in ``fail`` raises
    :exc:`ConnectionError`, as a backend that is down would.
    """
    calls: list[tuple[str, str]] = []
    depth = [0]
    base = type(store)

    def wrap(name: str) -> cabc.Callable[..., t.Any]:
        def method(self: Store, *args: t.Any, **kwargs: t.Any) -> t.Any:
            if depth[0] == 0:
                calls.append((name, args[0] if args else ""))
            if name in fail:
                raise ConnectionError(f"{name}: boom")
            depth[0] += 1
            try:
                return getattr(base, name)(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        method.__name__ = name
        return method

    # Wrap what the real class implements (so the interface sees the same
    # optional methods), and merge, whose default is a working one.
    names = [
        name
        for name, value in vars(Store).items()
        if callable(value) and not name.startswith("_")
        if name == "merge" or implements(store, name)
    ]
    namespace: dict[str, t.Any] = {"__slots__": ()}
    namespace.update({name: wrap(name) for name in names})
    cls = type(base)(f"Recording{base.__name__}", (base,), namespace)
    wrapped = copy.copy(store)
    wrapped.__class__ = cls
    return wrapped, calls


def writes(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [call for call in calls if call[0] in WRITES]


def near(when: datetime | None, seconds_from_now: float, tolerance: float = 3.0) -> bool:
    """Whether ``when`` is ``seconds_from_now`` from now, give or take."""
    assert when is not None
    expected = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return abs((when - expected).total_seconds()) <= tolerance


def add_cookie_views(app: App) -> None:
    """Views reading and changing ``session.cookie``."""

    @app.post("/cookie")
    def cookie_view() -> dict[str, t.Any]:
        """Apply the JSON body to ``session.cookie`` and write ``hit``."""
        changes = request.get_json(silent=True) or {}
        for attr, value in changes.items():
            if attr == "max_age_timedelta":
                session.cookie.max_age = timedelta(seconds=value)
            elif attr == "expires_epoch":
                session.cookie.expires = datetime(1970, 1, 1, tzinfo=UTC)
            else:
                setattr(session.cookie, attr, value)
        session["hit"] = session.get("hit", 0) + 1
        return {
            "id": session.id,
            "max_age": session.cookie.max_age,
            "original_max_age": session.cookie.original_max_age,
        }


# -- creating and loading ----------------------------------------------------


@pytest.mark.every_store
def test_new_session_is_created_and_stored(make_app: t.Any, store: Store) -> None:
    """A write to a new session stores it and sets the ``connect.sid`` cookie."""
    rv = client(make_app()).post("/set", json={"active": True})
    cookie = the_cookie(rv)
    assert cookie.sid == rv.json["id"]
    assert store.get(cookie.sid)["active"] is True


def test_session_is_loaded_from_cookie_sid(make_app: t.Any) -> None:
    """The session named by the cookie is loaded on the next request."""
    c = client(make_app())
    rv = c.get("/count")
    rv2 = c.get("/count", headers=with_cookie(the_cookie(rv)))
    assert rv.json["n"] == 1
    assert rv2.json == {"n": 2, "id": rv.json["id"]}


def test_cookieless_requests_create_distinct_sessions(make_app: t.Any, store: Store) -> None:
    """Two requests without a cookie make two sessions."""
    c = client(make_app())
    first, second = c.get("/count"), c.get("/count")
    assert first.json["id"] != second.json["id"]
    assert store.get(first.json["id"])["n"] == 1
    assert store.get(second.json["id"])["n"] == 1


def test_stored_method_names_are_plain_data(make_app: t.Any, store: Store) -> None:
    """Stored members named like session methods (``save``) are just data."""
    header = seed(store, "reserved", {"n": 1, "save": "nope", "regenerate": "nope"})
    c = client(make_app())
    rv = c.get("/get", headers=with_cookie(header))
    assert rv.json["data"] == {"n": 1, "save": "nope", "regenerate": "nope"}
    assert c.get("/count", headers=with_cookie(header)).json["n"] == 2
    assert store.get("reserved")["save"] == "nope"


def test_only_user_data_is_enumerable(make_app: t.Any) -> None:
    """Iterating the session shows the user's data only (deliberately unlike express,
    ``cookie`` is not among the keys).
    """
    app = make_app()

    @app.get("/keys")
    def keys() -> dict[str, t.Any]:
        session["test1"] = 1
        session["test2"] = "b"
        return {"keys": sorted(session), "len": len(session), "has": "cookie" in session}

    assert client(app).get("/keys").json == {"keys": ["test1", "test2"], "len": 2, "has": False}


# -- when the response ends --------------------------------------------------


def test_session_saved_with_empty_response(make_app: t.Any, store: Store) -> None:
    """A session written by a view returning an empty 204 is saved."""
    app = make_app()

    @app.get("/empty")
    def empty() -> tuple[str, int]:
        session["hit"] = True
        return "", 204

    rv = client(app).get("/empty")
    assert rv.status_code == 204
    assert store.get(the_cookie(rv).sid)["hit"] is True


def test_session_saved_with_streamed_response(make_app: t.Any, store: Store) -> None:
    """A session written before a streamed body is saved with the headers."""
    app = make_app()

    @app.get("/stream")
    def stream() -> Response:
        session["hit"] = True

        def body() -> cabc.Iterator[str]:
            yield "hello, "
            yield "world"

        return Response(stream_with_context(body()))

    rv = client(app).get("/stream")
    assert rv.text == "hello, world"
    assert store.get(the_cookie(rv).sid)["hit"] is True


@pytest.mark.every_store
def test_stored_expiry_matches_cookie_expiry(make_app: t.Any, store: Store) -> None:
    """The stored ``cookie.expires`` is the ``Expires`` the browser got."""
    rv = client(make_app(CONNECT_SESSION_COOKIE=MINUTE)).post("/set", json={"user": "bob"})
    cookie = the_cookie(rv)
    stored = store.get(cookie.sid)["cookie"]
    assert stored["originalMaxAge"] == 60_000
    stored_expires = datetime.fromisoformat(stored["expires"].replace("Z", "+00:00"))
    assert cookie.expires is not None
    assert int(stored_expires.timestamp()) == int(cookie.expires.timestamp())
    assert near(cookie.expires, 60)


@pytest.mark.every_store
def test_loaded_session_lifetime_is_extended(make_app: t.Any, store: Store) -> None:
    """A loaded, unmodified session is touched: it outlives its first expiry."""
    c = client(make_app(CONNECT_SESSION_COOKIE={"max_age": 1}))
    rv = c.post("/set", json={"user": "bob"})
    cookie = the_cookie(rv)
    time.sleep(0.6)
    assert c.get("/get", headers=with_cookie(cookie)).json["data"] == {"user": "bob"}
    time.sleep(0.6)  # past the first expiry, within the touched one
    rv = c.get("/get", headers=with_cookie(cookie))
    assert rv.json == {"data": {"user": "bob"}, "id": cookie.sid, "new": False}


# -- when the sid is not in the store ----------------------------------------


def test_sid_not_in_store_starts_new_session(make_app: t.Any, store: Store) -> None:
    """A cookie whose session is gone from the store gets a new session and sid."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    store.destroy(cookie.sid)
    rv = c.get("/count", headers=with_cookie(cookie))
    assert rv.json["n"] == 1
    assert the_cookie(rv).sid == rv.json["id"] != cookie.sid


def test_validly_signed_unknown_sid_is_never_adopted(make_app: t.Any, store: Store) -> None:
    """A validly signed sid the store lacks is not adopted: a new sid is issued."""
    chosen = "attacker-chosen-session-id"
    header = f"{KEY}={express_sign(chosen, SECRET)}"
    rv = client(make_app()).get("/count", headers=with_cookie(header))
    assert rv.json["n"] == 1
    assert rv.json["id"] != chosen
    assert the_cookie(rv).sid == rv.json["id"]
    assert store.get(chosen) is None
    assert store.get(rv.json["id"])["n"] == 1


# -- when the sid is not properly signed -------------------------------------


def test_unsigned_sid_starts_new_session(make_app: t.Any, store: Store) -> None:
    """A bare (unsigned) sid in the cookie is ignored: a new session starts."""
    c = client(make_app(CONNECT_SESSION_KEY="sessid"))
    cookie = the_cookie(c.get("/count"), "sessid")
    rv = c.get("/count", headers=with_cookie(f"sessid={cookie.sid}"))
    assert rv.json["n"] == 1
    assert the_cookie(rv, "sessid").sid != cookie.sid
    assert store.get(cookie.sid)["n"] == 1


def _bad_values(good: str) -> dict[str, str]:
    sid = "real-session-id"
    return {
        "tampered sid": good.replace(f"{sid}.", f"{sid[:-3]}."),
        "tampered signature": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "unsigned": sid,
        "no prefix": unquote(good)[2:],
        "wrong secret": express_sign(sid, "not the secret"),
        "prefix only": "s:",
        "no signature": f"s:{sid}",
        "empty signature": f"s:{sid}.",
        "garbage": "garbage!!",
        "bad escapes": "s%3A%E0%A4%A.%ZZ",
        "non-ascii": "s:é.ü",
        "oversized": "s:" + "a" * 5000 + ".sig",
    }


@pytest.mark.parametrize("variant", sorted(_bad_values(express_sign("x", "y"))))
def test_bad_cookie_is_no_session_and_no_store_query(
    make_app: t.Any, store: Store, variant: str
) -> None:
    """A garbage, unsigned or tampered cookie means "no session", never an
    error, and the store is not queried for it.
    """
    sid = "real-session-id"
    seed(store, sid, {"n": 41})
    value = _bad_values(express_sign(sid, SECRET))[variant]
    recorder, calls = recording(store)
    app = make_app(CONNECT_SESSION_STORE=recorder)
    rv = client(app).get("/count", headers=with_cookie(f"{KEY}={value}"))
    assert rv.status_code == 200
    assert rv.json["n"] == 1
    assert rv.json["id"] != sid
    assert [call for call in calls if call[0] in READS] == []
    assert {call[1] for call in calls} <= {rv.json["id"]}
    assert store.get(sid)["n"] == 41


def test_tampered_cookie_issues_a_new_cookie(make_app: t.Any) -> None:
    """express: a tampered cookie gets a fresh, validly signed one."""
    c = client(make_app(CONNECT_SESSION_KEY="sessid"))
    cookie = the_cookie(c.get("/count"), "sessid")
    tampered = re.sub(r"...\.", ".", cookie.header, count=1)
    rv = c.get("/count", headers=with_cookie(tampered))
    new = the_cookie(rv, "sessid")
    assert new.sid != cookie.sid
    assert new.value == express_sign(new.sid, SECRET)


# -- when the session expired in the store -----------------------------------


@pytest.mark.every_store
def test_session_expired_in_store_is_replaced(make_app: t.Any, store: Store) -> None:
    """A session past its cookie expiry is gone from the store; its cookie
    then gets a new session with a new sid.
    """
    c = client(make_app(CONNECT_SESSION_COOKIE={"maxAge": 1000}))
    cookie = the_cookie(c.get("/count"))
    assert store.get(cookie.sid)["n"] == 1
    # Stores count TTLs in whole seconds (memcached's clock ticks once a
    # second): wait for the entry to go, within a bound, rather than guess.
    deadline = time.monotonic() + 5
    while store.get(cookie.sid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get(cookie.sid) is None
    rv = c.get("/count", headers=with_cookie(cookie))
    assert rv.json["n"] == 1
    assert the_cookie(rv).sid == rv.json["id"] != cookie.sid


# -- when the stored session has no cookie member ----------------------------


@pytest.mark.every_store
def test_document_without_cookie_member_is_no_session(make_app: t.Any, store: Store) -> None:
    """Deliberately unlike express (which errors): a stored document without a ``cookie``
    member is corrupt, so a new session with a new sid starts and the corrupt
    entry is left in place.
    """
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    store.set(cookie.sid, {"foo": "bar"})
    rv = c.get("/count", headers=with_cookie(cookie))
    assert rv.status_code == 200
    assert rv.json["n"] == 1
    assert rv.json["id"] != cookie.sid
    try:
        left: object = store.get(cookie.sid)
    except CorruptDocument:
        left = "still there, still corrupt"
    assert left in ({"foo": "bar"}, "still there, still corrupt")


# -- store errors ------------------------------------------------------------


def test_store_get_error_is_a_store_error(make_app: t.Any, store: Store) -> None:
    """A failing ``get`` reaches the app as ``StoreError``, cause chained."""
    header = seed(store, "sid-1", {"n": 1})
    recorder, _ = recording(store, fail=READS)
    app = make_app(CONNECT_SESSION_STORE=recorder)
    with pytest.raises(StoreError) as info:
        client(app).get("/get", headers=with_cookie(header))
    assert info.value.operation in READS
    assert isinstance(info.value.__cause__, ConnectionError)


def test_store_get_error_can_be_handled(make_app: t.Any, store: Store) -> None:
    """A ``StoreError`` at the view's first access reaches an error handler."""
    header = seed(store, "sid-1", {"n": 1})
    recorder, _ = recording(store, fail=READS)
    app = make_app(CONNECT_SESSION_STORE=recorder)
    app.register_error_handler(StoreError, lambda exc: ("store down", 503))
    rv = client(app).get("/get", headers=with_cookie(header))
    assert (rv.status_code, rv.text) == (503, "store down")


def test_store_set_error_is_a_store_error(make_app: t.Any, store: Store) -> None:
    """A failing save reaches the app as ``StoreError``."""
    recorder, _ = recording(store, fail={"set"})
    app = make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_SAVE_UNINITIALIZED=True)
    with pytest.raises(StoreError) as info:
        client(app).get("/ignore")
    assert info.value.operation == "set"


@pytest.mark.every_store
def test_store_touch_error_is_a_store_error(make_app: t.Any, store: Store) -> None:
    """A failing touch of an unmodified session reaches the app as
    ``StoreError`` (whether the store touches apart or while loading).
    """
    touching = {name for name in ("touch", "get_and_touch") if implements(store, name)}
    if not touching:
        pytest.skip("this store does not touch")
    header = seed(store, "sid-1", {"hit": True}, max_age=60)
    recorder, _ = recording(store, fail=touching)
    app = make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_COOKIE=MINUTE)
    with pytest.raises(StoreError) as info:
        client(app).get("/get", headers=with_cookie(header))
    assert info.value.operation in touching


def test_store_destroy_error_is_a_store_error(make_app: t.Any, store: Store) -> None:
    """A failing destroy of an emptied session reaches the app as ``StoreError``."""
    header = seed(store, "sid-1", {"n": 1})
    recorder, _ = recording(store, fail={"destroy"})
    app = make_app(CONNECT_SESSION_STORE=recorder)
    with pytest.raises(StoreError) as info:
        client(app).post("/clear", headers=with_cookie(header))
    assert info.value.operation == "destroy"
    assert store.get("sid-1")["n"] == 1


# -- proxy option ------------------------------------------------------------


SECURE = {"secure": True, "maxAge": 60_000}


@pytest.mark.parametrize(
    ("forwarded", "sent"),
    [
        ("https", True),
        ("https,http", True),
        ("  HTTPS , http", True),
        ("http,https", False),
        ("http", False),
    ],
)
def test_proxy_true_trusts_first_x_forwarded_proto(
    make_app: t.Any, forwarded: str, sent: bool
) -> None:
    """proxy=True: the first ``X-Forwarded-Proto`` (trimmed, any case) decides."""
    app = make_app(CONNECT_SESSION_PROXY=True, CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": forwarded})
    assert len(set_cookies(rv)) == (1 if sent else 0)
    if sent:
        assert the_cookie(rv).attrs.get("secure") is True


def test_proxy_true_without_header_saves_but_sends_no_cookie(
    make_app: t.Any, store: Store
) -> None:
    """proxy=True with no header over HTTP: no secure cookie, session still saved."""
    app = make_app(CONNECT_SESSION_PROXY=True, CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1})
    assert set_cookies(rv) == []
    assert store.get(rv.json["id"])["a"] == 1


def test_proxy_true_trusts_secure_connection(make_app: t.Any) -> None:
    """proxy=True: an HTTPS connection is secure without any header."""
    app = make_app(CONNECT_SESSION_PROXY=True, CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, base_url="https://localhost")
    assert the_cookie(rv).attrs.get("secure") is True


def test_proxy_false_ignores_x_forwarded_proto(make_app: t.Any) -> None:
    """proxy=False: ``X-Forwarded-Proto`` is not trusted."""
    app = make_app(CONNECT_SESSION_PROXY=False, CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert set_cookies(rv) == []


@pytest.mark.flask_only("an ASGI app sees only the scheme its proxy middleware leaves")
def test_proxy_false_ignores_proxyfix(make_app: t.Any) -> None:
    """proxy=False: only the scheme the WSGI server saw counts, even when
    ProxyFix made ``request.is_secure`` true (express: "ignore req.secure").
    """
    app = make_app(CONNECT_SESSION_PROXY=False, CONNECT_SESSION_COOKIE=SECURE)
    fw.proxy_fix(app)

    @app.post("/secure")
    def secure() -> dict[str, t.Any]:
        session["a"] = 1
        return {"is_secure": request.is_secure}

    rv = client(app).post("/secure", headers={"X-Forwarded-Proto": "https"})
    assert rv.json == {"is_secure": True}
    assert set_cookies(rv) == []


def test_proxy_false_trusts_secure_connection(make_app: t.Any) -> None:
    """proxy=False: an HTTPS connection is secure."""
    app = make_app(CONNECT_SESSION_PROXY=False, CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, base_url="https://localhost")
    assert the_cookie(rv).attrs.get("secure") is True


def test_proxy_unset_ignores_bare_x_forwarded_proto(make_app: t.Any) -> None:
    """proxy unset: without ProxyFix, ``X-Forwarded-Proto`` is not trusted."""
    app = make_app(CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert set_cookies(rv) == []


def test_proxy_unset_uses_request_is_secure(make_app: t.Any) -> None:
    """proxy unset: ``request.is_secure`` decides, so ProxyFix is honoured."""
    app = make_app(CONNECT_SESSION_COOKIE=SECURE)
    fw.proxy_fix(app)
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert the_cookie(rv).attrs.get("secure") is True


def test_proxy_accepts_string_booleans(make_app: t.Any) -> None:
    """``CONNECT_SESSION_PROXY`` accepts config-file strings like ``"yes"``."""
    app = make_app(CONNECT_SESSION_PROXY="yes", CONNECT_SESSION_COOKIE=SECURE)
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert the_cookie(rv).attrs.get("secure") is True


# -- cookie path: no path gating ---------------------------------------------


def test_cookie_path_does_not_gate_sessions(make_app: t.Any, store: Store) -> None:
    """Deliberately unlike express (which gates by path): a request outside the cookie path still
    gets a session; the cookie carries the configured ``Path``.
    """
    app = make_app(CONNECT_SESSION_COOKIE={"path": "/foo/bar"})
    rv = client(app).post("/set", json={"a": 1})
    cookie = the_cookie(rv)
    assert cookie.attrs["path"] == "/foo/bar"
    assert store.get(cookie.sid)["a"] == 1


# -- secure: "auto" ----------------------------------------------------------


def test_secure_auto_with_proxy_true_and_forwarded_https(make_app: t.Any) -> None:
    """secure="auto", proxy=True: ``X-Forwarded-Proto: https`` makes it Secure."""
    app = make_app(
        CONNECT_SESSION_PROXY=True, CONNECT_SESSION_COOKIE={"maxAge": 5000, "secure": "auto"}
    )
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert the_cookie(rv).attrs.get("secure") is True


def test_secure_auto_with_proxy_false_ignores_forwarded(make_app: t.Any) -> None:
    """secure="auto", proxy=False: the cookie is sent, without ``Secure``."""
    app = make_app(
        CONNECT_SESSION_PROXY=False, CONNECT_SESSION_COOKIE={"maxAge": 5000, "secure": "auto"}
    )
    rv = client(app).post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in the_cookie(rv).attrs


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_secure_auto_follows_request(make_app: t.Any, scheme: str, secure: bool) -> None:
    """secure="auto", proxy unset: ``Secure`` iff the request is secure."""
    app = make_app(CONNECT_SESSION_COOKIE={"secure": "auto"})
    rv = client(app).post("/set", json={"a": 1}, base_url=f"{scheme}://localhost")
    assert ("secure" in the_cookie(rv).attrs) is secure


# -- genid option ------------------------------------------------------------


def test_default_genid(make_app: t.Any) -> None:
    """The default sid is 24 random bytes in base64url: 32 characters."""
    c = client(make_app())
    first, second = the_cookie(c.get("/count")).sid, the_cookie(c.get("/count")).sid
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", first)
    assert first != second


def test_custom_genid(make_app: t.Any, store: Store) -> None:
    """A ``genid`` callable names the session; the cookie is the test vector of
    docs/behaviour.rst, "The cookie"."""
    rv = client(make_app(CONNECT_SESSION_GENID=lambda request: "apple")).get("/count")
    assert the_cookie(rv).value == "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
    assert store.get("apple")["n"] == 1


def test_genid_unsafe_chars_are_encoded(make_app: t.Any) -> None:
    """Characters unsafe in a cookie are percent-encoded."""
    rv = client(make_app(CONNECT_SESSION_GENID=lambda request: "%")).get("/count")
    assert the_cookie(rv).value == "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"


def test_genid_receives_request(make_app: t.Any) -> None:
    """``genid`` is called with the request."""
    app = make_app(CONNECT_SESSION_GENID=lambda request: request.path)

    @app.get("/foo")
    def foo() -> str:
        session["a"] = 1
        return ""

    rv = client(app).get("/foo")
    assert the_cookie(rv).value == "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"


@pytest.mark.parametrize("separator", [":", "."])
def test_genid_import_path(make_app: t.Any, separator: str) -> None:
    """``genid`` may be an import path, ``pkg.mod:func`` or ``pkg.mod.func``."""
    app = make_app(CONNECT_SESSION_GENID=f"{__name__}{separator}apple_genid")
    assert the_cookie(client(app).get("/count")).sid == "apple"


@pytest.mark.parametrize("value", ["bogus!", "no_such_module_xyz:func", 42])
def test_genid_rejects_bad_values(make_app: t.Any, value: object) -> None:
    """A ``genid`` that is no callable or importable path is a ``ValueError``."""
    with pytest.raises(ValueError, match="CONNECT_SESSION_GENID"):
        make_app(CONNECT_SESSION_GENID=value)


# -- key / name option -------------------------------------------------------


def test_key_defaults_to_connect_sid(make_app: t.Any) -> None:
    """The cookie is called ``connect.sid`` by default."""
    rv = client(make_app()).get("/count")
    assert [c.name for c in map(parse_set_cookie, rv.headers.getlist("Set-Cookie"))] == [KEY]


def test_key_can_be_overridden(make_app: t.Any) -> None:
    """``CONNECT_SESSION_KEY`` names the cookie, for reading and writing."""
    c = client(make_app(CONNECT_SESSION_KEY="session_id"))
    rv = c.get("/count")
    cookie = the_cookie(rv, "session_id")
    assert set_cookies(rv, KEY) == []
    assert c.get("/count", headers=with_cookie(cookie)).json["n"] == 2
    stray = f"{KEY}={cookie.value}"
    assert c.get("/count", headers=with_cookie(stray)).json["n"] == 1


# -- rolling option ----------------------------------------------------------


def test_rolling_defaults_to_false(make_app: t.Any) -> None:
    """Without rolling, an unmodified session gets no ``Set-Cookie``."""
    c = client(make_app(CONNECT_SESSION_COOKIE=MINUTE))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    rv = c.post("/set", json={"user": "bob"}, headers=with_cookie(cookie))
    assert set_cookies(rv) == []


def test_rolling_resends_cookie_of_unmodified_session(make_app: t.Any) -> None:
    """With rolling, an unmodified session's cookie is re-sent."""
    c = client(make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_COOKIE=MINUTE))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    rv = c.post("/set", json={"user": "bob"}, headers=with_cookie(cookie))
    assert the_cookie(rv).value == cookie.value


def test_rolling_resends_cookie_when_view_ignores_session(make_app: t.Any) -> None:
    """With rolling, the cookie is re-sent even if the view never touches the
    session (it is loaded so its cookie can be re-sent).
    """
    c = client(make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_COOKIE=MINUTE))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    rv = c.get("/ignore", headers=with_cookie(cookie))
    assert the_cookie(rv).value == cookie.value
    assert rv.headers.get_all("Vary") == ["Cookie"]


def test_rolling_sets_new_expiry(make_app: t.Any, store: Store) -> None:
    """A rolled cookie expires a full max age from now, not when it used to."""
    header = seed(store, "half-gone", {"user": "bob"}, max_age=3600, remaining=1800)
    app = make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_COOKIE={"max_age": 3600})
    rv = client(app).get("/get", headers=with_cookie(header))
    assert near(the_cookie(rv).expires, 3600)


def test_rolling_does_not_store_uninitialized_session(make_app: t.Any, store: Store) -> None:
    """rolling + saveUninitialized=false: an untouched new session is neither
    stored nor sent.
    """
    recorder, calls = recording(store)
    app = make_app(
        CONNECT_SESSION_STORE=recorder,
        CONNECT_SESSION_ROLLING=True,
        CONNECT_SESSION_SAVE_UNINITIALIZED=False,
    )
    rv = client(app).get("/ignore")
    assert set_cookies(rv) == []
    assert writes(calls) == []


def test_rolling_with_save_uninitialized_stores_and_sends(make_app: t.Any, store: Store) -> None:
    """rolling + saveUninitialized=true: a new untouched session is stored and sent."""
    app = make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_SAVE_UNINITIALIZED=True)
    rv = client(app).get("/ignore")
    assert store.get(the_cookie(rv).sid) is not None


def test_rolling_saves_modified_session(make_app: t.Any, store: Store) -> None:
    """rolling + saveUninitialized=false: a modified new session is stored and sent."""
    app = make_app(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_SAVE_UNINITIALIZED=False)
    rv = client(app).post("/set", json={"user": "bob"})
    assert store.get(the_cookie(rv).sid)["user"] == "bob"


def test_rolling_resends_browser_session_cookie(make_app: t.Any) -> None:
    """With rolling, even a browser-session cookie is re-sent."""
    c = client(make_app(CONNECT_SESSION_ROLLING=True))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    rv = c.get("/get", headers=with_cookie(cookie))
    again = the_cookie(rv)
    assert again.value == cookie.value
    assert "expires" not in again.attrs


# -- resave option -----------------------------------------------------------


def test_resave_defaults_to_false(make_app: t.Any, store: Store) -> None:
    """Unlike express (whose resave defaults to true): an unmodified loaded session is not
    written back by default.
    """
    recorder, calls = recording(store)
    c = client(make_app(CONNECT_SESSION_STORE=recorder))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    assert len(writes(calls)) == 1
    calls.clear()
    c.post("/set", json={"user": "bob"}, headers=with_cookie(cookie))
    assert writes(calls) == []


def test_resave_true_saves_unmodified_session(make_app: t.Any, store: Store) -> None:
    """resave=true writes an unmodified loaded session back."""
    recorder, calls = recording(store)
    c = client(make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_RESAVE=True))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    calls.clear()
    c.post("/set", json={"user": "bob"}, headers=with_cookie(cookie))
    assert [sid for _, sid in writes(calls)] == [cookie.sid]


def test_resave_false_still_saves_modified_session(make_app: t.Any, store: Store) -> None:
    """resave=false: only requests that change the session write it."""
    recorder, calls = recording(store)
    c = client(make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_RESAVE=False))
    cookie = the_cookie(c.post("/set", json={"token": "w6RHhwaA"}))
    assert len(writes(calls)) == 1
    calls.clear()
    assert c.get("/get", headers=with_cookie(cookie)).json["data"] == {"token": "w6RHhwaA"}
    assert writes(calls) == []
    c.post("/set", json={"token": "zfQ3rzM3"}, headers=with_cookie(cookie))
    assert len(writes(calls)) == 1
    assert store.get(cookie.sid)["token"] == "zfQ3rzM3"


def test_nested_cookie_property_counts_as_modified(make_app: t.Any, store: Store) -> None:
    """A user value with its own ``cookie`` member is data; changing it saves."""
    app = make_app()

    @app.get("/user")
    def user() -> str:
        data = session.setdefault("user", {})
        data["name"] = "bob"
        data["cookie"] = data.get("cookie", 0) + 1
        return ""

    c = client(app)
    cookie = the_cookie(c.get("/user"))
    c.get("/user", headers=with_cookie(cookie))
    assert store.get(cookie.sid)["user"] == {"name": "bob", "cookie": 2}


# -- saveUninitialized option ------------------------------------------------


@pytest.mark.parametrize("path", ["/ignore", "/get"])
def test_save_uninitialized_defaults_to_false(make_app: t.Any, store: Store, path: str) -> None:
    """Unlike express (whose saveUninitialized defaults to true): a new session nobody wrote to is
    neither stored nor sent.
    """
    recorder, calls = recording(store)
    rv = client(make_app(CONNECT_SESSION_STORE=recorder)).get(path)
    assert set_cookies(rv) == []
    assert writes(calls) == []


@pytest.mark.parametrize("path", ["/ignore", "/get"])
def test_save_uninitialized_true_stores_new_session(
    make_app: t.Any, store: Store, path: str
) -> None:
    """saveUninitialized=true stores and sends a new session, touched or not."""
    rv = client(make_app(CONNECT_SESSION_SAVE_UNINITIALIZED=True)).get(path)
    stored = store.get(the_cookie(rv).sid)
    assert stored is not None
    assert set(stored) == {"cookie"}


def test_save_uninitialized_false_still_saves_modified(make_app: t.Any, store: Store) -> None:
    """saveUninitialized=false still stores a new session that was written to."""
    rv = client(make_app(CONNECT_SESSION_SAVE_UNINITIALIZED=False)).get("/count")
    assert store.get(the_cookie(rv).sid)["n"] == 1


def test_uninitialized_session_is_not_touched(make_app: t.Any, store: Store) -> None:
    """A new session that is not saved makes no store call at all."""
    recorder, calls = recording(store)
    app = make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_COOKIE=MINUTE)
    rv = client(app).get("/get")
    assert rv.json["new"] is True
    assert calls == []


# -- secret option -----------------------------------------------------------


def test_secret_string_signs_and_unsigns(make_app: t.Any) -> None:
    """``CONNECT_SESSION_SECRET`` signs the cookie and verifies it back."""
    c = client(make_app(CONNECT_SESSION_SECRET="awesome cat"))
    cookie = the_cookie(c.post("/set", json={"user": "bob"}))
    assert cookie.value == express_sign(cookie.sid, "awesome cat")
    assert c.get("/get", headers=with_cookie(cookie)).json["data"] == {"user": "bob"}


@pytest.mark.parametrize("value", [[], [""], "", [42]])
def test_secret_rejects_empty_values(make_app: t.Any, value: object) -> None:
    """An empty secret list or an empty secret is a ``ValueError`` naming the key."""
    with pytest.raises(ValueError, match="CONNECT_SESSION_SECRET"):
        make_app(CONNECT_SESSION_SECRET=value)


def test_secret_array_signs_with_first(make_app: t.Any) -> None:
    """With a list of secrets, the first one signs."""
    app = make_app(CONNECT_SESSION_SECRET=["keyboard cat", "nyan cat"])
    cookie = the_cookie(client(app).post("/set", json={"user": "bob"}))
    assert cookie.value == express_sign(cookie.sid, "keyboard cat")


def test_secret_array_cookie_not_readable_by_other_secret(make_app: t.Any) -> None:
    """A cookie signed with the first secret is not accepted under another."""
    app1 = make_app(CONNECT_SESSION_SECRET=["keyboard cat", "nyan cat"])
    app2 = make_app(CONNECT_SESSION_SECRET="nyan cat")
    cookie = the_cookie(client(app1).post("/set", json={"user": "bob"}))
    rv = client(app2).get("/get", headers=with_cookie(cookie))
    assert rv.json["data"] == {}
    assert rv.json["new"] is True


def test_secret_array_reads_with_every_secret(make_app: t.Any) -> None:
    """Every secret of the list verifies (rotation)."""
    app1 = make_app(CONNECT_SESSION_SECRET="nyan cat")
    app2 = make_app(CONNECT_SESSION_SECRET=["keyboard cat", "nyan cat"])
    cookie = the_cookie(client(app1).post("/set", json={"user": "bob"}))
    rv = client(app2).get("/get", headers=with_cookie(cookie))
    assert rv.json["data"] == {"user": "bob"}
    assert rv.json["id"] == cookie.sid


def test_secret_rotation_resigns_with_first(make_app: t.Any) -> None:
    """A cookie read under an old secret is re-sent signed with the first."""
    app1 = make_app(CONNECT_SESSION_SECRET="nyan cat", CONNECT_SESSION_COOKIE=MINUTE)
    app2 = make_app(
        CONNECT_SESSION_SECRET=["keyboard cat", "nyan cat"], CONNECT_SESSION_COOKIE=MINUTE
    )
    cookie = the_cookie(client(app1).post("/set", json={"user": "bob"}))
    rv = client(app2).post("/set", json={"user": "alice"}, headers=with_cookie(cookie))
    resent = the_cookie(rv)
    assert resent.sid == cookie.sid
    assert resent.value == express_sign(cookie.sid, "keyboard cat")


# -- unset option ------------------------------------------------------------


def test_unset_defaults_to_destroy(make_app: t.Any, store: Store) -> None:
    """Unlike express (whose unset defaults to keep): an emptied session is destroyed in the
    store and its cookie deleted.
    """
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    rv = c.post("/clear", headers=with_cookie(cookie))
    assert store.get(cookie.sid) is None
    assert the_cookie(rv).deleted


@pytest.mark.every_store
def test_unset_destroy_on_deleted_keys(make_app: t.Any, store: Store) -> None:
    """unset="destroy" applies however the session was emptied (``pop``)."""
    app = make_app(CONNECT_SESSION_UNSET="destroy")

    @app.post("/pop")
    def pop() -> str:
        session.pop("n", None)
        return ""

    c = client(app)
    cookie = the_cookie(c.get("/count"))
    rv = c.post("/pop", headers=with_cookie(cookie))
    assert store.get(cookie.sid) is None
    assert the_cookie(rv).deleted


def test_unset_keep_stores_empty_session(make_app: t.Any, store: Store) -> None:
    """unset="keep": an emptied session stays in the store, empty, and the
    cookie is left alone.
    """
    c = client(make_app(CONNECT_SESSION_UNSET="keep"))
    cookie = the_cookie(c.get("/count"))
    rv = c.post("/clear", headers=with_cookie(cookie))
    assert set(store.get(cookie.sid)) == {"cookie"}
    assert set_cookies(rv) == []


def test_unset_does_not_set_cookie_for_emptied_new_session(make_app: t.Any, store: Store) -> None:
    """A new session emptied in its first request is neither stored nor sent."""
    recorder, calls = recording(store)
    rv = client(make_app(CONNECT_SESSION_STORE=recorder)).post("/clear")
    assert set_cookies(rv) == []
    assert writes(calls) == []


def test_unset_rejects_unknown_values(make_app: t.Any) -> None:
    """An unknown ``unset`` is a ``ValueError`` naming the key."""
    with pytest.raises(ValueError, match="CONNECT_SESSION_UNSET"):
        make_app(CONNECT_SESSION_UNSET="bogus!")


# -- session -----------------------------------------------------------------


def test_set_cookie_only_when_modified(make_app: t.Any) -> None:
    """An expiring cookie is re-sent when the session changes, not otherwise."""
    app = make_app(CONNECT_SESSION_COOKIE=MINUTE)
    modify = [True]

    @app.get("/maybe")
    def maybe() -> str:
        if modify[0]:
            session["count"] = session.get("count", 0) + 1
        return str(session["count"])

    c = client(app)
    rv = c.get("/maybe")
    cookie = the_cookie(rv)
    assert rv.text == "1"
    rv = c.get("/maybe", headers=with_cookie(cookie))
    assert (rv.text, the_cookie(rv).sid) == ("2", cookie.sid)
    modify[0] = False
    rv = c.get("/maybe", headers=with_cookie(cookie))
    assert (rv.text, set_cookies(rv)) == ("2", [])
    modify[0] = True
    rv = c.get("/maybe", headers=with_cookie(cookie))
    assert (rv.text, the_cookie(rv).sid) == ("3", cookie.sid)


@pytest.mark.every_store
def test_destroy_removes_session_and_deletes_cookie(make_app: t.Any, store: Store) -> None:
    """``destroy()`` removes the session from the store and deletes the cookie."""
    header = seed(store, "doomed", {"user": "bob"})
    rv = client(make_app()).post("/destroy", headers=with_cookie(header))
    assert store.get("doomed") is None
    assert the_cookie(rv).deleted


def test_destroy_of_new_session_sends_no_session(make_app: t.Any, store: Store) -> None:
    """``destroy()`` on a new session stores nothing and sends no session
    cookie (a deleting ``Set-Cookie`` is allowed).
    """
    recorder, calls = recording(store)
    rv = client(make_app(CONNECT_SESSION_STORE=recorder)).post("/destroy")
    assert all(cookie.value == "" for cookie in set_cookies(rv))
    assert writes(calls) == []


def test_writes_after_destroy_start_new_session(make_app: t.Any, store: Store) -> None:
    """Writes after ``destroy()`` make a new session; only its cookie is sent."""
    app = make_app()

    @app.post("/logout")
    def logout() -> dict[str, t.Any]:
        session.destroy()
        session["flash"] = "bye"
        return {"id": session.id}

    header = seed(store, "old-sid", {"user": "bob"})
    rv = client(app).post("/logout", headers=with_cookie(header))
    cookie = the_cookie(rv)
    assert cookie.sid == rv.json["id"] != "old-sid"
    assert store.get("old-sid") is None
    assert {k: v for k, v in store.get(cookie.sid).items() if k != "cookie"} == {"flash": "bye"}


def test_regenerate_replaces_session(make_app: t.Any, store: Store) -> None:
    """``regenerate()`` issues a new sid, destroys the old one, empties the data."""
    header = seed(store, "old-sid", {"user": "bob"})
    rv = client(make_app()).post("/regenerate", headers=with_cookie(header))
    cookie = the_cookie(rv)
    assert cookie.sid == rv.json["id"] != "old-sid"
    assert rv.json["data"] == {}
    assert store.get("old-sid") is None
    assert set(store.get(cookie.sid)) == {"cookie"}


@pytest.mark.every_store
def test_regenerate_keep_carries_data(make_app: t.Any, store: Store) -> None:
    """``regenerate(keep=True)`` carries the data over to the new sid."""
    header = seed(store, "old-sid", {"user": "bob"})
    rv = client(make_app()).post("/regenerate?keep=1", headers=with_cookie(header))
    cookie = the_cookie(rv)
    assert cookie.sid != "old-sid"
    assert rv.json["data"] == {"user": "bob"}
    assert store.get(cookie.sid)["user"] == "bob"
    assert store.get("old-sid") is None


@pytest.mark.every_store
def test_reload_rereads_store(make_app: t.Any, store: Store) -> None:
    """``reload()`` replaces the data with what the store holds now."""
    app = make_app()

    @app.get("/reload")
    def reload() -> dict[str, t.Any]:
        session["url"] = "/foo"
        stored = store.get(session.id)
        stored["url"] = "/bar"  # another request saved meanwhile
        store.set(session.id, stored)
        session.reload()
        return {"url": session["url"]}

    header = seed(store, "sid-1", {"active": True})
    assert client(app).get("/reload", headers=with_cookie(header)).json == {"url": "/bar"}


def test_reload_drops_unsaved_changes(make_app: t.Any, store: Store) -> None:
    """``reload()`` drops changes not saved yet."""
    app = make_app()

    @app.get("/reload")
    def reload() -> dict[str, t.Any]:
        session["scratch"] = 1
        session.reload()
        return {"data": dict(session)}

    header = seed(store, "sid-1", {"active": True})
    rv = client(app).get("/reload", headers=with_cookie(header))
    assert rv.json == {"data": {"active": True}}
    assert "scratch" not in store.get("sid-1")


def test_reload_of_missing_session_raises(make_app: t.Any, store: Store) -> None:
    """``reload()`` raises ``SessionNotFound`` when the store lost the session."""
    app = make_app()

    @app.get("/reload")
    def reload() -> tuple[str, int]:
        session.get("active")
        store.destroy(session.id)
        try:
            session.reload()
        except SessionNotFound:
            return "failed to load session", 500
        return "reloaded", 200

    header = seed(store, "sid-1", {"active": True})
    rv = client(app).get("/reload", headers=with_cookie(header))
    assert (rv.status_code, rv.text) == (500, "failed to load session")


def test_save_writes_immediately(make_app: t.Any, store: Store) -> None:
    """``save()`` writes the session before the view returns."""
    app = make_app()

    @app.get("/save")
    def save() -> str:
        session["hit"] = True
        session.save()
        stored = store.get(session.id)
        return "stored" if stored and stored.get("hit") is True else "empty"

    assert client(app).get("/save").text == "stored"


@pytest.mark.parametrize("save_uninitialized", [True, False])
def test_save_prevents_end_of_request_save(
    make_app: t.Any, store: Store, save_uninitialized: bool
) -> None:
    """After ``save()``, an unchanged session is not written again at the end."""
    recorder, calls = recording(store)
    app = make_app(
        CONNECT_SESSION_STORE=recorder,
        CONNECT_SESSION_SAVE_UNINITIALIZED=save_uninitialized,
    )

    @app.get("/save")
    def save() -> str:
        session["hit"] = True
        session.save()
        return "saved"

    c = client(app)
    cookie = the_cookie(c.get("/save"))
    assert len(writes(calls)) == 1
    calls.clear()
    assert c.get("/save", headers=with_cookie(cookie)).text == "saved"
    assert len(writes(calls)) == 1


def test_save_after_reload_prevents_end_of_request_save(make_app: t.Any, store: Store) -> None:
    """``reload()`` then ``save()`` writes once."""
    recorder, calls = recording(store)
    app = make_app(CONNECT_SESSION_STORE=recorder)

    @app.get("/reload-save")
    def reload_save() -> str:
        session["hit"] = True
        session.reload()
        session.save()
        return "saved"

    header = seed(store, "sid-1", {"active": True})
    assert client(app).get("/reload-save", headers=with_cookie(header)).text == "saved"
    assert [sid for _, sid in writes(calls)] == ["sid-1"]
    assert "hit" not in store.get("sid-1")


def test_touch_resets_expiry(make_app: t.Any, store: Store) -> None:
    """``touch()`` resets the cookie's expiry to now plus its original max age."""
    app = make_app(CONNECT_SESSION_COOKIE={"max_age": 3600})

    @app.get("/touch")
    def touch() -> dict[str, t.Any]:
        before = session.cookie.max_age
        session.touch()
        return {"before": before, "after": session.cookie.max_age}

    header = seed(store, "sid-1", {"hit": True}, max_age=3600, remaining=1800)
    rv = client(app).get("/touch", headers=with_cookie(header))
    assert 1790 < rv.json["before"] <= 1800
    assert 3590 < rv.json["after"] <= 3600


# -- session.cookie ----------------------------------------------------------


def test_cookie_attributes_set_in_view_are_serialized(make_app: t.Any) -> None:
    """``session.cookie.httponly``/``secure`` set in the view shape the header."""
    app = make_app(CONNECT_SESSION_PROXY=True)
    add_cookie_views(app)
    rv = client(app).post(
        "/cookie",
        json={"httponly": False, "secure": True},
        headers={"X-Forwarded-Proto": "https"},
    )
    cookie = the_cookie(rv)
    assert "httponly" not in cookie.attrs
    assert cookie.attrs.get("secure") is True


def test_cookie_defaults_to_browser_session(make_app: t.Any) -> None:
    """Without a max age the cookie has no ``Expires``/``Max-Age``; it is
    ``HttpOnly`` with ``Path=/``.
    """
    cookie = the_cookie(client(make_app()).get("/count"))
    assert "expires" not in cookie.attrs
    assert "max-age" not in cookie.attrs
    assert cookie.attrs.get("httponly") is True
    assert cookie.attrs["path"] == "/"


def test_browser_session_cookie_sent_once(make_app: t.Any, store: Store) -> None:
    """A browser-session cookie is sent once, even when the session changes."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    rv = c.get("/count", headers=with_cookie(cookie))
    assert rv.json["n"] == 2
    assert set_cookies(rv) == []
    assert store.get(cookie.sid)["n"] == 2


def test_cookie_options_override_defaults(make_app: t.Any) -> None:
    """Cookie options apply; a view may still change ``secure``."""
    options = {
        "httpOnly": False,
        "maxAge": 5000,
        "path": "/admin",
        "priority": "high",
        "secure": True,
    }
    app = make_app(CONNECT_SESSION_COOKIE=options)
    add_cookie_views(app)
    cookie = the_cookie(client(app).post("/cookie", json={"secure": False}))
    assert near(cookie.expires, 5)
    assert "httponly" not in cookie.attrs
    assert cookie.attrs["path"] == "/admin"
    assert "secure" not in cookie.attrs
    assert cookie.attrs["priority"] == "High"


def test_original_max_age_is_configured_max_age(make_app: t.Any) -> None:
    """``original_max_age`` is the configured max age, on every request."""
    app = make_app(CONNECT_SESSION_COOKIE={"maxAge": 2000})
    add_cookie_views(app)
    c = client(app)
    rv = c.post("/cookie")
    assert rv.json["original_max_age"] == 2.0
    time.sleep(0.05)
    rv = c.post("/cookie", headers=with_cookie(the_cookie(rv)))
    assert rv.json["original_max_age"] == 2.0
    assert rv.json["max_age"] < 2.0


def test_secure_cookie_sent_over_https(make_app: t.Any) -> None:
    """A secure cookie is sent over HTTPS."""
    app = make_app(CONNECT_SESSION_COOKIE={"secure": True})
    rv = client(app).post("/set", json={"a": 1}, base_url="https://localhost")
    assert the_cookie(rv).attrs.get("secure") is True


def test_secure_cookie_never_sent_over_http_but_saved(make_app: t.Any, store: Store) -> None:
    """A secure cookie is never sent over plain HTTP; the session is still saved."""
    app = make_app(CONNECT_SESSION_COOKIE={"secure": True})
    rv = client(app).post("/set", json={"a": 1})
    assert set_cookies(rv) == []
    assert store.get(rv.json["id"])["a"] == 1


def test_max_age_sets_expires(make_app: t.Any) -> None:
    """The cookie expires ``maxAge`` from now."""
    app = make_app(CONNECT_SESSION_COOKIE={"maxAge": 2000})
    assert near(the_cookie(client(app).get("/count")).expires, 2, tolerance=1.5)


@pytest.mark.parametrize(
    ("change", "seconds"),
    [
        ({"max_age": 5}, 5),
        ({"max_age": 3_000_000}, 3_000_000),
        ({"max_age_timedelta": 600}, 600),
    ],
)
def test_max_age_changed_in_view(make_app: t.Any, change: dict[str, int], seconds: int) -> None:
    """Setting ``session.cookie.max_age`` (seconds or timedelta) moves the expiry."""
    app = make_app(CONNECT_SESSION_COOKIE={"maxAge": 2000})
    add_cookie_views(app)
    c = client(app)
    cookie = the_cookie(c.post("/cookie"))
    rv = c.post("/cookie", json=change, headers=with_cookie(cookie))
    assert near(the_cookie(rv).expires, seconds, tolerance=1.5)
    assert rv.json["original_max_age"] == seconds


def test_expires_set_to_datetime(make_app: t.Any) -> None:
    """Setting ``session.cookie.expires`` to a datetime sets ``Expires``."""
    app = make_app()
    add_cookie_views(app)
    cookie = the_cookie(client(app).post("/cookie", json={"expires_epoch": True}))
    assert cookie.attrs["expires"] == EPOCH


def test_expires_none_makes_browser_session_cookie(make_app: t.Any) -> None:
    """``session.cookie.expires = None`` makes a browser-session cookie that is
    not re-sent later, even when the session changes.
    """
    app = make_app(CONNECT_SESSION_COOKIE=MINUTE)
    add_cookie_views(app)
    c = client(app)
    rv = c.post("/cookie", json={"expires": None})
    cookie = the_cookie(rv)
    assert "expires" not in cookie.attrs
    assert rv.json["max_age"] is None
    rv = c.post("/cookie", json={"expires": None}, headers=with_cookie(cookie))
    assert set_cookies(rv) == []


@pytest.mark.parametrize("options", [{}, {"partitioned": False}])
def test_partitioned_off(make_app: t.Any, options: dict[str, bool]) -> None:
    """By default, or when false, the cookie is not ``Partitioned``."""
    cookie = the_cookie(client(make_app(CONNECT_SESSION_COOKIE=options)).get("/count"))
    assert "partitioned" not in cookie.attrs


def test_partitioned_on(make_app: t.Any) -> None:
    """``partitioned`` sets ``Partitioned`` and implies ``Secure``."""
    app = make_app(CONNECT_SESSION_COOKIE={"partitioned": True})
    cookie = the_cookie(client(app).get("/count", base_url="https://localhost"))
    assert cookie.attrs.get("partitioned") is True
    assert cookie.attrs.get("secure") is True


def test_partitioned_cookie_not_sent_over_http(make_app: t.Any, store: Store) -> None:
    """Unlike express (which sends it): partitioned implies Secure, so it is not sent
    over plain HTTP; the session is still saved.
    """
    app = make_app(CONNECT_SESSION_COOKIE={"partitioned": True})
    rv = client(app).get("/count")
    assert set_cookies(rv) == []
    assert store.get(rv.json["id"])["n"] == 1


# -- more cookie options ------------------------------------------------------


def test_cookie_domain(make_app: t.Any) -> None:
    """``domain`` sets the ``Domain`` attribute."""
    app = make_app(CONNECT_SESSION_COOKIE={"domain": "example.com"})
    rv = client(app).get("/count", base_url="http://www.example.com")
    assert the_cookie(rv).attrs["domain"] == "example.com"


@pytest.mark.parametrize(("given", "sent"), [("strict", "Strict"), ("Lax", "Lax")])
def test_cookie_samesite(make_app: t.Any, given: str, sent: str) -> None:
    """``samesite`` sets ``SameSite`` (any case accepted)."""
    cookie = the_cookie(client(make_app(CONNECT_SESSION_COOKIE={"sameSite": given})).get("/count"))
    assert cookie.attrs["samesite"] == sent


def test_cookie_samesite_none_implies_secure(make_app: t.Any, store: Store) -> None:
    """``SameSite=None`` implies ``Secure``: sent over HTTPS only."""
    app = make_app(CONNECT_SESSION_COOKIE={"samesite": "None"})
    cookie = the_cookie(client(app).get("/count", base_url="https://localhost"))
    assert cookie.attrs["samesite"] == "None"
    assert cookie.attrs.get("secure") is True
    rv = client(app).get("/count")
    assert set_cookies(rv) == []
    assert store.get(rv.json["id"])["n"] == 1


@pytest.mark.parametrize(
    ("scheme", "samesite", "secure"), [("https", "None", True), ("http", "Lax", False)]
)
def test_cookie_samesite_auto(make_app: t.Any, scheme: str, samesite: str, secure: bool) -> None:
    """``samesite="auto"``: None on secure requests, Lax otherwise."""
    app = make_app(CONNECT_SESSION_COOKIE={"samesite": "auto"})
    cookie = the_cookie(client(app).get("/count", base_url=f"{scheme}://localhost"))
    assert cookie.attrs["samesite"] == samesite
    assert ("secure" in cookie.attrs) is secure


@pytest.mark.parametrize(
    ("given", "sent"), [("low", "Low"), ("Medium", "Medium"), ("HIGH", "High")]
)
def test_cookie_priority(make_app: t.Any, given: str, sent: str) -> None:
    """``priority`` sets ``Priority``."""
    cookie = the_cookie(client(make_app(CONNECT_SESSION_COOKIE={"priority": given})).get("/count"))
    assert cookie.attrs["priority"] == sent


@pytest.mark.parametrize(
    "options", [{"maxAge": 60_000}, {"max_age": 60}, {"max_age": timedelta(minutes=1)}]
)
def test_max_age_units(make_app: t.Any, store: Store, options: dict[str, t.Any]) -> None:
    """``maxAge`` is in milliseconds (express), ``max_age`` in seconds or a
    timedelta: all three mean one minute.
    """
    app = make_app(CONNECT_SESSION_COOKIE=options)
    add_cookie_views(app)
    rv = client(app).post("/cookie")
    assert rv.json["original_max_age"] == 60.0
    assert near(the_cookie(rv).expires, 60, tolerance=1.5)
    assert store.get(rv.json["id"])["cookie"]["originalMaxAge"] == 60_000


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"colour": "blue"}, "colour"),
        ({"samesite": "sideways"}, "samesite"),
        ({"priority": "urgent"}, "priority"),
        ({"secure": "maybe"}, "secure"),
        ({"max_age": -1}, "max_age"),
    ],
)
def test_bad_cookie_option_is_value_error(
    make_app: t.Any, options: dict[str, t.Any], key: str
) -> None:
    """An unknown or invalid cookie setting is a ``ValueError`` naming it."""
    with pytest.raises(ValueError, match=key):
        make_app(CONNECT_SESSION_COOKIE=options)


# -- lazy loading and Vary ---------------------------------------------------


def test_view_ignoring_session_costs_nothing(make_app: t.Any, store: Store) -> None:
    """A view that never touches the session makes no store call and sends no
    ``Set-Cookie`` and no ``Vary``, with or without a session cookie (Quart
    reads a session whose cookie the request carries when it starts: one
    read, nothing more).
    """
    header = seed(store, "sid-1", {"n": 1}, max_age=60)
    recorder, calls = recording(store)
    app = make_app(CONNECT_SESSION_STORE=recorder, CONNECT_SESSION_COOKIE=MINUTE)
    c = client(app)
    for headers in ({}, with_cookie(header)):
        rv = c.get("/ignore", headers=headers)
        assert rv.text == "ignored"
        assert "Set-Cookie" not in rv.headers
        assert "Vary" not in rv.headers
    assert [op for op, _ in calls] == (
        [] if fw.framework_of(app) == "flask" else ["get_and_touch"]
    )


def test_vary_cookie_exactly_once(make_app: t.Any) -> None:
    """``Vary: Cookie`` appears exactly once, even if the view added it too."""
    app = make_app()

    @app.get("/vary")
    def vary() -> Response:
        response = Response(str(session.get("n")))
        response.vary.add("Cookie")
        return response

    for path in ("/vary", "/get", "/count"):
        rv = client(app).get(path)
        assert rv.headers.get_all("Vary") == ["Cookie"], path


def test_vary_cookie_when_cookie_deleted(make_app: t.Any) -> None:
    """Deleting the cookie also adds ``Vary: Cookie``, once."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    rv = c.post("/clear", headers=with_cookie(cookie))
    assert the_cookie(rv).deleted
    assert rv.headers.get_all("Vary") == ["Cookie"]


# -- reading the cookie ------------------------------------------------------


def test_cookie_signature_is_cookie_signature_format(make_app: t.Any) -> None:
    """The cookie value is ``s:sid.sig`` signed like cookie-signature, encoded."""
    cookie = the_cookie(client(make_app()).get("/count"))
    assert cookie.value.startswith("s%3A")
    assert cookie.value == express_sign(cookie.sid, SECRET)


def test_unencoded_cookie_is_accepted(make_app: t.Any) -> None:
    """The unencoded form ``s:sid.sig`` is read too."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    rv = c.get("/count", headers=with_cookie(f"{KEY}={unquote(cookie.value)}"))
    assert rv.json == {"n": 2, "id": cookie.sid}


def test_other_cookies_are_ignored(make_app: t.Any) -> None:
    """Other cookies in the header do not disturb the session cookie."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    rv = c.get("/count", headers=with_cookie(f"foo=bar; {cookie.header}; baz=qux"))
    assert rv.json == {"n": 2, "id": cookie.sid}


@pytest.mark.parametrize("valid_first", [True, False])
def test_first_cookie_of_the_name_wins(make_app: t.Any, valid_first: bool) -> None:
    """When the cookie appears twice, the first one is the one read."""
    c = client(make_app())
    cookie = the_cookie(c.get("/count"))
    pair = [cookie.header, f"{KEY}=s%3Aforged.signature"]
    if not valid_first:
        pair.reverse()
    rv = c.get("/count", headers=with_cookie("; ".join(pair)))
    if valid_first:
        assert rv.json == {"n": 2, "id": cookie.sid}
    else:
        assert rv.json["n"] == 1
        assert rv.json["id"] != cookie.sid
