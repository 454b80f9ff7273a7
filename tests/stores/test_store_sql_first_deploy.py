"""A first deploy on an empty database: several processes create the
``SQLStore`` table at the same moment, under CPU load, on real PostgreSQL,
MariaDB and SQLite. None of them may fail: no user gets a 500.
"""

from __future__ import annotations

import collections.abc as cabc
import concurrent.futures
import contextlib
import multiprocessing
import os
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest
import requests

from flask_connect_session import SQLStore
from flask_connect_session.errors import describe

from gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow

DATABASES = ["postgresql", "mariadb", "sqlite"]
TESTS_DIR = Path(__file__).resolve().parent.parent

#: Fresh databases per dialect, and processes racing to create the table in each.
ROUNDS = 4
RACERS = 8
#: Bound on one round (all racers done), and on one HTTP request.
TIMEOUT = 60.0
#: The first deploy of the issue: gunicorn workers x threads, and as many
#: simultaneous first requests.
WORKERS, THREADS = 4, 4


def _burn(stop: t.Any, deadline: float) -> None:
    # CPU load: creators are preempted mid-creation, widening every window.
    while not stop.is_set() and time.monotonic() < deadline:
        sum(range(1000))


@contextlib.contextmanager
def cpu_load(seconds: float) -> cabc.Iterator[None]:
    """Keep every core busy (bounded by ``seconds``) while the block runs."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    deadline = time.monotonic() + seconds
    burners = [
        ctx.Process(target=_burn, args=(stop, deadline)) for _ in range(os.cpu_count() or 2)
    ]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join(10)


def fresh_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database of ``kind``."""
    name = f"first_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / (name + '.db')}"
    server = request.getfixturevalue(f"{kind}_server")
    server.start()  # no-op unless an earlier test left it stopped
    server.execute(f"CREATE DATABASE {name}")
    return t.cast(str, server.url(database=name))


def _race(url: str, barrier: t.Any, results: t.Any) -> None:
    store = SQLStore(url, prune_interval=None)
    try:
        barrier.wait(timeout=TIMEOUT)
        store.set("s1", {"n": 1, "cookie": {"originalMaxAge": None, "expires": None}})
        results.put("ok")
    except BaseException as exc:
        results.put(describe(exc))
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_processes_creating_the_table_at_once_all_succeed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """:data:`RACERS` processes use a new store on the same fresh database
    at the same moment, :data:`ROUNDS` times: the first use of each creates
    the table, and none fails.
    """
    ctx = multiprocessing.get_context("fork")
    failures: list[str] = []
    with cpu_load(TIMEOUT * ROUNDS):
        for _ in range(ROUNDS):
            url = fresh_database(kind, request, tmp_path)
            barrier = ctx.Barrier(RACERS)
            results = ctx.Queue()
            racers = [
                ctx.Process(target=_race, args=(url, barrier, results)) for _ in range(RACERS)
            ]
            for racer in racers:
                racer.start()
            failures += [results.get(timeout=TIMEOUT) for _ in racers]
            for racer in racers:
                racer.join(TIMEOUT)
    failures = [outcome for outcome in failures if outcome != "ok"]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind", DATABASES)
def test_first_requests_of_a_new_deploy_all_succeed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """gunicorn, 4 workers x 4 threads, on an empty database: 16 first
    requests at the same moment each store a session, none gets a 500.
    """
    url = fresh_database(kind, request, tmp_path)
    server = GunicornServer(
        "concurrency_app:app",
        workers=WORKERS,
        threads=THREADS,
        log_path=tmp_path / "gunicorn.log",
        env={**os.environ, "CONCURRENCY_STORE_URL": url, "CONCURRENCY_COORD_DIR": str(tmp_path)},
        pythonpath=[TESTS_DIR],
        cwd=tmp_path,
        extra_args=["--preload", "--graceful-timeout=3", "--timeout=60"],
        health_path="/health",  # never touches the session, nor the database
    )
    clients = WORKERS * THREADS
    barrier = threading.Barrier(clients)

    def first_request(n: int) -> int:
        barrier.wait(timeout=TIMEOUT)
        return requests.post(f"{server.url}/start", json={"n": n}, timeout=TIMEOUT).status_code

    with server, cpu_load(TIMEOUT):
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(first_request, range(clients)))
    assert statuses == [200] * clients, server.tail(60)
    store = SQLStore(url, create_table=False, prune_interval=None)
    try:
        assert store.length() == clients
    finally:
        store.engine.dispose()


#: A table in a schema (a database, on MariaDB) that does not exist, and the
#: code each database gives for it.
NO_SUCH_SCHEMA_CODES = {"postgresql": "3F000", "mariadb": "1049", "sqlite": "SQLITE_ERROR"}


@pytest.mark.parametrize("kind", DATABASES)
def test_failed_creation_logs_the_database_error_code(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A creation that fails for good (here: no such schema) is a 500 whose
    log line names the database's own error code, which PostgreSQL's and
    SQLite's messages leave out.
    """
    from flask import Flask
    from flask import session

    from flask_connect_session import ConnectSession

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="first deploy",
        CONNECT_SESSION_STORE=fresh_database(kind, request, tmp_path),
        CONNECT_SESSION_SQL_TABLE="no_such_schema.session",
    )
    ConnectSession(app)

    @app.post("/")
    def write() -> str:
        session["n"] = 1
        return "ok"

    with caplog.at_level("ERROR", logger="flask_connect_session"):
        assert app.test_client().post("/").status_code == 500
    logged = [r.getMessage() for r in caplog.records if r.name == "flask_connect_session"]
    assert logged and all("SQLStore" in line for line in logged)
    assert f"database error {NO_SUCH_SCHEMA_CODES[kind]}" in logged[0], logged
    app.extensions["connect_session"].store.engine.dispose()
