"""The store interface: what every session backend implements."""

from __future__ import annotations

import abc
import collections.abc as cabc
import math
import re
import typing as t
from urllib.parse import parse_qsl
from urllib.parse import unquote

from ..cookie import lifetime_seconds
from ..cookie import parse_expires
from ..cookie import utcnow
from ..errors import CorruptDocument
from ..serialization import COOKIE_MEMBER
from ..serialization import decode

Document = dict[str, t.Any]

#: Store lifetime, in seconds, of sessions whose cookie has no expiry
#: (connect-redis' default ``ttl``).
DEFAULT_TTL = 86400

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


def document_ttl(document: cabc.Mapping[str, t.Any], default: int) -> int:
    """Return the store lifetime of a session document, as connect-redis does.

    The seconds until the document's ``cookie.expires``, rounded up, else
    ``default``. Zero or less means the session is already dead.

    :param document: the session document.
    :param default: the lifetime of a browser-session cookie's session.
    """
    cookie = document.get(COOKIE_MEMBER)
    expires = parse_expires(cookie.get("expires")) if isinstance(cookie, dict) else None
    if expires is None:
        return default
    return math.ceil((expires - utcnow()).total_seconds())


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
    """Apply a save's changed and removed members to a stored document."""
    document.update(changes)
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
        self.set(sid, apply_changes(current, changes, removed))
        return True

    def all(self) -> dict[str, Document]:
        """Return every live session, by id. Optional."""
        _unsupported(self, "all")

    def length(self) -> int:
        """Return the number of live sessions. Optional."""
        _unsupported(self, "length")

    def clear(self) -> None:
        """Remove every session. Optional."""
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
    # drops it, so an index write can never bring a session back.

    def index_add(self, user: str, sid: str, until: float) -> None:
        """Add ``sid`` to ``user``'s index, or move its end of life.

        Entries of ``user`` whose ``until`` has passed are dropped in the
        same step, so the index never grows without bound. Optional.

        :param until: time (:func:`time.time`) after which the session is
            surely gone: its store lifetime plus a margin for the touches
            that extend it without updating the index.
        """
        _unsupported(self, "index_add")

    def index_remove(self, user: str, sid: str) -> None:
        """Remove ``sid`` from ``user``'s index (missing is not an error),
        dropping ``user``'s expired entries too. Optional.
        """
        _unsupported(self, "index_remove")

    def index_sessions(self, user: str) -> dict[str, Document]:
        """Return the stored documents of the sessions in ``user``'s index,
        by id, in O(that user's sessions).

        Entries that expired or whose session is gone (or cannot be decoded)
        are dropped from the index and left out. Optional.
        """
        _unsupported(self, "index_sessions")

    def index_prune(self) -> int:
        """Drop expired entries from every user's index and return how many
        went: those whose ``until`` has passed, and those whose session is
        missing and :func:`outlived` (which a margin of a minute would
        otherwise keep). ``flask session prune`` calls it. Stores whose
        :meth:`prune` already does it, or that keep no index, return 0.
        """
        return 0


def _unsupported(store: Store, method: str) -> t.NoReturn:
    raise NotImplementedError(f"{type(store).__name__} does not implement {method}()")


#: The methods a store overrides to keep the per-user index.
INDEX_METHODS = ("index_add", "index_remove", "index_sessions")


def keeps_user_index(store: Store) -> bool:
    """Whether ``store`` keeps the per-user index (``CONNECT_SESSION_USER_KEY``)."""
    return all(implements(store, method) for method in INDEX_METHODS)


def implements(store: Store, method: str) -> bool:
    """Whether ``store`` overrides the optional ``method`` of :class:`Store`."""
    return getattr(type(store), method) is not getattr(Store, method)


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
    """Return ``text`` (a message about ``url``) with the URL and every
    password it holds, raw or percent-decoded, replaced by their redacted
    form; the redacted URL is added if the message does not name it.
    """
    redacted = redact_url(url)
    text = text.replace(url, redacted)
    if redacted not in text:
        text = f"{text} (in {redacted!r})"
    secrets = []
    match = _USERINFO.match(url)
    if match:
        info = match["userinfo"]
        secrets.append(info.partition(":")[2] if ":" in info else info)
    query = url.partition("?")[2].partition("#")[0]
    secrets += [v for k, v in parse_qsl(query) if k.lower() in ("password", "pass", "pwd")]
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            if form:
                text = text.replace(form, REDACTED)
    return text
