"""Shared fixtures: apps built over every store, and real servers."""

from __future__ import annotations

import collections.abc as cabc
import time
import typing as t

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import Store

pytest_plugins = ("server_fixtures",)

SECRET = "keyboard cat"


def _memory_store(request: pytest.FixtureRequest) -> Store:
    return MemoryStore()


def _filesystem_store(request: pytest.FixtureRequest) -> Store:
    from flask_connect_session import FileSystemStore

    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    return FileSystemStore(factory.mktemp("sessions"))


def _redis_store(request: pytest.FixtureRequest) -> Store:
    from flask_connect_session.stores import StoreSettings
    from flask_connect_session.stores import store_from_url

    # Built from the URL, as CONNECT_SESSION_STORE = "redis://..." does.
    return store_from_url(request.getfixturevalue("redis_url"), StoreSettings("sess:", 86400))


def _redis_cluster_store(request: pytest.FixtureRequest) -> Store:
    from flask_connect_session import RedisStore

    request.getfixturevalue("redis_cluster_url")  # empties the cluster
    client = request.getfixturevalue("redis_cluster").client()
    request.addfinalizer(client.close)
    return RedisStore(client)


def _memcached_store(request: pytest.FixtureRequest) -> Store:
    from flask_connect_session.stores import StoreSettings
    from flask_connect_session.stores import store_from_url

    # A CachelibStore over MemcachedCache over pymemcache.
    return store_from_url(request.getfixturevalue("memcached_url"), StoreSettings("sess:", 86400))


def _sql_store(request: pytest.FixtureRequest, url: str) -> Store:
    from flask_connect_session import SQLStore

    # Emptied rather than dropped: cheaper, and the table is the same.
    store = SQLStore(url)
    store.clear()
    request.addfinalizer(store.engine.dispose)
    return store


def _postgresql_store(request: pytest.FixtureRequest) -> Store:
    server = request.getfixturevalue("postgresql_server")
    server.start()  # no-op unless an earlier test left it stopped
    return _sql_store(request, server.url())


def _mariadb_store(request: pytest.FixtureRequest) -> Store:
    server = request.getfixturevalue("mariadb_server")
    server.start()
    server.execute("CREATE DATABASE IF NOT EXISTS test")
    return _sql_store(request, server.url())


def _sqlite_store(request: pytest.FixtureRequest) -> Store:
    return _sql_store(request, request.getfixturevalue("sqlite_url"))


#: Store name -> builder of a fresh, empty store (from the real servers'
#: fixtures). Every behaviour test that takes ``store`` runs once per entry.
STORE_BUILDERS: dict[str, cabc.Callable[[pytest.FixtureRequest], Store]] = {
    "memory": _memory_store,
    "filesystem": _filesystem_store,
    "redis": _redis_store,
    "redis-cluster": _redis_cluster_store,
    "memcached": _memcached_store,
    "postgresql": _postgresql_store,
    "mariadb": _mariadb_store,
    "sqlite": _sqlite_store,
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Moves ``time.time`` forward by the seconds in ``clock[0]``."""
    offset = [0.0]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    return offset


@pytest.fixture(params=sorted(STORE_BUILDERS))
def store(request: pytest.FixtureRequest) -> Store:
    """A fresh, empty store of each kind in turn."""
    return STORE_BUILDERS[request.param](request)


@pytest.fixture
def make_app(store: Store) -> cabc.Callable[..., Flask]:
    """Build a test app over ``store`` with extra config; the app has a few
    generic views (see :func:`add_views`).
    """

    def make(**config: t.Any) -> Flask:
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=store)
        app.config.update(config)
        ConnectSession(app)
        add_views(app)
        return app

    return make


@pytest.fixture
def app(make_app: cabc.Callable[..., Flask]) -> Flask:
    """A test app with the default settings."""
    return make_app()


def add_views(app: Flask) -> None:
    """Views the behaviour tests drive."""
    from flask import request
    from flask import session

    @app.get("/ignore")
    def ignore() -> str:
        return "ignored"

    @app.get("/get")
    def get() -> dict[str, t.Any]:
        return {"data": dict(session), "id": session.id, "new": session.new}

    @app.post("/set")
    def set_() -> dict[str, t.Any]:
        session.update(request.get_json())
        return {"data": dict(session), "id": session.id}

    @app.get("/count")
    def count() -> dict[str, t.Any]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"], "id": session.id}

    @app.post("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.post("/regenerate")
    def regenerate() -> dict[str, t.Any]:
        session.regenerate(keep=request.args.get("keep") == "1")
        return {"id": session.id, "data": dict(session)}

    @app.post("/destroy")
    def destroy() -> str:
        session.destroy()
        return "destroyed"
