"""Every built-in store over its real backend, with a look inside the backend
(imported by the store tests), and the documents they store.

A :class:`Harness` pairs a fresh, empty store with raw access to where it
keeps its data, so the contract tests can plant values (corrupt documents,
pickles) and read the lifetime the backend really gives an entry.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import functools
import json
import os
import re
import socket
import struct
import time
import typing as t
from datetime import timedelta
from pathlib import Path

import pytest

from flask_connect_session import CachelibStore
from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session import RedisStore
from flask_connect_session import SQLStore
from flask_connect_session import Store
from flask_connect_session.cookie import format_expires
from flask_connect_session.cookie import utcnow
from flask_connect_session.stores import StoreSettings
from flask_connect_session.stores import async_store_from_url
from flask_connect_session.stores import store_from_url
from flask_connect_session.stores.memory import AsyncMemoryStore
from flask_connect_session.stores.redis_asyncio import AsyncRedisStore
from flask_connect_session.stores.sql_asyncio import AsyncSQLStore
from flask_connect_session.stores.threaded import ThreadedStore

from async_bridge import Blocking
from async_bridge import close_async_redis
from async_bridge import loop

PREFIX = "sess:"

Document = dict[str, t.Any]


def cookie(seconds: float | None = None) -> Document:
    """An express-session cookie member expiring in ``seconds`` (or never)."""
    if seconds is None:
        return {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}
    return {
        "originalMaxAge": int(seconds * 1000),
        "expires": format_expires(utcnow() + timedelta(seconds=seconds)),
        "httpOnly": True,
        "path": "/",
    }


def doc(seconds: float | None = None, **data: t.Any) -> Document:
    return {"cookie": cookie(seconds), **data}


class Touch:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (Path.touch, (self.path,))


@dataclasses.dataclass
class Harness:
    """A store and raw access to its backend."""

    name: str
    store: Store
    #: Store these bytes as the raw value of a session id, bypassing the
    #: store; ``flags`` is the memcached client flags word (1 = "pickle").
    plant: cabc.Callable[[str, bytes], None]
    #: Seconds the backend keeps this session id, or None if it has none.
    remaining: cabc.Callable[[str], float | None]
    #: The raw stored value of a session id, or None.
    raw: cabc.Callable[[str], bytes | None]
    #: merge/touch are atomic (not cachelib's generic get-then-set).
    atomic: bool = True
    #: touch extends a lifetime (cachelib's generic backends shared by
    #: processes never write on a read, so they do not).
    touches: bool = True
    #: Something outside this process can write the backend.
    external: bool = True
    #: The backend's clock resolution, in seconds, for lifetime checks.
    resolution: float = 0.05
    #: The backend counts lifetimes in whole seconds of its own clock, so
    #: the store gives entries one second more.
    whole_seconds: bool = False


def _memory(request: pytest.FixtureRequest) -> Harness:
    store = MemoryStore()
    return _memory_harness("memory", store, store)


def _memory_harness(name: str, store: MemoryStore, tested: Store) -> Harness:
    """A harness testing ``tested``, which keeps its sessions in ``store``."""

    def plant(sid: str, raw: bytes) -> None:
        store._entries[sid] = (raw.decode("utf-8", "replace"), time.time() + 100)

    def remaining(sid: str) -> float | None:
        entry = store._entries.get(sid)
        return None if entry is None or entry[1] <= time.time() else entry[1] - time.time()

    def raw(sid: str) -> bytes | None:
        entry = store._entries.get(sid)
        return None if entry is None else entry[0].encode()

    return Harness(name, tested, plant, remaining, raw, external=False)


def _filesystem(request: pytest.FixtureRequest) -> Harness:
    directory: Path = request.getfixturevalue("tmp_path") / "sessions"
    return _filesystem_harness("filesystem", FileSystemStore(directory), directory)


def _filesystem_harness(name: str, tested: Store, directory: Path) -> Harness:
    """A harness testing ``tested``, which keeps its sessions in a
    :class:`FileSystemStore` on ``directory``.
    """
    store = FileSystemStore(directory)

    def path(sid: str) -> Path:
        return directory / (store._name(sid) + ".session")

    def plant(sid: str, raw: bytes) -> None:
        header = json.dumps({"sid": sid}).encode() + b"\n"
        path(sid).write_bytes(header + raw)
        os.utime(path(sid), (time.time() + 100, time.time() + 100))

    def remaining(sid: str) -> float | None:
        try:
            left = path(sid).stat().st_mtime - time.time()
        except FileNotFoundError:
            return None
        return left if left > 0 else None

    def raw(sid: str) -> bytes | None:
        try:
            return path(sid).read_bytes().partition(b"\n")[2].rstrip(b"\n")
        except FileNotFoundError:
            return None

    return Harness(name, tested, plant, remaining, raw)


def _redis_harness(name: str, store: RedisStore, client: t.Any) -> Harness:
    def plant(sid: str, raw: bytes) -> None:
        client.set(PREFIX + sid, raw)

    def remaining(sid: str) -> float | None:
        left = client.pttl(PREFIX + sid)
        return None if left < 0 else left / 1000

    def raw(sid: str) -> bytes | None:
        value: bytes | None = client.get(PREFIX + sid)
        return value

    return Harness(name, store, plant, remaining, raw, resolution=0.01)


def _redis(request: pytest.FixtureRequest, server: str = "redis") -> Harness:
    """``server``: ``redis`` (7.0: merges by script) or ``valkey`` (9.1:
    merges with ``SET ... IFEQ``).
    """
    url = request.getfixturevalue(f"{server}_url")
    store = store_from_url(url, StoreSettings(PREFIX, 86400))
    assert isinstance(store, RedisStore)
    client = request.getfixturevalue(f"{server}_server").client()
    request.addfinalizer(client.close)
    return _redis_harness(server, store, client)


def _redis_cluster(request: pytest.FixtureRequest) -> Harness:
    request.getfixturevalue("redis_cluster_url")
    client = request.getfixturevalue("redis_cluster").client()
    request.addfinalizer(client.close)
    return _redis_harness("redis-cluster", RedisStore(client), client)


def _cachelib_redis(request: pytest.FixtureRequest) -> Harness:
    from cachelib import RedisCache

    request.getfixturevalue("redis_url")
    server = request.getfixturevalue("redis_server")
    cache = RedisCache(server.host, server.port)
    harness = _redis_harness("cachelib-redis", CachelibStore(cache), server.client())
    request.addfinalizer(cache._write_client.close)
    return harness


def memcached_meta_ttl(host: str, port: int, key: str) -> float | None:
    """Remaining TTL of a memcached key (meta protocol ``mg <key> t``)."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    match = re.match(rb"HD t(-?\d+)", reply)
    return None if match is None else float(match.group(1))


