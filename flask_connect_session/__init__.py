"""Server-side sessions for Flask, compatible with Node's express-session."""

from __future__ import annotations

import typing as t

from .cookie import Cookie
from .errors import SessionNotFound
from .errors import SessionTooLarge
from .errors import StoreError
from .extension import ConnectSession
from .signals import session_created
from .signals import session_destroyed
from .signals import session_regenerated
from .stores.base import AsyncStore
from .stores.base import Store
from .stores.cachelib import CachelibStore
from .stores.filesystem import FileSystemStore
from .stores.memory import AsyncMemoryStore
from .stores.memory import MemoryStore
from .stores.redis import RedisStore
from .stores.redis_asyncio import AsyncRedisStore
from .stores.threaded import ThreadedStore
from .users import SessionInfo

if t.TYPE_CHECKING:
    from .stores.sql import SQLStore
    from .stores.sql_asyncio import AsyncSQLStore


def __getattr__(name: str) -> t.Any:
    # SQLAlchemy is an optional dependency: import it on first use only.
    if name == "SQLStore":
        try:
            from .stores.sql import SQLStore
        except ImportError as exc:
            raise ImportError(
                f"SQLStore needs SQLAlchemy 2: pip install sqlalchemy ({exc})", name=exc.name
            ) from exc
        return SQLStore
    if name == "AsyncSQLStore":
        try:
            from .stores.sql_asyncio import AsyncSQLStore
        except ImportError as exc:
            raise ImportError(
                f"AsyncSQLStore needs SQLAlchemy 2 and greenlet: pip install sqlalchemy greenlet"
                f" ({exc})",
                name=exc.name,
            ) from exc
        return AsyncSQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncMemoryStore",
    "AsyncRedisStore",
    "AsyncSQLStore",
    "AsyncStore",
    "CachelibStore",
    "ConnectSession",
    "Cookie",
    "FileSystemStore",
    "MemoryStore",
    "RedisStore",
    "SessionInfo",
    "SQLStore",
    "SessionNotFound",
    "SessionTooLarge",
    "Store",
    "StoreError",
    "ThreadedStore",
    "session_created",
    "session_destroyed",
    "session_regenerated",
]
