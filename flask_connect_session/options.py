"""``CONNECT_SESSION_*`` configuration, parsed and validated once."""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import difflib
import importlib
import logging
import re
import typing as t
from datetime import timedelta

from .cookie import MAX_LIFETIME
from .cookie import Priority
from .cookie import SameSite
from .cookie import normalize_priority
from .cookie import normalize_samesite
from .cookie import to_seconds
from .cookie import valid_domain
from .document import is_reserved
from .protect import MIN_KEY_LENGTH
from .signing import generate_sid
from .stores.base import DEFAULT_MAX_SIZE
from .stores.base import DEFAULT_TTL
from .stores.base import split_table_name

if t.TYPE_CHECKING:
    from flask import Config
    from werkzeug.sansio.request import Request

logger = logging.getLogger("flask_connect_session")

Unset = t.Literal["destroy", "keep"]

#: The prefix of every setting of this extension.
PREFIX = "CONNECT_SESSION_"

#: Every setting, without :data:`PREFIX`: a new setting is one more line
#: here (and its ``confval`` in docs/configuration.rst). Any other key with
#: the prefix is a typo, a ``ValueError`` at ``init_app``.
SETTINGS = (
    "KEY",
    "SECRET",
    "COOKIE",
    "PROXY",
    "STORE",
    "ROLLING",
    "RESAVE",
    "SAVE_UNINITIALIZED",
    "UNSET",
    "GENID",
    "KEY_PREFIX",
    "TTL",
    "ABSOLUTE_TIMEOUT",
    "TOUCH_AFTER",
    "USER_KEY",
    "HEADER",
    "SQL_TABLE",
    "MIGRATE_FROM",
    "MAX_SIZE",
    "REGENERATE_DROP",
    "MAX_PER_USER",
    "KEEP_ON_DESTROY",
    "HASH_IDS",
    "ENCRYPT",
)

#: Every ``CONNECT_SESSION_*`` key this extension reads.
KNOWN_KEYS = frozenset(PREFIX + name for name in SETTINGS)

#: How alike (:class:`difflib.SequenceMatcher` ratio, separators and case
#: ignored) a key without our prefix must be to one of ours to be warned
#: about: ``CONNECT_SESION_TTL`` is, Flask-Session's ``SESSION_KEY_PREFIX``
#: (0.82 to ``CONNECT_SESSION_KEY_PREFIX``) is not.
NEAR_MISS_RATIO = 0.9


def _squeeze(key: str) -> str:
    # Case and separators ignored: "connect-session-store" is a near miss.
    return re.sub(r"[^0-9A-Z]", "", key.upper())


_SQUEEZED_KEYS = {_squeeze(key): key for key in sorted(KNOWN_KEYS)}


def check_keys(config: cabc.Mapping[str, t.Any]) -> None:
    """Refuse unknown settings, and warn about keys that look like ours.

    A ``CONNECT_SESSION_*`` key that is not a setting is a typo (such as
    ``CONNECT_SESSION_STOR``, which would otherwise leave the app on the
    per-process memory store): a ``ValueError`` naming it and the closest
    setting. A key that nearly has the prefix (``CONNECT_SESION_TTL``,
    ``CONNECT_SESSIONS_STORE``, ``connect_session_store``, the environment
    variable's ``FLASK_CONNECT_SESSION_STORE``) may be another extension's,
    so it is only logged as a warning naming the setting it resembles.

    :raises ValueError: an unknown ``CONNECT_SESSION_*`` key, naming it.
    """
    for key in sorted(k for k in config if isinstance(k, str) and k not in KNOWN_KEYS):
        if key.startswith(PREFIX):
            raise ValueError(f"{key}: {_unknown_setting(key[len(PREFIX) :])}")
        resembled = _resembled_key(key)
        if resembled is not None:
            logger.warning("%s is not a setting and is ignored; did you mean %s?", key, resembled)


def _unknown_setting(name: str) -> str:
    # Compared without the shared prefix, which would make any key close.
    close = difflib.get_close_matches(name.strip("_"), SETTINGS, n=1)
    if close:
        return f"not a setting; did you mean {PREFIX}{close[0]}?"
    closest = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0)
    return (
        f"not a setting of flask-connect-session (closest: {PREFIX}{closest[0]};"
        " every setting is in docs/configuration.rst)"
    )


