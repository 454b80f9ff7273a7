"""The lifecycle around the store: failures, corruption, concurrency, timeouts."""

from __future__ import annotations

import collections.abc as cabc
import logging
import threading
import time
import typing as t

import pytest

from flask_connect_session import MemoryStore
from flask_connect_session import SessionNotFound
from flask_connect_session import Store
from flask_connect_session import StoreError
from flask_connect_session.signing import sign

import framework as fw
from conftest import SECRET
from framework import App
from framework import flash
from framework import get_flashed_messages
from framework import session

Document = dict[str, t.Any]


class SwitchableStore(MemoryStore):
    """A real MemoryStore that can be switched off, and counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls: list[str] = []

    def _check(self, operation: str) -> None:
        self.calls.append(operation)
        if self.down:
            raise ConnectionError("backend unreachable")

    def get(self, sid: str) -> Document | None:
        self._check("get")
        return super().get(sid)

    def get_and_touch(self, sid: str) -> Document | None:
        self._check("get_and_touch")
        return super().get_and_touch(sid)

    def set(self, sid: str, session: Document) -> None:
        self._check("set")
        super().set(sid, session)

    def destroy(self, sid: str) -> None:
        self._check("destroy")
        super().destroy(sid)

    def touch(self, sid: str, session: Document) -> None:
        self._check("touch")
        super().touch(sid, session)

    def merge(self, sid: str, changes: t.Any, removed: t.Any) -> bool:
        self._check("merge")
        return super().merge(sid, changes, removed)


def sid_of(response: t.Any) -> str:
    from urllib.parse import unquote

    header = response.headers["Set-Cookie"]
    value = unquote(header.split(";")[0].split("=", 1)[1])
    return value[2:].rpartition(".")[0]


@pytest.fixture
def switchable(make_app: cabc.Callable[..., App]) -> tuple[App, SwitchableStore]:
    store = SwitchableStore()
    return make_app(CONNECT_SESSION_STORE=store), store


def test_dead_store_is_a_500_with_logged_store_error(
    switchable: tuple[App, SwitchableStore], caplog: pytest.LogCaptureFixture
) -> None:
    """A store that is down fails the request with 500 and logs store and operation."""
    app, store = switchable
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    assert client.post("/set", json={"a": 1}).status_code == 200
    store.down = True
    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        assert client.get("/get").status_code == 500
    message = " ".join(r.getMessage() for r in caplog.records)
    assert f"{fw.store_name(app)}.get_and_touch failed" in message
    # The cause is in the log line, with its message, not only its type.
    assert "ConnectionError: backend unreachable" in message


def test_unreachable_redis_logs_host_and_reason(
    framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py 8's repr() of a connection error drops the host and reason;
    the log line and the StoreError carry them.
    """
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connecting is refused
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=f"redis://127.0.0.1:{port}/0"
    )
    fw.connect(app)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/")
    def index() -> str:
        session["x"] = 1
        return "ok"

    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        assert app.test_client().get("/").status_code == 500
    store_lines = [
        r.getMessage()
        for r in caplog.records
        if f"{fw.store_name(app)}.set failed" in r.getMessage()
    ]
    assert store_lines, caplog.text
    assert f"connecting to 127.0.0.1:{port}" in store_lines[0]
    assert "network:ConnectionError" not in store_lines[0]


def test_store_error_on_save_overwrites_nothing_and_recovers(
    switchable: tuple[App, SwitchableStore],
) -> None:
    """A failing write leaves the stored session as it was; once the store is
    back, requests succeed without a restart.
    """
    app, store = switchable
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.post("/write-while-down")
    def write_while_down() -> str:
        session["a"] = 2
        store.down = True
        return "written"

    client = app.test_client()
    sid = client.post("/set", json={"a": 1}).json["id"]

    assert client.post("/write-while-down").status_code == 500
    store.down = False
    assert store.get(sid) is not None
    assert client.get("/get").json["data"] == {"a": 1}
    assert client.post("/set", json={"a": 3}).json["data"] == {"a": 3}


