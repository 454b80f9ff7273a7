"""CachelibStore: JSON only whatever cachelib would do, memcached through
pymemcache, Redis caches through RedisStore, what cachelib cannot do.
"""

from __future__ import annotations

import socket
import time
import typing as t
from pathlib import Path

import pytest
from cachelib import BaseCache
from cachelib import FileSystemCache
from cachelib import MemcachedCache
from cachelib import RedisCache
from cachelib import SimpleCache
from pymemcache.client.base import Client
from pymemcache.client.base import PooledClient
from pymemcache.client.hash import HashClient
from pymemcache.serde import pickle_serde

from flask_connect_session import CachelibStore
from flask_connect_session.document import encode
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores import StoreSettings
from flask_connect_session.stores import store_from_url
from flask_connect_session.stores.base import implements
from flask_connect_session.stores.cachelib import memcached_client

from server_fixtures import MemcachedServer
from server_fixtures import RedisServer
from store_harness import Touch
from store_harness import doc
from store_harness import memcached_meta_ttl

pytestmark = pytest.mark.slow

SETTINGS = StoreSettings("sess:", 86400)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- never pickle -------------------------------------------------------------------


def test_the_applications_cache_keeps_its_serializer(tmp_path: Path) -> None:
    cache = FileSystemCache(str(tmp_path))
    serializer = cache.serializer
    store = CachelibStore(cache)
    store.set("abc", doc(None, a=1))
    assert cache.serializer is serializer
    cache.set("own", {1, 2})  # a set: only pickle stores it
    assert cache.get("own") == {1, 2}
    assert store.get("abc") == doc(None, a=1)


def test_pickle_written_through_cachelib_itself_never_runs(
    tmp_path: Path,
    redis_url: str,
    redis_server: RedisServer,
    memcached_url: str,
    memcached_server: MemcachedServer,
) -> None:
    """An attacker with write access to the backend stores an object with
    cachelib's (or the memcached client's) own pickling; reading it through
    the store never unpickles it.
    """
    marker = tmp_path / "pwned"
    memcached = memcached_server.client(serde=pickle_serde)
    caches: list[tuple[BaseCache, t.Callable[[], object]]] = [
        (fs := FileSystemCache(str(tmp_path / "fs")), lambda: fs.set("sess:evil", Touch(marker))),
        (simple := SimpleCache(), lambda: simple.set("sess:evil", Touch(marker))),
        (
            redis_cache := RedisCache(redis_server.host, redis_server.port),
            lambda: redis_cache.set("sess:evil", Touch(marker)),
        ),
        (
            MemcachedCache(memcached_client([(memcached_server.host, memcached_server.port)])),
            # noreply=False: stored before the store reads it.
            lambda: memcached.set("sess:evil", Touch(marker), noreply=False),
        ),
    ]
    for cache, plant in caches:
        store = CachelibStore(cache)
        plant()
        with pytest.raises(CorruptDocument):
            store.get("evil")
        with pytest.raises(CorruptDocument):
            store.get_and_touch("evil")
        with pytest.raises(CorruptDocument):
            store.merge("evil", {"a": 1}, [])
        store.touch("evil", doc(60))
        assert not marker.exists(), type(cache).__name__
    memcached.close()


@pytest.mark.parametrize(
    "client",
    [
        lambda: Client(("127.0.0.1", 1), serde=pickle_serde),
        lambda: PooledClient(("127.0.0.1", 1), serde=pickle_serde),
        lambda: Client(("127.0.0.1", 1), deserializer=lambda key, value, flags: value),
        lambda: HashClient([("127.0.0.1", 1)], serde=pickle_serde),
        lambda: object(),
    ],
    ids=[
        "Client+pickle",
        "PooledClient+pickle",
        "Client+deserializer",
        "HashClient+pickle",
        "other",
    ],
)
def test_memcached_clients_that_may_unpickle_are_refused(
    client: t.Callable[[], object],
) -> None:
    with pytest.raises(ValueError, match="could run code"):
        CachelibStore(MemcachedCache(client()))


def test_raw_pymemcache_clients_are_accepted() -> None:
    for client in (
        Client(("127.0.0.1", 1)),
        PooledClient(("127.0.0.1", 1)),
        HashClient([("127.0.0.1", 1), ("127.0.0.1", 2)]),
    ):
        CachelibStore(MemcachedCache(client))


# -- memcached ------------------------------------------------------------------------


def test_memcached_key_value_and_ttl(
    memcached_url: str, memcached_server: MemcachedServer
) -> None:
    store = store_from_url(memcached_url, SETTINGS)
    document = doc(100, a=[])
    store.set("abc", document)
    client = memcached_server.client()
    try:
        assert client.get("sess:abc") == encode(document).encode()
    finally:
        client.close()
    assert store.get("abc") == document
    ttl = memcached_meta_ttl(memcached_server.host, memcached_server.port, "sess:abc")
    assert ttl is not None and 100 <= ttl <= 102


def test_memcached_lifetime_beyond_30_days(
    memcached_url: str, memcached_server: MemcachedServer
) -> None:
    """memcached reads expiries over 30 days as Unix times: a 90-day session
    must not expire at once.
    """
    store = store_from_url(memcached_url, SETTINGS)
    store.set("abc", doc(90 * 86400, a=1))
    assert store.get("abc") is not None
    ttl = memcached_meta_ttl(memcached_server.host, memcached_server.port, "sess:abc")
    assert ttl is not None and 90 * 86400 - 5 <= ttl <= 90 * 86400 + 2
    store.touch("abc", doc(60 * 86400))
    ttl = memcached_meta_ttl(memcached_server.host, memcached_server.port, "sess:abc")
    assert ttl is not None and 60 * 86400 - 5 <= ttl <= 60 * 86400 + 2


