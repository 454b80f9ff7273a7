"""Users and their devices and the signals (docs/behaviour.rst, "Users and
their devices" and "Signals"), on Flask and Quart; the ``every_store`` cases
on every store that keeps the per-user index: memory, files, a real
redis-server, the real 3-node Redis Cluster and the SQL databases.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
import typing as t
from datetime import timedelta

import pytest
from cachelib import SimpleCache
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import SessionInfo
from flask_connect_session import Store
from flask_connect_session import StoreError
from flask_connect_session import session_created
from flask_connect_session import session_destroyed
from flask_connect_session import session_regenerated
from flask_connect_session.calls import run
from flask_connect_session.document import DEVICE_MEMBER
from flask_connect_session.interface import AppEnvironment
from flask_connect_session.signing import unsign
from flask_connect_session.users import handle

import framework as fw
from conftest import SECRET
from conftest import STORE_BUILDERS
from framework import App
from framework import request
from framework import session

MakeApp = t.Callable[..., App]


@pytest.fixture
def make_app(framework: str) -> MakeApp:
    """Build an app of ``framework`` over a store (see :func:`build_app`)."""
    return functools.partial(build_app, framework)


def build_app(framework: str, store: t.Any, **config: t.Any) -> App:
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_USER_KEY="user_id",
    )
    app.config.update(config)
    ext = fw.connect(app)

    @app.post("/login/<user>")
    def login(user: str) -> str:
        session.regenerate()
        session["user_id"] = int(user) if user.isdigit() else user
        return session.id

    @app.get("/me")
    def me() -> dict[str, t.Any]:
        return {"user": session.get("user_id"), "id": session.id}

    @app.get("/devices")
    def devices() -> list[dict[str, t.Any]]:
        return [
            {**info.__dict__, "created": str(info.created), "last_seen": str(info.last_seen)}
            for info in fw.resolve(ext.user_sessions(session["user_id"]))
        ]

    @app.post("/revoke")
    def revoke() -> dict[str, int]:
        keep = request.args.get("keep") == "1"
        revoked = ext.revoke(session["user_id"], request.args.get("handle"), keep_current=keep)
        n = fw.resolve(revoked)
        return {"revoked": n}

    @app.post("/set")
    def set_() -> str:
        session.update(request.get_json())
        return "ok"

    @app.post("/pop")
    def pop() -> str:
        session.pop("user_id", None)
        return "ok"

    @app.post("/regenerate")
    def regenerate() -> str:
        session.regenerate(keep=True)
        return session.id

    @app.post("/destroy")
    def destroy() -> str:
        session.destroy()
        return "ok"

    @app.post("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    return app


def sid_of(client: t.Any) -> str | None:
    cookie = client.get_cookie("connect.sid")
    return None if cookie is None else unsign(cookie.value, (SECRET,))


def login(app: App, user: str, agent: str = "Browser") -> t.Any:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    assert client.post(f"/login/{user}").status_code == 200
    time.sleep(0.002)  # the next login is seen at a later millisecond
    return client


def sessions_of(app: App, user: str) -> list[SessionInfo]:
    return t.cast(list[SessionInfo], fw.call(app, "user_sessions", user))


@pytest.mark.every_store
def test_login_indexes_devices(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    phone = login(app, "42", "Phone")
    laptop = login(app, "42", "L" * 300)
    login(app, "7")
    listed = laptop.get("/devices").json
    assert listed is not None
    assert [d["user_agent"] for d in listed] == ["L" * 200, "Phone"]  # newest first
    assert [d["current"] for d in listed] == [True, False]
    assert {d["ip"] for d in listed} == {"127.0.0.1"}
    assert all(d["user"] == "42" for d in listed)
    sids = {sid_of(phone), sid_of(laptop)}
    for d in listed:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", d["handle"])
        assert d["handle"] not in sids and not any(d["handle"] in s for s in sids if s)
    assert {d["handle"] for d in listed} == {handle(s) for s in sids if s}
    # Stable while the id is: the phone sees the same handles.
    again = phone.get("/devices").json
    assert again is not None
    assert {d["handle"] for d in again} == {d["handle"] for d in listed}
    assert [i.user for i in sessions_of(app, "7")] == ["7"]


@pytest.mark.every_store
def test_revoke_everywhere_and_one(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    a, b, c = (login(app, "42", name) for name in "ABC")
    b_handle = handle(t.cast(str, sid_of(b)))
    assert a.post(f"/revoke?handle={b_handle}").json == {"revoked": 1}
    assert b.get("/me").json["user"] is None  # type: ignore[index]
    assert a.post("/revoke?keep=1").json == {"revoked": 1}
    assert c.get("/me").json["user"] is None  # type: ignore[index]
    assert a.get("/me").json["user"] == 42  # type: ignore[index]
    assert [i.user_agent for i in sessions_of(app, "42")] == ["A"]
    # Revoking the current session logs it out in this very response.
    response = a.post("/revoke")
    assert response.json == {"revoked": 1}
    assert "connect.sid=;" in response.headers["Set-Cookie"]
    assert sessions_of(app, "42") == []
    assert a.get("/me").json["user"] is None  # type: ignore[index]


def test_revoked_session_in_flight_stays_gone(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    cookie = t.cast(t.Any, client.get_cookie("connect.sid")).value
    with fw.in_request(app, headers={"Cookie": f"connect.sid={cookie}"}) as current:
        assert current["user_id"] == 42  # loaded by the in-flight request
        assert fw.call(app, "revoke", "42") == 1
        current["cart"] = [1]
        current["user_id"] = "43"  # even a new user is not indexed
        fw.end_request(app, current)
    assert index_store.get(sid) is None
    assert sessions_of(app, "42") == [] and sessions_of(app, "43") == []


@pytest.mark.every_store
def test_regenerate_follows_the_new_id(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    client = login(app, "42")
    old = sid_of(client)
    (before,) = sessions_of(app, "42")
    time.sleep(0.002)  # a new created time would differ
    new = client.post("/regenerate").text
    assert new != old and sid_of(client) == new
    (after,) = sessions_of(app, "42")
    assert after.handle == handle(new)
    assert after.created == before.created  # the login's time goes along


def test_key_changed_or_deleted(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    client = login(app, "42")
    client.post("/set", json={"user_id": "alice", "theme": "dark"})
    assert sessions_of(app, "42") == []
    assert [i.user for i in sessions_of(app, "alice")] == ["alice"]
    client.post("/pop")
    assert sessions_of(app, "alice") == []
    document = index_store.get(t.cast(str, sid_of(client)))
    assert document is not None and DEVICE_MEMBER not in document
    assert client.get("/me").json["user"] is None  # type: ignore[index]


def test_none_is_no_user(make_app: MakeApp, index_store: Store) -> None:
    """``None`` under the user key means no user, as an absent key does:
    Flask-Login stores ``session["_user_id"] = None`` for an invalid
    remember-me cookie. It is saved as is, and a session it replaces a user
    in leaves that user's index.
    """
    app = make_app(index_store)
    client = app.test_client()
    assert client.post("/set", json={"user_id": None, "n": 1}).status_code == 200
    document = index_store.get(t.cast(str, sid_of(client)))
    assert document is not None and document["user_id"] is None
    assert DEVICE_MEMBER not in document
    client = login(app, "42")
    assert client.post("/set", json={"user_id": None}).status_code == 200
    assert sessions_of(app, "42") == []
    document = index_store.get(t.cast(str, sid_of(client)))
    assert document is not None and DEVICE_MEMBER not in document
    assert client.get("/me").json["user"] is None  # type: ignore[index]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb", "sqlite"])
def test_sql_user_id_column_follows_the_document(
    make_app: MakeApp, kind: str, request: pytest.FixtureRequest
) -> None:
    """SQLStore's index is the ``user_id`` column, kept equal to the
    document's ``_device`` user by every write; rows an Express app wrote
    (no ``_device``) have none.
    """
    import sqlalchemy as sa

    from flask_connect_session import SQLStore

    store = t.cast(SQLStore, STORE_BUILDERS[kind](request))
    app = make_app(store)

    def column(sid: str) -> object:
        with store.engine.connect() as conn:
            query = sa.select(store.table.c.user_id).where(store.table.c.sid == sid)
            return conn.execute(query).scalar_one()

    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    assert column(sid) == "42"
    client.post("/set", json={"user_id": "alice", "theme": "dark"})
    assert column(sid) == "alice"
    client.post("/pop")  # the user key goes; the session stays
    assert column(sid) is None
    store.set("express", {"user_id": "alice", "cookie": {"originalMaxAge": None}})
    assert column("express") is None
    assert sessions_of(app, "alice") == []
    # An id longer than the column is filed under its SHA-256.
    client.post("/set", json={"user_id": "x" * 300, "theme": "dark"})
    assert str(column(sid)).startswith("sha256:")
    assert [i.user for i in sessions_of(app, "x" * 300)] == ["x" * 300]
    assert sessions_of(app, "x" * 299) == []


@pytest.mark.every_store
@pytest.mark.parametrize("path", ["/destroy", "/clear"])
def test_destroy_and_unset_leave_the_index(
    make_app: MakeApp, index_store: Store, path: str
) -> None:
    app = make_app(index_store)
    client = login(app, "42")
    login(app, "42")
    client.post(path)
    assert len(sessions_of(app, "42")) == 1


def test_bad_user_value_is_a_type_error(make_app: MakeApp, index_store: Store) -> None:
    app = make_app(index_store)
    client = app.test_client()
    with pytest.raises(TypeError, match="user_id"):
        client.post("/set", json={"user_id": [1]})


def test_store_without_index_is_refused() -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET, CONNECT_SESSION_STORE=SimpleCache(), CONNECT_SESSION_USER_KEY="uid"
    )
    with pytest.raises(ValueError, match="CONNECT_SESSION_USER_KEY"):
        ConnectSession(app)


@pytest.mark.parametrize("value", ["", "cookie", 5])
def test_bad_user_key_config(value: object) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_USER_KEY=value)
    with pytest.raises(ValueError, match="CONNECT_SESSION_USER_KEY"):
        ConnectSession(app)


@pytest.mark.every_store
def test_last_seen_is_written_once_a_minute(
    make_app: MakeApp, index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(index_store)
    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    before = t.cast(dict[str, t.Any], index_store.get(sid))[DEVICE_MEMBER]
    client.get("/me")
    assert t.cast(dict[str, t.Any], index_store.get(sid))[DEVICE_MEMBER] == before
    # A minute later (as the clock sees it), a read-only request records it.
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    client.get("/me", headers={"User-Agent": "Moved"})
    after = t.cast(dict[str, t.Any], index_store.get(sid))[DEVICE_MEMBER]
    assert after["seen"] >= before["seen"] + 60_000
    assert after["created"] == before["created"] and after["agent"] == "Moved"
    monkeypatch.undo()
    assert sessions_of(app, "42")[0].last_seen.timestamp() * 1000 == after["seen"]


@pytest.mark.every_store
def test_express_made_session_is_indexed_on_first_use(
    make_app: MakeApp, index_store: Store
) -> None:
    app = make_app(index_store)
    client = app.test_client()
    client.post("/set", json={"n": 1})  # any session, then made "by Express":
    sid = t.cast(str, sid_of(client))
    index_store.set(sid, {"user_id": 42, "cookie": {"originalMaxAge": None, "expires": None}})
    assert sessions_of(app, "42") == []
    assert client.get("/me").json == {"user": 42, "id": sid}
    assert [i.handle for i in sessions_of(app, "42")] == [handle(sid)]


@pytest.mark.every_store
def test_expired_sessions_leave_the_index(
    make_app: MakeApp, index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_connect_session.users.SEEN_INTERVAL", 0.5)
    app = make_app(index_store, CONNECT_SESSION_COOKIE={"max_age": 1})
    login(app, "42")
    keep = make_app(index_store)
    login(keep, "42")
    assert len(sessions_of(app, "42")) == 2
    time.sleep(2.6)
    assert [i.user_agent for i in sessions_of(app, "42")] == ["Browser"]
    assert len(sessions_of(app, "42")) == 1


def test_needs_user_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET)
    ext = ConnectSession(app)
    with app.app_context(), pytest.raises(RuntimeError, match="CONNECT_SESSION_USER_KEY"):
        ext.user_sessions("42")


# -- signals ---------------------------------------------------------------


@pytest.fixture
def events(
    request: pytest.FixtureRequest,
) -> t.Iterator[list[tuple[str, dict[str, t.Any]]]]:
    received: list[tuple[str, dict[str, t.Any]]] = []
    receivers = []
    for name, signal in (
        ("created", session_created),
        ("regenerated", session_regenerated),
        ("destroyed", session_destroyed),
    ):

        def receiver(sender: Flask, name: str = name, **kwargs: t.Any) -> None:
            received.append((name, {"sender": sender, **kwargs}))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield received
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_signals(
    make_app: MakeApp, index_store: Store, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    app = make_app(index_store, CONNECT_SESSION_ABSOLUTE_TIMEOUT=3600)
    client = app.test_client()
    client.post("/set", json={"n": 1})
    first = t.cast(str, sid_of(client))
    client.post("/login/42")
    second = t.cast(str, sid_of(client))
    client.post("/destroy")
    login(app, "7").post("/clear")
    other = login(app, "8")
    fw.call(app, "revoke", "8")
    summary = [(n, e.get("reason"), e["user"]) for n, e in events]
    assert summary == [
        ("created", None, None),
        ("regenerated", None, "42"),
        ("destroyed", "destroy", "42"),
        ("created", None, "7"),
        ("destroyed", "unset", "7"),
        ("created", None, "8"),
        ("destroyed", "revoke", "8"),
    ]
    assert all(e["sender"] is app for _, e in events)
    assert events[0][1]["handle"] == handle(first)
    assert events[1][1]["handle"] == handle(second)
    assert events[1][1]["old_handle"] == handle(first)
    assert events[1][1]["session"]["user_id"] == 42
    assert other.get("/me").json["user"] is None  # type: ignore[index]
    # An absolute timeout: the stored start is moved back two hours.
    events.clear()
    client = login(app, "9")
    sid = t.cast(str, sid_of(client))
    document = t.cast(dict[str, t.Any], index_store.get(sid))
    document["_created"] -= 7_200_000
    index_store.set(sid, document)
    assert client.get("/me").json["user"] is None  # type: ignore[index]
    assert [(n, e.get("reason"), e["user"]) for n, e in events][-1] == (
        "destroyed",
        "timeout",
        "9",
    )
    assert sessions_of(app, "9") == []


# -- no leak -----------------------------------------------------------------


def index_state(client: t.Any, prefix: str = "sess-user:") -> dict[str, int]:
    """Each index key on the server and how many entries it holds."""
    return {
        key.decode(): client.zcard(key) for key in client.scan_iter(match=prefix + "*", count=500)
    }


def test_redis_index_does_not_leak(make_app: MakeApp, redis_url: str) -> None:
    """1,000 indexed sessions expire; the index keys return to their size
    before, without anyone logging in again (Spring Session's leak).
    """
    import redis

    from flask_connect_session import RedisStore
    from flask_connect_session.cookie import format_expires
    from flask_connect_session.cookie import utcnow

    server = redis.Redis.from_url(redis_url)
    store = RedisStore(redis_url)
    app = make_app(store)
    login(app, "keep")  # a long-lived session, indexed before
    before = index_state(server)
    assert before == {"sess-user:keep": 1}
    expires = format_expires(utcnow() + timedelta(seconds=2))
    for n in range(1000):
        # 100 users of 9 sessions, and 100 more sessions of the lasting user,
        # stored as the interface stores them (the index entry first).
        user = "keep" if n % 10 == 0 else f"u{n % 100}"
        store.index_add(user, f"short{n}", time.time() + 2.5)
        cookie = {"originalMaxAge": 2000, "expires": expires}
        store.set(f"short{n}", {"user_id": user, DEVICE_MEMBER: {"user": user}, "cookie": cookie})
    during = index_state(server)
    assert len(during) == 91 and sum(during.values()) == 1001
    time.sleep(3)
    # Every short-lived user's index key expired by itself; the lasting
    # user's holds its expired entries until read, written or pruned.
    assert index_state(server) == {"sess-user:keep": 101}
    assert app.test_cli_runner().invoke(args=["session", "prune"]).exit_code == 0
    assert index_state(server) == before
    assert server.dbsize() == 2  # the lasting session and its index
    assert len(sessions_of(app, "keep")) == 1


@pytest.mark.every_store
def test_prune_empties_expired_indexes(
    make_app: MakeApp, index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_connect_session.users.SEEN_INTERVAL", 0.2)
    app = make_app(index_store, CONNECT_SESSION_COOKIE={"max_age": 1})
    for user in ("a", "b"):
        login(app, user)
    time.sleep(1.5)
    assert app.test_cli_runner().invoke(args=["session", "prune"]).exit_code == 0
    assert sessions_of(app, "a") == [] and sessions_of(app, "b") == []
    if hasattr(index_store, "_users"):
        assert index_store._users == {}
    if hasattr(index_store, "directory"):
        import os

        assert not [n for n in os.listdir(index_store.directory) if n.endswith(".user")]


def index_entries(store: Store, user: str) -> int:
    """How many entries ``user``'s index holds, read as the store keeps them
    (not through ``index_sessions``, which drops dead entries itself).
    """
    from flask_connect_session import FileSystemStore
    from flask_connect_session import RedisStore

    if isinstance(store, MemoryStore):
        return len(store._users.get(user, {}))
    if isinstance(store, FileSystemStore):
        # One directory per user, one file per entry, its mtime its end.
        directory = store._path(store._user_name(user), ".user")
        if not os.path.isdir(directory):
            return 0
        now = time.time()
        with os.scandir(directory) as entries:
            return sum(1 for e in entries if e.name[:1] != "." and e.stat().st_mtime > now)
    if isinstance(store, RedisStore):
        return int(store.client.zcard(store.index_prefix + user))
    import sqlalchemy as sa

    from flask_connect_session import SQLStore

    assert isinstance(store, SQLStore)
    query = sa.select(sa.func.count()).where(store.table.c.user_id == user)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.every_store
def test_prune_drops_expired_sessions_from_the_index(
    make_app: MakeApp, index_store: Store
) -> None:
    """60 short sessions of one user expire; ``flask session prune`` leaves
    the user's index with the 2 that live, with the real one-minute margin
    index entries keep past their session's expiry.
    """
    lasting = make_app(index_store)
    short = make_app(index_store, CONNECT_SESSION_COOKIE={"max_age": 1})
    for _ in range(2):
        login(lasting, "42")
    for _ in range(60):
        login(short, "42")
    assert index_entries(index_store, "42") == 62
    time.sleep(1.5)  # the short sessions expire: the store's clock, not ours
    assert short.test_cli_runner().invoke(args=["session", "prune"]).exit_code == 0
    assert index_entries(index_store, "42") == 2
    assert len(sessions_of(lasting, "42")) == 2


# -- command line --------------------------------------------------------------


def test_cli_list_and_revoke(make_app: MakeApp, index_store: Store) -> None:
    import json

    app = make_app(index_store)
    phone, laptop = login(app, "42", "Phone"), login(app, "42", "Laptop")
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["session", "list", "--user", "42", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["user_agent"] for r in rows] == ["Laptop", "Phone"]
    table = runner.invoke(args=["session", "list", "--user", "42"])
    assert "HANDLE" in table.output and "Phone" in table.output
    phone_handle = rows[1]["handle"]
    one = runner.invoke(args=["session", "revoke", "--user", "42", "--handle", phone_handle])
    assert one.exit_code == 1  # asked, and no answer
    one = runner.invoke(
        args=["session", "revoke", "--user", "42", "--handle", phone_handle, "--yes"]
    )
    assert one.output == "revoked 1 session(s) of user '42'\n"
    assert phone.get("/me").json["user"] is None  # type: ignore[index]
    again = runner.invoke(
        args=["session", "revoke", "--user", "42", "--handle", phone_handle, "--yes"]
    )
    assert again.exit_code == 1 and "no session" in again.output
    everywhere = runner.invoke(args=["session", "revoke", "--user", "42"], input="y\n")
    assert "revoked 1 session(s)" in everywhere.output
    assert laptop.get("/me").json["user"] is None  # type: ignore[index]
    empty = runner.invoke(args=["session", "list", "--user", "42"])
    assert empty.output == "no sessions of user '42'\n"


def test_cli_without_user_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    ConnectSession(app)
    result = app.test_cli_runner().invoke(args=["session", "list", "--user", "42"])
    assert result.exit_code == 1
    assert "CONNECT_SESSION_USER_KEY" in result.output


def test_read_only_request_costs_one_round_trip(
    make_app: MakeApp, redis_server: t.Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted by Redis: a read-only request of an indexed session is one
    GETEX, as for an unindexed one; once a minute it also writes the session
    (merge script) and the index (index script).
    """
    from test_concurrency import CommandStats

    stats = CommandStats(redis_server)
    try:
        costs = []
        for user_key in (None, "user_id"):
            app = make_app(redis_url, CONNECT_SESSION_USER_KEY=user_key)
            client = login(app, "42")
            client.get("/me")
            stats.reset()
            for _ in range(5):
                client.get("/me")
            costs.append(stats.calls())
        assert costs == [{"getex": 5}, {"getex": 5}]
        real = time.time
        for minutes in (1, 2):  # the first loads the scripts
            monkeypatch.setattr(time, "time", lambda m=minutes: real() + 61 * m)
            stats.reset()
            client.get("/me")
        calls = stats.calls()
        assert (calls["getex"], calls["evalsha"]) == (1, 2)
    finally:
        stats.client.close()


def test_bad_user_value_from_another_app(make_app: MakeApp, index_store: Store) -> None:
    """A user value another app stored that is not a str or int: reading the
    session still works; writing it is the TypeError naming the key.
    """
    app = make_app(index_store)
    client = app.test_client()
    client.post("/set", json={"n": 1})
    sid = t.cast(str, sid_of(client))
    index_store.set(sid, {"user_id": 4.2, "cookie": {"originalMaxAge": None, "expires": None}})
    assert client.get("/me").json == {"user": 4.2, "id": sid}
    with pytest.raises(TypeError, match="user_id"):
        client.post("/set", json={"n": 2})


# -- requests in flight, signals sent once, failures -------------------------


def revoke_elsewhere(app: App, user: str) -> int:
    """Log ``user`` out everywhere from another request (another device)."""
    return t.cast(int, fw.call(app, "revoke", user))


@contextlib.contextmanager
def in_flight(app: Flask, client: t.Any) -> t.Iterator[t.Any]:
    """A request of ``client``'s session that has loaded it; :func:`end`
    runs the end of the request.
    """
    cookie = t.cast(t.Any, client.get_cookie("connect.sid")).value
    with fw.in_request(app, headers={"Cookie": f"connect.sid={cookie}"}) as current:
        assert current["user_id"] is not None
        yield current


def end(app: App, current: t.Any) -> t.Any:
    return fw.end_request(app, current)


def down(*args: t.Any) -> t.NoReturn:
    raise ConnectionError("backend down")


def summary(events: list[tuple[str, dict[str, t.Any]]]) -> list[tuple[str, t.Any, t.Any]]:
    return [(name, e.get("reason"), e["user"]) for name, e in events]


@pytest.mark.parametrize("write_after", [False, True])
def test_save_after_revoke_does_not_bring_it_back(
    make_app: MakeApp,
    index_store: Store,
    events: list[tuple[str, dict[str, t.Any]]],
    write_after: bool,
) -> None:
    """``session.save()`` in a request of a session revoked meanwhile neither
    stores its id again nor announces it; later writes start a new id.
    """
    app = make_app(index_store)
    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    with in_flight(app, client) as current:
        assert revoke_elsewhere(app, "42") == 1
        events.clear()
        current["cart"] = [1]
        current.save()  # as views do before a long task
        assert index_store.get(sid) is None
        assert "user_id" not in current and current.id != sid
        if write_after:
            current["flash"] = "bye"
        response = end(app, current)
    assert index_store.get(sid) is None
    assert sessions_of(app, "42") == []
    if write_after:
        document = t.cast(dict[str, t.Any], index_store.get(current.id))
        assert document["flash"] == "bye" and "user_id" not in document
        assert [e["handle"] for _, e in events] == [handle(current.id)]
        assert summary(events) == [("created", None, None)]
    else:
        assert events == []
        assert "Set-Cookie" not in response.headers


def test_regenerate_after_revoke_carries_nothing_over(
    make_app: MakeApp, index_store: Store
) -> None:
    """``regenerate(keep=True)`` in a request of a session revoked meanwhile
    starts an empty session: the revoked login is not kept under a new id.
    """
    app = make_app(index_store)
    client = login(app, "42")
    with in_flight(app, client) as current:
        assert revoke_elsewhere(app, "42") == 1
        current.regenerate(keep=True)  # a privilege step-up, say
        assert "user_id" not in current
        end(app, current)
    assert sessions_of(app, "42") == []
    assert "user_id" not in (index_store.get(current.id) or {})


def test_regenerate_then_destroy_announces_the_end(
    make_app: MakeApp, index_store: Store, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    app = make_app(index_store)

    @app.post("/regenerate-destroy")
    def regenerate_destroy() -> str:
        session.regenerate(keep=True)
        session.destroy()
        return "ok"

    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    events.clear()
    client.post("/regenerate-destroy")
    # A logged-in session's new id is stored at once (so that a revoke
    # meanwhile finds it): its move is announced, then its end.
    assert summary(events) == [("regenerated", None, "42"), ("destroyed", "destroy", "42")]
    assert events[0][1]["old_handle"] == handle(sid)
    assert events[1][1]["handle"] == events[0][1]["handle"]
    assert index_store.get(sid) is None and sid_of(client) is None
    assert sessions_of(app, "42") == []
    # Anyone else's new id is stored at the end of the request: the end of
    # the session is announced under the id that was stored.
    client.post("/set", json={"n": 1})
    sid = t.cast(str, sid_of(client))
    events.clear()
    client.post("/regenerate-destroy")
    assert summary(events) == [("destroyed", "destroy", None)]
    assert events[0][1]["handle"] == handle(sid)


def test_destroyed_names_the_user_of_a_session_without_device(
    make_app: MakeApp, index_store: Store, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    """A session an Express app wrote (no ``"_device"`` member): the signal
    takes the user from its data.
    """
    app = make_app(index_store)
    client = app.test_client()
    client.post("/set", json={"n": 1})
    sid = t.cast(str, sid_of(client))
    index_store.set(sid, {"user_id": 42, "cookie": {"originalMaxAge": None, "expires": None}})
    events.clear()
    client.post("/destroy")
    assert summary(events) == [("destroyed", "destroy", "42")]


def test_destroyed_is_sent_once_per_session(
    make_app: MakeApp, index_store: Store, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    """Revoked, then destroyed by its own request in flight: one signal."""
    app = make_app(index_store)
    client = login(app, "42")
    sid = t.cast(str, sid_of(client))
    events.clear()
    with in_flight(app, client) as current:
        assert revoke_elsewhere(app, "42") == 1
        current.destroy()
        end(app, current)
    assert summary(events) == [("destroyed", "revoke", "42")]
    assert events[0][1]["handle"] == handle(sid)
    # A revoke that finds the session removed meanwhile neither counts it
    # nor announces it again.
    steps = app.session_interface.core.users.revoke("42", [sid])
    assert run(steps, AppEnvironment(app, index_store)) == 0
    assert len(events) == 1


def test_failed_user_switch_keeps_the_old_users_index(
    make_app: MakeApp, index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that changes the user and fails leaves the session the old
    user's, and their index still finds it (so revoke does).
    """
    app = make_app(index_store)
    client = login(app, "42")
    monkeypatch.setattr(index_store, "merge", down)
    with pytest.raises(StoreError):
        client.post("/set", json={"user_id": 43})
    monkeypatch.undo()
    assert client.get("/me").json["user"] == 42  # type: ignore[index]
    assert len(sessions_of(app, "42")) == 1 and sessions_of(app, "43") == []
    assert revoke_elsewhere(app, "42") == 1
    assert client.get("/me").json["user"] is None  # type: ignore[index]


def test_index_cleanup_failure_loses_no_signal(
    make_app: MakeApp,
    index_store: Store,
    events: list[tuple[str, dict[str, t.Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Removing an index entry after its session is gone may fail: the
    signal is still sent, revoke goes on, and the entry drops out when read.
    """
    app = make_app(index_store)
    a, b, c = login(app, "42", "A"), login(app, "42", "B"), login(app, "7")
    events.clear()
    monkeypatch.setattr(index_store, "index_remove", down)
    assert revoke_elsewhere(app, "42") == 2
    assert c.post("/destroy").status_code == 200
    monkeypatch.undo()
    assert summary(events) == [("destroyed", "revoke", "42")] * 2 + [("destroyed", "destroy", "7")]
    assert "dropped when read" in caplog.text
    assert a.get("/me").json["user"] is None  # type: ignore[index]
    assert b.get("/me").json["user"] is None  # type: ignore[index]
    assert sessions_of(app, "42") == [] and sessions_of(app, "7") == []


def test_index_failure_does_not_show_the_user_as_a_sid(
    make_app: MakeApp, index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(index_store)
    monkeypatch.setattr(index_store, "index_add", down)
    with pytest.raises(StoreError) as info:
        app.test_client().post("/login/alice-in-wonderland")
    assert "alice" not in str(info.value)
    assert f"(sid {info.value.sid_prefix}...)" in str(info.value)
    monkeypatch.setattr(index_store, "index_sessions", down)
    with pytest.raises(StoreError) as info:
        sessions_of(app, "alice-in-wonderland")
    assert "alice" not in str(info.value) and info.value.sid_prefix is None


class NoAnswerStore(MemoryStore):
    """A store written before ``destroy`` could tell whether it removed a
    session: it returns ``None``.
    """

    def destroy(self, sid: str) -> None:
        super().destroy(sid)


def test_store_whose_destroy_cannot_tell(
    make_app: MakeApp, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    """A ``destroy`` returning ``None`` counts as having removed the session."""
    app = make_app(NoAnswerStore())
    client = login(app, "42")
    assert client.post("/regenerate").status_code == 200  # keep=True
    assert client.get("/me").json["user"] == 42  # type: ignore[index]
    login(app, "42")
    events.clear()
    client.post("/destroy")
    assert revoke_elsewhere(app, "42") == 1
    assert summary(events) == [("destroyed", "destroy", "42"), ("destroyed", "revoke", "42")]


# -- log out everywhere is complete (issue 22) -------------------------------


def test_revoke_between_regenerate_and_the_end_of_the_request(
    make_app: MakeApp, index_store: Store, events: list[tuple[str, dict[str, t.Any]]]
) -> None:
    """A request moves its session to a new id (``regenerate(keep=True)``,
    a privilege step-up) and, before it ends, the user logs out everywhere:
    the moved session is revoked too, and the end of the request cannot
    store it again.
    """
    app = make_app(index_store)
    thief = login(app, "42")
    old = t.cast(str, sid_of(thief))
    with in_flight(app, thief) as current:
        current.regenerate(keep=True)
        moved = current.id
        assert moved != old
        assert revoke_elsewhere(app, "42") == 1
        current["step"] = "up"  # the view goes on writing
        response = end(app, current)
    assert index_store.get(moved) is None and index_store.get(old) is None
    assert sessions_of(app, "42") == []
    assert ("destroyed", "revoke", "42") in summary(events)
    # Whatever cookie the response sent opens no logged-in session.
    for value in response.headers.getlist("Set-Cookie"):
        thief.set_cookie("connect.sid", value.partition("=")[2].partition(";")[0])
        assert thief.get("/me").json["user"] is None  # type: ignore[index]


@pytest.mark.flask_only("it tells the requests apart by the threads their store calls run in")
def test_revoke_racing_with_the_steps_of_regenerate(make_app: MakeApp, index_store: Store) -> None:
    """The revoke lists the user's sessions just before ``regenerate()``
    stores the new id, and tries to remove the old id just after
    ``regenerate()`` removed it itself: the new id is still found and
    revoked. Two threads, ordered by events around the real store calls.
    """
    app = make_app(index_store)
    thief = login(app, "42")
    old = t.cast(str, sid_of(thief))
    listed, old_removed = threading.Event(), threading.Event()
    revoker: list[threading.Thread] = []
    result: list[int] = []
    real_set, real_destroy = index_store.set, index_store.destroy
    real_list = index_store.index_sessions

    def revoke() -> None:
        result.append(revoke_elsewhere(app, "42"))

    def index_sessions(user: str) -> dict[str, t.Any]:
        found = real_list(user)
        if threading.current_thread() in revoker:
            listed.set()
        return found

    def set_(sid: str, document: dict[str, t.Any]) -> None:
        if sid != old and not revoker:
            # regenerate() is about to store the new id: the revoke lists first.
            revoker.append(threading.Thread(target=revoke))
            revoker[0].start()
            assert listed.wait(10)
        real_set(sid, document)

    def destroy(sid: str) -> bool | None:
        if revoker and threading.current_thread() is revoker[0] and sid == old:
            assert old_removed.wait(10)  # regenerate() removes it first
        removed = real_destroy(sid)
        if sid == old and threading.current_thread() is threading.main_thread():
            old_removed.set()
        return removed

    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(index_store, "index_sessions", index_sessions)
        patch.setattr(index_store, "set", set_)
        patch.setattr(index_store, "destroy", destroy)
        with in_flight(app, thief) as current:
            current.regenerate(keep=True)
            moved = current.id
            if revoker:
                revoker[0].join(10)
            end(app, current)
    assert result == [1]
    assert index_store.get(moved) is None and index_store.get(old) is None
    assert sessions_of(app, "42") == []


@pytest.mark.every_store
@pytest.mark.parametrize("origin", ["before USER_KEY", "express"])
def test_revoke_ends_sessions_outside_the_index(
    make_app: MakeApp, index_store: Store, origin: str
) -> None:
    """A session that names the user but is not in the index (stored before
    ``CONNECT_SESSION_USER_KEY`` was set, or by an Express app) and is not
    used during the revoke is ended all the same: its next request is a new,
    empty session. Another user's session is not affected.
    """
    app = make_app(index_store)
    thief, bystander = app.test_client(), app.test_client()
    if origin == "express":
        for client, user in ((thief, 42), (bystander, 7)):
            client.post("/set", json={"n": 1})
            sid = t.cast(str, sid_of(client))
            document = {"user_id": user, "cookie": {"originalMaxAge": None, "expires": None}}
            index_store.set(sid, document)
    else:
        before = make_app(index_store, CONNECT_SESSION_USER_KEY=None)
        for client, user in ((thief, 42), (bystander, 7)):
            stored = before.test_client()
            stored.post("/set", json={"user_id": user})
            client.set_cookie("connect.sid", t.cast(t.Any, stored.get_cookie("connect.sid")).value)
    stolen = t.cast(str, sid_of(thief))
    victim = login(app, "42")
    assert sessions_of(app, "42")[0].current is False  # only the victim's is listed
    assert len(sessions_of(app, "42")) == 1
    assert victim.post("/revoke").json == {"revoked": 1}
    assert thief.get("/me").json["user"] is None  # type: ignore[index]
    assert index_store.get(stolen) is None
    assert bystander.get("/me").json["user"] == 7  # type: ignore[index]
    # A session this extension creates after the revoke is not affected.
    again = login(app, "42")
    assert again.get("/me").json["user"] == 42  # type: ignore[index]
    assert [i.current for i in sessions_of(app, "42")] == [False]


def test_revoke_ends_an_unindexed_session_used_during_the_revoke(
    make_app: MakeApp, index_store: Store
) -> None:
    """A session outside the index, loaded by a request before the revoke
    and saved (so indexed) after it, is ended at that save.
    """
    app = make_app(index_store)
    thief = app.test_client()
    thief.post("/set", json={"n": 1})
    sid = t.cast(str, sid_of(thief))
    index_store.set(sid, {"user_id": 42, "cookie": {"originalMaxAge": None, "expires": None}})
    with in_flight(app, thief) as current:
        assert revoke_elsewhere(app, "42") == 0  # not in the index yet
        current["cart"] = [1]
        end(app, current)
    assert index_store.get(sid) is None
    assert sessions_of(app, "42") == []
    assert thief.get("/me").json["user"] is None  # type: ignore[index]


def test_keep_current_spares_an_unindexed_current_session(
    make_app: MakeApp, index_store: Store
) -> None:
    app = make_app(index_store)
    client = app.test_client()
    client.post("/set", json={"n": 1})
    sid = t.cast(str, sid_of(client))
    index_store.set(sid, {"user_id": 42, "cookie": {"originalMaxAge": None, "expires": None}})
    assert client.post("/revoke?keep=1").json == {"revoked": 0}
    assert client.get("/me").json == {"user": 42, "id": sid}
    assert [i.current for i in sessions_of(app, "42")] == [False]


@pytest.mark.every_store
def test_revoke_record_is_kept_only_as_long_as_a_session_can_live(
    index_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-user revoke record expires: it cannot grow without bound."""
    now = time.time()
    index_store.index_revoke("42", now - 10, now + 3600)
    index_store.index_revoke("42", now, now + 3600)  # the later record replaces it
    assert index_store.index_revoked("42") == pytest.approx(now, abs=0.002)
    assert index_store.index_revoked("7") is None
    index_store.index_revoke("7", now, now + 1)
    if isinstance(index_store, (MemoryStore,)) or hasattr(index_store, "directory"):
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 2)
    else:
        time.sleep(1.2)  # the backend's own clock expires it
    assert index_store.index_revoked("7") is None
    assert index_store.index_revoked("42") is not None


def test_read_only_request_costs_one_round_trip_after_a_revoke(
    make_app: MakeApp, redis_server: t.Any, redis_url: str
) -> None:
    """The revoke record is read on rare paths only: a read-only request of
    an indexed session of a user who revoked is still one GETEX.
    """
    from test_concurrency import CommandStats

    app = make_app(redis_url)
    login(app, "42").post("/revoke")
    client = login(app, "42")
    client.get("/me")
    stats = CommandStats(redis_server)
    try:
        stats.reset()
        for _ in range(5):
            assert client.get("/me").json["user"] == 42  # type: ignore[index]
        assert stats.calls() == {"getex": 5}
    finally:
        stats.client.close()


# -- CONNECT_SESSION_MAX_PER_USER ------------------------------------------------


@pytest.mark.every_store
def test_max_per_user_evicts_the_least_recently_seen(
    make_app: MakeApp,
    index_store: Store,
    events: list[tuple[str, dict[str, t.Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(index_store, CONNECT_SESSION_MAX_PER_USER=2)
    real = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    first, second = login(app, "42", "First"), login(app, "42", "Second")
    offset[0] = 120
    assert first.get("/me").json["user"] == 42  # type: ignore[index]  # seen again
    other = login(app, "7")
    events.clear()
    third = login(app, "42", "Third")
    assert [i.user_agent for i in sessions_of(app, "42")] == ["Third", "First"]
    assert second.get("/me").json["user"] is None  # type: ignore[index]
    assert summary(events)[-1] == ("destroyed", "evicted", "42")
    assert ("created", None, "42") in summary(events)
    # A step-up (regenerate) is no new login: nothing is evicted.
    assert third.post("/regenerate").status_code == 200
    assert first.get("/me").json["user"] == 42  # type: ignore[index]
    assert other.get("/me").json["user"] == 7  # type: ignore[index]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"CONNECT_SESSION_MAX_PER_USER": 0}, "CONNECT_SESSION_MAX_PER_USER"),
        ({"CONNECT_SESSION_MAX_PER_USER": "3"}, "CONNECT_SESSION_MAX_PER_USER"),
        ({"CONNECT_SESSION_MAX_PER_USER": True}, "CONNECT_SESSION_MAX_PER_USER"),
        ({"CONNECT_SESSION_MAX_PER_USER": 2.5}, "CONNECT_SESSION_MAX_PER_USER"),
        (
            {"CONNECT_SESSION_MAX_PER_USER": 3, "CONNECT_SESSION_USER_KEY": None},
            "CONNECT_SESSION_MAX_PER_USER.*CONNECT_SESSION_USER_KEY",
        ),
    ],
)
def test_bad_max_per_user(make_app: MakeApp, config: dict[str, t.Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_app(MemoryStore(), **config)


# -- CONNECT_SESSION_ABSOLUTE_TIMEOUT and logins --------------------------------


def test_absolute_timeout_restarts_on_a_login_not_on_regenerate(
    make_app: MakeApp, index_store: Store, clock: list[float]
) -> None:
    """With ``USER_KEY``, a view that regenerates (keeping the data) cannot
    extend the session: the count restarts only when its user changes.
    """
    app = make_app(index_store, CONNECT_SESSION_ABSOLUTE_TIMEOUT=100)
    client = login(app, "42")
    for now in (40, 80):
        clock[0] = now
        assert client.post("/regenerate").status_code == 200  # keep=True
        assert client.get("/me").json["user"] == 42  # type: ignore[index]
    clock[0] = 101
    assert client.get("/me").json["user"] is None  # type: ignore[index]
    # A login (another user, or the same one through the login form) starts
    # the count again.
    clock[0] = 0
    client = login(app, "42")
    clock[0] = 50
    client.post("/login/43")
    clock[0] = 90
    client.post("/login/43")
    clock[0] = 180
    assert client.get("/me").json["user"] == 43  # type: ignore[index]
    clock[0] = 191
    assert client.get("/me").json["user"] is None  # type: ignore[index]


def test_absolute_timeout_restarts_on_regenerate_without_user_key(
    make_app: MakeApp, index_store: Store, clock: list[float]
) -> None:
    app = make_app(
        index_store, CONNECT_SESSION_ABSOLUTE_TIMEOUT=100, CONNECT_SESSION_USER_KEY=None
    )
    client = app.test_client()
    client.post("/set", json={"user_id": 42})
    clock[0] = 60
    assert client.post("/regenerate").status_code == 200
    clock[0] = 150
    assert client.get("/me").json["user"] == 42  # type: ignore[index]
    clock[0] = 161
    assert client.get("/me").json["user"] is None  # type: ignore[index]


@pytest.mark.every_store
def test_revoke_ends_a_session_whose_index_entry_expired(
    make_app: MakeApp, index_store: Store
) -> None:
    """A session kept alive past its index entry's ``until`` (by an Express
    app's touches, or while ``USER_KEY`` was unset) is not listed, but its
    next use here finds the revoke record.
    """
    app = make_app(index_store)
    thief = login(app, "42")
    sid = t.cast(str, sid_of(thief))
    document = t.cast(dict[str, t.Any], index_store.get(sid))
    document[DEVICE_MEMBER]["until"] = int(time.time() * 1000) - 1000
    index_store.set(sid, document)
    index_store.index_remove("42", sid)  # as the expired entry was dropped
    victim = login(app, "42")
    assert victim.post("/revoke").json == {"revoked": 1}
    assert thief.get("/me").json["user"] is None  # type: ignore[index]
    assert index_store.get(sid) is None
