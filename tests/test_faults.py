"""Fault injection against real servers (docs/behaviour.rst, "Errors"; issue 7).

Every test here runs a Flask app behind a real threaded WSGI server on
loopback, or a Quart app behind Hypercorn, and breaks a real backend under
it:

- redis-server is SIGKILLed and restarted in the middle of a load run (with an
  append-only file, so what was acknowledged before the kill must survive);
- the store is a "black hole" (a TCP server that accepts and never answers),
  for Redis and memcached, or Redis stops answering writes in the middle of a
  request (``CLIENT PAUSE WRITE``);
- the file system of a :class:`~flask_connect_session.FileSystemStore` runs
  out of space (a tiny tmpfs).

What must hold: the request fails with a 500 within a bounded time (the
client socket timeout, never a hang), the failure is logged on the
``flask_connect_session`` logger naming store and operation, nothing stored
before is lost or corrupted, and requests succeed again once the backend is
back, without restarting the app.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import requests
from flask import Flask

from flask_connect_session import FileSystemStore
from flask_connect_session.errors import StoreError
from flask_connect_session.signing import sign
from flask_connect_session.stores import cachelib as cachelib_store
from flask_connect_session.stores import redis as redis_store

import framework as fw
from framework import request
from framework import session
from server_fixtures import HOST
from server_fixtures import RedisServer
from server_fixtures import _in_ci
from server_fixtures import _Process
from server_fixtures import _redis_argv
from server_fixtures import _require_binary
from server_fixtures import _require_module
from server_fixtures import _unavailable

pytestmark = pytest.mark.slow

SECRET = "fault injection"
COOKIE = "connect.sid"
LOGGER = "flask_connect_session"

#: Slack on top of a socket timeout for everything else a request does
#: (thread scheduling on a loaded 2-core box, Flask's error handling).
SLACK = 1.5
#: Bound on a request that fails because the backend refuses connections.
FAST_FAILURE = 2.0
#: Client-side bound on any request: a test fails instead of hanging.
CLIENT_TIMEOUT = 20.0


# --------------------------------------------------------------------------
# A real threaded WSGI server, and the store errors it logs.
# --------------------------------------------------------------------------


class RecordList(logging.Handler):
    """Collects the records of one logger (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # Handler.handle() holds self.lock

    def messages(self) -> list[str]:
        """The formatted messages collected so far."""
        return [record.getMessage() for record in list(self.records)]


@contextlib.contextmanager
def capture_errors(name: str) -> cabc.Iterator[RecordList]:
    """Collect the ERROR records of logger ``name`` while the block runs."""
    handler = RecordList()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def store_errors() -> cabc.Iterator[RecordList]:
    """ERROR records of the ``flask_connect_session`` logger."""
    with capture_errors(LOGGER) as handler:
        yield handler


def make_app(framework: str, store_url: str, **config: t.Any) -> Flask:
    """An app over ``store_url`` with a counter view; not in testing mode, so
    an exception is a 500 as in production.
    """
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=store_url, **config)
    fw.connect(app)

    @app.post("/inc")
    def inc() -> dict[str, t.Any]:
        session["n"] = session.get("n", 0) + 1
        marker = (request.get_json(silent=True) or {}).get("marker")
        if marker is not None:
            session.setdefault("marker", marker)
        return {"id": session.id, "n": session["n"], "marker": session.get("marker")}

    @app.get("/get")
    def get() -> dict[str, t.Any]:
        return {"id": session.id, "data": dict(session), "new": session.new}

    return app


def signed_cookie(sid: str) -> dict[str, str]:
    """A validly signed cookie for ``sid``: the store is asked for it."""
    return {COOKIE: sign(sid, SECRET)}


