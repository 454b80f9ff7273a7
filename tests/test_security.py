"""Security properties: tampering, fixation, logout, secret rotation, timing,
cookie flags, and JSON-only storage, on every store kind.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import hmac
import json
import logging
import os
import pickle
import re
import stat
import typing as t
import uuid
from datetime import UTC
from datetime import datetime
from urllib.parse import unquote

import pytest
from flask import Flask
from markupsafe import Markup
from test_fuzz import raw_read
from test_fuzz import raw_write

import flask_connect_session.signing as signing
from flask_connect_session import CachelibStore
from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session import Store
from flask_connect_session import StoreError
from flask_connect_session.signing import generate_sid
from flask_connect_session.signing import sign
from flask_connect_session.signing import signature
from flask_connect_session.signing import unsign

import framework as fw
from conftest import SECRET
from conftest import add_views
from fake_clock import FakeClock
from fake_clock import use_clock
from framework import request
from framework import session

KEY = "connect.sid"
HTTPS = "https://localhost"


def cookie_env(sid: str, secret: str = SECRET) -> dict[str, str]:
    """A raw Cookie header carrying ``sid`` signed with ``secret``."""
    return {"HTTP_COOKIE": f"{KEY}={sign(sid, secret)}"}


def raw_cookie(value: str) -> dict[str, str]:
    """A raw Cookie header carrying ``value`` as is."""
    return {"HTTP_COOKIE": f"{KEY}={value}"}


def set_cookies(response: t.Any) -> list[str]:
    """The ``Set-Cookie`` headers for the session cookie."""
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(KEY + "=")]


def sent_value(response: t.Any) -> str:
    """The value of the one session cookie the response sets."""
    (header,) = set_cookies(response)
    return header.split(";", 1)[0].split("=", 1)[1]


def sent_sid(response: t.Any) -> str:
    """The session id in the session cookie the response sets."""
    return unquote(sent_value(response))[2:].rpartition(".")[0]


def plain_app(framework: str, **config: t.Any) -> Flask:
    """An app over a fresh MemoryStore with the test views, for behaviour that
    does not depend on the store kind.
    """
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=MemoryStore())
    app.config.update(config)
    fw.connect(app)
    add_views(app)
    return app


@pytest.fixture
def client(app: Flask) -> t.Any:
    """A client without a cookie jar: each request carries exactly the
    Cookie header the test gives it.
    """
    return app.test_client(use_cookies=False)


def add_login_views(app: Flask) -> None:
    """``/login``: regenerate then record the user, as an app should."""

    @app.post("/login")
    def login() -> dict[str, t.Any]:
        session.regenerate(keep=request.args.get("keep") == "1")
        session["user"] = request.get_json()["user"]
        return {"id": session.id}


def new_session(client: t.Any, data: dict[str, t.Any], **kwargs: t.Any) -> str:
    """Create a session holding ``data``; return its id."""
    response = client.post("/set", json=data, **kwargs)
    assert response.status_code == 200
    sid = response.json["id"]
    assert sent_sid(response) == sid
    return t.cast(str, sid)


# -- tampering -------------------------------------------------------------


def _forgeries(victim: str, attacker: str) -> dict[str, str]:
    """Cookie values an attacker can make without the secret, knowing the
    victim's id and holding a valid cookie of their own.
    """
    genuine = unquote(sign(victim, SECRET))
    sig = signature(victim, SECRET)
    own_sig = signature(attacker, SECRET)
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    urlsafe = sig.replace("+", "-").replace("/", "_")
    return {
        "one character of the signature changed": f"s:{victim}.{flipped}",
        "signature truncated": f"s:{victim}.{sig[:20]}",
        "value truncated": sign(victim, SECRET)[:-3],
        "no signature": f"s:{victim}",
        "empty signature": f"s:{victim}.",
        "bare id": victim,
        "id without the s: prefix": genuine[2:],
        "re-signed with a wrong secret": sign(victim, "not the secret"),
        "re-signed with a guessable secret": sign(victim, "secret"),
        "attacker's own signature on the victim's id": f"s:{victim}.{own_sig}",
        "victim's id with a suffix": f"s:{victim}x.{sig}",
        "victim's id with a prefix": f"s:x{victim}.{sig}",
        "base64url signature instead of base64": f"s:{victim}."
        + (urlsafe if urlsafe != sig else sig + "-"),
        "oversized": f"s:{victim}.{sig}" + "A" * signing.MAX_COOKIE_LENGTH,
    }


FORGERY_NAMES = list(_forgeries("v", "a"))


@pytest.mark.parametrize("forgery", FORGERY_NAMES)
def test_forged_cookie_never_reaches_another_users_data(
    client: t.Any, store: Store, forgery: str
) -> None:
    """A forged, truncated or re-signed cookie for the victim's id gives a new
    empty session, and a write through it goes to a new id, leaving the
    victim's session as it was.
    """
    victim = new_session(client, {"user": "victim"})
    attacker = new_session(client, {"user": "attacker"})
    value = _forgeries(victim, attacker)[forgery]
    assert unsign(value, [SECRET]) is None  # it is a forgery
    read = client.get("/get", environ_overrides=raw_cookie(value)).json
    assert read["id"] not in (victim, attacker) and read["data"] == {}
    written = client.post("/set", json={"x": 1}, environ_overrides=raw_cookie(value))
    assert written.json["id"] not in (victim, attacker)
    assert written.json["data"] == {"x": 1}
    assert store.get(victim)["user"] == "victim"  # type: ignore[index]
    assert "x" not in store.get(victim)  # type: ignore[operator]
    # The genuine cookie still works: the forgery broke nothing.
    assert client.get("/get", environ_overrides=cookie_env(victim)).json["data"] == {
        "user": "victim"
    }


@pytest.mark.parametrize("forgery", ["re-signed with a wrong secret", "no signature", "bare id"])
def test_badly_signed_cookie_makes_no_store_query(
    client: t.Any, store: Store, monkeypatch: pytest.MonkeyPatch, forgery: str
) -> None:
    """A cookie that fails verification never reaches the store: the id it
    carries is not even looked up.
    """
    victim = new_session(client, {"user": "victim"})
    looked_up: list[str] = []
    for name in ("get", "get_and_touch", "touch", "merge", "destroy"):
        original = getattr(store, name)

        def spy(sid: str, *args: t.Any, _original: t.Any = original) -> t.Any:
            looked_up.append(sid)
            return _original(sid, *args)

        monkeypatch.setattr(store, name, spy)
    value = _forgeries(victim, "attacker")[forgery]
    client.get("/get", environ_overrides=raw_cookie(value))
    client.post("/set", json={"x": 1}, environ_overrides=raw_cookie(value))
    assert looked_up == []


# -- fixation --------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"CONNECT_SESSION_SAVE_UNINITIALIZED": True},
        {"CONNECT_SESSION_ROLLING": True},
        {"CONNECT_SESSION_RESAVE": True},
        {"CONNECT_SESSION_UNSET": "keep"},
    ],
    ids=["default", "save-uninitialized", "rolling", "resave", "unset-keep"],
)
def test_attacker_chosen_id_is_never_adopted(
    make_app: cabc.Callable[..., Flask], store: Store, config: dict[str, t.Any]
) -> None:
    """A validly signed id that the store does not have (an id the attacker
    chose and got signed) is replaced by a new one, and nothing is ever stored
    under it, whether the request reads or writes.
    """
    client = make_app(**config).test_client(use_cookies=False)
    chosen = "attacker-chosen-id"
    read = client.get("/get", environ_overrides=cookie_env(chosen))
    assert read.json["id"] != chosen and read.json["new"] is True
    written = client.post("/set", json={"a": 1}, environ_overrides=cookie_env(chosen))
    new_sid = written.json["id"]
    assert new_sid != chosen
    assert sent_sid(written) == new_sid
    assert store.get(chosen) is None
    for response in (read, written):
        assert all(sign(chosen, SECRET) not in header for header in set_cookies(response))


@pytest.mark.parametrize("keep", [False, True], ids=["login", "login-keep"])
def test_regenerate_on_login_kills_a_fixed_id(app: Flask, store: Store, keep: bool) -> None:
    """Session fixation: the attacker gets a real session and plants its cookie
    in the victim's browser; the victim logs in (``regenerate()``). The fixed
    id is dead on every store: gone from the store, and the attacker's cookie
    gives a new empty session, while the victim's new cookie carries the login.
    """
    add_login_views(app)
    client = app.test_client(use_cookies=False)
    fixed = new_session(client, {"lang": "en"})
    login = client.post(
        "/login",
        query_string={"keep": "1" if keep else "0"},
        json={"user": "victim"},
        environ_overrides=cookie_env(fixed),  # the planted cookie
    )
    new_sid = login.json["id"]
    assert new_sid != fixed and sent_sid(login) == new_sid
    assert store.get(fixed) is None
    attacker = client.get("/get", environ_overrides=cookie_env(fixed)).json
    assert attacker["id"] not in (fixed, new_sid) and attacker["data"] == {}
    victim = client.get("/get", environ_overrides=cookie_env(new_sid)).json
    expected = {"user": "victim", "lang": "en"} if keep else {"user": "victim"}
    assert victim["id"] == new_sid and victim["data"] == expected
    # Writing through the dead id does not bring it back either.
    client.post("/set", json={"x": 1}, environ_overrides=cookie_env(fixed))
    assert store.get(fixed) is None


def test_regenerate_view_kills_the_old_id(client: t.Any, store: Store) -> None:
    """``session.regenerate()`` alone: the old cookie is useless afterwards."""
    old = new_session(client, {"user": "ann"})
    new = client.post("/regenerate", environ_overrides=cookie_env(old)).json["id"]
    assert new != old and store.get(old) is None
    replay = client.get("/get", environ_overrides=cookie_env(old)).json
    assert replay["id"] not in (old, new) and replay["data"] == {}


# -- logout ------------------------------------------------------------------


@pytest.mark.parametrize("logout", ["/destroy", "/clear"])
def test_logout_makes_the_old_cookie_useless(client: t.Any, store: Store, logout: str) -> None:
    """``destroy()`` (and, with ``UNSET="destroy"``, emptying the session)
    removes the session from the store and deletes the cookie; replaying the
    old cookie afterwards gives a new empty session and never revives it.
    """
    sid = new_session(client, {"user": "ann"})
    response = client.post(logout, environ_overrides=cookie_env(sid))
    assert store.get(sid) is None
    (deletion,) = set_cookies(response)
    assert deletion.startswith(f"{KEY}=;") and "Max-Age=0" in deletion
    replay = client.get("/get", environ_overrides=cookie_env(sid)).json
    assert replay["id"] != sid and replay["data"] == {}
    rewrite = client.post("/set", json={"user": "mallory"}, environ_overrides=cookie_env(sid))
    assert rewrite.json["id"] != sid
    assert store.get(sid) is None


# -- secrets -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["SECRET_KEY_FALLBACKS", "CONNECT_SESSION_SECRET"])
@pytest.mark.parametrize("resend", ["rolling", "expiring-cookie-changed"])
def test_fallback_secret_is_accepted_and_cookie_resigned(
    make_app: cabc.Callable[..., Flask], store: Store, where: str, resend: str
) -> None:
    """Rotation: after the secret changes, a cookie signed with the old secret
    (now a fallback) still opens its session, and the cookie sent back is
    signed with the new, first secret.
    """
    if resend == "rolling":
        app = make_app(SECRET_KEY="old secret", CONNECT_SESSION_ROLLING=True)
        view = "/get"
    else:
        app = make_app(SECRET_KEY="old secret", CONNECT_SESSION_COOKIE={"max_age": 600})
        view = "/count"
    client = app.test_client(use_cookies=False)
    sid = new_session(client, {"user": "ann"})
    old_cookie = cookie_env(sid, "old secret")
    if where == "SECRET_KEY_FALLBACKS":
        app.config.update(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=["old secret"])
    else:
        app.config["CONNECT_SESSION_SECRET"] = ["new secret", "old secret"]
    response = client.get(view, environ_overrides=old_cookie)
    assert response.json["id"] == sid
    assert sent_value(response) == sign(sid, "new secret")
    again = client.get("/get", environ_overrides=cookie_env(sid, "new secret")).json
    assert again["id"] == sid and again["data"]["user"] == "ann"


def test_removed_secret_stops_working(app: Flask, store: Store) -> None:
    """Once a secret is dropped from the configuration, cookies signed with it
    open nothing (the session is neither adopted nor destroyed).
    """
    client = app.test_client(use_cookies=False)
    sid = new_session(client, {"user": "ann"})
    app.config.update(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=[])
    response = client.get("/get", environ_overrides=cookie_env(sid, SECRET)).json
    assert response["id"] != sid and response["data"] == {}
    assert store.get(sid) is not None


def test_connect_session_secret_replaces_secret_key(framework: str) -> None:
    """With ``CONNECT_SESSION_SECRET`` set, Flask's ``SECRET_KEY`` neither
    signs nor verifies session cookies.
    """
    app = plain_app(framework, CONNECT_SESSION_SECRET="session secret")
    client = app.test_client(use_cookies=False)
    response = client.post("/set", json={"a": 1})
    sid = response.json["id"]
    assert sent_value(response) == sign(sid, "session secret")
    read = client.get("/get", environ_overrides=cookie_env(sid, SECRET)).json
    assert read["id"] != sid


def test_no_secret_means_no_sessions(framework: str) -> None:
    """Without any secret there are no sessions at all (Flask's null session:
    writes fail), never unsigned cookies.
    """
    app = plain_app(framework, SECRET_KEY=None)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client(use_cookies=False)
    response = client.post("/set", json={"a": 1})
    assert response.status_code == 500
    assert set_cookies(response) == []


# -- timing ------------------------------------------------------------------


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every ``hmac.compare_digest`` call made by the signing module."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: t.Any, b: t.Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", recording)
    return calls


SECRETS = ["first", "second", "third"]


@pytest.mark.parametrize("signed_with", [*SECRETS, "none of them"])
def test_every_secret_is_compared_in_constant_time(
    comparisons: list[tuple[bytes, bytes]], signed_with: str
) -> None:
    """Signatures are checked with ``hmac.compare_digest`` against every
    configured secret, whichever matches (no early exit that would tell, by
    timing, which secret signed the cookie).
    """
    value = sign("abc", signed_with)
    expected = "abc" if signed_with in SECRETS else None
    assert unsign(value, SECRETS) == expected
    given = unquote(value).rpartition(".")[2].encode()
    assert len(comparisons) == len(SECRETS)
    assert [a for a, _ in comparisons] == [signature("abc", s).encode() for s in SECRETS]
    assert all(b == given for _, b in comparisons)


def test_request_verifies_with_compare_digest_for_every_secret(
    framework: str,
    comparisons: list[tuple[bytes, bytes]],
) -> None:
    """A request's cookie is verified with ``hmac.compare_digest``, once per
    configured secret, even when the first one matches.
    """
    app = plain_app(framework, CONNECT_SESSION_SECRET=SECRETS)
    client = app.test_client(use_cookies=False)
    sid = new_session(client, {"a": 1})
    comparisons.clear()
    assert client.get("/get", environ_overrides=cookie_env(sid, "first")).json["id"] == sid
    assert len(comparisons) == len(SECRETS)


# -- session ids -------------------------------------------------------------


def test_session_ids_carry_192_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default ids are 24 bytes from :mod:`secrets` (a CSPRNG), base64url
    encoded: 32 characters, 192 bits, no two alike.
    """
    requested: list[int] = []
    real = signing.secrets.token_urlsafe

    def recording(nbytes: int | None = None) -> str:
        requested.append(t.cast(int, nbytes))
        return real(nbytes)

    monkeypatch.setattr(signing.secrets, "token_urlsafe", recording)
    ids = {generate_sid() for _ in range(2000)}
    assert requested == [24] * 2000
    assert len(ids) == 2000
    for sid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", sid)
        assert len(base64.urlsafe_b64decode(sid)) == 24


