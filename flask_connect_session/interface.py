"""The Flask session interface: express-session's lifecycle over a store."""

from __future__ import annotations

import collections.abc as cabc
import logging
import time
import typing as t

from flask.sessions import SessionInterface

from .cookie import Cookie
from .cookie import lifetime_seconds
from .cookie import parse_expires
from .errors import CorruptDocument
from .errors import SessionNotFound
from .errors import SessionTooLarge
from .errors import StoreError
from .options import app_secrets
from .provenance import holds_tags
from .provenance import sign_value
from .provenance import verify
from .serialization import COOKIE_MEMBER
from .serialization import CREATED_MEMBER
from .serialization import DEVICE_MEMBER
from .serialization import TAGGED_PREFIX
from .serialization import TOUCHED_MEMBER
from .serialization import check_document
from .serialization import check_finite
from .serialization import dumps
from .serialization import is_reserved
from .serialization import load_data
from .serialization import tagged_member
from .session import ServerSession
from .signals import session_created
from .signals import session_destroyed
from .signals import session_regenerated
from .signing import sign
from .stores.base import implements
from .transport import Transports
from .transport import add_vary
from .users import UserIndex
from .users import device_user
from .users import handle
from .users import notify
from .users import stored_user

if t.TYPE_CHECKING:
    from flask import Flask
    from werkzeug.wrappers import Request
    from werkzeug.wrappers import Response

    from .cookie import CookieDocument
    from .options import Options
    from .stores.base import Document
    from .stores.base import Store

logger = logging.getLogger("flask_connect_session")


def is_secure(request: Request, proxy: bool | None) -> bool:
    """Whether a request came over HTTPS, as express-session's ``proxy``
    option decides.

    :param proxy: ``None`` trusts ``request.is_secure`` (Werkzeug's ProxyFix
        decides); ``True`` trusts the first ``X-Forwarded-Proto`` when the
        connection itself is not secure; ``False`` trusts only the scheme the
        WSGI server saw, before any ProxyFix rewrite.
    """
    if proxy is None:
        return request.is_secure
    environ = request.environ
    scheme = environ.get("werkzeug.proxy_fix.orig", environ).get("wsgi.url_scheme")
    if scheme == "https":
        return True
    if proxy is False:
        return False
    forwarded = environ.get("HTTP_X_FORWARDED_PROTO", "")
    return str(forwarded).partition(",")[0].strip().lower() == "https"


def _log_corrupt(sid: str, exc: CorruptDocument, outcome: str) -> None:
    # The entry is left in place for inspection; only a sid prefix is logged.
    logger.error("corrupt session document (sid %.6s...), %s: %s", sid, outcome, exc)


#: Creation times beyond this (ms since the epoch, year 5138) are unreadable.
_MAX_CREATED = 10**14


def created_at(document: Document, member: str = CREATED_MEMBER) -> int | None:
    """Return a document's creation time (ms since the epoch), or ``None`` if
    it has none that is a plausible number.

    :param member: the member to read another time from (``_touched``).
    """
    created = document.get(member)
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    return int(created) if 0 <= created <= _MAX_CREATED else None  # NaN compares False


def last_touch(document: Document, browser_lifetime: float) -> tuple[float, float] | None:
    """Return when a document's store lifetime was last extended (ms since
    the epoch) and the lifetime (seconds) that gave it, or ``None`` if it
    cannot tell.

    A touch resets the cookie to now plus its original max age, so for an
    expiring cookie that time is ``expires - originalMaxAge``; a
    browser-session cookie has the ``_touched`` member instead, and the
    store's lifetime for it, ``browser_lifetime``.
    """
    cookie = document[COOKIE_MEMBER]
    expires = parse_expires(cookie.get("expires"))
    if expires is None:
        touched = created_at(document, TOUCHED_MEMBER)
        return None if touched is None else (touched, browser_lifetime)
    original = lifetime_seconds(cookie.get("originalMaxAge"))
    return None if original is None else ((expires.timestamp() - original) * 1000, original)