def timed(call: cabc.Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    """Return the response of ``call()`` and the seconds it took."""
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


# --------------------------------------------------------------------------
# Backends that fail.
# --------------------------------------------------------------------------


class BlackHole:
    """A TCP server on loopback that accepts connections, reads what it is
    sent and never answers: a hung backend.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0), backlog=64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="black-hole", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
                conn.setblocking(False)
                self._conns.append(conn)
            except TimeoutError:
                pass
            except OSError:
                return
            for held in self._conns:  # swallow requests; never answer
                with contextlib.suppress(OSError):
                    held.recv(65536)

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def black_hole() -> cabc.Iterator[BlackHole]:
    """A :class:`BlackHole` on a free loopback port, closed after the test."""
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


class PersistentRedisServer(RedisServer):
    """A redis-server that fsyncs an append-only file before acknowledging
    each write, so a SIGKILL loses nothing that was acknowledged.
    """

    def _process(self, port: int) -> _Process:
        argv = _redis_argv(
            self.binary, port, self.data_dir, "--appendonly", "yes", "--appendfsync", "always"
        )
        return _Process(argv, self.data_dir / "redis-server.log")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""
        proc = self._proc
        if proc is not None and proc.popen is not None and proc.alive:
            proc.popen.send_signal(signal.SIGKILL)
            proc.popen.wait(timeout=10)
        if proc is not None:
            proc.stop()  # closes its log


@pytest.fixture
def persistent_redis(tmp_path: Path) -> cabc.Iterator[PersistentRedisServer]:
    """A :class:`PersistentRedisServer` of this test's own, stopped after it."""
    _require_module("redis", "redis")
    server = PersistentRedisServer(_require_binary("redis-server", "redis-server"), tmp_path)
    server.start()
    try:
        with server.client() as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Redis killed and restarted under load.
# --------------------------------------------------------------------------

CLIENTS = 8
WARM_UP = 1.0
OUTAGE = 1.5
AFTER_RESTART = 2.0
#: Per-client cap on requests: the loops are bounded in count as well as time.
MAX_REQUESTS = 3000


@dataclass
class Exchange:
    """One request of a load client."""

    start: float
    end: float
    status: int
    body: dict[str, t.Any] | None


@dataclass
class LoadClient:
    """A user with its own cookie jar who keeps incrementing its counter."""

    index: int
    base: str
    web: requests.Session = field(default_factory=requests.Session)
    exchanges: list[Exchange] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def marker(self) -> str:
        return f"client-{self.index}"

    def acked(self) -> list[Exchange]:
        """The exchanges answered with a 200."""
        return [e for e in self.exchanges if e.status == 200]

    def run(self, stop: threading.Event) -> None:
        """Increment the counter until ``stop`` (or :data:`MAX_REQUESTS`)."""
        try:
            for _ in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                start = time.monotonic()
                response = self.web.post(
                    f"{self.base}/inc", json={"marker": self.marker}, timeout=CLIENT_TIMEOUT
                )
                end = time.monotonic()
                body = response.json() if response.status_code == 200 else None
                self.exchanges.append(Exchange(start, end, response.status_code, body))
                if response.status_code != 200:
                    time.sleep(0.01)  # a failing backend: do not spin
        except BaseException as exc:  # reported by the test
            self.error = exc


def check_counter_history(client: LoadClient) -> tuple[str, int]:
    """Check one client's acknowledged answers; return its sid and last value.

    The sid never changes (a lost session would get a new one), the marker is
    the client's own, and each acknowledged value is above the previous one
    by one, or by more only where failed requests in between may have been
    applied without an answer (the request in flight at the kill).
    """
    sids = {e.body["id"] for e in client.acked() if e.body}
    assert len(sids) == 1, f"{client.marker}: session id changed (session lost): {sids}"
    last, unanswered = 0, 0
    for exchange in client.exchanges:
        if exchange.status != 200:
            unanswered += 1
            continue
        assert exchange.body is not None
        value = exchange.body["n"]
        assert exchange.body["marker"] == client.marker, exchange.body
        assert last < value <= last + 1 + unanswered, (
            f"{client.marker}: counter went from {last} to {value}"
            f" with {unanswered} failed requests in between"
        )
        last, unanswered = value, 0
    return sids.pop(), last


def test_redis_killed_and_restarted_under_load(
    framework: str, persistent_redis: PersistentRedisServer, store_errors: RecordList
) -> None:
    """SIGKILL redis-server mid-run, restart it on the same port: requests
    during the outage are fast 500s, each logged; after the restart they
    succeed again with the same app, and every session holds exactly what
    its client last had acknowledged.
    """
    app = make_app(framework, persistent_redis.url)
    with fw.serve(app) as base:
        clients = [LoadClient(i, base) for i in range(CLIENTS)]
        stop = threading.Event()
        threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 15
            while not all(c.acked() for c in clients):
                assert time.monotonic() < deadline, "clients did not get going"
                assert not any(c.error for c in clients), [c.error for c in clients]
                time.sleep(0.05)
            time.sleep(WARM_UP)
            killed = time.monotonic()
            persistent_redis.kill()
            time.sleep(OUTAGE)
            restarting = time.monotonic()
            persistent_redis.start()
            restarted = time.monotonic()
            time.sleep(AFTER_RESTART)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=CLIENT_TIMEOUT + 5)
        # A final read of every session through the same app.
        final = {c.index: c.web.get(f"{base}/get", timeout=CLIENT_TIMEOUT) for c in clients}

    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert not any(c.error for c in clients), [c.error for c in clients]
    exchanges = [e for c in clients for e in c.exchanges]
    assert {e.status for e in exchanges} <= {200, 500}, {e.status for e in exchanges}
    failed = [e for e in exchanges if e.status == 500]
    print(
        f"{len(exchanges)} requests, {len(failed)} failed,"
        f" {len(store_errors.records)} store errors logged"
    )

    # During the outage: failures, all of them fast.
    during = [e for e in exchanges if e.start > killed + 0.1 and e.end < restarting]
    assert during and all(e.status == 500 for e in during), "requests succeeded without Redis"
    slowest = max(e.end - e.start for e in failed)
    assert slowest < FAST_FAILURE, f"a failed request took {slowest:.2f}s"

    # After the restart: the same app serves every client again.
    after = [e for e in exchanges if e.start >= restarted]
    assert [e for e in after if e.status != 200] == [], "requests fail after the restart"
    for client in clients:
        assert any(e.start >= restarted and e.status == 200 for e in client.exchanges)

    # Each failure logged once, naming store and operation; not a flood.
    messages = store_errors.messages()
    assert len(messages) == len(failed), (len(failed), len(messages))
    assert all(f"{fw.store_name(app)}." in m and " failed " in m for m in messages), messages[:3]

    # Nothing acknowledged before (or after) the kill is lost or corrupted.
    with persistent_redis.client() as redis_client:
        keys = sorted(redis_client.scan_iter(match="sess:*"))
        stored = {key.decode()[5:]: redis_client.get(key) for key in keys}
    assert len(stored) == CLIENTS, f"{len(stored)} sessions in Redis for {CLIENTS} clients"
    for client in clients:
        sid, last = check_counter_history(client)
        document = json.loads(stored[sid])
        assert isinstance(document.get("cookie"), dict), document
        data = {k: v for k, v in document.items() if k != "cookie"}
        assert data == {"n": last, "marker": client.marker}, (client.marker, data)
        answer = final[client.index]
        assert answer.status_code == 200
        assert answer.json()["id"] == sid
        assert answer.json()["data"] == {"n": last, "marker": client.marker}


