"""Server-side sessions for Flask, compatible with Node's express-session."""

from __future__ import annotations

from .cookie import Cookie
from .errors import SessionNotFound
from .errors import StoreError
from .extension import ConnectSession
from .stores.base import Store
from .stores.memory import MemoryStore

__all__ = [
    "ConnectSession",
    "Cookie",
    "MemoryStore",
    "SessionNotFound",
    "Store",
    "StoreError",
]
