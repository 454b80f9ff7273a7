"""What is Quart's own: async views awaiting the session methods and the
per-user API, the session read when the request starts, a store failure
raised in the app's dispatch, websockets, Quart's own test client, the
``quart session`` commands under an event loop, a Flask and a Quart app on
one Redis, and concurrent requests through a real ASGI server (Hypercorn).

The behaviour both frameworks share is tested on both by the other modules
(see :mod:`framework`).
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextlib
import json
import logging
import subprocess
import sys
import typing as t
from pathlib import Path
from urllib.parse import unquote

import pytest
import redis
import requests
from quart import Quart
from quart import request
from quart import session
from quart import websocket

from flask_connect_session import MemoryStore
from flask_connect_session import SessionNotFound
from flask_connect_session import StoreError
from flask_connect_session import session_created
from flask_connect_session.protect import hash_id
from flask_connect_session.quart import QuartConnectSession
from flask_connect_session.quart import QuartSession
from flask_connect_session.signing import sign
from flask_connect_session.stores.base import AsyncStore
from flask_connect_session.stores.base import Document
from flask_connect_session.stores.base import apply_changes
from flask_connect_session.stores.redis_asyncio import AsyncRedisStore

import framework as fw
from async_bridge import loop
from conftest import SECRET
from conftest import add_views

KEY = "connect.sid"
TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent

#: Protection at rest (docs/protection.rst), with the user index.
PROTECTED = {
    "CONNECT_SESSION_HASH_IDS": True,
    "CONNECT_SESSION_ENCRYPT": "a key of at least thirty-two characters, for the tests",
    "CONNECT_SESSION_USER_KEY": "user",
}


def quart_app(**config: t.Any) -> Quart:
    """A Quart app with async views over the session's coroutine API."""
    app = Quart(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE="memory://")
    app.config.update(config)
    ext = QuartConnectSession(app)

    @app.post("/set")
    async def set_() -> dict[str, t.Any]:
        session.update(await request.get_json())
        return {"id": session.id, "data": dict(session)}

    @app.get("/get")
    async def get() -> dict[str, t.Any]:
        return {"id": session.id, "data": dict(session), "new": session.new}

    @app.post("/login/<user>")
    async def login(user: str) -> dict[str, t.Any]:
        await session.regenerate()
        session["user_id"] = user
        return {"id": session.id}

    @app.post("/logout")
    async def logout() -> str:
        await session.destroy()
        session["flash"] = "bye"  # a new session, as in Flask
        return session.id

    @app.post("/save-then-reload")
    async def save_then_reload() -> dict[str, t.Any]:
        session["saved"] = 1
        await session.save()
        session["unsaved"] = 2
        await session.reload()
        return {"data": dict(session)}

    @app.post("/touch")
    async def touch() -> dict[str, t.Any]:
        before = session.cookie.expires
        session.touch()  # plain: it changes the cookie only
        return {"moved": session.cookie.expires != before}

    @app.get("/devices")
    async def devices() -> dict[str, t.Any]:
        infos = await ext.user_sessions(session["user_id"])
        return {"current": [info.current for info in infos]}

    @app.post("/revoke")
    async def revoke() -> dict[str, int]:
        keep = request.args.get("keep") == "1"
        return {"revoked": await ext.revoke(session["user_id"], keep_current=keep)}

    return app


def run(coroutine: cabc.Coroutine[t.Any, t.Any, t.Any]) -> t.Any:
    """Run a test coroutine in the test event loop (where the apps' stores
    live, as in a served app).
    """
    return loop().run(coroutine)


def sid_of(cookie: str) -> str:
    return unquote(cookie)[2:].rpartition(".")[0]


# -- the session's coroutine API, in async views ---------------------------------


def test_async_views_await_the_session_methods() -> None:
    """``await session.regenerate()``, ``destroy()``, ``save()`` and
    ``reload()``; ``session.touch()`` is plain.
    """
    app = quart_app(CONNECT_SESSION_COOKIE={"max_age": 600})

    async def scenario() -> None:
        client = app.test_client()
        first = await (await client.post("/set", json={"a": 1})).get_json()
        login = await (await client.post("/login/ann")).get_json()
        assert login["id"] != first["id"]
        seen = await (await client.get("/get")).get_json()
        assert seen == {"id": login["id"], "data": {"user_id": "ann"}, "new": False}
        reloaded = await (await client.post("/save-then-reload")).get_json()
        assert reloaded["data"] == {"user_id": "ann", "saved": 1}
        await asyncio.sleep(0.01)
        assert (await (await client.post("/touch")).get_json()) == {"moved": True}
        response = await client.post("/logout")
        new = await response.get_data(as_text=True)
        assert new != login["id"]
        cookies = response.headers.getlist("Set-Cookie")
        assert len(cookies) == 1 and sid_of(cookies[0].split(";")[0].split("=", 1)[1]) == new

    run(scenario())


