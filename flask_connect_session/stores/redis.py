"""Sessions in Redis (or Valkey), as connect-redis keeps them."""

from __future__ import annotations

import collections
import collections.abc as cabc
import contextlib
import hashlib
import itertools
import math
import threading
import time
import typing as t
from urllib.parse import urlsplit

from ..document import COOKIE_MEMBER
from ..document import decode
from ..document import encode
from ..document import is_conditional
from ..errors import CorruptDocument
from ..serialization import dumps
from ..serialization import error_kind
from ._redis_lua import INDEX_SCRIPT
from ._redis_lua import MERGE_SCRIPT
from .base import DEFAULT_TTL
from .base import INDEX_MARGIN
from .base import Document
from .base import Store
from .base import apply_changes
from .base import check_size
from .base import decode_entries
from .base import document_ttl
from .base import redact_url
from .base import scrub_url_secrets
from .base import to_utf8
from .base import touched_ttl

#: Socket and connect timeout, in seconds, of clients built from a URL, so a
#: hung server fails the request instead of blocking a worker forever. A
#: ``socket_timeout`` or ``socket_connect_timeout`` query parameter in the URL
#: overrides it.
SOCKET_TIMEOUT = 5.0

#: Keys asked for per ``SCAN`` call, and keys read or deleted per pipeline.
BATCH_SIZE = 500

#: URL schemes that mean Redis to redis-py, by the scheme the URL may use.
_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "unix": "unix",
    "valkey": "redis",
    "valkeys": "rediss",
}


def client_from_url(url: str) -> t.Any:
    """Return a redis-py client for a ``redis://``, ``rediss://``,
    ``unix://``, ``valkey://`` or ``valkeys://`` URL.

    Connections are made lazily: a server that is down is not an error here.
    The client gets :data:`SOCKET_TIMEOUT` as its socket and connect
    timeouts unless the URL sets them.

    :raises ImportError: redis-py is not installed.
    :raises ValueError: the URL is malformed.
    """
    try:
        import redis
    except ImportError as exc:
        raise ImportError("RedisStore needs redis-py: pip install redis", name=exc.name) from exc
    scheme, _, rest = url.partition("://")
    redis_scheme = _SCHEMES.get(scheme.lower())
    if redis_scheme is None:
        raise ValueError(f"not a Redis URL: {redact_url(url)!r}")
    try:
        if redis_scheme != "unix":
            # redis-py would quietly use db 0 for "/sessions".
            path = urlsplit(url).path.strip("/")
            if path and not path.isdigit():
                raise ValueError(f"the path of {url!r} must be a database number")
        # URL query parameters override these keyword arguments (redis-py).
        return redis.Redis.from_url(
            f"{redis_scheme}://{rest}",
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
    except ValueError as exc:
        message = scrub_url_secrets(str(exc), url)
    # Raised outside the handler, so nothing chains to the original error:
    # redis-py's message may quote the password.
    raise ValueError(message)


def sentinel_client(
    sentinels: cabc.Sequence[tuple[str, int]],
    service_name: str,
    *,
    db: int = 0,
    username: str | None = None,
    password: str | None = None,
    socket_timeout: float = SOCKET_TIMEOUT,
    socket_connect_timeout: float = SOCKET_TIMEOUT,
) -> t.Any:
    """Return a redis-py client that always talks to the master the Redis
    Sentinels name for ``service_name``.

    It asks the sentinels (in order) for the master when it connects, and
    again whenever a connection fails or the server it reached is no longer
    a master, so requests follow a failover without a restart. Connections
    are made lazily: nothing is contacted here.

    :param sentinels: ``(host, port)`` of each sentinel.
    :param username: the Redis ACL user of the master (not of the sentinels).
    :param password: the password of the master (not of the sentinels).
    :raises ImportError: redis-py is not installed.
    """
    try:
        from redis.sentinel import Sentinel
    except ImportError as exc:
        raise ImportError("RedisStore needs redis-py: pip install redis", name=exc.name) from exc
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
    # redis-py types Sentinel and master_for in some releases and not in
    # others: "unused-ignore" keeps mypy quiet on both.
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(sentinels),
        sentinel_kwargs=timeouts,
        db=db,
        username=username,
        password=password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
    )
    return sentinel.master_for(service_name)  # type: ignore[no-untyped-call, unused-ignore]


