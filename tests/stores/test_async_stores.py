"""The asyncio stores (for Quart) beyond the store contract, which
test_store_contract.py runs over them: which store each
``CONNECT_SESSION_STORE`` value gives, concurrency on one event loop, and
sessions shared byte for byte with the synchronous stores.
"""

from __future__ import annotations

import asyncio
import time
import typing as t
from pathlib import Path

import pytest
import test_faults
from flask import Config
from test_store_contract import TRICKY

from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session import SQLStore
from flask_connect_session.calls import Destroy
from flask_connect_session.calls import Get
from flask_connect_session.calls import GetAndTouch
from flask_connect_session.calls import Merge
from flask_connect_session.calls import Set
from flask_connect_session.errors import StoreError
from flask_connect_session.options import Options
from flask_connect_session.stores import StoreSettings
from flask_connect_session.stores import async_store_from_url
from flask_connect_session.stores import build_async_store
from flask_connect_session.stores.base import AsyncStore
from flask_connect_session.stores.cachelib import CachelibStore
from flask_connect_session.stores.memory import AsyncMemoryStore
from flask_connect_session.stores.redis import SCRIPT_LIMIT
from flask_connect_session.stores.redis_asyncio import AsyncRedisStore
from flask_connect_session.stores.sql import SQLStoreError
from flask_connect_session.stores.sql_asyncio import AsyncSQLStore
from flask_connect_session.stores.threaded import ThreadedStore

from async_bridge import Blocking
from async_bridge import loop
from store_harness import HARNESSES
from store_harness import Harness
from store_harness import cookie
from store_harness import doc

pytestmark = pytest.mark.slow

#: A redis-server of the test's own that loses nothing when killed.
persistent_redis = test_faults.persistent_redis


def options(store: object, **config: t.Any) -> Options:
    values = Config(".")
    values.update(CONNECT_SESSION_STORE=store, **config)
    return Options.from_config(values)


class App:
    """What the builder reads of an app."""

    def __init__(self, instance_path: Path) -> None:
        self.instance_path = str(instance_path)


# -- which store a value gives ---------------------------------------------------


def test_memory_url_is_the_asyncio_memory_store() -> None:
    store = build_async_store(options("memory://", CONNECT_SESSION_TTL=60))
    assert type(store) is AsyncMemoryStore
    assert store.ttl == 60


def test_file_url_is_the_file_store_in_threads(tmp_path: Path) -> None:
    store = build_async_store(options(f"file://{tmp_path}/sessions", CONNECT_SESSION_TTL=60))
    assert isinstance(store, ThreadedStore)
    assert isinstance(store.store, FileSystemStore)
    assert store.ttl == 60
    assert "FileSystemStore" in repr(store)


def test_memcached_url_is_the_cachelib_store_in_threads(memcached_url: str) -> None:
    store = build_async_store(options(memcached_url, CONNECT_SESSION_KEY_PREFIX="app:"))
    assert isinstance(store, ThreadedStore)
    assert isinstance(store.store, CachelibStore)
    assert store.store.key_prefix == "app:"

    async def round_trip() -> t.Any:
        await store.set("s1", doc(None, a=1))
        return await store.get("s1")

    assert asyncio.run(round_trip()) == doc(None, a=1)


def test_an_asyncio_store_is_used_as_is() -> None:
    given = AsyncMemoryStore()
    assert build_async_store(options(given)) is given


def test_a_sync_store_runs_in_threads() -> None:
    given = MemoryStore()
    store = build_async_store(options(given))
    assert isinstance(store, ThreadedStore) and store.store is given


def test_a_cachelib_cache_runs_in_threads() -> None:
    from cachelib import SimpleCache

    store = build_async_store(options(SimpleCache()))
    assert isinstance(store, ThreadedStore) and isinstance(store.store, CachelibStore)


