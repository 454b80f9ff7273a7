"""One browser, two apps: an Express app (express-session + connect-redis)
and a Flask app (this extension) on one Redis share a session cookie; and
the same with a Quart app in place of the Flask one.

Everything goes through real HTTP on loopback with one cookie jar (a
``requests.Session``; cookies are per host, not per port, so both apps on
127.0.0.1 see the same ``connect.sid``). The Flask app runs in werkzeug's
threaded WSGI server, the Quart app in Hypercorn; the Express app is
``express_app/app.js``.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import contextlib
import hashlib
import hmac
import json
import math
import time
import typing as t
import uuid
from datetime import UTC
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote
from urllib.parse import unquote

import pytest
import requests
from markupsafe import Markup

import framework as fw
from framework import App
from framework import render_template_string
from framework import request
from framework import session
from server_fixtures import express_original_max_ages

if t.TYPE_CHECKING:
    from server_fixtures import ExpressApp
    from server_fixtures import ExpressAppFactory
    from server_fixtures import RedisServer


pytestmark = pytest.mark.slow

SECRET = "keyboard cat"
OLD_SECRET = "old secret"
NEW_SECRET = "new secret"
COOKIE = "connect.sid"
#: A session's lifetime in the expiry tests, in ms (express units).
MAX_AGE_MS = 60_000
#: connect-redis' and our default TTL for a browser-session cookie.
DEFAULT_TTL = 86400

#: Every JSON shape both sides must carry unchanged.
DATA: dict[str, t.Any] = {
    "user": {"name": "Zoë", "roles": ["admin", "dev"], "prefs": {"theme": "dark", "tz": None}},
    "cart": [{"sku": "A1", "qty": 2, "price": 9.99}, {"sku": "B2", "qty": 1, "price": 0.1}],
    "int": 42,
    "negative": -7,
    "zero": 0,
    "float": 3.14159,
    "tiny": 1.5e-7,
    "huge": 1e21,
    "max_safe_int": 2**53 - 1,
    "min_safe_int": -(2**53 - 1),
    "ms_timestamp": 1_717_171_717_171,
    "text": "plain",
    "unicode": "héllo wörld ✓ 日本語 Ελληνικά",
    "emoji": "😀👍🏽🇫🇷👨‍👩‍👧",
    "emoji key 🔑": "value",
    "escapes": 'quote " backslash \\ newline \n tab \t nul \u0000 ls \u2028',
    "empty_string": "",
    "yes": True,
    "no": False,
    "nothing": None,
    "empty_list": [],
    "empty_object": {},
    "deep": {"a": {"b": {"c": [1, [2, [3, {"d": None, "e": [[]]}]]]}}},
}

#: What the other side changes in ``DATA``: values replaced, one added...
CHANGES: dict[str, t.Any] = {
    "int": 43,
    "cart": [*DATA["cart"], {"sku": "C3", "qty": 5, "price": 1.25}],
    "user": {**DATA["user"], "roles": ["admin"], "prefs": {"theme": "light", "tz": "UTC"}},
    "empty_list": ["no longer"],
    "added": "añadido 🎉",
}
#: ... and keys it deletes.
REMOVED = ["text", "deep", "emoji key 🔑"]
#: What ``DATA`` is after ``CHANGES`` and ``REMOVED``.
CHANGED_DATA = {k: v for k, v in {**DATA, **CHANGES}.items() if k not in REMOVED}

#: The Flask-only values ``POST /set-typed`` stores, by key.
TYPED_VALUES: dict[str, t.Any] = {
    "pair": (1, "two"),
    "blob": b"\x00\xffbytes",
    "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "html": Markup("<b>bold</b>"),
    # A dict whose only key looks like a tag: Flask escapes it (" di").
    "tagkey": {" t": [1, 2]},
}


# -- the Flask app and the servers ------------------------------------------------


def _js_date(when: datetime | None) -> str | None:
    """``Date.prototype.toJSON`` of an aware datetime."""
    if when is None:
        return None
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def describe() -> dict[str, t.Any]:
    """The session as the Express app's ``describe`` reports it: id, user
    data and the cookie in express's JSON units (ms, ISO string).
    """
    cookie = session.cookie
    original = cookie.original_max_age
    return {
        "id": session.id,
        "data": dict(session),
        "cookie": {
            "originalMaxAge": None if original is None else round(original * 1000),
            "expires": _js_date(cookie.expires),
        },
    }


def build_app(framework: str, config: cabc.Mapping[str, t.Any]) -> App:
    """A Flask (or Quart) app with the routes of the Express app (``/get``,
    ``/set``, ``/unset``, ``/regenerate``, ``/destroy``, ``/touch``; same
    JSON shapes) plus ``/set-typed`` and ``/typed`` for Flask's tagged types.
    """
    app = fw.new_app(framework)
    app.config.update(config)
    fw.connect(app)

    @app.get("/get")
    def get() -> dict[str, t.Any]:
        return describe()

    @app.post("/set")
    def set_() -> dict[str, t.Any]:
        session.update(request.get_json())
        return describe()

    @app.post("/unset")
    def unset() -> dict[str, t.Any]:
        for key in request.get_json():
            del session[key]
        return describe()

    @app.post("/regenerate")
    def regenerate() -> dict[str, t.Any]:
        session.regenerate(keep=request.args.get("keep") == "1")
        return describe()

    @app.post("/destroy")
    def destroy() -> dict[str, t.Any]:
        destroyed = session.id
        session.destroy()
        return {"destroyed": destroyed}

    @app.post("/touch")
    def touch() -> dict[str, t.Any]:
        session.touch()
        return describe()

    @app.post("/set-typed")
    def set_typed() -> dict[str, t.Any]:
        session.update(TYPED_VALUES)
        return {"id": session.id}

    @app.get("/render")
    def render() -> str:
        """A page showing session values as templates usually do."""
        return render_template_string("<p>{{ session['prefs']['nick'] }}</p>")

    @app.get("/typed")
    def typed() -> dict[str, t.Any]:
        """Each value's Python type and repr, for values JSON cannot show."""
        return {
            "id": session.id,
            "types": {key: type(value).__name__ for key, value in session.items()},
            "reprs": {key: repr(value) for key, value in session.items()},
        }

    return app


