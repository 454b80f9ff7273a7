"""In-process stores, for development and tests: :class:`MemoryStore`, and
:class:`AsyncMemoryStore` for asyncio apps.
"""

from __future__ import annotations

import collections.abc as cabc
import threading
import time
import typing as t

from ..document import decode
from .base import DEFAULT_TTL
from .base import Document
from .base import Store
from .base import apply_changes
from .base import decode_entries
from .base import document_ttl
from .base import outlived
from .base import touched_ttl
from .threaded import P
from .threaded import SyncBackedStore
from .threaded import T

#: Seconds between two sweeps of expired entries.
SWEEP_INTERVAL = 60.0


class MemoryStore(Store):
    """Keep sessions in a dict in this process, as express-session's
    ``MemoryStore`` does.

    Entries are kept as JSON text, so no object is shared between requests
    and a value that could not go to a real store fails here too. Expired
    entries are never returned, and are swept out at most every
    :data:`SWEEP_INTERVAL` seconds on a write, so memory does not grow without
    bound. Thread-safe; not shared between processes, so not for production
    (the extension warns when it is used outside debug or testing).

    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.

    .. versionadded:: 0.1
    """

    def __init__(self, ttl: int = DEFAULT_TTL) -> None:
        self.ttl = ttl
        # sid -> (JSON text, expiry as time.time())
        self._entries: dict[str, tuple[str, float]] = {}
        # user -> {sid: until}: the per-user index (CONNECT_SESSION_USER_KEY).
        self._users: dict[str, dict[str, float]] = {}
        # user -> (revoked at, until): the revoke records.
        self._revoked: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.time() + SWEEP_INTERVAL

    def _live_text(self, sid: str, now: float) -> str | None:
        # Call with the lock held.
        entry = self._entries.get(sid)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[sid]
            return None
        return entry[0]

    def _put(self, sid: str, session: cabc.Mapping[str, t.Any], now: float) -> None:
        # Call with the lock held.
        ttl = document_ttl(session, self.ttl)
        if ttl <= 0:
            self._entries.pop(sid, None)
        else:
            self._entries[sid] = (self.encoded(session).decode("utf-8"), now + ttl)
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> int:
        # Call with the lock held.
        dead = [sid for sid, (_, expiry) in self._entries.items() if expiry <= now]
        for sid in dead:
            del self._entries[sid]
        for user in list(self._users):
            # Entries of sessions that expired, though within their margin.
            for sid, until in list(self._users[user].items()):
                if sid not in self._entries and outlived(until, now):
                    del self._users[user][sid]
            self._prune_user(user, now)
        for user, (_, until) in list(self._revoked.items()):
            if until <= now:
                del self._revoked[user]
        self._next_sweep = now + SWEEP_INTERVAL
        return len(dead)

    def _prune_user(self, user: str, now: float) -> dict[str, float]:
        # Call with the lock held. Drops expired entries and an empty index.
        entries = {sid: until for sid, until in self._users.get(user, {}).items() if until > now}
        if entries:
            self._users[user] = entries
        else:
            self._users.pop(user, None)
        return entries

    def get(self, sid: str) -> Document | None:
        with self._lock:
            text = self._live_text(sid, time.time())
        return None if text is None else decode(text)

    def set(self, sid: str, session: Document) -> None:
        with self._lock:
            self._put(sid, session, time.time())

    def destroy(self, sid: str) -> bool:
        now = time.time()
        with self._lock:
            live = self._live_text(sid, now) is not None
            self._entries.pop(sid, None)
            return live

    def touch(self, sid: str, session: Document) -> None:
        now = time.time()
        with self._lock:
            text = self._live_text(sid, now)
            if text is not None:
                self._entries[sid] = (text, now + document_ttl(session, self.ttl))

    def get_and_touch(self, sid: str) -> Document | None:
        now = time.time()
        with self._lock:
            text = self._live_text(sid, now)
            if text is None:
                return None
            document = decode(text)
            self._entries[sid] = (text, now + touched_ttl(document, self.ttl))
        return document

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        now = time.time()
        with self._lock:
            text = self._live_text(sid, now)
            if text is None:
                return False
            self._put(sid, apply_changes(decode(text), changes, removed), now)
        return True

    def all(self) -> dict[str, Document]:
        now = time.time()
        with self._lock:
            live = {sid: text for sid, (text, expiry) in self._entries.items() if expiry > now}
        return {sid: decode(text) for sid, text in live.items()}

    def length(self) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for _, expiry in self._entries.values() if expiry > now)

    def clear(self) -> int:
        now = time.time()
        with self._lock:
            removed = sum(1 for _, expiry in self._entries.values() if expiry > now)
            self._entries.clear()
            self._users.clear()
            self._revoked.clear()
        return removed

    def prune(self) -> int:
        with self._lock:
            return self._sweep(time.time())

    # The index's writes cost the same whatever the user's number of
    # sessions; expired entries go when the user's index is read, and in
    # the sweeps.

    def index_add(self, user: str, sid: str, until: float) -> None:
        with self._lock:
            self._users.setdefault(user, {})[sid] = until

    def index_remove(self, user: str, sid: str) -> None:
        with self._lock:
            entries = self._users.get(user)
            if entries is not None:
                entries.pop(sid, None)
                if not entries:
                    del self._users[user]

    def index_sessions(self, user: str) -> dict[str, Document]:
        now = time.time()
        with self._lock:
            texts = {sid: self._live_text(sid, now) for sid in self._prune_user(user, now)}
            for sid, text in texts.items():
                if text is None:
                    del self._users[user][sid]
            self._prune_user(user, now)
        return decode_entries(texts)

    def index_revoke(self, user: str, at: float, until: float) -> None:
        with self._lock:
            self._revoked[user] = (at, until)

    def index_revoked(self, user: str) -> float | None:
        with self._lock:
            at, until = self._revoked.get(user, (None, 0.0))
            return at if until > time.time() else None


class AsyncMemoryStore(SyncBackedStore):
    """:class:`MemoryStore` for asyncio apps (Quart): the same dict of JSON
    text entries, expiry, sweeps, per-user index and revoke records, with
    coroutine methods that run in the event loop itself (no thread: each
    call is a few dict operations and never waits).

    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.

    .. versionadded:: 0.1
    """

    def __init__(self, ttl: int = DEFAULT_TTL) -> None:
        super().__init__(MemoryStore(ttl))

    async def call(self, method: cabc.Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return method(*args, **kwargs)
