"""Sessions in any cachelib cache (memcached, MongoDB, DynamoDB, uWSGI...),
always as JSON.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import json
import pickle
import random
import re
import threading
import time
import typing as t

from cachelib import BaseCache
from cachelib import MemcachedCache
from cachelib import SimpleCache
from cachelib.serializers import BaseSerializer

from ..document import decode
from ..errors import CorruptDocument
from .base import DEFAULT_TTL
from .base import Document
from .base import Store
from .base import apply_changes
from .base import document_ttl
from .base import to_utf8
from .base import touched_ttl

#: Socket and connect timeout, in seconds, of the memcached clients built
#: for ``memcached://`` URLs.
SOCKET_TIMEOUT = 5.0

#: How many times :meth:`CachelibStore.merge` on memcached re-reads a session
#: that another request changed between its read and its write (with a short
#: random pause, growing up to 10 ms, so racing merges spread out).
CAS_ATTEMPTS = 100

#: Seconds a generic cachelib backend remembers that a session was destroyed,
#: so that a save already under way in another process (longer than any
#: request) undoes its write instead of bringing the session back.
TOMBSTONE_TTL = 3600

#: memcached reads an expiry longer than this (30 days) as a Unix time.
_MEMCACHED_MAX_RELATIVE = 30 * 24 * 3600
#: The latest Unix time memcached accepts (a signed 32-bit number).
_MEMCACHED_MAX_TIME = 2**31 - 1


class CachelibStore(Store):
    """Keep sessions in a `cachelib <https://cachelib.readthedocs.io>`_ cache:
    memcached, MongoDB, DynamoDB, uWSGI, the file system, or any other
    :class:`cachelib.BaseCache`.

    Keys are ``<key_prefix><sid>`` (after the cache's own prefix); values are
    the session document as JSON text, never pickle: cachelib's serializers
    pickle, and a pickle planted in the backend would run code when read. So
    the store works on a copy of the cache whose serializer reads and writes
    JSON only (your cache object is left as it is), and goes around cachelib
    where the pickling happens in the client:

    - ``MemcachedCache`` over a pymemcache client (what ``memcached://``
      URLs build) is driven through the client, which returns raw bytes:
      lifetimes use memcached's own ``touch`` (plus one second, as
      memcached's clock ticks in whole seconds; past 30 days they are sent as
      Unix times, as memcached requires), and :meth:`merge` is atomic with
      ``gets``/``cas`` (retried if another request wrote in between).
      A client that deserializes values (a pymemcache ``serde``, or pylibmc,
      python-memcached, libmc, which all unpickle values flagged as pickles)
      is refused with :exc:`ValueError`. Backend errors raise (a
      pymemcache client built with ``ignore_exc=True`` hides them).
    - ``RedisCache`` and ``ValkeyCache`` are served by a
      :class:`~flask_connect_session.RedisStore` on their client, with the
      cache's key prefix: connect-redis' format and an atomic :meth:`merge`.
    - Any other cache goes through cachelib's ``get``/``set``/``delete``
      with an explicit timeout (the cookie's remaining lifetime, else
      ``ttl``, plus one second as cachelib counts whole seconds). cachelib
      has no compare-and-set and no "extend lifetime", so a logout must not
      race a read-then-write: ``SimpleCache`` lives in this process, and one
      lock orders every write, touch and destroy of the store, so it is
      exact (touches included). On the others (``FileSystemCache``,
      MongoDB, DynamoDB, uWSGI, shared by processes) **reading a session
      never writes it**: :meth:`touch` does nothing and :meth:`get_and_touch`
      only reads, so a session's lifetime runs from its last save, not its
      last use (a user active for longer than the lifetime without changing
      the session is logged out; give ``ttl`` or ``max_age`` room, or use a
      store that touches: Redis, memcached, files). :meth:`merge` reads then
      writes, under a lock within the process; a :meth:`destroy` leaves a
      tombstone key (``<key_prefix><sid>\x00destroyed``, kept
      :data:`TOMBSTONE_TTL` seconds), and a merge that finds one before or
      after its write writes nothing or deletes what it wrote, so a logout
      stays a logout (another request may see the session for the instant
      between that write and its deletion). Two overlapping merges from
      different processes can still lose one's changes. cachelib also turns
      backend failures into ``None``/``False``: a failed write raises here,
      but a failed read looks like a missing session. ``FileSystemCache`` evicts entries beyond its
      ``threshold`` (500 by default), live sessions included; prefer
      :class:`~flask_connect_session.FileSystemStore`. A cache class with no
      ``serializer`` decodes values its own way: make sure it never unpickles.

    cachelib cannot list keys, so this store does not implement :meth:`all`,
    :meth:`length` and :meth:`clear` (they raise :exc:`NotImplementedError`,
    and ``flask session list/count/clear`` say so), whatever the backend;
    use :class:`~flask_connect_session.RedisStore` directly for a Redis that
    lists sessions. Backends expire entries themselves: :meth:`prune` returns
    0.

    :param cache: the cache.
    :param key_prefix: prefix of the session keys.
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.
    :raises ValueError: the cache would unpickle what it reads.

    .. versionadded:: 0.1
    """

    def __init__(
        self, cache: BaseCache, *, key_prefix: str = "sess:", ttl: int = DEFAULT_TTL
    ) -> None:
        #: The cache, as given.
        self.cache = cache
        #: Prefix of the session keys (after the cache's own prefix).
        self.key_prefix = key_prefix
        self.ttl = ttl
        self._backend = _backend_for(cache, key_prefix, ttl)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cache!r} prefix={self.key_prefix!r}>"

    @property
    def max_size(self) -> int:  # the backend store checks it
        """Largest document a write may store (see :attr:`Store.max_size`)."""
        return self._backend.max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._backend.max_size = value

    def get(self, sid: str) -> Document | None:
        return self._backend.get(sid)

    def get_and_touch(self, sid: str) -> Document | None:
        return self._backend.get_and_touch(sid)

    def set(self, sid: str, session: Document) -> None:
        self._backend.set(sid, session)

    def destroy(self, sid: str) -> bool | None:
        return self._backend.destroy(sid)

    def touch(self, sid: str, session: Document) -> None:
        self._backend.touch(sid, session)

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        return self._backend.merge(sid, changes, removed)


def _backend_for(cache: BaseCache, key_prefix: str, ttl: int) -> Store:
    """Return the store that does the work for ``cache``."""
    redis_client = _redis_client(cache)
    if redis_client is not None:
        from .redis import RedisStore

        return RedisStore(redis_client, key_prefix=_cache_prefix(cache) + key_prefix, ttl=ttl)
    if isinstance(cache, MemcachedCache):
        client = getattr(cache, "_client", None)
        if not _is_raw_pymemcache(client):
            raise ValueError(
                f"CachelibStore cannot use MemcachedCache over {type(client).__name__}:"
                " it unpickles values flagged as pickles, so a value planted in"
                " memcached could run code. Use a memcached:// URL, or a pymemcache"
                " Client, PooledClient or HashClient created without serde,"
                " serializer or deserializer."
            )
        return _MemcachedStore(client, _cache_prefix(cache) + key_prefix, ttl)
    if isinstance(getattr(cache, "serializer", None), BaseSerializer):
        # A copy, so the application's own use of the cache keeps pickling.
        cache = copy.copy(cache)
        cache.serializer = JSONSerializer()  # type: ignore[attr-defined]
    return _CacheStore(cache, key_prefix, ttl)


def _cache_prefix(cache: BaseCache) -> str:
    prefix = getattr(cache, "key_prefix", None)
    if callable(prefix):  # cachelib's Redis caches accept a callable
        prefix = prefix()
    return prefix if isinstance(prefix, str) else ""


def _redis_client(cache: BaseCache) -> t.Any:
    """The client of a cachelib Redis or Valkey cache, else ``None``."""
    import cachelib

    # ValkeyCache exists from cachelib 0.17 on.
    kinds = tuple(
        kind
        for kind in (getattr(cachelib, "RedisCache", None), getattr(cachelib, "ValkeyCache", None))
        if isinstance(kind, type)
    )
    if isinstance(cache, kinds):
        return getattr(cache, "_write_client", None)
    return None


def _is_raw_pymemcache(client: object) -> bool:
    """Whether ``client`` is a pymemcache client returning values as stored."""
    try:
        from pymemcache.client.base import Client
        from pymemcache.client.base import PooledClient
        from pymemcache.client.hash import HashClient
        from pymemcache.serde import LegacyWrappingSerde
    except ImportError:
        return False
    if isinstance(client, HashClient):
        options = client.default_kwargs
        return all(options.get(name) is None for name in ("serde", "deserializer"))
    if isinstance(client, Client | PooledClient):
        serde = client.serde
        return isinstance(serde, LegacyWrappingSerde) and (
            serde.deserialize == serde._default_deserialize
        )
    return False


def memcached_client(servers: cabc.Sequence[tuple[str, int]]) -> t.Any:
    """Return a thread-safe pymemcache client for ``servers``, with
    :data:`SOCKET_TIMEOUT` timeouts and no (de)serialization.

    With several servers, keys are spread over them (pymemcache's
    ``HashClient``); a server that is down makes the operations on its keys
    raise, rather than moving them to the other servers for a while (which
    would look like lost sessions, then bring back stale ones).

    :raises ImportError: pymemcache is not installed.
    """
    try:
        from pymemcache.client.base import PooledClient
        from pymemcache.client.hash import HashClient
    except ImportError as exc:
        raise ImportError(
            "memcached:// needs pymemcache: pip install pymemcache", name=exc.name
        ) from exc
    options: dict[str, t.Any] = {
        "connect_timeout": SOCKET_TIMEOUT,
        "timeout": SOCKET_TIMEOUT,
        "no_delay": True,
    }
    if len(servers) == 1:
        return PooledClient(servers[0], **options)
    # retry_attempts=0 with dead_timeout=0: a failure raises, and the next
    # call tries the same server again instead of rehashing its keys.
    return HashClient(
        list(servers),
        use_pooling=True,
        retry_attempts=0,
        dead_timeout=0,
        ignore_exc=False,
        **options,
    )


class _Unreadable:
    """What :class:`JSONSerializer` returns for a value that is not JSON.

    False, so cachelib's own bookkeeping reads it like a miss
    (``FileSystemCache`` counts files with ``get(...) or 0``).
    """

    def __bool__(self) -> bool:
        return False


UNREADABLE = _Unreadable()


class JSONSerializer(BaseSerializer):
    """A cachelib serializer that writes and reads JSON only.

    Whatever the backend returns goes through :func:`json.loads`, never
    :mod:`pickle`: a value that is not JSON (a planted pickle, say) reads as
    :data:`UNREADABLE`.
    """

    def dumps(self, value: t.Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
        return to_utf8(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def loads(self, bvalue: bytes) -> t.Any:
        if bvalue is None:  # cachelib passes a miss through some backends
            return None
        try:
            return json.loads(bvalue)
        except (ValueError, TypeError, UnicodeDecodeError):
            return UNREADABLE

    def dump(self, value: t.Any, f: t.IO[bytes], protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        f.write(self.dumps(value))

    def load(self, f: t.BinaryIO) -> t.Any:
        return self.loads(f.read())


def _decode_value(value: object) -> Document | None:
    """Decode what a cache returned for a session key."""
    if value is None:
        return None
    if not isinstance(value, str | bytes):
        raise CorruptDocument(f"the cache returned {type(value).__name__}, not JSON text")
    return decode(value)


class _CacheStore(Store):
    """Sessions through cachelib's generic API; see :class:`CachelibStore`."""

    def __init__(self, cache: BaseCache, key_prefix: str, ttl: int) -> None:
        self.cache = cache
        self.key_prefix = key_prefix
        self.ttl = ttl
        #: Whether the cache lives in this process only, so the lock below
        #: orders every write to it.
        self.in_process = isinstance(cache, SimpleCache)
        self._lock = threading.RLock()

    def _put(self, key: str, value: str | bytes, ttl: int) -> None:
        if ttl > 0:
            # cachelib's backends count whole seconds from int(time()), so an
            # entry may go up to a second early: one more second makes the
            # lifetime at least ``ttl``. cachelib turns backend errors into
            # False: make them errors again.
            if self.cache.set(key, value, timeout=ttl + 1) is False:
                raise RuntimeError(f"{type(self.cache).__name__}.set() failed")
        else:
            self.cache.delete(key)

    def _put_document(self, key: str, document: Document) -> None:
        ttl = document_ttl(document, self.ttl)
        # An expired document is deleted: only one to be kept is measured.
        self._put(key, self.encoded(document).decode("utf-8") if ttl > 0 else "", ttl)

    def _tombstone(self, sid: str) -> str:
        return f"{self.key_prefix}{sid}\x00destroyed"

    def _destroyed(self, sid: str) -> bool:
        """Whether another process destroyed ``sid`` lately."""
        return not self.in_process and self.cache.get(self._tombstone(sid)) is not None

    def get(self, sid: str) -> Document | None:
        return _decode_value(self.cache.get(self.key_prefix + sid))

    def get_and_touch(self, sid: str) -> Document | None:
        if not self.in_process:
            # Never write on a read: it could bring back a session another
            # process destroyed meanwhile (see touch).
            return self.get(sid)
        key = self.key_prefix + sid
        with self._lock:
            value = self.cache.get(key)
            document = _decode_value(value)
            if document is not None:
                self._put(key, value, touched_ttl(document, self.ttl))
        return document

    def set(self, sid: str, session: Document) -> None:
        with self._lock:
            self._put_document(self.key_prefix + sid, session)

    def destroy(self, sid: str) -> None:
        with self._lock:
            if not self.in_process:
                # First the tombstone, then the delete: a merge that wrote
                # before the delete finds the tombstone afterwards.
                self.cache.set(self._tombstone(sid), 1, timeout=TOMBSTONE_TTL)
            self.cache.delete(self.key_prefix + sid)

    def touch(self, sid: str, session: Document) -> None:
        # cachelib cannot extend a lifetime without rewriting the value,
        # which only the in-process lock makes safe against a logout.
        if not self.in_process:
            return
        key = self.key_prefix + sid
        with self._lock:
            value = self.cache.get(key)
            if isinstance(value, str | bytes):
                self._put(key, value, document_ttl(session, self.ttl))

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        with self._lock:
            if self._destroyed(sid):
                return False
            current = self.get(sid)
            if current is None:
                return False
            document = apply_changes(current, changes, removed)
            key = self.key_prefix + sid
            self._put_document(key, document)
            if self._destroyed(sid):
                # Destroyed while this merge read: undo the write.
                self.cache.delete(key)
                return False
        return True