@pytest.fixture
def flask_server(framework: str, redis_url: str) -> cabc.Iterator[cabc.Callable[..., str]]:
    """``start(**config) -> base URL``: serve a Flask app (behind Werkzeug's
    server) or, in its place, a Quart app (behind Hypercorn) on the test's
    (emptied) Redis; stopped when the test ends. ``config`` is added to
    ``CONNECT_SESSION_STORE=<redis_url>``.
    """
    with contextlib.ExitStack() as servers:

        def start(**config: t.Any) -> str:
            app = build_app(framework, {"CONNECT_SESSION_STORE": redis_url, **config})
            return servers.enter_context(fw.serve(app))

        yield start


@pytest.fixture(scope="module")
def express(
    redis_server: RedisServer, express_app_factory: ExpressAppFactory
) -> cabc.Iterator[cabc.Callable[..., ExpressApp]]:
    """``start(secrets, cookie_max_age_ms=None) -> ExpressApp``: one Express
    app per configuration, shared by the module's tests (each test empties
    Redis through ``redis_url``).
    """
    apps: dict[tuple[tuple[str, ...], float | None], ExpressApp] = {}

    def start(
        secrets: str | cabc.Sequence[str], cookie_max_age_ms: float | None = None
    ) -> ExpressApp:
        key = ((secrets,) if isinstance(secrets, str) else tuple(secrets), cookie_max_age_ms)
        if key not in apps:
            apps[key] = express_app_factory(redis_server.url, list(key[0]), cookie_max_age_ms)
        return apps[key]

    yield start
    for app in apps.values():
        app.stop()


@pytest.fixture
def jar() -> cabc.Iterator[requests.Session]:
    """The one browser-like cookie jar both apps see (cookies are per host,
    not per port, and both listen on 127.0.0.1).
    """
    with requests.Session() as http:
        yield http


# -- helpers -----------------------------------------------------------------


def sign(sid: str, secret: str) -> str:
    """The cookie value for ``sid``, computed from scratch as express-session
    does: ``encodeURIComponent("s:" + sid + "." + base64(HMAC-SHA256))``
    without ``=`` padding.
    """
    mac = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(mac).decode().rstrip("=")
    return quote(f"s:{sid}.{signature}", safe="-_.!~*'()")


def sid_in(value: str) -> str:
    """The session id inside a (percent-encoded) signed cookie value."""
    text = unquote(value)
    assert text.startswith("s:"), value
    return text[2:].rpartition(".")[0]


def jar_cookie(jar: requests.Session) -> str | None:
    """The ``connect.sid`` value in the shared jar, or ``None``."""
    return jar.cookies.get(COOKIE)