def test_cookie_carries_only_the_signed_id(client: t.Any) -> None:
    """The cookie holds the signed id and nothing of the session's data."""
    response = client.post("/set", json={"card": "4111 1111 1111 1111"})
    value = unquote(sent_value(response))
    assert re.fullmatch(r"s:[A-Za-z0-9_-]{32}\.[A-Za-z0-9+/]{43}", value)
    assert "4111" not in response.headers["Set-Cookie"]


def test_logs_and_errors_never_hold_a_whole_id_or_the_secret(
    make_app: cabc.Callable[..., Flask],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store failure is logged and raised with at most a 6-character prefix
    of the session id, and never the secret.
    """
    app = make_app()
    client = app.test_client(use_cookies=False)
    sid = new_session(client, {"a": 1})

    def down(*args: t.Any) -> t.NoReturn:
        raise ConnectionError("backend unreachable")

    for name in ("get", "get_and_touch"):
        monkeypatch.setattr(store, name, down)
    with caplog.at_level(logging.DEBUG, logger="flask_connect_session"):
        with pytest.raises(StoreError) as info:
            client.get("/get", environ_overrides=cookie_env(sid))
    assert caplog.records
    assert sid not in caplog.text and sid not in str(info.value)
    assert sid[:6] in caplog.text and info.value.sid_prefix == sid[:6]
    assert SECRET not in caplog.text


# -- cookie attributes -------------------------------------------------------


@pytest.mark.parametrize("httponly", [None, False])
def test_httponly_by_default(framework: str, httponly: bool | None) -> None:
    """The cookie is ``HttpOnly`` (out of reach of page scripts) unless the
    app turns it off.
    """
    config = {} if httponly is None else {"SESSION_COOKIE_HTTPONLY": httponly}
    response = plain_app(framework, **config).test_client().post("/set", json={"a": 1})
    (header,) = set_cookies(response)
    assert ("HttpOnly" in header) is (httponly is None)


@pytest.mark.parametrize(
    ("cookie", "attributes"),
    [
        ({"secure": True}, ["Secure"]),
        ({"sameSite": "None"}, ["Secure", "SameSite=None"]),
        ({"partitioned": True}, ["Secure", "Partitioned"]),
    ],
    ids=["secure", "samesite-none", "partitioned"],
)
def test_secure_cookie_only_over_https(
    make_app: cabc.Callable[..., Flask],
    store: Store,
    cookie: dict[str, t.Any],
    attributes: list[str],
) -> None:
    """A ``Secure`` cookie (``secure``, and implied by ``SameSite=None`` and
    ``partitioned``) is never sent over plain HTTP, where the session is still
    saved; over HTTPS it is sent with ``Secure``.
    """
    client = make_app(CONNECT_SESSION_COOKIE=cookie).test_client(use_cookies=False)
    plain = client.post("/set", json={"a": 1})
    assert plain.status_code == 200 and set_cookies(plain) == []
    assert store.get(plain.json["id"]) is not None
    secure = client.post("/set", json={"a": 1}, base_url=HTTPS)
    (header,) = set_cookies(secure)
    for attribute in attributes:
        assert f"; {attribute}" in header


@pytest.mark.parametrize(
    ("proxy", "proxy_fix", "sent"),
    [(None, False, False), (False, False, False), (False, True, False), (None, True, True)]
    + [(True, False, True)],
    ids=["default", "proxy-false", "proxy-false-behind-proxyfix", "proxyfix", "proxy-true"],
)
def test_forwarded_proto_is_trusted_only_when_configured(
    framework: str, proxy: bool | None, proxy_fix: bool, sent: bool
) -> None:
    """A plain-HTTP request claiming ``X-Forwarded-Proto: https`` gets the
    secure cookie only if the app trusts its proxy (``ProxyFix``, or
    ``CONNECT_SESSION_PROXY = True``); by default the header is ignored.
    """
    app = plain_app(
        framework, CONNECT_SESSION_COOKIE={"secure": True}, CONNECT_SESSION_PROXY=proxy
    )
    if proxy_fix:
        fw.proxy_fix(app)
    if framework == "quart" and proxy_fix:
        # An ASGI app sees only the scheme the proxy middleware leaves it.
        sent = True
    client = app.test_client(use_cookies=False)
    response = client.post("/set", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert bool(set_cookies(response)) is sent


def test_secure_auto_follows_the_request(framework: str) -> None:
    """``secure="auto"``: Secure over HTTPS, not over HTTP (where a Secure
    cookie would be dropped by the browser).
    """
    client = plain_app(framework, CONNECT_SESSION_COOKIE={"secure": "auto"}).test_client(
        use_cookies=False
    )
    (plain,) = set_cookies(client.post("/set", json={"a": 1}))
    (secure,) = set_cookies(client.post("/set", json={"a": 1}, base_url=HTTPS))
    assert "; Secure" not in plain and "; Secure" in secure


def test_responses_that_read_the_session_vary_on_cookie(client: t.Any) -> None:
    """A response built from session data says ``Vary: Cookie``, so a shared
    cache never serves it to another user.
    """
    sid = new_session(client, {"user": "ann"})
    response = client.get("/get", environ_overrides=cookie_env(sid))
    assert "Cookie" in response.headers.get("Vary", "")


# -- storage: JSON only ------------------------------------------------------


@pytest.mark.every_store
def test_stored_values_are_json(app: Flask, store: Store) -> None:
    """Tuples, bytes, datetimes, UUIDs and Markup are stored as (tagged) JSON,
    never pickle, and come back as the same types.
    """
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    values = {
        "t": (1, "two"),
        "b": b"\x00\xffbytes",
        "d": when,
        "u": ident,
        "m": Markup("<b>x</b>"),
        "nested": {"list": [(1,), b"x"]},
    }

    @app.post("/typed")
    def typed() -> str:
        session.update(values)
        return session.id

    @app.get("/typed")
    def read_typed() -> str:
        assert dict(session) == values
        assert type(session["m"]) is Markup and type(session["t"]) is tuple
        return "same"

    client = app.test_client(use_cookies=False)
    sid = client.post("/typed").get_data(as_text=True)
    raw = raw_read(store, sid)
    assert raw is not None
    data = raw.encode() if isinstance(raw, str) else raw
    assert not data.startswith(b"\x80")  # pickle protocol 2+ starts with PROTO
    document = json.loads(data)
    assert document["t"] == {" t": [1, "two"]}
    assert document["b"] == {" b": base64.b64encode(b"\x00\xffbytes").decode()}
    assert document["u"] == {" u": ident.hex}
    assert document["m"] == {" m": "<b>x</b>"}
    assert isinstance(document["cookie"], dict)
    assert client.get("/typed", environ_overrides=cookie_env(sid)).data == b"same"


#: Set when a planted pickle runs: it must never be.
PICKLE_RUNS: list[str] = []


def _ran_planted_pickle(marker: str) -> dict[str, t.Any]:
    PICKLE_RUNS.append(marker)
    return {"cookie": {}, "user": "admin"}


class Exploit:
    """Unpickling this calls :func:`_ran_planted_pickle`: code execution."""

    def __reduce__(self) -> tuple[t.Any, tuple[str]]:
        return (_ran_planted_pickle, ("executed",))


@pytest.fixture
def exploit() -> cabc.Iterator[bytes]:
    """A pickle that records its execution; checked to work."""
    payload = pickle.dumps(Exploit())
    assert pickle.loads(payload) == {"cookie": {}, "user": "admin"}
    assert PICKLE_RUNS == ["executed"]
    PICKLE_RUNS.clear()
    yield payload
    PICKLE_RUNS.clear()


@pytest.mark.every_store
def test_planted_pickle_never_executes(app: Flask, store: Store, exploit: bytes) -> None:
    """Store compromise: a pickle planted as a session entry is never
    unpickled; the request starts a new session and the entry stays as it is.
    """
    sid = generate_sid()
    raw_write(store, sid, exploit)
    client = app.test_client(use_cookies=False)
    read = client.get("/get", environ_overrides=cookie_env(sid))
    assert read.status_code == 200 and read.json["id"] != sid
    assert "user" not in read.json["data"]
    assert PICKLE_RUNS == []


@pytest.mark.parametrize("kind", ["simple", "filesystem"])
def test_pickle_planted_through_a_pickling_cachelib_cache_never_executes(
    framework: str, tmp_path: t.Any, exploit: bytes, kind: str
) -> None:
    """A cachelib cache pickles; the store reads the same backend with a
    JSON-only serializer, so a pickle another part of the app (or an attacker)
    put under a session key is never unpickled.
    """
    from cachelib import FileSystemCache
    from cachelib import SimpleCache

    cache = SimpleCache() if kind == "simple" else FileSystemCache(str(tmp_path / "cache"))
    app = plain_app(framework, CONNECT_SESSION_STORE=cache)
    assert isinstance(fw.sync_store_of(app), CachelibStore)
    cache.set("sess:planted", Exploit())  # pickled by cachelib's own serializer
    client = app.test_client(use_cookies=False)
    read = client.get("/get", environ_overrides=cookie_env("planted"))
    assert read.status_code == 200 and read.json["id"] != "planted"
    assert PICKLE_RUNS == []
    # The store still works with that cache.
    sid = new_session(client, {"a": 1})
    assert client.get("/get", environ_overrides=cookie_env(sid)).json["data"] == {"a": 1}


def test_memcached_client_that_unpickles_is_refused() -> None:
    """A memcached client that would unpickle values is refused outright."""
    pytest.importorskip("pymemcache")
    from cachelib import MemcachedCache
    from pymemcache import serde
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", 1), serde=serde.pickle_serde)
    with pytest.raises(ValueError, match="unpickle"):
        CachelibStore(MemcachedCache(client))


def test_filesystem_store_files_are_private(tmp_path: t.Any) -> None:
    """FileSystemStore creates its directory 0700 and its session files 0600,
    whatever the umask.
    """
    old_umask = os.umask(0)
    try:
        store = FileSystemStore(tmp_path / "sessions")
        store.set("abc", {"cookie": {}, "a": 1})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    files = [entry for entry in os.scandir(store.directory) if entry.name.endswith(".session")]
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


# -- absolute timeout ----------------------------------------------------------


def test_absolute_timeout_ignores_activity_and_restarts_on_regenerate(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    """With ``ABSOLUTE_TIMEOUT``, a session dies that long after it was
    created however active it is; ``regenerate()`` (login) starts the count
    again for the new id.
    """
    app = make_app(CONNECT_SESSION_ABSOLUTE_TIMEOUT=100)
    clock = FakeClock()
    use_clock(app, clock)
    add_login_views(app)
    client = app.test_client(use_cookies=False)
    sid = new_session(client, {"a": 1})
    for now in (30, 60, 90):  # busy all along
        clock.set(now)
        assert client.get("/count", environ_overrides=cookie_env(sid)).json["id"] == sid
    clock.set(101)
    expired = client.get("/get", environ_overrides=cookie_env(sid)).json
    assert expired["id"] != sid and expired["data"] == {}
    assert store.get(sid) is None

    clock.set(0)
    sid = new_session(client, {"a": 1})
    clock.set(50)
    login = client.post("/login", json={"user": "ann"}, environ_overrides=cookie_env(sid))
    new = login.json["id"]
    clock.set(140)  # 140 s after the first id, 90 s after the login
    assert client.get("/get", environ_overrides=cookie_env(new)).json["id"] == new
    clock.set(151)
    assert client.get("/get", environ_overrides=cookie_env(new)).json["id"] != new


def test_absolute_timeout_applies_to_sessions_without_a_start_time(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    """A stored session with no ``_created`` (it began before the timeout was
    enabled, or an Express app sharing the store made it) starts its count at
    its first request after that, and is discarded once the timeout has
    passed, even if requests only read it.
    """
    app = make_app(CONNECT_SESSION_ABSOLUTE_TIMEOUT=100)
    clock = FakeClock()
    use_clock(app, clock)
    store.set("legacy", {"cookie": {"originalMaxAge": None, "expires": None}, "user": "ann"})
    client = app.test_client(use_cookies=False)
    for now in (0, 50):
        clock.set(now)
        assert client.get("/get", environ_overrides=cookie_env("legacy")).json["id"] == "legacy"
    clock.set(150)
    late = client.get("/get", environ_overrides=cookie_env("legacy")).json
    assert late["id"] != "legacy" and late["data"] == {}