class ConnectSessionInterface(SessionInterface):
    """Server-side sessions with express-session's semantics and wire format.

    :meth:`open_session` only verifies the cookie; the store is read when the
    view first touches :data:`flask.session`. :meth:`save_session` runs
    express-session's predicates (destroy, save, touch, set cookie). Every
    store failure becomes a logged :class:`StoreError`.

    :param options: the parsed configuration.
    :param store: the session store.

    .. versionadded:: 0.1
    """

    session_class = ServerSession

    def __init__(self, options: Options, store: Store) -> None:
        #: The parsed configuration.
        self.options = options
        #: The live store.
        self.store = store
        self._store_touches = implements(store, "touch")
        # Load and touch in one call where the store can: a read-only
        # request then costs a single round trip. With a touch interval the
        # load must not touch: the interval is checked once the session is read.
        combined = implements(store, "get_and_touch") and not options.touch_after
        self._load_operation = "get_and_touch" if combined else "get"
        #: Where the session id travels: the cookie, or the configured header.
        self.transports = Transports(options)
        #: Keeps the per-user index, when ``CONNECT_SESSION_USER_KEY`` is set.
        self.users = (
            None
            if options.user_key is None
            else UserIndex(options.user_key, options.ttl, self._call, self._longest_lifetime())
        )

    def _longest_lifetime(self) -> float:
        """The longest a session this app stores lives untouched (seconds):
        how long a revoke record must last to outlive every session that
        existed when it was made.
        """
        options = self.options
        return max(
            options.ttl, self.store.ttl, options.cookie.max_age or 0, options.permanent_lifetime
        )

    # -- store calls -----------------------------------------------------

    def _call(self, operation: str, sid: str, *args: t.Any) -> t.Any:
        """Call a store method, turning any failure into :class:`StoreError`.

        :class:`CorruptDocument` and :class:`SessionTooLarge` pass through:
        they are about the entry or the data, not the backend.
        """
        try:
            return getattr(self.store, operation)(sid, *args)
        except (CorruptDocument, SessionTooLarge):
            raise
        except Exception as exc:
            # The index methods take a user id first, never to be shown as a
            # sid; index_add and index_remove name the session next.
            named: str | None = sid
            if operation.startswith("index_"):
                named = args[0] if args and isinstance(args[0], str) else None
            error = StoreError(self.store, operation, named, exc)
            logger.error("session store %s", error)
            raise error from exc

    def _fetch(self, sid: str, operation: str = "get") -> Document | None:
        """Return the stored document, or ``None`` if missing or corrupt.

        A corrupt entry is logged and left in place; the caller starts a new
        session with a new id.
        """
        try:
            document = self._call(operation, sid)
            return None if document is None else check_document(document)
        except CorruptDocument as exc:
            _log_corrupt(sid, exc, "a new session starts")
            return None

    # -- creating and loading (SessionBackend) ---------------------------

    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        """Return a session that reads its cookie and the store lazily.

        Returns ``None`` (Flask's null session) when no secret is configured.
        Does no other work: a view that never touches the session pays for
        nothing more.
        """
        secrets = app_secrets(app)
        if not secrets:
            return None
        return ServerSession(self, request, secrets, self.transports.choose(request))

    def read_cookie_sid(self, session: ServerSession) -> str | None:
        """Return the validly signed id the request carries, or ``None``.

        It comes from the session's transport: the first cookie of the
        configured name, or the header of a header request. Anything not
        validly signed under one of the secrets means "no session".
        """
        return session.transport.read(session.request.environ, session.secrets)

    def new_cookie(self, request: Request) -> Cookie:
        """Return the cookie a new session gets, from the cookie settings.

        ``secure="auto"`` and ``samesite="auto"`` are resolved here, against
        this request, as express-session resolves ``secure: "auto"``.
        """
        opts = self.options.cookie
        secure_request = is_secure(request, self.options.proxy)
        return Cookie(
            max_age=opts.max_age,
            path=opts.path,
            domain=opts.domain,
            httponly=opts.httponly,
            secure=secure_request if opts.secure == "auto" else opts.secure,
            samesite=(
                ("None" if secure_request else "Lax") if opts.samesite == "auto" else opts.samesite
            ),
            partitioned=opts.partitioned,
            priority=opts.priority,
        )

    def _generate(
        self, session: ServerSession, data: dict[str, t.Any], *, keep_original: bool = False
    ) -> None:
        """Make ``session`` a brand-new session holding ``data``.

        :param keep_original: keep the id and data the session was loaded
            with as its original (``regenerate``), so the new id counts as a
            change; otherwise the new, empty session is the original.
        """
        session.sid = self.options.genid(session.request)
        if not keep_original:
            session.original_id, session.original_text = session.sid, "{}"
            session.loaded_values = {}
        session.data = data
        session.cookie_obj = self.new_cookie(session.request)
        session.cookie_document = None
        session.is_new = True
        session.in_store = False
        session.touched = False
        session.base = {}
        session.tag_macs, session.stored_tags = {}, {}
        session.saved_text = None
        session.device = None
        session.login_user = session.unfiled_user = None
        if self.options.absolute_timeout is not None:
            session.created = int(time.time() * 1000)
            session.created_unsaved = True

    def _inflate(self, session: ServerSession, sid: str, document: Document) -> None:
        """Fill ``session`` from a stored document."""
        stored = {k: v for k, v in document.items() if not is_reserved(k)}
        session.sid = sid
        skip = len(TAGGED_PREFIX)
        macs = {k[skip:]: v for k, v in document.items() if k.startswith(TAGGED_PREFIX)}
        session.stored_tags, session.tag_macs = macs, {}

        def trusted(key: str, raw: t.Any) -> bool:
            # Only a value whose MAC verifies was written by this extension.
            index = verify(session.secrets, sid, key, raw, macs.get(key))
            if index is None:
                return False
            # Under a fallback secret: re-made with the current one when saved.
            mac = macs[key] if index == 0 else sign_value(session.secrets[0], sid, key, raw)
            session.tag_macs[key] = mac
            return True

        session.data, base = load_data(stored, trusted)
        session.base = session.loaded_values = base
        # The Cookie object is built only if the request needs it.
        session.cookie_obj = None
        session.cookie_document = document[COOKIE_MEMBER]
        device = document.get(DEVICE_MEMBER)
        session.device = device if isinstance(device, dict) else None
        if self.users is not None:
            session.login_user = self.users.owner(stored)
            session.unfiled_user = self.users.unfiled(stored, device)
        session.is_new = False
        session.in_store = True
        session.original_id, session.original_text = sid, dumps(base)
        if not self.options.resave:
            session.saved_id, session.saved_text = sid, session.original_text
        if self.options.absolute_timeout is not None:
            created = created_at(document)
            if created is not None:
                session.created, session.created_unsaved = created, False
            else:
                # Made before the timeout was enabled, or by an app that does
                # not keep the start time: the count starts now, and the start
                # is saved at the end of this request (see should_save).
                session.created, session.created_unsaved = int(time.time() * 1000), True

    def inflate_cookie(self, session: ServerSession) -> Cookie:
        """Build the Cookie of a loaded session from its stored form, never
        weaker than the configuration (see :meth:`Cookie.at_least`).
        """
        defaults = self.new_cookie(session.request)
        if session.cookie_document is None:
            return defaults
        return Cookie.from_document(session.cookie_document, defaults).at_least(defaults)

    def _timed_out(self, document: Document) -> bool:
        timeout = self.options.absolute_timeout
        if timeout is None:  # the usual case: nothing to read
            return False
        created = created_at(document)
        return created is not None and time.time() * 1000 - created > timeout * 1000

    def _fresh(self, document: Document) -> bool:
        # CONNECT_SESSION_TOUCH_AFTER: touched less than that long ago. The
        # interval counts as at most half the lifetime the last touch gave,
        # so an interval as long as the lifetime cannot let an active
        # session expire between touches.
        interval = self.options.touch_after
        touch = last_touch(document, self.store.ttl) if interval else None
        if touch is None:
            return False
        last, lifetime = touch
        return 0 <= time.time() * 1000 - last < min(interval, lifetime / 2) * 1000

    def load(self, session: ServerSession) -> None:
        """Load the session named by the cookie, or start a new one.

        An unknown, expired, timed-out or corrupt session gets a new id:
        a client-chosen id is never adopted.

        :raises StoreError: the store failed.
        """
        sid = session.cookie_sid = self.read_cookie_sid(session)
        document = None if sid is None else self._fetch(sid, self._load_operation)
        if document is not None and sid is not None and self._timed_out(document):
            self._remove(sid, document, document.get(DEVICE_MEMBER), "timeout")
            document = None
        if document is not None and sid is not None:
            try:
                self._inflate(session, sid, document)
                session.touched = self._load_operation == "get_and_touch" or self._fresh(document)
            except CorruptDocument as exc:
                _log_corrupt(sid, exc, "a new session starts")
                document = None
            if document is not None and self._revoked_unfiled(session):
                self._remove(sid, session.base, session.device, "revoke")
                document = None
        if document is None or sid is None:
            self._generate(session, {})
        session.loaded = True

    def _revoked_unfiled(self, session: ServerSession) -> bool:
        """Whether a session the user index does not hold (see
        :meth:`UserIndex.unfiled`) was revoked: its user has a revoke
        record. The only read of that record on a load, and only for such a
        session, which its first save then files: a read-only request of an
        indexed session stays one round trip.
        """
        user = session.unfiled_user
        return user is not None and self.users is not None and self.users.revoked(user)

    def regenerate(self, session: ServerSession, keep: bool) -> None:
        """Move ``session`` to a new id; see :meth:`ServerSession.regenerate`.

        With ``keep``, the data goes along but for the
        ``CONNECT_SESSION_REGENERATE_DROP`` keys. If the stored session is
        gone already (revoked or destroyed by another request meanwhile), its
        data is not carried over: the new id starts empty, so a request in
        flight cannot keep a revoked login.
        """
        data = (
            {k: v for k, v in session.data.items() if k not in self.options.regenerate_drop}
            if keep
            else {}
        )
        if not session.in_store:
            self._move(session, data, keep_login=keep)
            return
        if keep and self.users is not None and self.users.owner(data) is not None:
            self._move_logged_in(session, data, self.users)
            return
        old, device = session.sid, session.device
        user = self._user(session.base, device)
        if self._drop(old, device):
            session.regenerated_from, session.regenerated_user = old, user
        else:
            data, keep = {}, False
        self._move(session, data, keep_login=keep)

    def _move(self, session: ServerSession, data: dict[str, t.Any], *, keep_login: bool) -> None:
        """Give ``session`` a new id holding ``data``, for :meth:`regenerate`.

        With ``CONNECT_SESSION_USER_KEY``, the absolute timeout's clock goes
        along (only a login restarts it, see :meth:`_begin_login`), and with
        ``keep_login`` so does the login: its ``"_device"`` member (when the
        user logged in) and the user it belongs to.
        """
        created, device = session.created, session.device
        login_user, unfiled_user = session.login_user, session.unfiled_user
        self._generate(session, data, keep_original=True)
        if self.users is None:
            return
        if created is not None:
            session.created = created
        if keep_login:
            session.device, session.login_user = device, login_user
            session.unfiled_user = unfiled_user

    def _move_logged_in(
        self, session: ServerSession, data: dict[str, t.Any], users: UserIndex
    ) -> None:
        """``regenerate(keep=True)`` of a stored session that names a user.

        The new id is stored (and filed in the user's index) *before* the
        old one is removed, so a revoke running meanwhile always finds one of
        them (see :meth:`ConnectSession.revoke
        <flask_connect_session.ConnectSession.revoke>`). If the old one is
        gone by then (revoked, or logged out by another request), the new
        one goes too and nothing is carried over.

        :raises TypeError: a value cannot be stored; nothing was changed.
        """
        old, device = session.sid, session.device
        user = self._user(session.base, device)
        self._move(session, data, keep_login=True)
        self._apply_permanent(session)
        tagged, text = session.current()
        session.cookie.touch()
        self._write(session, tagged, text, announce=False)
        if not session.in_store:  # revoked while this request ran
            self._drop(old, device)
            return
        users.refile(session.sid, session.device)
        if self._drop(old, device):
            session.regenerated_from = old
            self._announce(session, user)
        else:
            self._drop(session.sid, session.device)
            self._move(session, {}, keep_login=False)

    def destroy(self, session: ServerSession, reason: str = "destroy") -> bool:
        """Destroy ``session``; see :meth:`ServerSession.destroy`. Return
        whether this removed a stored session (another request may have
        removed it first).

        :param reason: the ``reason`` :data:`session_destroyed` is sent with.
        """
        removed = False
        if session.in_store:
            removed = self._remove(session.sid, session.base, session.device, reason)
        elif session.regenerated_from is not None:
            # regenerate() removed the stored id and the new one was never
            # stored: this ends that session.
            old, user = session.regenerated_from, session.regenerated_user
            notify(session_destroyed, old, user, reason=reason)
            removed = True
        self._forget(session)
        session.destroyed = True
        return removed

    def _forget(self, session: ServerSession) -> None:
        """Make ``session`` a new, unsaved one after its stored session was
        removed: writes made later in the request start a new id.
        """
        # Instructions for the rest of this request (another extension's
        # after_request hook) outlive the data they were written beside.
        keep = self.options.keep_on_destroy
        kept = {key: session.data[key] for key in keep if key in session.data}
        self._generate(session, kept)
        session.regenerated_from = session.regenerated_user = None

    def _user(self, data: cabc.Mapping[str, t.Any], device: object) -> str | None:
        """The user a stored session belongs to, for the signals."""
        return stored_user(data, self.options.user_key, device)

    def _drop(self, sid: str, device: object) -> bool:
        """Remove ``sid`` from the store and, if that removed a live
        session, from the index; return whether it did.

        A store that cannot tell (its ``destroy`` returns ``None``) counts
        as having removed it.
        """
        if self._call("destroy", sid) is False:
            return False
        if self.users is not None:
            self.users.removed(sid, device)
        return True

    def _remove(
        self, sid: str, data: cabc.Mapping[str, t.Any], device: object, reason: str
    ) -> bool:
        """Remove ``sid`` (stored with ``data`` and ``device``) and, if that
        removed a live session, send :data:`session_destroyed`; return
        whether it did. Sent once per session, whoever removes it first.
        """
        if not self._drop(sid, device):
            return False
        notify(session_destroyed, sid, self._user(data, device), reason=reason)
        return True

    def reload(self, session: ServerSession) -> None:
        """Re-read ``session``; see :meth:`ServerSession.reload`."""
        document = self._fetch(session.sid) if session.in_store else None
        if document is None:
            raise SessionNotFound(f"session {session.sid[:6]}... is not in the store")
        self._inflate(session, session.sid, document)

    def save(self, session: ServerSession) -> None:
        """Write ``session`` now; see :meth:`ServerSession.save`."""
        tagged, text = session.current()
        session.cookie.touch()
        self._write(session, tagged, text)

    def _write(
        self,
        session: ServerSession,
        tagged: dict[str, t.Any],
        text: str,
        *,
        announce: bool = True,
    ) -> None:
        """Store the session: only the changed keys for a stored session,
        the whole document for a new one.

        :param announce: send :data:`session_created` (or
            :data:`session_regenerated`) when a new id is stored.
        :raises TypeError: a new value holds NaN or an infinity.
        """
        check_finite(tagged, text, session.loaded_values)
        login = self._begin_login(session)
        cookie = session.cookie.to_document()
        device, old_device = None, session.device
        if self.users is not None:
            device = self.users.before_write(session, session.data, cookie)
        if session.in_store:
            base = session.base
            # An untouched plain value is the very object loaded: no JSON needed.
            changes = {
                k: v
                for k, v in tagged.items()
                if k not in base or (base[k] is not v and dumps(base[k]) != dumps(v))
            }
            removed = [k for k in base if k not in tagged]
            written = [*changes, *removed]
            macs = {k: m for k, m in session.tag_macs.items() if k in tagged and k not in changes}
            self._sign_tagged(session, changes, macs)
            stored_tags = session.stored_tags
            # Each MAC is its own member, merged with its key's change.
            for key, mac in macs.items():
                if stored_tags.get(key) != mac:
                    changes[tagged_member(key)] = mac
            removed += [tagged_member(k) for k in written if k in stored_tags and k not in macs]
            kept_tags = {k: v for k, v in stored_tags.items() if k not in written}
            changes[COOKIE_MEMBER] = cookie
            if device is not old_device:
                if device is None:
                    removed.append(DEVICE_MEMBER)
                else:
                    changes[DEVICE_MEMBER] = device
            changes.update(self._touch_stamp(cookie))
            if session.created_unsaved:
                changes[CREATED_MEMBER] = session.created
            try:
                stored = self._call("merge", session.sid, changes, removed)
            except CorruptDocument as exc:
                _log_corrupt(session.sid, exc, "not overwritten")
                stored = False
            if self.users is not None:
                self.users.after_write(session, device, bool(stored))
            if not stored:
                # Destroyed by another request meanwhile: a logout stays a
                # logout. The id is never stored again (set), even by a
                # later save in this request, which starts a new one. The
                # cookie is left alone: the browser may have logged in anew.
                self._forget(session)
                return
        else:
            document = dict(tagged)
            macs = {}
            self._sign_tagged(session, tagged, macs)
            document.update((tagged_member(k), mac) for k, mac in macs.items())
            kept_tags = {}
            document[COOKIE_MEMBER] = cookie
            document.update(self._touch_stamp(cookie))
            if session.created is not None:
                document[CREATED_MEMBER] = session.created
            if device is not None:
                document[DEVICE_MEMBER] = device
            self._call("set", session.sid, document)
            session.in_store = True
            if announce:
                self._announce(session, device_user(device))
        session.device = device
        session.created_unsaved = False
        session.base = tagged
        session.tag_macs, session.stored_tags = macs, {**kept_tags, **macs}
        session.saved_id, session.saved_text = session.sid, text
        self._after_write(session, tagged, login)

    def _begin_login(self, session: ServerSession) -> str | None:
        """Return the user a write of ``session`` logs in, if any: its data
        names a user it did not belong to (``regenerate(keep=True)`` keeps
        the user it belonged to). A login restarts the absolute timeout.
        """
        if self.users is None:
            return None
        user = self.users.owner(session.data)
        if user is None or user == session.login_user:
            return None
        if self.options.absolute_timeout is not None:
            session.created, session.created_unsaved = int(time.time() * 1000), True
        return user

    def _after_write(
        self, session: ServerSession, tagged: dict[str, t.Any], login: str | None
    ) -> None:
        """After ``session`` was written: a session that was not in the user
        index and has just been filed ends if its user was revoked meanwhile
        (the revoke could not list it); a login evicts the user's sessions
        beyond ``CONNECT_SESSION_MAX_PER_USER``.
        """
        if self.users is None:
            return
        session.login_user = self.users.owner(session.data)
        unfiled, session.unfiled_user = session.unfiled_user, None
        if unfiled is not None and device_user(session.device) == unfiled:
            if self.users.revoked(unfiled):
                self._remove(session.sid, tagged, session.device, "revoke")
                self._forget(session)
                return
        limit = self.options.max_per_user
        if login is not None and limit is not None:
            self.users.evict(login, session.sid, limit)

    @staticmethod
    def _sign_tagged(
        session: ServerSession, values: dict[str, t.Any], macs: dict[str, str]
    ) -> None:
        """Add to ``macs`` the MAC of each of ``values`` (about to be written)
        that holds Flask tags, so it is decoded as such when read back.
        """
        for key, value in values.items():
            if holds_tags(value):
                macs[key] = sign_value(session.secrets[0], session.sid, key, value)

    def _announce(self, session: ServerSession, user: str | None) -> None:
        """Send :data:`session_created` or :data:`session_regenerated` for a
        session just stored under a new id.
        """
        old = session.regenerated_from
        if old is None:
            notify(session_created, session.sid, user, session=session)
        else:
            session.regenerated_from = None
            notify(session_regenerated, session.sid, user, session=session, old_handle=handle(old))

    def _touch_stamp(self, cookie: CookieDocument) -> dict[str, int]:
        # With a touch interval, a browser-session cookie's document records
        # when it was written; an expiring cookie's expires already tells.
        if self.options.touch_after and cookie.get("expires") is None:
            return {TOUCHED_MEMBER: int(time.time() * 1000)}
        return {}

    # -- the end of the request ------------------------------------------

    def should_destroy(self, session: ServerSession, tagged: dict[str, t.Any]) -> bool:
        """Whether the session was emptied during the request and ``unset``
        is ``"destroy"``: it is removed from the store and the cookie deleted.
        """
        emptied = session.in_store and not tagged and bool(session.base)
        return emptied and self.options.unset == "destroy"

    def should_save(self, session: ServerSession, text: str) -> bool:
        """express-session's ``shouldSave``: a new session if written to (or
        ``save_uninitialized``), a loaded one if changed (or ``resave``).
        """
        if (
            session.sid != session.cookie_sid
            and not self.options.save_uninitialized
            and session.saved_text is None
        ):
            return session.is_modified(text)
        # A loaded session whose start time (absolute timeout) is not stored
        # yet is saved, or its count would restart on every read.
        return not session.is_saved(text) or (
            session.in_store
            and (
                session.created_unsaved
                or (self.users is not None and self.users.due(session, session.data))
            )
        )

    def should_touch(self, session: ServerSession) -> bool:
        """Whether to extend the store lifetime of a loaded, unsaved session
        (not done already by the load).
        """
        return (
            self._store_touches
            and not session.touched
            and session.in_store
            and session.sid == session.cookie_sid
        )

    def should_set_cookie(self, session: ServerSession, text: str) -> bool:  # type: ignore[override]
        """express-session's ``shouldSetCookie``, plus Flask's refresh of
        permanent sessions: a new or regenerated session once stored; a loaded
        one on every response with ``rolling``, or when its expiring cookie
        changed or is refreshed.
        """
        if not session.in_store:
            return False
        if session.sid != session.cookie_sid or self.options.rolling or session.resend_cookie:
            return True
        # Cheap checks first: the Cookie object is built only if needed.
        changed = session.is_modified(text) or (
            self.options.refresh_each_request and session.permanent
        )
        return changed and session.cookie.expires is not None

    def _apply_permanent(self, session: ServerSession) -> None:
        # Flask's session.permanent: without a configured max_age, a permanent
        # session's cookie lives PERMANENT_SESSION_LIFETIME, and one made
        # non-permanent during the request goes back to a browser-session
        # cookie, which must then be re-sent to replace the expiring one.
        if self.options.cookie.max_age is not None:
            return
        if session.permanent:
            if session.cookie.expires is None:
                session.cookie.max_age = self.options.permanent_lifetime
        elif session.base.get("_permanent") is True and session.cookie.expires is not None:
            session.cookie.expires = None
            session.resend_cookie = True

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        """Run the end-of-request lifecycle and write the cookie.

        A session the view never touched costs nothing, except with
        ``rolling`` or ``save_uninitialized``, which load it.

        It runs once per request: when it fails, Flask calls it again for
        the 500 response, and that call does nothing, so a failed save is not
        retried behind the error (nor its cookie sent on the 500).

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        if session.ended:
            return
        session.ended = True
        if not session.loaded:
            if session.load_failed or not (
                self.options.rolling or self.options.save_uninitialized
            ):
                return
            session._load()
        add_vary(response, session.transport.vary)
        tagged, text = session.current()
        if session.destroyed and not tagged:
            self._delete_cookie(session, response)
            return
        if self.should_destroy(session, tagged):
            self._remove(session.sid, session.base, session.device, "unset")
            self._delete_cookie(session, response)
            return
        self._apply_permanent(session)
        if self.should_save(session, text):
            # express touches the cookie of every session it saves or
            # touches: the expiry moves to now + original max age.
            session.cookie.touch()
            self._write(session, tagged, text)
        elif self.should_touch(session):
            cookie = session.cookie
            cookie.touch()
            if self.options.touch_after:
                # The stored cookie must show this touch, for the next
                # request's interval check: only the cookie member is written.
                self._write(session, tagged, text)
            else:
                self._call("touch", session.sid, {**tagged, COOKIE_MEMBER: cookie.to_document()})
        if self.should_set_cookie(session, text):
            self._set_cookie(session, response)

    def _set_cookie(self, session: ServerSession, response: Response) -> None:
        cookie = session.cookie
        cookie.touch()
        # A secure cookie never goes over plain HTTP (the session is saved),
        # and neither does the id in a header.
        if cookie.requires_secure and not is_secure(session.request, self.options.proxy):
            return
        session.transport.send(response, sign(session.sid, session.secrets[0]), cookie)

    def _delete_cookie(self, session: ServerSession, response: Response) -> None:
        session.transport.expire(response, session.cookie)