def test_store_error_at_first_access_can_be_handled(
    switchable: tuple[App, SwitchableStore],
) -> None:
    """@app.errorhandler(StoreError) catches a failure at the view's first access."""
    app, store = switchable

    @app.errorhandler(StoreError)
    def unavailable(exc: StoreError) -> tuple[str, int]:
        assert isinstance(exc.__cause__, ConnectionError)
        return f"sessions down: {exc.operation}", 503

    client = app.test_client()
    client.post("/set", json={"a": 1})
    store.down = True
    response = client.get("/get")
    assert response.status_code == 503
    assert response.data == b"sessions down: get_and_touch"


def test_view_ignoring_session_makes_no_store_call(
    switchable: tuple[App, SwitchableStore],
) -> None:
    """Lazy loading: no store call, no cookie, no Vary when the view ignores
    it. Quart's session is a plain mapping, read when the request starts,
    but only when the request carries a signed id: still no cookie, no Vary,
    and nothing after the read.
    """
    app, store = switchable
    client = app.test_client()
    response = client.get("/ignore")
    assert store.calls == []
    assert "Set-Cookie" not in response.headers
    client.post("/set", json={"a": 1})
    store.calls.clear()
    response = client.get("/ignore")
    assert store.calls == ([] if fw.framework_of(app) == "flask" else ["get_and_touch"])
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers


def test_read_only_request_is_one_store_call(switchable: tuple[App, SwitchableStore]) -> None:
    """A read-only request loads and extends the lifetime in one call."""
    app, store = switchable
    client = app.test_client()
    client.post("/set", json={"a": 1})
    store.calls.clear()
    client.get("/get")
    assert store.calls == ["get_and_touch"]


class GetThenTouchStore(SwitchableStore):
    """A store without the combined call: loads with get, touches at the end."""

    get_and_touch = Store.get_and_touch  # type: ignore[assignment]


def test_read_only_request_without_combined_call_gets_then_touches(
    make_app: cabc.Callable[..., App],
) -> None:
    """Without get_and_touch, a read-only request is a get then a touch."""
    store = GetThenTouchStore()
    client = make_app(CONNECT_SESSION_STORE=store).test_client()
    client.post("/set", json={"a": 1})
    store.calls.clear()
    client.get("/get")
    assert store.calls == ["get", "touch"]


