"""Concurrent requests for one session, through a real gunicorn (docs/behaviour.rst,
"Concurrency"), and lazy loading measured on a real Redis (docs/behaviour.rst,
"When sessions are loaded, saved and touched").

The gunicorn tests run tests/concurrency_app.py with each built-in store kind
that a multi-threaded or multi-process server can share: the memory store
under 1 worker x 16 threads (it lives in one process), the filesystem,
Redis and SQL (PostgreSQL, MariaDB, SQLite) stores under 4 workers x 4
threads.
"""

from __future__ import annotations

import collections.abc as cabc
import concurrent.futures
import dataclasses
import json
import os
import time
import typing as t
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from flask import Flask
from flask import session

from flask_connect_session import ConnectSession
from flask_connect_session import FileSystemStore
from flask_connect_session import RedisStore
from flask_connect_session import SQLStore
from flask_connect_session import Store

from conftest import SECRET
from conftest import add_views
from gunicorn_server import GunicornServer
from server_fixtures import RedisServer

pytestmark = pytest.mark.slow

KEY = "connect.sid"
TESTS_DIR = Path(__file__).resolve().parent
#: Bound on gunicorn's start (workers booted and answering).
START_TIMEOUT = 30.0
#: Bound on any one HTTP request of these tests.
REQUEST_TIMEOUT = 20.0

#: The lost-update probe: client threads, requests (one new key each), and
#: how long each view works between loading and saving.
CLIENT_THREADS = 16
PROBE_REQUESTS = 50
PROBE_SLEEP = 0.02

#: Store kind -> (workers, threads) of its gunicorn.
LAYOUTS = {
    "memory": (1, 16),
    "filesystem": (4, 4),
    "redis": (4, 4),
    "valkey": (4, 4),
    "postgresql": (4, 4),
    "mariadb": (4, 4),
    "sqlite": (4, 4),
}


# -- gunicorn ------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """A running gunicorn over one store kind."""

    kind: str
    url: str
    workers: int
    coord_dir: Path
    #: The same store, opened in the test process (None for memory, which
    #: only the server process sees: read through its /peek view instead).
    store: Store | None

    def stored(self, sid: str) -> dict[str, t.Any] | None:
        """The document the store holds for ``sid``, or ``None``."""
        if self.store is not None:
            return self.store.get(sid)
        response = requests.get(f"{self.url}/peek/{sid}", timeout=REQUEST_TIMEOUT)
        response.raise_for_status()
        document: dict[str, t.Any] | None = response.json()["document"]
        return document

    def post(self, path: str, cookie: str | None = None, **kwargs: t.Any) -> requests.Response:
        """POST with the session cookie ``cookie`` (its raw header value)."""
        headers = {"Cookie": f"{KEY}={cookie}"} if cookie else {}
        return requests.post(
            f"{self.url}{path}", headers=headers, timeout=REQUEST_TIMEOUT, **kwargs
        )

    def get(self, path: str, cookie: str | None = None) -> requests.Response:
        headers = {"Cookie": f"{KEY}={cookie}"} if cookie else {}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=REQUEST_TIMEOUT)

    def start_session(self, data: dict[str, t.Any]) -> tuple[str, str]:
        """Create a session holding ``data``; return (raw cookie value, sid)."""
        response = self.post("/start", json=data)
        response.raise_for_status()
        cookie = session_cookie(response)
        assert cookie is not None, response.headers
        assert sid_of(cookie) == response.json()["id"]
        return cookie, sid_of(cookie)


def session_cookie(response: requests.Response) -> str | None:
    """The raw value of the session cookie the response sets, if any."""
    for header in response.raw.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == KEY:
            return rest.split(";", 1)[0]
    return None


def sid_of(cookie: str) -> str:
    """The session id in a signed cookie value (``s%3A<sid>.<sig>``)."""
    value = unquote(cookie)
    assert value.startswith("s:"), value
    return value[2:].rpartition(".")[0]


