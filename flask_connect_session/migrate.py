"""Taking over legacy sessions (Flask's cookie session, Flask-Session), so
that switching to this extension logs no one out (``CONNECT_SESSION_MIGRATE_FROM``).

Each kind of legacy session is one small :class:`LegacySource`, built once at
``init_app``. On a request with no valid session of ours, the session core asks
(:class:`~.calls.TakeOver`) the sources whose cookie the request carries;
the first whose cookie verifies gives its data to a brand-new session (new
id). The end of the request deletes the legacy cookies and, once our copy is
saved, the legacy record. Nothing here ever unpickles.
"""

from __future__ import annotations

import abc
import collections.abc as cabc
import dataclasses
import functools
import logging
import re
import typing as t
from datetime import timedelta

from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadData
from itsdangerous import Signer
from itsdangerous import URLSafeTimedSerializer
from itsdangerous import want_bytes

from .calls import Blocking
from .document import COOKIE_MEMBER
from .document import is_reserved
from .errors import StoreError
from .options import _COOKIE_NAME
from .options import parse_bool
from .options import parse_seconds
from .serialization import check_finite
from .serialization import dumps_data
from .stores import missing_package

if t.TYPE_CHECKING:
    from flask import Config
    from flask import Flask
    from werkzeug.wrappers import Response

    from .calls import Steps

logger = logging.getLogger("flask_connect_session")

#: The config key this module parses.
CONFIG_KEY = "CONNECT_SESSION_MIGRATE_FROM"

#: A Flask-Session id as a cookie may carry it: printable ASCII, bounded, so
#: a client cannot make us look up arbitrary keys.
_SID = re.compile(r"[\x21-\x7e]{1,256}")

# Flask's own cookie session: its serializer, salt and digest are reused
# rather than re-implemented.
_flask_cookie_sessions = SecureCookieSessionInterface()


@dataclasses.dataclass(frozen=True)
class LegacyCookie:
    """A legacy session cookie: its name, and the attributes it was set with
    (needed to delete it).
    """

    #: Cookie name.
    name: str
    #: Cookie ``Path``.
    path: str
    #: Cookie ``Domain``, or ``None``.
    domain: str | None
    #: Flask's ``SESSION_COOKIE_SECURE``.
    secure: bool
    #: Flask's ``SESSION_COOKIE_HTTPONLY``.
    httponly: bool
    #: Flask's ``SESSION_COOKIE_SAMESITE``.
    samesite: str | None
    #: Flask's ``SESSION_COOKIE_PARTITIONED``.
    partitioned: bool

    def delete(self, response: Response) -> None:
        """Delete the cookie, with the attributes Flask deletes its own with."""
        response.delete_cookie(
            self.name,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            httponly=self.httponly,
            samesite=self.samesite,
            partitioned=self.partitioned,
        )


class Found(t.NamedTuple):
    """A legacy session whose cookie verified."""

    #: The legacy session's data.
    data: dict[str, t.Any]
    #: What :meth:`LegacySource.discard` removes once our copy is saved.
    record: str | None = None


class LegacySource(abc.ABC):
    """One kind of legacy session this app can take over.

    :param cookie: the legacy cookie.

    .. versionadded:: 0.1
    """

    #: The ``type`` of its ``CONNECT_SESSION_MIGRATE_FROM`` table.
    type: t.ClassVar[str]

    def __init__(self, cookie: LegacyCookie) -> None:
        #: The legacy cookie.
        self.cookie = cookie

    @abc.abstractmethod
    def take_over(self, value: str, app: Flask) -> Found | None:
        """Return the legacy session a cookie value names, or ``None`` if the
        value does not verify or its session cannot be read (logged).

        :param app: the application, whose secrets verify the cookie.

        :raises StoreError: the legacy store failed.
        """

    def discard(self, record: str) -> None:  # noqa: B027 (optional: cookies hold no record)
        """Remove a legacy record once its data is saved as our session.
        Failures are logged, not raised: the record expires by itself.
        """


def _flask_keys(app: Flask) -> list[bytes]:
    # Flask's order: fallbacks first, the current key last (itsdangerous
    # verifies with all of them).
    keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key or ""]
    return [want_bytes(key) for key in keys]