def set_cookies(response: requests.Response) -> list[dict[str, str]]:
    """The response's ``connect.sid`` Set-Cookie headers, parsed: ``value``
    plus each attribute, lower-cased (``expires``, ``path``, ``httponly``...).
    """
    parsed = []
    for header in response.raw.headers.getlist("Set-Cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        if name != COOKIE:
            continue
        cookie = {"value": value, "raw": header}
        for attribute in attributes:
            key, _, attr_value = attribute.partition("=")
            cookie[key.lower()] = attr_value
        parsed.append(cookie)
    return parsed


def one_set_cookie(response: requests.Response) -> dict[str, str]:
    cookies = set_cookies(response)
    assert len(cookies) == 1, response.raw.headers.getlist("Set-Cookie")
    return cookies[0]


def call(
    jar: requests.Session, method: str, base: str, path: str, body: t.Any = None
) -> requests.Response:
    """One request through the shared jar; a non-2xx status fails the test."""
    response = jar.request(method, base + path, json=body, timeout=10)
    assert response.ok, f"{method} {base}{path}: {response.status_code} {response.text[:500]}"
    return response


def get(jar: requests.Session, base: str) -> dict[str, t.Any]:
    """``GET /get``: ``{"id", "data", "cookie"}`` (same shape on both apps)."""
    return t.cast("dict[str, t.Any]", call(jar, "GET", base, "/get").json())


def get_with_cookie(base: str, value: str) -> dict[str, t.Any]:
    """``GET /get`` sending exactly this cookie value, outside the jar."""
    response = requests.get(base + "/get", headers={"Cookie": f"{COOKIE}={value}"}, timeout=10)
    assert response.ok, response.text
    return t.cast("dict[str, t.Any]", response.json())


def stored(redis_server: RedisServer, sid: str) -> dict[str, t.Any] | None:
    """The JSON document at ``sess:<sid>``, or ``None``."""
    with redis_server.client() as client:
        raw = client.get(f"sess:{sid}")
    return None if raw is None else t.cast("dict[str, t.Any]", json.loads(raw))


def ttl(redis_server: RedisServer, sid: str) -> int:
    with redis_server.client() as client:
        return int(client.ttl(f"sess:{sid}"))


def session_keys(redis_server: RedisServer) -> list[str]:
    with redis_server.client() as client:
        return sorted(key.decode() for key in client.scan_iter(match="*"))


def http_date(value: str) -> datetime:
    return parsedate_to_datetime(value).astimezone(UTC)


def js_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def apps(
    express: cabc.Callable[..., ExpressApp],
    flask_server: cabc.Callable[..., str],
) -> tuple[str, str]:
    """Base URLs of an Express app and a Flask app sharing the secret
    ``keyboard cat``, browser-session cookies and the emptied Redis.
    """
    return express([SECRET]).url, flask_server(CONNECT_SESSION_SECRET=[SECRET])


# -- data both ways ------------------------------------------------------------


@pytest.mark.parametrize("creator", ["express", "flask"])
def test_session_is_read_and_changed_by_the_other_app(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer, creator: str
) -> None:
    """A session one app creates (every JSON shape) is the other app's
    session, with the same id and data; the other app's changes (values
    replaced, added, deleted) are then what the creator reads.
    """
    express_url, flask_url = apps
    first, other = (express_url, flask_url) if creator == "express" else (flask_url, express_url)
    created = call(jar, "POST", first, "/set", DATA).json()
    assert created["data"] == DATA

    seen = get(jar, other)
    assert seen["id"] == created["id"]
    assert seen["data"] == DATA

    call(jar, "POST", other, "/set", CHANGES)
    call(jar, "POST", other, "/unset", REMOVED)
    after = get(jar, first)
    assert after["id"] == created["id"]
    assert after["data"] == CHANGED_DATA
    assert session_keys(redis_server) == [f"sess:{created['id']}"]


# -- regenerate and destroy ------------------------------------------------------


@pytest.mark.parametrize("keep", [False, True], ids=["empty", "keep"])
def test_flask_regenerate_is_honoured_by_express(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer, keep: bool
) -> None:
    """After Flask regenerates an Express session, the old cookie is dead in
    Express (a new, empty session) and the jar's new cookie gives Express the
    new id, empty (express's regenerate) or with the data (``keep=True``).
    """
    express_url, flask_url = apps
    old = call(jar, "POST", express_url, "/set", {"user": "ann"}).json()
    old_cookie = jar_cookie(jar)
    assert old_cookie is not None

    response = call(jar, "POST", flask_url, "/regenerate" + ("?keep=1" if keep else ""))
    new = response.json()
    assert new["id"] != old["id"]
    assert sid_in(one_set_cookie(response)["value"]) == new["id"]
    assert jar_cookie(jar) != old_cookie
    assert stored(redis_server, old["id"]) is None

    stale = get_with_cookie(express_url, old_cookie)
    assert stale["id"] not in (old["id"], new["id"])
    assert stale["data"] == {}

    seen = get(jar, express_url)
    assert seen["id"] == new["id"]
    assert seen["data"] == ({"user": "ann"} if keep else {})


def test_express_regenerate_is_honoured_by_flask(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """After Express regenerates a Flask session (which empties it, as
    express does) and stores new data, the old cookie is dead in Flask and the
    new cookie gives Flask the new id and the new data.
    """
    express_url, flask_url = apps
    old = call(jar, "POST", flask_url, "/set", {"user": "ann"}).json()
    old_cookie = jar_cookie(jar)
    assert old_cookie is not None

    response = call(jar, "POST", express_url, "/regenerate")
    new = response.json()
    assert new["id"] != old["id"]
    assert new["data"] == {}
    assert sid_in(one_set_cookie(response)["value"]) == new["id"]
    assert stored(redis_server, old["id"]) is None
    call(jar, "POST", express_url, "/set", {"user": "bob", "role": "admin"})

    stale = get_with_cookie(flask_url, old_cookie)
    assert stale["id"] not in (old["id"], new["id"])  # never adopted
    assert stale["data"] == {}
    assert stored(redis_server, old["id"]) is None  # a read does not bring it back

    seen = get(jar, flask_url)
    assert seen["id"] == new["id"]
    assert seen["data"] == {"user": "bob", "role": "admin"}


def test_flask_destroy_is_honoured_by_express(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Flask's destroy removes an Express session from Redis and deletes the
    cookie: Express then sees a new, empty session (through the jar, and
    when the old cookie is replayed).
    """
    express_url, flask_url = apps
    old = call(jar, "POST", express_url, "/set", {"user": "ann"}).json()
    old_cookie = jar_cookie(jar)
    assert old_cookie is not None

    response = call(jar, "POST", flask_url, "/destroy")
    assert response.json() == {"destroyed": old["id"]}
    deletion = one_set_cookie(response)
    assert deletion["value"] == ""
    assert http_date(deletion["expires"]) < datetime.now(UTC)
    assert jar_cookie(jar) is None
    assert session_keys(redis_server) == []

    fresh = get(jar, express_url)
    assert fresh["id"] != old["id"]
    assert fresh["data"] == {}

    replayed = get_with_cookie(express_url, old_cookie)
    assert replayed["id"] != old["id"]
    assert replayed["data"] == {}
    assert session_keys(redis_server) == []  # saveUninitialized: false


def test_express_destroy_is_honoured_by_flask(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Express's destroy removes a Flask session from Redis (express leaves
    the cookie in the browser): Flask then starts a new, empty session with
    a new id for that cookie, and stores it under the new id once written.
    """
    express_url, flask_url = apps
    old = call(jar, "POST", flask_url, "/set", {"user": "ann"}).json()
    old_cookie = jar_cookie(jar)

    response = call(jar, "POST", express_url, "/destroy")
    assert response.json()["destroyed"] == old["id"]
    assert set_cookies(response) == []  # express does not clear the cookie
    assert jar_cookie(jar) == old_cookie
    assert session_keys(redis_server) == []

    fresh = get(jar, flask_url)
    assert fresh["id"] != old["id"]
    assert fresh["data"] == {}
    assert session_keys(redis_server) == []

    written = call(jar, "POST", flask_url, "/set", {"flash": "bye"})
    new_id = written.json()["id"]
    assert new_id != old["id"]
    assert sid_in(one_set_cookie(written)["value"]) == new_id
    assert session_keys(redis_server) == [f"sess:{new_id}"]
    seen = get(jar, express_url)
    assert (seen["id"], seen["data"]) == (new_id, {"flash": "bye"})


# -- secret rotation -----------------------------------------------------------

FLASK_SECRET_CONFIGS = {
    "CONNECT_SESSION_SECRET": lambda first, second: {"CONNECT_SESSION_SECRET": [first, second]},
    "SECRET_KEY_FALLBACKS": lambda first, second: {
        "SECRET_KEY": first,
        "SECRET_KEY_FALLBACKS": [second],
    },
}


@pytest.mark.parametrize("config", sorted(FLASK_SECRET_CONFIGS))
@pytest.mark.parametrize("rotated", ["express", "flask"])
def test_secret_rotation(
    jar: requests.Session,
    express: cabc.Callable[..., ExpressApp],
    flask_server: cabc.Callable[..., str],
    config: str,
    rotated: str,
) -> None:
    """Mid-rotation, the side already rotated signs with the new secret and
    the other still signs with the old one; each verifies the other's cookie
    through its fallback secret. A secret neither lists is rejected.
    """
    express_secrets = (
        [NEW_SECRET, OLD_SECRET] if rotated == "express" else [OLD_SECRET, NEW_SECRET]
    )
    flask_secrets = express_secrets[::-1]
    express_url = express(express_secrets).url
    flask_url = flask_server(**FLASK_SECRET_CONFIGS[config](*flask_secrets))
    stranger_url = flask_server(CONNECT_SESSION_SECRET="unrelated secret")

    # Express signs with its first secret; Flask verifies with its second.
    response = call(jar, "POST", express_url, "/set", {"from": "express"})
    sid = response.json()["id"]
    assert one_set_cookie(response)["value"] == sign(sid, express_secrets[0])
    assert get(jar, flask_url)["id"] == sid
    assert get(jar, flask_url)["data"] == {"from": "express"}
    assert get_with_cookie(stranger_url, t.cast("str", jar_cookie(jar)))["id"] != sid

    # Flask signs with its first secret; Express verifies with its second.
    jar.cookies.clear()
    response = call(jar, "POST", flask_url, "/set", {"from": "flask"})
    sid = response.json()["id"]
    assert one_set_cookie(response)["value"] == sign(sid, flask_secrets[0])
    assert get(jar, express_url)["id"] == sid
    assert get(jar, express_url)["data"] == {"from": "flask"}
    assert get_with_cookie(stranger_url, t.cast("str", jar_cookie(jar)))["id"] != sid


# -- expiry and TTL --------------------------------------------------------------


def original_max_ages(created_by_express: bool) -> frozenset[int]:
    """The stored ``originalMaxAge`` a session made with ``MAX_AGE_MS`` has."""
    if created_by_express:
        return express_original_max_ages(MAX_AGE_MS)
    return frozenset((MAX_AGE_MS,))


def assert_expiry(
    response: requests.Response,
    redis_server: RedisServer,
    sid: str,
    before: float,
    *,
    created_by_express: bool,
) -> datetime:
    """The response's Set-Cookie ``Expires``, the stored ``cookie.expires``
    and the Redis TTL all say "``MAX_AGE_MS`` from when the request ran",
    to the second, and the stored ``originalMaxAge`` is ``MAX_AGE_MS`` (as
    Express computes it, for a session Express created). Returns the stored
    expiry.
    """
    after = time.time()
    cookie = one_set_cookie(response)
    assert "max-age" not in cookie  # both send Expires only
    sent = http_date(cookie["expires"]).timestamp()
    document = stored(redis_server, sid)
    assert document is not None
    assert document["cookie"]["originalMaxAge"] in original_max_ages(created_by_express)
    expires = js_date(document["cookie"]["expires"])
    lifetime = MAX_AGE_MS / 1000
    # HTTP dates have whole seconds (truncated): within 1 s of the stored one.
    # (Flask touches the cookie again when it sends it, microseconds after
    # the save, so its Expires may round to the next second.)
    assert -0.05 < expires.timestamp() - sent < 1
    assert before + lifetime <= expires.timestamp() + 0.001 <= after + lifetime + 0.001
    remaining = ttl(redis_server, sid)
    assert abs(time.time() + remaining - expires.timestamp()) <= 1
    assert lifetime - 2 <= remaining <= lifetime
    return expires


@pytest.fixture
def expiring_apps(
    express: cabc.Callable[..., ExpressApp],
    flask_server: cabc.Callable[..., str],
) -> tuple[str, str]:
    """Express with ``cookie.maxAge = MAX_AGE_MS`` and Flask with the same
    express-style cookie table.
    """
    return (
        express([SECRET], MAX_AGE_MS).url,
        flask_server(CONNECT_SESSION_SECRET=SECRET, CONNECT_SESSION_COOKIE={"maxAge": MAX_AGE_MS}),
    )


def test_expiry_and_ttl_agree(
    jar: requests.Session, expiring_apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """With the same ``maxAge`` on both sides, a session created by either
    gets the same cookie Expires, stored ``cookie.expires`` and Redis TTL
    (to the second), and the other side reads the same expiry.
    """
    express_url, flask_url = expiring_apps

    before = time.time()
    response = call(jar, "POST", express_url, "/set", {"by": "express"})
    sid = response.json()["id"]
    expires = assert_expiry(response, redis_server, sid, before, created_by_express=True)
    seen = get(jar, flask_url)["cookie"]
    assert seen["originalMaxAge"] in original_max_ages(created_by_express=True)
    assert js_date(seen["expires"]) == expires

    jar.cookies.clear()
    before = time.time()
    response = call(jar, "POST", flask_url, "/set", {"by": "flask"})
    sid = response.json()["id"]
    expires = assert_expiry(response, redis_server, sid, before, created_by_express=False)
    seen = get(jar, express_url)["cookie"]
    assert seen["originalMaxAge"] == MAX_AGE_MS
    assert js_date(seen["expires"]) == expires


def test_touch_and_saves_extend_expiry_for_the_other_side(
    jar: requests.Session, expiring_apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """A touch (an unmodified request) on either side resets the Redis TTL
    to the full lifetime; a change on either side also moves the cookie's
    Expires and the stored expiry forward, which the other side then reads.
    """
    express_url, flask_url = expiring_apps
    lifetime = MAX_AGE_MS // 1000
    first = call(jar, "POST", express_url, "/set", {"n": 1})
    sid = first.json()["id"]
    first_expires = http_date(one_set_cookie(first)["expires"])

    with redis_server.client() as client:
        for side in (express_url, flask_url, express_url):
            client.expire(f"sess:{sid}", 5)  # as if 55 s had gone by
            touched = call(jar, "POST", side, "/touch")
            assert set_cookies(touched) == []  # unmodified: no cookie (both)
            assert lifetime - 1 <= client.ttl(f"sess:{sid}") <= lifetime, side

    time.sleep(1.1)  # HTTP dates have whole seconds
    before = time.time()
    response = call(jar, "POST", flask_url, "/set", {"n": 2})
    flask_expires = assert_expiry(response, redis_server, sid, before, created_by_express=True)
    assert http_date(one_set_cookie(response)["expires"]) > first_expires
    assert js_date(get(jar, express_url)["cookie"]["expires"]) == flask_expires

    time.sleep(1.1)
    before = time.time()
    response = call(jar, "POST", express_url, "/set", {"n": 3})
    express_expires = assert_expiry(response, redis_server, sid, before, created_by_express=True)
    assert express_expires > flask_expires
    assert js_date(get(jar, flask_url)["cookie"]["expires"]) == express_expires
    assert get(jar, flask_url)["data"] == {"n": 3}


def test_stale_stored_expiry_with_a_live_ttl_is_honoured_by_both(
    jar: requests.Session, expiring_apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Express's touch extends only the Redis TTL, so a session kept alive by
    unmodified requests has a past ``cookie.expires`` in Redis: expiry is
    the store's job, and both apps still load it; the next save on either
    side writes a fresh expiry.
    """
    express_url, flask_url = expiring_apps
    sid = call(jar, "POST", express_url, "/set", {"user": "ann"}).json()["id"]
    with redis_server.client() as client:
        document = json.loads(client.get(f"sess:{sid}"))
        document["cookie"]["expires"] = "2000-01-01T00:00:00.000Z"
        client.set(f"sess:{sid}", json.dumps(document), keepttl=True)

    for side in (flask_url, express_url):
        seen = get(jar, side)
        assert (seen["id"], seen["data"]) == (sid, {"user": "ann"}), side
    assert ttl(redis_server, sid) >= MAX_AGE_MS // 1000 - 1

    before = time.time()
    response = call(jar, "POST", flask_url, "/set", {"user": "bob"})
    assert_expiry(response, redis_server, sid, before, created_by_express=True)
    assert get(jar, express_url)["data"] == {"user": "bob"}


# -- what does not survive the trip ----------------------------------------------


def test_express_dates_arrive_in_flask_as_iso_strings(
    jar: requests.Session, apps: tuple[str, str]
) -> None:
    """A JavaScript Date Express stores is JSON-serialised by connect-redis:
    Flask reads the ISO 8601 string (ms precision, ``Z``), not a datetime,
    and can write it back unchanged.
    """
    express_url, flask_url = apps
    ms = 1_704_164_645_678  # 2024-01-02T03:04:05.678Z
    call(jar, "POST", express_url, "/set-dates", {"at": ms})

    typed = call(jar, "GET", flask_url, "/typed").json()
    assert typed["types"] == {"at": "str"}
    assert get(jar, flask_url)["data"] == {"at": "2024-01-02T03:04:05.678Z"}
    assert js_date("2024-01-02T03:04:05.678Z").timestamp() * 1000 == ms

    call(jar, "POST", flask_url, "/set", {"other": 1})
    assert get(jar, express_url)["data"] == {"at": "2024-01-02T03:04:05.678Z", "other": 1}


def test_express_values_shaped_like_flask_tags(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Express data shaped like Flask's tagged JSON (a one-key object whose
    key is a tag, e.g. ``{" t": [1, 2]}``) is read without error as the
    plain object it is: only values Flask wrote are decoded as tagged types
    (docs/behaviour.rst, "Values"). A top-level session key named like a tag is an
    ordinary key. Values Flask leaves alone stay byte for byte.
    """
    express_url, flask_url = apps
    data = {" t": [1, 2], "pair": {" t": [1, 2]}, "two_keys": {" t": [1], "x": 2}}
    sid = call(jar, "POST", express_url, "/set", data).json()["id"]

    typed = call(jar, "GET", flask_url, "/typed").json()
    assert typed["types"] == {" t": "list", "pair": "dict", "two_keys": "dict"}
    assert typed["reprs"]["pair"] == "{' t': [1, 2]}"

    call(jar, "POST", flask_url, "/set", {"other": 1})
    assert get(jar, express_url)["data"] == {**data, "other": 1}
    raw = stored(redis_server, sid)
    assert raw is not None and raw["pair"] == {" t": [1, 2]}


#: Express values shaped like Flask's tagged JSON (e.g. user input an Express
#: app stores as is) whose payload Flask's tags cannot decode: decoding
#: raises, or gives ``None`` (``" d"``).
UNDECODABLE_TAGS: dict[str, t.Any] = {
    "bad_bytes": {" b": "not base64!"},
    "bad_uuid": {" u": "not-a-uuid"},
    "bad_tuple": {" t": 5},
    "bad_date": {" d": "not a date"},
    "bad_dict": {" di": 5},
}
#: ... whose payload decodes, but encodes back to different JSON.
NONCANONICAL_TAGS: dict[str, t.Any] = {
    "uuid_with_dashes": {" u": "12345678-1234-5678-1234-567812345678"},
    "tuple_of_a_string": {" t": "ab"},
    "markup_of_a_number": {" m": 5},
    "date_with_offset": {" d": "Tue, 02 Jan 2024 03:04:05 +0000"},
}


@pytest.mark.parametrize("key", sorted(UNDECODABLE_TAGS) + sorted(NONCANONICAL_TAGS))
def test_flask_keeps_express_values_it_did_not_change(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer, key: str
) -> None:
    """An Express value shaped like a Flask tag, decodable or not, does not
    break Flask (the session loads, with its other data) and is not
    rewritten when Flask saves a change to another key: a save writes only
    the keys the request changed (docs/behaviour.rst, "Concurrency").
    """
    value = UNDECODABLE_TAGS.get(key) or NONCANONICAL_TAGS[key]
    express_url, flask_url = apps
    data = {key: value, "user": "ann"}
    sid = call(jar, "POST", express_url, "/set", data).json()["id"]

    typed = call(jar, "GET", flask_url, "/typed").json()
    assert typed["id"] == sid
    assert typed["types"]["user"] == "str"

    call(jar, "POST", flask_url, "/set", {"other": 1})
    document = stored(redis_server, sid)
    assert document is not None
    assert document[key] == value
    assert get(jar, express_url)["data"] == {**data, "other": 1}


@pytest.mark.parametrize("key", sorted(UNDECODABLE_TAGS))
def test_flask_reads_undecodable_tag_shapes_as_plain_objects(
    jar: requests.Session, apps: tuple[str, str], key: str
) -> None:
    """An Express value shaped like a Flask tag whose payload the tag cannot
    decode comes through to Flask as the plain object Express stored (the
    only exact Python form of it), not as an error or ``None``.
    """
    express_url, flask_url = apps
    data = {key: UNDECODABLE_TAGS[key], "user": "ann"}
    sid = call(jar, "POST", express_url, "/set", data).json()["id"]

    seen = get(jar, flask_url)
    assert seen["id"] == sid
    assert seen["data"] == data


def test_flask_types_survive_express(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Tuples, bytes, datetimes, UUIDs and Markup Flask stores are tagged
    JSON objects to Express; Express can read them and change other keys,
    and Flask still gets its typed values back.
    """
    express_url, flask_url = apps
    sid = call(jar, "POST", flask_url, "/set-typed").json()["id"]

    seen = get(jar, express_url)
    assert seen["id"] == sid
    # Flask's record of the values it wrote with tags: one MAC member each.
    macs = {k for k in seen["data"] if k.startswith("_tagged:")}
    assert macs == {f"_tagged:{key}" for key in TYPED_VALUES}
    for member in macs:
        del seen["data"][member]
    assert seen["data"] == {
        "pair": {" t": [1, "two"]},
        "blob": {" b": base64.b64encode(b"\x00\xffbytes").decode()},
        "when": {" d": "Tue, 02 Jan 2024 03:04:05 GMT"},
        "uid": {" u": "12345678123456781234567812345678"},
        "html": {" m": "<b>bold</b>"},
        "tagkey": {" di": {" t__": [1, 2]}},
    }

    call(jar, "POST", express_url, "/set", {"express": "was here"})
    document = stored(redis_server, sid)
    assert document is not None and document["express"] == "was here"

    # Express rewrote the whole document (JSON.stringify): still Flask's.
    typed = call(jar, "GET", flask_url, "/typed").json()
    expected = {**TYPED_VALUES, "express": "was here"}
    assert typed["types"] == {key: type(value).__name__ for key, value in expected.items()}
    assert typed["reprs"] == {key: repr(value) for key, value in expected.items()}


SCRIPT = "<script>alert(document.domain)</script>"


def test_express_client_input_shaped_like_markup_is_escaped_by_flask(
    jar: requests.Session, apps: tuple[str, str]
) -> None:
    """The review's stored XSS, with the real Express app copying the
    client's JSON into the session at top level: tag-shaped input is a plain
    dict to Flask and Jinja escapes it, whatever ``_tagged:<key>`` MACs the
    client sends along, even MACs Flask made (Express shows the session's
    data, MACs included, to the client) moved to another key or value.
    """
    express_url, flask_url = apps
    nick = {"nick": {" m": SCRIPT}}
    call(jar, "POST", express_url, "/set", {"prefs": nick})
    page = call(jar, "GET", flask_url, "/render").text
    assert SCRIPT not in page and "&lt;script&gt;" in page

    call(jar, "POST", flask_url, "/set-typed")
    html_mac = get(jar, express_url)["data"]["_tagged:html"]
    # (what the client sends, the type Flask then sees for "html")
    attempts: list[tuple[dict[str, t.Any], str]] = [
        ({"prefs": nick}, "Markup"),
        ({"prefs": nick, "_tagged:prefs": "A" * 22}, "Markup"),
        ({"prefs": nick, "_tagged:prefs": html_mac}, "Markup"),
        ({"prefs": nick, "_tagged:html": "A" * 22}, "dict"),  # html's MAC gone
        ({"prefs": nick, "_tagged:html": html_mac}, "Markup"),  # Flask's own MAC back
        ({"prefs": {"nick": {" m": "<b>bold</b>"}}, "_tagged:prefs": html_mac}, "Markup"),
        ({"html": {" m": SCRIPT}, "prefs": nick, "_tagged:html": html_mac}, "dict"),
    ]
    for body, html_type in attempts:
        call(jar, "POST", express_url, "/set", body)
        page = call(jar, "GET", flask_url, "/render").text
        assert "<script>" not in page and "<b>" not in page, body
        assert "&lt;" in page, body
        typed = call(jar, "GET", flask_url, "/typed").json()
        assert typed["types"]["prefs"] == "dict", body
        assert typed["types"]["html"] == html_type, body


def test_integers_beyond_2_53_lose_precision_in_express(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """A documented limit: JavaScript numbers are doubles, so an integer
    beyond 2**53 that Flask stores is rounded once Express reads it, and
    saved rounded when Express rewrites the session. Up to 2**53 - 1 it is
    exact (see ``DATA``).
    """
    express_url, flask_url = apps
    sid = call(jar, "POST", flask_url, "/set", {"big": 2**53 + 1}).json()["id"]
    assert get(jar, express_url)["data"] == {"big": 2**53}

    call(jar, "POST", express_url, "/set", {"other": 1})
    document = stored(redis_server, sid)
    assert document is not None and document["big"] == 2**53
    assert get(jar, flask_url)["data"] == {"big": 2**53, "other": 1}


# -- wire format ------------------------------------------------------------------


def test_wire_format_is_express_sessions(
    jar: requests.Session, apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """Byte for byte: both apps send ``connect.sid=s%3A<sid>.<sig>`` with the
    signature computed here from scratch, with ``Path=/`` and ``HttpOnly``
    and no expiry (browser-session cookie); each accepts the other's cookie;
    both store ``sess:<sid>`` as a JSON object with express's ``cookie``
    member, under connect-redis' default TTL.
    """
    express_url, flask_url = apps
    # The helper reproduces the test vector of docs/behaviour.rst, "The cookie".
    assert sign("apple", "keyboard cat") == (
        "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
    )

    documents = {}
    for side, other in ((express_url, flask_url), (flask_url, express_url)):
        jar.cookies.clear()
        response = call(jar, "POST", side, "/set", {"side": side})
        sid = response.json()["id"]
        cookie = one_set_cookie(response)
        assert cookie["value"] == sign(sid, SECRET)
        assert cookie["raw"].startswith(f"{COOKIE}={sign(sid, SECRET)};")
        assert cookie["path"] == "/"
        assert "httponly" in cookie
        assert "expires" not in cookie and "max-age" not in cookie
        assert get(jar, other)["id"] == sid  # accepted by the other side

        assert session_keys(redis_server) == [f"sess:{sid}"]
        with redis_server.client() as client:
            raw = client.get(f"sess:{sid}")
            assert client.type(f"sess:{sid}") == b"string"
            assert DEFAULT_TTL - 2 <= client.ttl(f"sess:{sid}") <= DEFAULT_TTL
            client.delete(f"sess:{sid}")
        document = json.loads(raw)
        assert isinstance(document, dict)
        assert document["side"] == side
        documents[side] = document["cookie"]

    express_cookie, flask_cookie = documents[express_url], documents[flask_url]
    assert express_cookie == {
        "originalMaxAge": None,
        "expires": None,
        "httpOnly": True,
        "path": "/",
    }
    # Flask writes express's members with express's values, plus "secure": false
    # (express omits an unset secure; both read a missing one as false).
    assert {key: flask_cookie[key] for key in express_cookie} == express_cookie
    assert set(flask_cookie) - set(express_cookie) <= {"secure"}
    assert flask_cookie.get("secure", False) is False


def test_expiring_cookie_document_has_express_shape(
    jar: requests.Session, expiring_apps: tuple[str, str], redis_server: RedisServer
) -> None:
    """With a ``maxAge``, both store ``originalMaxAge`` in ms and
    ``expires`` as ``Date.prototype.toJSON`` writes it
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``).
    """
    express_url, flask_url = expiring_apps
    for side in (express_url, flask_url):
        jar.cookies.clear()
        sid = call(jar, "POST", side, "/set", {"x": 1}).json()["id"]
        document = stored(redis_server, sid)
        assert document is not None
        cookie = document["cookie"]
        assert cookie["originalMaxAge"] in original_max_ages(side == express_url)
        assert isinstance(cookie["expires"], str)
        assert len(cookie["expires"]) == 24 and cookie["expires"].endswith("Z"), cookie
        assert js_date(cookie["expires"]).microsecond % 1000 == 0
        assert cookie["httpOnly"] is True and cookie["path"] == "/"
        assert math.isclose(
            js_date(cookie["expires"]).timestamp(), time.time() + MAX_AGE_MS / 1000, abs_tol=2
        )
