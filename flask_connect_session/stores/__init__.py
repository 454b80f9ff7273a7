"""Session stores, and building one from a ``CONNECT_SESSION_STORE`` URL."""

from __future__ import annotations

import collections.abc as cabc
import inspect
import math
import os
import sys
import typing as t
from urllib.parse import parse_qsl
from urllib.parse import unquote
from urllib.parse import urlsplit

from .base import AsyncStore
from .base import Store
from .base import redact_url
from .base import scrub_url_secrets
from .memory import AsyncMemoryStore
from .memory import MemoryStore
from .threaded import ThreadedStore

if t.TYPE_CHECKING:
    from ..options import Options

__all__ = [
    "AsyncMemoryStore",
    "AsyncStore",
    "MemoryStore",
    "Store",
    "ThreadedStore",
    "async_store_from_url",
    "build_async_store",
    "store_from_url",
]

_S = t.TypeVar("_S", Store, AsyncStore)


class StoreSettings(t.NamedTuple):
    """The config a URL-built store needs besides its URL."""

    key_prefix: str
    ttl: int
    #: ``CONNECT_SESSION_SQL_TABLE``: ``"table"`` or ``"schema.table"``.
    sql_table: str = "session"
    #: The app's instance folder: where a relative SQLite path points.
    instance_path: str | None = None


def _check_memory_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.netloc or parts.path or parts.query:
        raise ValueError(f"memory:// takes no host, path or query, got {url!r}")


def _memory(url: str, settings: StoreSettings) -> Store:
    _check_memory_url(url)
    return MemoryStore(ttl=settings.ttl)


def _async_memory(url: str, settings: StoreSettings) -> AsyncStore:
    _check_memory_url(url)
    return AsyncMemoryStore(ttl=settings.ttl)


def _redis(url: str, settings: StoreSettings) -> Store:
    # redis-py parses the URL (and raises ValueError) without connecting.
    from .redis import RedisStore

    return RedisStore(url, key_prefix=settings.key_prefix, ttl=settings.ttl)


#: Database numbers a ``redis+sentinel://`` URL may name (Redis' own limit
#: is its ``databases`` setting; this only refuses absurd numbers).
_MAX_DB = 2**31


def _redis_sentinel(url: str, settings: StoreSettings) -> Store:
    from .redis import RedisStore
    from .redis import sentinel_client

    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    # The password never goes into a message.
    shown = redact_url(url)
    names = parts.path.removesuffix("/").split("/")[1:]
    if not hosts or parts.fragment or not 1 <= len(names) <= 2 or not names[0]:
        raise ValueError(
            f"expected {parts.scheme}://[:password@]host:port[,host:port...]/service_name[/db],"
            f" got {shown!r}"
        )
    if len(names) == 2 and not (
        names[1].isascii() and names[1].isdigit() and int(names[1]) < _MAX_DB
    ):
        raise ValueError(f"the database in {shown!r} must be a number below {_MAX_DB}")
    timeouts = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in ("socket_timeout", "socket_connect_timeout"):
            raise ValueError(f"unknown query parameter {name!r} in {shown!r}")
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds < math.inf:
            raise ValueError(f"{name} in {shown!r} must be a positive number of seconds")
        timeouts[name] = seconds
    client = sentinel_client(
        [_host_port(item, 26379, shown) for item in hosts.split(",")],
        unquote(names[0]),
        db=int(names[1]) if len(names) == 2 else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        **timeouts,
    )
    return RedisStore(client, key_prefix=settings.key_prefix, ttl=settings.ttl)


def _file(url: str, settings: StoreSettings) -> Store:
    from .filesystem import FileSystemStore

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file:// takes no host but localhost, got {url!r}")
    path = unquote(parts.path)
    if parts.query or parts.fragment or not path.startswith("/"):
        raise ValueError(f"expected file:///absolute/directory, got {url!r}")
    return FileSystemStore(path, ttl=settings.ttl)


