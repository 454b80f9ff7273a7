"""Regression tests for the security review (issue 18): each reproduces an
attack the review ran and checks it now fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import threading
import time
import traceback
import typing as t
from pathlib import Path

import pytest
import redis
from cachelib import FileSystemCache
from cachelib import SimpleCache
from flask import Flask
from markupsafe import Markup
from test_fuzz import raw_write

from flask_connect_session import FileSystemStore
from flask_connect_session import RedisStore
from flask_connect_session import Store
from flask_connect_session.signing import generate_sid
from flask_connect_session.signing import sign

import framework as fw
from conftest import SECRET
from framework import render_template_string
from framework import session

KEY = "connect.sid"


def _app(framework: str, **config: t.Any) -> Flask:
    app = fw.new_app(framework)
    app.config.update({"TESTING": True, **config})
    fw.connect(app)

    @app.get("/whoami")
    def whoami() -> dict[str, t.Any]:
        return {"id": session.id, "user": session.get("user_id")}

    return app


# -- 2. a string SECRET_KEY_FALLBACKS ---------------------------------------------


def test_string_fallbacks_from_the_environment_are_refused(
    framework: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``from_prefixed_env`` leaves a non-JSON value as a string: init_app
    refuses it, naming the key, instead of trusting each of its characters.
    """
    prefix = framework.upper()  # FLASK_..., QUART_...
    monkeypatch.setenv(f"{prefix}_SECRET_KEY", "current-long-random-secret")
    monkeypatch.setenv(f"{prefix}_SECRET_KEY_FALLBACKS", "previous-long-random-secret")
    app = fw.new_app(framework)
    app.config.from_prefixed_env()
    assert app.config["SECRET_KEY_FALLBACKS"] == "previous-long-random-secret"
    with pytest.raises(ValueError, match="SECRET_KEY_FALLBACKS"):
        fw.connect(app)


@pytest.mark.parametrize("fallbacks", ["previous-long-random-secret", b"previous-secret"])
def test_one_character_secrets_never_verify(framework: str, fallbacks: str | bytes) -> None:
    """Set after init_app (secrets are read per request), a string fallback
    is one secret: a cookie signed with one of its characters, which an
    attacker can try in a hundred guesses, opens no session.
    """
    app = _app(framework, SECRET_KEY="current-long-random-secret")
    app.config["SECRET_KEY_FALLBACKS"] = fallbacks
    client = app.test_client(use_cookies=False)
    sid = generate_sid()
    store = fw.sync_store_of(app)
    store.set(sid, {"user_id": "admin", "cookie": {"originalMaxAge": None, "expires": None}})
    first = fallbacks[:1] if isinstance(fallbacks, str) else fallbacks[:1].decode()
    forged = client.get("/whoami", headers={"Cookie": f"{KEY}={sign(sid, first)}"}).json
    assert forged is not None and forged["id"] != sid and forged["user"] is None
    genuine = client.get("/whoami", headers={"Cookie": f"{KEY}={sign(sid, fallbacks)}"}).json
    assert genuine is not None and genuine["id"] == sid and genuine["user"] == "admin"


# -- 6. an empty key prefix --------------------------------------------------------


def test_empty_key_prefix_is_refused(framework: str) -> None:
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_KEY_PREFIX="")
    with pytest.raises(ValueError, match="CONNECT_SESSION_KEY_PREFIX"):
        fw.connect(app)


# -- the corrupt-entry log -----------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [b'{"card": "4111-1111-1111-1111", "x": "\xff"}', b'{"card": "4111-1111-1111-1111"'],
    ids=["not-utf8", "truncated"],
)
def test_corrupt_entry_log_does_not_quote_the_entry(
    make_app: t.Callable[..., Flask],
    store: Store,
    caplog: pytest.LogCaptureFixture,
    entry: bytes,
) -> None:
    """A corrupt entry is logged with its length and the kind of error, never
    with the stored bytes (session contents must not reach the logs).
    """
    app = make_app()
    sid = generate_sid()
    raw_write(store, sid, entry)
    client = app.test_client(use_cookies=False)
    with caplog.at_level(logging.ERROR, logger="flask_connect_session"):
        response = client.get("/get", headers={"Cookie": f"{KEY}={sign(sid, SECRET)}"})
    assert response.status_code == 200
    logged = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert logged, caplog.text
    assert "4111" not in caplog.text and "card" not in caplog.text


