"""The real-server fixtures of server_fixtures.py actually work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from server_fixtures import ExpressAppFactory
from server_fixtures import MemcachedServer
from server_fixtures import RedisClusterServer
from server_fixtures import RedisServer
from server_fixtures import express_original_max_ages

# Real servers and subprocesses: deselect with -m "not slow" for a quick run.
pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


def test_redis_set_get(redis_url: str, redis_server: RedisServer) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == "hello"


def test_redis_url_is_flushed(redis_url: str) -> None:
    # The previous test left "greeting" behind; redis_url must have emptied it.
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0


def test_redis_stop_then_start_on_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    with redis_server.client() as client:
        client.set("before-restart", "1")
    redis_server.stop()
    try:
        # No retries: redis-py's default backoff would only make this slow.
        no_retry = Retry(NoBackoff(), 0)
        with redis_server.client(socket_connect_timeout=1, retry=no_retry) as client:
            with pytest.raises(redis.ConnectionError):
                client.ping()
    finally:
        redis_server.start()
    assert redis_server.port == port
    with redis_server.client() as client:
        assert client.ping()
        # --save "" and no AOF: a restart starts empty.
        assert client.get("before-restart") is None


# --------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------


def test_redis_cluster_spreads_keys(
    redis_cluster_url: str, redis_cluster: RedisClusterServer
) -> None:
    assert len(redis_cluster.startup_nodes) == 3
    with RedisCluster.from_url(redis_cluster_url, decode_responses=True) as client:
        # Find keys owned by every one of the 3 primaries.
        by_node: dict[str, str] = {}
        for i in range(1000):
            key = f"key-{i}"
            by_node.setdefault(client.get_node_from_key(key).name, key)
            if len(by_node) == 3:
                break
        assert len(by_node) == 3
        keys = list(by_node.values())
        assert len({client.keyslot(key) for key in keys}) == 3
        for key in keys:
            client.set(key, f"value of {key}")
        for key in keys:
            assert client.get(key) == f"value of {key}"

    with redis_cluster.client() as client:
        # The fixture's own client sees the same data.
        assert client.get(keys[0]) == f"value of {keys[0]}".encode()

    for host, port in redis_cluster.startup_nodes:
        with redis.Redis(host, port, decode_responses=True) as node:
            info = node.execute_command("CLUSTER INFO")
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_known_nodes"]) == 3


def test_redis_cluster_url_is_flushed(redis_cluster_url: str) -> None:
    with RedisCluster.from_url(redis_cluster_url) as client:
        assert client.dbsize(target_nodes=RedisCluster.PRIMARIES) == 0


# --------------------------------------------------------------------------
# Memcached
# --------------------------------------------------------------------------


def test_memcached_set_get(memcached_url: str, memcached_server: MemcachedServer) -> None:
    from pymemcache.client.base import Client

    parsed = urllib.parse.urlsplit(memcached_url)
    assert parsed.scheme == "memcached"
    assert (parsed.hostname, parsed.port) == ("127.0.0.1", memcached_server.port)
    client = Client((parsed.hostname, parsed.port), connect_timeout=2, timeout=2)
    try:
        client.set("greeting", b"hello")
        assert client.get("greeting") == b"hello"
    finally:
        client.close()


def test_memcached_url_is_flushed(memcached_url: str, memcached_server: MemcachedServer) -> None:
    client = memcached_server.client(connect_timeout=2, timeout=2)
    try:
        assert client.get("greeting") is None
    finally:
        client.close()


# --------------------------------------------------------------------------
# Express reference app
# --------------------------------------------------------------------------


def _sign(sid: str, secret: str) -> str:
    """The signed cookie value of docs/behaviour.rst, "The cookie" (cookie-signature)."""
    mac = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    return "s:" + sid + "." + base64.b64encode(mac).decode().rstrip("=")


def test_express_app_session_round_trip(
    express_app_factory: ExpressAppFactory, redis_url: str
) -> None:
    app = express_app_factory(redis_url, ["new secret", "old secret"])
    with requests.Session() as http, redis.Redis.from_url(redis_url) as store:
        first = http.get(app.url + "/get", timeout=10)
        assert first.status_code == 200
        assert first.json()["data"] == {}
        assert "set-cookie" not in first.headers  # saveUninitialized: false

        written = http.post(app.url + "/set", json={"a": 1}, timeout=10)
        assert written.status_code == 200
        sid = written.json()["id"]
        assert written.json()["data"] == {"a": 1}
        raw_cookie = http.cookies["connect.sid"]
        assert urllib.parse.unquote(raw_cookie) == _sign(sid, "new secret")
        assert raw_cookie.startswith("s%3A")  # percent-encoded on the wire

        again = http.get(app.url + "/get", timeout=10).json()
        assert again["id"] == sid
        assert again["data"] == {"a": 1}

        document = json.loads(store.get(f"sess:{sid}"))
        assert document["a"] == 1
        assert isinstance(document["cookie"], dict)
        assert document["cookie"]["expires"] is None  # browser-session cookie
        assert 0 < store.ttl(f"sess:{sid}") <= 86400  # connect-redis default TTL

        touched = http.post(app.url + "/touch", timeout=10).json()
        assert touched["id"] == sid

        regenerated = http.post(app.url + "/regenerate", timeout=10).json()
        assert regenerated["id"] != sid
        assert regenerated["data"] == {}
        assert store.exists(f"sess:{sid}") == 0

        http.post(app.url + "/set", json={"b": 2}, timeout=10)
        new_sid = regenerated["id"]
        assert store.exists(f"sess:{new_sid}") == 1
        destroyed = http.post(app.url + "/destroy", timeout=10).json()
        assert destroyed["destroyed"] == new_sid
        assert store.exists(f"sess:{new_sid}") == 0


def test_express_app_cookie_max_age_and_stop(
    express_app_factory: ExpressAppFactory, redis_url: str
) -> None:
    app = express_app_factory(redis_url, "only secret", cookie_max_age_ms=60_000)
    with requests.Session() as http, redis.Redis.from_url(redis_url) as store:
        body = http.post(app.url + "/set", json={"a": 1}, timeout=10).json()
        assert body["cookie"]["originalMaxAge"] in express_original_max_ages(60_000)
        assert body["cookie"]["expires"] is not None
        set_cookie = http.post(app.url + "/set", json={"a": 2}, timeout=10).headers
        assert "Expires=" in set_cookie["set-cookie"]  # re-sent: modified + expiring
        assert 0 < store.ttl(f"sess:{body['id']}") <= 60
    app.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(app.url + "/health", timeout=2)