# --------------------------------------------------------------------------
# Hung backends: bounded by the socket timeout, logged once.
# --------------------------------------------------------------------------


def get_hung_session(base: str) -> tuple[requests.Response, float]:
    """GET a page that loads the session ``hung-sid``; the response and the
    seconds it took.
    """
    return timed(
        lambda: requests.get(
            f"{base}/get", cookies=signed_cookie("hung-sid"), timeout=CLIENT_TIMEOUT
        )
    )


def test_redis_black_hole_fails_within_default_socket_timeout(
    framework: str, black_hole: BlackHole, store_errors: RecordList
) -> None:
    """A Redis URL whose server never answers: the request is a 500 after
    about :data:`~flask_connect_session.stores.redis.SOCKET_TIMEOUT` seconds
    (not a hang), logged once as a failed ``RedisStore`` call.
    """
    _require_module("redis", "redis")
    app = make_app(framework, f"redis://{HOST}:{black_hole.port}/0")
    timeout = redis_store.SOCKET_TIMEOUT
    with fw.serve(app) as base, capture_errors(app.logger.name) as app_errors:
        response, elapsed = get_hung_session(base)
    assert response.status_code == 500
    assert timeout * 0.9 <= elapsed < timeout + SLACK, f"{elapsed:.2f}s"
    messages = store_errors.messages()
    assert len(messages) == 1, messages
    assert f"{fw.store_name(app)}.get_and_touch failed" in messages[0]
    assert "Timeout" in messages[0]
    # Flask logs the StoreError itself, with the backend's error chained.
    (record,) = app_errors.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], StoreError)
    assert record.exc_info[1].operation == "get_and_touch"


