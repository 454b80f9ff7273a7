"""``flask_connect_session.testing``: the helpers over every store kind, and
the pytest plugin as a user's test run loads it (its ``pytest11`` entry point).
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import contextlib
import textwrap
import typing as t
from datetime import UTC
from datetime import datetime

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import Store
from flask_connect_session import session_destroyed
from flask_connect_session.interface import ConnectSessionInterface
from flask_connect_session.stores.base import Document
from flask_connect_session.stores.base import implements
from flask_connect_session.testing import OPTIONAL_METHODS
from flask_connect_session.testing import CountingStore
from flask_connect_session.testing import ServerSessionAccess
from flask_connect_session.testing import install_store
from flask_connect_session.testing import server_session
from flask_connect_session.testing import server_session_id
from flask_connect_session.testing import set_server_session

from conftest import SECRET
from conftest import add_views
from fake_clock import FakeClock
from fake_clock import use_clock
from without_packages import run_without

#: The helpers drive Flask's test client.
pytestmark = pytest.mark.flask_only("the testing helpers are Flask's")

pytest_plugins = ("pytester",)

MakeApp = cabc.Callable[..., Flask]
Install = cabc.Callable[[Flask], t.Any]


class MinimalStore(Store):
    """Only the required operations."""

    def __init__(self) -> None:
        self.entries: dict[str, Document] = {}

    def get(self, sid: str) -> Document | None:
        return self.entries.get(sid)

    def set(self, sid: str, session: Document) -> None:
        self.entries[sid] = session

    def destroy(self, sid: str) -> None:
        self.entries.pop(sid, None)


def load_operation(store: Store) -> str:
    return "get_and_touch" if implements(store, "get_and_touch") else "get"


def write_operations(store: Store) -> list[str]:
    """What saving a changed, stored session calls on the store."""
    return ["merge"] if implements(store, "merge") else ["get", "set"]


# -- reading and writing the server-side session --------------------------


def test_set_then_requests_see_it(
    make_app: MakeApp, store: Store, connect_session_server: ServerSessionAccess
) -> None:
    client = make_app().test_client()
    sid = connect_session_server.set(client, {"user": "ann"})
    assert sid is not None
    assert store.get(sid) is not None
    seen = client.get("/get").json
    assert seen == {"data": {"user": "ann"}, "id": sid, "new": False}
    client.get("/count")
    assert connect_session_server.get(client) == {"user": "ann", "n": 1}
    assert connect_session_server.id(client) == sid


def test_set_replaces_the_data(make_app: MakeApp, store: Store) -> None:
    client = make_app().test_client()
    first = set_server_session(client, {"a": 1, "b": 2})
    second = set_server_session(client, {"b": 3})
    assert first == second
    assert server_session(client) == {"b": 3}
    assert client.get("/get").json["data"] == {"b": 3}


def test_set_empty_destroys(make_app: MakeApp, store: Store) -> None:
    client = make_app().test_client()
    sid = set_server_session(client, {"a": 1})
    assert sid is not None
    assert set_server_session(client, {}) is None
    assert store.get(sid) is None
    assert server_session(client) == {}


def test_no_cookie_no_session(make_app: MakeApp, store: Store) -> None:
    client = make_app().test_client()
    assert server_session(client) == {}
    assert server_session_id(client) is None
    client.get("/ignore")
    assert server_session_id(client) is None


def test_flask_types_round_trip(make_app: MakeApp, store: Store) -> None:
    client = make_app().test_client()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    set_server_session(client, {"when": when, "pair": (1, 2), "raw": b"\x00"})
    assert server_session(client) == {"when": when, "pair": (1, 2), "raw": b"\x00"}


@pytest.mark.every_store
@pytest.mark.parametrize(
    "config",
    [{}, {"CONNECT_SESSION_ROLLING": True}, {"CONNECT_SESSION_SAVE_UNINITIALIZED": True}],
    ids=["default", "rolling", "save-uninitialized"],
)
def test_reading_writes_nothing(
    make_app: MakeApp,
    store: Store,
    config: dict[str, t.Any],
    connect_session_counting_store: cabc.Callable[[Flask], CountingStore],
) -> None:
    """Reading loads the session as a view would and saves, touches and
    creates nothing, whatever the lifecycle options.
    """
    app = make_app(**config)
    client = app.test_client()
    counting = connect_session_counting_store(app)
    assert server_session(client) == {}
    assert counting.calls == []  # no cookie: nothing to load, nothing created
    sid = set_server_session(client, {"a": 1})
    counting.reset()
    assert server_session(client) == {"a": 1}
    assert counting.calls == [(load_operation(store), sid)]


@pytest.mark.parametrize("receiver", [False, True], ids=["no-receiver", "receiver"])
def test_reading_a_timed_out_session_writes_nothing(
    make_app: MakeApp, store: Store, receiver: bool
) -> None:
    """A session past its absolute timeout reads as none, as a request would
    find it, but the helper writes nothing: the entry stays, no signal is
    sent (and a connected receiver, which needs the app, cannot fail it).
    """
    app = make_app(CONNECT_SESSION_ABSOLUTE_TIMEOUT=100)
    clock = FakeClock()
    use_clock(app, clock)
    client = app.test_client()
    sid = set_server_session(client, {"a": 1})
    destroyed: list[str] = []

    def record(sender: Flask, **kwargs: t.Any) -> None:
        destroyed.append(kwargs["reason"])

    clock.set(101)
    with session_destroyed.connected_to(record, app) if receiver else contextlib.nullcontext():
        assert server_session(client) == {}
        assert server_session_id(client) is None
    clock.set(0)
    assert destroyed == []
    assert store.get(t.cast(str, sid)) is not None
    # A request still finds it timed out, and removes it.
    with session_destroyed.connected_to(record, app):
        assert client.get("/get").json["id"] == sid
        clock.set(101)
        assert client.get("/get").json["id"] != sid
    assert destroyed == ["timeout"]


def test_secure_cookie_needs_https(make_app: MakeApp, store: Store) -> None:
    client = make_app(CONNECT_SESSION_COOKIE={"secure": True}).test_client()
    with pytest.raises(RuntimeError, match="base_url='https://localhost'"):
        set_server_session(client, {"a": 1})
    https = {"base_url": "https://localhost"}
    sid = set_server_session(client, {"a": 1}, **https)
    assert sid is not None
    assert server_session(client, **https) == {"a": 1}
    assert client.get("/get", base_url="https://localhost").json["id"] == sid


def test_app_without_the_extension() -> None:
    client = Flask(__name__).test_client()
    for call in (
        lambda: server_session(client),
        lambda: server_session_id(client),
        lambda: set_server_session(client, {"a": 1}),
    ):
        with pytest.raises(RuntimeError, match="does not use ConnectSession"):
            call()


# -- counting store calls -------------------------------------------------


def test_counting_store_records_a_request_cycle(
    make_app: MakeApp,
    store: Store,
    connect_session_counting_store: cabc.Callable[[Flask], CountingStore],
) -> None:
    app = make_app()
    counting = connect_session_counting_store(app)
    assert counting.store is store
    with app.app_context():
        assert app.extensions["connect_session"].store is counting
    client = app.test_client()

    client.get("/ignore")
    assert counting.calls == []

    sid = client.get("/count").json["id"]
    assert counting.calls == [("set", sid)]

    counting.reset()
    client.get("/count")
    expected = [(load_operation(store), sid)] + [(op, sid) for op in write_operations(store)]
    assert counting.calls == expected
    assert counting.counts == collections.Counter(op for op, _ in expected)

    counting.reset()
    client.post("/destroy")
    assert counting.calls[-1] == ("destroy", sid)
    assert store.get(sid) is None


@pytest.mark.every_store
def test_counting_store_mirrors_the_optional_methods(store: Store) -> None:
    for inner in (store, MinimalStore(), MemoryStore()):
        counting = CountingStore(inner)
        assert isinstance(counting, CountingStore)
        for method in OPTIONAL_METHODS:
            assert implements(counting, method) == implements(inner, method), method


def test_counting_minimal_store_is_never_touched() -> None:
    """A wrapper over a store without ``touch`` does not offer one, so the
    interface does not call it (it would fail).
    """
    inner = MinimalStore()
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=inner)
    ConnectSession(app)
    add_views(app)
    counting = CountingStore(inner)
    previous = install_store(app, counting)
    client = app.test_client()
    sid = client.get("/count").json["id"]
    assert client.get("/get").status_code == 200
    assert counting.calls == [("set", sid), ("get", sid)]
    assert counting.ttl == inner.ttl
    counting.ttl = 5
    assert inner.ttl == 5
    assert "1 call" not in repr(counting) and "2 call(s)" in repr(counting)
    app.session_interface = previous
    assert t.cast(ConnectSessionInterface, app.session_interface).store is inner


# -- a fresh memory store --------------------------------------------------


def test_memory_store_fixture_isolates(
    make_app: MakeApp,
    store: Store,
    connect_session_memory_store: cabc.Callable[[Flask], MemoryStore],
) -> None:
    app = make_app(CONNECT_SESSION_TTL=123)
    client = app.test_client()
    before = client.get("/count").json["id"]
    fresh = connect_session_memory_store(app)
    assert fresh is not store and fresh.ttl == 123 and fresh.length() == 0
    after = client.get("/count").json
    assert after["n"] == 1 and after["id"] != before  # the old session is not in it
    assert fresh.get(after["id"]) is not None
    assert store.get(after["id"]) is None
    assert store.get(before) is not None


def test_fixtures_stack(
    make_app: MakeApp,
    store: Store,
    connect_session_memory_store: cabc.Callable[[Flask], MemoryStore],
    connect_session_counting_store: cabc.Callable[[Flask], CountingStore],
) -> None:
    app = make_app()
    fresh = connect_session_memory_store(app)
    counting = connect_session_counting_store(app)
    assert counting.store is fresh
    sid = app.test_client().get("/count").json["id"]
    assert counting.calls == [("set", sid)]
    assert fresh.get(sid) is not None


# -- the plugin in a user's test run ---------------------------------------

USER_TESTS = """
    import pytest
    from flask import Flask, session
    from flask_connect_session import ConnectSession, MemoryStore

    ORIGINAL = MemoryStore()
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", TESTING=True, CONNECT_SESSION_STORE=ORIGINAL)
    ConnectSession(app)

    @app.get("/")
    def index():
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    def test_fixtures(connect_session_server, connect_session_counting_store,
                      connect_session_memory_store):
        fresh = connect_session_memory_store(app)
        counting = connect_session_counting_store(app)
        client = app.test_client()
        connect_session_server.set(client, {"n": 41})
        assert client.get("/").text == "42"
        assert connect_session_server.get(client) == {"n": 42}
        assert counting.counts["set"] == 1 and counting.counts["merge"] == 1
        assert fresh.length() == 1 and ORIGINAL.length() == 0

    def test_restored_after_the_test():
        assert app.session_interface.store is ORIGINAL