def _flask_serializer(app: Flask) -> URLSafeTimedSerializer | None:
    """Flask's cookie session serializer, as
    :meth:`~flask.sessions.SecureCookieSessionInterface.get_signing_serializer`
    makes it, for a Flask app or a Quart app (whose config may have no
    ``SECRET_KEY_FALLBACKS``, which Flask's method requires); ``None``
    without a secret key.
    """
    if not app.secret_key:
        return None
    sessions = _flask_cookie_sessions
    return URLSafeTimedSerializer(
        _flask_keys(app),
        salt=sessions.salt,
        serializer=sessions.serializer,
        signer_kwargs={
            "key_derivation": sessions.key_derivation,
            "digest_method": sessions.digest_method,
        },
    )


class FlaskCookieSource(LegacySource):
    """Flask's built-in signed cookie session, verified exactly as
    :class:`flask.sessions.SecureCookieSessionInterface` verifies it (with the
    app's ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` of the moment): the data
    is in the cookie, so there is no record to discard.

    :param cookie: the legacy cookie.
    :param max_age: Flask's ``PERMANENT_SESSION_LIFETIME`` in seconds: older
        cookies are refused, as Flask refuses them.

    .. versionadded:: 0.1
    """

    type = "flask-cookie"

    def __init__(self, cookie: LegacyCookie, max_age: int) -> None:
        super().__init__(cookie)
        #: Oldest accepted cookie, in seconds.
        self.max_age = max_age

    def take_over(self, value: str, app: Flask) -> Found | None:
        serializer = _flask_serializer(app)
        if serializer is None:
            return None
        try:
            data = serializer.loads(value, max_age=self.max_age)
        except BadData:  # bad signature, expired, or an undecodable payload
            logger.info(
                "legacy %s cookie %r does not verify (tampered or expired): ignored",
                self.type,
                self.cookie.name,
            )
            return None
        return Found(data) if isinstance(data, dict) else None


class FlaskSessionSource(LegacySource):
    """Flask-Session 0.7/0.8 sessions kept in Redis: ``key_prefix + sid``
    holding msgpack (Flask-Session's default) or JSON, decoded with msgspec
    as Flask-Session decodes them. A pickled value (Flask-Session before 0.7,
    or planted) is never unpickled: it is logged and ignored.

    :param cookie: the legacy cookie.
    :param client: a redis-py (or valkey) client.
    :param key_prefix: Flask-Session's ``SESSION_KEY_PREFIX``.
    :param signed: Flask-Session's ``SESSION_USE_SIGNER``: the cookie is
        ``sid.signature``, signed as Flask-Session signs it (itsdangerous
        ``Signer``, salt ``"flask-session"``, HMAC key derivation) with
        ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS``.
    :raises ImportError: msgspec is not installed.

    .. versionadded:: 0.1
    """

    type = "flask-session"

    def __init__(
        self, cookie: LegacyCookie, client: t.Any, *, key_prefix: str, signed: bool
    ) -> None:
        try:
            import msgspec
        except ImportError as exc:
            raise ImportError(
                "reading Flask-Session sessions needs msgspec: pip install msgspec", name=exc.name
            ) from exc
        super().__init__(cookie)
        #: The Redis client.
        self.client = client
        #: Prefix of the legacy keys.
        self.key_prefix = key_prefix
        #: Whether the cookie carries a signed id.
        self.signed = signed
        # Flask-Session tries its format, then the other one.
        self._decoders = (msgspec.msgpack.Decoder(), msgspec.json.Decoder())
        self._decode_error = msgspec.DecodeError

    def _sid(self, value: str, app: Flask) -> str | None:
        if self.signed:
            signer = Signer(_flask_keys(app), salt="flask-session", key_derivation="hmac")
            try:
                value = signer.unsign(value).decode()
            except (BadData, UnicodeDecodeError):
                return None
        return value if _SID.fullmatch(value) else None

    def take_over(self, value: str, app: Flask) -> Found | None:
        sid = self._sid(value, app)
        if sid is None:
            logger.info(
                "legacy %s cookie %r does not verify: ignored", self.type, self.cookie.name
            )
            return None
        key = self.key_prefix + sid
        try:
            raw = self.client.get(key)
        except Exception as exc:
            logger.error(
                "legacy session store (Flask-Session) get failed (sid %.6s...): %r", sid, exc
            )
            raise StoreError(self, "get", sid) from exc
        if raw is None:
            logger.info(
                "legacy %s session (sid %.6s...) is gone from the store: ignored",
                self.type,
                sid,
            )
            return None
        data = self._decode(raw, sid)
        return None if data is None else Found(data, key)

    def _decode(self, raw: bytes | str, sid: str) -> dict[str, t.Any] | None:
        raw = raw.encode() if isinstance(raw, str) else raw
        for decoder in self._decoders:
            try:
                data = decoder.decode(raw)
            except self._decode_error:
                continue
            if isinstance(data, dict) and all(isinstance(k, str) for k in data):
                if isinstance(data.get(COOKIE_MEMBER), dict):
                    # One of our documents (or an Express app's) reached
                    # through the legacy prefix: never copied, never deleted.
                    logger.warning(
                        "legacy %s record (sid %.6s...) is a session document of ours or of"
                        " an Express app, not a Flask-Session session: ignored, left in place",
                        self.type,
                        sid,
                    )
                    return None
                return data
            break
        if raw[:1] == b"\x80" and raw.endswith(b"."):
            # Protocol 2+ pickles start with PROTO and end with STOP.
            logger.warning(
                "legacy %s session (sid %.6s...) is a pickle (Flask-Session before 0.7,"
                " or planted): never unpickled, ignored",
                self.type,
                sid,
            )
        else:
            logger.error(
                "legacy %s session (sid %.6s...) is not a msgpack or JSON object: ignored",
                self.type,
                sid,
            )
        return None

    def discard(self, record: str) -> None:
        try:
            self.client.delete(record)
        except Exception as exc:
            # Its cookie is deleted, so the record is unreachable; Redis
            # expires it at the end of its TTL.
            logger.error(
                "legacy session store (Flask-Session) delete failed, the record"
                " expires by itself: %r",
                exc,
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} prefix={self.key_prefix!r} cookie={self.cookie.name!r}>"


