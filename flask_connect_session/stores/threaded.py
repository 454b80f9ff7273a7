"""Asyncio stores that carry out each call on a synchronous store: any
:class:`~.base.Store` in worker threads (:class:`ThreadedStore`).
"""

from __future__ import annotations

import abc
import asyncio
import collections.abc as cabc
import functools
import typing as t

from .base import OPTIONAL_METHODS
from .base import AsyncStore
from .base import Document
from .base import Store
from .base import implements

P = t.ParamSpec("P")
T = t.TypeVar("T")


class SyncBackedStore(AsyncStore):
    """An asyncio store whose every call is a call of the same method on a
    synchronous :class:`~flask_connect_session.Store`, carried out by
    :meth:`call` (in a worker thread, in the event loop itself, in a
    greenlet...). The lifetime (:attr:`ttl`) and size limit
    (:attr:`max_size`) are the synchronous store's.

    :param store: the synchronous store.

    .. versionadded:: 0.1
    """

    def __init__(self, store: Store) -> None:
        #: The synchronous store that does the work.
        self.store = store

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.store!r}>"

    @property
    def ttl(self) -> int:
        """The synchronous store's :attr:`~flask_connect_session.Store.ttl`."""
        return self.store.ttl

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.store.ttl = value

    @property
    def max_size(self) -> int:
        """The synchronous store's :attr:`~flask_connect_session.Store.max_size`."""
        return self.store.max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self.store.max_size = value

    @abc.abstractmethod
    async def call(self, method: cabc.Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Return what ``method(*args, **kwargs)``, a method of the
        synchronous store, returns.
        """

    async def get(self, sid: str) -> Document | None:
        return await self.call(self.store.get, sid)

    async def set(self, sid: str, session: Document) -> None:
        await self.call(self.store.set, sid, session)

    async def destroy(self, sid: str) -> bool | None:
        return await self.call(self.store.destroy, sid)

    async def touch(self, sid: str, session: Document) -> None:
        await self.call(self.store.touch, sid, session)

    async def get_and_touch(self, sid: str) -> Document | None:
        return await self.call(self.store.get_and_touch, sid)

    async def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        return await self.call(self.store.merge, sid, changes, list(removed))

    async def all(self) -> dict[str, Document]:
        return await self.call(self.store.all)

    async def length(self) -> int:
        return await self.call(self.store.length)

    async def clear(self) -> int | None:
        return await self.call(self.store.clear)

    async def prune(self) -> int:
        return await self.call(self.store.prune)

    async def index_add(self, user: str, sid: str, until: float) -> None:
        await self.call(self.store.index_add, user, sid, until)

    async def index_remove(self, user: str, sid: str) -> None:
        await self.call(self.store.index_remove, user, sid)

    async def index_sessions(self, user: str) -> dict[str, Document]:
        return await self.call(self.store.index_sessions, user)

    async def index_revoke(self, user: str, at: float, until: float) -> None:
        await self.call(self.store.index_revoke, user, at, until)

    async def index_revoked(self, user: str) -> float | None:
        return await self.call(self.store.index_revoked, user)

    async def index_prune(self) -> int:
        return await self.call(self.store.index_prune)


class ThreadedStore(SyncBackedStore):
    """Run any synchronous :class:`~flask_connect_session.Store` (a store of
    your own, :class:`~flask_connect_session.FileSystemStore`,
    :class:`~flask_connect_session.CachelibStore` over memcached...) for an
    asyncio app: each call runs in a worker thread
    (:func:`asyncio.to_thread`), so the event loop never waits on the
    backend.

    It implements exactly the optional methods the store implements
    (:func:`~flask_connect_session.stores.base.implements` says the same of
    both), so the session behaves as it would in a Flask app over the same
    store. The store must be thread-safe, as it must for a threaded Flask
    server; the calls in flight at once are at most the event loop's
    default executor's threads.

    :param store: the synchronous store.

    .. versionadded:: 0.1
    """

    def __new__(cls, store: Store) -> ThreadedStore:
        missing = frozenset(name for name in OPTIONAL_METHODS if not implements(store, name))
        return t.cast("ThreadedStore", super().__new__(without_methods(cls, AsyncStore, missing)))

    async def call(self, method: cabc.Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(method, *args, **kwargs)


_C = t.TypeVar("_C", bound=type)


@functools.cache
def without_methods(cls: _C, base: type, missing: frozenset[str]) -> _C:
    """``cls``, or a subclass of it of the same name that leaves the
    methods named in ``missing`` to ``base`` (:class:`AsyncStore` or
    :class:`~.base.Store`: they raise :exc:`NotImplementedError`, or have a
    default), so that :func:`~.base.implements` tells they are not
    implemented.
    """
    if not missing:
        return cls
    namespace: dict[str, t.Any] = {name: getattr(base, name) for name in missing}
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)
    return t.cast(_C, type(cls.__name__, (cls,), namespace))
