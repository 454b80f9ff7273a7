"""Synchronous access to asyncio stores, for the tests written against the
synchronous store contract: an event loop in a thread of its own, and a
:class:`~flask_connect_session.Store` view of an asyncio store whose every
call runs there (calls from several threads at once run concurrently in
that one loop, as the requests of an asyncio server do).
"""

from __future__ import annotations

import asyncio
import atexit
import collections.abc as cabc
import threading
import typing as t

from flask_connect_session.stores.base import OPTIONAL_METHODS
from flask_connect_session.stores.base import AsyncStore
from flask_connect_session.stores.base import Store
from flask_connect_session.stores.base import implements
from flask_connect_session.stores.threaded import without_methods

T = t.TypeVar("T")

Document = dict[str, t.Any]

#: Seconds a call may take before the test fails instead of hanging.
TIMEOUT = 120


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: cabc.Coroutine[t.Any, t.Any, T]) -> T:
        """Run ``coroutine`` in the loop and return its result (or raise)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


_loop: LoopThread | None = None


def loop() -> LoopThread:
    """The process's :class:`LoopThread`, started on first use."""
    global _loop
    if _loop is None:
        _loop = LoopThread()
        atexit.register(_loop.close)
    return _loop


class Blocking(Store):
    """A synchronous view of an asyncio store, implementing the same
    optional methods; its calls run in :func:`loop`.
    """

    def __new__(cls, store: AsyncStore) -> Blocking:
        missing = frozenset(name for name in OPTIONAL_METHODS if not implements(store, name))
        return t.cast("Blocking", super().__new__(without_methods(cls, Store, missing)))

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._run = loop().run

    def __repr__(self) -> str:
        return f"Blocking({self.store!r})"

    @property
    def ttl(self) -> int:  # type: ignore[override]
        return self.store.ttl

    @property
    def max_size(self) -> int:  # type: ignore[override]
        return self.store.max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self.store.max_size = value

    def get(self, sid: str) -> Document | None:
        return self._run(self.store.get(sid))

    def set(self, sid: str, session: Document) -> None:
        self._run(self.store.set(sid, session))

    def destroy(self, sid: str) -> bool | None:
        return self._run(self.store.destroy(sid))

    def touch(self, sid: str, session: Document) -> None:
        self._run(self.store.touch(sid, session))

    def get_and_touch(self, sid: str) -> Document | None:
        return self._run(self.store.get_and_touch(sid))

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        return self._run(self.store.merge(sid, changes, list(removed)))

    def all(self) -> dict[str, Document]:
        return self._run(self.store.all())

    def length(self) -> int:
        return self._run(self.store.length())

    def clear(self) -> int | None:
        return self._run(self.store.clear())

    def prune(self) -> int:
        return self._run(self.store.prune())

    def index_add(self, user: str, sid: str, until: float) -> None:
        self._run(self.store.index_add(user, sid, until))

    def index_remove(self, user: str, sid: str) -> None:
        self._run(self.store.index_remove(user, sid))

    def index_sessions(self, user: str) -> dict[str, Document]:
        return self._run(self.store.index_sessions(user))

    def index_revoke(self, user: str, at: float, until: float) -> None:
        self._run(self.store.index_revoke(user, at, until))

    def index_revoked(self, user: str) -> float | None:
        return self._run(self.store.index_revoked(user))

    def index_prune(self) -> int:
        return self._run(self.store.index_prune())
