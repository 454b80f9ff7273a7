"""Shared fixtures: apps of both frameworks, stores, and real servers.

Every test that takes ``framework`` (directly or through ``make_app`` or
``app``) runs on Flask and on Quart, unless marked ``flask_only`` (with the
reason). A test that takes ``store`` runs on the memory store, its session
behaviour being the same on every store (the store contract suite, in
tests/stores, checks each store); one marked ``every_store`` runs on each
store kind in turn: the end-to-end cases.
"""

from __future__ import annotations

import collections.abc as cabc
import time
import typing as t

import pytest

from flask_connect_session import MemoryStore
from flask_connect_session import Store

import framework as fw
from framework import FRAMEWORKS
from framework import App

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
#: fixtures). A test marked ``every_store`` runs once per entry.
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


#: The store kinds that keep the per-user index (``CONNECT_SESSION_USER_KEY``).
INDEX_STORES = (
    "memory",
    "filesystem",
    "redis",
    "redis-cluster",
    "postgresql",
    "mariadb",
    "sqlite",
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Moves ``time.time`` forward by the seconds in ``clock[0]``."""
    offset = [0.0]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    return offset


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run ``framework`` tests on both frameworks (``flask_only``: Flask
    alone), and ``every_store`` tests on every store kind.
    """
    names = metafunc.fixturenames
    frameworks = FRAMEWORKS
    if metafunc.definition.get_closest_marker("flask_only"):
        frameworks = ("flask",)
    kinds: tuple[str, ...] = ()
    store = next((name for name in ("store", "index_store") if name in names), None)
    every_store = metafunc.definition.get_closest_marker("every_store")
    if store is not None and every_store:
        kinds = tuple(sorted(STORE_BUILDERS)) if store == "store" else INDEX_STORES
        kinds = tuple(kind for kind in kinds if kind not in every_store.kwargs.get("but", ()))
    if "framework" in names and kinds:
        # Every store behind Flask; Quart's driver is the same over any
        # store (a synchronous one runs in worker threads): the memory store.
        pairs = [("flask", kind) for kind in kinds]
        pairs += [(framework, "memory") for framework in frameworks if framework != "flask"]
        metafunc.parametrize(("framework", store), pairs, indirect=True)
    elif "framework" in names:
        metafunc.parametrize("framework", frameworks, indirect=True)
    elif kinds:
        metafunc.parametrize(store, kinds, indirect=True)


@pytest.fixture
def framework(request: pytest.FixtureRequest) -> str:
    """``"flask"`` or ``"quart"``: the framework the test's apps use."""
    return t.cast(str, request.param)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Store:
    """A fresh, empty store: a memory store, or (``every_store``) each
    kind in turn.
    """
    return STORE_BUILDERS[getattr(request, "param", "memory")](request)


@pytest.fixture
def index_store(request: pytest.FixtureRequest) -> Store:
    """A fresh, empty store that keeps the per-user index: a memory store,
    or (``every_store``) each such kind in turn.
    """
    return STORE_BUILDERS[getattr(request, "param", "memory")](request)


@pytest.fixture
def make_app(framework: str, store: Store) -> cabc.Callable[..., App]:
    """Build a test app of ``framework`` over ``store`` with extra config;
    the app has a few generic views (see :func:`add_views`).
    """

    def make(**config: t.Any) -> App:
        app = fw.new_app(framework)
        app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=store)
        app.config.update(config)
        fw.connect(app)
        add_views(app)
        return app

    return make


@pytest.fixture
def app(make_app: cabc.Callable[..., App]) -> App:
    """A test app with the default settings."""
    return make_app()


def add_views(app: App) -> None:
    """Views the behaviour tests drive (see :mod:`framework`)."""

    @app.get("/ignore")
    def ignore() -> str:
        return "ignored"

    @app.get("/get")
    def get() -> dict[str, t.Any]:
        return {"data": dict(fw.session), "id": fw.session.id, "new": fw.session.new}

    @app.post("/set")
    def set_() -> dict[str, t.Any]:
        fw.session.update(fw.request.get_json())
        return {"data": dict(fw.session), "id": fw.session.id}

    @app.get("/count")
    def count() -> dict[str, t.Any]:
        fw.session["n"] = fw.session.get("n", 0) + 1
        return {"n": fw.session["n"], "id": fw.session.id}

    @app.post("/clear")
    def clear() -> str:
        fw.session.clear()
        return "cleared"

    @app.post("/regenerate")
    def regenerate() -> dict[str, t.Any]:
        fw.session.regenerate(keep=fw.request.args.get("keep") == "1")
        return {"id": fw.session.id, "data": dict(fw.session)}

    @app.post("/destroy")
    def destroy() -> str:
        fw.session.destroy()
        return "destroyed"
