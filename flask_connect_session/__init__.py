"""Server-side sessions for Flask, compatible with Node's express-session."""

from __future__ import annotations

from .cookie import Cookie
from .errors import SessionNotFound
from .errors import StoreError
from .extension import ConnectSession
from .signals import session_created
from .signals import session_destroyed
from .signals import session_regenerated
from .stores.base import Store
from .stores.cachelib import CachelibStore
from .stores.filesystem import FileSystemStore
from .stores.memory import MemoryStore
from .stores.redis import RedisStore
from .users import SessionInfo

__all__ = [
    "CachelibStore",
    "ConnectSession",
    "Cookie",
    "FileSystemStore",
    "MemoryStore",
    "RedisStore",
    "SessionInfo",
    "SessionNotFound",
    "Store",
    "StoreError",
    "session_created",
    "session_destroyed",
    "session_regenerated",
]
