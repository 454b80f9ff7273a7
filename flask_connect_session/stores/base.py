"""The store interface: what every session backend implements."""

from __future__ import annotations

import abc
import collections.abc as cabc
import math
import re
import typing as t
from datetime import UTC
from datetime import datetime
from urllib.parse import parse_qsl
from urllib.parse import unquote

from ..cookie import lifetime_seconds
from ..cookie import parse_expires
from ..cookie import utcnow
from ..document import COOKIE_MEMBER
from ..document import applies
from ..document import decode
from ..document import encode
from ..document import unconditional
from ..errors import CorruptDocument
from ..errors import SessionTooLarge

Document = dict[str, t.Any]

#: Store lifetime, in seconds, of sessions whose cookie has no expiry
#: (connect-redis' default ``ttl``).
DEFAULT_TTL = 86400

#: Largest stored session document, in bytes, unless
#: ``CONNECT_SESSION_MAX_SIZE`` says otherwise (1 MiB).
DEFAULT_MAX_SIZE = 1048576


def check_size(size: int, limit: int) -> None:
    """Refuse a document of ``size`` bytes under a limit of ``limit`` bytes
    (0: no limit).

    :raises SessionTooLarge: it is larger.
    """
    if limit and size > limit:
        raise SessionTooLarge(size, limit)


#: Seconds an index entry's ``until`` lies past its session's own expiry
#: (see :meth:`Store.index_add`): a session is touched without its entry
#: being updated for at most this long.
INDEX_MARGIN = 60.0


def outlived(until: float, now: float) -> bool:
    """Whether the session of an index entry ending at ``until`` has lived
    its whole lifetime as the entry knows it, so that if it is missing it
    expired or was removed. An entry just added for a session about to be
    written is a whole lifetime from that point, so a store can drop the
    entries this is true of, and whose session is missing, without ever
    dropping the entry of a session being saved at that moment.
    """
    return until - INDEX_MARGIN <= now


def document_ttl(
    document: cabc.Mapping[str, t.Any], default: int, now: float | None = None
) -> int:
    """Return the store lifetime of a session document, as connect-redis does.

    The seconds until the document's ``cookie.expires``, rounded up, else
    ``default``. Zero or less means the session is already dead.

    :param document: the session document.
    :param default: the lifetime of a browser-session cookie's session.
    :param now: the time to count from, in seconds since the epoch: the
        session core's clock; a store leaves it out (the wall clock).
    """
    cookie = document.get(COOKIE_MEMBER)
    expires = parse_expires(cookie.get("expires")) if isinstance(cookie, dict) else None
    if expires is None:
        return default
    current = utcnow() if now is None else datetime.fromtimestamp(now, UTC)
    return math.ceil((expires - current).total_seconds())


def touched_ttl(document: cabc.Mapping[str, t.Any], default: int) -> int:
    """Return the lifetime a touch now gives ``document``: its cookie's
    ``originalMaxAge`` in whole seconds rounded up (the cookie is reset to now
    plus that), else ``default`` for a browser-session cookie.
    """
    cookie = document.get(COOKIE_MEMBER)
    original = lifetime_seconds(cookie.get("originalMaxAge")) if isinstance(cookie, dict) else None
    return default if original is None else math.ceil(original)


def apply_changes(
    document: Document, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
) -> Document:
    """Apply a save's changed and removed members to a stored document.

    A conditional member value (see
    :func:`~flask_connect_session.document.if_unchanged`) is written only if
    the member is still stored as it was read.
    """
    if unconditional(changes):
        document.update(changes)
    else:
        for name, value in changes.items():
            if applies(value, document, name):
                document[name] = value
    for key in removed:
        document.pop(key, None)
    return document