def _resembled_key(key: str) -> str | None:
    """The setting ``key`` nearly names, if any (``key`` lacks our prefix)."""
    squeezed = _squeeze(key)
    best, best_ratio = None, NEAR_MISS_RATIO
    for candidate, known in _SQUEEZED_KEYS.items():
        if squeezed.endswith(candidate):  # FLASK_CONNECT_SESSION_..., case
            return known
        matcher = difflib.SequenceMatcher(None, squeezed, candidate, autojunk=False)
        if matcher.real_quick_ratio() >= best_ratio and matcher.ratio() >= best_ratio:
            best, best_ratio = known, matcher.ratio()
    return best


GenId = cabc.Callable[["Request"], str]

#: A cookie name: an RFC 6265 token (no spaces, separators or controls).
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A header name is the same kind of token (RFC 9110).
_HEADER_NAME = _COOKIE_NAME
#: Headers that cannot carry the session id: browsers send them on their own
#: (a header session would then be open to CSRF) or WSGI keeps them apart.
_RESERVED_HEADERS = frozenset(
    (
        "cookie",
        "set-cookie",
        "authorization",
        "proxy-authorization",
        "content-type",
        "content-length",
    )
)
#: Standard request headers browsers send by themselves (the Fetch
#: standard's forbidden names, caching, client hints, EventSource, <a ping>,
#: service workers, prefetches...), or that a page's script may send to
#: another origin without a CORS preflight (the CORS-safelisted ones): with
#: one of them every browser request would be a header request, or a
#: forged one could carry a session.
_BROWSER_HEADERS = frozenset(
    (
        "accept",
        "alt-used",
        "attribution-reporting-eligible",
        "attribution-reporting-support",
        "available-dictionary",
        "cache-control",
        "connection",
        "cookie2",
        "date",
        "device-memory",
        "dictionary-id",
        "dnt",
        "downlink",
        "dpr",
        "early-data",
        "ect",
        "expect",
        "host",
        "http2-settings",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "keep-alive",
        "last-event-id",
        "origin",
        "ping-from",
        "ping-to",
        "pragma",
        "priority",
        "purpose",
        "range",
        "referer",
        "rtt",
        "save-data",
        "service-worker",
        "service-worker-navigation-preload",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "upgrade-insecure-requests",
        "user-agent",
        "via",
        "viewport-width",
        "width",
        "x-moz",
        "x-requested-with",
    )
)
#: Prefixes of whole families of such headers (``Accept-Language``,
#: ``Content-Language``, ``Sec-Fetch-Site``, ``Sec-CH-UA``...).
_BROWSER_HEADER_PREFIXES = ("accept-", "access-control-request-", "content-", "proxy-", "sec-")

_TRUE = frozenset(("true", "1", "yes", "on"))
_FALSE = frozenset(("false", "0", "no", "off"))


def parse_bool(key: str, value: object) -> bool:
    """Return a boolean config value.

    Accepts ``True``/``False``, the integers 1 and 0 (what
    ``from_prefixed_env`` makes of ``=1``) and the strings
    true/false/1/0/yes/no/on/off in any case.

    :raises ValueError: anything else, naming ``key``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"{key}: expected a boolean, got {value!r}")


def parse_seconds(key: str, value: object, *, allow_none: bool = True) -> float | None:
    """Return a duration in seconds from a number or a timedelta.

    :raises ValueError: a negative, non-numeric or (unless allowed) ``None``
        value, naming ``key``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ValueError(f"{key}: expected seconds (a number or timedelta), got {value!r}")
    seconds = to_seconds(value)
    if not 0 <= seconds <= MAX_LIFETIME:  # negative, NaN, infinite or absurd
        raise ValueError(f"{key}: expected 0 to {MAX_LIFETIME} seconds, got {value!r}")
    return seconds