@pytest.mark.every_store
def test_corrupt_document_means_new_session_and_is_left_in_place(
    app: App, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored entry that is not a session is logged, ignored and not overwritten."""
    client = app.test_client()
    sid = client.post("/set", json={"a": 1}).json["id"]
    # Corrupt in a way every store keeps: the cookie member is not an object.
    store.set(sid, {"cookie": "oops", "a": 1})
    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        response = client.post("/set", json={"b": 2})
    assert response.json["id"] != sid
    assert response.json["data"] == {"b": 2}
    assert "corrupt session document" in caplog.text
    # Still there, still the same corrupt entry: neither deleted nor overwritten.
    assert store_raw_cookie(store, sid) in ("corrupt", "oops")


def store_raw_cookie(store: Store, sid: str) -> object:
    from flask_connect_session.errors import CorruptDocument

    try:
        document = store.get(sid)
    except CorruptDocument:
        return "corrupt"
    return None if document is None else document.get("cookie")


def test_unstorable_value_is_a_type_error_naming_the_key(app: App) -> None:
    """A value with no JSON form raises TypeError naming its key."""

    @app.get("/bad")
    def bad() -> str:
        session["handle"] = object()
        with pytest.raises(TypeError, match="handle"):
            session.save()
        del session["handle"]
        return "ok"

    assert app.test_client().get("/bad").data == b"ok"


def test_session_transaction_open_does_not_write(
    switchable: tuple[App, SwitchableStore],
) -> None:
    """Opening a session_transaction makes no write; leaving it saves changes."""
    app, store = switchable
    client = app.test_client()
    with client.session_transaction() as sess:
        assert store.calls == []
        sess["answer"] = 42
    assert store.calls == ["set"]
    assert client.get("/get").json["data"] == {"answer": 42}
    with client.session_transaction() as sess:
        assert sess["answer"] == 42


def test_concurrent_requests_changing_different_keys_keep_all(app: App) -> None:
    """50 overlapping requests each adding a key: all 50 keys survive."""
    barrier = threading.Barrier(10)

    @app.post("/add/<int:n>")
    def add(n: int) -> str:
        session.get("start")
        if n < 10:  # make the first ten overlap for sure
            barrier.wait(timeout=10)
        session[f"k{n}"] = n
        return "ok"

    client = app.test_client()
    client.post("/set", json={"start": True})
    cookie = client.get_cookie("connect.sid")
    assert cookie is not None

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = app.test_client()
            c.set_cookie("connect.sid", cookie.value)
            assert c.post(f"/add/{n}").status_code == 200
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    data = client.get("/get").json["data"]
    assert {f"k{n}" for n in range(50)} <= set(data)


@pytest.mark.every_store
def test_save_after_concurrent_destroy_does_not_resurrect(app: App, store: Store) -> None:
    """A request that loaded the session before another destroyed it does not
    bring it back when it saves.
    """

    @app.post("/slow-write")
    def slow_write() -> str:
        session.get("user")
        store.destroy(session.id)  # another request logs out meanwhile
        session["cart"] = ["book"]
        return "ok"

    client = app.test_client()
    sid = client.post("/set", json={"user": "ann"}).json["id"]

    response = client.post("/slow-write")
    assert response.status_code == 200
    assert store.get(sid) is None
    assert "Set-Cookie" not in response.headers


def test_destroy_then_flash_starts_a_new_session(app: App, store: Store) -> None:
    """Logout followed by flash(): the old session is gone, the flash survives
    in a new session, and only the new cookie is sent.
    """

    @app.post("/logout")
    def logout() -> str:
        session.destroy()
        flash("bye")
        return "ok"

    @app.get("/messages")
    def messages() -> dict[str, t.Any]:
        return {"messages": get_flashed_messages()}

    client = app.test_client()
    old = client.post("/set", json={"user": "ann"}).json["id"]
    response = client.post("/logout")
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    new = sid_of(response)
    assert new != old
    assert store.get(old) is None
    assert client.get("/messages").json == {"messages": ["bye"]}


def test_destroy_without_writes_deletes_cookie(app: App, store: Store) -> None:
    """destroy() with nothing written after: the cookie is deleted."""
    client = app.test_client()
    sid = client.post("/set", json={"user": "ann"}).json["id"]
    response = client.post("/destroy")
    header = response.headers["Set-Cookie"]
    assert header.startswith("connect.sid=;") and "Expires=Thu, 01 Jan 1970" in header
    assert store.get(sid) is None


def test_reload_of_destroyed_session_raises(app: App, store: Store) -> None:
    """reload() raises SessionNotFound when the session is gone from the store."""

    @app.get("/reload")
    def reload() -> str:
        session.get("a")
        store.destroy(session.id)
        with pytest.raises(SessionNotFound):
            session.reload()
        return "ok"

    client = app.test_client()
    client.post("/set", json={"a": 1})
    assert client.get("/reload").data == b"ok"


def test_absolute_timeout_discards_old_sessions(
    make_app: cabc.Callable[..., App], store: Store
) -> None:
    """A session older than ABSOLUTE_TIMEOUT is discarded however active."""
    app = make_app(CONNECT_SESSION_ABSOLUTE_TIMEOUT=1)
    client = app.test_client()
    first = client.post("/set", json={"a": 1}).json["id"]
    assert client.get("/get").json["id"] == first
    document = store.get(first)
    assert document is not None and isinstance(document["_created"], int)
    assert "_created" not in client.get("/get").json["data"]
    time.sleep(1.1)
    response = client.get("/get").json
    assert response["id"] != first and response["data"] == {}
    assert store.get(first) is None


def test_valid_signature_for_unknown_sid_is_not_adopted(app: App, store: Store) -> None:
    """A validly signed id the store does not have gets a fresh id."""
    client = app.test_client()
    client.set_cookie("connect.sid", sign("attacker-chosen", SECRET))
    response = client.post("/set", json={"a": 1})
    assert response.json["id"] != "attacker-chosen"
    assert store.get("attacker-chosen") is None


def test_cookie_is_not_a_data_key(app: App) -> None:
    """Writing the reserved "cookie" key is refused; it never shows in the data."""

    @app.get("/reserved")
    def reserved() -> dict[str, t.Any]:
        session["x"] = 1
        with pytest.raises(KeyError):
            session["cookie"] = "nope"
        return {"keys": list(session), "len": len(session)}

    assert app.test_client().get("/reserved").json == {"keys": ["x"], "len": 1}