class Store(abc.ABC):
    """Base class of session stores, the Python form of express-session's
    ``Store``.

    A store moves session *documents* by bare session id: JSON objects made of
    the user's data plus a ``"cookie"`` member, exactly what express-session
    keeps. It knows nothing of Flask or the request. Methods are synchronous
    and raise on a backend failure (the interface turns whatever they raise
    into :class:`~flask_connect_session.StoreError`); an entry that cannot be
    decoded raises :class:`~flask_connect_session.errors.CorruptDocument`
    instead.

    Subclasses implement :meth:`get`, :meth:`set` and :meth:`destroy`; the
    other methods are optional and raise :exc:`NotImplementedError` here
    (:meth:`merge` has a working but not atomic default).

    .. versionadded:: 0.1
    """

    #: Store lifetime, in seconds, of sessions whose cookie has no expiry.
    ttl: int = DEFAULT_TTL
    #: Largest document, in bytes of UTF-8 JSON, that a write may store
    #: (0: no limit); ``init_app`` sets it from ``CONNECT_SESSION_MAX_SIZE``.
    #: The built-in stores check it with :meth:`encoded` wherever they
    #: write, after a merge too, and raise
    #: :class:`~flask_connect_session.SessionTooLarge` without writing.
    max_size: int = DEFAULT_MAX_SIZE

    @abc.abstractmethod
    def get(self, sid: str) -> Document | None:
        """Return the stored document for ``sid``, or ``None`` if there is none
        (never stored, destroyed or expired).
        """

    @abc.abstractmethod
    def set(self, sid: str, session: Document) -> None:
        """Store ``session`` under ``sid``, replacing what is there, with the
        lifetime :func:`document_ttl` gives.
        """

    @abc.abstractmethod
    def destroy(self, sid: str) -> bool | None:
        """Remove the session ``sid``; removing a missing one is not an error.

        Return whether a live session was removed (``False``: there was none,
        it expired or another request removed it first), so that
        :data:`~flask_connect_session.session_destroyed` is sent once per
        session and ``regenerate(keep=True)`` does not carry over a session
        revoked meanwhile. ``None`` means the store cannot tell; the session
        then counts as removed.
        """

    def touch(self, sid: str, session: Document) -> None:
        """Extend the lifetime of ``sid`` to what ``session``'s cookie says,
        without rewriting it. Optional.
        """
        _unsupported(self, "touch")

    def get_and_touch(self, sid: str) -> Document | None:
        """Return the stored document for ``sid`` and extend its lifetime as
        :meth:`touch` would now (to the cookie's ``originalMaxAge``, else
        :attr:`ttl`), ideally in one round trip. Optional: the interface then
        skips the touch at the end of a request that does not save.
        """
        _unsupported(self, "get_and_touch")

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        """Write only what a request changed on top of the stored session.

        Sets each member of ``changes`` (the ``"cookie"`` member among them),
        deletes each key in ``removed``, and keeps every other stored member,
        so requests that change different keys at once both keep their
        changes. Returns ``False``, writing nothing, when ``sid`` is no longer
        stored: a session destroyed by another request stays destroyed.

        This default reads then writes, so it is not atomic; the built-in
        stores override it with an atomic version.
        """
        current = self.get(sid)
        if current is None:
            return False
        document = apply_changes(current, changes, removed)
        self.encoded(document)  # refuses a document over max_size
        self.set(sid, document)
        return True

    def encoded(self, document: cabc.Mapping[str, t.Any]) -> bytes:
        """Return a document as the UTF-8 JSON a store keeps (see
        :func:`to_utf8`), after checking it against :attr:`max_size`.
        A store of your own calls it where it writes, to honour
        ``CONNECT_SESSION_MAX_SIZE``.

        :raises SessionTooLarge: it is larger than :attr:`max_size`.
        """
        return encode_checked(document, self.max_size)

    def all(self) -> dict[str, Document]:
        """Return every live session, by id. Optional."""
        _unsupported(self, "all")

    def length(self) -> int:
        """Return the number of live sessions. Optional."""
        _unsupported(self, "length")

    def clear(self) -> int | None:
        """Remove every session, and return how many live sessions that
        removed (``None``: the store cannot tell). Optional.
        """
        _unsupported(self, "clear")

    def prune(self) -> int:
        """Remove expired sessions now and return how many went. Stores whose
        backend expires entries by itself have nothing to do and return 0.
        """
        return 0

    # -- the per-user index (optional, for CONNECT_SESSION_USER_KEY) -----
    #
    # Like Spring Session's FindByIndexNameSessionRepository: a store that
    # overrides all three keeps an index from each user to their session ids
    # (see flask_connect_session.users). The metadata shown to users lives in
    # the session document itself (its "_device" member); the index only
    # finds a user's ids. Each method touches that one user's entry, never
    # the session entries, so on Redis Cluster no command spans two slots.
    # An entry whose session is gone is harmless: index_sessions() skips and
    # drops it, so an index write can never bring a session back. Beside the
    # index, each user may have one revoke record (index_revoke), so that
    # "log out everywhere" also reaches the sessions the index does not hold.

    def index_add(self, user: str, sid: str, until: float) -> None:
        """Add ``sid`` to ``user``'s index, or move its end of life.

        It should cost the same whatever the number of ``user``'s sessions
        (a login must not get slower with each device). Entries whose
        ``until`` has passed may be dropped in the same step; they must be
        at the latest by :meth:`index_sessions` and ``flask session prune``,
        so the index never grows without bound. Optional.

        :param until: time (:func:`time.time`) after which the session is
            surely gone: its store lifetime plus a margin for the touches
            that extend it without updating the index.
        """
        _unsupported(self, "index_add")

    def index_remove(self, user: str, sid: str) -> None:
        """Remove ``sid`` from ``user``'s index (missing is not an error);
        as :meth:`index_add`, at a cost that does not grow with ``user``'s
        sessions. Optional.
        """
        _unsupported(self, "index_remove")

    def index_sessions(self, user: str) -> dict[str, Document]:
        """Return the stored documents of the sessions in ``user``'s index,
        by id, in O(that user's sessions).

        Entries that expired or whose session is gone (or cannot be decoded)
        are dropped from the index and left out. Optional.
        """
        _unsupported(self, "index_sessions")

    def index_revoke(self, user: str, at: float, until: float) -> None:
        """Record that every session of ``user`` that existed at ``at`` is
        revoked, replacing an earlier record. Optional.

        :meth:`~flask_connect_session.ConnectSession.revoke` writes it before
        it lists the user's sessions; the interface reads it only on rare
        paths (a session naming the user that the index does not hold, a
        legacy session to take over), so those sessions end too.

        :param at: when the revoke began (:func:`time.time`).
        :param until: when the record may go (:func:`time.time`): no session
            that existed at ``at`` lives longer, so the records of a store
            never grow without bound.
        """
        _unsupported(self, "index_revoke")

    def index_revoked(self, user: str) -> float | None:
        """Return when ``user``'s sessions were last revoked
        (:func:`time.time`), or ``None`` if no record is left. Optional.
        """
        _unsupported(self, "index_revoked")

    def index_prune(self) -> int:
        """Drop expired entries from every user's index and return how many
        went: those whose ``until`` has passed, and those whose session is
        missing and :func:`outlived` (which a margin of a minute would
        otherwise keep). ``flask session prune`` calls it. Stores whose
        :meth:`prune` already does it, or that keep no index, return 0.
        """
        return 0


