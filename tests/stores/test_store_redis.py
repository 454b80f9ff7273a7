"""RedisStore against a real redis-server and a real 3-node Redis Cluster:
connect-redis' key, value and TTL, the Lua merge, SCAN, recovery.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
import typing as t

import pytest
import redis
from flask import Flask
from flask import session
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from flask_connect_session import ConnectSession
from flask_connect_session import RedisStore
from flask_connect_session import Store
from flask_connect_session.document import encode
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores.base import apply_changes
from flask_connect_session.stores.redis import SCRIPT_LIMIT
from flask_connect_session.stores.redis import Lifetimes
from flask_connect_session.stores.redis import ReadCache
from flask_connect_session.stores.redis_asyncio import AsyncRedisStore

from async_bridge import Blocking
from async_bridge import loop
from server_fixtures import RedisClusterServer
from server_fixtures import RedisServer
from store_harness import cookie
from store_harness import doc

pytestmark = pytest.mark.slow


@pytest.fixture
def client(redis_url: str, redis_server: RedisServer) -> t.Iterator[redis.Redis]:
    with redis_server.client() as client:
        yield client


def learnt_ifeq(store: RedisStore) -> RedisStore:
    """``store`` after one fast merge, which learns whether the server has
    ``SET ... IFEQ``: the command counts of later merges are the steady
    state.
    """
    store.set("warm-up", doc(None))
    store.get("warm-up")
    assert store.merge("warm-up", {"a": 1}, [])
    store.destroy("warm-up")
    return store


@pytest.fixture
def store(redis_url: str) -> RedisStore:
    return learnt_ifeq(RedisStore(redis_url))


def assert_members(store: Store, sid: str, **expected: t.Any) -> None:
    """``sid`` is stored with these members (among others)."""
    document = store.get(sid)
    assert document is not None
    assert {name: document.get(name) for name in expected} == expected


def calls_of(client: redis.Redis) -> dict[str, int]:
    """The commands the server ran since its stats were reset, by name
    (not the test's own ``TTL`` checks).
    """
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in stats.items()
        if name not in ("cmdstat_config|resetstat", "cmdstat_info", "cmdstat_ttl")
    }


# -- connect-redis' format ----------------------------------------------------


def test_key_value_and_ttl_are_connect_redis(store: RedisStore, client: redis.Redis) -> None:
    """``sess:<sid>`` holds the compact JSON document; the TTL is the
    cookie's remaining seconds rounded up.
    """
    document = doc(100.3, user="ann", cart=[])
    store.set("abc", document)
    assert client.get("sess:abc") == encode(document).encode()
    assert client.ttl("sess:abc") == 101
    assert 100_000 < client.pttl("sess:abc") <= 101_000


def test_browser_session_gets_the_configured_ttl(redis_url: str, client: redis.Redis) -> None:
    store = RedisStore(redis_url, ttl=1234)
    store.set("abc", doc(None, a=1))
    assert client.ttl("sess:abc") == 1234
    store.touch("abc", doc(None))
    assert client.ttl("sess:abc") == 1234
    assert store.merge("abc", {"cookie": cookie(50)}, [])
    assert client.ttl("sess:abc") == 50


def test_touch_is_expire(store: RedisStore, client: redis.Redis) -> None:
    store.set("abc", doc(None, a=1))
    store.touch("abc", doc(77))
    assert client.ttl("sess:abc") == 77
    store.touch("abc", doc(-3))  # EXPIRE with a past TTL deletes, as in connect-redis
    assert client.exists("sess:abc") == 0


def test_get_and_touch_sets_original_max_age(store: RedisStore, client: redis.Redis) -> None:
    document = doc(10, a=1)
    document["cookie"]["originalMaxAge"] = 3_600_500  # ms: 3600.5 s -> 3601
    client.set("sess:abc", encode(document))
    assert store.get_and_touch("abc") == document
    assert client.ttl("sess:abc") == 3601


def test_custom_prefix_and_glob_characters(redis_url: str, client: redis.Redis) -> None:
    store = RedisStore(redis_url, key_prefix="app*[1]?:")
    other = RedisStore(redis_url, key_prefix="app1x:")
    store.set("a", doc(None, n=1))
    other.set("b", doc(None, n=2))
    client.set("unrelated", "keep me")
    assert client.exists("app*[1]?:a") == 1
    assert store.all() == {"a": doc(None, n=1)}
    assert store.length() == 1
    store.clear()
    assert store.length() == 0
    assert other.all() == {"b": doc(None, n=2)}
    assert client.get("unrelated") == b"keep me"


def test_decode_responses_client(redis_server: RedisServer, redis_url: str) -> None:
    with redis_server.client(decode_responses=True) as client:
        store = RedisStore(client)
        store.set("é", doc(None, text="é😀"))
        assert store.get("é") == doc(None, text="é😀")
        assert store.get_and_touch("é") == doc(None, text="é😀")
        assert store.merge("é", {"more": "ü"}, [])
        assert store.all() == {"é": doc(None, text="é😀", more="ü")}


# -- the Lua merge ------------------------------------------------------------------


def test_merge_and_get_and_touch_are_one_round_trip_each(
    store: RedisStore, client: redis.Redis
) -> None:
    """After the script is loaded, a merge is a single EVALSHA and a load a
    single GETEX (the lifetime is the one the previous session had).
    """
    store.set("abc", doc(None, a=1))
    store.merge("abc", {"b": 2}, [])  # loads the script
    store.get_and_touch("abc")
    client.config_resetstat()
    assert store.merge("abc", {"c": 3, "cookie": cookie()}, ["a"])
    assert store.get_and_touch("abc") is not None
    stats = client.info("commandstats")
    assert {name for name in stats if not name.startswith("cmdstat_config")} == {
        "cmdstat_evalsha",
        "cmdstat_strlen",
        "cmdstat_get",
        "cmdstat_set",
        "cmdstat_getex",
    }
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_getex"]["calls"] == 1
    # The STRLEN, GET and SET counted are the ones the merge script ran.
    assert stats["cmdstat_strlen"]["calls"] == 1
    assert stats["cmdstat_get"]["calls"] == 1
    assert stats["cmdstat_set"]["calls"] == 1


def test_get_and_touch_corrects_a_lifetime_that_differs(
    store: RedisStore, client: redis.Redis
) -> None:
    """A session this process never saw, whose cookie lifetime differs from
    the previous one's, gets GETEX with the old guess, then an EXPIRE to its
    own lifetime; the next load of it is a single GETEX.
    """
    writer = RedisStore(client)  # another process
    writer.set("day", doc(None, a=1))  # browser-session cookie: the store TTL
    writer.set("minute", doc(60, a=1))  # maxAge 60 s
    store.get_and_touch("day")
    client.config_resetstat()
    assert store.get_and_touch("minute") is not None
    assert 58 <= client.ttl("sess:minute") <= 60
    stats = client.info("commandstats")
    assert stats["cmdstat_getex"]["calls"] == 1
    assert stats["cmdstat_expire"]["calls"] == 1
    client.config_resetstat()
    assert store.get_and_touch("minute") is not None
    assert "cmdstat_expire" not in client.info("commandstats")


def test_sessions_of_different_lifetimes_read_in_turn_are_one_round_trip(
    store: RedisStore, client: redis.Redis
) -> None:
    """Once this process has seen them, browser-session and ``maxAge``
    sessions read alternately each cost one GETEX with their own lifetime,
    never a corrective EXPIRE; a session this process wrote is right first
    time.
    """
    writer = RedisStore(client)  # another process
    writer.set("day", doc(None, a=1))
    writer.set("minute", doc(60, a=1))
    store.get_and_touch("day")
    store.get_and_touch("minute")
    store.set("hour", doc(3600, a=1))
    client.config_resetstat()
    for sid, lifetime in [("day", 86400), ("minute", 60), ("hour", 3600)] * 2:
        assert store.get_and_touch(sid) is not None
        assert lifetime - 2 <= client.ttl(f"sess:{sid}") <= lifetime
    calls = {
        name: stat["calls"]
        for name, stat in client.info("commandstats").items()
        if name not in ("cmdstat_ttl", "cmdstat_config|resetstat")
    }
    assert calls == {"cmdstat_getex": 6}


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_scripts_are_loaded_again_after_a_script_flush(
    redis_url: str, client: redis.Redis, flavour: str
) -> None:
    """A server that lost its scripts (restarted, ``SCRIPT FLUSH``) gets
    them again: the merge and the user index still work.
    """
    store: Store = RedisStore(redis_url)
    if flavour == "asyncio":
        async_store = AsyncRedisStore(redis_url)
        store = Blocking(async_store)
    store.set("abc", doc(None, a=1))
    assert store.merge("abc", {"b": 2}, [])  # nothing read: the script
    store.index_add("ann", "abc", time.time() + 60)
    client.script_flush()
    assert store.merge("abc", {"c": 3}, [])
    store.index_add("ann", "abd", time.time() + 60)
    assert_members(store, "abc", a=1, b=2, c=3)
    assert sorted(m.decode() for m in client.zrange("sess-user:ann", 0, -1)) == ["abc", "abd"]
    if flavour == "asyncio":
        loop().run(async_store.aclose())


def test_merge_keeps_untouched_members_byte_for_byte(
    store: RedisStore, client: redis.Redis
) -> None:
    """A document written by someone else (here pretty-printed, escaped as
    ASCII) keeps its untouched members exactly as they were written.
    """
    original = {
        "cookie": cookie(),
        "big": 123456789012345678901234567890,
        "float": 0.30000000000000004,
        "astral": "😀",
        "empty": [],
    }
    text = json.dumps(original, indent=2, ensure_ascii=True)
    client.set("sess:abc", text)
    assert store.merge("abc", {"added": {}}, [])
    stored = client.get("sess:abc")
    assert stored is not None
    for name in ("big", "float", "astral", "empty"):
        member = json.dumps({name: original[name]}, indent=2, ensure_ascii=True)[4:-2]
        assert member.encode() in stored
    assert json.loads(stored) == original | {"added": {}}


@pytest.mark.parametrize(
    "name",
    ["\ud800", "x\udfffy", "😀", "\\", '"', "\u0000", "\u2028", "é"],
    ids=repr,
)
def test_merge_matches_escaped_and_odd_names(
    store: RedisStore, client: redis.Redis, name: str
) -> None:
    """Names the stored JSON escapes (as JSON.stringify or ensure_ascii do)
    are recognised, lone surrogates included.
    """
    document = {"cookie": cookie(), name: 1, "other": 2}
    for text in (json.dumps(document), json.dumps(document, ensure_ascii=False)):
        try:
            data = text.encode()
        except UnicodeEncodeError:
            continue  # a raw lone surrogate is not UTF-8; Express never writes one
        client.set("sess:abc", data)
        assert store.merge("abc", {name: 3}, [])
        assert store.get("abc") == {"cookie": cookie(), name: 3, "other": 2}
        assert store.merge("abc", {}, [name])
        assert store.get("abc") == {"cookie": cookie(), "other": 2}


def test_merge_of_lone_surrogate_value(store: RedisStore) -> None:
    store.set("abc", doc(None, a="\udc80"))
    assert store.get("abc") == doc(None, a="\udc80")
    assert store.merge("abc", {"b": "x\ud800"}, [])
    assert store.get("abc") == doc(None, a="\udc80", b="x\ud800")


def test_merge_refuses_documents_it_cannot_read(store: RedisStore, client: redis.Redis) -> None:
    for text in (
        '{"cookie": {}, "a": 01}',
        '{"cookie": {}, "a": tru}',
        '{"cookie": {}, "a": [}',
        '{"cookie": {}, "a": "\\x"}',
        '{"cookie": {}, "a": "\t"}',
        '{"cookie": {}, "cookie": 1}',  # the last duplicate wins, as in JSON.parse
        '{"cookie": {}, "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ):
        client.set("sess:abc", text)
        with pytest.raises(CorruptDocument):
            store.merge("abc", {"b": 1}, [])
        assert client.get("sess:abc") == text.encode()


def _json_values() -> st.SearchStrategy[t.Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
    )

    def containers(inner: st.SearchStrategy[t.Any]) -> st.SearchStrategy[t.Any]:
        return st.lists(inner, max_size=3) | st.dictionaries(
            st.text(max_size=4), inner, max_size=3
        )

    return st.recursive(scalars, containers, max_leaves=8)


names = st.text(max_size=4)


@settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.dictionaries(names, _json_values(), max_size=6),
    changes=st.dictionaries(names, _json_values(), max_size=4),
    removed=st.lists(names, max_size=3),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
)
def test_merge_equals_apply_changes(
    store: RedisStore,
    client: redis.Redis,
    data: dict[str, t.Any],
    changes: dict[str, t.Any],
    removed: list[str],
    indent: int | None,
    ascii_only: bool,
) -> None:
    """For any document, however it was formatted, the Lua merge gives what
    Python's ``apply_changes`` gives on the parsed document.
    """
    data.pop("cookie", None)
    document = {"cookie": cookie(), **data}
    client.set("sess:abc", json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode())
    assert store.merge("abc", changes, removed)
    stored = client.get("sess:abc")
    assert stored is not None
    merged = json.loads(stored)
    assert merged == apply_changes(json.loads(json.dumps(document)), changes, removed)
    # Untouched members keep their order; new ones come last, as in Python.
    assert list(merged) == list(apply_changes(dict(document), changes, removed))


# -- listing on a cluster, recovery, URLs ----------------------------------------------


def test_cluster_lists_and_clears_every_slot(
    redis_cluster_url: str, redis_cluster: RedisClusterServer
) -> None:
    with redis_cluster.client() as client:
        store = RedisStore(client)
        sessions = {f"sid-{n}": doc(None, n=n) for n in range(300)}
        for sid, document in sessions.items():
            store.set(sid, document)
        client.set("unrelated", "keep me")
        # The keys really are spread over the three primaries.
        per_node = [node.redis_connection.dbsize() for node in client.get_primaries()]
        assert len([count for count in per_node if count > 0]) == 3
        assert store.length() == 300
        assert store.all() == sessions
        store.clear()
        assert store.length() == 0
        assert client.get("unrelated") == b"keep me"


def test_cluster_merge_and_get_and_touch(
    redis_cluster_url: str, redis_cluster: RedisClusterServer
) -> None:
    with redis_cluster.client() as client:
        store = RedisStore(client)
        for n in range(20):  # keys in many slots, so on every node
            store.set(f"s{n}", doc(None, a=n))
            assert store.merge(f"s{n}", {"b": [], "cookie": cookie(60)}, ["a"])
            got = store.get_and_touch(f"s{n}")
            assert got is not None and got["b"] == [] and "a" not in got
            # Touched to originalMaxAge (60 s), from the cookie merged in.
            assert 59 <= client.ttl(f"sess:s{n}") <= 60


def test_valkey_cluster_client_works_as_the_backend(
    redis_cluster_url: str, redis_cluster: RedisClusterServer
) -> None:
    """valkey-py's ValkeyCluster (same protocol) routes every operation and
    the merge script by slot, and listing walks every primary.
    """
    from valkey.cluster import ClusterNode
    from valkey.cluster import ValkeyCluster

    nodes = [ClusterNode(host, port) for host, port in redis_cluster.startup_nodes]
    with ValkeyCluster(startup_nodes=nodes) as client:
        store = RedisStore(client)
        for n in range(30):  # keys in many slots, so on every node
            store.set(f"v{n}", doc(None, a=n))
            assert store.get_and_touch(f"v{n}") is not None
            assert store.merge(f"v{n}", {"b": [], "cookie": cookie(60)}, ["a"])
        assert store.length() == 30
        data = {
            sid: {k: v for k, v in d.items() if k != "cookie"} for sid, d in store.all().items()
        }
        assert data == {f"v{n}": {"b": []} for n in range(30)}
        assert 59 <= client.ttl("sess:v29") <= 60  # the last one merged
        store.clear()
        assert store.length() == 0
        app = Flask(__name__)
        app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=client)
        assert isinstance(ConnectSession(app).store, RedisStore)


def test_store_recovers_after_redis_restarts(redis_url: str, redis_server: RedisServer) -> None:
    """With Redis down an operation raises (a 500 through the app, as
    StoreError); once Redis is back the same store object works again.
    """
    store = RedisStore(redis_url)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=store)
    ConnectSession(app)

    @app.post("/set")
    def set_value() -> str:
        session["n"] = 1
        return "ok"

    web = app.test_client()
    assert web.post("/set").status_code == 200
    redis_server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            store.get("abc")
        assert web.post("/set").status_code == 500
    finally:
        redis_server.start()
    # --save "" and no AOF: the restarted server is empty; the store works.
    store.set("abc", doc(None, a=1))
    assert store.get("abc") == doc(None, a=1)
    assert web.post("/set").status_code == 200


def test_url_sets_timeouts_that_the_query_overrides(redis_url: str) -> None:
    kwargs = RedisStore(redis_url).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 5.0 and kwargs["socket_connect_timeout"] == 5.0
    url = redis_url + "?socket_timeout=1.5&socket_connect_timeout=0.5"
    kwargs = RedisStore(url).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5 and kwargs["socket_connect_timeout"] == 0.5


def test_valkey_url_is_redis(redis_server: RedisServer, redis_url: str) -> None:
    store = RedisStore(f"valkey://{redis_server.host}:{redis_server.port}/0", ttl=60)
    store.set("abc", doc(None, a=1))
    assert RedisStore(redis_url).get("abc") == doc(None, a=1)


@pytest.mark.parametrize(
    "url", ["redis://localhost/sessions", "redis://localhost:port", "http://localhost"]
)
def test_malformed_url(url: str) -> None:
    with pytest.raises(ValueError):
        RedisStore(url)


def test_malformed_url_in_config_names_the_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE="redis://localhost/sessions")
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE"):
        ConnectSession(app)


@pytest.mark.parametrize("read", ["get_and_touch", "get"])
def test_merge_after_a_read_swaps_in_the_document_built_here(
    store: RedisStore, client: redis.Redis, read: str
) -> None:
    """A merge of a session this store just read (with or without a touch,
    ``CONNECT_SESSION_TOUCH_AFTER``), unchanged since, writes the document
    Python built (untouched members re-encoded: ``1E2`` becomes ``100.0``) in
    one script call, and the next merge can do so again.
    """
    assert not store.merge("missing", {"x": 1}, [])  # loads the script
    client.set("sess:abc", '{"a":1,"big":1E2,"cookie":{"originalMaxAge":null}}')
    getattr(store, read)("abc")
    client.config_resetstat()
    assert store.merge("abc", {"c": 3}, ["a"])
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_get"]["calls"] == 1 and stats["cmdstat_set"]["calls"] == 1
    assert client.get("sess:abc") == b'{"big":100.0,"cookie":{"originalMaxAge":null},"c":3}'
    assert "abc" in store._read  # what was written is remembered for the next merge
    client.set("sess:abc", '{"big":1E2,"cookie":{"originalMaxAge":null},"c":3}', keepttl=True)
    assert store.merge("abc", {"d": 4}, [])  # not what was written last: spliced
    assert client.get("sess:abc") == b'{"big":1E2,"cookie":{"originalMaxAge":null},"c":3,"d":4}'


def test_merge_after_a_concurrent_write_splices_onto_it_in_one_call(
    store: RedisStore, client: redis.Redis
) -> None:
    """If another writer changed the session since this store read it, the
    merge does not overwrite that change: the same script call splices the
    changes in instead, so contention costs no extra round trip.
    """
    store.set("abc", doc(None, a=1))
    store.get_and_touch("abc")
    other = RedisStore(client)  # another process, as far as the cache knows
    assert other.merge("abc", {"theirs": True}, [])  # also loads the script
    client.config_resetstat()
    assert store.merge("abc", {"mine": True}, [])
    stats = client.info("commandstats")
    calls = {
        name: stat["calls"]
        for name, stat in stats.items()
        if not name.startswith("cmdstat_config")
    }
    assert calls == {
        "cmdstat_evalsha": 1,
        "cmdstat_strlen": 1,  # inside the script
        "cmdstat_get": 1,
        "cmdstat_set": 1,
    }
    document = store.get("abc")
    assert document is not None
    assert document["theirs"] is True and document["mine"] is True and document["a"] == 1


def test_merge_after_a_destroy_is_refused_on_the_fast_path(store: RedisStore) -> None:
    """A session read, then destroyed by another request, is not written back."""
    store.set("abc", doc(None, a=1))
    store.get_and_touch("abc")
    store.destroy("abc")
    assert store.merge("abc", {"b": 2}, []) is False
    assert store.get("abc") is None


def test_valkey_client_works_as_the_backend(redis_url: str) -> None:
    """A valkey-py client (the protocol is the same) drives every operation,
    the scripts included; as CONNECT_SESSION_STORE it gets a RedisStore.
    """
    import valkey
    from flask import Flask

    from flask_connect_session import ConnectSession

    client = valkey.Valkey.from_url(redis_url)
    store = RedisStore(client)
    store.set("v", doc(60, a=1))
    assert store.get_and_touch("v") == store.get("v")
    assert store.merge("v", {"b": [], "cookie": cookie(60)}, ["a"])
    assert store.merge("v", {"c": {}}, [])  # no read first: the splicing script
    document = store.get("v")
    assert document is not None
    assert {k: v for k, v in document.items() if k != "cookie"} == {"b": [], "c": {}}
    assert store.length() == 1 and list(store.all()) == ["v"]
    assert 58 <= client.ttl("sess:v") <= 60
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=client)
    assert isinstance(ConnectSession(app).store, RedisStore)


# -- SET ... IFEQ (Valkey 8.1+, Redis 8.4+) -----------------------------------


@pytest.fixture
def valkey_client(valkey_url: str, valkey_server: RedisServer) -> t.Iterator[redis.Redis]:
    with valkey_server.client() as client:
        yield client


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_merge_is_one_set_ifeq_where_the_server_has_it(
    valkey_url: str, valkey_client: redis.Redis, flavour: str
) -> None:
    """On Valkey 9.1 a merge of a session unchanged since this process read
    it is one ``SET key new IFEQ old``, no script: ``KEEPTTL`` while the
    cookie is unchanged, ``EX`` with the new lifetime when it changed; what
    was written is remembered, so the next merge does it again.
    """
    store: Store = RedisStore(valkey_url)
    if flavour == "asyncio":
        async_store = AsyncRedisStore(valkey_url)
        store = Blocking(async_store)
    store.set("abc", doc(None, a=1))
    valkey_client.expire("sess:abc", 500)
    store.get("abc")
    valkey_client.config_resetstat()
    assert store.merge("abc", {"b": 2}, ["a"])
    assert calls_of(valkey_client) == {"set": 1}
    assert 498 <= valkey_client.ttl("sess:abc") <= 500  # KEEPTTL
    assert store.merge("abc", {"cookie": cookie(60), "c": []}, [])
    assert calls_of(valkey_client) == {"set": 2}
    assert 58 <= valkey_client.ttl("sess:abc") <= 60
    stored = json.loads(valkey_client.get("sess:abc") or b"")
    assert stored["b"] == 2 and stored["c"] == [] and "a" not in stored
    assert stored["cookie"]["originalMaxAge"] == 60_000
    if flavour == "asyncio":
        loop().run(async_store.aclose())


def test_set_ifeq_that_finds_another_write_falls_back_to_the_splice(
    valkey_url: str, valkey_client: redis.Redis
) -> None:
    """If another process wrote the session since it was read, ``SET ...
    IFEQ`` writes nothing and the merge script splices the change in: both
    writes are kept. A merge after a destroy writes nothing at all.
    """
    store, other = RedisStore(valkey_url), RedisStore(valkey_url)
    store.set("abc", doc(None, a=1))
    store.get("abc")
    other.get("abc")
    assert other.merge("abc", {"theirs": 1}, [])
    assert not store.merge("missing", {"x": 1}, [])  # nothing read: loads the script
    valkey_client.config_resetstat()
    assert store.merge("abc", {"mine": 2}, [])
    assert calls_of(valkey_client) == {"set": 2, "evalsha": 1, "strlen": 1, "get": 1}
    assert_members(store, "abc", a=1, theirs=1, mine=2)
    other.destroy("abc")
    assert store.merge("abc", {"late": 3}, []) is False
    assert valkey_client.exists("sess:abc") == 0


def test_a_server_without_set_ifeq_merges_by_script_from_the_first_merge_on(
    redis_url: str, client: redis.Redis
) -> None:
    """Redis 7.0 has no ``SET ... IFEQ``: the first merge that could use it
    is refused (nothing written) and the script merges instead; no later
    merge tries it again.
    """
    store = RedisStore(redis_url)
    store.set("abc", doc(None, a=1))
    store.get("abc")
    client.config_resetstat()
    assert store.merge("abc", {"b": 2}, [])
    stats = client.info("commandstats")
    assert stats["cmdstat_set"]["failed_calls"] + stats["cmdstat_set"]["rejected_calls"] == 1
    store.get("abc")
    client.config_resetstat()
    assert store.merge("abc", {"c": 3}, [])
    assert calls_of(client) == {"evalsha": 1, "strlen": 1, "get": 1, "set": 1}
    assert_members(store, "abc", a=1, b=2, c=3)


# -- what a failure shows ------------------------------------------------------


def test_a_failed_pipeline_shows_neither_the_sid_nor_the_data(
    redis_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py quotes a failed pipeline command in its error, arguments
    included: the ``StoreError``, its log line and the chained error show
    the command's name and the server's reply, not the session's key or
    data (a session too long for the script is merged by a ``MULTI``
    pipeline; the server then refuses writes, out of memory).
    """
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=redis_url)
    ConnectSession(app)
    sids: list[str] = []

    @app.post("/big")
    def big() -> str:
        session["big"] = "x" * 70_000
        sids.append(session.id)
        return "ok"

    @app.post("/card")
    def card() -> str:
        session["card"] = "4111-1111-1111-1111"
        return "ok"

    browser = app.test_client()
    assert browser.post("/big").status_code == 200
    client.config_set("maxmemory", "1")
    try:
        with caplog.at_level(logging.ERROR):
            assert browser.post("/card").status_code == 500
    finally:
        client.config_set("maxmemory", "0")
    [sid] = sids
    errors = [record.exc_info[1] for record in caplog.records if record.exc_info]
    text = "\n".join(record.getMessage() for record in caplog.records)
    text += "".join(traceback.format_exception(errors[0]))
    assert "(SET ...) of pipeline caused error" in text and "maxmemory" in text
    assert sid[:6] in text and sid[:7] not in text
    assert "4111" not in text and "xxxxxxxx" not in text


# -- what a process remembers -------------------------------------------------------


def test_lifetimes_take_sessions_from_many_threads_at_once() -> None:
    """Threads noting sessions' lifetimes while the map is full (each note
    drops the oldest) never fail a request.
    """
    lifetimes = Lifetimes(size=100)
    failures: list[BaseException] = []

    def note(thread: int) -> None:
        try:
            for n in range(20_000):
                lifetimes.remember(f"{thread}-{n}", 60)
        except BaseException as exc:
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=note, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(lifetimes) <= 2 * 100  # still bounded


def test_values_too_long_for_the_script_are_not_kept() -> None:
    """The fast merge never uses a value longer than the script takes, so
    reads do not keep one (10,000 sessions of 1 MB would be 10 GB a process).
    """
    cache = ReadCache()
    cache.remember("small", b"x" * 100)
    cache.remember("big", b"x" * (SCRIPT_LIMIT + 1))
    assert "small" in cache and "big" not in cache
    cache.remember("small", b"x" * (SCRIPT_LIMIT + 1))  # grown past it
    assert "small" not in cache