# -- 5. passwords in store URLs ---------------------------------------------------------

PASSWORD = "hunter2"


def _full_text(exc: BaseException) -> str:
    """The exception as a traceback shows it, and the message of every
    exception chained to it (even a suppressed context, which error
    reporters may still walk).
    """
    texts = ["".join(traceback.format_exception(exc))]
    chained: BaseException | None = exc
    while chained is not None:
        texts.append(repr(chained))
        chained = chained.__cause__ or chained.__context__
    return "\n".join(texts)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@localhost:6379/sessions",
        f"redis://user:{PASSWORD}@localhost:99999/0",
        f"rediss://:{PASSWORD}@localhost:6379/x",
        f"valkey://:{PASSWORD}@localhost:6379/sessions",
        f"valkeys://:{PASSWORD}@localhost/-1",
        f"unix://:{PASSWORD}@/run/redis.sock?db=first",
        f"redis://localhost:6379/sessions?password={PASSWORD}",
        f"memcached://user:{PASSWORD}@localhost:11211",
        f"memcached://localhost:11211,:{PASSWORD}@other:11211",
        f"file://user:{PASSWORD}@host/var/sessions",
        f"memory://user:{PASSWORD}@host",
        f"ftp://user:{PASSWORD}@host/",
    ],
)
def test_store_url_password_never_in_an_error(framework: str, url: str) -> None:
    """Every malformed store URL kind: the ValueError (and anything chained to
    it) shows ``***`` where the password was.
    """
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=url)
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE") as info:
        fw.connect(app)
    text = _full_text(info.value)
    assert PASSWORD not in text
    assert "***" in text


@pytest.mark.parametrize("scheme", ["redis", "redis+sentinel"])
@pytest.mark.parametrize("separator", ["/", "#", "?"])
def test_password_with_a_raw_url_separator_never_in_an_error(
    framework: str, scheme: str, separator: str
) -> None:
    """A password holding a raw ``/``, ``#`` or ``?`` (which a correct URL
    would percent-encode) is not cut short by the redaction: no part leaks.
    """
    app = fw.new_app(framework)
    url = f"{scheme}://u:top{separator}secretpart@h1:6379/mymaster"
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=url)
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE") as info:
        fw.connect(app)
    assert "secretpart" not in _full_text(info.value)


def test_sql_store_repr_hides_a_password_query_parameter() -> None:
    pytest.importorskip("sqlalchemy")
    from flask_connect_session import SQLStore

    store = SQLStore("postgresql+psycopg://u@127.0.0.1:1/db?password=s3cret")
    assert "s3cret" not in repr(store) and "***" in repr(store)


