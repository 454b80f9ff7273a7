"""Session stores, and building one from a ``CONNECT_SESSION_STORE`` URL."""

from __future__ import annotations

import collections.abc as cabc
import typing as t
from urllib.parse import urlsplit

from .base import Store
from .memory import MemoryStore

__all__ = ["MemoryStore", "Store", "store_from_url"]


class StoreSettings(t.NamedTuple):
    """The config a URL-built store needs besides its URL."""

    key_prefix: str
    ttl: int


def _memory(url: str, settings: StoreSettings) -> Store:
    parts = urlsplit(url)
    if parts.netloc or parts.path or parts.query:
        raise ValueError(f"memory:// takes no host, path or query, got {url!r}")
    return MemoryStore(ttl=settings.ttl)


#: URL scheme -> factory building the store. The factory raises
#: :exc:`ValueError` for a malformed URL.
FACTORIES: dict[str, cabc.Callable[[str, StoreSettings], Store]] = {
    "memory": _memory,
}


def store_from_url(url: str, settings: StoreSettings) -> Store:
    """Build the store a ``CONNECT_SESSION_STORE`` URL names.

    :raises ValueError: the scheme is unknown or the URL malformed.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    factory = FACTORIES.get(scheme)
    if factory is None:
        known = ", ".join(f"{name}://" for name in FACTORIES)
        raise ValueError(f"unknown store URL scheme in {url!r} (known: {known})")
    return factory(url, settings)