def test_reload_of_a_removed_session_raises() -> None:
    app = quart_app()

    @app.get("/gone")
    async def gone() -> str:
        await app.session_interface.store.destroy(session.id)
        with pytest.raises(SessionNotFound):
            await session.reload()
        return "ok"

    async def scenario() -> None:
        client = app.test_client()
        await client.post("/set", json={"a": 1})
        assert await (await client.get("/gone")).get_data(as_text=True) == "ok"

    run(scenario())


def test_the_per_user_api_is_async() -> None:
    app = quart_app(CONNECT_SESSION_USER_KEY="user_id")
    ext = app.extensions["connect_session"]

    async def scenario() -> None:
        phone, laptop = app.test_client(), app.test_client()
        await phone.post("/login/ann")
        await laptop.post("/login/ann")
        devices = await (await laptop.get("/devices")).get_json()
        assert sorted(devices["current"]) == [False, True]
        async with app.app_context():
            assert len(await ext.user_sessions("ann")) == 2
        revoked = await (await laptop.post("/revoke?keep=1")).get_json()
        assert revoked == {"revoked": 1}
        assert (await (await phone.get("/get")).get_json())["data"] == {}
        async with app.app_context():
            assert [info.current for info in await ext.user_sessions("ann")] == [False]
            assert await ext.revoke("ann") == 1
            assert await ext.user_sessions("ann") == []

    run(scenario())


def test_signals_have_the_quart_app_as_sender() -> None:
    app = quart_app()
    sent: list[tuple[object, t.Any]] = []

    def receiver(sender: object, **kwargs: t.Any) -> None:
        sent.append((sender, kwargs["session"]))

    session_created.connect(receiver, app)
    try:
        run(app.test_client().post("/set", json={"a": 1}))
    finally:
        session_created.disconnect(receiver, app)
    [(sender, created)] = sent
    assert sender is app and isinstance(created, QuartSession) and created["a"] == 1


# -- when the store is read, and when it fails --------------------------------------


class FailingReads(MemoryStore):
    """A memory store whose reads fail while ``down``."""

    down = False

    def get_and_touch(self, sid: str) -> Document | None:
        if self.down:
            raise ConnectionError("backend unreachable")
        return super().get_and_touch(sid)


def test_a_failed_read_reaches_the_error_handlers_before_any_hook() -> None:
    """Quart opens the session before its error handling: the failure is
    raised again first in the dispatch, so the app's own
    ``before_request`` hooks never see a session that failed to load, and
    ``@app.errorhandler(StoreError)`` handles it as in Flask.
    """
    store = FailingReads()
    app = quart_app(CONNECT_SESSION_STORE=store)
    hooks: list[str] = []

    @app.before_request
    async def hook() -> None:
        hooks.append(request.path)

    @app.errorhandler(StoreError)
    async def unavailable(exc: StoreError) -> tuple[str, int]:
        return f"sessions down: {exc.operation}", 503

    async def scenario() -> None:
        client = app.test_client()
        await client.post("/set", json={"a": 1})
        store.down = True
        response = await client.get("/get")
        assert response.status_code == 503
        assert await response.get_data(as_text=True) == "sessions down: get_and_touch"
        assert "Set-Cookie" not in response.headers
        store.down = False
        assert (await (await client.get("/get")).get_json())["data"] == {"a": 1}

    run(scenario())
    assert hooks == ["/set", "/get"]  # not the failed request


def test_an_unhandled_read_failure_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    store = FailingReads()
    app = quart_app(CONNECT_SESSION_STORE=store, TESTING=False)

    async def scenario() -> int:
        client = app.test_client()
        await client.post("/set", json={"a": 1})
        store.down = True
        return (await client.get("/get")).status_code

    with caplog.at_level(logging.ERROR):
        assert run(scenario()) == 500
    store_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_connect_session" and r.levelno == logging.ERROR
    ]
    assert store_lines and "get_and_touch failed" in store_lines[0]
    handled = [r for r in caplog.records if r.exc_info and r.exc_info[0] is StoreError]
    assert handled, "Quart's 500 handling logged no StoreError"