def _parse_size(key: str, value: object) -> int:
    """Return a size in bytes: a whole number, 0 or more.

    :raises ValueError: anything else, naming ``key``.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # from an environment variable
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: expected a whole number of bytes (0: no limit), got {value!r}")
    return value


def _parse_str(key: str, value: object, *, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return value


def _parse_table(key: str, value: object) -> str:
    name = t.cast(str, _parse_str(key, value))
    try:
        split_table_name(name)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    return name


def _parse_secrets(key: str, value: object) -> tuple[str | bytes, ...]:
    items = [value] if isinstance(value, str | bytes) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"{key}: expected a secret or a non-empty list of secrets")
    for item in items:
        if not isinstance(item, str | bytes) or not item:
            raise ValueError(f"{key}: every secret must be a non-empty string, got {item!r}")
    return tuple(items)


def _parse_data_keys(key: str, value: object) -> tuple[str, ...]:
    """Return a list of session data keys as a tuple.

    :raises ValueError: not a list of non-empty strings, or one of them is
        reserved (``cookie``...), naming ``key``. A bare string is refused:
        from an environment variable it would otherwise be a list of letters.
    """
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValueError(f"{key}: expected a list of session data keys, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item or is_reserved(item):
            raise ValueError(f"{key}: not a session data key: {item!r}")
    return tuple(value)


def _parse_prefix(key: str, value: object) -> str:
    prefix = t.cast(str, _parse_str(key, value))
    # Without a prefix, store-wide commands (``flask session clear``) would
    # reach every key of a shared Redis.
    if not prefix:
        raise ValueError(f"{key}: must not be empty (it keeps sessions apart from other keys)")
    return prefix


def _parse_genid(key: str, value: object) -> GenId:
    if callable(value):
        return t.cast(GenId, value)
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a callable or an import path, got {value!r}")
    module_name, colon, attr = value.partition(":")
    if not colon:
        module_name, _, attr = value.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        # TypeError: a relative path (".mod") with no package to resolve it.
        raise ValueError(f"{key}: cannot import {value!r}: {exc}") from exc
    if not callable(target):
        raise ValueError(f"{key}: {value!r} is not callable")
    return t.cast(GenId, target)


def _parse_header(key: str, value: object) -> str | None:
    header = _parse_str(key, value, allow_none=True)
    if header is None:
        return None
    if not _HEADER_NAME.fullmatch(header):
        raise ValueError(f"{key}: not a header name (an HTTP token): {header!r}")
    if header.lower() in _RESERVED_HEADERS:
        raise ValueError(f"{key}: {header!r} cannot carry the session id; use e.g. X-Session-Id")
    if header.lower() in _BROWSER_HEADERS or header.lower().startswith(_BROWSER_HEADER_PREFIXES):
        raise ValueError(
            f"{key}: browsers send {header!r} by themselves (or let any page's script"
            " send it), so it cannot carry the session id; use e.g. X-Session-Id"
        )
    return header


@dataclasses.dataclass(frozen=True)
class CookieOptions:
    """The cookie table, resolved against Flask's ``SESSION_COOKIE_*`` keys."""

    #: Cookie ``Path``.
    path: str = "/"
    #: Cookie ``Domain``.
    domain: str | None = None
    #: Cookie ``HttpOnly``.
    httponly: bool = True
    #: ``True``, ``False`` or ``"auto"`` (secure iff the request is).
    secure: bool | t.Literal["auto"] = False
    #: ``Strict``, ``Lax``, ``None``, ``"auto"`` or ``None`` (attribute left out).
    samesite: SameSite | t.Literal["auto"] | None = None
    #: Cookie ``Partitioned``.
    partitioned: bool = False
    #: Cookie ``Priority``.
    priority: Priority | None = None
    #: Lifetime in seconds; ``None`` for a browser-session cookie.
    max_age: float | None = None


# Accepted cookie-table keys -> CookieOptions field. camelCase keys are
# express's; maxAge is in milliseconds there, so it is converted.
_COOKIE_KEYS = {
    "path": "path",
    "domain": "domain",
    "httponly": "httponly",
    "http_only": "httponly",
    "httpOnly": "httponly",
    "secure": "secure",
    "samesite": "samesite",
    "same_site": "samesite",
    "sameSite": "samesite",
    "partitioned": "partitioned",
    "priority": "priority",
    "max_age": "max_age",
    "maxAge": "max_age",
}


def _parse_user_key(key: str, value: object) -> str | None:
    user_key = _parse_str(key, value, allow_none=True)
    if user_key == "" or is_reserved(user_key):
        raise ValueError(f"{key}: expected a session data key, got {value!r}")
    return user_key


