"""Protection at rest shared with Express: a Flask app with
``CONNECT_SESSION_HASH_IDS``/``CONNECT_SESSION_ENCRYPT`` and an Express app
whose store is wrapped with ``node/protect.js`` share one cookie and one
store (Redis through connect-redis, PostgreSQL through connect-pg-simple),
both ways: data, regenerate, destroy, key rotation, hashed ids.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import json
import typing as t

import pytest
import requests
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import RedisStore
from flask_connect_session import SQLStore
from flask_connect_session import Store
from flask_connect_session.protect import Protection
from flask_connect_session.protect import hash_id

from conftest import add_views
from server_fixtures import serve_wsgi

if t.TYPE_CHECKING:
    from server_fixtures import ExpressApp

pytestmark = pytest.mark.slow

SECRET = "keyboard cat"
TIMEOUT = 10
NEW_KEY = "the new key of the interop tests, 32+ characters"
OLD_KEY = "the old key of the interop tests, 32+ characters"
SECRET_VALUE = "a value no store dump may show"
DATA: dict[str, t.Any] = {
    "user": {"name": "Zoë", "roles": ["admin"]},
    "cart": [{"sku": "A1", "qty": 2, "price": 9.99}],
    "int": 42,
    "emoji": "😀👍🏽",
    "nothing": None,
    "secret": SECRET_VALUE,
}
#: (hash_ids, keys) of each run.
MODES = {
    "hashed": (True, []),
    "encrypted": (False, [NEW_KEY]),
    "both": (True, [NEW_KEY]),
}

Protect = tuple[bool, list[str]]


class Backend:
    """One store both apps share, the Express app factory for it, and a raw
    look at what the backend holds.
    """

    def __init__(
        self,
        store: Store,
        start_express: cabc.Callable[[Protect | None], ExpressApp],
        dump: cabc.Callable[[], str],
    ) -> None:
        self.store = store
        self.start_express = start_express
        self.dump = dump


@pytest.fixture(params=["redis", "postgresql"])
def backend(request: pytest.FixtureRequest) -> cabc.Iterator[Backend]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        factory = request.getfixturevalue("express_app_factory")
        client = request.getfixturevalue("redis_server").client()
        store: Store = RedisStore(client)

        def dump() -> str:
            return "\n".join(f"{k!r} {client.get(k)!r}" for k in client.scan_iter("sess:*"))

        try:
            yield Backend(store, lambda protect: factory(url, SECRET, protect=protect), dump)
        finally:
            client.close()
        return
    server = request.getfixturevalue("postgresql_server")
    sql_store = SQLStore(request.getfixturevalue("postgresql_url"))
    sql_store.create_table()  # connect-pg-simple expects it
    factory = request.getfixturevalue("express_pg_app_factory")
    node_url = f"postgres://postgres@{server.host}:{server.port}/postgres"

    def dump_rows() -> str:
        import sqlalchemy as sa

        with sql_store.engine.connect() as conn:
            return "\n".join(repr(tuple(row)) for row in conn.execute(sa.select(sql_store.table)))

    try:
        yield Backend(
            sql_store, lambda protect: factory(node_url, SECRET, protect=protect), dump_rows
        )
    finally:
        sql_store.engine.dispose()


class Browser:
    """One cookie jar, talking to a Flask and an Express app."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def post(self, base: str, path: str, body: t.Any = None) -> dict[str, t.Any]:
        response = self.session.post(f"{base}{path}", json=body, timeout=TIMEOUT)
        response.raise_for_status()
        if not response.headers.get("Content-Type", "").startswith("application/json"):
            return {}
        return t.cast(dict[str, t.Any], response.json())

    def get(self, base: str) -> dict[str, t.Any]:
        response = self.session.get(f"{base}/get", timeout=TIMEOUT)
        response.raise_for_status()
        return t.cast(dict[str, t.Any], response.json())


@contextlib.contextmanager
def flask_app(store: Store, protect: Protect) -> cabc.Iterator[str]:
    """A Flask app on ``store`` with protection ``protect``; yields its URL."""
    app = Flask(__name__)
    hash_ids, keys = protect
    app.config.update(
        SECRET_KEY=SECRET,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_HASH_IDS=hash_ids,
        CONNECT_SESSION_ENCRYPT=keys or None,
    )
    ConnectSession(app)
    add_views(app)
    with serve_wsgi(app) as url:
        yield url