def _memcached(request: pytest.FixtureRequest) -> Harness:
    url = request.getfixturevalue("memcached_url")
    server = request.getfixturevalue("memcached_server")
    store = store_from_url(url, StoreSettings(PREFIX, 86400))
    client = server.client()
    request.addfinalizer(client.close)

    def plant(sid: str, raw: bytes) -> None:
        # Flags 1: what pymemcache's and python-memcached's pickle serdes
        # write for a pickled value, so a pickling client would unpickle it.
        # noreply=False: wait until stored, before the store reads it.
        client.set(PREFIX + sid, raw, flags=1 if raw.startswith(b"\x80") else 0, noreply=False)

    def remaining(sid: str) -> float | None:
        return memcached_meta_ttl(server.host, server.port, PREFIX + sid)

    def raw(sid: str) -> bytes | None:
        value: bytes | None = client.get(PREFIX + sid)
        return value

    return Harness("memcached", store, plant, remaining, raw, resolution=1.5, whole_seconds=True)


def _cachelib_simple(request: pytest.FixtureRequest) -> Harness:
    from cachelib import SimpleCache

    cache = SimpleCache()
    store = CachelibStore(cache)

    def plant(sid: str, raw: bytes) -> None:
        cache._cache[PREFIX + sid] = (time.time() + 100, raw)

    def remaining(sid: str) -> float | None:
        entry = cache._cache.get(PREFIX + sid)
        left = None if entry is None else entry[0] - time.time()
        return left if left is not None and left > 0 else None

    def raw(sid: str) -> bytes | None:
        entry = cache._cache.get(PREFIX + sid)
        return None if entry is None else t.cast(bytes, entry[1])

    return Harness(
        "cachelib-simple",
        store,
        plant,
        remaining,
        raw,
        resolution=1.0,
        whole_seconds=True,
    )


