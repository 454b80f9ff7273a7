"""What the session core asks its driver to do, as typed values.

The core (:mod:`.core`) does no I/O: its operations are generators that
yield a :class:`Call` whenever they need the store (or a signal sent, or a
legacy session read) and receive the call's result back
(``document: Document | None = yield Get(sid)``), as h11's protocol
objects hand events to the code that owns the socket. A driver runs them:
:func:`run` for Flask, calling the store directly, and
:func:`run_async` for Quart, awaiting an asyncio store. Each call knows
how to run on both, so mypy checks every store call and neither driver
branches on what a call is.

Whatever a store raises becomes a :class:`~.errors.StoreError` here, in one
place, and is thrown into the core's generator, which sees it exactly as if
it had called the store itself; :class:`~.errors.CorruptDocument` (an entry
that cannot be decoded) and :class:`~.errors.SessionTooLarge` (data too big
to store), which are not backend failures, pass through unchanged.
"""

from __future__ import annotations

import abc
import asyncio
import collections.abc as cabc
import logging
import typing as t

from .errors import CorruptDocument
from .errors import SessionTooLarge
from .errors import StoreError
from .errors import scrub

if t.TYPE_CHECKING:
    from blinker import NamedSignal

    from .document import Document
    from .stores.base import AsyncStore
    from .stores.base import Store

logger = logging.getLogger("flask_connect_session")

T = t.TypeVar("T")
T_co = t.TypeVar("T_co", covariant=True)

#: A core operation: yields calls, receives their results, returns a ``T``.
Steps = cabc.Generator["Call[t.Any]", t.Any, T]


class Environment(t.Protocol):
    """What a synchronous driver gives the calls it runs."""

    @property
    def store(self) -> Store:
        """The session store."""

    def send_signal(
        self, signal: NamedSignal, with_session: bool, kwargs: dict[str, t.Any]
    ) -> None:
        """Send a signal with the app as sender and ``kwargs``, adding the
        request's session as ``session=`` if asked to.
        """

    def take_over(self) -> t.Any:
        """Run the legacy-session takeover hook for this request."""


class AsyncEnvironment(t.Protocol):
    """What an asynchronous driver gives the calls it runs."""

    @property
    def store(self) -> AsyncStore:
        """The session store."""

    def send_signal(
        self, signal: NamedSignal, with_session: bool, kwargs: dict[str, t.Any]
    ) -> None:
        """Send a signal with the app as sender and ``kwargs``, adding the
        request's session as ``session=`` if asked to.
        """

    def take_over(self) -> t.Any:
        """Run the legacy-session takeover hook for this request (blocking:
        it runs in a worker thread).
        """


class Call(abc.ABC, t.Generic[T_co]):
    """One thing the core needs done outside itself."""

    __slots__ = ()

    @abc.abstractmethod
    def run(self, env: Environment) -> T_co:
        """Do it synchronously and return the result."""

    @abc.abstractmethod
    async def run_async(self, env: AsyncEnvironment) -> T_co:
        """Do it in an event loop and return the result."""


# -- store calls -------------------------------------------------------------


class StoreCall(Call[T_co]):
    """A call of one store method. A failure is logged and raised as a
    :class:`StoreError` naming the store, the method and a short id prefix.
    """

    __slots__ = ()

    #: The store method, for error messages.
    operation: t.ClassVar[str]

    @abc.abstractmethod
    def call(self, store: Store) -> T_co:
        """Call the synchronous store."""

    @abc.abstractmethod
    async def call_async(self, store: AsyncStore) -> T_co:
        """Call the asynchronous store."""

    def named(self) -> str | None:
        """The session id the call is about, for the error message."""
        return None

    def run(self, env: Environment) -> T_co:
        try:
            return self.call(env.store)
        except (CorruptDocument, SessionTooLarge):
            raise
        except Exception as exc:
            raise self._error(env.store, exc) from exc

    async def run_async(self, env: AsyncEnvironment) -> T_co:
        try:
            return await self.call_async(env.store)
        except (CorruptDocument, SessionTooLarge):
            raise
        except Exception as exc:
            raise self._error(env.store, exc) from exc

    def _error(self, store: object, exc: Exception) -> StoreError:
        scrub(exc)
        error = StoreError(store, self.operation, self.named(), exc)
        logger.error("session store %s", error)
        return error


