"""The session cookie: expiry arithmetic and express-session's JSON form."""

from __future__ import annotations

import collections.abc as cabc
import re
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from werkzeug.http import dump_cookie

SameSite = t.Literal["Strict", "Lax", "None"]
Priority = t.Literal["Low", "Medium", "High"]

#: The longest lifetime, in seconds, a cookie or session may have (about 100
#: years; browsers cap cookies at 400 days anyway). Longer stored values are
#: treated as unreadable, longer configured ones rejected: past it, dates
#: leave the range Python and JavaScript can compute with.
MAX_LIFETIME = 100 * 365 * 86400

_SAMESITE: dict[str, SameSite] = {"strict": "Strict", "lax": "Lax", "none": "None"}
#: How strict each SameSite value is (left out counts as no promise).
_SAMESITE_RANK: dict[SameSite | None, int] = {None: 0, "None": 0, "Lax": 1, "Strict": 2}
_PRIORITY: dict[str, Priority] = {"low": "Low", "medium": "Medium", "high": "High"}


class CookieDocument(t.TypedDict, total=False):
    """The ``"cookie"`` member of a stored session, as express-session writes it."""

    originalMaxAge: float | None
    expires: str | None
    secure: bool
    httpOnly: bool
    domain: str
    path: str
    sameSite: str | bool
    partitioned: bool
    priority: str


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def to_seconds(value: float | timedelta) -> float:
    """Return a duration given in seconds or as a timedelta, in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def format_expires(when: datetime) -> str:
    """Format a datetime like JavaScript's ``Date.prototype.toJSON``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_expires(value: object) -> datetime | None:
    """Parse a stored ``expires`` (ISO 8601) as an aware UTC datetime;
    anything unreadable, or out of range once in UTC, gives ``None``.
    """
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            return when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def lifetime_seconds(value: object) -> float | None:
    """Return a stored lifetime in milliseconds (``originalMaxAge``) as
    seconds, or ``None`` unless it is a finite number within
    :data:`MAX_LIFETIME`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = value / 1000
    except OverflowError:  # an int beyond any float
        return None
    return seconds if abs(seconds) <= MAX_LIFETIME else None  # NaN compares False


def valid_domain(domain: str) -> bool:
    """Whether a ``Set-Cookie`` header can carry ``domain``: a host name
    (international names are IDNA-encoded), nothing that could end the
    attribute or the header.
    """
    try:
        encoded = domain.lstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _HOST.fullmatch(encoded) is not None


_HOST = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def normalize_samesite(value: object) -> SameSite | None:
    """Return the canonical SameSite value for a stored or configured one.

    Accepts express's forms (``true`` means Strict, ``false`` none, any case).

    :raises ValueError: the value is none of these.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "Strict"
    if isinstance(value, str) and value.lower() in _SAMESITE:
        return _SAMESITE[value.lower()]
    raise ValueError(f"invalid SameSite value {value!r}")