def _parse_max_per_user(key: str, value: object, user_key: str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: expected a whole number of sessions (1 or more), got {value!r}")
    if user_key is None:
        raise ValueError(f"{key}: needs CONNECT_SESSION_USER_KEY (whose sessions to count)")
    return value


def _parse_keys(key: str, value: object) -> tuple[str, ...] | None:
    """Encryption keys: a string or a list of strings, each at least
    :data:`~.protect.MIN_KEY_LENGTH` characters, all different.
    """
    if value is None:
        return None
    keys = [value] if isinstance(value, str) else value
    if not isinstance(keys, list | tuple) or not keys:
        raise ValueError(f"{key}: expected a key or a list of keys, got {type(value).__name__}")
    for item in keys:
        if not isinstance(item, str) or len(item) < MIN_KEY_LENGTH:
            raise ValueError(
                f"{key}: each key must be a string of at least {MIN_KEY_LENGTH}"
                " characters (flask session gen-key prints a new one)"
            )
    if len(set(keys)) != len(keys):
        raise ValueError(f"{key}: the same key is given twice")
    return tuple(keys)


def _is_auto(value: object) -> bool:
    return isinstance(value, str) and value.lower() == "auto"


def _parse_cookie(config: Config) -> CookieOptions:
    name = "CONNECT_SESSION_COOKIE"
    table = config.get(name) or {}
    if not isinstance(table, cabc.Mapping):
        raise ValueError(f"{name}: expected a table of cookie settings, got {table!r}")
    values: dict[str, object] = {
        "path": config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/",
        "domain": config.get("SESSION_COOKIE_DOMAIN") or None,
        "httponly": config.get("SESSION_COOKIE_HTTPONLY", True),
        "secure": config.get("SESSION_COOKIE_SECURE", False),
        "samesite": config.get("SESSION_COOKIE_SAMESITE"),
        "partitioned": config.get("SESSION_COOKIE_PARTITIONED", False),
    }
    # The key the user wrote for each field, so errors name it as written.
    written: dict[str, str] = {}
    for given, value in table.items():
        field = _COOKIE_KEYS.get(given)
        if field is None:
            close = difflib.get_close_matches(given, _COOKIE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{name}[{given!r}]: unknown cookie setting{hint}")
        if given == "maxAge" and value is not None:
            # express's unit: milliseconds.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"{name}['maxAge']: expected milliseconds (a number), got {value!r}"
                )
            value = value / 1000
        values[field] = value
        written[field] = given

    def key(field: str) -> str:
        return f"{name}[{written.get(field, field)!r}]"

    secure: bool | t.Literal["auto"] = "auto"
    if not _is_auto(values["secure"]):
        secure = parse_bool(key("secure"), values["secure"])
    samesite: SameSite | t.Literal["auto"] | None = "auto"
    if not _is_auto(values["samesite"]):
        try:
            samesite = normalize_samesite(values["samesite"])
        except ValueError as exc:
            raise ValueError(f"{key('samesite')}: {exc}") from None
    try:
        priority = normalize_priority(values.get("priority"))
    except ValueError as exc:
        raise ValueError(f"{key('priority')}: {exc}") from None
    domain = _parse_str(key("domain"), values["domain"], allow_none=True)
    if domain is not None and not valid_domain(domain):
        raise ValueError(f"{key('domain')}: not a domain a cookie can carry: {domain!r}")
    return CookieOptions(
        path=t.cast(str, _parse_str(key("path"), values["path"])),
        domain=domain,
        httponly=parse_bool(key("httponly"), values["httponly"]),
        secure=secure,
        samesite=samesite,
        partitioned=parse_bool(key("partitioned"), values["partitioned"]),
        priority=priority,
        max_age=parse_seconds(key("max_age"), values.get("max_age")),
    )


@dataclasses.dataclass(frozen=True)
class Options:
    """Every ``CONNECT_SESSION_*`` setting, parsed once at ``init_app``.

    Build it with :meth:`from_config`; request code only reads it.
    """

    #: Cookie name (express ``key``/``name``).
    key: str = "connect.sid"
    #: The cookie table.
    cookie: CookieOptions = CookieOptions()
    #: ``None``: trust ``request.is_secure``; ``True``: trust the first
    #: ``X-Forwarded-Proto``; ``False``: only the connection's own scheme.
    proxy: bool | None = None
    #: The store as configured: a URL, a ``Store`` or a cachelib cache.
    store: object = "memory://"
    #: Re-send the cookie on every response of a loaded session.
    rolling: bool = False
    #: Save unmodified sessions too.
    resave: bool = False
    #: Store new sessions even if nothing was written.
    save_uninitialized: bool = False
    #: What happens to a session emptied during a request.
    unset: Unset = "destroy"
    #: Makes new session ids; called with the request.
    genid: GenId = generate_sid
    #: Prefix of store keys.
    key_prefix: str = "sess:"
    #: Store lifetime (seconds) of sessions whose cookie has no expiry.
    ttl: int = DEFAULT_TTL
    #: Seconds after creation when a session is discarded; the count
    #: restarts at a login (with ``user_key``) or at ``regenerate()``
    #: (without).
    absolute_timeout: float | None = None
    #: The data key naming a session's user; turns on the per-user index.
    user_key: str | None = None
    #: Seconds: a loaded, unmodified session's store lifetime is extended at
    #: most once per this interval (0: on every request).
    touch_after: float = 0
    #: Flask's ``PERMANENT_SESSION_LIFETIME``, in seconds.
    permanent_lifetime: float = 31 * 86400
    #: Flask's ``SESSION_REFRESH_EACH_REQUEST``.
    refresh_each_request: bool = True
    #: The request header that carries the session id instead of the cookie
    #: (API clients), or ``None``.
    header: str | None = None
    #: Table of a URL-built ``SQLStore``: ``"table"`` or ``"schema.table"``.
    sql_table: str = "session"
    #: Largest stored session document, in bytes (0: no limit).
    max_size: int = DEFAULT_MAX_SIZE
    #: Data keys ``regenerate(keep=True)`` does not carry over.
    regenerate_drop: tuple[str, ...] = ("csrf_token",)
    #: Most live sessions a user keeps: a login beyond evicts the least
    #: recently seen (``None``: no limit).
    max_per_user: int | None = None
    #: Data keys ``destroy()`` carries into the new session of the rest of
    #: the request: instructions to code running later in it (Flask-Login's
    #: ``"_remember"``), not data of the user.
    keep_on_destroy: tuple[str, ...] = ("_remember",)
    #: Store each session under a hash of its id, not the id.
    hash_ids: bool = False
    #: Keys encrypting the stored data; the first encrypts, all decrypt
    #: (``None``: no encryption).
    encrypt: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, config: Config) -> Options:
        """Parse the ``CONNECT_SESSION_*`` keys of a Flask config.

        Secrets are not part of it: they are read per request
        (:func:`app_secrets`) and checked at ``init_app`` (:func:`check_secrets`).

        :raises ValueError: a value is invalid; the message names its key.
        """
        check_keys(config)
        get = config.get
        p = "CONNECT_SESSION_"
        unset = get(p + "UNSET", "destroy")
        if unset not in ("destroy", "keep"):
            raise ValueError(f"{p}UNSET: expected 'destroy' or 'keep', got {unset!r}")
        proxy = get(p + "PROXY")
        ttl = parse_seconds(p + "TTL", get(p + "TTL", DEFAULT_TTL), allow_none=False)
        key = t.cast(str, _parse_str(p + "KEY", get(p + "KEY", "connect.sid")))
        user_key = _parse_user_key(p + "USER_KEY", get(p + "USER_KEY"))
        if not _COOKIE_NAME.fullmatch(key):
            raise ValueError(f"{p}KEY: not a cookie name (an RFC 6265 token): {key!r}")
        return cls(
            key=key,
            cookie=_parse_cookie(config),
            proxy=None if proxy is None else parse_bool(p + "PROXY", proxy),
            store=get(p + "STORE", "memory://"),
            rolling=parse_bool(p + "ROLLING", get(p + "ROLLING", False)),
            resave=parse_bool(p + "RESAVE", get(p + "RESAVE", False)),
            save_uninitialized=parse_bool(
                p + "SAVE_UNINITIALIZED", get(p + "SAVE_UNINITIALIZED", False)
            ),
            unset=unset,
            genid=_parse_genid(p + "GENID", get(p + "GENID", generate_sid)),
            key_prefix=_parse_prefix(p + "KEY_PREFIX", get(p + "KEY_PREFIX", "sess:")),
            ttl=int(t.cast(float, ttl)),
            absolute_timeout=parse_seconds(p + "ABSOLUTE_TIMEOUT", get(p + "ABSOLUTE_TIMEOUT")),
            user_key=user_key,
            touch_after=t.cast(
                float,
                parse_seconds(p + "TOUCH_AFTER", get(p + "TOUCH_AFTER", 0), allow_none=False),
            ),
            permanent_lifetime=t.cast(
                float,
                parse_seconds(
                    "PERMANENT_SESSION_LIFETIME",
                    get("PERMANENT_SESSION_LIFETIME", timedelta(days=31)),
                    allow_none=False,
                ),
            ),
            refresh_each_request=parse_bool(
                "SESSION_REFRESH_EACH_REQUEST", get("SESSION_REFRESH_EACH_REQUEST", True)
            ),
            header=_parse_header(p + "HEADER", get(p + "HEADER")),
            sql_table=_parse_table(p + "SQL_TABLE", get(p + "SQL_TABLE", "session")),
            max_size=_parse_size(p + "MAX_SIZE", get(p + "MAX_SIZE", DEFAULT_MAX_SIZE)),
            regenerate_drop=_parse_data_keys(
                p + "REGENERATE_DROP", get(p + "REGENERATE_DROP", ["csrf_token"])
            ),
            max_per_user=_parse_max_per_user(
                p + "MAX_PER_USER", get(p + "MAX_PER_USER"), user_key
            ),
            keep_on_destroy=_parse_data_keys(
                p + "KEEP_ON_DESTROY", get(p + "KEEP_ON_DESTROY", ["_remember"])
            ),
            hash_ids=parse_bool(p + "HASH_IDS", get(p + "HASH_IDS", False)),
            encrypt=_parse_keys(p + "ENCRYPT", get(p + "ENCRYPT")),
        )


