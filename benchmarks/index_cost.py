"""Cost of the per-user index per login, at 10 and at 10,000 sessions of one
user, on every store that keeps it (CONNECT_SESSION_USER_KEY).

A login is what the interface does for a new logged-in session: the index
entry (``index_add``), then the session document with its ``_device``
member (``set``); a logout undoes both (``index_remove``, ``destroy``), so
the user keeps the same number of sessions while it is measured. Each store
is filled through its own API, then logins and logouts alternate; the
median of each is printed, with its index call alone beside it.

Starts its own servers (redis-server, a 3-node Redis Cluster, PostgreSQL,
MariaDB) on free loopback ports, as the tests do. See README.md here.

    python benchmarks/index_cost.py [--sizes 10 10000] [--samples 300]
        [--stores memory filesystem redis redis-cluster postgresql mariadb sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

if t.TYPE_CHECKING:
    from flask_connect_session import Store

STORES = ["memory", "filesystem", "redis", "redis-cluster", "postgresql", "mariadb", "sqlite"]
USER = "42"


def document(n: int, until_ms: int) -> dict[str, t.Any]:
    """A logged-in session as the interface stores it."""
    device = {"user": USER, "created": 0, "seen": n, "agent": "bench", "ip": "127.0.0.1"}
    return {
        "user_id": USER,
        "_device": {**device, "until": until_ms},
        "cookie": {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"},
    }


@contextlib.contextmanager
def open_store(kind: str, tmp: Path) -> t.Iterator[Store]:
    """A fresh store of ``kind`` over a server started for it."""
    from flask_connect_session import FileSystemStore
    from flask_connect_session import MemoryStore
    from flask_connect_session import RedisStore
    from flask_connect_session import SQLStore

    from server_fixtures import MariaDBServer
    from server_fixtures import RedisClusterServer
    from server_fixtures import RedisServer
    from server_fixtures import _require_binary
    from server_fixtures import temporary_postgres

    where = tmp / kind
    where.mkdir()
    if kind == "memory":
        yield MemoryStore()
    elif kind == "filesystem":
        yield FileSystemStore(where / "sessions")
    elif kind == "redis":
        server = RedisServer(_require_binary("redis-server", "redis-server"), where)
        server.start()
        try:
            yield RedisStore(server.url)
        finally:
            server.stop()
    elif kind == "redis-cluster":
        cluster = RedisClusterServer(
            _require_binary("redis-server", "redis-server"),
            _require_binary("redis-cli", "redis-tools"),
            where,
        )
        cluster.start()
        try:
            yield RedisStore(cluster.client())
        finally:
            cluster.stop()
    elif kind == "postgresql":
        with temporary_postgres() as pg:
            store = SQLStore(pg.url(), prune_interval=None)
            yield store
            store.engine.dispose()
    elif kind == "mariadb":
        maria = MariaDBServer(where)
        maria.start()
        try:
            maria.execute("CREATE DATABASE test")
            store = SQLStore(maria.url(), prune_interval=None)
            yield store
            store.engine.dispose()
        finally:
            maria.stop()
    elif kind == "sqlite":
        store = SQLStore(f"sqlite:///{tmp / 'sessions.db'}", prune_interval=None)
        yield store
        store.engine.dispose()
    else:
        raise ValueError(kind)


def fill(store: Store, first: int, last: int, until: float) -> None:
    for n in range(first, last):
        sid = f"fill-{n:06d}"
        store.index_add(USER, sid, until)
        store.set(sid, document(n, int(until * 1000)))


def measure(store: Store, samples: int, until: float) -> dict[str, float]:
    """Median µs of a login, its index call, a logout and its index call."""
    login, index, logout, unindex = [], [], [], []
    for n in range(samples):
        sid = f"login-{n:06d}"
        start = time.perf_counter_ns()
        store.index_add(USER, sid, until)
        added = time.perf_counter_ns()
        store.set(sid, document(n, int(until * 1000)))
        done = time.perf_counter_ns()
        store.index_remove(USER, sid)
        removed = time.perf_counter_ns()
        store.destroy(sid)
        logout.append((time.perf_counter_ns() - done) / 1000)
        unindex.append((removed - done) / 1000)
        login.append((done - start) / 1000)
        index.append((added - start) / 1000)
    return {
        "login": statistics.median(login),
        "index_add": statistics.median(index),
        "logout": statistics.median(logout),
        "index_remove": statistics.median(unindex),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--stores", nargs="+", default=STORES, choices=STORES)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fcs-index-"))
    until = time.time() + 86400
    print(
        f"{'store':14} {'sessions':>8}  {'login µs':>9}  {'index_add µs':>12}"
        f"  {'logout µs':>9}  {'index_remove µs':>15}"
    )
    for kind in args.stores:
        with open_store(kind, tmp) as store:
            store.max_size = 0
            size = 0
            for target in sorted(args.sizes):
                fill(store, size, target, until)
                size = target
                assert len(store.index_sessions(USER)) == size
                result = measure(store, args.samples, until)
                print(
                    f"{kind:14} {size:>8}  {result['login']:>9.0f}"
                    f"  {result['index_add']:>12.0f}  {result['logout']:>9.0f}"
                    f"  {result['index_remove']:>15.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