def test_quarts_own_test_client_and_session_transaction() -> None:
    app = quart_app()

    async def scenario() -> None:
        client = app.test_client()
        async with client.session_transaction() as sess:
            sess["answer"] = 42
        seen = await (await client.get("/get")).get_json()
        assert seen["data"] == {"answer": 42} and seen["new"] is False
        async with client.session_transaction() as sess:
            assert sess["answer"] == 42

    run(scenario())


def test_a_websocket_reads_and_saves_its_session() -> None:
    """A websocket's session is the cookie's; a change is saved when the
    websocket closes (there is no response to carry a new cookie).
    """
    app = quart_app()

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.send(json.dumps(dict(session)))
        session["seen"] = await websocket.receive()

    async def scenario() -> None:
        client = app.test_client()
        sid = (await (await client.post("/set", json={"a": 1})).get_json())["id"]
        async with client.websocket("/ws") as socket:
            assert json.loads(await socket.receive()) == {"a": 1}
            await socket.send("hello")
        for _ in range(100):  # saved as the websocket's task ends
            stored = await app.session_interface.store.get(sid)
            if stored.get("seen") == "hello":
                break
            await asyncio.sleep(0.01)
        assert stored["seen"] == "hello"

    run(scenario())


# -- the ``quart session`` commands ---------------------------------------------------


class DictStore(AsyncStore):
    """An asyncio store of one's own, over a dict (no synchronous store
    behind it): the commands reach it through the event loop.
    """

    def __init__(self) -> None:
        self.entries: dict[str, Document] = {}
        self.loops: set[asyncio.AbstractEventLoop] = set()

    async def get(self, sid: str) -> Document | None:
        self.loops.add(asyncio.get_running_loop())
        document = self.entries.get(sid)
        return None if document is None else json.loads(json.dumps(document))

    async def set(self, sid: str, session: Document) -> None:
        self.entries[sid] = json.loads(json.dumps(session))

    async def destroy(self, sid: str) -> bool | None:
        return self.entries.pop(sid, None) is not None

    async def merge(self, sid: str, changes: t.Any, removed: t.Any) -> bool:
        if sid not in self.entries:
            return False
        apply_changes(self.entries[sid], changes, removed)
        return True

    async def all(self) -> dict[str, Document]:
        self.loops.add(asyncio.get_running_loop())
        return {sid: dict(document) for sid, document in self.entries.items()}

    async def length(self) -> int:
        return len(self.entries)


def test_commands_on_an_asyncio_store_of_ones_own() -> None:
    store = DictStore()
    app = quart_app(CONNECT_SESSION_STORE=store)
    run(app.test_client().post("/set", json={"a": 1}))
    sid = next(iter(store.entries))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["session", "count"]).output == "1\n"
    listed = runner.invoke(args=["session", "list", "--json"])
    assert [row["id"] for row in json.loads(listed.output)] == [sid]
    shown = runner.invoke(args=["session", "show", sign(sid, SECRET)])
    assert json.loads(shown.output)["a"] == 1
    unable = runner.invoke(args=["session", "clear", "--yes"])
    assert unable.exit_code == 0 and unable.output == "cleared 1 session(s)\n"
    missing = runner.invoke(args=["session", "delete", sid])
    assert missing.exit_code == 1 and "no session" in missing.output
    assert "DictStore" in missing.output  # named as the app's store is