@contextlib.contextmanager
def _undecodable_is_corrupt() -> cabc.Iterator[None]:
    # A client made with decode_responses=True decodes values itself, so an
    # entry that is not UTF-8 fails inside redis-py: that is a corrupt entry,
    # not an unreachable backend.
    try:
        yield
    except UnicodeDecodeError as exc:
        raise CorruptDocument(f"not UTF-8: {error_kind(exc)}") from None


#: How many values read per process the fast merge remembers.
READ_CACHE_SIZE = 10_000

#: Longest stored value, in bytes, that the merge script hashes or scans.
#: Redis runs one script at a time and serves no other client meanwhile, and
#: its Lua scans JSON at some 20 MB/s (8 MB/s when full of escapes); even
#: copying a long value into Lua costs milliseconds. A longer value is
#: merged in an optimistic transaction instead (``WATCH``/``MULTI``), during
#: which Redis only copies bytes (benchmarks/README.md, "A merge into a
#: huge session").
SCRIPT_LIMIT = 65536

#: Attempts of an optimistic-transaction merge before it gives up.
SWAP_ATTEMPTS = 100


def _glob_escape(text: str) -> str:
    # SCAN MATCH is a glob: the prefix must match literally.
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _batches(items: cabc.Iterable[t.Any]) -> cabc.Iterator[list[t.Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, BATCH_SIZE)):
        yield batch