@pytest.mark.parametrize(
    "url",
    [
        "memory://somewhere",
        "ftp://u:hunter2@host/",
        "redis://:hunter2@localhost/sessions",
        "postgres://u:hunter2@localhost/db",
        "file://u:hunter2@host/x",
    ],
)
def test_bad_url_is_a_value_error_naming_the_key(url: str) -> None:
    with pytest.raises(ValueError) as info:
        build_async_store(options(url))
    assert str(info.value).startswith("CONNECT_SESSION_STORE: ")
    assert "hunter2" not in str(info.value)


def test_anything_else_is_a_value_error_naming_the_key() -> None:
    with pytest.raises(ValueError, match="^CONNECT_SESSION_STORE: expected a URL"):
        build_async_store(options(42))


def test_threaded_store_reports_what_the_store_implements() -> None:
    """A cachelib store lists no sessions: neither does its threaded view,
    whose missing methods raise NotImplementedError as the store's do.
    """
    from cachelib import SimpleCache

    from flask_connect_session.stores.base import OPTIONAL_METHODS
    from flask_connect_session.stores.base import implements

    for sync in (CachelibStore(SimpleCache()), MemoryStore()):
        store = ThreadedStore(sync)
        assert isinstance(store, ThreadedStore) and isinstance(store, AsyncStore)
        assert type(store).__name__ == "ThreadedStore"
        for method in OPTIONAL_METHODS:
            assert implements(store, method) == implements(sync, method), method
    store = ThreadedStore(CachelibStore(SimpleCache()))
    with pytest.raises(NotImplementedError, match="ThreadedStore does not implement all"):
        asyncio.run(store.all())


def test_async_clients_and_engines_get_the_asyncio_stores(redis_url: str, tmp_path: Path) -> None:
    import redis.asyncio
    from sqlalchemy.ext.asyncio import create_async_engine

    client = redis.asyncio.Redis.from_url(redis_url)
    store = build_async_store(options(client, CONNECT_SESSION_KEY_PREFIX="app:"))
    assert isinstance(store, AsyncRedisStore) and store.client is client
    assert store.key_prefix == "app:"
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    store = build_async_store(options(engine, CONNECT_SESSION_SQL_TABLE="web_session"))
    assert isinstance(store, AsyncSQLStore) and store.engine is engine
    assert store.table.name == "web_session"


def test_sentinel_url_is_the_asyncio_redis_store_following_the_master() -> None:
    store = build_async_store(options("redis+sentinel://:se%40cret@127.0.0.1:26379/mymaster/3"))
    assert isinstance(store, AsyncRedisStore)
    pool = store.client.connection_pool
    assert type(pool).__module__ == "redis.asyncio.sentinel"
    assert pool.service_name == "mymaster" and pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["password"] == "se@cret"
    assert "se@cret" not in repr(store) and "se%40cret" not in repr(store)


@pytest.mark.parametrize(
    ("url", "drivername"),
    [
        ("postgresql://u:hunter2@localhost/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u:hunter2@localhost/db", "postgresql+psycopg"),
        ("postgresql+asyncpg://u:hunter2@localhost/db", "postgresql+asyncpg"),
        ("mariadb+aiomysql://u:hunter2@localhost/db", "mariadb+aiomysql"),
        ("mysql+aiomysql://u:hunter2@localhost/db", "mysql+aiomysql"),
        ("sqlite:///sessions.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///sessions.db", "sqlite+aiosqlite"),
    ],
)
def test_sql_urls_get_an_asyncio_driver(url: str, drivername: str, tmp_path: Path) -> None:
    """A URL without a driver gets the asyncio one; a relative SQLite path is
    in the instance folder, as for a Flask app.
    """
    store = build_async_store(options(url), App(tmp_path / "instance"))
    assert isinstance(store, AsyncSQLStore)
    assert store.engine.url.drivername == drivername
    assert "hunter2" not in repr(store)
    if drivername.startswith("sqlite"):
        assert store.engine.url.database == str(tmp_path / "instance" / "sessions.db")


@pytest.mark.parametrize(
    "url", ["sqlite+pysqlite:////tmp/sync-only.db", "mariadb+pymysql://u:hunter2@localhost/db"]
)
def test_sql_urls_of_sync_only_drivers_run_in_threads(url: str) -> None:
    store = build_async_store(options(url))
    assert isinstance(store, ThreadedStore)
    assert type(store.store).__name__ == "SQLStore"
    assert "hunter2" not in repr(store)