@pytest.mark.parametrize("url", ["redis_url", "postgresql_url", "sqlite_url"])
def test_commands_on_the_asyncio_stores_a_url_builds(
    request: pytest.FixtureRequest, url: str
) -> None:
    """On an asyncio Redis or SQL store, whose connections belong to the
    event loop that opened them, the commands work in the process that
    served requests, one after another: each opens its own connections.
    """
    app = quart_app(CONNECT_SESSION_STORE=request.getfixturevalue(url))
    run(app.test_client().post("/set", json={"a": 1}))  # in the serving loop
    runner = app.test_cli_runner()
    counted = runner.invoke(args=["session", "count"])
    assert (counted.exit_code, counted.output) == (0, "1\n")
    listed = runner.invoke(args=["session", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    shown = runner.invoke(args=["session", "show", row["id"]])
    assert json.loads(shown.output)["a"] == 1
    cleared = runner.invoke(args=["session", "clear", "--yes"])
    assert (cleared.exit_code, cleared.output) == (0, "cleared 1 session(s)\n")
    assert run(app.test_client().get("/get")).status_code == 200  # the app's own still work


def test_commands_run_in_an_event_loop_even_from_async_code() -> None:
    """The commands run their store's coroutines in an event loop of their
    own, also when invoked from code already running one (Quart's CLI runs
    its app context in one).
    """
    store = DictStore()
    app = quart_app(CONNECT_SESSION_STORE=store)
    run(app.test_client().post("/set", json={"a": 1}))

    async def from_a_running_loop() -> t.Any:
        return app.test_cli_runner().invoke(args=["session", "list"])

    result = run(from_a_running_loop())
    assert result.exit_code == 0 and next(iter(store.entries)) in result.output
    # Not the loop the caller blocks (which would hang), one of its own.
    assert store.loops and loop().loop not in store.loops


def test_the_quart_command_line(tmp_path: Path, redis_url: str) -> None:
    """``quart --app ... session`` as a user runs it, in a process of its
    own, on a Redis URL with hashed ids and encryption: it finds the session
    another app stored under its id's hash and shows it decrypted.
    """
    config = {"SECRET_KEY": SECRET, "CONNECT_SESSION_STORE": redis_url, **PROTECTED}
    app = fw.new_app("flask")
    app.config.update(config, TESTING=True)
    fw.connect(app)
    add_views(app)
    sid = app.test_client().post("/set", json={"user": "ann", "cart": [1, 2]}).json["id"]
    app_file = tmp_path / "sessions_app.py"
    app_file.write_text(
        "from quart import Quart\n"
        "from flask_connect_session.quart import QuartConnectSession\n"
        "app = Quart(__name__)\n"
        f"app.config.update({config!r})\n"
        "QuartConnectSession(app)\n"
    )
    command = [sys.executable, "-m", "quart", "--app", "sessions_app", "session"]

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    done = invoke("count")
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    done = invoke("show", sid)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cart"] == [1, 2]
    done = invoke("--help")
    for name in (
        "count",
        "list",
        "show",
        "delete",
        "clear",
        "prune",
        "revoke",
        "create-table",
        "gen-key",
    ):
        assert name in done.stdout


# -- the store's connections at shutdown --------------------------------------------


async def connection_id(store: t.Any) -> int:
    """The server's id of the connection the store's next call uses (Redis'
    client id, PostgreSQL's backend pid): the same while the store keeps
    its connections open, a new one once it closed them.
    """
    if isinstance(store, AsyncRedisStore):
        return t.cast(int, await store.client.client_id())
    import sqlalchemy as sa

    async with store.engine.connect() as conn:
        return t.cast(int, await conn.scalar(sa.text("SELECT pg_backend_pid()")))


@pytest.mark.parametrize("kind", ["redis", "postgresql", "given"])
def test_a_store_built_from_a_url_is_closed_when_the_app_stops_serving(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The asyncio store the app built from its URL has its connections
    closed when the app stops serving (``after_serving``); a store passed
    in (``given``) is the user's, and left open.
    """
    url = request.getfixturevalue("postgresql_url" if kind == "postgresql" else "redis_url")
    given = AsyncRedisStore(url) if kind == "given" else None
    app = quart_app(CONNECT_SESSION_STORE=given or url)
    store = app.session_interface.store

    async def scenario() -> bool:
        async with app.test_app() as served:
            await served.test_client().post("/set", json={"a": 1})
            serving = await connection_id(store)
        try:
            return await connection_id(store) == serving
        finally:
            # The test's own clean-up (the given store is ``store``).
            await (store.aclose() if isinstance(store, AsyncRedisStore) else store.dispose())

    assert run(scenario()) is (kind == "given")


# -- Flask and Quart on one Redis ---------------------------------------------------


@pytest.mark.parametrize("protected", [False, True], ids=["plain", "protected"])
@pytest.mark.parametrize("first", ["flask", "quart"])
def test_flask_and_quart_apps_share_sessions_on_one_redis(
    redis_url: str, first: str, protected: bool
) -> None:
    """A session one app writes, the other reads, changes and ends: one
    cookie, one stored document, both directions; with the same protection
    at rest, one document under the id's hash, encrypted.
    """
    config = PROTECTED if protected else {}
    apps = {}
    for framework in ("flask", "quart"):
        app = fw.new_app(framework)
        app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=redis_url)
        app.config.update(config)
        fw.connect(app)
        add_views(app)
        apps[framework] = app
    second = "quart" if first == "flask" else "flask"
    writer = apps[first].test_client(use_cookies=False)
    reader = apps[second].test_client(use_cookies=False)
    response = writer.post("/set", json={"user": "ann", "cart": [1, 2]})
    cookie = {"Cookie": response.headers["Set-Cookie"].split(";")[0]}
    sid = response.json["id"]
    seen = reader.get("/get", headers=cookie).json
    assert seen == {"data": {"user": "ann", "cart": [1, 2]}, "id": sid, "new": False}
    reader.post("/set", json={"cart": [1, 2, 3]}, headers=cookie)
    assert writer.get("/get", headers=cookie).json["data"]["cart"] == [1, 2, 3]
    with redis.Redis.from_url(redis_url) as client:
        stored = client.get(f"sess:{hash_id(sid) if protected else sid}")
        # Every key, value and user index member the two apps wrote.
        written = [
            (key, client.get(key) if client.type(key) == b"string" else client.zrange(key, 0, -1))
            for key in client.scan_iter()
        ]
    assert stored is not None and (b"[1,2,3]" in stored) is not protected
    assert (sid in repr(written)) is not protected
    renewed = reader.post("/regenerate?keep=1", headers=cookie)
    cookie = {"Cookie": renewed.headers["Set-Cookie"].split(";")[0]}
    assert writer.get("/get", headers=cookie).json["id"] == renewed.json["id"] != sid
    writer.post("/destroy", headers=cookie)
    assert reader.get("/get", headers=cookie).json["new"] is True


# -- concurrency through a real ASGI server ------------------------------------------


@pytest.fixture
def hypercorn() -> cabc.Iterator[cabc.Callable[[Quart], str]]:
    """``serve(app) -> base URL``: serve a Quart app with Hypercorn on a free
    loopback port until the test ends.
    """
    with contextlib.ExitStack() as servers:
        yield lambda app: servers.enter_context(fw.serve_asgi(app))


#: Concurrent requests of one session, each adding its own key.
WRITES = 50


@pytest.mark.parametrize("kind", ["memory", "filesystem", "redis", "postgresql"])
def test_concurrent_writes_of_distinct_keys_all_survive(
    kind: str, request: pytest.FixtureRequest, hypercorn: cabc.Callable[[Quart], str]
) -> None:
    """50 requests of one session at once, behind Hypercorn, each loading it,
    waiting, then adding its own key: every key is kept (the saves merge
    the keys each request changed onto what is stored).
    """
    url = {
        "memory": lambda: "memory://",
        "filesystem": lambda: f"file://{request.getfixturevalue('tmp_path')}",
        "redis": lambda: request.getfixturevalue("redis_url"),
        "postgresql": lambda: request.getfixturevalue("postgresql_url"),
    }[kind]()
    app = quart_app(CONNECT_SESSION_STORE=url)
    loaded = asyncio.Event()
    arrived = 0

    @app.post("/add/<int:n>")
    async def add(n: int) -> dict[str, t.Any]:
        nonlocal arrived
        session.get("start")  # loaded when the request started
        arrived += 1
        if arrived >= 10:
            loaded.set()
        await asyncio.wait_for(loaded.wait(), 10)  # the first ten overlap for sure
        session[f"k{n}"] = n
        return {"id": session.id}

    base = hypercorn(app)
    with requests.Session() as http:
        started = http.post(f"{base}/set", json={"start": True}, timeout=20)
        cookie = started.headers["Set-Cookie"].split(";")[0]
        sid = started.json()["id"]

        def add_key(n: int) -> str:
            response = requests.post(f"{base}/add/{n}", headers={"Cookie": cookie}, timeout=20)
            response.raise_for_status()
            return t.cast(str, response.json()["id"])

        with concurrent.futures.ThreadPoolExecutor(WRITES) as pool:
            ids = list(pool.map(add_key, range(WRITES)))
        assert set(ids) == {sid}
        data = http.get(f"{base}/get", headers={"Cookie": cookie}, timeout=20).json()["data"]
    assert data == {"start": True, **{f"k{n}": n for n in range(WRITES)}}