class RedisStore(Store):
    """Keep sessions in Redis or Valkey exactly as connect-redis does, so an
    Express app and this extension can share them.

    Each session is the string key ``<key_prefix><sid>`` holding the session
    document as compact JSON (never pickle), with a TTL of the cookie's
    remaining lifetime in whole seconds rounded up, else ``ttl``
    (``SET key value EX ttl``; a lifetime of zero or less deletes the key).
    Redis expires sessions by itself, so :meth:`prune` has nothing to do.

    :meth:`merge` is atomic and one round trip, contended or not: a Lua
    script compares the stored value with the one this process read (SHA-1)
    and, if unchanged, swaps in the document Python built from it; otherwise
    it splices the changed members into the stored JSON and writes it back
    with its new TTL. The script never decodes a value (Redis' ``cjson``
    would turn ``[]`` into ``{}`` and round big integers and floats); when
    splicing, untouched members are copied byte for byte and the new ones
    are Python's encoding. It touches one key, so it works on Redis Cluster
    too.
    :meth:`get_and_touch` loads and extends the lifetime in one round trip.

    :meth:`all`, :meth:`length` and :meth:`clear` walk the keys with
    ``SCAN MATCH <key_prefix>*`` (never ``KEYS`` or ``FLUSHDB``), on every
    primary of a cluster, and read them: only keys holding a session
    document count, so another application's keys that happen to share the
    prefix are never counted or deleted. :meth:`clear` deletes them with
    ``UNLINK`` key by key, so keys in different cluster slots are fine.

    :param client_or_url: a ``redis://``, ``rediss://``, ``unix://`` or
        ``valkey://`` URL (see :func:`client_from_url`; needs
        ``pip install redis``), or a ready client:
        ``redis.Redis``, ``redis.cluster.RedisCluster``, ``valkey.Valkey``
        or anything with their methods. Responses may be bytes or str.
    :param key_prefix: prefix of the session keys (connect-redis ``prefix``).
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry
        (connect-redis ``ttl``).
    :param index_prefix: prefix of the per-user index keys
        (``CONNECT_SESSION_USER_KEY``): one sorted set per user,
        ``<index_prefix><user>``, of session ids scored by when each is surely
        gone (ms since the epoch), expiring with its last id. Defaults to
        ``key_prefix`` without its trailing ``:`` plus ``-user:``
        (``sess-user:42``), so connect-redis' scans of ``sess:*`` never
        meet an index.
    :param revoked_prefix: prefix of the per-user revoke records
        (:meth:`index_revoke`): one string key per user who logged out
        everywhere, ``<revoked_prefix><user>``, holding when (ms since the
        epoch) and expiring when the record may go. Defaults to
        ``key_prefix`` without its trailing ``:`` plus ``-revoked:``
        (``sess-revoked:42``).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        client_or_url: str | t.Any,
        *,
        key_prefix: str = "sess:",
        ttl: int = DEFAULT_TTL,
        index_prefix: str | None = None,
        revoked_prefix: str | None = None,
    ) -> None:
        #: The Redis client.
        self.client: t.Any = (
            client_from_url(client_or_url) if isinstance(client_or_url, str) else client_or_url
        )
        # What repr() shows of the server: never a password.
        self._where = (
            redact_url(client_or_url) if isinstance(client_or_url, str) else _describe(self.client)
        )
        #: Prefix of the session keys.
        self.key_prefix = key_prefix
        #: Prefix of the per-user index keys.
        self.index_prefix = (
            key_prefix.rstrip(":") + "-user:" if index_prefix is None else index_prefix
        )
        #: Prefix of the per-user revoke records.
        self.revoked_prefix = (
            key_prefix.rstrip(":") + "-revoked:" if revoked_prefix is None else revoked_prefix
        )
        self.ttl = ttl
        # RedisCluster (and ValkeyCluster) route by node; they have primaries.
        self._cluster = callable(getattr(self.client, "get_primaries", None))
        self._merge = self.client.register_script(MERGE_SCRIPT)
        self._index = self.client.register_script(INDEX_SCRIPT)
        # Values this process read, by sid, for the fast merge: while the
        # stored value is unchanged, a merge writes the document built here
        # instead of having the server splice it. Bounded: oldest go first.
        self._read: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._read_lock = threading.Lock()
        # The lifetime the last loaded session had: most sessions of an app
        # share one, so GETEX with it is right first time (see get_and_touch).
        self._lifetime_guess = ttl

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where} prefix={self.key_prefix!r}>"

    def _key(self, sid: str) -> str:
        return self.key_prefix + sid

    def get(self, sid: str) -> Document | None:
        with _undecodable_is_corrupt():
            value = self.client.get(self._key(sid))
        if value is None:
            return None
        document = decode(value)
        # As get_and_touch: a merge after a plain read (a touch interval is
        # set) takes the fast path too.
        self._remember(sid, value)
        return document

    def get_and_touch(self, sid: str) -> Document | None:
        """Read the session and extend its lifetime in one GETEX (Redis 6.2+).

        The lifetime depends on the stored cookie, known only once read, so
        GETEX applies the lifetime the previous session had; in the rare case
        that this one's differs, an EXPIRE follows to correct it.
        """
        key = self._key(sid)
        guess = self._lifetime_guess
        with _undecodable_is_corrupt():
            value = self.client.getex(key, ex=guess) if guess > 0 else self.client.get(key)
        if value is None:
            return None
        document = decode(value)
        self._remember(sid, value)
        lifetime = touched_ttl(document, self.ttl)
        if lifetime != guess:
            # As connect-redis' touch: EXPIRE, which deletes for a TTL <= 0.
            self.client.expire(key, lifetime)
            self._lifetime_guess = lifetime
        return document

    def set(self, sid: str, session: Document) -> None:
        ttl = document_ttl(session, self.ttl)
        if ttl > 0:
            self.client.set(self._key(sid), self.encoded(session), ex=ttl)
        else:
            self.client.delete(self._key(sid))

    def destroy(self, sid: str) -> bool:
        # DEL counts only keys that existed and had not expired.
        return bool(self.client.delete(self._key(sid)))

    def touch(self, sid: str, session: Document) -> None:
        # As connect-redis: EXPIRE, which deletes the key for a TTL <= 0.
        self.client.expire(self._key(sid), document_ttl(session, self.ttl))

    def _remember(self, sid: str, value: bytes | str) -> None:
        raw = value if isinstance(value, bytes) else to_utf8(value)
        with self._read_lock:
            self._read[sid] = raw
            self._read.move_to_end(sid)
            if len(self._read) > READ_CACHE_SIZE:
                self._read.popitem(last=False)

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        """Write only the changed members, atomically, in one round trip.

        If the stored value is still the one :meth:`get` or
        :meth:`get_and_touch` read in this process (the usual case), the new
        document built here replaces it; if another request wrote meanwhile,
        the server splices the changes into what it holds. Both paths are one Lua script
        (``MERGE_SCRIPT``), so a contended session costs no extra round trip.
        A stored value longer than :data:`SCRIPT_LIMIT` is never read by a
        script: it is merged here, in an optimistic transaction (see
        :meth:`_merge_by_swap`).

        :raises SessionTooLarge: the merged document would be longer than
            :attr:`max_size`; nothing is written.
        """
        removed = list(removed)
        if COOKIE_MEMBER in changes:
            ttl = str(document_ttl({COOKIE_MEMBER: changes[COOKIE_MEMBER]}, self.ttl))
        else:
            ttl = ""  # the stored cookie, so the TTL, stays as it is
        with self._read_lock:
            raw = self._read.pop(sid, None)
        if raw is not None and len(raw) > SCRIPT_LIMIT:
            return self._merge_by_swap(sid, changes, removed, ttl)
        version, new = "", b""
        if raw is not None:
            version = hashlib.sha1(raw).hexdigest()
            new = self._merged(raw, changes, removed, ttl)
        items: list[bytes] = []
        spliced = 0
        for name, value in changes.items():
            # A conditional member is never spliced: only the fast path,
            # which writes over the very value it was built from, applies it.
            if not is_conditional(value):
                spliced += 1
                items += (_name_bytes(name), to_utf8(f"{dumps(name)}:{dumps(value)}"))
        items += [_name_bytes(name) for name in removed]
        packed = b"".join(b"%d:%s" % (len(item), item) for item in items)
        result = self._merge(
            keys=[self._key(sid)],
            args=[version, new, ttl, spliced, packed, SCRIPT_LIMIT, self.max_size],
        )
        if isinstance(result, list):  # [-3, size]: the splice came out too long
            check_size(int(result[1]), self.max_size)
        if result == -1:
            raise CorruptDocument("the stored value is not a session document")
        if result == -2:
            # Grown past what the script reads since this process read it.
            return self._merge_by_swap(sid, changes, removed, ttl)
        if result == 2 and (ttl == "" or int(ttl) > 0):
            # Stored as sent: the next merge can take the fast path again.
            self._remember(sid, new)
        return bool(result in (1, 2))

    def _merged(
        self, raw: bytes | str, changes: cabc.Mapping[str, t.Any], removed: list[str], ttl: str
    ) -> bytes:
        """The document ``raw`` becomes with ``changes`` and ``removed``, as
        bytes, checked against :attr:`max_size` unless it is to be deleted.
        """
        document = apply_changes(decode(raw), changes, removed)
        return self.encoded(document) if ttl == "" or int(ttl) > 0 else to_utf8(encode(document))

    def _merge_by_swap(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: list[str], ttl: str
    ) -> bool:
        """Merge into a stored value too long for the merge script, with an
        optimistic transaction: ``WATCH`` the key, ``GET`` it, build the new
        document here, write it in ``MULTI``/``EXEC`` (which writes nothing
        if the key changed since, and then it starts again). Redis only
        copies bytes meanwhile; on a cluster it talks to the key's primary.
        """
        key = self._key(sid)
        client = (
            self.client.get_node_from_key(key).redis_connection if self._cluster else self.client
        )
        for _ in range(SWAP_ATTEMPTS):
            with client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    with _undecodable_is_corrupt():
                        raw = pipe.get(key)
                    if raw is None:
                        return False
                    new = self._merged(raw, changes, removed, ttl)
                    pipe.multi()
                    if ttl == "":
                        pipe.set(key, new, keepttl=True)
                    elif int(ttl) > 0:
                        pipe.set(key, new, ex=int(ttl))
                    else:
                        pipe.delete(key)
                    pipe.execute()
                    return True
                except Exception as exc:
                    # redis-py's and valkey-py's WatchError: written meanwhile.
                    if type(exc).__name__ != "WatchError":
                        raise
        raise RuntimeError(f"merge of a session lost {SWAP_ATTEMPTS} races in a row")

    def _keys(self, prefix: str | None = None) -> cabc.Iterator[bytes | str]:
        prefix = self.key_prefix if prefix is None else prefix
        pattern = _glob_escape(prefix) + "*"
        # With an odd prefix pair (sess / sess-user:) the index keys and the
        # revoke records would match the session pattern: skip them.
        skipped = tuple(
            other
            for other in (self.index_prefix, self.revoked_prefix)
            if prefix == self.key_prefix and other.startswith(prefix)
        )
        skipped_bytes = tuple(other.encode() for other in skipped)
        if self._cluster:
            primaries = getattr(type(self.client), "PRIMARIES", "primaries")
            keys = self.client.scan_iter(match=pattern, count=BATCH_SIZE, target_nodes=primaries)
        else:
            keys = self.client.scan_iter(match=pattern, count=BATCH_SIZE)
        # SCAN may return a key more than once.
        seen: set[bytes | str] = set()
        for key in keys:
            if key not in seen:
                seen.add(key)
                if skipped and (
                    key.startswith(skipped_bytes)
                    if isinstance(key, bytes)
                    else key.startswith(skipped)
                ):
                    continue
                yield key

    def _sid(self, key: bytes | str) -> str | None:
        # None for a key that is not valid UTF-8: not one of our sessions.
        try:
            text = key.decode() if isinstance(key, bytes) else key
        except UnicodeDecodeError:
            return None
        return text[len(self.key_prefix) :]

    def _entries(
        self, prefix: str | None = None
    ) -> cabc.Iterator[tuple[bytes | str, bytes | str]]:
        """The keys under the prefix (``key_prefix`` by default) with their
        values, batch by batch; keys that are not strings (a set, a hash)
        are left out.
        """
        for batch in _batches(self._keys(prefix)):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.get(key)
            # A key of another type answers WRONGTYPE: not a session.
            for key, value in zip(batch, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(value, bytes | str):
                    yield key, value

    def _session_keys(self) -> cabc.Iterator[bytes | str]:
        """The keys under the prefix that hold session documents: another
        application's keys that share the prefix are never counted or deleted.
        """
        for key, value in self._entries():
            with contextlib.suppress(CorruptDocument):
                decode(value)
                yield key

    def _index_keys(self) -> cabc.Iterator[bytes | str]:
        """The per-user index keys: the sorted sets under ``index_prefix``."""
        for batch in _batches(self._keys(self.index_prefix)):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.type(key)
            for key, kind in zip(batch, pipe.execute(), strict=True):
                if kind in (b"zset", "zset"):
                    yield key

    def all(self) -> dict[str, Document]:
        """Return every live session, by id; entries that cannot be decoded
        are left out.
        """
        values: dict[str, bytes | str | None] = {}
        for key, value in self._entries():
            sid = self._sid(key)
            if sid is not None:
                values[sid] = value
        return decode_entries(values)

    def length(self) -> int:
        """Return the number of keys under the prefix that hold a session
        document (each is read).
        """
        return sum(1 for _ in self._session_keys())

    def _revoked_keys(self) -> cabc.Iterator[bytes | str]:
        """The revoke records: the keys under ``revoked_prefix`` holding a
        number.
        """
        for key, value in self._entries(self.revoked_prefix):
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if text.isdigit():
                yield key

    def clear(self) -> int:
        """Delete every key under the prefix that holds a session document,
        the per-user index keys (sorted sets under ``index_prefix``) and the
        revoke records (under ``revoked_prefix``); keys of other applications
        that share the prefixes are left alone. Returns how many sessions went.
        """
        removed = self._unlink(self._session_keys())
        self._unlink(itertools.chain(self._index_keys(), self._revoked_keys()))
        return removed

    def _unlink(self, keys: cabc.Iterable[bytes | str]) -> int:
        """Delete ``keys`` in batches; return how many existed."""
        removed = 0
        for batch in _batches(keys):
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                # One key per command: keys of a cluster live in many slots.
                pipe.unlink(key)
            removed += sum(pipe.execute())
        return removed

    # -- the per-user index ------------------------------------------------

    def _update_index(self, user: str, until: str, sids: cabc.Iterable[str]) -> int:
        return self._update_key(self.index_prefix + user, until, sids)

    def _update_key(self, key: bytes | str, until: str, sids: cabc.Iterable[str]) -> int:
        now = str(int(time.time() * 1000))
        return int(self._index(keys=[key], args=[now, until, *sids]))

    def index_prune(self) -> int:
        """Drop the expired entries of every user's index (``SCAN`` of the
        index keys); return how many went. Per key: one script drops the
        entries whose time has passed, then those whose session key is gone
        and that :func:`outlived` it are checked (one pipeline of
        ``EXISTS``) and dropped. Keys whose every entry expired are gone
        already: they expire by themselves.
        """
        return sum(
            self._update_key(key, "", ()) + self._drop_outlived(key) for key in self._index_keys()
        )

    def _drop_outlived(self, key: bytes | str) -> int:
        now = time.time()
        # outlived(): the entries ending within the margin from now.
        members = self.client.zrange(
            key, f"({int(now * 1000)}", int((now + INDEX_MARGIN) * 1000), byscore=True
        )
        sids = [m.decode() if isinstance(m, bytes) else m for m in members]
        if not sids:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.exists(self._key(sid))
        gone = [sid for sid, exists in zip(sids, pipe.execute(), strict=True) if not exists]
        if gone:
            self._update_key(key, "", gone)
        return len(gone)

    def index_add(self, user: str, sid: str, until: float) -> None:
        self._update_index(user, str(math.ceil(until * 1000)), [sid])

    def index_remove(self, user: str, sid: str) -> None:
        self._update_index(user, "", [sid])

    def index_revoke(self, user: str, at: float, until: float) -> None:
        # One string key (one slot on a cluster), gone by itself at ``until``.
        self.client.set(
            self.revoked_prefix + user, str(int(at * 1000)), pxat=math.ceil(until * 1000)
        )

    def index_revoked(self, user: str) -> float | None:
        value = self.client.get(self.revoked_prefix + user)
        if value is None:
            return None
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        return int(text) / 1000 if text.isdigit() else None

    def index_sessions(self, user: str) -> dict[str, Document]:
        """Read ``user``'s index and their sessions: two round trips (a
        ``ZRANGE`` and a pipeline of ``GET`` s, which a cluster client sends
        to each node concurrently), plus one to drop entries whose session is
        gone.
        """
        now = int(time.time() * 1000)
        members = self.client.zrange(self.index_prefix + user, f"({now}", "+inf", byscore=True)
        sids = [m.decode() if isinstance(m, bytes) else m for m in members]
        if not sids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.get(self._key(sid))
        with _undecodable_is_corrupt():
            values = dict(zip(sids, pipe.execute(), strict=True))
        gone = [sid for sid, value in values.items() if value is None]
        if gone:
            self._update_index(user, "", gone)
        return decode_entries(values)


def _describe(client: t.Any) -> str:
    """Name a client's server for :func:`repr`, leaving its credentials out."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    where = ""
    if isinstance(kwargs, dict):
        if "path" in kwargs:
            where = f" {kwargs['path']}/{kwargs.get('db', 0)}"
        elif "host" in kwargs:
            where = f" {kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return f"{type(client).__name__}{where}"


def _name_bytes(name: str) -> bytes:
    # How the Lua script decodes a member name: UTF-8, lone surrogates
    # included (JSON.parse and Python both accept "\ud800").
    return name.encode("utf-8", "surrogatepass")