# -- one request -----------------------------------------------------------


@dataclasses.dataclass
class Takeover:
    """A request's takeover: what its legacy cookies gave, and what the end
    of the request removes.
    """

    #: The legacy sources whose cookie the request carried: all are deleted.
    present: list[LegacySource]
    #: The data taken over (empty if no legacy cookie verified).
    data: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    #: The source taken over, and its record to discard, if one verified.
    source: LegacySource | None = None
    record: str | None = None

    def finish(self, sid: str | None) -> Steps[None]:
        """Discard the legacy record once our copy is saved, and log it.

        :param sid: our stored session's id, or ``None`` if the request
            ended it (logged out on the very request that took it over).
        """
        source = self.source
        if source is None:
            return
        if self.record is not None:
            yield Blocking(functools.partial(source.discard, self.record))
        if sid is not None:
            logger.info(
                "took over a legacy %s session (cookie %r) as sid %.6s...",
                source.type,
                source.cookie.name,
                sid,
            )
        else:  # logged out on the very request that took it over
            logger.info("took over a legacy %s session and ended it", source.type)

    def refuse(self) -> Steps[None]:
        """Delete, rather than take over, the legacy session found (its user
        logged out everywhere since the switch); the legacy cookies are still
        deleted at the end of the request.
        """
        source, record = self.source, self.record
        self.source = self.record = None
        self.data = {}
        if source is None:
            return
        if record is not None:
            yield Blocking(functools.partial(source.discard, record))
        logger.info(
            "legacy %s session of a user who was logged out everywhere since:"
            " deleted, not taken over",
            source.type,
        )


def _clean(data: dict[str, t.Any], source: LegacySource) -> dict[str, t.Any] | None:
    """Return legacy data ready to be stored as ours, or ``None`` (logged)."""
    reserved = [k for k in data if is_reserved(k)]
    if reserved:
        logger.warning(
            "legacy %s session: dropped keys reserved in our documents: %s",
            source.type,
            ", ".join(sorted(reserved)),
        )
        data = {k: v for k, v in data.items() if k not in reserved}
    try:
        check_finite(*dumps_data(data), {})
    except TypeError as exc:
        logger.error("legacy %s session ignored: %s", source.type, exc)
        return None
    return data


