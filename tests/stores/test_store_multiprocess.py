"""Sessions shared by the worker processes of a real gunicorn: a session
written by one worker is read by another (filesystem and Redis stores).
"""

from __future__ import annotations

import collections.abc as cabc
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

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
    procs: list[subprocess.Popen[bytes]] = []

    def start(store_url: str) -> str:
        log = tmp_path / f"gunicorn-{len(procs)}.log"
        env = {
            **os.environ,
            "SESSION_STORE_URL": store_url,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        }
        with open(log, "wb") as output:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers=2",
                    "--bind=127.0.0.1:0",  # the OS picks a free port: no race
                    "--graceful-timeout=5",
                    "multi_app:app",
                ],
                cwd=tmp_path,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            booted = len(re.findall(r"Booting worker with pid", text))
            match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
            if match and booted >= 2:
                return match.group(1)
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"gunicorn did not start:\n{log.read_text(errors='replace')}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


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