def test_missing_asyncio_driver_names_the_package_to_install() -> None:
    from without_packages import run_without

    message = run_without(
        "aiosqlite",
        "from flask import Config\n"
        "from flask_connect_session.options import Options\n"
        "from flask_connect_session.stores import build_async_store\n"
        "config = Config('.')\n"
        "config['CONNECT_SESSION_STORE'] = 'sqlite:////tmp/x.db'\n"
        "try:\n"
        "    build_async_store(Options.from_config(config))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n",
    )
    assert "CONNECT_SESSION_STORE" in message
    assert "pip install aiosqlite" in message


# -- the asyncio stores under concurrency ----------------------------------------------

#: The asyncio stores of the contract suite (the threaded memcached store
#: merges as CachelibStore does, tested there).
ASYNC_HARNESSES = [
    name for name in HARNESSES if name.startswith("async-") or name == "threaded-filesystem"
]


@pytest.fixture(params=ASYNC_HARNESSES)
def async_harness(request: pytest.FixtureRequest) -> Harness:
    """Each asyncio store, fresh, in the contract suite's harness."""
    harness = HARNESSES[request.param](request)
    assert isinstance(harness.store, Blocking)
    return harness


def test_50_concurrent_merges_of_distinct_keys_keep_all(async_harness: Harness) -> None:
    """50 merges of one session, each of its own key, at once on one event
    loop: all 50 keys are stored.
    """
    store = t.cast(Blocking, async_harness.store).store

    async def scenario() -> list[bool]:
        await store.set("s1", doc(None, start=True))
        return await asyncio.gather(
            *(store.merge("s1", {f"k{n}": n, "cookie": cookie()}, []) for n in range(50))
        )

    assert loop().run(scenario()) == [True] * 50
    document = async_harness.store.get("s1")
    assert document is not None
    assert {f"k{n}": n for n in range(50)}.items() <= document.items()
    assert document["start"] is True


class Environment:
    """What a driver gives the store calls: the store."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store


def run_call(call: t.Any, store: AsyncStore) -> t.Any:
    """Run a core's store call on ``store`` as the Quart driver does."""
    return loop().run(call.run_async(Environment(store)))


def test_redis_killed_and_restarted(persistent_redis: t.Any) -> None:
    """With Redis down, each call is a StoreError (a merge writes nothing);
    once Redis is back on the same port, the same store works again and
    what was stored before is intact.
    """
    store = AsyncRedisStore(persistent_redis.url)
    try:
        run_call(Set("s1", doc(None, a=1)), store)
        assert run_call(GetAndTouch("s1"), store) == doc(None, a=1)
        persistent_redis.kill()
        for call in (Get("s1"), Merge("s1", {"a": 2}, []), Destroy("s1")):
            with pytest.raises(StoreError) as info:
                run_call(call, store)
            assert info.value.store is store
        persistent_redis.start()
        assert run_call(Get("s1"), store) == doc(None, a=1)
        assert run_call(Merge("s1", {"b": 2}, []), store)
        assert run_call(Get("s1"), store) == doc(None, a=1, b=2)
    finally:
        loop().run(store.aclose())


# -- merges into values too long for the merge script ---------------------------------


@pytest.mark.parametrize("name", ["async-redis", "async-redis-cluster"])
def test_merge_into_a_huge_session_is_an_optimistic_transaction(
    request: pytest.FixtureRequest, name: str
) -> None:
    """A value longer than the script reads is merged with WATCH/MULTI on
    the key's own node, after a read here or not; a destroyed one stays so.
    """
    harness = HARNESSES[name](request)
    store = harness.store
    store.max_size = 0
    big = "x" * (SCRIPT_LIMIT + 10)
    for n in range(6):  # keys in several slots, so on several nodes of a cluster
        store.set(f"s{n}", doc(None, big=big))
        if n % 2:
            store.get(f"s{n}")
        assert store.merge(f"s{n}", {"b": n}, [])
        assert store.get(f"s{n}") == doc(None, big=big, b=n)
    store.destroy("s0")
    assert store.merge("s0", {"c": 1}, []) is False
    assert harness.raw("s0") is None


