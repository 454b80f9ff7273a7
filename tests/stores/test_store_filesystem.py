"""FileSystemStore: file names and modes, expiry in the mtime, sweeping,
locking across processes, URLs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import FileSystemStore
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores import StoreSettings
from flask_connect_session.stores import filesystem
from flask_connect_session.stores import store_from_url

from store_harness import cookie
from store_harness import doc

SETTINGS = StoreSettings("sess:", 86400)


def session_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.session"))


def test_files_are_private_and_named_by_hash(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "sessions"
    store = FileSystemStore(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    store.set("abc", doc(None, a=1))
    (path,) = session_files(directory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name == store._name("abc") + ".session"
    header, document = path.read_text().splitlines()
    assert json.loads(header) == {"sid": "abc"}
    assert json.loads(document) == doc(None, a=1)
    for lock in directory.glob(".lock-*"):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "sid",
    ["../../escape", "/etc/passwd", "a/b\\c", "..", ".", "\x00nul", "é😀", "x" * 5000, "ABC"],
    ids=lambda sid: repr(sid[:20]),
)
def test_any_sid_stays_inside_the_directory(tmp_path: Path, sid: str) -> None:
    directory = tmp_path / "sessions"
    store = FileSystemStore(directory)
    store.set(sid, doc(None, sid=sid))
    store.set(sid.lower(), doc(None, sid=sid.lower()))  # no clash on case-insensitive FSs
    assert store.get(sid) == doc(None, sid=sid)
    assert {p.parent for p in directory.rglob("*")} == {directory}
    assert list(tmp_path.iterdir()) == [directory]
    assert store.all()[sid] == doc(None, sid=sid)


def test_expiry_is_the_mtime_and_expired_files_are_never_read(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    live = doc(100, a=1)
    store.set("live", live)
    store.set("dead", doc(100, a=2))
    (tmp_path / (store._name("dead") + ".session")).touch()  # mtime now: expired
    assert store.get("dead") is None
    assert store.get_and_touch("dead") is None
    assert store.merge("dead", {"b": 1}, []) is False
    store.touch("dead", doc(100))  # never resurrects
    assert store.get("dead") is None
    assert store.length() == 1
    assert store.all() == {"live": live}
    assert store.prune() == 1
    assert [p.name for p in session_files(tmp_path)] == [store._name("live") + ".session"]


def test_writes_sweep_at_most_once_per_interval(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    other = FileSystemStore(tmp_path)  # another process, as far as sweeping goes
    store.set("a", doc(100))  # first write sweeps and claims the interval
    store.set("dead", doc(100))
    os.utime(tmp_path / (store._name("dead") + ".session"), (0, 0))
    other.set("b", doc(100))  # within the interval: no sweep
    assert len(session_files(tmp_path)) == 3
    # The interval is over (for everyone): the next write sweeps.
    os.utime(tmp_path / ".last-sweep", (0, 0))
    store._next_sweep = 0.0
    store.set("c", doc(100))
    assert store.get("a") is not None and len(session_files(tmp_path)) == 3
    assert not (tmp_path / (store._name("dead") + ".session")).exists()


def test_sweep_removes_abandoned_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSystemStore(tmp_path)
    abandoned = tmp_path / ".tmp-deadbeef-1234"
    abandoned.write_text("half written")
    store.prune()
    assert abandoned.exists()  # could be a write in progress
    monkeypatch.setattr(filesystem, "STALE_TEMP_AGE", -1.0)
    store.prune()
    assert not abandoned.exists()


def test_no_eviction_beyond_cachelibs_threshold(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    for n in range(600):
        store.set(f"s{n}", doc(None, n=n))
    assert store.length() == 600
    assert store.get("s0") == doc(None, n=0)


def test_corrupt_files(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.set("abc", doc(None, a=1))
    path = tmp_path / (store._name("abc") + ".session")
    mtime = path.stat().st_mtime
    for content in (
        b"garbage",
        b'{"sid": 1}\n{}',
        b'{"sid": "other"}\n' + json.dumps(doc()).encode(),
    ):
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))
        with pytest.raises(CorruptDocument):
            store.get("abc")
        with pytest.raises(CorruptDocument):
            store.merge("abc", {"b": 1}, [])
        assert path.read_bytes() == content
        assert store.all() == {}


def test_readers_never_see_a_torn_write(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.set("abc", doc(None, blob="x" * 200_000, n=0))
    stop = threading.Event()
    seen: list[object] = []

    def reader() -> None:
        while not stop.is_set():
            document = store.get("abc")
            if document is None or len(document["blob"]) != 200_000:
                seen.append(document)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(200):
            store.set("abc", doc(None, blob="x" * 200_000, n=n))
            store.merge("abc", {"n": -n}, [])
    finally:
        stop.set()
        thread.join()
    assert seen == []


MERGER = """
import sys
from flask_connect_session import FileSystemStore
store = FileSystemStore(sys.argv[1])
for i in range(25):
    assert store.merge("shared", {f"p{sys.argv[2]}-{i}": i}, [])
"""


def test_merge_is_atomic_across_processes(tmp_path: Path) -> None:
    """Four processes each merge 25 keys into one session at once: all 100 stay."""
    store = FileSystemStore(tmp_path)
    store.set("shared", doc(None, start=True))
    procs = [
        subprocess.Popen([sys.executable, "-c", MERGER, str(tmp_path), str(n)]) for n in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    document = store.get("shared")
    assert document is not None
    assert {f"p{n}-{i}" for n in range(4) for i in range(25)} <= set(document)


def test_urls(tmp_path: Path) -> None:
    store = store_from_url(f"file://{tmp_path}/a", SETTINGS)
    assert isinstance(store, FileSystemStore) and store.directory == f"{tmp_path}/a"
    store = store_from_url(f"file://localhost{tmp_path}/b%20c", SETTINGS)
    assert isinstance(store, FileSystemStore) and store.directory == f"{tmp_path}/b c"
    assert store.ttl == 86400
    for bad in (
        f"file://host{tmp_path}",
        "file://relative/dir",
        f"file://{tmp_path}?x=1",
        "file:",
    ):
        with pytest.raises(ValueError):
            store_from_url(bad, SETTINGS)


def test_bad_url_in_config_names_the_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE="file://elsewhere/sessions")
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE"):
        ConnectSession(app)


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_a_regular_file_as_the_directory_names_the_key(tmp_path: Path, where: str) -> None:
    """A ``file://`` path that is a regular file (or lies under one) is a
    ``ValueError`` naming the key at ``init_app``, not an ``OSError``; the
    file is left as it was.
    """
    existing = tmp_path / "sessions"
    existing.write_text("not a directory")
    path = existing if where == "file" else existing / "sub"
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=f"file://{path}")
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE.*not a directory"):
        ConnectSession(app)
    assert existing.read_text() == "not a directory"


def test_touch_and_get_and_touch_move_the_mtime(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path, ttl=1000)
    store.set("abc", doc(10, a=1))
    path = tmp_path / (store._name("abc") + ".session")
    content = path.read_bytes()
    store.touch("abc", doc(500))
    assert 499 < path.stat().st_mtime - time.time() <= 500
    store.set("bs", doc(None))
    store.get_and_touch("bs")
    assert (
        999 < (tmp_path / (store._name("bs") + ".session")).stat().st_mtime - time.time() <= 1000
    )
    assert path.read_bytes() == content  # touched, not rewritten
    assert store.merge("abc", {"cookie": cookie(-1)}, [])
    assert not path.exists()
