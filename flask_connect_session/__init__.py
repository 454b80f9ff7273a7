"""Server-side sessions for Flask, compatible with Node's express-session."""

from __future__ import annotations

from .cookie import Cookie
from .errors import SessionNotFound
from .errors import StoreError
from .extension import ConnectSession
from .stores.base import Store
from .stores.cachelib import CachelibStore
from .stores.filesystem import FileSystemStore
from .stores.memory import MemoryStore
from .stores.redis import RedisStore

__all__ = [
    "CachelibStore",
    "ConnectSession",
    "Cookie",
    "FileSystemStore",
    "MemoryStore",
    "RedisStore",
    "SessionNotFound",
    "Store",
    "StoreError",
]
