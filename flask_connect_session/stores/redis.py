"""Sessions in Redis (or Valkey), as connect-redis keeps them."""

from __future__ import annotations

import collections
import collections.abc as cabc
import contextlib
import hashlib
import importlib
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
from .base import encode_checked
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


def _redis_module(asyncio: bool, name: str = "") -> t.Any:
    """redis-py's module (``redis``, ``redis.sentinel``...), or its asyncio
    twin (``redis.asyncio``, ``redis.asyncio.sentinel``...).

    :raises ImportError: redis-py is not installed.
    """
    module = ".".join(part for part in ("redis", "asyncio" if asyncio else "", name) if part)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError("RedisStore needs redis-py: pip install redis", name=exc.name) from exc


def client_from_url(url: str, *, asyncio: bool = False) -> t.Any:
    """Return a redis-py client for a ``redis://``, ``rediss://``,
    ``unix://``, ``valkey://`` or ``valkeys://`` URL.

    Connections are made lazily: a server that is down is not an error here.
    The client gets :data:`SOCKET_TIMEOUT` as its socket and connect
    timeouts unless the URL sets them.

    :param asyncio: return a ``redis.asyncio`` client instead.
    :raises ImportError: redis-py is not installed.
    :raises ValueError: the URL is malformed.
    """
    redis = _redis_module(asyncio)
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
    asyncio: bool = False,
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
    :param asyncio: return a ``redis.asyncio`` client instead.
    :raises ImportError: redis-py is not installed.
    """
    Sentinel = _redis_module(asyncio, "sentinel").Sentinel
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
    sentinel = Sentinel(
        list(sentinels),
        sentinel_kwargs=timeouts,
        db=db,
        username=username,
        password=password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
    )
    return sentinel.master_for(service_name)


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


def _text(value: bytes | str) -> str:
    """A reply as text (a client may decode replies itself)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _members(members: cabc.Iterable[bytes | str]) -> list[str]:
    """The session ids of a ``ZRANGE`` reply."""
    return [m.decode() if isinstance(m, bytes) else m for m in members]


def _found(
    sids: list[str], values: list[bytes | str | None]
) -> tuple[dict[str, bytes | str | None], list[str]]:
    """The values read for ``sids``, by sid, and the sids found missing."""
    found = dict(zip(sids, values, strict=True))
    return found, [sid for sid, value in found.items() if value is None]


def _now_ms() -> int:
    return int(time.time() * 1000)


