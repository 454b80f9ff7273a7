"""Sessions shared by the worker processes of a real gunicorn: a session
written by one worker is read by another (filesystem and Redis stores).
"""

from __future__ import annotations

import collections.abc as cabc
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow

#: Bound on the whole exchange, gunicorn's start included.
DEADLINE = 60.0

APP = textwrap.dedent(
    """
    import os
    import time

    from flask import Flask, request, session

    from flask_connect_session import ConnectSession

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="multi-process test",
        CONNECT_SESSION_STORE=os.environ["SESSION_STORE_URL"],
    )
    ConnectSession(app)


    @app.post("/set")
    def set_values():
        session.update(request.get_json())
        return {"pid": os.getpid(), "id": session.id}


    @app.get("/get")
    def get_values():
        # Hold this worker a moment, so overlapping requests go to the other.
        time.sleep(float(request.args.get("hold", 0)))
        return {"pid": os.getpid(), "id": session.id, "data": dict(session)}
    """
)


@pytest.fixture
def gunicorn(tmp_path: Path) -> cabc.Iterator[cabc.Callable[[str], str]]:
    """Start ``gunicorn -w 2`` over :data:`APP` with a store URL; return its
    base URL. Every server started is stopped at the end.
    """
    (tmp_path / "multi_app.py").write_text(APP)
    servers: list[GunicornServer] = []

    def start(store_url: str) -> str:
        server = GunicornServer(
            "multi_app:app",
            workers=2,
            log_path=tmp_path / f"gunicorn-{len(servers)}.log",
            env={**os.environ, "SESSION_STORE_URL": store_url},
            pythonpath=[tmp_path],
            cwd=tmp_path,
            extra_args=["--graceful-timeout=5"],
        )
        servers.append(server)
        return server.start().url

    yield start
    for server in servers:
        server.stop()


def read_from_another_worker(base: str) -> None:
    deadline = time.monotonic() + DEADLINE
    web = requests.Session()
    written = web.post(f"{base}/set", json={"cart": ["book"], "n": 1}, timeout=10).json()
    writer = written["pid"]

    results: list[dict[str, object]] = []

    def get() -> None:
        response = web.get(f"{base}/get", params={"hold": 0.3}, timeout=10)
        results.append(response.json())

    while time.monotonic() < deadline:
        # Two overlapping requests: a sync worker serves one at a time, so
        # the second goes to the other worker.
        threads = [threading.Thread(target=get) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
        assert all(r["id"] == written["id"] for r in results), results
        assert all(r["data"] == {"cart": ["book"], "n": 1} for r in results), results
        if any(r["pid"] != writer for r in results):
            return
    raise AssertionError(f"no other worker than {writer} answered: {results}")


def test_filesystem_store_is_shared_by_workers(
    gunicorn: cabc.Callable[[str], str], tmp_path: Path
) -> None:
    read_from_another_worker(gunicorn(f"file://{tmp_path}/sessions"))


def test_redis_store_is_shared_by_workers(
    gunicorn: cabc.Callable[[str], str], redis_url: str
) -> None:
    read_from_another_worker(gunicorn(redis_url))