_MEMCACHED_KEY = re.compile(r"[\x21-\x7e]{1,250}")


def _memcached_expire(ttl: int) -> int:
    """The memcached expiry for a lifetime of ``ttl`` seconds (> 0)."""
    # memcached's clock ticks once a second, so an entry may go up to a
    # second early: one more second makes the lifetime at least ``ttl``.
    ttl += 1
    if ttl <= _MEMCACHED_MAX_RELATIVE:
        return ttl
    # A Unix time, which memcached keeps in 32 bits: cut at 2038-01-19.
    return min(int(time.time()) + ttl, _MEMCACHED_MAX_TIME)


class _MemcachedStore(Store):
    """Sessions through a raw pymemcache client; see :class:`CachelibStore`."""

    def __init__(self, client: t.Any, key_prefix: str, ttl: int) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.ttl = ttl

    def _key(self, sid: str) -> str | None:
        # memcached keys are printable ASCII without spaces, up to 250 bytes.
        # A session id that cannot be one (only a custom genid, or a forged
        # cookie signed with the secret, gives such ids) is never stored.
        key = self.key_prefix + sid
        return key if _MEMCACHED_KEY.fullmatch(key) else None

    def set(self, sid: str, session: Document) -> None:
        key = self._key(sid)
        if key is None:
            raise ValueError(f"session id {sid[:6]!r}... cannot be a memcached key")
        ttl = document_ttl(session, self.ttl)
        if ttl <= 0:
            self.client.delete(key, noreply=False)
            return
        data = self.encoded(session)
        if not self.client.set(key, data, expire=_memcached_expire(ttl), noreply=False):
            raise RuntimeError("memcached did not store the session")

    def get(self, sid: str) -> Document | None:
        key = self._key(sid)
        return None if key is None else _decode_value(self.client.get(key))

    def get_and_touch(self, sid: str) -> Document | None:
        key = self._key(sid)
        if key is None:
            return None
        document = _decode_value(self.client.get(key))
        if document is not None:
            self._expire(key, touched_ttl(document, self.ttl))
        return document

    def _expire(self, key: str, ttl: int) -> None:
        if ttl > 0:
            self.client.touch(key, expire=_memcached_expire(ttl), noreply=False)
        else:
            self.client.delete(key, noreply=False)

    def destroy(self, sid: str) -> bool:
        key = self._key(sid)
        # memcached answers NOT_FOUND for a missing or expired entry.
        return key is not None and bool(self.client.delete(key, noreply=False))

    def touch(self, sid: str, session: Document) -> None:
        # memcached's touch only extends an entry that exists: no resurrection.
        key = self._key(sid)
        if key is not None:
            self._expire(key, document_ttl(session, self.ttl))

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        key = self._key(sid)
        if key is None:
            return False
        removed = list(removed)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
            found = self.client.gets(key)
            current = _decode_value(found[0]) if found else None
            if current is None:
                return False
            document = apply_changes(current, changes, removed)
            ttl = document_ttl(document, self.ttl)
            if ttl <= 0:
                self.client.delete(key, noreply=False)
                return True
            stored = self.client.cas(
                key,
                self.encoded(document),
                found[1],
                expire=_memcached_expire(ttl),
                noreply=False,
            )
            if stored is None:  # deleted since gets: a logout stays a logout
                return False
            if stored:
                return True
            # False: another request wrote in between; merge onto its version.
        raise RuntimeError(f"merge lost the compare-and-set race {CAS_ATTEMPTS} times")
