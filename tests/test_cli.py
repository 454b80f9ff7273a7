"""``flask session`` and ``quart session``: every command against every
store kind (behind Flask; the memory store behind Quart), a store that
lacks the optional operations, a store that lists but does not expire, and a
store whose backend is down.
"""

from __future__ import annotations

import collections.abc as cabc
import json
import socket
import time
import typing as t
from datetime import timedelta

import pytest
from click.testing import Result
from flask import Flask

from flask_connect_session import Store
from flask_connect_session.cli import PROGRESS_THRESHOLD
from flask_connect_session.cookie import format_expires
from flask_connect_session.cookie import parse_expires
from flask_connect_session.cookie import utcnow
from flask_connect_session.document import encode
from flask_connect_session.signing import sign
from flask_connect_session.stores.base import Document
from flask_connect_session.stores.base import implements

import framework as fw
from conftest import SECRET

MakeApp = cabc.Callable[..., Flask]


class MinimalStore(Store):
    """A store with only the required operations, over a dict of JSON text
    (what a bring-your-own store backed by a key-value API looks like).
    """

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def get(self, sid: str) -> Document | None:
        text = self.entries.get(sid)
        return None if text is None else t.cast(Document, json.loads(text))

    def set(self, sid: str, session: Document) -> None:
        self.entries[sid] = encode(session)

    def destroy(self, sid: str) -> None:
        self.entries.pop(sid, None)


class TableStore(MinimalStore):
    """A store that lists its sessions but never expires them (a database
    table without a cleanup job): ``prune`` sweeps it by cookie expiry.
    """

    def all(self) -> dict[str, Document]:
        return {sid: t.cast(Document, json.loads(text)) for sid, text in self.entries.items()}


class UnreachableStore(Store):
    """A store whose server is down: every call opens a TCP connection to a
    loopback port nobody listens on, and fails as a real client would.
    """

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # The socket is closed: connecting is refused.

    def _connect(self) -> None:
        socket.create_connection(("127.0.0.1", self.port), timeout=2).close()

    def get(self, sid: str) -> Document | None:
        self._connect()
        return None

    def set(self, sid: str, session: Document) -> None:
        self._connect()

    def destroy(self, sid: str) -> None:
        self._connect()

    def all(self) -> dict[str, Document]:
        self._connect()
        return {}

    def length(self) -> int:
        self._connect()
        return 0

    def clear(self) -> None:
        self._connect()


def can(store: Store, method: str) -> bool:
    """Whether ``store`` can do the optional, argument-less ``method``; call
    it on an empty store only (``clear`` is a probe too).
    """
    try:
        getattr(store, method)()
    except NotImplementedError:
        return False
    return True


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["session", *args], input=input)