def test_redis_store_repr_and_logs_never_hold_the_password(
    framework: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis store built from a URL with a password: its repr shows
    ``***``, and a failing request logs no password either.
    """
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    app = _app(framework, SECRET_KEY="s", CONNECT_SESSION_STORE=url, TESTING=False)
    store = fw.sync_store_of(app)
    assert PASSWORD not in repr(store) and "***" in repr(store)
    assert PASSWORD not in repr(RedisStore(redis.Redis.from_url(url)))
    client = app.test_client(use_cookies=False)
    with caplog.at_level(logging.DEBUG, logger="flask_connect_session"):
        response = client.get("/whoami", headers={"Cookie": f"{KEY}={sign('abc', 's')}"})
    assert response.status_code == 500
    assert f"{fw.store_name(app)}.get_and_touch failed" in caplog.text
    assert PASSWORD not in caplog.text


def test_clear_and_count_touch_only_session_documents(framework: str, redis_url: str) -> None:
    """With the prefix ``sess`` (no separator), other applications' keys in
    the same Redis that start with it (``session_audit:1``, a set
    ``sessions:index``) are neither counted nor deleted by ``flask session
    count``/``clear``; keys outside the prefix never were.
    """
    app = _app(
        framework,
        SECRET_KEY="s",
        CONNECT_SESSION_STORE=redis_url,
        CONNECT_SESSION_KEY_PREFIX="sess",
    )
    store = fw.sync_store_of(app)
    sids = [generate_sid() for _ in range(3)]
    for sid in sids:
        store.set(sid, {"user_id": sid, "cookie": {"originalMaxAge": None, "expires": None}})
    with redis.Redis.from_url(redis_url) as client:
        client.set("session_audit:1", json.dumps({"who": "admin", "what": "login"}))
        client.set("session_log", b"\xff not json")
        client.sadd("sessions:index", "a", "b")
        client.set("cache:home", "<html>")
        others = {"session_audit:1", "session_log", "sessions:index", "cache:home"}
        runner = app.test_cli_runner()
        counted = runner.invoke(args=["session", "count"])
        assert counted.exit_code == 0, counted.output
        assert counted.output.strip() == "3"
        cleared = runner.invoke(args=["session", "clear", "--yes"])
        assert cleared.exit_code == 0, cleared.output
        left = {key.decode() for key in client.scan_iter()}
    assert left == others


# -- 3. FileSystemStore's directory and files -------------------------------------------

#: A uid other than this process's: files "another local user" planted.
OTHER_UID = os.geteuid() + 4242


def _file_app(framework: str, directory: Path) -> Flask:
    return _app(framework, SECRET_KEY=SECRET, CONNECT_SESSION_STORE=f"file://{directory}")


def _plant(path: Path, sid: str, data: dict[str, t.Any], uid: int = OTHER_UID) -> None:
    """Write a session file in the store's format, owned by ``uid``."""
    document = {**data, "cookie": {"originalMaxAge": None, "expires": None}}
    path.write_text(json.dumps({"sid": sid}) + "\n" + json.dumps(document) + "\n")
    later = time.time() + 3600
    os.utime(path, (later, later))
    os.chown(path, uid, uid)


def _lock_of(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:2]


def _session_path(directory: Path, sid: str) -> Path:
    return directory / (hashlib.sha256(sid.encode()).hexdigest() + ".session")


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o720, 0o702], ids=oct)
def test_directory_others_can_write_is_refused(framework: str, tmp_path: Path, mode: int) -> None:
    """A pre-created directory others can write to (a shared 0777 one, or a
    sticky /tmp-like 1777 one) is refused at init_app, naming the key.
    """
    directory = tmp_path / "sessions"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE.*writable by others"):
        _file_app(framework, directory)
    with pytest.raises(ValueError, match="writable by others"):
        FileSystemStore(directory)