"""


#: Uses every helper of flask_connect_session.testing, in an interpreter
#: where pytest cannot be imported.
_WITHOUT_PYTEST = """
from flask import Flask, session

from flask_connect_session import ConnectSession, MemoryStore
from flask_connect_session.testing import (
    CountingStore, install_store, server_session, server_session_id, set_server_session,
)

app = Flask(__name__)
app.config.update(SECRET_KEY="s", TESTING=True)
ConnectSession(app)


@app.get("/")
def index():
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


counting = CountingStore(MemoryStore())
install_store(app, counting)
client = app.test_client()
sid = set_server_session(client, {"n": 41})
assert client.get("/").text == "42"
assert server_session(client) == {"n": 42} and server_session_id(client) == sid
assert counting.counts["set"] == 1
print("ok")
"""


def test_the_helpers_work_without_pytest() -> None:
    """pytest is a test dependency, not one of the package: the helpers
    must import and work without it (only the plugin module needs it).
    """
    assert run_without("pytest,_pytest", _WITHOUT_PYTEST) == "ok"


def test_plugin_loads_from_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    config = pytester.parseconfigure()
    plugin = config.pluginmanager.get_plugin("connect_session")
    assert plugin is not None and plugin.__name__ == "flask_connect_session.pytest_plugin"


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS))
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:connect_session")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'connect_session_server' not found*"])