def find(
    app: t.Any, cookies: cabc.Mapping[str, str], sources: cabc.Sequence[LegacySource]
) -> Takeover | None:
    """Return the takeover of a request with no session of ours: the data of
    the first legacy session its cookies name that verifies, and which
    legacy cookies and record the end of the request removes; ``None`` if it
    carries no legacy cookie.

    :param app: the application (its secrets verify legacy cookies).
    :param cookies: the request's cookies.
    :raises StoreError: a legacy store failed; nothing legacy is deleted.
    """
    present = [source for source in sources if cookies.get(source.cookie.name)]
    if not present:
        return None
    takeover = Takeover(present)
    for source in present:
        found = source.take_over(cookies[source.cookie.name], app)
        cleaned = None if found is None else _clean(found.data, source)
        if found is not None and cleaned is not None:
            takeover.source, takeover.record, takeover.data = source, found.record, cleaned
            break
    return takeover


#: Loopback names: one server, whichever a URL uses.
_LOOPBACK = frozenset(("localhost", "127.0.0.1", "::1", "[::1]"))


def redis_server(client: t.Any) -> tuple[object, ...] | None:
    """Return what names the Redis keyspace ``client`` talks to: its host
    (the loopback names counted as one) and port, or its Unix socket, and
    its database number; ``None`` if the client does not tell (Cluster,
    Sentinel, or another kind), which counts as the same as any other.
    """
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict) or type(pool).__name__.startswith("Sentinel"):
        return None
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return ("unix", kwargs["path"], db)
    host = kwargs.get("host")
    if not isinstance(host, str):
        return None
    host = host.lower()
    return ("loopback" if host in _LOOPBACK else host, kwargs.get("port", 6379), db)


def check_prefixes(sources: cabc.Sequence[LegacySource], store: object) -> None:
    """Refuse a Flask-Session source whose keys could be ours.

    When the legacy Redis may be our store's Redis (see :func:`redis_server`)
    its ``key_prefix`` must be neither an extension nor the beginning of our
    key prefix, index prefix or revoke records' prefix: a legacy cookie could
    otherwise name one of our sessions, to be copied and deleted.

    :raises ValueError: naming ``CONNECT_SESSION_MIGRATE_FROM[i]['key_prefix']``.
    """
    from .stores.redis import RedisStore

    if not isinstance(store, RedisStore):
        return
    ours = {
        "CONNECT_SESSION_KEY_PREFIX": store.key_prefix,
        "the user index keys": store.index_prefix,
        "the revoke records": store.revoked_prefix,
    }
    where_ours = redis_server(store.client)
    for index, source in enumerate(sources):
        if not isinstance(source, FlaskSessionSource):
            continue
        where = redis_server(source.client)
        if where is not None and where_ours is not None and where != where_ours:
            continue
        for name, prefix in ours.items():
            legacy = source.key_prefix
            if legacy.startswith(prefix) or prefix.startswith(legacy):
                raise ValueError(
                    f"{CONFIG_KEY}[{index}]['key_prefix']: {legacy!r} overlaps {name}"
                    f" ({prefix!r}) on the same Redis: keep them apart"
                    " (Flask-Session's default is 'session:', ours 'sess:')"
                )


# -- configuration -----------------------------------------------------------

_COMMON_KEYS = frozenset(("type", "cookie", "path", "domain"))
_KEYS = {
    FlaskCookieSource.type: _COMMON_KEYS,
    FlaskSessionSource.type: _COMMON_KEYS | {"store", "key_prefix", "signed"},
}