def start_gunicorn(
    kind: str,
    store_url: str,
    workers: int,
    threads: int,
    work_dir: Path,
    protect: tuple[bool, list[str]] | None = None,
) -> GunicornServer:
    """Start gunicorn over tests/concurrency_app.py; return it once every worker
    has booted and its /health answers.

    :param protect: ``CONNECT_SESSION_HASH_IDS`` and ``CONNECT_SESSION_ENCRYPT``.
    """
    coord_dir = work_dir / "coord"
    coord_dir.mkdir(exist_ok=True)
    server = GunicornServer(
        "concurrency_app:app",
        workers=workers,
        threads=threads,
        log_path=work_dir / f"gunicorn-{kind}.log",
        env={
            **os.environ,
            "CONCURRENCY_STORE_URL": store_url,
            "CONCURRENCY_COORD_DIR": str(coord_dir),
            "CONCURRENCY_PROTECT": json.dumps(protect) if protect else "",
        },
        pythonpath=[TESTS_DIR],
        cwd=work_dir,
        extra_args=[
            "--preload",  # import once, then fork: quicker on a small box
            "--graceful-timeout=3",
            "--timeout=60",
        ],
        health_path="/health",
        start_timeout=START_TIMEOUT,
    )
    return server.start()


@pytest.fixture(scope="module")
def gunicorn(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> cabc.Iterator[Gunicorns]:
    """``gunicorn(kind)``: the module's gunicorn over that store kind, started
    on first use (so one server per kind serves every test); all are stopped
    at the end of the module. ``gunicorn(kind, protect=(hash_ids, keys))``:
    another one, over a store of its own, with protection at rest.
    """
    started: dict[tuple[str, str], Target] = {}
    servers: list[GunicornServer] = []
    closers: list[cabc.Callable[[], None]] = []

    def get(kind: str, protect: tuple[bool, list[str]] | None = None) -> Target:
        name = json.dumps(protect)
        if (kind, name) in started:
            return started[kind, name]
        work_dir = tmp_path_factory.mktemp(f"gunicorn-{kind}")
        store: Store | None = None
        if kind == "memory":
            url = "memory://"
        elif kind == "filesystem":
            url = f"file://{work_dir / 'sessions'}"
            store = FileSystemStore(work_dir / "sessions")
        elif kind in ("redis", "valkey"):
            server: RedisServer = request.getfixturevalue(f"{kind}_server")
            server.start()  # no-op unless an earlier test stopped it
            url = server.url if protect is None else server.url.rsplit("/", 1)[0] + "/3"
            client = server.client() if protect is None else redis_client(url)
            closers.append(client.close)
            store = RedisStore(client)
        elif kind in ("postgresql", "mariadb", "sqlite"):
            if kind == "sqlite":
                url = f"sqlite:///{work_dir / 'sessions.db'}"
            else:
                sql_server = request.getfixturevalue(f"{kind}_server")
                sql_server.start()  # no-op unless an earlier test stopped it
                if kind == "mariadb":
                    sql_server.execute("CREATE DATABASE IF NOT EXISTS test")
                url = sql_server.url()
            sql_store = SQLStore(url)
            closers.append(sql_store.engine.dispose)
            store = sql_store
        else:
            raise ValueError(kind)
        workers, threads = LAYOUTS[kind]
        server = start_gunicorn(kind, url, workers, threads, work_dir, protect)
        servers.append(server)
        started[kind, name] = Target(kind, server.url, workers, work_dir / "coord", store)
        return started[kind, name]

    yield get
    for server in servers:
        server.stop()
    for close in closers:
        close()


class Gunicorns(t.Protocol):
    """The ``gunicorn`` fixture."""

    def __call__(self, kind: str, protect: tuple[bool, list[str]] | None = None) -> Target: ...


def redis_client(url: str) -> t.Any:
    """A redis-py client of ``url``."""
    import redis

    return redis.Redis.from_url(url)


# -- helpers for held requests -----------------------------------------------


def wait_for_files(paths: cabc.Iterable[Path], timeout: float = REQUEST_TIMEOUT) -> None:
    """Wait until every path exists (bounded)."""
    paths = list(paths)
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline:
            missing = [path.name for path in paths if not path.exists()]
            raise AssertionError(f"held requests never signalled: {missing}")
        time.sleep(0.005)


def max_overlap(intervals: cabc.Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    pairs = list(intervals)
    events = sorted(
        [(start, 1) for start, _ in pairs] + [(end, -1) for _, end in pairs],
        key=lambda event: (event[0], event[1]),  # an end before a start at a tie
    )
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


# -- 1. lost updates -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_concurrent_requests_adding_keys_lose_none(gunicorn: Gunicorns, kind: str) -> None:
    """50 concurrent requests from 16 client threads, each loading ONE session,
    working a few ms, then adding its own key: the session ends with all 50
    keys (each save merges only its changes into what is stored now), on the
    memory store (1 worker x 16 threads) and on the filesystem and Redis
    stores (4 workers x 4 threads).
    """
    target = gunicorn(kind)
    cookie, sid = target.start_session({"start": True})
    probe_all(target, cookie, sid)
    data = target.get("/data", cookie).json()["data"]
    assert_kept(kind, data)
    assert data == {"start": True, **{f"k{n}": n for n in range(PROBE_REQUESTS)}}
    document = target.stored(sid)
    assert document is not None and document["k49"] == 49


def probe_all(target: Target, cookie: str, sid: str) -> None:
    """Send the 50 concurrent ``/probe/<n>`` requests of one session; check
    that they really overlapped.
    """

    def add(n: int) -> dict[str, t.Any]:
        response = target.post(f"/probe/{n}", cookie, params={"sleep": PROBE_SLEEP})
        assert response.status_code == 200, response.text
        assert session_cookie(response) is None  # browser-session cookie: sent once
        result: dict[str, t.Any] = response.json()
        return result

    with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
        results = list(pool.map(add, range(PROBE_REQUESTS)))

    assert {r["id"] for r in results} == {sid}
    # The race was real: many requests held the session loaded and unsaved
    # at the same time.
    overlap = max_overlap((r["loaded"], r["done"]) for r in results)
    assert overlap >= 4, overlap
    if target.workers > 1:
        assert len({r["pid"] for r in results}) > 1, "one worker served every request"


def assert_kept(kind: str, data: dict[str, t.Any]) -> None:
    """Every probe's key is in ``data``."""
    kept = {f"k{n}" for n in range(PROBE_REQUESTS) if data.get(f"k{n}") == n}
    assert len(kept) == PROBE_REQUESTS, (
        f"{kind}: kept {len(kept)} of {PROBE_REQUESTS} keys; lost "
        f"{sorted({f'k{n}' for n in range(PROBE_REQUESTS)} - kept)}"
    )


#: Encryption keys of the protected runs.
NEW_KEY = "new key of the concurrency tests, 32+ characters"
OLD_KEY = "old key of the concurrency tests, 32+ characters"


@pytest.mark.parametrize("kind", ["filesystem", "memory", "redis", "sqlite"])
def test_concurrent_writes_with_protection_lose_none(gunicorn: Gunicorns, kind: str) -> None:
    """The same 50 concurrent requests with hashed ids and encryption on:
    each value is its own ciphertext, so each save still writes only its
    own key, and all 50 are kept.
    """
    target = gunicorn(kind, protect=(True, [NEW_KEY]))
    cookie, sid = target.start_session({"start": True})
    probe_all(target, cookie, sid)
    data = target.get("/data", cookie).json()["data"]
    assert_kept(kind, data)
    assert data == {"start": True, **{f"k{n}": n for n in range(PROBE_REQUESTS)}}
    if target.store is not None:
        assert target.store.get(sid) is None  # stored under its hash


@pytest.mark.parametrize("kind", ["filesystem", "redis", "sqlite", "valkey"])
def test_key_rotation_racing_with_writers_loses_none(gunicorn: Gunicorns, kind: str) -> None:
    """A session stored under the old key, holding ``k0``..``k49``; 50
    concurrent requests under the keys [new, old] each change their own key,
    and each save re-encrypts with the new key the members still under the
    old one, but only those no other request changed meanwhile: every change
    survives (a re-encryption that wrote the value it read would undo the
    others'), and after one more write nothing needs the old key.
    """
    from flask_connect_session.protect import Protection
    from flask_connect_session.protect import hash_id

    target = gunicorn(kind, protect=(True, [NEW_KEY, OLD_KEY]))
    olds = {f"k{n}": "old" for n in range(PROBE_REQUESTS)}
    cookie, sid = target.start_session({"start": True, **olds})
    store, key = target.store, hash_id(sid)
    assert store is not None
    stored = store.get(key)
    assert stored is not None
    document = Protection(True, [NEW_KEY]).open(key, stored).document
    store.set(key, Protection(True, [OLD_KEY]).seal(key, document))

    probe_all(target, cookie, sid)
    data = target.get("/data", cookie).json()["data"]
    assert_kept(kind, data)
    assert data == {"start": True, **{f"k{n}": n for n in range(PROBE_REQUESTS)}}
    assert target.post("/probe/99", cookie).status_code == 200
    stored = store.get(key)
    assert stored is not None
    assert Protection(True, [NEW_KEY]).open(key, stored).document["k99"] == 99


# -- 2. destroy wins over a concurrent save -----------------------------------


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_save_after_concurrent_destroy_does_not_resurrect(gunicorn: Gunicorns, kind: str) -> None:
    """Request A loads the session and waits; request B destroys it (logout);
    then A writes a key and ends. The store does not have the session again,
    A's response sets no cookie for it, and the old cookie starts a new,
    empty session.
    """
    target = gunicorn(kind)
    cookie, sid = target.start_session({"user": "ann"})
    token = uuid.uuid4().hex

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(target.post, f"/hold/{token}/0", cookie)
        wait_for_files([target.coord_dir / f"{token}-0.loaded"])

        logout = target.post("/destroy", cookie)
        assert logout.status_code == 200
        assert logout.json() == {"loaded_id": sid}
        assert session_cookie(logout) == ""  # the cookie is deleted
        assert target.stored(sid) is None

        (target.coord_dir / f"{token}.go").touch()
        late = held.result(timeout=REQUEST_TIMEOUT)

    assert late.status_code == 200, late.text
    assert late.json()["loaded_id"] == sid  # A really loaded it before the logout
    assert target.stored(sid) is None, "the late save brought the session back"
    assert "Set-Cookie" not in late.headers
    # The old cookie is not adopted again: a new session, without A's write.
    after = target.get("/data", cookie).json()
    assert after["id"] != sid
    assert after["data"] == {}
    assert target.stored(sid) is None


# -- 3. regenerate racing with writers ----------------------------------------

#: Writers held across the regeneration (loaded before it, saving after): at
#: most threads-per-worker - 1, so a worker full of them still serves others.
HELD_WRITERS = 3
FREE_WRITERS = 17


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_regenerate_racing_with_writers_leaves_one_live_id(gunicorn: Gunicorns, kind: str) -> None:
    """While 20 requests write keys with the old cookie, one request
    regenerates (login). Afterwards only the new id is stored, holding only
    what the login wrote: the old id is gone and no late write brought it
    back, and no request with the old cookie wrote into the new id.

    Three writers are held loaded across the regeneration (deterministic
    late saves); the other seventeen run freely around it.
    """
    target = gunicorn(kind)
    cookie, old = target.start_session({"user": "ann"})
    token = uuid.uuid4().hex

    def write(n: int) -> requests.Response:
        return target.post(f"/probe/{n}", cookie, params={"sleep": PROBE_SLEEP})

    with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS + HELD_WRITERS) as pool:
        held = [
            pool.submit(target.post, f"/hold/{token}/{n}", cookie) for n in range(HELD_WRITERS)
        ]
        wait_for_files(target.coord_dir / f"{token}-{n}.loaded" for n in range(HELD_WRITERS))
        free = [pool.submit(write, n) for n in range(FREE_WRITERS // 2)]
        login = pool.submit(target.post, "/regenerate", cookie)
        free += [pool.submit(write, n) for n in range(FREE_WRITERS // 2, FREE_WRITERS)]
        regenerated = login.result(timeout=REQUEST_TIMEOUT)
        (target.coord_dir / f"{token}.go").touch()
        held_responses = [future.result(timeout=REQUEST_TIMEOUT) for future in held]
        free_responses = [future.result(timeout=REQUEST_TIMEOUT) for future in free]

    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.json()["loaded_id"] == old
    new = regenerated.json()["id"]
    assert new != old
    new_cookie = session_cookie(regenerated)
    assert new_cookie is not None and sid_of(new_cookie) == new

    for response in held_responses + free_responses:
        assert response.status_code == 200, response.text
    for response in held_responses:
        assert response.json()["loaded_id"] == old
        assert "Set-Cookie" not in response.headers  # its save found the session gone
    for response in free_responses:
        # Loaded the old session (and merged into it or found it gone), or
        # came after the login and got a fresh session of its own.
        assert response.json()["id"] != new

    assert target.stored(old) is None, "the old id survived or was brought back"
    document = target.stored(new)
    assert document is not None, "the regenerated session is not stored"
    assert {k: v for k, v in document.items() if k != "cookie"} == {"role": "admin"}
    assert target.get("/data", new_cookie).json() == {
        "id": new,
        "data": {"role": "admin"},
    }


# -- 4. lazy loading, counted by Redis ----------------------------------------

#: get_and_touch is one GETEX (the sessions here share one lifetime); the
#: merge is one EVALSHA, and Redis counts the commands a script calls in
#: INFO commandstats too: STRLEN + GET + SET.
LOAD = {"getex": 1}
LOAD_AND_MERGE = {"getex": 1, "evalsha": 1, "strlen": 1, "get": 1, "set": 1}
#: Commands of the test's own stats connection.
OWN_COMMANDS = {"info", "config|resetstat"}


class CommandStats:
    """Reads INFO commandstats on its own, already open, connection."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client()
        self.client.ping()  # connect (and handshake) before any reset

    def reset(self) -> None:
        self.client.config_resetstat()

    def calls(self) -> dict[str, int]:
        """Calls per command since the last reset, without this connection's."""
        stats = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        return {name: n for name, n in calls.items() if name not in OWN_COMMANDS}


@pytest.fixture
def redis_stats(redis_server: RedisServer, redis_url: str) -> cabc.Iterator[CommandStats]:
    stats = CommandStats(redis_server)
    yield stats
    stats.client.close()


def test_redis_reads_of_sessions_of_different_lifetimes_are_one_round_trip(
    redis_url: str, redis_stats: CommandStats
) -> None:
    """A browser-session session and a permanent one (``max_age``) read in
    turn: each read-only request is one GETEX that gives the session its
    own lifetime, never a GETEX then a corrective EXPIRE.
    """
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=redis_url)
    app.config["PERMANENT_SESSION_LIFETIME"] = 600
    ConnectSession(app)
    add_views(app)

    @app.post("/permanent")
    def permanent() -> str:
        session["n"] = 0
        session.permanent = True
        return "ok"

    browser, remembered = app.test_client(), app.test_client()
    assert browser.post("/set", json={"n": 0}).status_code == 200
    assert remembered.post("/permanent").status_code == 200
    keys = [f"sess:{sid_of(client.get_cookie(KEY).value)}" for client in (browser, remembered)]
    assert [redis_stats.client.ttl(key) > 600 for key in keys] == [True, False]
    for _ in range(2):
        for client in (browser, remembered):
            redis_stats.reset()
            assert client.get("/get").json["data"]["n"] == 0
            assert redis_stats.calls() == LOAD


def test_redis_round_trips_per_request(redis_url: str, redis_stats: CommandStats) -> None:
    """On a real Redis: a view that never touches the session sends Redis no
    command at all (and the response no Set-Cookie and no Vary), with or
    without a session cookie; a read-only request is one round trip (the
    get_and_touch script's EVALSHA); an incrementing one is two (load, then
    the merge script).
    """
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=redis_url)
    ConnectSession(app)
    add_views(app)
    client = app.test_client()
    # Warm up: create the session, run both scripts once (redis-py loads a
    # script with SCRIPT LOAD on its first NOSCRIPT), open the connection.
    assert client.post("/set", json={"n": 0}).status_code == 200
    assert client.get("/count").json["n"] == 1
    assert client.get("/get").json["data"] == {"n": 1}

    for label, c in (("with cookie", client), ("no cookie", app.test_client())):
        redis_stats.reset()
        response = c.get("/ignore")
        assert response.text == "ignored"
        assert redis_stats.calls() == {}, label
        assert "Set-Cookie" not in response.headers, label
        assert "Vary" not in response.headers, label

    redis_stats.reset()
    response = client.get("/get")
    assert response.json["data"] == {"n": 1}
    assert redis_stats.calls() == LOAD
    assert "Set-Cookie" not in response.headers
    assert response.headers.get_all("Vary") == ["Cookie"]

    redis_stats.reset()
    assert client.get("/count").json["n"] == 2
    assert redis_stats.calls() == LOAD_AND_MERGE

    redis_stats.reset()
    assert client.get("/get").json["data"] == {"n": 2}
    assert redis_stats.calls() == LOAD
