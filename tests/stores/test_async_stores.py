"""The asyncio stores (for Quart) beyond the store contract, which
test_store_contract.py runs over them: which store each
``CONNECT_SESSION_STORE`` value gives, concurrency on one event loop, and
sessions shared byte for byte with the synchronous stores.
"""

from __future__ import annotations

import asyncio
import typing as t
from pathlib import Path

import pytest
from flask import Config

from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session.options import Options
from flask_connect_session.stores import build_async_store
from flask_connect_session.stores.base import AsyncStore
from flask_connect_session.stores.cachelib import CachelibStore
from flask_connect_session.stores.memory import AsyncMemoryStore
from flask_connect_session.stores.threaded import ThreadedStore

from store_harness import doc

pytestmark = pytest.mark.slow


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
