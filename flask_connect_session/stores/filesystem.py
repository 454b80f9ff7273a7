"""Sessions as files in a directory, shared by the processes of one machine."""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import stat
import sys
import time
import typing as t

from ..errors import CorruptDocument
from ..serialization import decode
from ..serialization import encode
from ..serialization import error_kind
from .base import DEFAULT_TTL
from .base import Document
from .base import Store
from .base import apply_changes
from .base import decode_entries
from .base import document_ttl
from .base import outlived
from .base import to_utf8
from .base import touched_ttl

if sys.platform != "win32":
    import fcntl

#: Seconds between two opportunistic sweeps of expired files. One sweep per
#: interval runs for the whole directory, whichever process does it.
SWEEP_INTERVAL = 300.0

#: Age, in seconds, after which a temporary file is known to be abandoned (its
#: writer died between writing and renaming it) and a sweep removes it.
STALE_TEMP_AGE = 3600.0

_SUFFIX = ".session"
_NAME_LENGTH = 64  # hex SHA-256
_SESSION_FILE = re.compile(r"[0-9a-f]{64}\.session")
_USER_SUFFIX = ".user"
_USER_FILE = re.compile(r"[0-9a-f]{64}\.user")
_TEMP_PREFIX = ".tmp-"
_LOCK_PREFIX = ".lock-"
_SWEEP_MARKER = ".last-sweep"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Every file of the directory is opened without following a symlink there.
_O_SAFE = _O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _ours(st: os.stat_result) -> bool:
    """Whether ``st`` is a regular file of this process's user: anything else
    in the directory (planted by someone else, a symlink) is never used.
    """
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def _open_ours(path: str) -> tuple[io.BufferedReader, os.stat_result] | None:
    """Open ``path`` for reading, with its stat, if it is a regular file of
    this process's user; ``None`` if it is missing, a symlink (never
    followed) or anything else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_SAFE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: never followed
            return None
        raise
    file = open(fd, "rb")
    # The descriptor's own stat: the very file to be read.
    st = os.fstat(fd)
    if not _ours(st):
        file.close()
        return None
    return file, st


def check_directory(path: str) -> None:
    """Refuse a session directory others could plant files in.

    :raises ValueError: ``path`` is a symlink or not a directory, is not
        owned by this process's user, or is writable by its group or others.
    """
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"session directory {path!r} is not a directory (a symlink?)")
    if st.st_uid != os.geteuid():
        raise ValueError(
            f"session directory {path!r} belongs to uid {st.st_uid}, not to this"
            f" process's user (uid {os.geteuid()})"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(
            f"session directory {path!r} is writable by others (mode"
            f" {stat.S_IMODE(st.st_mode):o}): another user could plant sessions; chmod 700 it"
        )


class FileSystemStore(Store):
    """Keep each session in its own file in ``directory``, for deployments on
    one machine (several worker processes, no Redis).

    This is not cachelib's ``FileSystemCache``: that cache evicts entries
    once it holds ``threshold`` files (500 by default), which for sessions
    means logging users out at random, and it pickles. This store never
    removes a live session, and keeps JSON.

    **Files.** A session lives in ``<sha256(sid)>.session``: hashing the id
    keeps any id inside the directory, whatever characters it has, and gives
    names that cannot clash on case-insensitive file systems. The file holds
    two lines: a header ``{"sid": "<id>"}`` (so :meth:`all` can list ids),
    then the session document as compact JSON, exactly what express-session
    would store. The entry's expiry is the file's modification time, set in
    the future: checking or pruning expiry needs a ``stat``, not a read, and
    :meth:`touch` is a ``utime``, not a rewrite. Files are created mode 0600
    (the directory, if this store creates it, 0700).

    **Safety.** The directory must be a real directory (not a symlink) owned
    by the process's user and not writable by its group or others, else the
    constructor raises :exc:`ValueError`: anyone who can create files there
    could plant a session for their own id. Files are opened with
    ``O_NOFOLLOW``, and an entry that is not a regular file of the process's
    user is ignored (a session file reads as missing).

    **Concurrency.** A write goes to a temporary file in the same directory,
    then :func:`os.replace` puts it in place, so a reader sees the old file or
    the new one, never part of one; reads take no lock. Writes, deletes,
    touches and merges of a session hold an exclusive :func:`fcntl.flock` on
    one of 256 lock files (``.lock-00`` to ``.lock-ff``, chosen by the file
    name), so a :meth:`merge` is an atomic read-modify-write across processes
    and threads, and one that finds the session gone writes nothing. Locks
    are taken on a fresh descriptor each time, so forked workers do not share
    them. POSIX only, and not for NFS (its locks are not dependable). Writes
    are not fsynced: after a power failure the last writes may be lost, or
    read as corrupt entries (a new session starts).

    **Expiry.** Expired entries are never returned. :meth:`prune` removes
    them, and writes do it too, at most every :data:`SWEEP_INTERVAL` seconds
    across all processes (the ``.last-sweep`` file records the last sweep).

    :param directory: the directory of the session files; created if missing.
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.
    :raises ValueError: the directory is unsafe (see above), or a file is in
        its way.

    .. versionadded:: 0.1
    """

    def __init__(self, directory: str | os.PathLike[str], *, ttl: int = DEFAULT_TTL) -> None:
        if sys.platform == "win32":
            raise RuntimeError("FileSystemStore needs POSIX file locks (fcntl)")
        #: The absolute path of the session directory.
        self.directory = os.path.abspath(os.fspath(directory))
        self.ttl = ttl
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            # A regular file where the directory (or one above it) should be.
            raise ValueError(
                f"session directory {self.directory!r} is not a directory (a file is in the way)"
            ) from None
        check_directory(self.directory)
        # When this process may next look at the sweep marker.
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.directory!r}>"

    # -- files ------------------------------------------------------------

    def _name(self, sid: str) -> str:
        return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()

    def _path(self, name: str, suffix: str = _SUFFIX) -> str:
        return os.path.join(self.directory, name + suffix)

    @contextlib.contextmanager
    def _locked(self, name: str, blocking: bool = True) -> cabc.Iterator[bool]:
        """Hold the lock of the session file ``name``; yield whether it was
        acquired (always, when ``blocking``).
        """
        path = os.path.join(self.directory, _LOCK_PREFIX + name[:2])
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_SAFE, 0o600)
        try:
            if not _ours(os.fstat(fd)):
                raise PermissionError(f"lock file {path!r} is not this user's regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _read(self, name: str, now: float) -> tuple[str, bytes] | None:
        """Return the id and document text of a live entry, else ``None``.

        :raises CorruptDocument: the file is not in this store's format.
        """
        opened = _open_ours(self._path(name))
        if opened is None:
            return None
        file, st = opened
        with file:
            if st.st_mtime <= now:
                return None
            data = file.read()
        header_text, _, text = data.partition(b"\n")
        try:
            header = json.loads(header_text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptDocument(f"unreadable session file header: {error_kind(exc)}") from None
        sid = header.get("sid") if isinstance(header, dict) else None
        if not isinstance(sid, str):
            raise CorruptDocument("session file header has no 'sid'")
        return sid, text

    def _document(self, sid: str, name: str, now: float) -> Document | None:
        entry = self._read(name, now)
        if entry is None:
            return None
        if entry[0] != sid:
            raise CorruptDocument("session file belongs to another id")
        return decode(entry[1])

    def _write(self, name: str, data: bytes, expiry: float, suffix: str = _SUFFIX) -> None:
        # Call with the lock held.
        temp = os.path.join(self.directory, f"{_TEMP_PREFIX}{name}-{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_SAFE, 0o600)
        try:
            with open(fd, "wb") as file:
                file.write(data)
            os.utime(temp, (expiry, expiry))
            os.replace(temp, self._path(name, suffix))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _expire_in(self, name: str, ttl: int, now: float) -> None:
        # Call with the lock held. Like Redis' EXPIRE: a TTL <= 0 deletes.
        if ttl > 0:
            if self._live_mtime(name, float("-inf")) is not None:
                os.utime(self._path(name), (now + ttl, now + ttl), follow_symlinks=False)
        else:
            self._unlink(name)

    def _unlink(self, name: str, suffix: str = _SUFFIX) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name, suffix))

    def _live_mtime(self, name: str, now: float) -> float | None:
        try:
            st = os.lstat(self._path(name))
        except FileNotFoundError:
            return None
        return st.st_mtime if _ours(st) and st.st_mtime > now else None

    def _entries(self) -> cabc.Iterator[os.DirEntry[str]]:
        """The session files of the directory (nothing else it may hold)."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if _SESSION_FILE.fullmatch(entry.name):
                    yield entry

    # -- the Store API ----------------------------------------------------

    def get(self, sid: str) -> Document | None:
        return self._document(sid, self._name(sid), time.time())

    def get_and_touch(self, sid: str) -> Document | None:
        name = self._name(sid)
        with self._locked(name):
            now = time.time()
            document = self._document(sid, name, now)
            if document is not None:
                self._expire_in(name, touched_ttl(document, self.ttl), now)
        return document

    def set(self, sid: str, session: Document) -> None:
        name = self._name(sid)
        data = _file_data(sid, session)  # before locking: a TypeError costs no lock
        ttl = document_ttl(session, self.ttl)
        with self._locked(name):
            if ttl > 0:
                self._write(name, data, time.time() + ttl)
            else:
                self._unlink(name)
        self._maybe_sweep()

    def destroy(self, sid: str) -> bool:
        name = self._name(sid)
        with self._locked(name):
            live = self._live_mtime(name, time.time()) is not None
            self._unlink(name)
            return live

    def touch(self, sid: str, session: Document) -> None:
        name = self._name(sid)
        with self._locked(name):
            now = time.time()
            # Never brings back an expired or destroyed session.
            if self._live_mtime(name, now) is not None:
                self._expire_in(name, document_ttl(session, self.ttl), now)

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        name = self._name(sid)
        with self._locked(name):
            now = time.time()
            document = self._document(sid, name, now)
            if document is None:
                return False
            document = apply_changes(document, changes, removed)
            ttl = document_ttl(document, self.ttl)
            if ttl > 0:
                self._write(name, _file_data(sid, document), now + ttl)
            else:
                self._unlink(name)
        self._maybe_sweep()
        return True

    def all(self) -> dict[str, Document]:
        """Return every live session, by id; files that cannot be decoded are
        left out.
        """
        now = time.time()
        texts: dict[str, bytes | None] = {}
        for entry in self._entries():
            name = entry.name[:_NAME_LENGTH]
            try:
                found = self._read(name, now)
            except CorruptDocument:
                continue
            if found is not None and self._name(found[0]) == name:
                texts[found[0]] = found[1]
        return decode_entries(texts)

    def length(self) -> int:
        now = time.time()
        count = 0
        for entry in self._entries():
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat(follow_symlinks=False)
                if _ours(st) and st.st_mtime > now:
                    count += 1
        return count

    def clear(self) -> None:
        for entry in self._entries():
            name = entry.name[:_NAME_LENGTH]
            with self._locked(name):
                self._unlink(name)
        with os.scandir(self.directory) as entries:
            names = [e.name[:_NAME_LENGTH] for e in entries if _USER_FILE.fullmatch(e.name)]
        for name in names:
            with self._locked(name):
                self._unlink(name, _USER_SUFFIX)

    def prune(self) -> int:
        return self._sweep(time.time())

    # -- the per-user index -------------------------------------------------
    #
    # One file per user, <sha256("user\0" + user)>.user, holding
    # {"user": ..., "sids": {sid: until}}, its mtime the latest "until" (so a
    # sweep removes a dead index by its stat alone). Written like a session
    # file (temporary file, rename) under the same lock files.

    def _user_name(self, user: str) -> str:
        return self._name("user\0" + user)

    def _read_index(self, name: str, now: float) -> dict[str, float]:
        # Live entries only; a missing, expired or unreadable file is empty,
        # and so is a symlink or a file of another user.
        try:
            opened = _open_ours(self._path(name, _USER_SUFFIX))
            if opened is None:
                return {}
            file, st = opened
            with file:
                if st.st_mtime <= now:
                    return {}
                sids = json.load(file).get("sids")
        except (OSError, ValueError, AttributeError):
            return {}
        if not isinstance(sids, dict):
            return {}
        return {
            sid: float(until)
            for sid, until in sids.items()
            if isinstance(until, int | float) and until > now
        }

    def _write_index(self, name: str, user: str, sids: dict[str, float]) -> None:
        # Call with the lock held. An empty index is no file at all.
        if sids:
            data = to_utf8(encode({"user": user, "sids": sids}))
            self._write(name, data, max(sids.values()), _USER_SUFFIX)
        else:
            self._unlink(name, _USER_SUFFIX)

    def _update_index(self, user: str, change: cabc.Callable[[dict[str, float]], object]) -> None:
        name = self._user_name(user)
        with self._locked(name):
            sids = self._read_index(name, time.time())
            change(sids)
            self._write_index(name, user, sids)

    def _prune_index(self, name: str, now: float) -> None:
        with self._locked(name, blocking=False) as acquired:
            if not acquired:
                return
            path = self._path(name, _USER_SUFFIX)
            try:
                opened = _open_ours(path)
                user = None
                if opened is not None:
                    with opened[0] as file:
                        user = json.load(file).get("user")
            except (OSError, ValueError, AttributeError):
                user = None
            if isinstance(user, str) and self._user_name(user) == name:
                sids = self._read_index(name, now)
                # Entries of sessions that expired, though within their margin.
                live = {
                    sid: until
                    for sid, until in sids.items()
                    if not outlived(until, now) or self._stored(sid, now)
                }
                self._write_index(name, user, live)
            elif os.lstat(path).st_mtime <= now:
                # Not followed: an expired symlink goes, never its target.
                self._unlink(name, _USER_SUFFIX)

    def _stored(self, sid: str, now: float) -> bool:
        # Whether a live session file holds ``sid``; a corrupt one counts,
        # as it is left in place.
        try:
            entry = self._read(self._name(sid), now)
        except CorruptDocument:
            return True
        return entry is not None and entry[0] == sid

    def index_add(self, user: str, sid: str, until: float) -> None:
        self._update_index(user, lambda sids: sids.__setitem__(sid, until))

    def index_remove(self, user: str, sid: str) -> None:
        self._update_index(user, lambda sids: sids.pop(sid, None))

    def index_sessions(self, user: str) -> dict[str, Document]:
        now = time.time()
        texts: dict[str, bytes | None] = {}
        for sid in self._read_index(self._user_name(user), now):
            try:
                entry = self._read(self._name(sid), now)
            except CorruptDocument:
                continue
            texts[sid] = entry[1] if entry is not None and entry[0] == sid else None
        gone = [sid for sid, text in texts.items() if text is None]
        if gone:
            self._update_index(user, lambda sids: [sids.pop(sid, None) for sid in gone])
        return decode_entries(texts)

    # -- expiry -----------------------------------------------------------

    def _sweep(self, now: float) -> int:
        """Remove expired session files and abandoned temporary files; return
        how many sessions went.
        """
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if entry.name.startswith(_TEMP_PREFIX):
                        if st.st_ctime < now - STALE_TEMP_AGE:
                            os.unlink(entry.path)
                    elif _SESSION_FILE.fullmatch(entry.name) and st.st_mtime <= now:
                        removed += self._remove_expired(entry.name[:_NAME_LENGTH], now)
                    elif _USER_FILE.fullmatch(entry.name):
                        self._prune_index(entry.name[:_NAME_LENGTH], now)
                except FileNotFoundError:
                    continue
        return removed

    def _remove_expired(self, name: str, now: float) -> int:
        # A busy lock means someone is writing this session: leave it.
        with self._locked(name, blocking=False) as acquired:
            # Checked again under the lock: it may have been rewritten.
            if acquired and os.lstat(self._path(name)).st_mtime <= now:
                os.unlink(self._path(name))
                return 1
        return 0

    def _maybe_sweep(self) -> None:
        now = time.time()
        if now < self._next_sweep:
            return
        marker = os.path.join(self.directory, _SWEEP_MARKER)
        try:
            st = os.lstat(marker)
            last = st.st_mtime if _ours(st) else 0.0
        except FileNotFoundError:
            last = 0.0
        if now - last < SWEEP_INTERVAL:
            self._next_sweep = last + SWEEP_INTERVAL
            return
        self._next_sweep = now + SWEEP_INTERVAL
        # A failed sweep must not fail the write that triggered it; prune()
        # reports errors.
        with contextlib.suppress(OSError):
            # Claim the sweep for every process before walking the directory.
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | _O_SAFE, 0o600)
            try:
                os.utime(fd, (now, now))
            finally:
                os.close(fd)
            self._sweep(now)


def _file_data(sid: str, session: cabc.Mapping[str, t.Any]) -> bytes:
    return to_utf8(encode({"sid": sid})) + b"\n" + to_utf8(encode(session)) + b"\n"