class App(t.Protocol):
    """What the extension reads of an app, Flask's or Quart's."""

    @property
    def config(self) -> cabc.Mapping[str, t.Any]:
        """The app's config."""

    @property
    def secret_key(self) -> str | bytes | None:
        """``SECRET_KEY``, or a class attribute of a subclass."""


def app_secrets(app: App) -> tuple[str | bytes, ...]:
    """Return the secrets in force now: ``CONNECT_SESSION_SECRET``, else
    ``app.secret_key`` as Flask reads it (``SECRET_KEY``, or a class
    attribute of a Flask subclass) followed by ``SECRET_KEY_FALLBACKS``; the
    first signs, all verify. Empty when there is none. Read on every request
    so a rotated secret applies without a restart (validated at
    ``init_app`` by :func:`check_secrets`).
    """
    secret = app.config.get("CONNECT_SESSION_SECRET")
    if secret is not None:
        return _as_secrets(secret)
    if not app.secret_key:
        return ()
    return (app.secret_key, *_as_secrets(app.config.get("SECRET_KEY_FALLBACKS") or ()))


def _as_secrets(value: t.Any) -> tuple[str | bytes, ...]:
    # A lone string is one secret, never a sequence of one-character ones.
    return (value,) if isinstance(value, str | bytes) else tuple(value)


def check_secrets(app: App) -> None:
    """Validate the secrets :func:`app_secrets` reads.

    :raises ValueError: a secret is not a non-empty string, naming the key.
    """
    config = app.config
    if config.get("CONNECT_SESSION_SECRET") is not None:
        _parse_secrets("CONNECT_SESSION_SECRET", config["CONNECT_SESSION_SECRET"])
        return
    if app.secret_key:
        _parse_secrets("SECRET_KEY", app.secret_key)
        fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
        if isinstance(fallbacks, str | bytes):
            # What from_prefixed_env leaves for a value that is not JSON.
            raise ValueError(
                "SECRET_KEY_FALLBACKS: expected a list of secrets, got a single"
                ' string (in an environment variable, write a JSON list: ["old secret"])'
            )
        if fallbacks:
            _parse_secrets("SECRET_KEY_FALLBACKS", list(fallbacks))
