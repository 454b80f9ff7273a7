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

from ..document import decode
from ..document import encode
from ..errors import CorruptDocument
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

#: Age, in seconds, after which a user index entry whose session does not
#: exist is dropped when read: a login writes the entry just before the
#: session, and a listing in between must not drop it.
ENTRY_GRACE = 60.0

_SUFFIX = ".session"
_NAME_LENGTH = 64  # hex SHA-256
_SESSION_FILE = re.compile(r"[0-9a-f]{64}\.session")
_USER_SUFFIX = ".user"
_USER_FILE = re.compile(r"[0-9a-f]{64}\.user")
_INDEX_ENTRY = re.compile(r"[0-9a-f]{64}")
_REVOKED_SUFFIX = ".revoked"
_REVOKED_FILE = re.compile(r"[0-9a-f]{64}\.revoked")
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


def _replace(path: str, data: bytes, expiry: float, dir_fd: int | None = None) -> None:
    """Put ``data`` in the file ``path`` (relative to ``dir_fd`` if given),
    mode 0600, modified at ``expiry``, by writing a temporary file beside it
    and renaming it in place: a reader sees the old file or the new one.
    A symlink at ``path`` is replaced, never followed.
    """
    head, tail = os.path.split(path)
    temp = os.path.join(head, f"{_TEMP_PREFIX}{tail}-{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_SAFE, 0o600, dir_fd=dir_fd)
    try:
        with open(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.utime(file.fileno(), (expiry, expiry))
        os.replace(temp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _private_directory(st: os.stat_result) -> bool:
    """Whether ``st`` is a directory of this process's user that no one
    else can write to.
    """
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.geteuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


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

    def _file_data(self, sid: str, session: cabc.Mapping[str, t.Any]) -> bytes:
        """A session file's bytes: the header line, then the document.

        :raises SessionTooLarge: the document is longer than :attr:`max_size`.
        """
        return to_utf8(encode({"sid": sid})) + b"\n" + self.encoded(session) + b"\n"

    def _write(self, name: str, data: bytes, expiry: float, suffix: str = _SUFFIX) -> None:
        # Call with the lock held.
        _replace(self._path(name, suffix), data, expiry)

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
        ttl = document_ttl(session, self.ttl)
        # Before locking: a TypeError or SessionTooLarge costs no lock.
        data = self._file_data(sid, session) if ttl > 0 else b""
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
                self._write(name, self._file_data(sid, document), now + ttl)
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

    def clear(self) -> int:
        now = time.time()
        removed = 0
        for entry in self._entries():
            name = entry.name[:_NAME_LENGTH]
            with self._locked(name):
                removed += self._live_mtime(name, now) is not None
                self._unlink(name)
        with os.scandir(self.directory) as entries:
            names = [
                (e.name[:_NAME_LENGTH], e.name[_NAME_LENGTH:])
                for e in entries
                if _USER_FILE.fullmatch(e.name) or _REVOKED_FILE.fullmatch(e.name)
            ]
        for name, suffix in names:
            with self._locked(name):
                if suffix == _USER_SUFFIX:
                    self._clear_index(name)
                else:
                    self._unlink(name, suffix)
        return removed

    def _clear_index(self, name: str) -> None:
        # Call with the lock held.
        with self._user_directory(name) as dir_fd:
            if dir_fd is None:
                self._unlink(name, _USER_SUFFIX)  # a link or file, not followed
                return
            with os.scandir(dir_fd) as entries:
                for entry in [e.name for e in entries]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry, dir_fd=dir_fd)
        with contextlib.suppress(OSError):
            os.rmdir(self._path(name, _USER_SUFFIX))

    def prune(self) -> int:
        return self._sweep(time.time())

    # -- the per-user index -------------------------------------------------
    #
    # One directory per user, <sha256("user\0" + user)>.user (mode 0700),
    # holding one file per session of that user: <sha256(sid)>, mode 0600,
    # its content {"sid": ...}, its mtime the entry's "until". Adding or
    # removing an entry writes or unlinks that one file (under the user's
    # lock file), so it costs the same whatever the user's number of
    # sessions. Listing reads the directory: O(that user's sessions), and
    # drops the expired entries and those whose session is gone; a sweep
    # (prune) drops expired entries and removes empty directories. Every
    # entry is reached through a descriptor of its directory, opened
    # without following a symlink and checked to be this user's, and
    # entries that are not this user's regular files are ignored.

    def _user_name(self, user: str) -> str:
        return self._name("user\0" + user)

    @contextlib.contextmanager
    def _user_directory(self, name: str, create: bool = False) -> cabc.Iterator[int | None]:
        """Yield a descriptor of the index directory ``name``, or ``None`` if
        it is missing or unusable (a symlink, another user's). With
        ``create`` (call with the user's lock held), make it if missing,
        replacing a symlink or file in its place.

        :raises PermissionError: ``create``, and it is another user's.
        """
        path = self._path(name, _USER_SUFFIX)
        fd = None
        for _ in range(2):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path, 0o700)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_SAFE)
                break
            except FileNotFoundError:
                if not create:
                    break
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or not create:
                    break
                os.unlink(path)  # a symlink (never followed) or a file: replaced
        if fd is None:
            if create:
                raise PermissionError(f"cannot make the user index directory {path!r}")
            yield None
            return
        try:
            if not _private_directory(os.fstat(fd)):
                if create:
                    raise PermissionError(f"{path!r} is not this user's private directory")
                yield None
            else:
                yield fd
        finally:
            os.close(fd)

    def _entry_sid(self, entry: str, dir_fd: int) -> str | None:
        """The session id an index entry names; ``None`` for an unreadable
        or foreign one (another user's, a symlink).
        """
        try:
            fd = os.open(entry, os.O_RDONLY | _O_SAFE, dir_fd=dir_fd)
        except OSError:
            return None
        with open(fd, "rb") as file:
            if not _ours(os.fstat(fd)):
                return None
            try:
                sid = json.load(file).get("sid")
            except (ValueError, AttributeError):
                return None
        return sid if isinstance(sid, str) and self._name(sid) == entry else None

    def index_add(self, user: str, sid: str, until: float) -> None:
        """Write ``sid``'s entry in ``user``'s directory: one small file."""
        data = to_utf8(encode({"sid": sid}))
        name = self._user_name(user)
        with self._locked(name), self._user_directory(name, create=True) as dir_fd:
            _replace(self._name(sid), data, until, dir_fd)

    def index_remove(self, user: str, sid: str) -> None:
        """Unlink ``sid``'s entry from ``user``'s directory."""
        name = self._user_name(user)
        with self._locked(name), self._user_directory(name) as dir_fd:
            if dir_fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._name(sid), dir_fd=dir_fd)

    def index_sessions(self, user: str) -> dict[str, Document]:
        """List ``user``'s directory and read each entry's session. Entries
        that expired, are not this user's files or whose session is gone
        are dropped (a gone session's entry only once older than
        :data:`ENTRY_GRACE`: a login writes the entry before the session).
        """
        now = time.time()
        name = self._user_name(user)
        texts: dict[str, bytes | None] = {}
        stale: dict[str, int] = {}  # entry -> its mtime (ns) when found stale
        with self._user_directory(name) as dir_fd:
            if dir_fd is None:
                return {}
            with os.scandir(dir_fd) as entries:
                found = [
                    (e.name, e.stat(follow_symlinks=False))
                    for e in entries
                    if _INDEX_ENTRY.fullmatch(e.name)
                ]
            for entry, st in found:
                sid = None if st.st_mtime <= now else self._entry_sid(entry, dir_fd)
                if sid is None:
                    stale[entry] = st.st_mtime_ns
                    continue
                try:
                    session = self._read(entry, now)
                except CorruptDocument:
                    continue
                if session is not None and session[0] == sid:
                    texts[sid] = session[1]
                elif st.st_ctime < now - ENTRY_GRACE:
                    stale[entry] = st.st_mtime_ns
        if stale:
            self._drop_entries(name, stale)
        return decode_entries(texts)

    def _entry_session(self, entry: str, dir_fd: int, now: float) -> bool:
        """Whether index entry ``entry`` names a live session (a corrupt one
        counts, as it is left in place).
        """
        sid = self._entry_sid(entry, dir_fd)
        if sid is None:
            return False
        try:
            session = self._read(entry, now)
        except CorruptDocument:
            return True
        return session is not None and session[0] == sid

    def _drop_entries(self, user_name: str, stale: dict[str, int]) -> None:
        """Unlink index entries found stale, unless rewritten since (their
        mtime, checked again under the user's lock, moved).
        """
        with self._locked(user_name), self._user_directory(user_name) as dir_fd:
            if dir_fd is None:
                return
            for entry, mtime in stale.items():
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(entry, dir_fd=dir_fd, follow_symlinks=False).st_mtime_ns == mtime:
                        os.unlink(entry, dir_fd=dir_fd)

    def _prune_index(self, name: str, now: float) -> None:
        """Sweep one user's index: drop expired entries and abandoned
        temporary files, and the directory once empty. A symlink or file
        in its place goes once expired (never what a link points to).
        """
        with self._locked(name, blocking=False) as acquired:
            if not acquired:
                return
            path = self._path(name, _USER_SUFFIX)
            with self._user_directory(name) as dir_fd:
                if dir_fd is None:
                    st = os.lstat(path)
                    if not stat.S_ISDIR(st.st_mode) and st.st_mtime <= now:
                        os.unlink(path)
                    return
                left = 0
                with os.scandir(dir_fd) as entries:
                    for entry in entries:
                        st = entry.stat(follow_symlinks=False)
                        if entry.name.startswith(_TEMP_PREFIX):
                            expired = st.st_ctime < now - STALE_TEMP_AGE
                        else:
                            # Past its end, or its session lived its whole
                            # lifetime as the entry knows it and is missing.
                            expired = st.st_mtime <= now or (
                                outlived(st.st_mtime, now)
                                and not self._entry_session(entry.name, dir_fd, now)
                            )
                        if expired:
                            os.unlink(entry.name, dir_fd=dir_fd)
                        else:
                            left += 1
            if not left:
                with contextlib.suppress(OSError):  # not empty after all
                    os.rmdir(path)

    # -- revoke records -------------------------------------------------------
    #
    # One file per user, <sha256("revoked\0" + user)>.revoked, holding
    # {"user": ..., "at": ...}, its mtime when it may go (a sweep removes it
    # by its stat alone). Written like a session file.

    def _revoked_name(self, user: str) -> str:
        return self._name("revoked\0" + user)

    def index_revoke(self, user: str, at: float, until: float) -> None:
        name = self._revoked_name(user)
        data = to_utf8(encode({"user": user, "at": at}))
        with self._locked(name):
            self._write(name, data, until, _REVOKED_SUFFIX)

    def index_revoked(self, user: str) -> float | None:
        opened = _open_ours(self._path(self._revoked_name(user), _REVOKED_SUFFIX))
        if opened is None:
            return None
        file, st = opened
        with file:
            if st.st_mtime <= time.time():
                return None
            try:
                record = json.load(file)
            except (ValueError, UnicodeDecodeError):
                return None
        if not isinstance(record, dict) or record.get("user") != user:
            return None
        at = record.get("at")
        return None if isinstance(at, bool) or not isinstance(at, int | float) else float(at)

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
                    elif _REVOKED_FILE.fullmatch(entry.name) and st.st_mtime <= now:
                        self._remove_expired(entry.name[:_NAME_LENGTH], now, _REVOKED_SUFFIX)
                except FileNotFoundError:
                    continue
        return removed

    def _remove_expired(self, name: str, now: float, suffix: str = _SUFFIX) -> int:
        # A busy lock means someone is writing this file: leave it.
        with self._locked(name, blocking=False) as acquired:
            # Checked again under the lock: it may have been rewritten.
            if acquired and os.lstat(self._path(name, suffix)).st_mtime <= now:
                os.unlink(self._path(name, suffix))
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