# -- SQL specifics -----------------------------------------------------------------


def test_concurrent_first_use_creates_the_table_once(postgresql_url: str) -> None:
    """Requests arriving at once on a fresh database, in one process (one
    store) and several (several stores): the table is created once, no
    request fails, and nothing waits on a lock the event loop cannot free.
    """
    stores = [AsyncSQLStore(postgresql_url) for _ in range(3)]

    async def scenario() -> list[t.Any]:
        return await asyncio.gather(
            *(
                store.set(f"s{n}-{i}", doc(None, n=n))
                for n, store in enumerate(stores)
                for i in range(5)
            )
        )

    try:
        loop().run(scenario())
        assert loop().run(stores[0].length()) == 15
    finally:
        for store in stores:
            loop().run(store.dispose())


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir(mode=0o700)
    store = AsyncSQLStore(f"sqlite+aiosqlite:///{tmp_path}/db/sessions.db")
    try:

        async def modes_in_use() -> dict[str, int]:
            await store.set("s1", doc(None, a=1))
            # While a connection is open (a pool may close the others), the
            # write-ahead log and its index are there.
            async with store.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1 FROM session")
                return {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "db").iterdir()}

        assert loop().run(modes_in_use()) == {
            "sessions.db": 0o600,
            "sessions.db-shm": 0o600,
            "sessions.db-wal": 0o600,
        }
    finally:
        loop().run(store.dispose())


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_a_row_lock_held_too_long_is_an_error_without_the_document(
    monkeypatch: pytest.MonkeyPatch, postgresql_url: str, driver: str
) -> None:
    from flask_connect_session.stores import sql as sql_module

    monkeypatch.setattr(sql_module, "LOCK_TIMEOUT", 1)
    store = AsyncSQLStore(postgresql_url.replace("+psycopg", f"+{driver}"))
    twin = SQLStore(postgresql_url)
    try:
        loop().run(store.set("s1", doc(None, a="secret-value")))
        with twin.engine.connect() as holder:
            holder.exec_driver_sql("SELECT 1 FROM session WHERE sid = 's1' FOR UPDATE")
            with pytest.raises(SQLStoreError, match="lock") as info:
                loop().run(store.merge("s1", {"b": "other-secret"}, []))
            holder.rollback()
        assert "secret" not in str(info.value) and info.value.__cause__ is None
        assert loop().run(store.merge("s1", {"b": 2}, []))
        assert loop().run(store.get("s1")) == doc(None, a="secret-value", b=2)
    finally:
        loop().run(store.dispose())
        twin.engine.dispose()


def test_asyncio_store_follows_a_sentinel_failover(redis_sentinel: t.Any) -> None:
    """Kill the master: calls fail with StoreError only until Sentinel names
    the promoted replica, then succeed on the same store, with the sessions
    stored (and replicated) before the failover intact.
    """
    from test_store_sentinel import AGREEMENT_GRACE
    from test_store_sentinel import FAILOVER_DEADLINE

    url = redis_sentinel.url + "?socket_timeout=1&socket_connect_timeout=1"
    store = async_store_from_url(url, StoreSettings("sess:", 86400))
    assert isinstance(store, AsyncRedisStore)
    try:
        for n in range(5):
            run_call(Set(f"s{n}", doc(None, user=n)), store)
        old_master = redis_sentinel.master.port
        with redis_sentinel.master.client() as master:
            assert master.execute_command("WAIT", 1, 5000) == 1
        redis_sentinel.master.kill()
        failures, promoted_at = 0, None
        deadline = time.monotonic() + FAILOVER_DEADLINE
        while True:
            assert time.monotonic() < deadline, f"no failover:\n{redis_sentinel.tail()}"
            if promoted_at is None and redis_sentinel.master_port() not in (old_master, None):
                promoted_at = time.monotonic()
            try:
                document = run_call(Get("s0"), store)
            except StoreError:
                assert promoted_at is None or time.monotonic() - promoted_at < AGREEMENT_GRACE
                failures += 1
                time.sleep(0.2)  # another process's failover: no clock to pass
                continue
            break
        assert failures > 0
        assert document == doc(None, user=0)
        for n in range(5):
            assert run_call(Merge(f"s{n}", {"after": n}, []), store)
            assert run_call(Get(f"s{n}"), store) == doc(None, user=n, after=n)
    finally:
        loop().run(store.aclose())