class _SessionCall(StoreCall[T_co]):
    """A store call about one session."""

    __slots__ = ("sid",)

    def __init__(self, sid: str) -> None:
        #: The session's store id.
        self.sid = sid

    def named(self) -> str | None:
        return self.sid


class Get(_SessionCall["Document | None"]):
    """:meth:`Store.get`."""

    __slots__ = ()
    operation = "get"

    def call(self, store: Store) -> Document | None:
        return store.get(self.sid)

    async def call_async(self, store: AsyncStore) -> Document | None:
        return await store.get(self.sid)


class GetAndTouch(_SessionCall["Document | None"]):
    """:meth:`Store.get_and_touch`."""

    __slots__ = ()
    operation = "get_and_touch"

    def call(self, store: Store) -> Document | None:
        return store.get_and_touch(self.sid)

    async def call_async(self, store: AsyncStore) -> Document | None:
        return await store.get_and_touch(self.sid)


class _DocumentCall(_SessionCall[None]):
    """A store call writing a whole session document."""

    __slots__ = ("document",)

    def __init__(self, sid: str, document: Document) -> None:
        self.sid = sid
        #: The document to write.
        self.document = document


class Set(_DocumentCall):
    """:meth:`Store.set`."""

    __slots__ = ()
    operation = "set"

    def call(self, store: Store) -> None:
        store.set(self.sid, self.document)

    async def call_async(self, store: AsyncStore) -> None:
        await store.set(self.sid, self.document)


class Touch(_DocumentCall):
    """:meth:`Store.touch`."""

    __slots__ = ()
    operation = "touch"

    def call(self, store: Store) -> None:
        store.touch(self.sid, self.document)

    async def call_async(self, store: AsyncStore) -> None:
        await store.touch(self.sid, self.document)


class Merge(_SessionCall[bool]):
    """:meth:`Store.merge`."""

    __slots__ = ("changes", "removed")
    operation = "merge"

    def __init__(self, sid: str, changes: dict[str, t.Any], removed: list[str]) -> None:
        self.sid = sid
        self.changes = changes
        self.removed = removed

    def call(self, store: Store) -> bool:
        return store.merge(self.sid, self.changes, self.removed)

    async def call_async(self, store: AsyncStore) -> bool:
        return await store.merge(self.sid, self.changes, self.removed)


class Destroy(_SessionCall["bool | None"]):
    """:meth:`Store.destroy`: whether it removed a live session (``None``:
    the store cannot tell).
    """

    __slots__ = ()
    operation = "destroy"

    def call(self, store: Store) -> bool | None:
        return store.destroy(self.sid)

    async def call_async(self, store: AsyncStore) -> bool | None:
        return await store.destroy(self.sid)


class _UserCall(StoreCall[T_co]):
    """A store call on one user's index (never shown as a session id)."""

    __slots__ = ("user",)

    def __init__(self, user: str) -> None:
        #: The user.
        self.user = user


class _EntryCall(_UserCall[None]):
    """A store call on one session's entry in a user's index."""

    __slots__ = ("sid",)

    def __init__(self, user: str, sid: str) -> None:
        self.user = user
        #: The session's store id.
        self.sid = sid

    def named(self) -> str | None:
        return self.sid


class IndexAdd(_EntryCall):
    """:meth:`Store.index_add`."""

    __slots__ = ("until",)
    operation = "index_add"

    def __init__(self, user: str, sid: str, until: float) -> None:
        super().__init__(user, sid)
        self.until = until

    def call(self, store: Store) -> None:
        store.index_add(self.user, self.sid, self.until)

    async def call_async(self, store: AsyncStore) -> None:
        await store.index_add(self.user, self.sid, self.until)