def test_memcached_lifetime_beyond_2038_is_kept_until_then(
    memcached_url: str, memcached_server: MemcachedServer
) -> None:
    """memcached keeps Unix-time expiries in 32 bits and drops an entry whose
    expiry is 2**31 or later at once: a 20-year session is kept until
    2038-01-19 instead.
    """
    store = store_from_url(memcached_url, SETTINGS)
    store.set("abc", doc(20 * 365 * 86400, a=1))
    assert store.get("abc") is not None
    ttl = memcached_meta_ttl(memcached_server.host, memcached_server.port, "sess:abc")
    assert ttl is not None and abs(ttl - (2**31 - 1 - time.time())) <= 5


def test_memcached_down_raises_then_recovers(
    memcached_url: str, memcached_server: MemcachedServer
) -> None:
    store = store_from_url(memcached_url, SETTINGS)
    store.set("abc", doc(None, a=1))
    memcached_server.stop()
    try:
        for call in (
            lambda: store.get("abc"),
            lambda: store.set("abc", doc(None, a=2)),
            lambda: store.merge("abc", {"a": 3}, []),
            lambda: store.touch("abc", doc(None)),
            lambda: store.destroy("abc"),
        ):
            with pytest.raises(Exception) as info:
                call()
            assert not isinstance(info.value, CorruptDocument)
    finally:
        memcached_server.start()
    store.set("abc", doc(None, a=4))
    assert store.get("abc") == doc(None, a=4)


def test_memcached_several_servers_raise_for_a_dead_one(
    memcached_url: str, memcached_server: MemcachedServer
) -> None:
    """With one of two servers down, the keys it holds raise every time
    (they are not quietly moved to the other server, nor read as missing).
    """
    dead = free_port()
    url = f"memcached://{memcached_server.host}:{memcached_server.port},127.0.0.1:{dead}"
    store = store_from_url(url, SETTINGS)
    outcomes = set()
    for n in range(30):
        sid = f"s{n}"
        try:
            store.set(sid, doc(None, n=n))
        except Exception:
            outcomes.add("dead")
            for _ in range(2):
                with pytest.raises(Exception):  # noqa: B017 - any client error
                    store.get(sid)
            continue
        outcomes.add("live")
        assert store.get(sid) == doc(None, n=n)
    assert outcomes == {"live", "dead"}


def test_memcached_urls(memcached_server: MemcachedServer) -> None:
    one = store_from_url("memcached://example.com", SETTINGS)
    assert isinstance(one, CachelibStore)
    client = one.cache._client  # type: ignore[attr-defined]
    assert isinstance(client, PooledClient) and client.server == ("example.com", 11211)
    many = store_from_url("memcached://a:1,[::1]:2", SETTINGS)
    client = many.cache._client  # type: ignore[attr-defined]
    assert isinstance(client, HashClient) and set(client.clients) == {"a:1", "::1:2"}
    for bad in ("memcached://", "memcached://a:b", "memcached://a:1/x", "memcached://u@a:1"):
        with pytest.raises(ValueError):
            store_from_url(bad, SETTINGS)


# -- Redis caches ---------------------------------------------------------------------------


def test_redis_cache_gets_connect_redis_format(redis_url: str, redis_server: RedisServer) -> None:
    cache = RedisCache(redis_server.host, redis_server.port, key_prefix="app:")
    store = CachelibStore(cache, ttl=600)
    store.set("abc", doc(None, a=[]))
    with redis_server.client() as client:
        assert client.get("app:sess:abc") == encode(doc(None, a=[])).encode()
        assert client.ttl("app:sess:abc") == 600
    assert store.merge("abc", {"b": {}}, [])
    assert store.get("abc") == doc(None, a=[], b={})


# -- generic caches ----------------------------------------------------------------------


class RefusingCache(BaseCache):
    """A backend whose writes fail, as cachelib reports it: False."""

    def set(self, key: str, value: t.Any, timeout: t.Any = None) -> bool:
        return False


def test_failed_write_raises() -> None:
    with pytest.raises(RuntimeError, match="RefusingCache.set"):
        CachelibStore(RefusingCache()).set("abc", doc(None, a=1))


def test_generic_cache_cannot_list(tmp_path: Path) -> None:
    for store in (CachelibStore(SimpleCache()), CachelibStore(FileSystemCache(str(tmp_path)))):
        for method in ("all", "length", "clear"):
            assert not implements(store, method)
            with pytest.raises(NotImplementedError, match=f"CachelibStore.*{method}"):
                getattr(store, method)()


def test_generic_cache_lifetimes(tmp_path: Path) -> None:
    cache = SimpleCache()
    store = CachelibStore(cache, key_prefix="p/", ttl=50)
    store.set("abc", doc(None, a=1))
    expiry = cache._cache["p/abc"][0]
    assert 50 <= expiry - time.time() <= 51
    store.touch("abc", doc(200))
    assert 200 <= cache._cache["p/abc"][0] - time.time() <= 201
    store.touch("ghost", doc(200))
    assert "p/ghost" not in cache._cache
    assert store.merge("abc", {"b": 2}, [])
    assert store.get("abc") == doc(None, a=1, b=2)
