"""Cost of the per-user index (CONNECT_SESSION_USER_KEY) on a real Redis.

1. Store round trips of a read-only request, indexed vs unindexed, counted
   by Redis itself (``INFO commandstats``), in steady state and on the one
   request per minute that records "last seen".
2. ``user_sessions()`` of a user with 10 sessions among 100,000 stored
   sessions (indexed for 10,000 users): median milliseconds.

Starts its own redis-server on a free loopback port. See README.md here.

    python benchmarks/users.py [--sessions 100000] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path
from unittest import mock

from flask import Flask
from flask import session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SECRET = "bench"
#: Commands of the stats connection itself.
OWN = {"info", "config|resetstat"}


def make_app(url: str, user_key: str | None) -> Flask:
    from flask_connect_session import ConnectSession

    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=url, TESTING=True)
    if user_key:
        app.config["CONNECT_SESSION_USER_KEY"] = user_key
    ConnectSession(app)

    @app.post("/login")
    def login() -> str:
        session["user_id"] = "42"
        return "ok"

    @app.get("/read")
    def read() -> str:
        return str(session.get("user_id"))

    return app


def calls(stats: t.Any) -> dict[str, int]:
    info = stats.info("commandstats")
    counted = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}
    return {name: n for name, n in counted.items() if name not in OWN}


def round_trips(url: str, stats: t.Any, requests: int) -> dict[str, dict[str, int]]:
    """Commands Redis saw per read-only request, by variant."""
    results = {}
    for name, key in (("unindexed", None), ("indexed", "user_id")):
        client = make_app(url, key).test_client()
        client.post("/login")
        client.get("/read")  # warm up: scripts loaded, connection open
        stats.config_resetstat()
        for _ in range(requests):
            client.get("/read")
        results[name] = calls(stats)
        if key is not None:
            # The once-a-minute request: the clock moved a minute on (once
            # to warm the scripts up, then measured).
            for minutes in (1, 2):
                later = time.time() + 61 * minutes
                with mock.patch("time.time", lambda later=later: later):
                    stats.config_resetstat()
                    client.get("/read")
            results["indexed, last-seen update"] = calls(stats)
    return results


def populate(url: str, sessions: int) -> t.Any:
    """Store ``sessions`` indexed sessions for 10,000 users (user "42" has
    10), as the interface stores them; return the app to query.
    """
    import redis

    from flask_connect_session.document import encode

    client = redis.Redis.from_url(url)
    until = int((time.time() + 86400 + 60) * 1000)
    pipe = client.pipeline(transaction=False)
    for n in range(sessions):
        user = "42" if n < 10 else str(1000 + n % 9999)
        device = {"user": user, "created": 0, "seen": n, "agent": "bench", "ip": "127.0.0.1"}
        document = {"user_id": user, "_device": device, "cookie": {"originalMaxAge": None}}
        pipe.set(f"sess:s{n}", encode(document), ex=86400)
        pipe.zadd(f"sess-user:{user}", {f"s{n}": until})
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return client.dbsize()


def time_user_sessions(url: str, calls_: int) -> tuple[float, int]:
    app = make_app(url, "user_id")
    ext = app.extensions["connect_session"]
    samples = []
    with app.app_context():
        found = len(ext.user_sessions("42"))
        for _ in range(calls_):
            start = time.perf_counter_ns()
            ext.user_sessions("42")
            samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    import redis

    from server_fixtures import RedisServer
    from server_fixtures import _require_binary  # noqa: I001 (test helper)

    tmp = Path(tempfile.mkdtemp(prefix="fcs-users-"))
    server = RedisServer(_require_binary("redis-server", "redis-server"), tmp)
    server.start()
    try:
        stats = redis.Redis.from_url(server.url)
        for name, counted in round_trips(server.url, stats, args.requests).items():
            # Commands sent by the client; the others ran inside scripts.
            trips = sum(counted.get(c, 0) for c in ("getex", "evalsha", "script|load"))
            n = 1 if "update" in name else args.requests
            print(f"{name:28} round trips/request {trips / n:.2f}  (Redis counted {counted})")
        stats.flushall()
        stored = populate(server.url, args.sessions)
        median, found = time_user_sessions(server.url, args.calls)
        print(
            f"user_sessions: {found} sessions of one user among {stored} keys:"
            f" median {median:.2f} ms over {args.calls} calls"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