# -- a synchronous and an asyncio store on one backend ------------------------------------

#: Each synchronous store beside the asyncio store of the same backend.
TWINS = [
    ("redis", "async-redis"),
    ("redis-cluster", "async-redis-cluster"),
    ("postgresql", "async-postgresql"),
    ("mariadb", "async-mariadb"),
    ("sqlite", "async-sqlite"),
]


@pytest.mark.parametrize(("sync_name", "async_name"), TWINS)
def test_sync_and_asyncio_stores_share_sessions_byte_for_byte(
    request: pytest.FixtureRequest, sync_name: str, async_name: str
) -> None:
    """What one store writes the other reads, both ways, and the same calls
    leave the same bytes in the backend (so a Flask app and a Quart app
    share sessions).
    """
    sync, aio = HARNESSES[sync_name](request), HARNESSES[async_name](request)
    document = doc(3600, **TRICKY)
    changes = {"new": [1, {}], "cookie": cookie(7200), "é": "ü"}
    expected = {k: v for k, v in (document | changes).items() if k != "big"}
    for writer, reader, tag in ((sync, aio, "s"), (aio, sync, "a")):
        for sid in (f"{tag}-read", f"{tag}-blind"):
            writer.store.set(sid, document)
            assert reader.store.get(sid) == document
        writer.store.get_and_touch(f"{tag}-read")  # the next merge sends the document
        for sid in (f"{tag}-read", f"{tag}-blind"):  # ... or has Redis splice it
            assert writer.store.merge(sid, changes, ["big"])
            assert reader.store.get_and_touch(sid) == expected
    for sid in ("read", "blind"):
        assert sync.raw(f"s-{sid}") == aio.raw(f"a-{sid}")
        assert sync.raw(f"s-{sid}") == aio.raw(f"s-{sid}")
        assert abs(t.cast(float, sync.remaining(f"s-{sid}")) - 7200) < 5
        assert abs(t.cast(float, aio.remaining(f"a-{sid}")) - 7200) < 5


def test_sync_and_asyncio_redis_stores_keep_the_same_index(
    request: pytest.FixtureRequest, redis_server: t.Any
) -> None:
    sync, aio = HARNESSES["redis"](request).store, HARNESSES["async-redis"](request).store
    until, at = 4_102_444_800.25, 4_102_444_000.5  # 2100
    for store, user in ((sync, "u1"), (aio, "u2")):
        store.set(f"{user}-s1", doc(None, a=1))
        store.index_add(user, f"{user}-s1", until)
        store.index_add(user, f"{user}-gone", until)
        store.index_revoke(user, at, until)
    with redis_server.client() as client:
        members = [
            client.zrange(f"sess-user:{user}", 0, -1, withscores=True) for user in ("u1", "u2")
        ]
        assert [[(m[3:], s) for m, s in entries] for entries in members] == [
            [(b"gone", 4102444800250.0), (b"s1", 4102444800250.0)]
        ] * 2
        assert client.get("sess-revoked:u1") == client.get("sess-revoked:u2") == b"4102444000500"
        assert client.pttl("sess-revoked:u1") > 0 and client.pttl("sess-revoked:u2") > 0
    for store, user in ((sync, "u1"), (aio, "u2")):
        assert store.index_sessions(user) == {f"{user}-s1": doc(None, a=1)}
        assert store.index_revoked(user) == at
        store.index_remove(user, f"{user}-s1")
        assert store.index_sessions(user) == {}