@pytest.mark.flask_only("the store client's own timeout: the same under Quart's worker threads")
def test_memcached_black_hole_fails_within_default_socket_timeout(
    framework: str, black_hole: BlackHole, store_errors: RecordList
) -> None:
    """The same for a ``memcached://`` URL: pymemcache's timeouts are
    :data:`~flask_connect_session.stores.cachelib.SOCKET_TIMEOUT`.
    """
    _require_module("pymemcache", "pymemcache")
    app = make_app(framework, f"memcached://{HOST}:{black_hole.port}")
    timeout = cachelib_store.SOCKET_TIMEOUT
    with fw.serve(app) as base:
        response, elapsed = get_hung_session(base)
    assert response.status_code == 500
    assert timeout * 0.9 <= elapsed < timeout + SLACK, f"{elapsed:.2f}s"
    messages = store_errors.messages()
    assert len(messages) == 1, messages
    assert f"{fw.store_name(app)}.get_and_touch failed" in messages[0]


@pytest.mark.flask_only("the store client's own timeout: the same under Quart's worker threads")
def test_postgresql_black_hole_fails_within_connect_timeout(
    framework: str,
    black_hole: BlackHole,
    store_errors: RecordList,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same for a PostgreSQL URL: a store built from it gives libpq a
    connect timeout (libpq's own default is to wait forever).
    """
    _require_module("psycopg", "psycopg[binary]")
    from flask_connect_session.stores import sql as sql_store

    monkeypatch.setattr(sql_store, "CONNECT_TIMEOUT", 2)  # libpq's minimum
    app = make_app(framework, f"postgresql+psycopg://app@{HOST}:{black_hole.port}/app")
    with fw.serve(app) as base:
        response, elapsed = get_hung_session(base)
    assert response.status_code == 500
    # pool_pre_ping and the pool's retry may connect twice.
    assert elapsed < 2 * 2 + SLACK, f"{elapsed:.2f}s"
    messages = store_errors.messages()
    assert len(messages) == 1, messages
    assert f"{fw.store_name(app)}.get_and_touch failed" in messages[0]


#: A socket timeout set in the URL, short so the cases below stay quick.
SHORT_TIMEOUT = 1.0


@pytest.mark.parametrize(
    ("case", "config", "method", "path", "cookie"),
    [
        pytest.param("load", {}, "GET", "/get", True, id="load"),
        pytest.param("load", {"CONNECT_SESSION_ROLLING": True}, "GET", "/get", True, id="rolling"),
        pytest.param("save", {}, "POST", "/inc", False, id="save-new-session"),
    ],
)
def test_redis_black_hole_fails_within_url_socket_timeout(
    framework: str,
    black_hole: BlackHole,
    store_errors: RecordList,
    case: str,
    config: dict[str, t.Any],
    method: str,
    path: str,
    cookie: bool,
) -> None:
    """``?socket_timeout=`` in the URL bounds a hung Redis: one timeout per
    request, one logged failure, whether the load or the save hangs.
    """
    _require_module("redis", "redis")
    url = (
        f"redis://{HOST}:{black_hole.port}/0"
        f"?socket_timeout={SHORT_TIMEOUT}&socket_connect_timeout={SHORT_TIMEOUT}"
    )
    app = make_app(framework, url, **config)
    cookies = signed_cookie("hung-sid") if cookie else {}
    with fw.serve(app) as base:
        response, elapsed = timed(
            lambda: requests.request(
                method, f"{base}{path}", cookies=cookies, timeout=CLIENT_TIMEOUT
            )
        )
    assert response.status_code == 500
    messages = store_errors.messages()
    operation = "get_and_touch" if case == "load" else "set"
    assert all(f"{fw.store_name(app)}.{operation} failed" in m for m in messages), messages
    assert len(messages) == 1 and elapsed < SHORT_TIMEOUT + 0.6, (
        f"one hung request: {len(messages)} failed store calls logged,"
        f" {elapsed:.2f}s for a {SHORT_TIMEOUT}s socket timeout"
    )


def test_store_hanging_while_saving(
    framework: str, redis_url: str, store_errors: RecordList
) -> None:
    """Redis stops answering writes after the session was loaded (``CLIENT
    PAUSE WRITE``): the save times out once, the request is a 500 after one
    socket timeout, the failure is logged once, and the stored session is
    left as it was.
    """
    import redis

    timeout = 1.0
    app = make_app(
        framework, f"{redis_url}?socket_timeout={timeout}&socket_connect_timeout={timeout}"
    )
    control = redis.Redis.from_url(redis_url, socket_timeout=5)

    @app.post("/inc-while-paused")
    def inc_while_paused() -> str:
        session["n"] = session.get("n", 0) + 1  # loads the session
        control.client_pause(4000, all=False)  # writes only
        return "saved?"

    try:
        with fw.serve(app) as base:
            web = requests.Session()
            assert web.post(f"{base}/inc", timeout=CLIENT_TIMEOUT).json()["n"] == 1
            response, elapsed = timed(
                lambda: web.post(f"{base}/inc-while-paused", timeout=CLIENT_TIMEOUT)
            )
            control.client_unpause()
            after = web.get(f"{base}/get", timeout=CLIENT_TIMEOUT).json()
    finally:
        with contextlib.suppress(redis.RedisError):
            control.client_unpause()
        control.close()
    assert response.status_code == 500
    assert after["data"] == {"n": 1}, "the failed save changed the stored session"
    messages = store_errors.messages()
    assert all(f"{fw.store_name(app)}.merge failed" in m for m in messages), messages
    assert len(messages) == 1 and elapsed < timeout + 0.6, (
        f"one hung save: {len(messages)} failed store calls logged,"
        f" {elapsed:.2f}s for a {timeout}s socket timeout"
    )


# --------------------------------------------------------------------------
# A full disk under FileSystemStore.
# --------------------------------------------------------------------------

TMPFS_SIZE = "256k"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> cabc.Iterator[Path]:
    """A 256 KiB tmpfs mounted for this test (needs root); unmounted after."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        _unavailable("mount/umount not found: apt-get install mount")
    point = tmp_path / "disk"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if os.geteuid() == 0 or _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield point
    finally:
        unmounted = subprocess.run([umount, str(point)], capture_output=True, timeout=30)
        if unmounted.returncode != 0:  # still busy: detach it anyway
            subprocess.run([umount, "-l", str(point)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the file system is full."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 4096
        for _ in range(1_000_000):  # bounded: far more than any tiny disk
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def session_files(directory: Path) -> dict[str, bytes]:
    """The bytes of each session file in ``directory``, by name."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name.endswith(".session")}


def test_full_disk_under_filesystem_store(
    framework: str, tiny_disk: Path, store_errors: RecordList
) -> None:
    """With no space left, writes are logged 500s; sessions stored before
    are still read, whole and unchanged (no torn or empty file, no temporary
    file left); once space is freed, writes work again.
    """
    directory = tiny_disk / "sessions"
    app = make_app(framework, f"file://{directory}")
    with fw.serve(app) as base:
        users = [requests.Session() for _ in range(4)]
        for i, web in enumerate(users):
            for _ in range(3):
                response = web.post(f"{base}/inc", json={"marker": f"u{i}"}, timeout=10)
                assert response.status_code == 200
        sids = [web.get(f"{base}/get", timeout=10).json()["id"] for web in users]
        before = session_files(directory)
        assert len(before) == len(users)

        filler = fill(tiny_disk)
        for web in users:  # a stored session cannot be rewritten
            response, elapsed = timed(functools.partial(web.post, f"{base}/inc", timeout=10))
            assert response.status_code == 500
            assert elapsed < FAST_FAILURE
        newcomer = requests.Session()  # nor can a new one be created
        assert newcomer.post(f"{base}/inc", timeout=10).status_code == 500
        for i, web in enumerate(users):  # but sessions are still read
            answer = web.get(f"{base}/get", timeout=10)
            assert answer.status_code == 200
            assert answer.json()["data"] == {"n": 3, "marker": f"u{i}"}
        assert session_files(directory) == before, "a failed write changed a session file"
        assert [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")] == []

        messages = store_errors.messages()
        assert any(f"{fw.store_name(app)}.merge failed" in m for m in messages), messages
        assert any(f"{fw.store_name(app)}.set failed" in m for m in messages), messages
        assert all("No space left on device" in m for m in messages), messages

        filler.unlink()
        for i, web in enumerate(users):
            answer = web.post(f"{base}/inc", timeout=10)
            assert answer.status_code == 200
            assert answer.json() == {"id": sids[i], "n": 4, "marker": f"u{i}"}
        assert newcomer.post(f"{base}/inc", timeout=10).json()["n"] == 1

    store = FileSystemStore(directory)
    for i, sid in enumerate(sids):
        document = store.get(sid)
        assert document is not None
        assert {k: v for k, v in document.items() if k != "cookie"} == {"n": 4, "marker": f"u{i}"}


def test_failed_save_is_not_retried_on_the_error_response(
    framework: str, redis_url: str, store_errors: RecordList
) -> None:
    """Redis stalls writes for 1.5 s and the save of a new session times out
    after 1 s: the request is a 500, so the session must not be stored
    behind the client's back, nor its cookie sent with the error page.
    """
    import redis

    timeout = 1.0
    app = make_app(
        framework, f"{redis_url}?socket_timeout={timeout}&socket_connect_timeout={timeout}"
    )
    control = redis.Redis.from_url(redis_url, socket_timeout=5)

    @app.post("/login-while-paused")
    def login_while_paused() -> str:
        session["user"] = "ann"  # a new session: no store call yet
        control.client_pause(1500, all=False)  # writes only
        return "logged in?"

    try:
        with fw.serve(app) as base:
            response = requests.post(f"{base}/login-while-paused", timeout=CLIENT_TIMEOUT)
            time.sleep(0.6)  # past the pause: anything queued has run
            stored = control.dbsize()
    finally:
        with contextlib.suppress(redis.RedisError):
            control.client_unpause()
        control.close()
    assert response.status_code == 500
    assert (stored, response.headers.get("Set-Cookie")) == (0, None), (
        "a request answered 500 stored its session and sent its cookie"
    )
    assert len(store_errors.messages()) == 1, store_errors.messages()