class IndexRemove(_EntryCall):
    """:meth:`Store.index_remove`."""

    __slots__ = ()
    operation = "index_remove"

    def call(self, store: Store) -> None:
        store.index_remove(self.user, self.sid)

    async def call_async(self, store: AsyncStore) -> None:
        await store.index_remove(self.user, self.sid)


class IndexSessions(_UserCall["dict[str, Document]"]):
    """:meth:`Store.index_sessions`."""

    __slots__ = ()
    operation = "index_sessions"

    def call(self, store: Store) -> dict[str, Document]:
        return store.index_sessions(self.user)

    async def call_async(self, store: AsyncStore) -> dict[str, Document]:
        return await store.index_sessions(self.user)


class IndexRevoke(_UserCall[None]):
    """:meth:`Store.index_revoke`."""

    __slots__ = ("at", "until")
    operation = "index_revoke"

    def __init__(self, user: str, at: float, until: float) -> None:
        self.user = user
        self.at = at
        self.until = until

    def call(self, store: Store) -> None:
        store.index_revoke(self.user, self.at, self.until)

    async def call_async(self, store: AsyncStore) -> None:
        await store.index_revoke(self.user, self.at, self.until)


class IndexRevoked(_UserCall["float | None"]):
    """:meth:`Store.index_revoked`."""

    __slots__ = ()
    operation = "index_revoked"

    def call(self, store: Store) -> float | None:
        return store.index_revoked(self.user)

    async def call_async(self, store: AsyncStore) -> float | None:
        return await store.index_revoked(self.user)


# -- other calls -------------------------------------------------------------


class Notify(Call[None]):
    """Send a signal with the app as sender (after the store change it
    reports succeeded).

    :param with_session: add the request's session as ``session=``.
    """

    __slots__ = ("signal", "kwargs", "with_session")

    def __init__(
        self, signal: NamedSignal, *, with_session: bool = False, **kwargs: t.Any
    ) -> None:
        self.signal = signal
        self.kwargs = kwargs
        self.with_session = with_session

    def run(self, env: Environment) -> None:
        env.send_signal(self.signal, self.with_session, self.kwargs)

    async def run_async(self, env: AsyncEnvironment) -> None:
        env.send_signal(self.signal, self.with_session, self.kwargs)


class TakeOver(Call[t.Any]):
    """Ask the legacy-session takeover hook for this request's legacy
    session (see :mod:`.migrate`); its legacy store is synchronous, so an
    asynchronous driver runs it in a worker thread.
    """

    __slots__ = ()

    def run(self, env: Environment) -> t.Any:
        return env.take_over()

    async def run_async(self, env: AsyncEnvironment) -> t.Any:
        return await asyncio.to_thread(env.take_over)


class Blocking(Call[T_co]):
    """Run a blocking function (a legacy store's cleanup); an asynchronous
    driver runs it in a worker thread.
    """

    __slots__ = ("function",)

    def __init__(self, function: cabc.Callable[[], T_co]) -> None:
        self.function = function

    def run(self, env: Environment) -> T_co:
        return self.function()

    async def run_async(self, env: AsyncEnvironment) -> T_co:
        return await asyncio.to_thread(self.function)


# -- drivers -----------------------------------------------------------------


def run(steps: Steps[T], env: Environment) -> T:
    """Run a core operation synchronously: carry out each call it yields
    and send back the result, or throw in the exception the call raised.
    """
    send = steps.send
    try:
        call = send(None)
        while True:
            try:
                result = call.run(env)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(steps: Steps[T], env: AsyncEnvironment) -> T:
    """Run a core operation in an event loop, awaiting each call it yields."""
    send = steps.send
    try:
        call = send(None)
        while True:
            try:
                result = await call.run_async(env)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
