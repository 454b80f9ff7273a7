"""Regression tests for the low-severity findings of the second security
review (issue 22): each reproduces what the review did against real servers
and checks it now fails.
"""

from __future__ import annotations

import collections.abc as cabc
import json
import logging
import os
import stat
import time
import traceback
import typing as t
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_connect_session import FileSystemStore
from flask_connect_session import MemoryStore
from flask_connect_session import RedisStore
from flask_connect_session import SessionTooLarge
from flask_connect_session import SQLStore
from flask_connect_session import Store
from flask_connect_session import StoreError
from flask_connect_session.document import encode
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores import sql as sql_module
from flask_connect_session.stores.redis import SCRIPT_LIMIT

import framework as fw
from conftest import SECRET
from conftest import STORE_BUILDERS
from conftest import add_views
from framework import Response
from framework import make_response
from framework import request
from framework import session

KEY = "connect.sid"

# -- 5. SQLStore errors never quote the sid or the session's data -------------------

#: What the session holds: no error or log line may show it.
API_TOKEN = "tok_live_9f8e7d6c5b4a"


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would print it, tracebacks and their
    chained exceptions included.
    """
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records if record.name not in TRACERS)


#: Drivers whose DEBUG records trace every statement with its parameters,
#: by design (documented in docs/quart.rst: keep them at INFO or above).
TRACERS = {"aiosqlite"}


def _locker(dialect: str, url: str) -> cabc.Callable[[], t.Any]:
    """Return a function that locks the session table from another
    connection (returned, to be closed by the caller) so that the next
    write of the table times out.
    """

    def lock() -> sa.Connection:
        conn = sa.create_engine(url, poolclass=sa.pool.NullPool).connect()
        if dialect == "postgresql":
            conn.exec_driver_sql("LOCK TABLE session IN ACCESS EXCLUSIVE MODE")
        elif dialect == "mariadb":
            conn.exec_driver_sql("LOCK TABLES session WRITE")
        else:
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        return conn

    return lock


def _short_lock_waits(dialect: str, url: str, given: str) -> tuple[object, str]:
    """The store setting (a URL or an engine of the app's) for ``url``,
    with lock waits of about a second, and the URL the locker uses.
    """
    if dialect == "postgresql":
        options = {"options": "-c lock_timeout=1s"}
    elif dialect == "mariadb":
        options = {"init_command": "SET lock_wait_timeout=1, innodb_lock_wait_timeout=1"}
    else:
        options = {"timeout": "0.2"}
    if given == "engine":
        connect_args = {k: float(v) if k == "timeout" else v for k, v in options.items()}
        # echo: the app logs its statements, ours must not show their values.
        return sa.create_engine(url, connect_args=connect_args, echo=True), url
    query = "&".join(f"{k}={quote(v)}" for k, v in options.items())
    return f"{url}?{query}", url


@pytest.mark.slow
@pytest.mark.parametrize("given", ["url", "engine"])
@pytest.mark.parametrize("dialect", ["postgresql", "mariadb", "sqlite"])
def test_sql_errors_quote_neither_the_sid_nor_the_data(
    framework: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    dialect: str,
    given: str,
) -> None:
    """A write that times out on a lock (PostgreSQL's lock timeout,
    MariaDB's lock wait timeout, SQLite's "database is locked") fails with
    a logged StoreError; nothing logged or raised holds the session's data
    or more than 6 characters of its id, whether the store built the
    engine from a URL or the app passed its own.
    """
    monkeypatch.setattr(sql_module, "LOCK_TIMEOUT", 1)
    url = t.cast(str, request.getfixturevalue(f"{dialect}_url"))
    setting, lock_url = _short_lock_waits(dialect, url, given)
    lock = _locker(dialect, lock_url)
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=setting)
    fw.connect(app)
    store = fw.sync_store_of(app)
    assert store.length() == 0  # creates the table
    held: list[sa.Connection] = []
    sids: list[str] = []

    @app.post("/login")
    def login() -> str:
        session["user"] = "alice"
        session["api_token"] = API_TOKEN
        sids.append(session.id)
        held.append(lock())
        return "ok"

    client = app.test_client()
    try:
        with caplog.at_level(logging.DEBUG):
            assert client.post("/login").status_code == 500
    finally:
        for conn in held:
            conn.close()
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert errors and isinstance(errors[0], StoreError)
    text = _everything_logged(caplog.records)
    text += "".join(traceback.format_exception(errors[0]))
    text += repr(errors[0]) + repr(errors[0].__cause__)
    assert "lock" in text.lower()  # the database's reason is still there
    [sid] = sids
    assert sid[:6] in text and sid[:7] not in text
    assert API_TOKEN not in text and "alice" not in text
    assert store.length() == 0  # and nothing was stored
    if isinstance(setting, sa.Engine):
        setting.dispose()


# -- 6, 7. header sessions: never cached, never logged in by a cookie ----------------

HEADER = "X-Session-Id"


def _header_app(framework: str, **config: t.Any) -> Flask:
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=MemoryStore(),
        CONNECT_SESSION_HEADER=HEADER,
        **config,
    )
    fw.connect(app)
    add_views(app)
    return app


def test_header_responses_carrying_the_id_are_not_cacheable(framework: str) -> None:
    """A response that hands out (or clears) the id in the header says
    ``Cache-Control: private, no-store``, on top of what the view said; a
    shared cache (Varnish's default rules cached it) must not give one
    client's id to another.
    """
    app = _header_app(framework)

    @app.get("/cached")
    def cached() -> Response:
        session["n"] = 1
        response = make_response("hello")
        response.cache_control.max_age = 60
        response.cache_control.public = True
        return response

    client = app.test_client()
    created = client.get("/cached", headers={HEADER: ""})
    assert created.headers[HEADER]
    directives = created.cache_control
    assert directives.private and directives.no_store and not directives.public
    assert directives.max_age == 60  # what the view set stays
    value = created.headers[HEADER]
    read = client.get("/get", headers={HEADER: value})
    assert HEADER not in read.headers and "Cache-Control" not in read.headers
    destroyed = client.post("/destroy", headers={HEADER: value})
    assert destroyed.headers[HEADER] == ""
    assert destroyed.cache_control.private and destroyed.cache_control.no_store
    # A cookie response is left as the view made it (Set-Cookie is the
    # caches' own signal).
    assert "Cache-Control" not in client.post("/set", json={"a": 1}).headers


def test_a_header_request_sees_no_cookies(framework: str) -> None:
    app = _header_app(framework)

    @app.get("/cookies")
    def cookies() -> dict[str, t.Any]:
        return {"cookies": dict(request.cookies), "header": request.headers.get("Cookie")}

    client = app.test_client()
    client.set_cookie("other", "1")
    assert client.get("/cookies").json == {"cookies": {"other": "1"}, "header": "other=1"}
    seen = client.get("/cookies", headers={HEADER: ""}).json
    assert seen == {"cookies": {}, "header": None}


@pytest.mark.flask_only("Flask-Login is a Flask extension")
def test_flask_logins_remember_cookie_never_logs_a_header_session_in(framework: str) -> None:
    """The browser attaches Flask-Login's HttpOnly remember-me cookie to a
    header request a page's script makes; Flask-Login must not log that new
    header session in, or the script reads a logged-in session id from the
    response header.
    """
    from flask_login import LoginManager
    from flask_login import UserMixin
    from flask_login import current_user
    from flask_login import login_user

    app = _header_app(framework)
    login_manager = LoginManager(app)

    class User(UserMixin):
        id = "ann"

    login_manager.user_loader(lambda user_id: User() if user_id == "ann" else None)

    @app.post("/login")
    def login() -> str:
        session.regenerate()
        login_user(User(), remember=True)
        return "ok"

    @app.get("/whoami")
    def whoami() -> dict[str, t.Any]:
        return {"user": current_user.get_id(), "data": dict(session)}

    browser = app.test_client()
    browser.post("/login")
    assert browser.get_cookie("remember_token") is not None
    browser.delete_cookie(KEY)  # the browser session ended; remember-me lives on
    assert browser.get("/whoami").json["user"] == "ann"  # remember-me works for cookies
    # A script's header request, with the remember-me cookie attached.
    response = browser.get("/whoami", headers={HEADER: ""})
    assert response.json == {"user": None, "data": {}}
    assert not response.headers.get(HEADER)  # no session minted for the script


# -- 8. a hardened cookie configuration reaches live sessions ------------------------


def _cookie_app(framework: str, store: Store, **cookie: t.Any) -> Flask:
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_ROLLING=True,
        CONNECT_SESSION_COOKIE=cookie,
    )
    fw.connect(app)
    add_views(app)
    return app


def _attributes(set_cookie: str) -> dict[str, str]:
    parts = [part.strip() for part in set_cookie.split(";")[1:]]
    return {name.lower(): value for name, _, value in (p.partition("=") for p in parts)}


def _session_cookie(app: Flask) -> str:
    """Start a session on ``app``; return its cookie's value."""
    response = app.test_client().post("/set", json={"a": 1}, base_url="https://localhost")
    return response.headers["Set-Cookie"].partition(";")[0].partition("=")[2]


def _next_cookie(app: Flask, value: str) -> dict[str, str]:
    """The attributes of the cookie ``app`` sends for the session ``value``."""
    client = app.test_client()
    client.set_cookie(KEY, value)
    response = client.get("/get", base_url="https://localhost")
    assert response.json["data"] == {"a": 1}  # the same, live session
    return _attributes(response.headers["Set-Cookie"])


#: The attributes of a cookie with all three hardened.
HARDENED = {"secure": "", "httponly": "", "path": "/", "samesite": "Strict"}


def test_hardened_cookie_settings_reach_live_sessions(framework: str) -> None:
    """Sessions made while the cookie was weak get ``Secure``, ``HttpOnly``
    and the stricter ``SameSite`` at their next cookie once the
    configuration asks for them.
    """
    store = MemoryStore()
    weak = _session_cookie(
        _cookie_app(framework, store, secure=False, httponly=False, samesite="Lax")
    )
    assert _next_cookie(_cookie_app(framework, store, httponly=False), weak) == {
        "path": "/",
        "samesite": "Lax",
    }
    # The operator hardens the configuration and restarts the app.
    hard = _cookie_app(framework, store, secure=True, httponly=True, samesite="Strict")
    assert _next_cookie(hard, weak) == HARDENED
    assert "secure" in _next_cookie(
        _cookie_app(framework, store, secure=True, httponly=False), weak
    )
    assert "httponly" in _next_cookie(_cookie_app(framework, store, httponly=True), weak)
    lax = _next_cookie(_cookie_app(framework, store, httponly=False, samesite="None"), weak)
    assert lax["samesite"] == "Lax"  # never laxer than stored nor configured


def test_what_a_stored_cookie_asks_beyond_the_configuration_stays(framework: str) -> None:
    store = MemoryStore()
    strict = _session_cookie(
        _cookie_app(framework, store, secure=True, httponly=True, samesite="Strict")
    )
    lax = _cookie_app(framework, store, secure=False, httponly=False, samesite="Lax")
    assert _next_cookie(lax, strict) == HARDENED


# -- 10. SQLite files are private ----------------------------------------------------


@pytest.fixture
def umask_022() -> t.Iterator[None]:
    """The usual umask, whatever the test runner's: files others can read."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("given", ["relative", "absolute", "engine"])
def test_sqlite_files_are_mode_0600_in_a_private_folder(
    framework: str, tmp_path: Path, given: str
) -> None:
    """The database file, its ``-wal`` and ``-shm`` files are 0600; an
    instance folder the store creates for a relative path is 0700.
    """
    instance = tmp_path / "instance"
    db = instance / "sessions.db" if given == "relative" else tmp_path / "abs.db"
    setting: object = {
        "relative": "sqlite:///sessions.db",
        "absolute": f"sqlite:///{db}",
        "engine": sa.create_engine(f"sqlite:///{db}"),
    }[given]
    app = fw.new_app(framework, __name__, instance_path=str(instance))
    app.config.update(SECRET_KEY=SECRET, TESTING=True, CONNECT_SESSION_STORE=setting)
    fw.connect(app)
    store = fw.sync_store_of(app)
    add_views(app)
    if given == "engine":
        with store.engine.connect() as conn:  # the app's engine, in WAL mode
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    client = app.test_client()
    assert client.post("/set", json={"mfa_secret": "JBSWY3DP"}).status_code == 200
    assert client.get("/get").json["data"] == {"mfa_secret": "JBSWY3DP"}
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    if fw.framework_of(app) == "quart":
        # SQLAlchemy's asyncio pool may close its last connection (before
        # 2.1), which removes the -wal and -shm files.
        files = [path for path in files if path.exists()]
    assert db in files and all(path.exists() for path in files)  # the pool keeps a connection open
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    if given == "relative":
        assert _mode(instance) == 0o700
    fw.resolve(store.engine.dispose())  # an asyncio engine under Quart


# -- 12. the command line never prints control characters clients sent ---------------

#: Terminal escapes: clear the screen (8-bit CSI), set the window title.
ESCAPES = ("\x9b2J", "\x1b]0;owned\x07")


def _terminal_controls(text: str) -> set[str]:
    return {c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"}


def test_cli_escapes_control_characters_clients_sent(framework: str) -> None:
    """User agents (``list --user``), stored data (``show``) and ids
    (``list``) are printed with control characters escaped: stored input
    never reaches the terminal as escape sequences.
    """
    store = MemoryStore()
    app = fw.new_app(framework)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_USER_KEY="user_id",
    )
    fw.connect(app)

    @app.post("/login")
    def login() -> str:
        session["user_id"] = "ann"
        session["nick"] = "".join(ESCAPES) + "\u202eevil"
        return session.id

    sids = [
        app.test_client().post("/login", environ_overrides={"HTTP_USER_AGENT": agent}).text
        for agent in (*ESCAPES, "Mozilla/5.0 \\x9b")
    ]
    store.set("\x1b[31mred", {"cookie": {"originalMaxAge": None, "expires": None}})
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        # color: print as to a terminal (Click strips some escapes otherwise).
        return runner.invoke(args=["session", *args], color=True).output

    outputs = {
        "list --user": run("list", "--user", "ann"),
        "show": run("show", sids[0]),
        "list": run("list"),
    }
    assert {name: _terminal_controls(text) for name, text in outputs.items()} == {
        name: set() for name in outputs
    }
    table = outputs["list --user"]
    assert "\\x9b2J" in table and "\\x1b]0;owned\\x07" in table
    assert "Mozilla/5.0 \\\\x9b" in table  # a backslash is escaped too: no ambiguity
    shown = json.loads(outputs["show"])  # still JSON, and the same data
    assert shown["nick"] == "".join(ESCAPES) + "\u202eevil"
    assert "\\x1b[31mred" in outputs["list"]


# -- 13. MariaDB's prune with a colon in the table name; Content-Language -----------


@pytest.mark.slow
@pytest.mark.parametrize("table", [":sessions", "web-:x", "sess:ions"])
def test_mariadb_prune_with_a_colon_in_the_table_name(mariadb_url: str, table: str) -> None:
    import sql_raw

    store = SQLStore(mariadb_url, table=table, prune_interval=None)
    store.set("live", {"cookie": {"originalMaxAge": None, "expires": None}, "a": 1})
    sql_raw.plant(store, "dead", b'{"cookie":{}}', ttl=-1)
    assert store.prune() == 1
    assert list(store.all()) == ["live"]
    fw.resolve(store.engine.dispose())  # an asyncio engine under Quart


@pytest.mark.parametrize(
    "name",
    [
        # CORS-safelisted: a page's script sends them cross-origin without a
        # preflight, so they are no proof the caller holds the id.
        "Content-Language",
        "content-language",
        # Sent by browsers on their own (EventSource, <a ping>, service
        # workers, HTTP/2 upgrades, prefetches, compression dictionaries).
        "Last-Event-ID",
        "Ping-From",
        "Ping-To",
        "Service-Worker",
        "Service-Worker-Navigation-Preload",
        "Alt-Used",
        "X-Moz",
        "Available-Dictionary",
        "Dictionary-ID",
        "HTTP2-Settings",
        "Attribution-Reporting-Eligible",
    ],
)
def test_headers_browsers_may_send_are_refused_as_the_session_header(
    framework: str, name: str
) -> None:
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_HEADER=name)
    with pytest.raises(ValueError, match=f"CONNECT_SESSION_HEADER.*{name}"):
        fw.connect(app)


# -- 11a. CONNECT_SESSION_MAX_SIZE ------------------------------------------------------

LIMIT = 4096


def test_session_too_large_is_exported() -> None:
    import flask_connect_session
    import flask_connect_session.errors

    error = flask_connect_session.SessionTooLarge(5000, LIMIT)
    assert flask_connect_session.errors.SessionTooLarge is type(error)
    assert isinstance(error, ValueError)
    assert "5000" in str(error) and str(LIMIT) in str(error)


@pytest.mark.parametrize("value", [-1, 1.5, "big", True, None, [1]])
def test_bad_max_size_names_the_key(framework: str, value: object) -> None:
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_MAX_SIZE=value)
    with pytest.raises(ValueError, match="CONNECT_SESSION_MAX_SIZE"):
        fw.connect(app)


def test_max_size_defaults_to_one_mib_on_every_store(framework: str) -> None:
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=MemoryStore())
    assert fw.connect(app).store.max_size == 1048576
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_MAX_SIZE="0")  # from the environment
    assert fw.connect(app).store.max_size == 0


def _stored_data(app: Flask, client: FlaskClient) -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], client.get("/get").json["data"])


@pytest.mark.slow
def test_a_save_over_max_size_fails_and_leaves_the_store_as_it_was(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    """On every store: a new session over the limit is not stored; a stored
    one keeps what it had; the error names the size and the limit; with the
    limit at 0 the same data is stored.
    """
    app = make_app(CONNECT_SESSION_MAX_SIZE=LIMIT)
    big = {"blob": "x" * LIMIT}
    client = app.test_client()
    with pytest.raises(SessionTooLarge) as info:
        client.post("/set", json=big)
    assert info.value.limit == LIMIT and info.value.size > LIMIT
    assert f"{info.value.size} bytes" in str(info.value) and str(LIMIT) in str(info.value)
    assert client.get_cookie(KEY) is None  # nothing stored, no cookie
    assert client.post("/set", json={"a": 1}).status_code == 200
    with pytest.raises(SessionTooLarge):
        client.post("/set", json=big)  # a merge into the stored session
    with pytest.raises(SessionTooLarge):
        client.post("/set", json={"blob": "é" * (LIMIT // 2)})  # bytes, not characters
    assert _stored_data(app, client) == {"a": 1}
    # Just under the limit is fine; the limit counts the whole stored document.
    assert client.post("/set", json={"blob": "x" * (LIMIT // 2)}).status_code == 200
    assert _stored_data(app, client)["blob"] == "x" * (LIMIT // 2)

    unlimited = make_app(CONNECT_SESSION_MAX_SIZE=0).test_client()
    assert unlimited.post("/set", json=big).status_code == 200
    assert unlimited.get("/get").json["data"] == big


@pytest.mark.slow
def test_session_save_raises_session_too_large_in_the_view(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    app = make_app(CONNECT_SESSION_MAX_SIZE=LIMIT)
    caught: list[SessionTooLarge] = []

    @app.post("/save-big")
    def save_big() -> str:
        session["blob"] = "x" * LIMIT
        try:
            session.save()
        except SessionTooLarge as exc:
            caught.append(exc)
            del session["blob"]  # the view can recover
        return "ok"

    client = app.test_client()
    client.post("/set", json={"a": 1})
    assert client.post("/save-big").status_code == 200
    assert len(caught) == 1
    assert _stored_data(app, client) == {"a": 1}


# -- 11c. a huge stored value cannot make a merge block Redis ---------------------------

REDIS_KINDS = ["redis", "redis-cluster"]


@pytest.fixture(params=REDIS_KINDS)
def redis_store(request: pytest.FixtureRequest) -> RedisStore:
    store = STORE_BUILDERS[request.param](request)
    assert isinstance(store, RedisStore)
    store.max_size = 0  # huge values are the point here
    return store


def doc(max_age: None = None, **data: t.Any) -> dict[str, t.Any]:
    """A session document with a browser-session cookie."""
    return {"cookie": {"originalMaxAge": max_age, "expires": None, "path": "/"}, **data}


#: Larger than the script reads, and slow to scan in Lua (~100 ms).
HUGE = 4_000_000


@pytest.mark.slow
def test_the_merge_script_never_reads_a_huge_value(redis_store: RedisStore) -> None:
    """The merge script refuses a stored value longer than its limit
    before reading it (Redis serves no other client while a script runs, and
    Lua scans JSON ~100 times slower than C); the merge then happens in
    Python and ends the same way: a value that is no session document is
    left as it is.
    """
    client = redis_store.client
    garbage = b"[" + b"1," * (HUGE // 2) + b"1]"  # valid JSON, no session
    client.set("sess:big", garbage)
    args = ["", b"", "", 0, b"", SCRIPT_LIMIT, 0]
    assert redis_store._merge(keys=["sess:big"], args=args) == -2
    with pytest.raises(CorruptDocument):
        redis_store.merge("big", {"a": 1}, [])
    assert client.get("sess:big") == garbage


@pytest.mark.slow
def test_a_huge_session_is_merged_in_a_transaction(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge session (another app wrote it) is merged correctly, keeping a
    concurrent writer's change (made before the merge read it, or while it
    built the new document), and a destroyed one stays destroyed.
    """
    client = redis_store.client
    document = doc(None, blob="x" * HUGE, n=0)
    client.set("sess:big", encode(document), ex=100)
    assert redis_store.merge("big", {"mine": 1}, [])  # not read before: read here
    assert redis_store.get("big") == {**document, "mine": 1}
    # Read (and remembered) by this process, then changed by another one.
    client.set("sess:big", encode({**document, "mine": 1, "theirs": 2}), keepttl=True)
    assert redis_store.merge("big", {"mine": 3}, ["n"])
    expected = {k: v for k, v in document.items() if k != "n"} | {"mine": 3, "theirs": 2}
    assert redis_store.get("big") == expected
    assert 0 < t.cast(int, client.ttl("sess:big")) <= 100  # the TTL kept
    # Another writer between the read and the write: the write is refused,
    # and the merge starts again from what that writer stored.
    build = redis_store._merged
    interfered: list[bool] = []

    def merged_while_another_writes(*args: t.Any) -> bytes:
        if not interfered:
            interfered.append(True)
            client.set("sess:big", encode({**expected, "late": 5}), keepttl=True)
        return build(*args)

    monkeypatch.setattr(redis_store, "_merged", merged_while_another_writes)
    assert redis_store.merge("big", {"mine": 6}, [])
    assert redis_store.get("big") == {**expected, "late": 5, "mine": 6}
    client.delete("sess:big")
    assert redis_store.merge("big", {"mine": 4}, []) is False
    assert client.exists("sess:big") == 0


@pytest.mark.slow
def test_a_spliced_merge_over_max_size_writes_nothing(redis_store: RedisStore) -> None:
    """When another writer changed the session since it was read, the
    script splices the changes in; a result over the limit is refused
    there, and what was stored stays as it was.
    """
    client = redis_store.client
    redis_store.max_size = LIMIT
    redis_store.set("abc", doc(None, a=1))
    assert redis_store.get("abc") is not None  # remembered: the fast path is armed
    theirs = encode(doc(None, a=1, theirs="y" * (LIMIT // 2)))
    client.set("sess:abc", theirs, keepttl=True)
    with pytest.raises(SessionTooLarge) as info:
        redis_store.merge("abc", {"mine": "z" * (LIMIT // 2)}, [])
    assert info.value.size > LIMIT and info.value.limit == LIMIT
    assert client.get("sess:abc") == theirs.encode()
    # The same from a value too long for the script (the compare-and-swap).
    huge = encode(doc(None, blob="x" * (SCRIPT_LIMIT + 1)))
    client.set("sess:abc", huge, keepttl=True)
    redis_store.max_size = SCRIPT_LIMIT + 100
    with pytest.raises(SessionTooLarge):
        redis_store.merge("abc", {"more": "z" * 200}, [])
    assert client.get("sess:abc") == huge.encode()


# -- 11b. FileSystemStore's user index: a change costs the same at any size ----------


def _bytes_written() -> int:
    """Bytes this process has passed to write() so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_filesystem_index_change_costs_the_same_at_any_size(tmp_path: Path) -> None:
    """Adding or removing one session of a user writes as much with 2,000
    sessions as with 10 (the index was one file rewritten whole: O(N) per
    login, O(N^2) in all), and the index still lists them all.
    """
    store = FileSystemStore(tmp_path / "sessions")
    until = time.time() + 3600

    def cost(user: str) -> int:
        before = _bytes_written()
        store.index_add(user, "new-session-id", until)
        store.index_remove(user, "new-session-id")
        return _bytes_written() - before

    for user, count in (("small", 10), ("large", 2000)):
        for n in range(count):
            store.index_add(user, f"session-{n:05d}", until)
    small, large = cost("small"), cost("large")
    assert small < 1000 and large <= small + 200  # the same work, give or take
    for n in range(2000):
        store.set(f"session-{n:05d}", doc(None, user_id="large"))
    assert len(store.index_sessions("large")) == 2000


@pytest.mark.slow
def test_sql_index_remove_finds_its_row_by_primary_key(postgresql_url: str) -> None:
    """Removing one session from a user's index never scans that user's
    rows, even with the plan PostgreSQL caches for a prepared statement
    (a generic plan, made while the table was small: it used the user_id
    index, a scan of the user's 10,000 rows per logout once the table grew).
    """
    import re

    store = SQLStore(postgresql_url, prune_interval=None)
    for n in range(10):
        store.set(f"s{n}", {**doc(None), "_device": {"user": "42"}, "user_id": "42"})
    sql = str(store._index_remove.compile(dialect=store.engine.dialect))
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        names.append(match[1])
        return f"${len(names)}"

    sql = re.sub(r"%\((\w+)\)s", positional, sql)
    values = {"p_sid": "'s1'", "p_user": "'42'", "user_id": "NULL", "coalesce_1": "''"}
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE remove AS {sql}")
        arguments = ", ".join(values[name] for name in names)
        plan = "\n".join(
            r[0] for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE remove({arguments})")
        )
        conn.rollback()
    assert "session_pkey" in plan and "IDX_session_user_id" not in plan, plan
    fw.resolve(store.engine.dispose())  # an asyncio engine under Quart
