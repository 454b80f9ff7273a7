"""Taking over Flask's cookie sessions and Flask-Session's Redis sessions
(``CONNECT_SESSION_MIGRATE_FROM``; docs/behaviour.rst, "Taking over existing
sessions").

The legacy sessions are made by the real thing: a Flask app with Flask's own
cookie session, and a Flask-Session 0.8 app writing into the real
redis-server of the fixtures. Then an app with this extension takes over.
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import re
import tomllib
import typing as t
import uuid
import warnings
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import flask
import pytest
from flask import Flask
from flask.json.tag import TaggedJSONSerializer
from itsdangerous import TimestampSigner
from markupsafe import Markup

from flask_connect_session import MemoryStore
from flask_connect_session import RedisStore
from flask_connect_session import StoreError

import framework as fw
from conftest import SECRET
from conftest import add_views
from framework import App
from framework import session
from server_fixtures import _free_port
from server_fixtures import _require_module
from set_cookie_headers import set_cookies
from set_cookie_headers import the_cookie

if t.TYPE_CHECKING:
    import redis
    from flask.testing import FlaskClient
    from werkzeug.test import TestResponse

    from flask_connect_session import Store

OURS = "connect.sid"
LEGACY = "session"

#: What the legacy apps put in their sessions: Flask's tagged types too.
TAGGED_DATA: dict[str, t.Any] = {
    "user_id": 42,
    "pair": (1, "two"),
    "raw": b"\x00\xff",
    "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "html": Markup("<b>hi</b>"),
    "nested": {"cart": [1, {"sku": None}], "ok": True},
}
#: What Flask-Session keeps (msgpack and JSON alike: no tagged types).
PLAIN_DATA: dict[str, t.Any] = {"user_id": 42, "name": "Ada", "cart": [1, {"sku": None}]}

_tagged = TaggedJSONSerializer()


OurApp = t.Callable[..., App]


@pytest.fixture
def our_app(framework: str) -> OurApp:
    """Build the app of ``framework`` that takes over (see :func:`build_our_app`)."""
    return functools.partial(build_our_app, framework)


def build_our_app(
    framework: str,
    migrate_from: list[dict[str, t.Any]],
    store: Store | None = None,
    **config: t.Any,
) -> App:
    app = fw.new_app(framework, "ours")
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store or MemoryStore(),
        CONNECT_SESSION_MIGRATE_FROM=migrate_from,
    )
    app.config.update(config)
    fw.connect(app)
    add_views(app)

    @app.get("/data")
    def data() -> str:
        # Tagged JSON, so tuples, bytes, Markup... can be compared exactly.
        return _tagged.dumps({"data": dict(session), "id": session.id, "new": session.new})

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    return app


def read(rv: TestResponse) -> dict[str, t.Any]:
    assert rv.status_code == 200, rv.data
    return t.cast(dict[str, t.Any], _tagged.loads(rv.get_data(as_text=True)))


def deletes(rv: TestResponse, name: str) -> bool:
    found = set_cookies(rv, name)
    return len(found) == 1 and found[0].deleted


# -- Flask's cookie session --------------------------------------------------


def flask_cookie(data: dict[str, t.Any] = TAGGED_DATA, secret: str = SECRET) -> str:
    """A cookie made by Flask's own cookie session."""
    app = Flask("legacy")
    app.config.update(SECRET_KEY=secret)

    @app.post("/login")
    def login() -> str:
        flask.session.update(data)
        flask.session.permanent = True
        return "ok"

    client = app.test_client()
    assert client.post("/login").status_code == 200
    cookie = client.get_cookie(LEGACY)
    assert cookie is not None
    return cookie.value


