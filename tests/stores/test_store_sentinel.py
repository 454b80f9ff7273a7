"""``redis+sentinel://`` URLs: the store follows the master Redis Sentinel
names, through a real failover (a master, a replica and three sentinels).
"""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_connect_session import ConnectSession
from flask_connect_session import RedisStore
from flask_connect_session.errors import StoreError
from flask_connect_session.stores import StoreSettings
from flask_connect_session.stores import store_from_url

from conftest import SECRET
from conftest import add_views
from server_fixtures import RedisSentinelGroup

pytestmark = pytest.mark.slow

SETTINGS = StoreSettings("sess:", 86400)

#: How long a failover may take here (down after 1 s, then an election).
#: Seconds the sentinels may take to agree once one names the new master.
AGREEMENT_GRACE = 5.0
FAILOVER_DEADLINE = 25.0


def sentinel_store(url: str) -> RedisStore:
    store = store_from_url(url, SETTINGS)
    assert isinstance(store, RedisStore)
    return store


@pytest.mark.parametrize("scheme", ["redis+sentinel", "valkey+sentinel"])
def test_url_names_sentinels_service_db_and_password(scheme: str) -> None:
    store = sentinel_store(
        f"{scheme}://user:se%40cret@127.0.0.1:26379,[::1]/mymaster/3?socket_timeout=0.5"
    )
    pool = store.client.connection_pool
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["username"] == "user"
    assert pool.connection_kwargs["password"] == "se@cret"
    assert pool.connection_kwargs["socket_timeout"] == 0.5
    sentinels = [
        conn.connection_pool.connection_kwargs for conn in pool.sentinel_manager.sentinels
    ]
    assert [(kw["host"], kw["port"]) for kw in sentinels] == [("127.0.0.1", 26379), ("::1", 26379)]
    assert sentinels[0]["password"] is None  # the password is the master's
    assert "se@cret" not in repr(store) and "se%40cret" not in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:hunter2@127.0.0.1:26379",
        "redis+sentinel://:hunter2@127.0.0.1:26379/",
        "redis+sentinel://:hunter2@/mymaster",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster/zero",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster/0/1",
        "redis+sentinel://:hunter2@127.0.0.1:port/mymaster",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster?ssl=1",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster?socket_timeout=soon",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster?socket_timeout=nan",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster?socket_connect_timeout=-1",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster/99999999999999999999",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster/\u00b2",
    ],
)
def test_malformed_url_is_a_value_error_without_the_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        store_from_url(url, SETTINGS)
    assert "hunter2" not in str(info.value)


def test_bad_sentinel_url_fails_init_app_naming_the_url() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE="redis+sentinel://h:1/")
    with pytest.raises(ValueError, match="service_name"):
        ConnectSession(app)


def session_client(app: Flask, data: dict[str, int]) -> tuple[FlaskClient, str]:
    client = app.test_client()
    response = client.post("/set", json=data)
    assert response.status_code == 200
    return client, response.json["id"]


def test_requests_follow_a_failover(redis_sentinel: RedisSentinelGroup) -> None:
    """Kill the master: requests fail with StoreError only until Sentinel
    names the promoted replica, then succeed on the same app object, with
    the sessions stored (and replicated) before the failover intact.
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=redis_sentinel.url + "?socket_timeout=1&socket_connect_timeout=1",
    )
    ConnectSession(app)
    add_views(app)
    clients = [session_client(app, {"user": n}) for n in range(5)]
    old_master = redis_sentinel.master.port
    with redis_sentinel.master.client() as master:
        # Every write reached the replica before the master dies.
        assert master.execute_command("WAIT", 1, 5000) == 1

    redis_sentinel.master.kill()
    failures = 0
    deadline = time.monotonic() + FAILOVER_DEADLINE
    client, sid = clients[0]
    promoted_at = None
    while True:
        assert time.monotonic() < deadline, f"no failover:\n{redis_sentinel.tail()}"
        if promoted_at is None and redis_sentinel.master_port() not in (old_master, None):
            promoted_at = time.monotonic()
        try:
            response = client.get("/get")
        except StoreError:
            # Only while no master is reachable: until one sentinel names the
            # promoted replica, plus the moment the others take to agree (the
            # client may ask one that has not switched yet).
            assert promoted_at is None or time.monotonic() - promoted_at < AGREEMENT_GRACE
            failures += 1
            time.sleep(0.2)
            continue
        break
    assert failures > 0  # the kill was seen
    assert response.json == {"data": {"user": 0}, "id": sid, "new": False}
    assert redis_sentinel.master_port() not in (old_master, None)

    for n, (client, sid) in enumerate(clients):
        assert client.get("/get").json == {"data": {"user": n}, "id": sid, "new": False}
        response = client.post("/set", json={"after": n})
        assert response.json == {"data": {"user": n, "after": n}, "id": sid}
    assert redis_sentinel.replica is not None
    with redis_sentinel.replica.client() as promoted_master:
        assert promoted_master.info("replication")["role"] == "master"
        assert promoted_master.exists(*[f"sess:{sid}" for _, sid in clients]) == len(clients)