def _cachelib_filesystem(request: pytest.FixtureRequest) -> Harness:
    from cachelib import FileSystemCache

    cache = FileSystemCache(str(request.getfixturevalue("tmp_path") / "cachelib"))
    store = CachelibStore(cache)

    def path(sid: str) -> Path:
        return Path(cache._get_filename(PREFIX + sid))

    def plant(sid: str, raw: bytes) -> None:
        path(sid).write_bytes(struct.pack("I", int(time.time()) + 100) + raw)

    def remaining(sid: str) -> float | None:
        try:
            expiry = struct.unpack("I", path(sid).read_bytes()[:4])[0]
        except FileNotFoundError:
            return None
        left = float(expiry) - time.time()
        return left if left > 0 else None

    def raw(sid: str) -> bytes | None:
        try:
            return path(sid).read_bytes()[4:]
        except FileNotFoundError:
            return None

    return Harness(
        "cachelib-filesystem",
        store,
        plant,
        remaining,
        raw,
        atomic=False,
        touches=False,
        resolution=1.0,
        whole_seconds=True,
    )


def sql_harness(name: str, store: SQLStore, tested: Store | None = None) -> Harness:
    """A harness over a :class:`SQLStore`'s table, testing ``store`` or
    another store on the same table.
    """
    import sql_raw

    store.create_table()
    return Harness(
        name,
        store if tested is None else tested,
        lambda sid, raw: None if sql_raw.plant(store, sid, raw) else None,
        functools.partial(sql_raw.remaining, store),
        functools.partial(sql_raw.raw, store),
    )


def async_sql_harness(
    name: str, request: pytest.FixtureRequest, url: str, sync_url: str
) -> Harness:
    """A harness testing the asyncio store ``url`` gives, with raw access
    through a :class:`SQLStore` on ``sync_url`` (the same database).
    """
    store = async_store_from_url(url, StoreSettings(PREFIX, 86400))
    assert isinstance(store, AsyncSQLStore)
    request.addfinalizer(lambda: loop().run(store.dispose()))
    twin = SQLStore(sync_url)
    request.addfinalizer(twin.engine.dispose)
    return sql_harness(name, twin, Blocking(store))


def _async_postgresql(request: pytest.FixtureRequest) -> Harness:
    url = request.getfixturevalue("postgresql_url")
    # No driver: psycopg 3's asyncio side.
    return async_sql_harness("async-postgresql", request, url.replace("+psycopg", ""), url)


def _async_postgresql_asyncpg(request: pytest.FixtureRequest) -> Harness:
    url = request.getfixturevalue("postgresql_url")
    asyncpg = url.replace("+psycopg", "+asyncpg")
    return async_sql_harness("async-postgresql-asyncpg", request, asyncpg, url)


def _async_mariadb(request: pytest.FixtureRequest) -> Harness:
    url = request.getfixturevalue("mariadb_url")
    return async_sql_harness("async-mariadb", request, url.replace("+pymysql", "+aiomysql"), url)


def _async_sqlite(request: pytest.FixtureRequest) -> Harness:
    url = request.getfixturevalue("sqlite_url")
    return async_sql_harness("async-sqlite", request, url, url)