def with_cookie(app: App, name: str, value: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie(name, value)
    return client


def test_flask_cookie_session_is_taken_over_with_its_tagged_types(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie())
    rv = client.get("/data")
    body = read(rv)
    assert body["data"] == {**TAGGED_DATA, "_permanent": True}
    assert type(body["data"]["pair"]) is tuple and type(body["data"]["html"]) is Markup
    assert body["new"] is True
    assert deletes(rv, LEGACY)
    ours = the_cookie(rv, OURS)
    assert ours.sid == body["id"]
    # Flask's permanent session stays permanent: the cookie expires.
    assert ours.expires is not None
    # The next request is ours alone: the same session, no legacy cookie.
    assert client.get_cookie(LEGACY) is None
    again = client.get("/data")
    assert read(again)["id"] == body["id"] and read(again)["new"] is False
    assert read(again)["data"] == body["data"]
    assert set_cookies(again, LEGACY) == []


def test_a_legacy_session_holding_nan_is_ignored_not_an_error(
    our_app: OurApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flask's cookie session writes NaN as Python's json does; our store
    cannot hold it (JSON has no NaN), so the legacy session is logged and
    ignored, as one holding any other unstorable value is: never a 500.
    """
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie({"user_id": 42, "ratio": float("nan")}))
    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        rv = client.get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    assert "legacy flask-cookie session ignored: session['ratio'] cannot be stored" in caplog.text


def test_each_takeover_gets_a_new_id(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    legacy = flask_cookie()
    first = read(with_cookie(app, LEGACY, legacy).get("/data"))["id"]
    second = read(with_cookie(app, LEGACY, legacy).get("/data"))["id"]
    assert first != second


def test_a_takeover_is_logged(our_app: OurApp, caplog: pytest.LogCaptureFixture) -> None:
    app = our_app([{"type": "flask-cookie"}])
    with caplog.at_level(logging.INFO, logger="flask_connect_session"):
        sid = read(with_cookie(app, LEGACY, flask_cookie()).get("/data"))["id"]
    lines = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert lines == [
        f"took over a legacy flask-cookie session (cookie 'session') as sid {sid[:6]}..."
    ]


def test_requests_that_never_touch_the_session_do_nothing(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie())
    rv = client.get("/ignore")
    assert rv.headers.getlist("Set-Cookie") == [] and "Vary" not in rv.headers
    assert client.get_cookie(LEGACY) is not None
    assert read(client.get("/data"))["data"]["user_id"] == 42


def test_a_tampered_flask_cookie_is_deleted_and_ignored(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    payload, _, signature = flask_cookie().rpartition(".")
    tampered = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    client = with_cookie(app, LEGACY, tampered)
    rv = client.get("/data")
    assert read(rv)["data"] == {}
    assert deletes(rv, LEGACY) and set_cookies(rv, OURS) == []


def test_a_cookie_signed_with_another_secret_is_refused(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    rv = with_cookie(app, LEGACY, flask_cookie(secret="another secret")).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)


def test_secret_key_fallbacks_verify_legacy_cookies(our_app: OurApp) -> None:
    legacy = flask_cookie(secret="the old secret")
    app = our_app(
        [{"type": "flask-cookie"}],
        SECRET_KEY="the new secret",
        SECRET_KEY_FALLBACKS=["the old secret"],
    )
    assert read(with_cookie(app, LEGACY, legacy).get("/data"))["data"]["user_id"] == 42


def test_permanent_session_lifetime_is_the_maximum_age(
    our_app: OurApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cookie Flask signed two hours ago.
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 7200)
    legacy = flask_cookie()
    monkeypatch.undo()
    hour = our_app([{"type": "flask-cookie"}], PERMANENT_SESSION_LIFETIME=timedelta(hours=1))
    rv = with_cookie(hour, LEGACY, legacy).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    day = our_app([{"type": "flask-cookie"}], PERMANENT_SESSION_LIFETIME=timedelta(days=1))
    assert read(with_cookie(day, LEGACY, legacy).get("/data"))["data"]["user_id"] == 42


def test_the_legacy_cookie_name_is_configurable(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie", "cookie": "old_session"}])
    rv = with_cookie(app, "old_session", flask_cookie()).get("/data")
    assert read(rv)["data"]["user_id"] == 42
    assert deletes(rv, "old_session") and set_cookies(rv, LEGACY) == []


def test_a_valid_session_of_ours_wins(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = app.test_client()
    mine = client.post("/set", json={"mine": 1}).get_json()["id"]
    client.set_cookie(LEGACY, flask_cookie())
    rv = client.get("/data")
    assert read(rv) == {"data": {"mine": 1}, "id": mine, "new": False}
    assert set_cookies(rv, LEGACY) == []  # not even read


def test_header_requests_ignore_legacy_cookies(our_app: OurApp) -> None:
    """An API client's request (CONNECT_SESSION_HEADER) ignores cookies, legacy
    ones too: it takes nothing over and sets or deletes no cookie.
    """
    app = our_app([{"type": "flask-cookie"}], CONNECT_SESSION_HEADER="X-Session-Id")
    client = with_cookie(app, LEGACY, flask_cookie())
    rv = client.get("/data", headers={"X-Session-Id": ""})
    assert read(rv)["data"] == {}
    assert "Set-Cookie" not in rv.headers
    # The same browser's cookie request still takes it over.
    assert read(client.get("/data"))["data"] == {**TAGGED_DATA, "_permanent": True}


def test_logging_out_of_a_taken_over_session_deletes_the_legacy_cookie(
    our_app: OurApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie())
    with caplog.at_level(logging.INFO, logger="flask_connect_session"):
        rv = client.post("/logout")
    assert deletes(rv, LEGACY) and set_cookies(rv, OURS) == []
    assert "took over a legacy flask-cookie session and ended it" in caplog.messages
    assert read(client.get("/data"))["data"] == {}


def test_a_write_on_the_takeover_request_is_kept_too(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie())
    assert client.get("/count").get_json()["n"] == 1
    assert read(client.get("/data"))["data"]["user_id"] == 42


def test_regenerate_with_keep_carries_the_legacy_data(our_app: OurApp) -> None:
    app = our_app([{"type": "flask-cookie"}])
    client = with_cookie(app, LEGACY, flask_cookie(PLAIN_DATA))
    rv = client.post("/regenerate?keep=1")
    assert deletes(rv, LEGACY)
    assert read(client.get("/data"))["data"]["user_id"] == 42


def test_save_uninitialized_takes_over_without_an_access(our_app: OurApp) -> None:
    # Otherwise an empty session of ours would shadow the legacy one for good.
    app = our_app([{"type": "flask-cookie"}], CONNECT_SESSION_SAVE_UNINITIALIZED=True)
    client = with_cookie(app, LEGACY, flask_cookie())
    rv = client.get("/ignore")
    assert deletes(rv, LEGACY) and len(set_cookies(rv, OURS)) == 1
    assert read(client.get("/data"))["data"]["user_id"] == 42


def test_nothing_legacy_is_deleted_when_our_cookie_cannot_be_sent(our_app: OurApp) -> None:
    # A secure cookie never goes over plain HTTP: the legacy one must stay.
    app = our_app([{"type": "flask-cookie"}], CONNECT_SESSION_COOKIE={"secure": True})
    client = with_cookie(app, LEGACY, flask_cookie())
    rv = client.get("/data")
    assert read(rv)["data"]["user_id"] == 42
    assert rv.headers.getlist("Set-Cookie") == []
    secure = app.test_client()
    secure.set_cookie(LEGACY, flask_cookie())
    rv = secure.get("/data", base_url="https://localhost")
    assert deletes(rv, LEGACY) and len(set_cookies(rv, OURS)) == 1


# -- Flask-Session in Redis ----------------------------------------------------


def flask_session_app(
    redis_url: str, serialization: str = "msgpack", signed: bool = False
) -> tuple[Flask, redis.Redis]:
    """A real Flask-Session 0.8 app over the fixtures' redis-server."""
    flask_session = _require_module("flask_session", "flask-session")
    redis_module = _require_module("redis", "redis")
    client = redis_module.Redis.from_url(redis_url)
    app = Flask("legacy")
    app.config.update(
        SECRET_KEY=SECRET,
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_SERIALIZATION_FORMAT=serialization,
        SESSION_USE_SIGNER=signed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SESSION_USE_SIGNER
        flask_session.Session(app)

    @app.post("/login")
    def login() -> str:
        flask.session.update(PLAIN_DATA)
        return "ok"

    return app, client


def flask_session_cookie(app: Flask) -> str:
    client = app.test_client()
    assert client.post("/login").status_code == 200
    cookie = client.get_cookie(LEGACY)
    assert cookie is not None
    return cookie.value


def legacy_key(cookie: str, signed: bool) -> str:
    return "session:" + (cookie.rpartition(".")[0] if signed else cookie)


@pytest.mark.parametrize(
    ("serialization", "signed"), [("msgpack", False), ("json", False), ("msgpack", True)]
)
def test_flask_session_sessions_are_taken_over(
    our_app: OurApp, redis_url: str, serialization: str, signed: bool
) -> None:
    legacy_app, redis_client = flask_session_app(redis_url, serialization, signed)
    cookie = flask_session_cookie(legacy_app)
    key = legacy_key(cookie, signed)
    assert redis_client.exists(key)
    app = our_app(
        [{"type": "flask-session", "store": redis_url, "signed": signed}],
        store=RedisStore(redis_url),
    )
    client = with_cookie(app, LEGACY, cookie)
    rv = client.get("/data")
    body = read(rv)
    # Flask-Session keeps SESSION_PERMANENT (on by default) as _permanent.
    assert body["data"] == {**PLAIN_DATA, "_permanent": True}
    assert body["id"] != key.removeprefix("session:")
    assert deletes(rv, LEGACY) and the_cookie(rv, OURS).sid == body["id"]
    assert not redis_client.exists(key)
    assert redis_client.exists("sess:" + body["id"])
    assert read(client.get("/data"))["data"] == body["data"]


def test_secret_key_fallbacks_verify_signed_flask_session_cookies(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, _ = flask_session_app(redis_url, signed=True)
    cookie = flask_session_cookie(legacy_app)
    migrate = [{"type": "flask-session", "store": redis_url, "signed": True}]
    app = our_app(migrate, SECRET_KEY="rotated")
    rv = with_cookie(app, LEGACY, cookie).get("/data")
    assert read(rv)["data"] == {}  # refused: the record stays
    app = our_app(migrate, SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[SECRET])
    assert read(with_cookie(app, LEGACY, cookie).get("/data"))["data"]["name"] == "Ada"


def test_a_logout_on_the_takeover_request_deletes_the_record(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    app = our_app([{"type": "flask-session", "store": redis_url}])
    rv = with_cookie(app, LEGACY, cookie).post("/logout")
    assert deletes(rv, LEGACY) and set_cookies(rv, OURS) == []
    assert not redis_client.exists("session:" + cookie)


def test_a_tampered_signed_flask_session_cookie_is_refused(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, redis_client = flask_session_app(redis_url, signed=True)
    cookie = flask_session_cookie(legacy_app)
    sid = cookie.rpartition(".")[0]
    app = our_app([{"type": "flask-session", "store": redis_url, "signed": True}])
    for value in (sid, sid + ".forged", cookie.upper()):
        rv = with_cookie(app, LEGACY, value).get("/data")
        assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    assert redis_client.exists("session:" + sid)  # not ours to delete


def test_an_unsigned_source_does_not_accept_a_signed_cookie(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, _ = flask_session_app(redis_url, signed=True)
    app = our_app([{"type": "flask-session", "store": redis_url}])
    rv = with_cookie(app, LEGACY, flask_session_cookie(legacy_app)).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)


def test_a_missing_flask_session_record_is_ignored(our_app: OurApp, redis_url: str) -> None:
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    redis_client.delete("session:" + cookie)
    app = our_app([{"type": "flask-session", "store": redis_url}])
    rv = with_cookie(app, LEGACY, cookie).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY) and set_cookies(rv, OURS) == []


class Marker:
    """Unpickling this creates a file: proof that something unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (Path.touch, (self.path,))


def test_a_planted_pickle_is_never_unpickled(
    our_app: OurApp, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "unpickled"
    planted = pickle.dumps(Marker(marker))
    pickle.loads(planted)  # the marker works...
    assert marker.exists()
    marker.unlink()
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    redis_client.set("session:" + cookie, planted)
    app = our_app([{"type": "flask-session", "store": redis_url}])
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        rv = with_cookie(app, LEGACY, cookie).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    assert not marker.exists()  # ...and was never run
    assert any("pickle" in r.getMessage() for r in caplog.records)


def test_an_unreadable_flask_session_record_is_ignored(
    our_app: OurApp, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    redis_client.set("session:" + cookie, b"\xc1 not msgpack, not JSON")
    app = our_app([{"type": "flask-session", "store": redis_url}])
    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        rv = with_cookie(app, LEGACY, cookie).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    assert any("not a msgpack or JSON object" in r.getMessage() for r in caplog.records)


def test_a_dead_legacy_redis_is_a_store_error_and_nothing_is_lost(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, _ = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    dead = f"redis://127.0.0.1:{_free_port()}/0?socket_connect_timeout=0.5"
    app = our_app([{"type": "flask-session", "store": dead}])
    client = with_cookie(app, LEGACY, cookie)
    with pytest.raises(StoreError, match="FlaskSessionSource.get failed"):
        client.get("/data")
    assert client.get_cookie(LEGACY) is not None


@pytest.mark.flask_only("Quart reads the session before the view, which a failure never reaches")
def test_after_a_handled_store_error_the_next_access_tries_again(
    our_app: OurApp, redis_url: str
) -> None:
    legacy_app, _ = flask_session_app(redis_url)
    dead = f"redis://127.0.0.1:{_free_port()}/0?socket_connect_timeout=0.5"
    app = our_app([{"type": "flask-session", "store": dead}])
    attempts = []

    @app.get("/retry")
    def retry() -> str:
        try:
            session.get("user_id")
        except StoreError:
            attempts.append(1)
        # Not an empty session of ours, which would shadow the legacy one.
        session["after"] = 1
        return "written"

    client = with_cookie(app, LEGACY, flask_session_cookie(legacy_app))
    with pytest.raises(StoreError):
        client.get("/retry")
    assert attempts == [1]


def test_the_legacy_record_stays_until_our_save_succeeds(our_app: OurApp, redis_url: str) -> None:
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    app = our_app([{"type": "flask-session", "store": redis_url}], store=RedisStore(redis_url))
    client = with_cookie(app, LEGACY, cookie)
    # A full Redis refuses writes (ours) but still serves reads (the legacy one).
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreError, match="set failed"):
            client.get("/data")
    finally:
        redis_client.config_set("maxmemory", 0)
    assert redis_client.exists("session:" + cookie)
    assert client.get_cookie(LEGACY) is not None
    # Once the store is back, the takeover happens.
    assert read(client.get("/data"))["data"]["user_id"] == 42
    assert not redis_client.exists("session:" + cookie)


def test_the_first_source_that_verifies_wins(our_app: OurApp, redis_url: str) -> None:
    legacy_app, _ = flask_session_app(redis_url)
    app = our_app(
        [
            {"type": "flask-cookie", "cookie": "old"},
            {"type": "flask-session", "store": redis_url},
        ]
    )
    client = with_cookie(app, LEGACY, flask_session_cookie(legacy_app))
    client.set_cookie("old", "garbage")
    rv = client.get("/data")
    assert read(rv)["data"]["name"] == "Ada"
    assert deletes(rv, "old") and deletes(rv, LEGACY)


# -- configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("migrate_from", "named"),
    [
        ({"type": "flask-cookie"}, "CONNECT_SESSION_MIGRATE_FROM: expected a list"),
        (["flask-cookie"], "CONNECT_SESSION_MIGRATE_FROM[0]: expected a table"),
        ([{}], "CONNECT_SESSION_MIGRATE_FROM[0]['type']"),
        ([{"type": "django"}], "CONNECT_SESSION_MIGRATE_FROM[0]['type']"),
        ([{"type": "flask-cookie", "store": "redis://"}], "[0]['store']: unknown"),
        ([{"type": "flask-session"}], "CONNECT_SESSION_MIGRATE_FROM[0]['store']: required"),
        (
            [{"type": "flask-cookie"}, {"type": "flask-session", "store": "http://x"}],
            "CONNECT_SESSION_MIGRATE_FROM[1]['store']",
        ),
        ([{"type": "flask-session", "store": 3}], "[0]['store']"),
        ([{"type": "flask-session", "store": "redis://", "signed": "maybe"}], "[0]['signed']"),
        ([{"type": "flask-session", "store": "redis://", "key_prefix": 1}], "['key_prefix']"),
        ([{"type": "flask-cookie", "cookie": "a b"}], "CONNECT_SESSION_MIGRATE_FROM[0]['cookie']"),
        ([{"type": "flask-cookie", "cookie": OURS}], "must differ from CONNECT_SESSION_KEY"),
        ([{"type": "flask-cookie", "path": "x"}], "CONNECT_SESSION_MIGRATE_FROM[0]['path']"),
    ],
)
def test_a_misconfigured_source_is_a_value_error_naming_the_key(
    our_app: OurApp, migrate_from: t.Any, named: str
) -> None:
    with pytest.raises(ValueError) as info:
        our_app(migrate_from)
    assert named in str(info.value)


def test_a_redis_password_never_appears_in_the_error(our_app: OurApp) -> None:
    with pytest.raises(ValueError) as info:
        our_app([{"type": "flask-session", "store": "redis://:hunter2@host/sessions"}])
    assert "hunter2" not in str(info.value) and "['store']" in str(info.value)


def test_verifying_legacy_cookies_needs_the_old_secret_key(our_app: OurApp) -> None:
    with pytest.raises(ValueError, match=r"\[0\]: needs SECRET_KEY"):
        our_app([{"type": "flask-cookie"}], SECRET_KEY=None, CONNECT_SESSION_SECRET="x")
    # An unsigned Flask-Session cookie needs none.
    our_app(
        [{"type": "flask-session", "store": "redis://localhost/0"}],
        SECRET_KEY=None,
        CONNECT_SESSION_SECRET="x",
    )


def test_without_sources_no_request_asks_for_a_legacy_session(our_app: OurApp) -> None:
    assert not our_app([]).session_interface.core.takeover
    assert our_app([{"type": "flask-cookie"}]).session_interface.core.takeover


def test_the_readme_switch_is_valid_config(our_app: OurApp, redis_url: str) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```toml\n(\[\[CONNECT_SESSION_MIGRATE_FROM\]\].*?)```", readme, re.S)
    assert block is not None
    config = tomllib.loads(block.group(1))
    assert len(block.group(1).strip().splitlines()) == 3
    legacy_app, redis_client = flask_session_app(redis_url)
    cookie = flask_session_cookie(legacy_app)
    config["CONNECT_SESSION_MIGRATE_FROM"][0]["store"] = redis_url
    app = our_app(config["CONNECT_SESSION_MIGRATE_FROM"])
    assert read(with_cookie(app, LEGACY, cookie).get("/data"))["data"]["name"] == "Ada"


# -- prefixes, look-alike records, revoked users (issue 22) ---------------------


def revoke(app: App, user: str) -> int:
    return t.cast(int, fw.call(app, "revoke", user))


def test_an_empty_legacy_prefix_is_refused(our_app: OurApp) -> None:
    # Any key of the legacy Redis could be named by a cookie, and deleted.
    with pytest.raises(ValueError, match=re.escape("[0]['key_prefix']: must not be empty")):
        our_app([{"type": "flask-session", "store": "redis://localhost/0", "key_prefix": ""}])


@pytest.mark.parametrize(
    ("legacy", "ours"),
    [
        ("session:", "session:"),  # the mapping the old docs suggested
        ("sess", "sess:"),  # ours extends the legacy prefix
        ("sess:old:", "sess:"),  # the legacy prefix extends ours
        ("sess-user:", "sess:"),  # our user index keys
        ("sess-revoked:", "sess:"),  # our revoke records
    ],
)
def test_overlapping_prefixes_on_the_same_redis_are_refused(
    our_app: OurApp, redis_url: str, legacy: str, ours: str
) -> None:
    migrate = [{"type": "flask-session", "store": redis_url, "key_prefix": legacy}]
    with pytest.raises(ValueError, match=re.escape("[0]['key_prefix']")):
        our_app(
            migrate, store=RedisStore(redis_url, key_prefix=ours), CONNECT_SESSION_USER_KEY="u"
        )
    # The same client object, or the server under another name: the same Redis.
    client = RedisStore(redis_url).client
    with pytest.raises(ValueError, match=re.escape("[0]['key_prefix']")):
        our_app(
            [{"type": "flask-session", "store": client, "key_prefix": legacy}],
            store=RedisStore(client, key_prefix=ours),
        )
    other_name = redis_url.replace("127.0.0.1", "localhost")
    with pytest.raises(ValueError, match=re.escape("[0]['key_prefix']")):
        our_app(migrate, store=RedisStore(other_name, key_prefix=ours))
    # Another database of the same server is another keyspace.
    our_app(migrate, store=RedisStore(redis_url.rpartition("/")[0] + "/1", key_prefix=ours))


def test_a_legacy_record_that_looks_like_ours_is_never_taken_over(
    our_app: OurApp, redis_url: str
) -> None:
    """Someone who knows a raw session id of ours names it in a legacy
    cookie (unsigned): the record is one of our documents, so it is neither
    copied nor deleted, whatever its format.
    """
    import msgspec

    store = RedisStore(redis_url)
    app = our_app(
        [{"type": "flask-session", "store": redis_url, "key_prefix": "ours-too:"}], store
    )
    victim = app.test_client()
    sid = the_cookie(victim.post("/set", json={"user_id": 42}), OURS).sid
    victim.post("/set", json={"n": 1})
    document = store.get(sid)
    assert document is not None
    redis_client = store.client
    for encoded in (json.dumps(document).encode(), msgspec.msgpack.encode(document)):
        redis_client.set("ours-too:" + sid, encoded)  # as if the prefixes were one
        rv = with_cookie(app, LEGACY, sid).get("/data")
        assert read(rv)["data"] == {} and deletes(rv, LEGACY)
        assert redis_client.get("ours-too:" + sid) == encoded
    assert read(victim.get("/data"))["data"] == {"user_id": 42, "n": 1}


@pytest.mark.parametrize("kind", ["flask-session", "flask-cookie"])
def test_a_legacy_session_of_a_revoked_user_is_deleted_not_taken_over(
    our_app: OurApp, redis_url: str, kind: str
) -> None:
    """Log out everywhere reaches the sessions still waiting to be taken
    over: a legacy session naming a user who was revoked since the switch
    is deleted, not taken over. Other users' sessions are taken over.
    """
    legacy_app, redis_client = flask_session_app(redis_url)
    if kind == "flask-session":
        cookie = flask_session_cookie(legacy_app)
        migrate: list[dict[str, t.Any]] = [{"type": kind, "store": redis_url}]
    else:
        cookie = flask_cookie(PLAIN_DATA)
        migrate = [{"type": kind}]
    app = our_app(migrate, RedisStore(redis_url), CONNECT_SESSION_USER_KEY="user_id")
    other = flask_cookie({**PLAIN_DATA, "user_id": 7})
    assert revoke(app, "42") == 0  # nothing of 42's is ours yet
    rv = with_cookie(app, LEGACY, cookie).get("/data")
    assert read(rv)["data"] == {} and deletes(rv, LEGACY)
    assert set_cookies(rv, OURS) == []
    if kind == "flask-session":
        assert not redis_client.exists("session:" + cookie)
    cookie_app = our_app(
        [{"type": "flask-cookie"}], RedisStore(redis_url), CONNECT_SESSION_USER_KEY="user_id"
    )
    assert read(with_cookie(cookie_app, LEGACY, other).get("/data"))["data"]["user_id"] == 7