def encode_checked(document: cabc.Mapping[str, t.Any], limit: int) -> bytes:
    """Return a document as the UTF-8 JSON a store keeps (see
    :func:`to_utf8`), after checking it against a limit of ``limit`` bytes
    (0: no limit).

    :raises SessionTooLarge: it is larger.
    """
    data = to_utf8(encode(document))
    check_size(len(data), limit)
    return data


def _unsupported(store: Store | AsyncStore, method: str) -> t.NoReturn:
    raise NotImplementedError(f"{type(store).__name__} does not implement {method}()")


class AsyncStore(abc.ABC):
    """Base class of asyncio session stores, for Quart: :class:`Store`'s
    contract with coroutine methods.

    Subclasses implement :meth:`get`, :meth:`set` and :meth:`destroy`; the
    other methods are optional, as in :class:`Store`. :class:`ThreadedStore`
    runs any synchronous store in worker threads.

    .. versionadded:: 0.1
    """

    #: Store lifetime, in seconds, of sessions whose cookie has no expiry.
    ttl: int = DEFAULT_TTL
    #: Largest document, in bytes of UTF-8 JSON, that a write may store
    #: (0: no limit), as :attr:`Store.max_size`.
    max_size: int = DEFAULT_MAX_SIZE

    @abc.abstractmethod
    async def get(self, sid: str) -> Document | None:
        """See :meth:`Store.get`."""

    @abc.abstractmethod
    async def set(self, sid: str, session: Document) -> None:
        """See :meth:`Store.set`."""

    @abc.abstractmethod
    async def destroy(self, sid: str) -> bool | None:
        """See :meth:`Store.destroy`."""

    async def touch(self, sid: str, session: Document) -> None:
        """See :meth:`Store.touch`. Optional."""
        _unsupported(self, "touch")

    async def get_and_touch(self, sid: str) -> Document | None:
        """See :meth:`Store.get_and_touch`. Optional."""
        _unsupported(self, "get_and_touch")

    async def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        """See :meth:`Store.merge`; this default is not atomic."""
        current = await self.get(sid)
        if current is None:
            return False
        document = apply_changes(current, changes, removed)
        self.encoded(document)  # refuses a document over max_size
        await self.set(sid, document)
        return True

    def encoded(self, document: cabc.Mapping[str, t.Any]) -> bytes:
        """See :meth:`Store.encoded`."""
        return encode_checked(document, self.max_size)

    async def all(self) -> dict[str, Document]:
        """See :meth:`Store.all`. Optional."""
        _unsupported(self, "all")

    async def length(self) -> int:
        """See :meth:`Store.length`. Optional."""
        _unsupported(self, "length")

    async def clear(self) -> int | None:
        """See :meth:`Store.clear`. Optional."""
        _unsupported(self, "clear")

    async def prune(self) -> int:
        """See :meth:`Store.prune`."""
        return 0

    async def index_add(self, user: str, sid: str, until: float) -> None:
        """See :meth:`Store.index_add`. Optional."""
        _unsupported(self, "index_add")

    async def index_remove(self, user: str, sid: str) -> None:
        """See :meth:`Store.index_remove`. Optional."""
        _unsupported(self, "index_remove")

    async def index_sessions(self, user: str) -> dict[str, Document]:
        """See :meth:`Store.index_sessions`. Optional."""
        _unsupported(self, "index_sessions")

    async def index_revoke(self, user: str, at: float, until: float) -> None:
        """See :meth:`Store.index_revoke`. Optional."""
        _unsupported(self, "index_revoke")

    async def index_revoked(self, user: str) -> float | None:
        """See :meth:`Store.index_revoked`. Optional."""
        _unsupported(self, "index_revoked")

    async def index_prune(self) -> int:
        """See :meth:`Store.index_prune`."""
        return 0