def normalize_priority(value: object) -> Priority | None:
    """Return the canonical Priority value (any case accepted).

    :raises ValueError: the value is not low, medium or high.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in _PRIORITY:
        return _PRIORITY[value.lower()]
    raise ValueError(f"invalid Priority value {value!r}")


def clocked(cookie: Cookie, clock: cabc.Callable[[], float] | None) -> Cookie:
    """Make ``cookie`` and its copies count expiries on ``clock`` (seconds
    since the epoch; ``None``: the wall clock), and return it.

    The session core gives the cookies it builds its own clock, so a clock
    a test passes to :class:`~.core.Core` moves their expiries too.
    """
    cookie._clock = clock
    return cookie


class Cookie:
    """The session's cookie, as ``session.cookie``.

    Mirrors express-session's ``Cookie``: ``expires`` is the source of truth,
    ``max_age`` is the time remaining until then, and ``original_max_age`` the
    lifetime the cookie was given, which :meth:`touch` restores. The other
    attributes are stored with the session, so a change made to them in a
    request applies to the cookie sent for this session from then on.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_expires",
        "original_max_age",
        "path",
        "domain",
        "httponly",
        "secure",
        "samesite",
        "partitioned",
        "priority",
        "_clock",
    )

    def __init__(
        self,
        *,
        max_age: float | timedelta | None = None,
        path: str = "/",
        domain: str | None = None,
        httponly: bool = True,
        secure: bool = False,
        samesite: SameSite | None = None,
        partitioned: bool = False,
        priority: Priority | None = None,
    ) -> None:
        # The wall clock unless the session core gave its own (see clocked).
        self._clock: cabc.Callable[[], float] | None = None
        self._expires: datetime | None = None
        #: The lifetime the cookie was given, in seconds; ``None`` for a
        #: browser-session cookie.
        self.original_max_age: float | None = None
        #: Cookie ``Path``.
        self.path = path
        #: Cookie ``Domain``; ``None`` for the request's host only.
        self.domain = domain
        #: Cookie ``HttpOnly``.
        self.httponly = httponly
        #: Cookie ``Secure``; a secure cookie is never sent over plain HTTP.
        self.secure = secure
        #: Cookie ``SameSite``.
        self.samesite: SameSite | None = samesite
        #: Cookie ``Partitioned`` (CHIPS).
        self.partitioned = partitioned
        #: Cookie ``Priority`` (a Chrome extension).
        self.priority: Priority | None = priority
        self.max_age = max_age

    @property
    def expires(self) -> datetime | None:
        """When the cookie expires (aware UTC), or ``None`` for a
        browser-session cookie. Setting ``None`` or ``False`` makes it a
        browser-session cookie; setting a datetime (naive means UTC) also sets
        :attr:`original_max_age` to the time remaining, as express does.
        """
        return self._expires

    @expires.setter
    def expires(self, value: datetime | t.Literal[False] | None) -> None:
        if value is None or value is False:
            self._expires = None
            self.original_max_age = None
            return
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        self._expires = value
        self.original_max_age = self.max_age

    @property
    def max_age(self) -> float | None:
        """Seconds until the cookie expires, or ``None`` for a browser-session
        cookie. Setting it (seconds or a timedelta) sets :attr:`expires` to now
        plus that and :attr:`original_max_age` to it.
        """
        if self._expires is None:
            return None
        return (self._expires - self._now()).total_seconds()

    @max_age.setter
    def max_age(self, value: float | timedelta | None) -> None:
        if value is None:
            self.expires = None
            return
        if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
            raise TypeError(f"max_age must be seconds or a timedelta, not {value!r}")
        seconds = to_seconds(value)
        if not abs(seconds) <= MAX_LIFETIME:
            raise ValueError(f"max_age must be at most {MAX_LIFETIME} seconds, not {value!r}")
        self._expires = self._now() + timedelta(seconds=seconds)
        self.original_max_age = seconds

    def _now(self) -> datetime:
        clock = self._clock
        return datetime.now(UTC) if clock is None else datetime.fromtimestamp(clock(), UTC)

    def touch(self) -> None:
        """Reset the expiry to now plus :attr:`original_max_age`."""
        if self.original_max_age is not None:
            self._expires = self._now() + timedelta(seconds=self.original_max_age)

    def to_document(self) -> CookieDocument:
        """Return the cookie in express-session's stored JSON form."""
        doc: CookieDocument = {
            "originalMaxAge": (
                None if self.original_max_age is None else round(self.original_max_age * 1000)
            ),
            "expires": None if self._expires is None else format_expires(self._expires),
            "secure": self.secure,
            "httpOnly": self.httponly,
            "path": self.path,
        }
        if self.domain is not None:
            doc["domain"] = self.domain
        if self.samesite is not None:
            doc["sameSite"] = self.samesite.lower()
        if self.partitioned:
            doc["partitioned"] = True
        if self.priority is not None:
            doc["priority"] = self.priority.lower()
        return doc

    @classmethod
    def from_document(cls, doc: t.Mapping[str, t.Any], defaults: Cookie) -> Cookie:
        """Rebuild a cookie from its stored JSON form.

        Members that are missing or unreadable (another app may have written
        the document) take their value from ``defaults``.

        :param doc: the stored ``"cookie"`` member.
        :param defaults: the cookie a new session would get.
        """
        cookie = defaults.copy()
        expires = parse_expires(doc.get("expires"))
        if expires is not None and abs((expires - cookie._now()).total_seconds()) > MAX_LIFETIME:
            expires = None
        cookie._expires = expires
        original = lifetime_seconds(doc.get("originalMaxAge"))
        if original is not None:
            cookie.original_max_age = original
        elif cookie._expires is None:
            cookie.original_max_age = None
        else:
            cookie.original_max_age = cookie.max_age
        if isinstance(doc.get("path"), str):
            cookie.path = doc["path"]
        domain = doc.get("domain")
        if isinstance(domain, str) and valid_domain(domain):
            cookie.domain = domain
        for member, attr in (
            ("httpOnly", "httponly"),
            ("secure", "secure"),
            ("partitioned", "partitioned"),
        ):
            if isinstance(doc.get(member), bool):
                setattr(cookie, attr, doc[member])
        try:
            if "sameSite" in doc:
                cookie.samesite = normalize_samesite(doc["sameSite"])
            if "priority" in doc:
                cookie.priority = normalize_priority(doc["priority"])
        except ValueError:
            pass  # keep the defaults for values no browser would accept either
        return cookie

    def at_least(self, config: Cookie) -> Cookie:
        """Make this cookie (a live session's) at least as strict as
        ``config`` (the cookie the configuration gives a new session), and
        return it: ``Secure`` and ``HttpOnly`` if either asks for them, the
        stricter ``SameSite`` of the two. So hardening the configuration
        hardens every live session at its next cookie.
        """
        self.secure = self.secure or config.secure
        self.httponly = self.httponly or config.httponly
        if _SAMESITE_RANK[config.samesite] > _SAMESITE_RANK[self.samesite]:
            self.samesite = config.samesite
        return self

    def copy(self) -> Cookie:
        """Return an independent copy of this cookie."""
        # Attribute by attribute (not a loop over __slots__): every loaded
        # session's cookie starts as a copy of the configured one.
        new = Cookie.__new__(Cookie)
        new._clock = self._clock
        new._expires = self._expires
        new.original_max_age = self.original_max_age
        new.path = self.path
        new.domain = self.domain
        new.httponly = self.httponly
        new.secure = self.secure
        new.samesite = self.samesite
        new.partitioned = self.partitioned
        new.priority = self.priority
        return new

    @property
    def requires_secure(self) -> bool:
        """Whether the cookie is sent with ``Secure``: when :attr:`secure` is
        set, and for ``SameSite=None`` or ``Partitioned``, which browsers
        reject without it.
        """
        return self.secure or self.samesite == "None" or self.partitioned

    def attributes(self) -> dict[str, t.Any]:
        """Return the attributes that scope the cookie, as keyword arguments
        of Werkzeug's ``dump_cookie`` and ``Response.delete_cookie`` (a
        deletion must match them to replace the cookie).
        """
        return {
            "path": self.path,
            "domain": self.domain,
            "secure": self.requires_secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
            "partitioned": self.partitioned,
        }

    def header(self, name: str, value: str) -> str:
        """Return the ``Set-Cookie`` header value that sends this cookie."""
        header = dump_cookie(name, value, expires=self._expires, **self.attributes())
        if self.priority is not None:
            header += f"; Priority={self.priority}"
        return header

    def __repr__(self) -> str:
        return f"<Cookie expires={self._expires!r} path={self.path!r}>"
