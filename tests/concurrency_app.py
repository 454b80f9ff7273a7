"""The WSGI app that tests/test_concurrency.py runs under a real gunicorn.

Configured by environment variables, read at import:

``CONCURRENCY_STORE_URL``
    the ``CONNECT_SESSION_STORE`` URL (``memory://``, ``file:///dir``,
    ``redis://...``).
``CONCURRENCY_COORD_DIR``
    a directory the test and the ``/hold`` view share to order requests
    across processes: the view creates ``<token>-<n>.loaded`` once it has
    loaded the session, then waits for ``<token>.go`` before writing.
``CONCURRENCY_PROTECT``
    optional JSON ``[hash_ids, [key, ...]]``: ``CONNECT_SESSION_HASH_IDS``
    and ``CONNECT_SESSION_ENCRYPT``.
"""

from __future__ import annotations

import json
import os
import time
import typing as t
from pathlib import Path

from flask import Flask
from flask import abort
from flask import current_app
from flask import request
from flask import session

from flask_connect_session import ConnectSession

#: Longest a ``/hold`` request waits for its go signal (a broken test must
#: not pin a worker thread for gunicorn's whole timeout).
HOLD_TIMEOUT = 15.0

COORD_DIR = Path(os.environ.get("CONCURRENCY_COORD_DIR", "."))

app = Flask(__name__)
app.config.update(
    SECRET_KEY="concurrency test",
    TESTING=True,  # no MemoryStore warning
    CONNECT_SESSION_STORE=os.environ.get("CONCURRENCY_STORE_URL", "memory://"),
)
if os.environ.get("CONCURRENCY_PROTECT"):
    hash_ids, keys = json.loads(os.environ["CONCURRENCY_PROTECT"])
    app.config.update(CONNECT_SESSION_HASH_IDS=hash_ids, CONNECT_SESSION_ENCRYPT=keys)
ConnectSession(app)


@app.get("/health")
def health() -> str:
    """Readiness probe; never touches the session."""
    return "ok"


@app.post("/start")
def start() -> dict[str, t.Any]:
    """Create the session with the JSON body as its data."""
    session.update(request.get_json())
    return {"id": session.id}


@app.post("/probe/<int:n>")
def probe(n: int) -> dict[str, t.Any]:
    """Read the session, work a moment (widening the race window), then add
    the key ``k<n>``. Reports when the session was loaded and when the view
    ended, in server time, so the test can tell how many requests overlapped.
    """
    session.get("start")
    loaded = time.time()
    time.sleep(float(request.args.get("sleep", "0.01")))
    session[f"k{n}"] = n
    return {"id": session.id, "pid": os.getpid(), "loaded": loaded, "done": time.time()}


@app.post("/hold/<token>/<int:n>")
def hold(token: str, n: int) -> dict[str, t.Any]:
    """Load the session, say so with a file, wait for the test's go file,
    then write ``held<n>``: the write is saved after whatever the test did
    in between.
    """
    loaded_id = session.id
    (COORD_DIR / f"{token}-{n}.loaded").touch()
    go = COORD_DIR / f"{token}.go"
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not go.exists():
        if time.monotonic() > deadline:
            abort(504, "no go signal")
        time.sleep(0.005)
    session[f"held{n}"] = n
    return {"id": session.id, "loaded_id": loaded_id, "pid": os.getpid()}


@app.get("/data")
def data() -> dict[str, t.Any]:
    """The session's id and data."""
    return {"id": session.id, "data": dict(session)}


@app.post("/destroy")
def destroy() -> dict[str, t.Any]:
    """Log out: destroy the session."""
    loaded_id = session.id
    session.destroy()
    return {"loaded_id": loaded_id}


@app.post("/regenerate")
def regenerate() -> dict[str, t.Any]:
    """Log in: move the session to a new id (data emptied) and write there."""
    loaded_id = session.id
    session.regenerate()
    session["role"] = "admin"
    return {"loaded_id": loaded_id, "id": session.id}


@app.get("/peek/<sid>")
def peek(sid: str) -> dict[str, t.Any]:
    """The stored document of ``sid`` (``null`` if none), straight from the
    store; for the memory store, which only this process can see.
    """
    store = current_app.extensions["connect_session"].store
    return {"document": store.get(sid)}