def assert_clean_error(result: Result, *fragments: str) -> None:
    """Exit status 1, a one-line ``Error:`` naming what failed, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output


def make_sessions(app: Flask, *payloads: dict[str, t.Any]) -> list[str]:
    """Create one stored session per payload through real requests."""
    sids = []
    for payload in payloads:
        response = app.test_client().post("/set", json=payload)
        assert response.status_code == 200
        sids.append(response.json["id"])
    return sids


def bare_app(framework: str, store: Store) -> Flask:
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=store)
    fw.connect(app)
    return app


def document(expires_in: float | None, **data: t.Any) -> Document:
    expires = (
        None if expires_in is None else format_expires(utcnow() + timedelta(seconds=expires_in))
    )
    max_age = None if expires_in is None else int(expires_in * 1000)
    return {**data, "cookie": {"originalMaxAge": max_age, "expires": expires, "path": "/"}}


# -- every store kind ----------------------------------------------------


@pytest.mark.every_store
def test_count(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    countable = can(store, "length") or can(store, "all")
    make_sessions(app, {"a": 1}, {"b": 2})
    result = run(app, "count")
    if countable:
        assert result.exit_code == 0, result.output
        assert result.output == "2\n"
    else:
        assert_clean_error(result, "cannot count sessions")


@pytest.mark.every_store
def test_list_shows_id_expiry_and_size(make_app: MakeApp, store: Store) -> None:
    app = make_app(CONNECT_SESSION_COOKIE={"max_age": 600})
    listable = can(store, "all")
    sids = make_sessions(app, {"a": 1}, {"b": "x" * 100})
    result = run(app, "list", "--json")
    if not listable:
        assert_clean_error(result, "cannot list sessions")
        return
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["id"] for row in rows] == sorted(sids)
    by_id = {row["id"]: row for row in rows}
    for sid in sids:
        stored = store.get(sid)
        assert stored is not None
        assert by_id[sid]["size"] == len(encode(stored).encode())
        assert by_id[sid]["expires"] == stored["cookie"]["expires"]
        expires = parse_expires(by_id[sid]["expires"])
        assert expires is not None
        assert 590 < (expires - utcnow()).total_seconds() <= 600
    assert by_id[sids[1]]["size"] > by_id[sids[0]]["size"] + 100

    table = run(app, "list")
    assert table.exit_code == 0, table.output
    header, *lines = table.output.splitlines()
    assert header.split() == ["ID", "EXPIRES", "SIZE"]
    assert [line.split() for line in lines] == [
        [row["id"], row["expires"], str(row["size"])] for row in rows
    ]


@pytest.mark.every_store
def test_list_browser_session_and_empty(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    if not can(store, "all"):
        assert_clean_error(run(app, "list"), "cannot list sessions")
        return
    assert run(app, "list").output == "no sessions\n"
    assert json.loads(run(app, "list", "--json").output) == []
    (sid,) = make_sessions(app, {"a": 1})
    assert json.loads(run(app, "list", "--json").output)[0]["expires"] is None
    assert run(app, "list").output.splitlines()[1].split()[1:3] == ["browser", "session"]


@pytest.mark.every_store
def test_show(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    (sid,) = make_sessions(app, {"user": "ann", "cart": [1, 2]})
    result = run(app, "show", sid)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["user"] == "ann" and shown["cart"] == [1, 2]
    assert shown["cookie"]["httpOnly"] is True
    # A signed cookie value, as copied from a browser, names the same session.
    assert json.loads(run(app, "show", sign(sid, SECRET)).output) == shown


@pytest.mark.every_store
def test_ids_starting_with_a_dash(make_app: MakeApp, store: Store) -> None:
    """base64url ids may start with ``-``; they are not taken for options."""
    app = make_app()
    store.set("-dash", document(60, user="ann"))
    shown = run(app, "show", "-dash")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["user"] == "ann"
    assert run(app, "delete", "-dash").output == "deleted -dash\n"
    assert store.get("-dash") is None


@pytest.mark.every_store
def test_show_unknown_or_forged(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    (sid,) = make_sessions(app, {"a": 1})
    assert_clean_error(run(app, "show", "nope"), "no session 'nope'")
    assert_clean_error(run(app, "show", sign(sid, "another secret")), "does not verify")


@pytest.mark.every_store
def test_delete(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    client = app.test_client()
    sid = client.post("/set", json={"user": "ann"}).json["id"]
    (other,) = make_sessions(app, {"user": "bob"})
    result = run(app, "delete", sid)
    assert result.exit_code == 0, result.output
    assert result.output == f"deleted {sid}\n"
    assert store.get(sid) is None
    assert store.get(other) is not None
    # The user is logged out: their cookie now gets a brand-new session.
    after = client.get("/get").json
    assert after["data"] == {} and after["new"] is True and after["id"] != sid
    assert_clean_error(run(app, "delete", sid), "no session")


@pytest.mark.every_store
def test_clear_asks_first(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    clearable = can(store, "clear") or can(store, "all")
    sids = make_sessions(app, {"a": 1}, {"b": 2})
    declined = run(app, "clear", input="n\n")
    assert declined.exit_code == 1
    assert "Aborted" in declined.output
    assert all(store.get(sid) is not None for sid in sids)
    confirmed = run(app, "clear", input="y\n")
    if not clearable:
        assert_clean_error(confirmed, "cannot clear sessions")
        return
    assert confirmed.exit_code == 0, confirmed.output
    assert all(store.get(sid) is None for sid in sids)


@pytest.mark.every_store
def test_clear_yes(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    clearable = can(store, "clear") or can(store, "all")
    sids = make_sessions(app, {"a": 1}, {"b": 2})
    result = run(app, "clear", "--yes")
    if not clearable:
        assert_clean_error(result, "cannot clear sessions")
        return
    assert result.exit_code == 0, result.output
    assert result.output == "cleared 2 session(s)\n"  # reports what it did
    assert all(store.get(sid) is None for sid in sids)
    assert run(app, "clear", "--yes").output == "cleared 0 session(s)\n"


@pytest.mark.every_store
def test_prune(make_app: MakeApp, store: Store) -> None:
    """An expired session is gone after ``prune`` (or already, for stores
    whose backend expires entries); a live one stays.
    """
    app = make_app()
    store.set("short", document(1, a=1))
    store.set("long", document(3600, b=2))
    time.sleep(1.2)
    result = run(app, "prune")
    assert result.exit_code == 0, result.output
    if implements(store, "prune"):
        assert result.output == "pruned 1 expired session(s)\n"
        assert store.get("short") is None
    else:
        assert "leaves expiry to its backend" in result.output
        # The backend's clock ticks in whole seconds (memcached adds one).
        deadline = time.monotonic() + 3
        while store.get("short") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.get("short") is None
    assert store.get("long") is not None


# -- stores without the optional operations -------------------------------


def test_minimal_store_reports_what_it_cannot_do(framework: str) -> None:
    store = MinimalStore()
    app = bare_app(framework, store)
    store.set("abc", document(60, user="ann"))
    assert_clean_error(
        run(app, "count"),
        "MinimalStore cannot count sessions (it implements neither length() nor all())",
    )
    for args in (["list"], ["list", "--json"]):
        assert_clean_error(
            run(app, *args), "MinimalStore cannot list sessions (it does not implement all())"
        )
    assert_clean_error(
        run(app, "clear", "--yes"),
        "MinimalStore cannot clear sessions (it implements neither clear() nor all())",
    )
    assert store.get("abc") is not None
    # The required operations still work.
    assert json.loads(run(app, "show", "abc").output)["user"] == "ann"
    assert run(app, "delete", "abc").exit_code == 0
    assert store.entries == {}
    pruned = run(app, "prune")
    assert pruned.exit_code == 0
    assert (
        pruned.output
        == "pruned 0 expired session(s) (MinimalStore leaves expiry to its backend)\n"
    )


class UncountedClearStore(TableStore):
    """A store of its own whose clear() does not say how many it removed
    (the contract allows ``None``)."""

    def clear(self) -> None:
        self.entries.clear()


def test_clear_of_a_store_that_does_not_count(framework: str) -> None:
    store = UncountedClearStore()
    app = bare_app(framework, store)
    for n in range(3):
        store.set(f"s{n}", document(60, n=n))
    result = run(app, "clear", "--yes")
    assert result.output == (
        "cleared every session (UncountedClearStore.clear() does not say how many)\n"
    )
    assert store.entries == {}


def test_listing_store_counts_and_clears_through_all(framework: str) -> None:
    store = TableStore()
    app = bare_app(framework, store)
    for n in range(3):
        store.set(f"s{n}", document(60, n=n))
    assert run(app, "count").output == "3\n"
    result = run(app, "clear", "--yes")
    assert result.output == "cleared 3 session(s)\n"
    assert store.entries == {}


def test_prune_sweeps_a_store_that_lists_but_never_expires(framework: str) -> None:
    store = TableStore()
    app = bare_app(framework, store)
    store.set("expired", document(-5))
    store.set("live", document(60))
    store.set("browser", document(None))
    result = run(app, "prune")
    assert result.exit_code == 0, result.output
    assert result.stdout == "pruned 1 expired session(s)\n"
    assert "Sweeping" not in result.output  # a short run draws no bar
    assert sorted(store.entries) == ["browser", "live"]


def test_prune_long_sweep_shows_progress(framework: str) -> None:
    store = TableStore()
    app = bare_app(framework, store)
    expired = PROGRESS_THRESHOLD
    for n in range(expired):
        store.set(f"old{n}", document(-1))
    for n in range(10):
        store.set(f"new{n}", document(60))
    result = run(app, "prune")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"pruned {expired} expired session(s)\n"
    # Click draws the bar on a terminal; elsewhere it prints the label once.
    assert "Sweeping sessions" in result.stderr
    assert len(store.entries) == 10


def test_unreachable_store_is_a_clean_error(framework: str) -> None:
    app = bare_app(framework, UnreachableStore())
    for args, operation in [
        (["count"], "length"),
        (["list"], "all"),
        (["show", "abc"], "get"),
        (["delete", "abc"], "get"),
        (["clear", "--yes"], "clear"),
    ]:
        result = run(app, *args)
        assert_clean_error(result, f"UnreachableStore.{operation} failed", "ConnectionRefused")


def test_unreachable_redis_error_names_host_and_reason(framework: str) -> None:
    """The CLI's error says where it failed to connect and why (redis-py 8's
    repr() of the exception says only ``network:ConnectionError``).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = bare_app(framework, UnreachableStore())
    app.config["CONNECT_SESSION_STORE"] = f"redis://127.0.0.1:{port}/0"
    fw.connect(app)
    result = run(app, "count")
    assert_clean_error(result, "RedisStore.length failed: ConnectionError:")
    assert f"connecting to 127.0.0.1:{port}" in result.output


def test_without_the_extension(framework: str) -> None:
    """The group belongs to the app it was added to: an app without the
    extension, sharing the group object, gets a clear error.
    """
    from flask_connect_session.cli import session_cli
    from flask_connect_session.quart import quart_session_cli

    app = fw.new_app(framework)
    app.cli.add_command(session_cli if framework == "flask" else quart_session_cli)
    assert_clean_error(run(app, "count"), "ConnectSession is not set up")
