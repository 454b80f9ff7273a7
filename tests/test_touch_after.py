"""``CONNECT_SESSION_TOUCH_AFTER``: a loaded, unmodified session's store
lifetime is extended at most once per interval, on Flask and Quart (the
``every_store`` cases over every store kind).
"""

from __future__ import annotations

import collections.abc as cabc
import time
import typing as t
from datetime import timedelta

import pytest
from flask import Flask

from flask_connect_session import Store
from flask_connect_session.cookie import format_expires
from flask_connect_session.cookie import parse_expires
from flask_connect_session.cookie import utcnow
from flask_connect_session.document import last_touch
from flask_connect_session.options import Options
from flask_connect_session.testing import CountingStore

import framework as fw
from framework import session

#: The cookie settings tried: an expiring cookie (its stored ``expires``
#: tells when it was touched) and a browser-session one (``_touched`` does).
COOKIES = {"expiring": {"max_age": 3600}, "browser-session": {}}

#: The operations that extend a store lifetime.
TOUCHING = ("touch", "get_and_touch", "merge", "set")


@pytest.fixture(params=sorted(COOKIES))
def cookie(request: pytest.FixtureRequest) -> dict[str, t.Any]:
    return COOKIES[request.param]


def touching_calls(store: CountingStore) -> dict[str, int]:
    return {op: n for op, n in store.counts.items() if op in TOUCHING}


def start(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any], interval: float
) -> tuple[t.Any, CountingStore, str]:
    counting = CountingStore(store)
    app = make_app(
        CONNECT_SESSION_STORE=counting,
        CONNECT_SESSION_COOKIE=cookie,
        CONNECT_SESSION_TOUCH_AFTER=interval,
    )

    @app.get("/destroy-behind")
    def destroy_behind() -> str:
        # Another request logs out between this one's load and its end.
        store.destroy(session.id)
        return "ok"

    client = app.test_client()
    sid = client.post("/set", json={"a": 1}).json["id"]
    counting.reset()
    return client, counting, sid


def age(store: Store, sid: str, seconds: float) -> None:
    """Rewrite the stored session as if last touched ``seconds`` ago."""
    document = store.get(sid)
    assert document is not None
    cookie = document["cookie"]
    if cookie["expires"] is None:
        document["_touched"] = int((time.time() - seconds) * 1000)
    else:
        expires = utcnow() + timedelta(milliseconds=cookie["originalMaxAge"], seconds=-seconds)
        cookie["expires"] = format_expires(expires)
    store.set(sid, document)


def test_reads_within_the_interval_do_not_touch(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any]
) -> None:
    client, counting, sid = start(make_app, store, cookie, 60)
    before = store.get(sid)
    for _ in range(3):
        response = client.get("/get")
        assert response.json == {"data": {"a": 1}, "id": sid, "new": False}
    assert counting.counts["get"] == 3
    assert touching_calls(counting) == {}
    assert store.get(sid) == before


@pytest.mark.every_store
def test_a_read_after_the_interval_touches_once(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any]
) -> None:
    client, counting, sid = start(make_app, store, cookie, 60)
    age(store, sid, 120)
    aged = store.get(sid)
    assert aged is not None
    counting.reset()
    client.get("/get")
    assert touching_calls(counting) == {"merge": 1}
    touched = store.get(sid)
    assert touched is not None
    touch = last_touch(touched, store.ttl)
    assert touch is not None and abs(time.time() * 1000 - touch[0]) < 5000
    if cookie:  # the stored expiry moved on with the store lifetime
        old, new = (
            parse_expires(aged["cookie"]["expires"]),
            parse_expires(touched["cookie"]["expires"]),
        )
        assert old is not None and new is not None
        assert (new - old).total_seconds() > 110
    # Only the cookie (and the touch time) changed; the next read is fresh.
    assert {k: v for k, v in touched.items() if k not in ("cookie", "_touched")} == {"a": 1}
    counting.reset()
    assert client.get("/get").json["data"] == {"a": 1}
    assert touching_calls(counting) == {}


@pytest.mark.every_store
def test_an_expired_interval_touch_never_resurrects(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any]
) -> None:
    """A session destroyed between the load and the touch stays destroyed."""
    client, counting, sid = start(make_app, store, cookie, 60)
    age(store, sid, 120)
    response = client.get("/destroy-behind")
    assert response.status_code == 200
    assert store.get(sid) is None


def test_changes_are_saved_within_the_interval(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any]
) -> None:
    client, counting, sid = start(make_app, store, cookie, 60)
    client.post("/set", json={"b": 2})
    assert touching_calls(counting) == {"merge": 1}
    counting.reset()
    assert client.get("/get").json["data"] == {"a": 1, "b": 2}
    assert touching_calls(counting) == {}


def test_zero_touches_on_every_read(
    make_app: cabc.Callable[..., Flask], store: Store, cookie: dict[str, t.Any]
) -> None:
    """The default keeps express-session's touch on every request."""
    client, counting, sid = start(make_app, store, cookie, 0)
    for _ in range(2):
        client.get("/get")
    assert sum(touching_calls(counting).values()) == 2
    assert "merge" not in counting.counts


def test_the_touch_time_is_not_session_data(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    client, counting, sid = start(make_app, store, {}, 60)
    stored = store.get(sid)
    assert stored is not None and isinstance(stored["_touched"], int)
    assert client.get("/get").json["data"] == {"a": 1}
    with pytest.raises(KeyError, match="reserved"):
        client.post("/set", json={"_touched": 1})


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (60, 60.0), (1.5, 1.5), (timedelta(minutes=5), 300.0)]
)
def test_option_parses_seconds(value: object, expected: float) -> None:
    config = Flask(__name__).config
    config["CONNECT_SESSION_TOUCH_AFTER"] = value
    assert Options.from_config(config).touch_after == expected


@pytest.mark.parametrize("value", [-1, "60", None, True, float("nan")])
def test_bad_option_names_the_key(value: object) -> None:
    config = Flask(__name__).config
    config["CONNECT_SESSION_TOUCH_AFTER"] = value
    with pytest.raises(ValueError, match="CONNECT_SESSION_TOUCH_AFTER"):
        Options.from_config(config)


@pytest.mark.parametrize(
    "config",
    [
        {"CONNECT_SESSION_COOKIE": {"max_age": 2}},
        {"CONNECT_SESSION_TTL": 2},
        {"CONNECT_SESSION_TTL": 2, "CONNECT_SESSION_ROLLING": True},
    ],
    ids=["expiring", "browser-session", "rolling"],
)
def test_an_interval_longer_than_the_lifetime_never_logs_an_active_user_out(
    framework: str,
    config: dict[str, t.Any],
) -> None:
    """With an interval as long as the session's lifetime, an active session
    is still touched in time: the interval counts as at most half of it.
    """
    from flask_connect_session import MemoryStore

    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY="s",
        TESTING=True,
        CONNECT_SESSION_STORE="memory://",
        CONNECT_SESSION_TOUCH_AFTER=10,
        **config,
    )
    fw.connect(app)
    assert isinstance(fw.sync_store_of(app), MemoryStore)

    @app.get("/write")
    def write() -> str:
        session["a"] = 1
        return "ok"

    @app.get("/read")
    def read() -> str:
        return str(session.get("a"))

    client = app.test_client()
    client.get("/write")
    for _ in range(3):  # each read within the lifetime of the previous one
        time.sleep(1.2)
        assert client.get("/read").text == "1"