def _legacy_cookie(config: Config, table: cabc.Mapping[str, t.Any], where: str) -> LegacyCookie:
    name = table.get("cookie", config.get("SESSION_COOKIE_NAME") or "session")
    if not isinstance(name, str) or not _COOKIE_NAME.fullmatch(name):
        raise ValueError(f"{where}['cookie']: not a cookie name: {name!r}")
    path = table.get("path", config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT"))
    domain = table.get("domain", config.get("SESSION_COOKIE_DOMAIN") or None)
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}['path']: expected a path, got {path!r}")
    if domain is not None and not isinstance(domain, str):
        raise ValueError(f"{where}['domain']: expected a string, got {domain!r}")
    return LegacyCookie(
        name=name,
        path=path,
        domain=domain,
        secure=bool(config.get("SESSION_COOKIE_SECURE", False)),
        httponly=bool(config.get("SESSION_COOKIE_HTTPONLY", True)),
        samesite=config.get("SESSION_COOKIE_SAMESITE"),
        partitioned=bool(config.get("SESSION_COOKIE_PARTITIONED", False)),
    )


def _redis_client(value: object, where: str) -> t.Any:
    if isinstance(value, str):
        from .stores.redis import client_from_url

        try:
            return client_from_url(value)
        except ValueError:
            # The message would quote the URL, password included.
            raise ValueError(
                f"{where}: expected a redis://, rediss://, unix:// or valkey:// URL"
                " (with a database number as its path, if any)"
            ) from None
    if callable(getattr(value, "get", None)) and callable(getattr(value, "delete", None)):
        return value  # a ready redis-py or valkey client
    raise ValueError(f"{where}: expected a Redis URL or client, got {type(value).__name__}")


def _source(config: Config, table: object, where: str) -> LegacySource:
    if not isinstance(table, cabc.Mapping):
        raise ValueError(f"{where}: expected a table, got {table!r}")
    kind = table.get("type")
    if kind not in _KEYS:
        known = ", ".join(repr(name) for name in _KEYS)
        raise ValueError(f"{where}['type']: expected one of {known}, got {kind!r}")
    for given in table:
        if given not in _KEYS[kind]:
            raise ValueError(f"{where}[{given!r}]: unknown setting for type {kind!r}")
    cookie = _legacy_cookie(config, table, where)
    signed = parse_bool(f"{where}['signed']", table.get("signed", False))
    if (kind == FlaskCookieSource.type or signed) and not config.get("SECRET_KEY"):
        raise ValueError(f"{where}: needs SECRET_KEY (the old app's) to verify legacy cookies")
    if kind == FlaskCookieSource.type:
        lifetime = config.get("PERMANENT_SESSION_LIFETIME", timedelta(days=31))
        max_age = parse_seconds("PERMANENT_SESSION_LIFETIME", lifetime, allow_none=False)
        return FlaskCookieSource(cookie, int(t.cast(float, max_age)))
    if "store" not in table:
        raise ValueError(f"{where}['store']: required for type {kind!r}")
    prefix = table.get("key_prefix", "session:")
    if not isinstance(prefix, str):
        raise ValueError(f"{where}['key_prefix']: expected a string, got {prefix!r}")
    if not prefix:
        # A cookie could then name (and have deleted) any key of that Redis.
        raise ValueError(f"{where}['key_prefix']: must not be empty")
    client = _redis_client(table["store"], f"{where}['store']")
    return FlaskSessionSource(cookie, client, key_prefix=prefix, signed=signed)


def parse_migrate_from(config: Config, key: str) -> tuple[LegacySource, ...]:
    """Build the legacy sources ``CONNECT_SESSION_MIGRATE_FROM`` lists.

    :param key: our cookie name, which no legacy cookie may share.
    :raises ValueError: a source is misconfigured; the message names the
        key, e.g. ``CONNECT_SESSION_MIGRATE_FROM[0]['type']``.
    :raises ValueError: also for a Flask-Session source without msgspec
        or redis-py, naming the package to install.
    """
    tables = config.get(CONFIG_KEY) or ()
    if not isinstance(tables, list | tuple):
        raise ValueError(f"{CONFIG_KEY}: expected a list of tables, got {tables!r}")
    sources = []
    for index, table in enumerate(tables):
        where = f"{CONFIG_KEY}[{index}]"
        try:
            source = _source(config, table, where)
        except ImportError as exc:
            missing = missing_package(exc)
            if missing is None:
                raise
            raise ValueError(f"{where}: {missing}") from None
        if source.cookie.name == key:
            raise ValueError(
                f"{where}['cookie']: the legacy cookie {key!r} must differ from"
                " CONNECT_SESSION_KEY (ours replaces it)"
            )
        sources.append(source)
    return tuple(sources)