def _memcached(url: str, settings: StoreSettings) -> Store:
    from cachelib import MemcachedCache

    from .cachelib import CachelibStore
    from .cachelib import memcached_client

    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"expected memcached://host:port[,host:port...], got {url!r}")
    servers = [_host_port(item, 11211, url) for item in parts.netloc.split(",")]
    cache = MemcachedCache(memcached_client(servers))
    return CachelibStore(cache, key_prefix=settings.key_prefix, ttl=settings.ttl)


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    """Split ``host[:port]`` or ``[v6 address][:port]``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port = text.partition(":")
    if not host or not (port == "" or port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad server {text!r} in {url!r}")
    return host, int(port) if port else default_port


def _sql(url: str, settings: StoreSettings) -> Store:
    # A missing SQLAlchemy or driver is reported by store_from_url.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .sql import SQLStore

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # The message may quote the URL: drop it, name the URL redacted.
        raise ValueError(f"malformed SQLAlchemy URL {redact_url(url)!r}") from exc
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not os.path.isabs(database)
        and settings.instance_path is not None
    ):
        # Relative to the instance folder, as Flask-SQLAlchemy resolves it;
        # one made here is private, as the database file will be.
        os.makedirs(settings.instance_path, mode=0o700, exist_ok=True)
        parsed = parsed.set(database=os.path.join(settings.instance_path, database))
    try:
        # Builds the engine (importing the driver) without connecting.
        return SQLStore(parsed, table=settings.sql_table, ttl=settings.ttl)
    except ArgumentError as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise ValueError(f"cannot use {shown!r}: {exc}") from None


#: URL scheme -> factory building the store. The factory raises
#: :exc:`ValueError` for a malformed URL.
FACTORIES: dict[str, cabc.Callable[[str, StoreSettings], Store]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
    "valkey": _redis,
    "valkeys": _redis,
    "redis+sentinel": _redis_sentinel,
    "valkey+sentinel": _redis_sentinel,
    "file": _file,
    "memcached": _memcached,
    # SQLAlchemy URLs; a key ending in "+" takes any driver ("postgresql+psycopg").
    "postgresql": _sql,
    "postgresql+": _sql,
    "mysql+": _sql,
    "mariadb+": _sql,
    "sqlite": _sql,
    "sqlite+": _sql,
}


def _threaded(
    factory: cabc.Callable[[str, StoreSettings], Store],
) -> cabc.Callable[[str, StoreSettings], AsyncStore]:
    """The asyncio factory of a scheme served by a synchronous store: that
    store, in worker threads.
    """
    return lambda url, settings: ThreadedStore(factory(url, settings))


#: URL scheme -> factory building the asyncio store (:func:`async_store_from_url`):
#: the scheme's synchronous store in worker threads unless an asyncio one
#: serves it.
ASYNC_FACTORIES: dict[str, cabc.Callable[[str, StoreSettings], AsyncStore]] = {
    **{scheme: _threaded(factory) for scheme, factory in FACTORIES.items()},
    "memory": _async_memory,
}


#: Schemes other libraries accept that mean one of ours.
SCHEME_ALIASES = {"postgres": "postgresql"}

#: The package to ``pip install`` for each module a store URL may need, by
#: top-level module name (the others are named as their module is).
PACKAGES = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
}


def missing_package(exc: ImportError) -> str | None:
    """Describe the package an :exc:`ImportError` shows to be missing, with
    the command that installs it (``"needs redis, which is not installed:
    pip install redis"``); ``None`` if the module is not a third-party one.
    """
    module = (exc.name or "").partition(".")[0]
    if not module or module == __name__.partition(".")[0]:
        return None
    return f"needs {module}, which is not installed: pip install {PACKAGES.get(module, module)}"


def store_from_url(url: str, settings: StoreSettings) -> Store:
    """Build the store a ``CONNECT_SESSION_STORE`` URL names.

    :raises ValueError: the scheme is unknown, the URL malformed, or a
        package the store needs (its client, SQLAlchemy, the database
        driver) is not installed; the message names the package to install.
        It never holds the URL's password.
    """
    return _from_url(url, settings, FACTORIES)


def async_store_from_url(url: str, settings: StoreSettings) -> AsyncStore:
    """Build the asyncio store a ``CONNECT_SESSION_STORE`` URL names, for
    an asyncio app (Quart): the same URLs as :func:`store_from_url`, each
    served by an asyncio store where there is one (``memory://``), else by
    its synchronous store in worker threads (:class:`ThreadedStore`).

    :raises ValueError: as :func:`store_from_url`.
    """
    return _from_url(url, settings, ASYNC_FACTORIES)


def _from_url(
    url: str,
    settings: StoreSettings,
    factories: cabc.Mapping[str, cabc.Callable[[str, StoreSettings], _S]],
) -> _S:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    base, plus, driver = scheme.partition("+")
    factory = factories.get(scheme)
    if factory is None and plus:
        factory = factories.get(base + plus)
    if factory is None:
        known = ", ".join(
            f"{name}driver://" if name.endswith("+") else f"{name}://" for name in factories
        )
        hint = ""
        if base in SCHEME_ALIASES:
            hint = f"; did you mean {SCHEME_ALIASES[base]}{plus}{driver}://?"
        raise ValueError(f"unknown store URL scheme in {redact_url(url)!r}{hint} (known: {known})")
    try:
        return factory(url, settings)
    except ImportError as exc:
        missing = missing_package(exc)
        if missing is None:
            raise
        message = f"{redact_url(url)!r} {missing}"
    except ValueError as exc:
        message = scrub_url_secrets(str(exc), url)
    # Raised outside the handler, so nothing chains to the original error,
    # whose message may quote the password.
    raise ValueError(message)


def store_from_value(value: object, settings: StoreSettings) -> Store | None:
    """Return the store for a ``CONNECT_SESSION_STORE`` value that is not a
    URL: a :class:`Store` as is; a SQLAlchemy ``Engine`` (a ``SQLStore``), a
    cachelib cache (a ``CachelibStore``), a redis-py or valkey client, plain
    or cluster (a ``RedisStore``); ``None`` for anything else, asyncio
    clients included.
    """
    if isinstance(value, Store):
        return value
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy is not None and isinstance(value, sqlalchemy.Engine):
        from .sql import SQLStore

        return SQLStore(value, table=settings.sql_table, ttl=settings.ttl)
    from cachelib import BaseCache

    if isinstance(value, BaseCache):
        from .cachelib import CachelibStore

        return CachelibStore(value, key_prefix=settings.key_prefix, ttl=settings.ttl)
    # Duck-typed, so neither redis-py nor valkey has to be installed here.
    if callable(getattr(value, "register_script", None)) and not is_async_client(value):
        from .redis import RedisStore

        return RedisStore(value, key_prefix=settings.key_prefix, ttl=settings.ttl)
    return None


def is_async_client(value: object) -> bool:
    """Whether ``value`` is an asyncio Redis client (``redis.asyncio``,
    ``valkey.asyncio``: their commands are coroutines).
    """
    return inspect.iscoroutinefunction(getattr(value, "execute_command", None))


def build_async_store(options: Options, app: t.Any = None) -> AsyncStore:
    """Return the asyncio store ``CONNECT_SESSION_STORE`` names, for an
    asyncio app (Quart): an :class:`AsyncStore` as is; a URL through
    :func:`async_store_from_url`; any value a Flask app takes (a
    :class:`Store`, a cachelib cache, a redis-py client, a SQLAlchemy
    ``Engine``) as its synchronous store in worker threads
    (:class:`ThreadedStore`).

    :param options: the app's parsed config.
    :param app: the app being set up: its ``instance_path`` holds relative
        SQLite paths.
    :raises ValueError: the value is none of these, or the URL is malformed;
        the message names the key.
    """
    value = options.store
    if isinstance(value, AsyncStore):
        return value
    settings = StoreSettings(
        options.key_prefix, options.ttl, options.sql_table, getattr(app, "instance_path", None)
    )
    if isinstance(value, str):
        try:
            return async_store_from_url(value, settings)
        except ValueError as exc:
            raise ValueError(f"CONNECT_SESSION_STORE: {exc}") from exc
    store = store_from_value(value, settings)
    if store is None:
        raise ValueError(
            "CONNECT_SESSION_STORE: expected a URL, a Store, an AsyncStore, a cachelib"
            f" cache, a Redis client or a SQLAlchemy engine, got {value!r}"
        )
    return ThreadedStore(store)