def test_directory_of_another_user_is_refused(framework: str, tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    directory.mkdir(mode=0o700)
    os.chown(directory, OTHER_UID, OTHER_UID)
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE.*belongs to uid"):
        _file_app(framework, directory)


def test_directory_that_is_a_symlink_is_refused(framework: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "sessions"
    link.symlink_to(real)
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE.*not a directory"):
        _file_app(framework, link)


def test_created_and_private_directories_are_accepted(tmp_path: Path) -> None:
    """The store's own 0700 directory, and an existing 0755 one, are fine."""
    FileSystemStore(tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    shared_read = tmp_path / "readable"
    shared_read.mkdir()
    shared_read.chmod(0o755)
    FileSystemStore(shared_read)


def test_session_file_of_another_user_is_never_adopted(framework: str, tmp_path: Path) -> None:
    """A local user who plants a session file for their own id (the review's
    attack, once the directory was writable) does not become admin: the
    file is not the process user's, so it reads as missing, and is never
    counted, listed or touched.
    """
    directory = tmp_path / "sessions"
    app = _file_app(framework, directory)
    sid = generate_sid()
    planted = _session_path(directory, sid)
    _plant(planted, sid, {"user_id": "admin"})
    client = app.test_client(use_cookies=False)
    seen = client.get("/whoami", headers={"Cookie": f"{KEY}={sign(sid, SECRET)}"}).json
    assert seen is not None and seen["id"] != sid and seen["user"] is None
    store = fw.sync_store_of(app)
    assert store.get(sid) is None and store.all() == {} and store.length() == 0
    before = planted.stat().st_mtime
    store.touch(sid, {"cookie": {"originalMaxAge": None, "expires": None}})
    assert not store.merge(sid, {"user_id": "root"}, [])
    assert planted.stat().st_mtime == before
    assert "root" not in planted.read_text()
    # The same file owned by the process's user is a session (the control).
    os.chown(planted, os.geteuid(), os.getegid())
    assert store.get(sid) is not None


def test_session_file_symlink_is_never_followed(framework: str, tmp_path: Path) -> None:
    """A symlink planted as a session file, pointing at a file with a
    session document, is not read, touched or listed.
    """
    directory = tmp_path / "sessions"
    app = _file_app(framework, directory)
    sid = generate_sid()
    target = tmp_path / "elsewhere"
    _plant(target, sid, {"user_id": "admin"}, uid=os.geteuid())
    _session_path(directory, sid).symlink_to(target)
    client = app.test_client(use_cookies=False)
    seen = client.get("/whoami", headers={"Cookie": f"{KEY}={sign(sid, SECRET)}"}).json
    assert seen is not None and seen["id"] != sid and seen["user"] is None
    store = fw.sync_store_of(app)
    before = target.stat().st_mtime
    store.touch(sid, {"cookie": {"originalMaxAge": None, "expires": None}})
    assert target.stat().st_mtime == before
    assert store.all() == {} and store.length() == 0


def test_lock_and_sweep_symlinks_create_no_file(tmp_path: Path) -> None:
    """Symlinks planted as a lock file and as the sweep marker make the store
    create no file at their targets (a write fails rather than follow them).
    """
    directory = tmp_path / "sessions"
    store = FileSystemStore(directory)
    sid = generate_sid()
    name = hashlib.sha256(sid.encode()).hexdigest()
    lock_target, marker_target = tmp_path / "lock-target", tmp_path / "marker-target"
    (directory / f".lock-{name[:2]}").symlink_to(lock_target)
    (directory / ".last-sweep").symlink_to(marker_target)
    document = {"cookie": {"originalMaxAge": None, "expires": None}}
    with pytest.raises(OSError):
        store.set(sid, document)
    other = next(s for s in iter(generate_sid, None) if _lock_of(s) != name[:2])
    store.set(other, document)  # another lock: works, and tries to sweep
    assert not lock_target.exists() and not marker_target.exists()


def _index_path(directory: Path, user: str) -> Path:
    """A user's index directory: one entry file per session."""
    return directory / (hashlib.sha256(f"user\0{user}".encode()).hexdigest() + ".user")


def _index_store(tmp_path: Path) -> tuple[FileSystemStore, str, Path]:
    """A store holding one live session of user 42 (as the interface writes
    it), with no index yet; returns it, the sid and the index's path.
    """
    directory = tmp_path / "sessions"
    store = FileSystemStore(directory)
    sid = generate_sid()
    device = {"user": "42", "created": 0, "seen": 0, "until": 9e12}
    store.set(sid, {"user_id": "42", "cookie": {"expires": None}, "_device": device})
    return store, sid, _index_path(directory, "42")


def _plant_entry(directory: Path, sid: str, uid: int) -> Path:
    """Write, in ``directory``, an index entry naming ``sid``, live for an
    hour, owned by ``uid``; return its path.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / hashlib.sha256(sid.encode()).hexdigest()
    later = time.time() + 3600
    path.write_text(json.dumps({"sid": sid}))
    os.utime(path, (later, later))
    os.chown(path, uid, uid)
    return path


def test_user_index_symlink_is_never_followed(tmp_path: Path) -> None:
    """A symlink planted as a user's index directory, or as an entry in it,
    pointing at an entry that names a live session, is not read; a write
    replaces the link, and a sweep of an expired one removes the link,
    never its target.
    """
    store, sid, index = _index_store(tmp_path)
    target = tmp_path / "planted-index"
    entry = _plant_entry(target, sid, os.geteuid())
    index.symlink_to(target)
    assert store.index_sessions("42") == {}
    store.index_add("42", generate_sid(), time.time() + 60)
    assert index.is_dir() and not index.is_symlink()
    assert entry.read_text() == json.dumps({"sid": sid})  # the target is untouched

    linked = index / entry.name
    linked.symlink_to(entry)  # an entry that is a link
    assert store.index_sessions("42") == {}
    store.index_add("42", sid, time.time() + 60)  # replaces the link
    assert not linked.is_symlink() and set(store.index_sessions("42")) == {sid}
    assert entry.read_text() == json.dumps({"sid": sid})

    store.clear()
    index.symlink_to(target)
    os.utime(index, (1.0, 1.0), follow_symlinks=False)  # an expired link
    store.prune()
    assert not index.is_symlink() and not index.exists()
    assert entry.read_text() == json.dumps({"sid": sid})


def test_user_index_of_another_user_is_ignored(tmp_path: Path) -> None:
    """An index entry another user planted, naming a live session, lists
    nothing; the same file owned by the process's user does (the control).
    A whole index directory of another user lists nothing either.
    """
    store, sid, index = _index_store(tmp_path)
    entry = _plant_entry(index, sid, OTHER_UID)
    assert store.index_sessions("42") == {}
    _plant_entry(index, sid, os.geteuid())
    assert set(store.index_sessions("42")) == {sid}
    os.chown(index, OTHER_UID, OTHER_UID)
    assert store.index_sessions("42") == {}
    with pytest.raises(PermissionError):
        store.index_add("42", generate_sid(), time.time() + 60)
    os.chown(index, os.geteuid(), os.getegid())
    assert set(store.index_sessions("42")) == {sid} and entry.exists()


# -- 4. cachelib's generic backends and a logout ------------------------------------------

#: Name of the thread whose cache reads are slow.
SLOW = "slow-reader"


class _SlowReads:
    """Cache reads from the :data:`SLOW` thread take 0.3 s: long enough for
    a logout to run in between a read and what the request does next.
    """

    def get(self, key: str) -> t.Any:
        value = super().get(key)  # type: ignore[misc]
        if threading.current_thread().name == SLOW:
            time.sleep(0.3)
        return value


class SlowSimpleCache(_SlowReads, SimpleCache):
    pass


class SlowFileSystemCache(_SlowReads, FileSystemCache):
    pass


@pytest.mark.parametrize("kind", ["simple", "filesystem"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_running_during_a_logout_never_brings_it_back(
    framework: str, tmp_path: Path, kind: str, method: str
) -> None:
    """A stolen cookie's request that reads (GET) or changes (POST) the
    session while the user logs out does not write the session back: after
    the logout the old cookie is logged out, on the in-process SimpleCache
    and on FileSystemCache, which processes share.
    """
    cache = SlowSimpleCache() if kind == "simple" else SlowFileSystemCache(str(tmp_path))
    app = _app(framework, SECRET_KEY=SECRET, CONNECT_SESSION_STORE=cache)

    @app.post("/visit")
    def visit() -> dict[str, t.Any]:
        session["visits"] = session.get("visits", 0) + 1
        return {"id": session.id}

    @app.post("/logout")
    def logout() -> str:
        session.destroy()
        return ""

    store = fw.sync_store_of(app)
    sid = generate_sid()
    store.set(sid, {"user_id": "ann", "cookie": {"originalMaxAge": None, "expires": None}})
    cookie = {"Cookie": f"{KEY}={sign(sid, SECRET)}"}
    client = app.test_client(use_cookies=False)
    path = "/whoami" if method == "GET" else "/visit"
    statuses: list[int] = []

    def race() -> None:
        statuses.append(client.open(path, method=method, headers=cookie).status_code)

    racing = threading.Thread(target=race, name=SLOW)
    racing.start()
    time.sleep(0.1)  # the racing request is reading
    assert client.post("/logout", headers=cookie).status_code == 200
    racing.join(timeout=30)
    assert statuses == [200]
    assert store.get(sid) is None
    after = client.get("/whoami", headers=cookie).json
    assert after is not None and after["id"] != sid and after["user"] is None


# -- 1. tag-shaped data another app wrote -------------------------------------------------

SCRIPT = "<script>alert(document.domain)</script>"
#: What an Express app that keeps client input stores.
EXPRESS_PREFS = {"nick": {" m": SCRIPT}}
EMPTY_COOKIE = {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}


def _render_app(make_app: t.Callable[..., Flask], **config: t.Any) -> Flask:
    app = make_app(**config)

    @app.get("/render")
    def render() -> str:
        return render_template_string("<p>{{ session['prefs']['nick'] }}</p>")

    @app.get("/types")
    def types() -> dict[str, str]:
        return {key: type(value).__name__ for key, value in session.items()}

    @app.post("/mark")
    def mark() -> str:
        session["html"] = Markup("<b>bold</b>")
        session["pair"] = (1.0, {"b": 1, "2": 2})
        return session.id

    @app.post("/touch-other")
    def touch_other() -> str:
        session["other"] = session.get("other", 0) + 1
        return ""

    return app


def _macs(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """The document's ``_tagged:<key>`` members, by key."""
    return {k[8:]: v for k, v in document.items() if k.startswith("_tagged:")}


def _get(app: Flask, sid: str, path: str) -> t.Any:
    client = app.test_client(use_cookies=False)
    return client.get(path, headers={"Cookie": f"{KEY}={sign(sid, SECRET)}"})


def _post(app: Flask, sid: str, path: str) -> t.Any:
    client = app.test_client(use_cookies=False)
    return client.post(path, headers={"Cookie": f"{KEY}={sign(sid, SECRET)}"})


@pytest.mark.parametrize(
    "tagged",
    [None, "AAAAAAAAAAAAAAAAAAAAAA", 12345, ["x"]],
    ids=["no-record", "forged-mac", "garbage-record", "odd-mac"],
)
def test_tag_shaped_data_from_another_app_is_escaped(
    make_app: t.Callable[..., Flask], store: Store, tagged: t.Any
) -> None:
    """The review's stored XSS: another app stores client input shaped like
    Flask's Markup tag (with a forged ``_tagged:prefs`` record, as a client can
    when the app copies its input into the session): Flask reads a plain
    dict, and Jinja escapes it.
    """
    app = _render_app(make_app)
    sid = generate_sid()
    document: dict[str, t.Any] = {"prefs": EXPRESS_PREFS, "cookie": EMPTY_COOKIE}
    if tagged is not None:
        document["_tagged:prefs"] = tagged
    store.set(sid, document)
    page = _get(app, sid, "/render").text
    assert SCRIPT not in page
    assert "&lt;script&gt;" in page
    assert _get(app, sid, "/types").json == {"prefs": "dict"}


def test_values_flask_wrote_keep_their_types_and_changed_ones_do_not(
    make_app: t.Callable[..., Flask], store: Store
) -> None:
    """Values this extension wrote come back typed, also after another app
    rewrote the document (integral floats as integers, keys reordered);
    a value another app changed (keeping the record) comes back plain, as
    does a MAC moved to another key or another session.
    """
    app = _render_app(make_app)
    sid = _post(app, generate_sid(), "/mark").text
    document = store.get(sid)
    assert document is not None and set(_macs(document)) == {"html", "pair"}
    # Rewritten as JSON.stringify would: 1.0 -> 1, integer-like keys first.
    document["pair"] = {" t": [1, {"2": 2, "b": 1}]}
    store.set(sid, document)
    assert _get(app, sid, "/types").json == {"html": "Markup", "pair": "tuple"}

    changed = {**document, "html": {" m": SCRIPT}}
    store.set(sid, changed)
    assert _get(app, sid, "/types").json == {"html": "dict", "pair": "tuple"}

    moved = {**document, "nick": {" m": "<b>bold</b>"}}
    moved["_tagged:nick"] = document["_tagged:html"]
    store.set(sid, moved)
    assert _get(app, sid, "/types").json["nick"] == "dict"

    other = generate_sid()
    store.set(other, document)
    assert _get(app, other, "/types").json == {"html": "dict", "pair": "dict"}


def test_untrusted_values_are_never_rewritten_or_blessed(
    make_app: t.Callable[..., Flask], store: Store
) -> None:
    """A save of another key leaves another app's tag-shaped value exactly
    as it was and gives it no MAC; a plain session gets no record at all.
    """
    app = _render_app(make_app)
    sid = generate_sid()
    store.set(sid, {"prefs": EXPRESS_PREFS, "cookie": EMPTY_COOKIE})
    assert _post(app, sid, "/touch-other").status_code == 200
    document = store.get(sid)
    assert document is not None
    assert document["prefs"] == EXPRESS_PREFS and document["other"] == 1
    assert _macs(document) == {}


def test_rotated_secret_keeps_types_and_re_signs(make_app: t.Callable[..., Flask]) -> None:
    """A value signed under a secret now in the fallbacks still decodes; the
    next save re-signs it with the current secret, so it survives the old
    secret's removal.
    """
    app = _render_app(make_app)
    sid = _post(app, generate_sid(), "/mark").text
    app.config.update(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=[SECRET])
    headers = {"Cookie": f"{KEY}={sign(sid, SECRET)}"}
    client = app.test_client(use_cookies=False)
    assert client.get("/types", headers=headers).json == {"html": "Markup", "pair": "tuple"}
    assert client.post("/touch-other", headers=headers).status_code == 200
    app.config.update(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=[])
    headers = {"Cookie": f"{KEY}={sign(sid, 'new secret')}"}
    types = client.get("/types", headers=headers).json
    assert types == {"html": "Markup", "pair": "tuple", "other": "int"}


def test_concurrent_saves_of_tagged_values_keep_every_mac(
    make_app: t.Callable[..., Flask], store: Store
) -> None:
    """Two requests of one session at once: B stores a tuple under its key
    while A, loaded before, stores Markup under another and deletes a third.
    Each key's MAC is its own member, merged with the key's change, so every
    value comes back typed and only the deleted key's MAC goes.
    """
    app = _render_app(make_app)
    sid = _post(app, generate_sid(), "/mark").text
    headers = {"Cookie": f"{KEY}={sign(sid, SECRET)}"}
    with fw.in_request(app, headers=headers) as a:
        assert a["pair"] == (1.0, {"b": 1, "2": 2})  # loaded
        with fw.in_request(app, headers=headers) as b:
            b["b"] = (1, 2)
            fw.end_request(app, b)
        a["a"] = Markup("<i>a</i>")
        del a["html"]
        fw.end_request(app, a)
    assert _get(app, sid, "/types").json == {"pair": "tuple", "a": "Markup", "b": "tuple"}
    document = store.get(sid)
    assert document is not None and set(_macs(document)) == {"pair", "a", "b"}


def test_tagged_members_are_reserved(make_app: t.Callable[..., Flask], store: Store) -> None:
    """A view cannot use a data key that names a MAC member, and a member
    another app wrote under such a name is no data.
    """
    app = _render_app(make_app)

    @app.post("/forge")
    def forge() -> str:
        with pytest.raises(KeyError):
            session["_tagged:prefs"] = "A" * 22
        return "ok"

    sid = generate_sid()
    store.set(sid, {"prefs": 1, "_tagged:x": "y", "cookie": EMPTY_COOKIE})
    assert _post(app, sid, "/forge").text == "ok"
    assert _get(app, sid, "/types").json == {"prefs": "int"}