#: The methods of the store contract that a store may leave out (or, for
#: ``merge``, ``prune`` and ``index_prune``, leave to their defaults).
OPTIONAL_METHODS = (
    "touch",
    "get_and_touch",
    "merge",
    "all",
    "length",
    "clear",
    "prune",
    "index_add",
    "index_remove",
    "index_sessions",
    "index_revoke",
    "index_revoked",
    "index_prune",
)

#: The methods a store overrides to keep the per-user index.
INDEX_METHODS = ("index_add", "index_remove", "index_sessions", "index_revoke", "index_revoked")


def keeps_user_index(store: Store | AsyncStore) -> bool:
    """Whether ``store`` keeps the per-user index (``CONNECT_SESSION_USER_KEY``)."""
    return all(implements(store, method) for method in INDEX_METHODS)


def implements(store: Store | AsyncStore, method: str) -> bool:
    """Whether ``store`` overrides the optional ``method`` of :class:`Store`
    (or :class:`AsyncStore`).
    """
    base = AsyncStore if isinstance(store, AsyncStore) else Store
    return getattr(type(store), method) is not getattr(base, method)


def to_utf8(text: str) -> bytes:
    """Return JSON text as UTF-8, for stores that keep bytes.

    Python strings may hold lone surrogates, which UTF-8 cannot encode; in
    JSON text they can only sit inside string literals, so they are written
    as ``\\uXXXX`` escapes, as ``ensure_ascii`` would write them (JSON.parse
    and Python read them back as the same lone surrogates).
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text).encode("utf-8")


_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_entries(entries: cabc.Mapping[str, str | bytes | None]) -> dict[str, Document]:
    """Decode the raw stored values of :meth:`Store.all`, by id.

    Missing values (expired meanwhile) and values that are not session
    documents are left out, so one corrupt entry does not hide the others.
    """
    documents = {}
    for sid, value in entries.items():
        if value is None:
            continue
        try:
            documents[sid] = decode(value)
        except CorruptDocument:
            continue
    return documents


def split_table_name(name: str) -> tuple[str | None, str]:
    """Split ``"schema.table"`` (or a bare ``"table"``) into its parts.

    :raises ValueError: an empty part or more than one dot.
    """
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"expected 'table' or 'schema.table', got {name!r}")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


#: Shown instead of a password in a store URL.
REDACTED = "***"

# Up to the last "@": a password with a raw "/", "?" or "#" (which a correct
# URL would percent-encode) must not end the match early and leak its tail.
_USERINFO = re.compile(r"^(?P<head>[^:/?#]+://)(?P<userinfo>.*)@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&](?:password|pass|pwd)=)[^&#]*")


def redact_url(url: str) -> str:
    """Return a store URL with its password (in the user info or a
    ``password`` query parameter) replaced by ``***``, for messages, logs and
    reprs. A user info without ``:`` is redacted whole (some clients read it
    as a password).
    """

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        return f"{match['head']}{user if colon else ''}{colon}{REDACTED}@"

    return _PASSWORD_PARAM.sub(rf"\g<1>{REDACTED}", _USERINFO.sub(userinfo, url, count=1))


def scrub_url_secrets(text: str, url: str) -> str:
    """Return ``text`` (a message about ``url``) with the password of ``url``
    replaced by ``***`` wherever it stands as a password: in ``url`` itself,
    in the user info of another URL (a client library may quote the URL
    rewritten), as a ``password`` query parameter, or as a ``password=``
    keyword. The redacted URL is added if the message does not name it.

    The same characters elsewhere in the message are left alone: with the
    password ``sql``, ``sqlalchemy`` and ``postgresql+psycopg://`` stay
    intact.
    """
    redacted = redact_url(url)
    text = text.replace(url, redacted)
    for secret in _url_secrets(url):
        escaped = re.escape(secret)
        text = re.sub(rf"(://(?:[^\s:@/'\"]*:)?){escaped}(?=@)", rf"\g<1>{REDACTED}", text)
        text = re.sub(_PASSWORD_KEYWORD + escaped + _END_OF_VALUE, rf"\g<1>{REDACTED}", text)
    if redacted not in text:
        text = f"{text} (in {redacted!r})"
    return text


#: A password given by name (a URL query parameter, a keyword in a repr).
_PASSWORD_KEYWORD = r"""(?i)(\b(?:password|passwd|pass|pwd)\s*[=:]\s*['"]?)"""
#: What may follow a value (so ``password=sql`` is not ``password=sqlite``).
_END_OF_VALUE = r"""(?=$|[\s'"&#,;)}\]])"""


def _url_secrets(url: str) -> set[str]:
    """The passwords ``url`` holds, as written and percent-decoded."""
    secrets = []
    match = _USERINFO.match(url)
    if match:
        info = match["userinfo"]
        secrets.append(info.partition(":")[2] if ":" in info else info)
    query = url.partition("?")[2].partition("#")[0]
    secrets += [v for k, v in parse_qsl(query) if k.lower() in ("password", "pass", "pwd")]
    return {form for secret in secrets for form in (secret, unquote(secret)) if form}