def _postgresql(request: pytest.FixtureRequest) -> Harness:
    return sql_harness("postgresql", SQLStore(request.getfixturevalue("postgresql_url")))


def _mariadb(request: pytest.FixtureRequest) -> Harness:
    return sql_harness("mariadb", SQLStore(request.getfixturevalue("mariadb_url")))


def _sqlite(request: pytest.FixtureRequest) -> Harness:
    return sql_harness("sqlite", SQLStore(request.getfixturevalue("sqlite_url")))


# -- the asyncio stores, through a synchronous view of each ---------------------


def _async_memory(request: pytest.FixtureRequest) -> Harness:
    store = AsyncMemoryStore()
    assert isinstance(store.store, MemoryStore)
    return _memory_harness("async-memory", store.store, Blocking(store))


def _threaded_filesystem(request: pytest.FixtureRequest) -> Harness:
    directory: Path = request.getfixturevalue("tmp_path") / "sessions"
    store = ThreadedStore(FileSystemStore(directory))
    return _filesystem_harness("threaded-filesystem", Blocking(store), directory)


def _threaded_memcached(request: pytest.FixtureRequest) -> Harness:
    harness = _memcached(request)
    return dataclasses.replace(
        harness, name="threaded-memcached", store=Blocking(ThreadedStore(harness.store))
    )


def _async_redis(request: pytest.FixtureRequest, server: str = "redis") -> Harness:
    url = request.getfixturevalue(f"{server}_url")
    store = async_store_from_url(url, StoreSettings(PREFIX, 86400))
    assert isinstance(store, AsyncRedisStore)
    request.addfinalizer(lambda: loop().run(store.aclose()))
    client = request.getfixturevalue(f"{server}_server").client()
    request.addfinalizer(client.close)
    return _redis_harness(f"async-{server}", Blocking(store), client)


def _async_redis_cluster(request: pytest.FixtureRequest) -> Harness:
    from redis.asyncio.cluster import RedisCluster

    request.getfixturevalue("redis_cluster_url")
    cluster = request.getfixturevalue("redis_cluster")
    host, port = cluster.startup_nodes[0]
    async_client = RedisCluster(host, port)
    store = AsyncRedisStore(async_client)
    request.addfinalizer(lambda: loop().run(close_async_redis(store, async_client)))
    client = cluster.client()
    request.addfinalizer(client.close)
    return _redis_harness("async-redis-cluster", Blocking(store), client)


HARNESSES: dict[str, cabc.Callable[[pytest.FixtureRequest], Harness]] = {
    "memory": _memory,
    "filesystem": _filesystem,
    "redis": _redis,
    "valkey": functools.partial(_redis, server="valkey"),
    "redis-cluster": _redis_cluster,
    "memcached": _memcached,
    "cachelib-redis": _cachelib_redis,
    "cachelib-simple": _cachelib_simple,
    "cachelib-filesystem": _cachelib_filesystem,
    "postgresql": _postgresql,
    "mariadb": _mariadb,
    "sqlite": _sqlite,
    "async-memory": _async_memory,
    "threaded-filesystem": _threaded_filesystem,
    "threaded-memcached": _threaded_memcached,
    "async-redis": _async_redis,
    "async-valkey": functools.partial(_async_redis, server="valkey"),
    "async-redis-cluster": _async_redis_cluster,
    "async-postgresql": _async_postgresql,
    "async-postgresql-asyncpg": _async_postgresql_asyncpg,
    "async-mariadb": _async_mariadb,
    "async-sqlite": _async_sqlite,
}

#: Harnesses whose merge is cachelib's generic (not atomic) get-then-set
#: (SimpleCache's is atomic: it lives in the process, under the store's lock).
NOT_ATOMIC = frozenset(("cachelib-filesystem",))
#: Harnesses whose backend nothing outside this process can write to.
IN_PROCESS = frozenset(("memory", "async-memory"))