def is_noscript_error(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's or valkey-py's ``NoScriptError`` (the
    server does not have the script: load it and run it again).
    """
    return type(exc).__name__ == "NoScriptError"


def is_watch_error(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's or valkey-py's ``WatchError`` (a
    watched key was written meanwhile), sync or asyncio.
    """
    return type(exc).__name__ == "WatchError"


class ReadCache:
    """The values this process read, by sid, for the fast merge: while the
    stored value is unchanged, a merge writes the document built here
    instead of having the server splice it. Bounded (the oldest go first)
    and thread-safe.

    :param size: how many values it keeps.
    """

    def __init__(self, size: int = READ_CACHE_SIZE) -> None:
        self._values: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def remember(self, sid: str, value: bytes | str) -> None:
        """Keep ``value`` as what ``sid`` holds, unless it is too long for
        the fast merge (:data:`SCRIPT_LIMIT`), which a merge then never uses.
        """
        if len(value) > SCRIPT_LIMIT:
            self.pop(sid)
            return
        raw = value if isinstance(value, bytes) else to_utf8(value)
        with self._lock:
            self._values[sid] = raw
            self._values.move_to_end(sid)
            if len(self._values) > self._size:
                self._values.popitem(last=False)

    def __contains__(self, sid: object) -> bool:
        return sid in self._values

    def pop(self, sid: str) -> bytes | None:
        """Forget what ``sid`` held, and return it (``None``: not known)."""
        with self._lock:
            return self._values.pop(sid, None)


class MergePlan(t.NamedTuple):
    """How a merge is sent: the new TTL, and the document built from the
    value this process read (if it read one the script may take).
    """

    #: The new TTL, in seconds, as the script takes it (``""``: unchanged).
    ttl: str
    #: The value this process read, or ``None``: not known, or too long
    #: for the script (then :attr:`swap`).
    raw: bytes | None
    #: The whole new value built from :attr:`raw`, or ``b""``.
    new: bytes
    #: Whether the stored value is too long for the script: merge by swap.
    swap: bool


#: Lifetimes remembered per session id (see :class:`Lifetimes`).
LIFETIMES_SIZE = 10_000


class Lifetimes:
    """The store lifetime (seconds) each session read or written in this
    process has, by sid, so that the ``GETEX`` of a load extends it right
    first time even when sessions of different lifetimes (browser-session
    cookies, ``max_age`` ones) are read in turn. Bounded (the oldest go
    first). Only a hint: a load still checks the lifetime of what it read,
    so a race between threads costs at most one ``EXPIRE``, and no lock is
    taken.

    :param size: how many sessions it keeps.
    """

    def __init__(self, size: int = LIFETIMES_SIZE) -> None:
        self._lifetimes: dict[str, int] = {}
        self._size = size

    def get(self, sid: str, default: int) -> int:
        """The lifetime ``sid`` had, else ``default``."""
        return self._lifetimes.get(sid, default)

    def remember(self, sid: str, lifetime: int) -> None:
        """Note that ``sid`` lives ``lifetime`` seconds per touch."""
        lifetimes = self._lifetimes
        if lifetimes.get(sid) == lifetime:
            return
        lifetimes[sid] = lifetime
        while len(lifetimes) > self._size:
            # Dict order is insertion order: drop the oldest. Without a lock,
            # another thread may insert meanwhile, which stops the iteration:
            # a later insert drops them then.
            try:
                oldest = next(iter(lifetimes))
            except RuntimeError:
                return
            lifetimes.pop(oldest, None)

    def __contains__(self, sid: object) -> bool:
        return sid in self._lifetimes

    def __len__(self) -> int:
        return len(self._lifetimes)


class KeyScan:
    """One walk of the keys under a prefix with ``SCAN``: the arguments of
    ``scan_iter`` and the filter of what it returns (each key once; not the
    index keys or revoke records when their prefixes extend the session
    prefix).
    """

    def __init__(self, store: RedisLayout, prefix: str | None) -> None:
        prefix = store.key_prefix if prefix is None else prefix
        #: Keyword arguments of ``scan_iter``.
        self.kwargs: dict[str, t.Any] = {"match": _glob_escape(prefix) + "*", "count": BATCH_SIZE}
        if store.cluster:
            self.kwargs["target_nodes"] = getattr(type(store.client), "PRIMARIES", "primaries")
        # With an odd prefix pair (sess / sess-user:) the index keys and the
        # revoke records would match the session pattern: skip them.
        self._skipped = tuple(
            other
            for other in (store.index_prefix, store.revoked_prefix)
            if prefix == store.key_prefix and other.startswith(prefix)
        )
        self._skipped_bytes = tuple(other.encode() for other in self._skipped)
        # SCAN may return a key more than once.
        self._seen: set[bytes | str] = set()

    def wanted(self, key: bytes | str) -> bool:
        """Whether ``key`` is one to yield (and note that it was)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        if isinstance(key, bytes):
            return not key.startswith(self._skipped_bytes)
        return not key.startswith(self._skipped)


class RedisLayout:
    """What :class:`RedisStore` and the asyncio ``AsyncRedisStore`` share,
    none of it I/O: key names, the merge script's arguments and the reading
    of its result, reply decoding, the read cache and the lifetime guess.
    Each store sends the commands with its own client (sync or asyncio), so
    both store the same keys, values and TTLs.
    """

    #: Store lifetime, in seconds, of sessions whose cookie has no expiry.
    ttl: int
    #: Largest document, in bytes, that a write may store (0: no limit).
    max_size: int

    #: Whether the store's client is an asyncio one.
    asyncio: t.ClassVar[bool] = False

    def __init__(
        self,
        client_or_url: str | t.Any,
        *,
        key_prefix: str = "sess:",
        ttl: int = DEFAULT_TTL,
        index_prefix: str | None = None,
        revoked_prefix: str | None = None,
    ) -> None:
        # Whether the store made its client (and so closes it).
        self._own_client = isinstance(client_or_url, str)
        if isinstance(client_or_url, str):
            client = client_from_url(client_or_url, asyncio=self.asyncio)
            # What repr() shows of the server: never a password.
            self._where = redact_url(client_or_url)
        else:
            client, self._where = client_or_url, _describe(client_or_url)
        #: The Redis client.
        self.client: t.Any = client
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
        #: Whether the client is a cluster's (RedisCluster and ValkeyCluster
        #: route by node; they have primaries).
        self.cluster = callable(getattr(client, "get_primaries", None))
        self._merge = client.register_script(MERGE_SCRIPT)
        self._index = client.register_script(INDEX_SCRIPT)
        self._read = ReadCache()
        # The lifetime each known session has, and the one the last loaded
        # session had for the others: most sessions of an app share one, so
        # GETEX with it is right first time (see get_and_touch).
        self._lifetimes = Lifetimes()
        self._lifetime_guess = ttl
        # Whether the server takes ``SET ... IFEQ`` (Valkey 8.1+, Redis
        # 8.4+); None until the first fast merge tries it.
        self._ifeq: bool | None = None
        # Clients of single cluster nodes, by node name (asyncio transactions).
        self._nodes: dict[str, t.Any] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where} prefix={self.key_prefix!r}>"

    def _key(self, sid: str) -> str:
        return self.key_prefix + sid

    def _loaded(self, sid: str, value: bytes | str | None) -> Document | None:
        """The document a read returned, remembered for the fast merge."""
        if value is None:
            return None
        document = decode(value)
        self._read.remember(sid, value)
        return document

    def _lifetime(self, sid: str) -> int:
        """The lifetime a load of ``sid`` extends the session by: the one it
        had when this process last saw it, else the last loaded session's.
        """
        return self._lifetimes.get(sid, self._lifetime_guess)

    def _correction(self, sid: str, document: Document, guess: int) -> int | None:
        """The lifetime to give a session that ``GETEX`` extended by
        ``guess`` seconds, if it is another (then the next guess).
        """
        lifetime = touched_ttl(document, self.ttl)
        self._lifetimes.remember(sid, lifetime)
        if lifetime == guess:
            return None
        self._lifetime_guess = lifetime
        return lifetime

    def _written(self, sid: str, session: Document) -> int:
        """The TTL a write of ``session`` gives its key (``<= 0``: none,
        the key goes), remembering its lifetime for the next load.
        """
        self._lifetimes.remember(sid, touched_ttl(session, self.ttl))
        return document_ttl(session, self.ttl)

    def _merge_plan(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: list[str]
    ) -> MergePlan:
        if COOKIE_MEMBER in changes:
            ttl = str(document_ttl({COOKIE_MEMBER: changes[COOKIE_MEMBER]}, self.ttl))
        else:
            ttl = ""  # the stored cookie, so the TTL, stays as it is
        raw = self._read.pop(sid)
        if raw is None:
            return MergePlan(ttl, None, b"", False)
        if len(raw) > SCRIPT_LIMIT:
            return MergePlan(ttl, None, b"", True)
        return MergePlan(ttl, raw, self._merged(raw, changes, removed, ttl), False)

    def _compare_and_set(self, key: str, plan: MergePlan) -> tuple[t.Any, ...] | None:
        """The ``SET key new IFEQ old ...`` command of a merge's fast path,
        or ``None`` if the server lacks it or the fast path does not apply
        (nothing read; a TTL that deletes, which the script does).

        Compared and written by the server in one command, without a
        script: cheaper for Redis and for redis-py than ``EVALSHA``.
        """
        if self._ifeq is False or plan.raw is None:
            return None
        if plan.ttl == "":
            return ("SET", key, plan.new, "IFEQ", plan.raw, "KEEPTTL")
        ttl = int(plan.ttl)
        if ttl <= 0:
            return None
        return ("SET", key, plan.new, "IFEQ", plan.raw, "EX", ttl)

    def _compare_and_set_refused(self, exc: Exception) -> bool:
        """Whether ``exc``, raised by :meth:`_compare_and_set`'s command,
        says the server does not take it (Redis before 8.4, Valkey before
        8.1: a syntax error; a Redis-compatible server may word it
        otherwise), having written nothing; then no later merge tries it. A
        failover to an older server is noticed the same way. Errors that
        are not about the command (connection, read-only replica, out of
        memory: redis-py's subclasses) are raised.
        """
        if type(exc).__name__ != "ResponseError":
            return False
        self._ifeq = False
        return True

    def _compare_and_set_done(self, sid: str, plan: MergePlan, reply: t.Any) -> bool:
        """Whether the compare-and-set wrote (else the stored value changed
        or went since it was read: the script sorts that out).
        """
        if reply is None:
            return False
        self._ifeq = True
        # Stored as sent: the next merge can take the fast path again.
        self._read.remember(sid, plan.new)
        return True

    def _script_args(
        self, plan: MergePlan, changes: cabc.Mapping[str, t.Any], removed: list[str]
    ) -> list[t.Any]:
        """The arguments of ``MERGE_SCRIPT`` for a merge."""
        version = "" if plan.raw is None else hashlib.sha1(plan.raw).hexdigest()
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
        return [version, plan.new, plan.ttl, spliced, packed, SCRIPT_LIMIT, self.max_size]

    def _merge_outcome(self, sid: str, plan: MergePlan, result: t.Any) -> bool | None:
        """What the merge script's ``result`` means: whether the session was
        there to merge into, or ``None`` if it must be merged by swap.

        :raises SessionTooLarge: the spliced document was too long.
        :raises CorruptDocument: the stored value is no session document.
        """
        if isinstance(result, list):  # [-3, size]: the splice came out too long
            check_size(int(result[1]), self.max_size)
        if result == -1:
            raise CorruptDocument("the stored value is not a session document")
        if result == -2:
            # Grown past what the script reads since this process read it.
            return None
        if result == 2 and (plan.ttl == "" or int(plan.ttl) > 0):
            # Stored as sent: the next merge can take the fast path again.
            self._read.remember(sid, plan.new)
        return bool(result in (1, 2))

    def _merged(
        self, raw: bytes | str, changes: cabc.Mapping[str, t.Any], removed: list[str], ttl: str
    ) -> bytes:
        """The document ``raw`` becomes with ``changes`` and ``removed``, as
        bytes, checked against :attr:`max_size` unless it is to be deleted.
        """
        document = apply_changes(decode(raw), changes, removed)
        if ttl == "" or int(ttl) > 0:
            return encode_checked(document, self.max_size)
        return to_utf8(encode(document))

    @staticmethod
    def _queue_write(pipe: t.Any, key: str, new: bytes, ttl: str) -> None:
        """Queue the write of a merge by swap in a transaction (``MULTI``)."""
        if ttl == "":
            pipe.set(key, new, keepttl=True)
        elif int(ttl) > 0:
            pipe.set(key, new, ex=int(ttl))
        else:
            pipe.delete(key)

    def _scan(self, prefix: str | None = None) -> KeyScan:
        return KeyScan(self, prefix)

    def _sid(self, key: bytes | str) -> str | None:
        # None for a key that is not valid UTF-8: not one of our sessions.
        try:
            text = key.decode() if isinstance(key, bytes) else key
        except UnicodeDecodeError:
            return None
        return text[len(self.key_prefix) :]

    @staticmethod
    def _holds_session(value: bytes | str) -> bool:
        try:
            decode(value)
        except CorruptDocument:
            return False
        return True

    @staticmethod
    def _revoked_at(value: bytes | str | None) -> float | None:
        """The time a revoke record holds (ms since the epoch), in seconds."""
        text = None if value is None else _text(value)
        return int(text) / 1000 if text is not None and text.isdigit() else None

    @staticmethod
    def _index_args(until: str, sids: cabc.Iterable[str]) -> list[str]:
        return [str(_now_ms()), until, *sids]

    @staticmethod
    def _outlived_range() -> tuple[str, int]:
        """The ``ZRANGE BYSCORE`` bounds of the entries :func:`outlived`
        makes candidates: those ending within the margin from now.
        """
        now = time.time()
        return f"({int(now * 1000)}", int((now + INDEX_MARGIN) * 1000)


class RedisStore(RedisLayout, Store):
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
    too. On a server with ``SET ... IFEQ`` (Valkey 8.1+, Redis 8.4+), the
    unchanged case is that one command instead, and the script follows only
    if the value changed since it was read.
    :meth:`get_and_touch` loads and extends the lifetime in one round trip,
    with the lifetime this process last saw the session have.

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

    def get(self, sid: str) -> Document | None:
        with _undecodable_is_corrupt():
            value = self.client.get(self._key(sid))
        # As get_and_touch: a merge after a plain read (a touch interval is
        # set) takes the fast path too.
        return self._loaded(sid, value)

    def get_and_touch(self, sid: str) -> Document | None:
        """Read the session and extend its lifetime in one GETEX (Redis 6.2+).

        The lifetime depends on the stored cookie, known only once read, so
        GETEX applies the lifetime this session had when this process last
        read or wrote it (else the one the previous session had); in the
        rare case that it differs, an EXPIRE follows to correct it.
        """
        key = self._key(sid)
        guess = self._lifetime(sid)
        with _undecodable_is_corrupt():
            value = self.client.getex(key, ex=guess) if guess > 0 else self.client.get(key)
        document = self._loaded(sid, value)
        lifetime = None if document is None else self._correction(sid, document, guess)
        if lifetime is not None:
            # As connect-redis' touch: EXPIRE, which deletes for a TTL <= 0.
            self.client.expire(key, lifetime)
        return document

    def set(self, sid: str, session: Document) -> None:
        ttl = self._written(sid, session)
        if ttl > 0:
            self.client.set(self._key(sid), self.encoded(session), ex=ttl)
        else:
            self.client.delete(self._key(sid))

    def destroy(self, sid: str) -> bool:
        # DEL counts only keys that existed and had not expired.
        return bool(self.client.delete(self._key(sid)))

    def touch(self, sid: str, session: Document) -> None:
        # As connect-redis: EXPIRE, which deletes the key for a TTL <= 0.
        self.client.expire(self._key(sid), self._written(sid, session))

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        """Write only the changed members, atomically, in one round trip.

        If the stored value is still the one :meth:`get` or
        :meth:`get_and_touch` read in this process (the usual case), the new
        document built here replaces it; if another request wrote meanwhile,
        the server splices the changes into what it holds. Both paths are one Lua script
        (``MERGE_SCRIPT``), so a contended session costs no extra round trip.
        Where the server has ``SET ... IFEQ`` (Valkey 8.1+, Redis 8.4+), the
        usual case is that command instead (``SET key new IFEQ old``, with
        ``KEEPTTL`` or ``EX``), cheaper than a script for both sides; if the
        value changed since it was read, the script follows (a second round
        trip, only under contention). Whether the server has it is learnt
        from the first such merge (a server without it answers an error and
        writes nothing).
        A stored value longer than :data:`SCRIPT_LIMIT` is never read by a
        script: it is merged here, in an optimistic transaction (see
        :meth:`_merge_by_swap`).

        :raises SessionTooLarge: the merged document would be longer than
            :attr:`max_size`; nothing is written.
        """
        removed = list(removed)
        plan = self._merge_plan(sid, changes, removed)
        if not plan.swap:
            key = self._key(sid)
            command = self._compare_and_set(key, plan)
            if command is not None:
                try:
                    reply = self.client.execute_command(*command)
                    if self._compare_and_set_done(sid, plan, reply):
                        return True
                except Exception as exc:
                    if not self._compare_and_set_refused(exc):
                        raise
            result = self._run(self._merge, key, self._script_args(plan, changes, removed))
            merged = self._merge_outcome(sid, plan, result)
            if merged is not None:
                return merged
        return self._merge_by_swap(sid, changes, removed, plan.ttl)

    def _run(self, script: t.Any, key: bytes | str, args: list[t.Any]) -> t.Any:
        """Run a registered script on one key: ``EVALSHA``, loading the
        script on ``NOSCRIPT``, as redis-py's ``Script`` does without its
        per-call work (12 µs a call: benchmarks/README.md, "Issue 26").
        """
        try:
            return self.client.evalsha(script.sha, 1, key, *args)
        except Exception as exc:
            if not is_noscript_error(exc):
                raise
        script.sha = self.client.script_load(script.script)
        return self.client.evalsha(script.sha, 1, key, *args)

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
            self.client.get_node_from_key(key).redis_connection if self.cluster else self.client
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
                    self._queue_write(pipe, key, new, ttl)
                    pipe.execute()
                    return True
                except Exception as exc:
                    if not is_watch_error(exc):
                        raise
        raise RuntimeError(f"merge of a session lost {SWAP_ATTEMPTS} races in a row")

    def _keys(self, prefix: str | None = None) -> cabc.Iterator[bytes | str]:
        scan = self._scan(prefix)
        return (key for key in self.client.scan_iter(**scan.kwargs) if scan.wanted(key))

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
        return (key for key, value in self._entries() if self._holds_session(value))

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
        entries = self._entries(self.revoked_prefix)
        return (key for key, value in entries if self._revoked_at(value) is not None)

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

    def _update_key(self, key: bytes | str, until: str, sids: cabc.Iterable[str]) -> int:
        return int(self._run(self._index, key, self._index_args(until, sids)))

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
        sids = _members(self.client.zrange(key, *self._outlived_range(), byscore=True))
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
        self._update_key(self.index_prefix + user, str(math.ceil(until * 1000)), [sid])

    def index_remove(self, user: str, sid: str) -> None:
        self._update_key(self.index_prefix + user, "", [sid])

    def index_revoke(self, user: str, at: float, until: float) -> None:
        # One string key (one slot on a cluster), gone by itself at ``until``.
        self.client.set(
            self.revoked_prefix + user, str(int(at * 1000)), pxat=math.ceil(until * 1000)
        )

    def index_revoked(self, user: str) -> float | None:
        return self._revoked_at(self.client.get(self.revoked_prefix + user))

    def index_sessions(self, user: str) -> dict[str, Document]:
        """Read ``user``'s index and their sessions: two round trips (a
        ``ZRANGE`` and a pipeline of ``GET`` s, which a cluster client sends
        to each node concurrently), plus one to drop entries whose session is
        gone.
        """
        key = self.index_prefix + user
        sids = _members(self.client.zrange(key, f"({_now_ms()}", "+inf", byscore=True))
        if not sids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.get(self._key(sid))
        with _undecodable_is_corrupt():
            values, gone = _found(sids, pipe.execute())
        if gone:
            self._update_key(key, "", gone)
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
