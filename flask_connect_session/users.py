"""Users and their devices: the per-user index of sessions and its rules.

With ``CONNECT_SESSION_USER_KEY`` set, a session whose data holds that key
belongs to that user. Its metadata lives in the session document itself, in
the reserved ``"_device"`` member::

    {"user": "42", "created": 1764000000000, "seen": 1764000060000,
     "agent": "Mozilla/5.0 ...", "ip": "203.0.113.7", "until": 1764086520000}

(times in ms since the epoch; ``until`` is when the index entry may be
dropped), and the store keeps an index from each user to their session ids
(:meth:`~flask_connect_session.Store.index_add` and friends). The document is
the truth; the index only finds a user's sessions, and an index entry whose
session is gone is dropped when read.

``seen`` is rewritten at most once every :data:`SEEN_INTERVAL` seconds, so
a read-only request of an indexed session costs what an unindexed one does,
except one write of the session and one of the index per minute.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import hashlib
import logging
import typing as t
from datetime import UTC
from datetime import datetime

from .calls import Destroy
from .calls import IndexAdd
from .calls import IndexRemove
from .calls import IndexRevoke
from .calls import IndexRevoked
from .calls import IndexSessions
from .calls import Notify
from .document import COOKIE_MEMBER
from .document import DEVICE_MEMBER
from .document import Device
from .document import device_user
from .errors import CorruptDocument
from .errors import StoreError
from .protect import hash_id
from .signals import session_destroyed
from .stores.base import INDEX_MARGIN
from .stores.base import document_ttl

if t.TYPE_CHECKING:
    from .calls import Steps
    from .core import Lifecycle
    from .document import Document
    from .protect import Protection

#: Seconds between two updates of a session's last-seen time (and of its
#: index entry) on requests that do not otherwise write it: the margin the
#: stores allow an entry past its session's expiry.
SEEN_INTERVAL = INDEX_MARGIN

#: User agents are cut to this many characters.
MAX_USER_AGENT = 200

_HANDLE_DOMAIN = b"flask-connect-session handle\x00"

logger = logging.getLogger("flask_connect_session")


def handle(sid: str) -> str:
    """Return the public handle of a session id.

    A truncated (128-bit), domain-separated SHA-256 of the id's hash
    (:func:`~flask_connect_session.protect.hash_id`), in base64url (22
    characters): stable while the id is, different between ids, safe in
    HTML and URLs, and useless for building a cookie. Being made from the
    hash, it is the same whether the store keeps ids or their hashes
    (``CONNECT_SESSION_HASH_IDS``).

    .. versionadded:: 0.1
    """
    return handle_of(hash_id(sid))


def handle_of(hashed: str) -> str:
    """Return the public handle of the session whose id hashes to
    ``hashed`` (see :func:`handle`).
    """
    digest = hashlib.sha256(_HANDLE_DOMAIN + hashed.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def key_handle(key: str, protection: Protection | None) -> str:
    """Return the handle of the session stored under ``key`` (its id, or
    with ``CONNECT_SESSION_HASH_IDS`` its hash).
    """
    return handle(key) if protection is None else handle_of(protection.hashed(key))


def user_of(data: cabc.Mapping[str, t.Any], key: str) -> str | None:
    """Return the user a session's data names under ``key``, as a str;
    ``None`` when the key is absent or holds ``None`` (no user, as
    Flask-Login's ``session["_user_id"] = None`` means).

    :raises TypeError: the value is neither a str, an int nor ``None``; the
        message names the key.
    """
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(
            f"session[{key!r}] names the user (CONNECT_SESSION_USER_KEY) and must be"
            f" a str or int, not {type(value).__name__}"
        )
    return str(value)


def stored_user(data: cabc.Mapping[str, t.Any], key: str | None, device: object) -> str | None:
    """Return the user a stored session belongs to, for the signals: the
    value of ``key`` in its stored ``data``, else the user its ``"_device"``
    member names (a session an Express app wrote, or one saved before
    ``CONNECT_SESSION_USER_KEY`` was set, has no such member).
    """
    if key is not None:
        try:
            user = user_of(data, key)
        except TypeError:
            user = None
        if user is not None:
            return user
    return device_user(device)


def _ms(device: cabc.Mapping[str, t.Any], name: str) -> int:
    value = device.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions (a device they are logged in on), as
    :meth:`~flask_connect_session.ConnectSession.user_sessions` lists them.

    .. versionadded:: 0.1
    """

    #: Names the session without revealing its id; pass it to
    #: :meth:`~flask_connect_session.ConnectSession.revoke`. Safe in HTML and URLs.
    handle: str
    #: The user, as a str.
    user: str
    #: When the session was first indexed for this user (aware UTC): its
    #: login, which ``regenerate(keep=True)`` keeps.
    created: datetime
    #: When the session was last used, to within :data:`SEEN_INTERVAL` (aware UTC).
    last_seen: datetime
    #: The browser's ``User-Agent`` (at most 200 characters), or ``None``.
    user_agent: str | None
    #: ``request.remote_addr`` (so Werkzeug's ProxyFix decides), or ``None``.
    ip: str | None
    #: Whether it is the session of the request being served.
    current: bool


def session_info(
    sid: str, document: Document, key: str, current_sid: str | None, handle_: str | None = None
) -> SessionInfo | None:
    """Return the :class:`SessionInfo` of a stored document, or ``None`` if
    it does not belong to the user its ``"_device"`` member names.

    :param sid: the session's store key.
    :param handle_: its handle, if not :func:`handle` of ``sid``.
    """
    device = document.get(DEVICE_MEMBER)
    user = device_user(device)
    try:
        owner = user_of(document, key)
    except TypeError:
        owner = None
    if user is None or owner != user:
        return None
    assert isinstance(device, dict)
    agent, ip = device.get("agent"), device.get("ip")
    return SessionInfo(
        handle=handle(sid) if handle_ is None else handle_,
        user=user,
        created=_when(_ms(device, "created")),
        last_seen=_when(_ms(device, "seen")),
        user_agent=agent[:MAX_USER_AGENT] if isinstance(agent, str) else None,
        ip=ip if isinstance(ip, str) else None,
        current=sid == current_sid,
    )


class UserIndex:
    """Keeps a store's per-user index true as sessions change.

    The session core holds one when ``CONNECT_SESSION_USER_KEY`` is set and
    runs its steps around every write and removal of a session. Index
    entries are added *before* the session is written and removed *after* it
    is removed (or written for another user), so a failure in between leaves
    at worst an entry without a session (dropped at the next read), never a
    session the index misses. Like the core, it does no I/O: its methods
    yield store calls (see :mod:`.calls`).

    :param key: the data key naming the user.
    :param ttl: the store lifetime of browser-session cookies' sessions.
    :param clock: returns the time in seconds since the epoch.
    :param record_lifetime: seconds a revoke record is kept: the longest a
        session this app stores can live untouched.
    :param protection: the protection at rest: the index then holds store
        keys (hashed ids), and the documents it lists are opened with it.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        key: str,
        ttl: int,
        clock: cabc.Callable[[], float],
        record_lifetime: float = 0,
        *,
        protection: Protection | None = None,
    ) -> None:
        #: The data key naming the user.
        self.key = key
        self.ttl = ttl
        self.clock = clock
        #: Seconds a revoke record is kept.
        self.record_lifetime = max(record_lifetime, ttl) + SEEN_INTERVAL
        #: The protection at rest, if any.
        self.protection = protection

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def owner(self, data: cabc.Mapping[str, t.Any]) -> str | None:
        """Return the user ``data`` names, or ``None`` (no user, or a value
        that is not a str or int: a read never fails on it).
        """
        try:
            return user_of(data, self.key)
        except TypeError:
            return None

    def unfiled(self, data: cabc.Mapping[str, t.Any], device: object) -> str | None:
        """Return the user a stored session's ``data`` names if the index may
        not hold it: its ``"_device"`` member does not file it under that
        user (stored before ``CONNECT_SESSION_USER_KEY`` was set, by an older
        version or by an Express app), or its index entry's ``until`` has
        passed (kept alive by an Express app's touches, or while the key was
        unset). Only the user's revoke record can then tell whether it was
        revoked.
        """
        user = self.owner(data)
        if user is None:
            return None
        if device_user(device) == user and isinstance(device, dict):
            if _ms(device, "until") > self._now():
                return None
        return user

    def revoked(self, user: str) -> Steps[bool]:
        """Whether ``user`` has a revoke record: their sessions that the
        index did not hold when it was made are revoked (an unindexed
        session counts as older than any record).
        """
        at: float | None = yield IndexRevoked(user)
        return at is not None

    def record_revoke(self, user: str) -> Steps[float]:
        """Record that every session of ``user`` existing now is revoked,
        for :attr:`record_lifetime`; return now (seconds since the epoch).
        """
        now = self.clock()
        yield IndexRevoke(user, now, now + self.record_lifetime)
        return now

    def due(self, session: Lifecycle, data: cabc.Mapping[str, t.Any]) -> bool:
        """Whether saving ``session`` must update its ``"_device"`` member:
        its user changed, or it was last seen :data:`SEEN_INTERVAL` ago.

        Reads nothing from the store: a fresh session costs nothing more. A
        user value that is not a str or int makes it not due: a read-only
        request of such a session (an Express app wrote it) still works, and
        a request that writes it fails in :meth:`before_write`.
        """
        try:
            user = user_of(data, self.key)
        except TypeError:
            return False
        device = session.device
        if user is None:
            return device is not None
        if device is None or device.get("user") != user:
            return True
        return self._now() - _ms(device, "seen") >= SEEN_INTERVAL * 1000

    def before_write(
        self,
        session: Lifecycle,
        data: cabc.Mapping[str, t.Any],
        cookie: cabc.Mapping[str, object],
    ) -> Steps[Device | None]:
        """Update the index for a write of ``session`` and return the
        ``"_device"`` member to store (``None``: none).

        :param cookie: the cookie member about to be stored (its expiry
            decides how long the index entry lives).
        :raises TypeError: the user value is not a str or int.
        """
        user = user_of(data, self.key)
        old = session.device
        if user is None:
            return None
        now = self._now()
        lifetime = document_ttl({COOKIE_MEMBER: cookie}, self.ttl, now / 1000) * 1000
        if (
            old is not None
            and session.in_store
            and device_user(old) == user
            and not self.due(session, data)
            and now + lifetime <= _ms(old, "until")
        ):
            return old
        until = now + lifetime + int(SEEN_INTERVAL * 1000)
        request = session.request
        agent = request.user_agent
        same = old is not None and device_user(old) == user
        device = {
            "user": user,
            "created": _ms(old, "created") if same and old is not None else now,
            "seen": now,
            "agent": agent[:MAX_USER_AGENT] if agent else None,
            "ip": request.remote_addr,
            "until": until,
        }
        yield IndexAdd(user, session.key, until / 1000)
        return device

    def refile(self, sid: str, device: Device | None) -> Steps[None]:
        """File ``sid`` (a store key) again under the user its stored
        ``device`` names.

        A listing of the user's sessions (a revoke) that ran between
        :meth:`before_write` and the write found no session yet and dropped
        the entry as gone; a session moving to a new id calls this once its
        new id is stored, before it removes the old one.
        """
        user = device_user(device)
        if user is not None and device is not None:
            yield IndexAdd(user, sid, _ms(device, "until") / 1000)

    def after_write(self, session: Lifecycle, device: Device | None, stored: bool) -> Steps[None]:
        """Finish a write of a stored session (``session.device`` is still
        the member it had): drop the entry :meth:`before_write` added if the
        session turned out to be gone (revoked meanwhile: it stays gone), or
        else the previous user's entry if the user changed. Only now: had the
        write failed, the session would still be the previous user's, and
        their index must still find it.
        """
        user = device_user(device)
        if not stored:
            if user is not None:
                yield from self._drop(user, session.key)
            return
        old_user = device_user(session.device)
        if old_user is not None and old_user != user:
            yield from self._drop(old_user, session.key)

    def removed(self, sid: str, device: object) -> Steps[None]:
        """Drop the index entry of a session just removed from the store."""
        user = device_user(device)
        if user is not None:
            yield from self._drop(user, sid)

    def _drop(self, user: str, sid: str) -> Steps[None]:
        """Remove ``sid`` from ``user``'s index after the store change that
        made the entry stale succeeded.

        A failure is logged, not raised: that change is done (and its signal
        still to be sent), and a stale entry is harmless, as reading the
        index drops it.
        """
        try:
            yield IndexRemove(user, sid)
        except StoreError:
            logger.warning(
                "stale user index entry (sid %.6s...) left in place; it is dropped when read", sid
            )

    def sessions(self, user: str, current_sid: str | None) -> Steps[dict[str, SessionInfo]]:
        """Return ``user``'s live sessions by store key; entries that no
        longer belong to ``user`` (or that do not decrypt) are dropped from
        the index.

        :param current_sid: the store key of the current request's session.
        """
        documents: dict[str, Document] = yield IndexSessions(user)
        infos: dict[str, SessionInfo] = {}
        protection = self.protection
        for sid, document in documents.items():
            if protection is None:
                info = session_info(sid, document, self.key, current_sid)
            else:
                info = self._protected_info(protection, sid, document, current_sid)
            if info is None or info.user != user:
                yield IndexRemove(user, sid)
            else:
                infos[sid] = info
        return infos

    def _protected_info(
        self, protection: Protection, sid: str, document: Document, current_sid: str | None
    ) -> SessionInfo | None:
        """:func:`session_info` of a document stored under protection."""
        try:
            hashed, opened = protection.open_stored(sid, document)
        except CorruptDocument:
            return None
        return session_info(sid, opened.document, self.key, current_sid, handle_of(hashed))

    def revoke(self, user: str, sids: cabc.Iterable[str], reason: str = "revoke") -> Steps[int]:
        """Remove each of ``user``'s sessions ``sids`` from the store and the
        index, sending :data:`~flask_connect_session.session_destroyed` with
        ``reason``; return how many. A session that another request removed
        first is neither counted nor announced again.
        """
        count = 0
        for sid in sids:
            gone: bool | None = yield Destroy(sid)
            yield from self._drop(user, sid)
            if gone is not False:
                if session_destroyed.receivers:
                    yield Notify(
                        session_destroyed,
                        handle=key_handle(sid, self.protection),
                        user=user,
                        reason=reason,
                    )
                count += 1
        return count

    def evict(self, user: str, current_sid: str, limit: int) -> Steps[int]:
        """Remove ``user``'s least recently seen sessions beyond ``limit``
        (``CONNECT_SESSION_MAX_PER_USER``), never ``current_sid``, sending
        :data:`~flask_connect_session.session_destroyed` with
        ``reason="evicted"``; return how many went.
        """
        infos = yield from self.sessions(user, current_sid)
        excess = len(infos) - limit + (current_sid not in infos)
        if excess <= 0:
            return 0
        others = sorted((info.last_seen, sid) for sid, info in infos.items() if sid != current_sid)
        return (yield from self.revoke(user, [sid for _, sid in others[:excess]], "evicted"))