@contextlib.contextmanager
def browser() -> cabc.Iterator[Browser]:
    with requests.Session() as session:
        yield Browser(session)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_sessions_are_shared_both_ways(backend: Backend, mode: str) -> None:
    """Data written on either side is read and changed on the other; the
    store holds no session id and, encrypted, none of the data.
    """
    protect = MODES[mode]
    express = backend.start_express(protect)
    with flask_app(backend.store, protect) as flask, browser() as b:
        # Express writes, Flask reads and changes, Express reads.
        sid = b.post(express.url, "/set", DATA)["id"]
        seen = b.get(flask)
        assert seen["id"] == sid and seen["data"] == DATA
        b.post(flask, "/set", {"flask": "was here", "int": 43})
        assert b.get(express.url)["data"] == {**DATA, "flask": "was here", "int": 43}
        # Flask writes (a new session), Express reads and changes, Flask reads.
        b.session.cookies.clear()
        other = b.post(flask, "/set", DATA)["id"]
        assert b.get(express.url) | {"cookie": None} == {
            "id": other,
            "data": DATA,
            "cookie": None,
        }
        b.post(express.url, "/set", {"express": "was here"})
        assert b.get(flask)["data"] == {**DATA, "express": "was here"}
        text = backend.dump()
    hash_ids, keys = protect
    for stored_sid in (sid, other):
        assert (stored_sid in text) is not hash_ids
    assert (SECRET_VALUE in text) is not bool(keys)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_regenerate_and_destroy_on_either_side(backend: Backend, mode: str) -> None:
    protect = MODES[mode]
    express = backend.start_express(protect)
    with flask_app(backend.store, protect) as flask, browser() as b:
        first = b.post(flask, "/set", {"n": 1})["id"]
        # Express moves it to a new id (its regenerate empties the data).
        second = b.post(express.url, "/regenerate")["id"]
        assert second != first
        b.post(express.url, "/set", {"n": 2})
        assert b.get(flask) | {"new": None} == {"id": second, "data": {"n": 2}, "new": None}
        # Flask moves it on, keeping the data; Express sees the new id.
        third = b.post(flask, "/regenerate?keep=1")["id"]
        assert b.get(express.url)["id"] == third
        assert b.get(express.url)["data"] == {"n": 2}
        for gone in (first, second):
            assert backend.store.get(hash_id(gone)) is None and backend.store.get(gone) is None
        # Destroyed by Express: Flask starts a new session.
        b.post(express.url, "/destroy")
        assert b.get(flask)["data"] == {} and b.get(flask)["id"] != third
        # Destroyed by Flask: Express starts a new one.
        b.session.cookies.clear()
        fourth = b.post(express.url, "/set", {"n": 4})["id"]
        b.post(flask, "/destroy")
        assert b.get(express.url)["id"] != fourth
        assert backend.store.get(hash_id(fourth)) is None


@pytest.mark.parametrize("first_writer", ["flask", "express"])
def test_key_rotation_both_ways(backend: Backend, first_writer: str) -> None:
    """A session written under the old key is read by the other side with
    the keys [new, old]; its next write there encrypts it all with the new
    key, so the first side, now with the new key alone, still reads it.
    """
    old, rotating, new = (True, [OLD_KEY]), (True, [NEW_KEY, OLD_KEY]), (True, [NEW_KEY])
    with contextlib.ExitStack() as stack:
        b = stack.enter_context(browser())
        if first_writer == "flask":
            writer = stack.enter_context(flask_app(backend.store, old))
            rotator = backend.start_express(rotating).url
        else:
            writer = backend.start_express(old).url
            rotator = stack.enter_context(flask_app(backend.store, rotating))
        sid = b.post(writer, "/set", DATA)["id"]
        assert b.get(rotator)["data"] == DATA
        b.post(rotator, "/set", {"rotated": True})
        stored = backend.store.get(hash_id(sid))
        assert stored is not None
        document = Protection(True, [NEW_KEY]).open(hash_id(sid), stored).document
        assert document["secret"] == SECRET_VALUE and document["rotated"] is True
        reader = (
            stack.enter_context(flask_app(backend.store, new))
            if first_writer == "flask"
            else backend.start_express(new).url
        )
        assert b.get(reader)["data"] == {**DATA, "rotated": True}


def test_express_moves_a_plain_session_under_its_hash(backend: Backend) -> None:
    """Hashed ids turned on: an Express app reading a session still stored
    under its id moves it under its hash; Flask then finds it there.
    """
    protect = (True, [NEW_KEY])
    with browser() as b:
        with flask_app(backend.store, (False, [])) as plain:
            sid = b.post(plain, "/set", DATA)["id"]
        assert backend.store.get(sid) is not None
        express = backend.start_express(protect)
        assert b.get(express.url)["data"] == DATA
        assert backend.store.get(sid) is None
        assert SECRET_VALUE not in json.dumps(backend.store.get(hash_id(sid)))
        with flask_app(backend.store, protect) as flask:
            assert b.get(flask)["data"] == DATA
