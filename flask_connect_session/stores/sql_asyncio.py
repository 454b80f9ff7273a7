"""Sessions in a SQL table for asyncio apps, through SQLAlchemy's asyncio
engine: :class:`~.sql.SQLStore`'s table, statements and guarantees, with an
asyncio database driver.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import functools
import typing as t

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import greenlet_spawn

from .base import DEFAULT_TTL
from .sql import PRUNE_INTERVAL
from .sql import SQLStore
from .threaded import P
from .threaded import SyncBackedStore
from .threaded import T

#: The asyncio driver a SQLAlchemy URL without one gets, by backend.
DEFAULT_DRIVERS = {"postgresql": "psycopg", "sqlite": "aiosqlite"}

#: Drivers SQLAlchemy's asyncio engine runs on (``psycopg`` is psycopg 3,
#: which has both).
ASYNC_DRIVERS = frozenset(
    ("psycopg", "psycopg_async", "asyncpg", "aiomysql", "asyncmy", "aiosqlite")
)


def async_url(url: sa.URL) -> sa.URL | None:
    """The URL to give SQLAlchemy's asyncio engine for ``url``: the same,
    with :data:`DEFAULT_DRIVERS`' driver where it names none
    (``postgresql://`` is ``postgresql+psycopg://``, psycopg 3's asyncio
    side; ``sqlite:///`` is ``sqlite+aiosqlite:///``); ``None`` for a
    driver that has no asyncio side (``psycopg2``, ``pymysql``...).
    """
    backend, plus, driver = url.drivername.partition("+")
    if not plus:
        default = DEFAULT_DRIVERS.get(backend)
        return None if default is None else url.set(drivername=f"{backend}+{default}")
    return url if driver in ASYNC_DRIVERS else None


def _await(awaitable: cabc.Awaitable[T]) -> T:
    # sqlalchemy.util.await_only, named await_ since SQLAlchemy 2.1.
    from sqlalchemy import util

    wait: cabc.Callable[[cabc.Awaitable[T]], T] = getattr(util, "await_", None) or util.await_only
    return wait(awaitable)


class _GreenletLock:
    """A lock for code that runs in SQLAlchemy's greenlets: waiting for it
    lets the event loop run (a thread lock would block the loop, and with it
    the task holding the lock).
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    def __enter__(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        _await(self._lock.acquire())

    def __exit__(self, *exc_info: object) -> None:
        assert self._lock is not None
        self._lock.release()


class _GreenletSQLStore(SQLStore):
    """:class:`SQLStore` on the synchronous face of an asyncio engine: its
    methods run in :func:`~sqlalchemy.util.greenlet_spawn`, where each
    statement is awaited on the asyncio driver (as SQLAlchemy's own asyncio
    API does), and its pauses, locks and background prunes are the event
    loop's.
    """

    #: The asyncio engine.
    async_engine: AsyncEngine

    def __init__(self, engine_or_url: AsyncEngine | sa.URL, **options: t.Any) -> None:
        self._tasks: set[asyncio.Task[t.Any]] = set()
        if isinstance(engine_or_url, AsyncEngine):
            self.async_engine = engine_or_url
            super().__init__(engine_or_url.sync_engine, **options)
        else:
            super().__init__(engine_or_url, **options)

    def _create_engine(self, url: sa.URL, **options: t.Any) -> sa.Engine:
        self.async_engine = create_async_engine(url, **options)
        return self.async_engine.sync_engine

    def _new_lock(self) -> t.ContextManager[t.Any]:
        return _GreenletLock()

    def _pause(self, seconds: float) -> None:
        _await(asyncio.sleep(seconds))

    def _start_background_prune(self) -> None:
        task = asyncio.get_running_loop().create_task(greenlet_spawn(self._background_prune))
        # The loop keeps only a weak reference to its tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class AsyncSQLStore(SyncBackedStore):
    """:class:`~flask_connect_session.SQLStore` for asyncio apps (Quart),
    through SQLAlchemy's asyncio engine (extra ``[quart]``): the same table
    (connect-pg-simple's, plus ``user_id``), the same statements, row locks
    and retries, errors without parameters (:class:`~.sql.SQLStoreError`),
    private SQLite files and automatic prunes (an asyncio task instead of a
    thread). Each call runs the synchronous store's code in a greenlet that
    awaits the asyncio driver at each statement, as SQLAlchemy's asyncio
    API itself does, so the event loop never waits on the database.

    :param engine_or_url: an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`,
        or a URL with an asyncio driver: ``postgresql+psycopg://`` (psycopg
        3), ``postgresql+asyncpg://``, ``mysql+aiomysql://``,
        ``mariadb+aiomysql://``, ``sqlite+aiosqlite:///``; a URL without a
        driver gets one (see :func:`async_url`).
    :param table: ``"table"`` or ``"schema.table"``.
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.
    :param create_table: create the table (and indexes) if missing.
    :param prune_interval: mean seconds between automatic prunes; ``None``
        turns them off.
    :raises ValueError: the URL's driver has no asyncio side.

    .. versionadded:: 0.1
    """

    store: _GreenletSQLStore

    def __init__(
        self,
        engine_or_url: AsyncEngine | str | sa.URL,
        *,
        table: str = "session",
        ttl: int = DEFAULT_TTL,
        create_table: bool = True,
        prune_interval: float | None = PRUNE_INTERVAL,
    ) -> None:
        if not isinstance(engine_or_url, AsyncEngine):
            url = sa.make_url(engine_or_url)
            given = url
            url = async_url(url)  # type: ignore[assignment]
            if url is None:
                shown = given.render_as_string(hide_password=True)
                raise ValueError(f"{shown!r} names a driver without asyncio support")
            engine_or_url = url
        super().__init__(
            _GreenletSQLStore(
                engine_or_url,
                table=table,
                ttl=ttl,
                create_table=create_table,
                prune_interval=prune_interval,
            )
        )

    def __repr__(self) -> str:
        return repr(self.store).replace(type(self.store).__name__, type(self).__name__, 1)

    @property
    def engine(self) -> AsyncEngine:
        """The asyncio engine."""
        return self.store.async_engine

    @property
    def table(self) -> sa.Table:
        """The session table (see :func:`~.sql.session_table`)."""
        return self.store.table

    async def call(self, method: cabc.Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await greenlet_spawn(functools.partial(method, *args, **kwargs))

    async def create_table(self) -> None:
        """See :meth:`SQLStore.create_table <flask_connect_session.SQLStore.create_table>`."""
        await self.call(self.store.create_table)

    def ddl(self) -> str:
        """See :meth:`SQLStore.ddl <flask_connect_session.SQLStore.ddl>`."""
        return self.store.ddl()

    async def dispose(self) -> None:
        """Close the engine's pooled connections."""
        await self.engine.dispose()
