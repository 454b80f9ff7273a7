"""The session lifecycle, free of I/O: express-session's rules for one request.

:class:`Core` holds what an app's sessions share (the parsed options, what
the store can do, the clock); :class:`Lifecycle` owns one request's session
and makes every decision about it: what to load, what a save writes, when the
store lifetime is extended, when the cookie is sent or deleted, which signals
go out. It never calls the store: its operations are generators that yield
:mod:`~.calls` (``Get``, ``Merge``, ``Notify``...) and receive their results,
and a driver (Flask's session interface, or Quart's) carries them out,
synchronously or with ``await``, as h11 leaves the socket to its caller.

Where to find a rule:

* what is loaded, and what a timed-out, corrupt or unknown session becomes:
  :meth:`Lifecycle.load`;
* whether a session is saved, touched or destroyed at the end of a request:
  :meth:`Lifecycle.should_save`, :meth:`~Lifecycle.should_touch`,
  :meth:`~Lifecycle.should_destroy`;
* what a save writes: :meth:`Lifecycle._write` (with :mod:`.document`);
* whether the cookie (or header) is sent or deleted: :meth:`Lifecycle.end`
  and :meth:`Lifecycle.should_set_cookie`, giving an :class:`Ending`.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import logging
import time
import typing as t

from . import document as doc
from .calls import Destroy
from .calls import Get
from .calls import GetAndTouch
from .calls import Merge
from .calls import Notify
from .calls import Set
from .calls import TakeOver
from .calls import Touch
from .cookie import Cookie
from .cookie import clocked
from .errors import CorruptDocument
from .errors import SessionNotFound
from .protect import from_options
from .protect import hash_id
from .provenance import holds_tags
from .provenance import sign_value
from .provenance import verify
from .serialization import check_finite
from .serialization import dumps
from .serialization import dumps_data
from .serialization import load_data
from .signals import session_created
from .signals import session_destroyed
from .signals import session_regenerated
from .signing import sign
from .stores.base import implements
from .users import UserIndex
from .users import handle
from .users import key_handle
from .users import stored_user

if t.TYPE_CHECKING:
    from .calls import Steps
    from .cookie import CookieDocument
    from .document import Device
    from .document import Document
    from .migrate import Takeover
    from .options import Options
    from .protect import Protection
    from .signing import Secret
    from .stores.base import AsyncStore
    from .stores.base import Store

logger = logging.getLogger("flask_connect_session")


class Request(t.Protocol):
    """What the core needs to know of the request, read lazily by the
    driver: most requests never ask.
    """

    @property
    def secure(self) -> bool:
        """Whether the request came over HTTPS (``CONNECT_SESSION_PROXY`` decides)."""

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` header."""

    @property
    def remote_addr(self) -> str | None:
        """The client's address."""

    def generate_id(self) -> str:
        """A new session id from ``CONNECT_SESSION_GENID``."""

    def signed_id(self, secrets: tuple[Secret, ...]) -> str | None:
        """The session id the request carries (cookie or header) if it is
        validly signed under one of ``secrets``, else ``None``.
        """


@dataclasses.dataclass(slots=True)
class Ending:
    """What the response of a request carries for its session."""

    #: Whether the response depends on the session: ``Vary`` names the
    #: transport's request headers.
    vary: bool = False
    #: The signed id to send (the cookie, or the header), or ``None``.
    send: str | None = None
    #: Whether to delete the cookie (or send an empty header).
    expire: bool = False
    #: The cookie whose attributes a send or deletion uses.
    cookie: Cookie | None = None
    #: The takeover whose legacy cookies the response deletes, if any.
    takeover: Takeover | None = None


#: The Ending of a request whose session was never loaded.
UNTOUCHED = Ending()


def system_clock() -> float:
    """The default clock: :func:`time.time`, looked up on every call."""
    return time.time()


def _log_corrupt(sid: str, exc: CorruptDocument, outcome: str) -> None:
    # The entry is left in place for inspection; only a sid prefix is logged.
    logger.error("corrupt session document (sid %.6s...), %s: %s", sid, outcome, exc)


class Core:
    """The rules an app's sessions share, built once at ``init_app``.

    :param options: the parsed configuration.
    :param store: the store (for what it can do and its lifetime of
        browser-session cookies; the core never calls it).
    :param clock: returns the time in seconds since the epoch; tests pass
        their own.
    :param takeover: whether a request without a session of ours asks the
        takeover hook for a legacy one.
    """

    def __init__(
        self,
        options: Options,
        store: Store | AsyncStore,
        *,
        clock: cabc.Callable[[], float] = system_clock,
        takeover: bool = False,
    ) -> None:
        #: The parsed configuration.
        self.options = options
        #: The clock, in seconds since the epoch; fixed once built (the
        #: cookies and the user index read it too).
        self.clock = clock
        # The cookies' clock: left as the wall clock by default, which they
        # read without the call of a Python function on every expiry.
        self._cookie_clock = None if clock is system_clock else clock
        #: Whether new sessions ask the takeover hook (cookie requests only).
        self.takeover = takeover
        #: The store's lifetime of browser-session cookies' sessions.
        self.browser_lifetime = store.ttl
        #: Whether the store can extend a lifetime without a write.
        self.store_touches = implements(store, "touch")
        # Load and touch in one call where the store can: a read-only
        # request then costs a single round trip. With a touch interval the
        # load must not touch: the interval is checked once the session is read.
        #: Whether the load also extends the store lifetime.
        self.load_touches = implements(store, "get_and_touch") and not options.touch_after
        #: Whether a request whose view never touched the session loads it
        #: anyway at the end (``rolling`` re-sends its cookie,
        #: ``save_uninitialized`` stores a new one); otherwise such a request
        #: costs nothing, and a driver need not even start its lifecycle.
        self.loads_untouched = options.rolling or options.save_uninitialized
        # The configured cookie, by whether the request is HTTPS.
        self._cookies: dict[bool, Cookie] = {}
        #: Hashes store keys and encrypts documents
        #: (``CONNECT_SESSION_HASH_IDS``, ``CONNECT_SESSION_ENCRYPT``);
        #: ``None`` when both are off.
        self.protection: Protection | None = from_options(options.hash_ids, options.encrypt)
        #: Keeps the per-user index, when ``CONNECT_SESSION_USER_KEY`` is set.
        self.users = (
            None
            if options.user_key is None
            else UserIndex(
                options.user_key,
                options.ttl,
                clock,
                self._longest_lifetime(store),
                protection=self.protection,
            )
        )

    def _longest_lifetime(self, store: Store | AsyncStore) -> float:
        """The longest a session this app stores lives untouched (seconds):
        how long a revoke record must last to outlive every session that
        existed when it was made.
        """
        options = self.options
        return max(options.ttl, store.ttl, options.cookie.max_age or 0, options.permanent_lifetime)

    def configured_cookie(self, secure_request: bool) -> Cookie:
        """Return a new cookie as the settings make it, its expiry (if it
        has a ``max_age``) counted from now.

        :param secure_request: whether the request is HTTPS, for
            ``secure="auto"`` and ``samesite="auto"``.
        """
        # A copy of one made once: every loaded session's cookie starts as
        # the configured one, so this is on the path of most requests.
        prototype = self._cookies.get(secure_request)
        if prototype is None:
            opts = self.options.cookie
            prototype = Cookie(
                max_age=opts.max_age,
                path=opts.path,
                domain=opts.domain,
                httponly=opts.httponly,
                secure=secure_request if opts.secure == "auto" else opts.secure,
                samesite=(
                    ("None" if secure_request else "Lax")
                    if opts.samesite == "auto"
                    else opts.samesite
                ),
                partitioned=opts.partitioned,
                priority=opts.priority,
            )
            self._cookies[secure_request] = clocked(prototype, self._cookie_clock)
        cookie = prototype.copy()
        cookie.touch()
        return cookie

    def handle(self, key: str) -> str:
        """Return the public handle of the session stored under ``key``."""
        return key_handle(key, self.protection)

    def now_ms(self) -> int:
        """The clock, in ms since the epoch (the unit of stored times)."""
        return int(self.clock() * 1000)

    def lifecycle(
        self, request: Request, secrets: tuple[Secret, ...], *, header: bool = False
    ) -> Lifecycle:
        """Start the lifecycle of one request's session; does no work yet
        (not even checking the id the request carries).

        :param request: the request facts.
        :param secrets: the secrets in force; the first signs.
        :param header: whether the id comes in a header (API client), not the cookie.
        """
        return Lifecycle(self, request, secrets, header)


class Lifecycle:
    """One request's session, from the first access to the response.

    The driver calls :meth:`load` at the first access (Flask) or when the
    request starts (Quart), the session methods as the view calls them, and
    :meth:`end` once, for the response. Every attribute below is kept here
    and only here.
    """

    # Defaults as class attributes: opening a session the view never touches
    # costs a few assignments.

    #: Whether the store was read (or a new session made) for this request.
    loaded = False
    #: Whether reading the store failed during this request.
    load_failed = False
    #: Whether :meth:`end` has run (it runs once).
    ended = False
    #: Whether the view set ``session.modified = True``.
    force_modified = False
    #: Whether a save wrote the session since (the mark forces one save).
    force_saved = False
    #: The validly signed id the request carried (express's ``cookieId``),
    #: or ``None``; read at load.
    cookie_sid: str | None = None
    #: The current session id.
    sid = ""
    #: The key the store keeps it under: the id, or its hash
    #: (``CONNECT_SESSION_HASH_IDS``).
    key = ""
    #: With protection at rest: :func:`~.protect.hash_id` of the id, which
    #: the encryption binds each value to.
    hashed = ""
    #: The stored members a write is to encrypt anew (plain, or under an
    #: old key), by name: their stored value and their value in the clear.
    stale: cabc.Mapping[str, tuple[t.Any, t.Any]] = {}
    #: The user's data.
    data: dict[str, t.Any]
    #: The cookie, built on first use from ``cookie_document``.
    cookie_obj: Cookie | None = None
    #: The stored ``"cookie"`` member not yet turned into ``cookie_obj``.
    cookie_document: dict[str, t.Any] | None = None
    #: Whether the session was created during this request.
    is_new = True
    #: Creation time (ms since the epoch) when an absolute timeout is set.
    created: int | None = None
    #: Whether ``created`` is not in the stored document yet.
    created_unsaved = False
    #: Whether the store holds ``sid``, as far as this request knows; then
    #: ``base``, ``tag_macs``, ``stored_tags`` and ``device`` are what it holds.
    in_store = False
    #: Whether the store lifetime was extended already in this request.
    touched = False
    #: The stored (tagged) values as last loaded or saved: what a save
    #: compares key by key to write only the changes.
    base: dict[str, t.Any]
    #: The MAC (see :mod:`.provenance`) of each stored tagged value, by key.
    tag_macs: dict[str, str]
    #: The document's ``"_tagged:<key>"`` members as last loaded or saved.
    stored_tags: dict[str, t.Any]
    #: Id and data JSON when loaded or generated (express's isModified).
    original_id = ""
    original_text = "{}"
    #: Id and data JSON when last saved; ``None`` if not (express's isSaved).
    saved_id = ""
    saved_text: str | None = None
    #: Whether the cookie must be sent even though express would not.
    resend_cookie = False
    #: Set by :meth:`destroy`: the response deletes the cookie unless new
    #: data makes a new session.
    destroyed = False
    #: The stored ``"_device"`` member (``CONNECT_SESSION_USER_KEY``), if any.
    device: Device | None = None
    #: The store key of the id :meth:`regenerate` moved away from, until the
    #: new id is stored (for :data:`~flask_connect_session.session_regenerated`).
    regenerated_from: str | None = None
    #: The user that stored id belonged to (for its signals).
    regenerated_user: str | None = None
    #: The legacy session this request took over, if any.
    takeover: Takeover | None = None
    #: The stored (tagged) values the session was loaded with, kept across
    #: :meth:`regenerate`: a NaN or infinity among them (stored by another
    #: app or an older version) may be written back as it is, never anew.
    loaded_values: dict[str, t.Any]
    #: With ``CONNECT_SESSION_USER_KEY``: the user the session belonged to
    #: when loaded or last saved (``regenerate(keep=True)`` keeps it); a
    #: save naming another user is a login.
    login_user: str | None = None
    #: The user the loaded data names when the user index does not hold the
    #: session (see :meth:`UserIndex.unfiled
    #: <flask_connect_session.users.UserIndex.unfiled>`), until it is saved.
    unfiled_user: str | None = None

    def __init__(
        self,
        core: Core,
        request: Request,
        secrets: tuple[Secret, ...],
        header: bool,
    ) -> None:
        self.core = core
        self.options = core.options
        #: The request facts.
        self.request = request
        #: The secrets in force for this request; the first signs.
        self.secrets = secrets
        #: Whether the id travels in a header rather than the cookie.
        self.header = header

    # -- state -------------------------------------------------------------

    @property
    def cookie(self) -> Cookie:
        """The session's cookie, built from its stored form on first use,
        never weaker than the configuration (see :meth:`Cookie.at_least`).
        """
        if self.cookie_obj is None:
            defaults = self.new_cookie()
            stored = self.cookie_document
            self.cookie_obj = (
                defaults
                if stored is None
                else Cookie.from_document(stored, defaults).at_least(defaults)
            )
        return self.cookie_obj

    def new_cookie(self) -> Cookie:
        """Return the cookie a new session gets, from the cookie settings.

        ``secure="auto"`` and ``samesite="auto"`` are resolved against this
        request, as express-session resolves ``secure: "auto"``.
        """
        opts = self.options.cookie
        secure_request = self.request.secure if "auto" in (opts.secure, opts.samesite) else False
        return self.core.configured_cookie(secure_request)

    def current(self) -> tuple[dict[str, t.Any], str]:
        """Return the data's stored (tagged) form and its JSON text.

        :raises TypeError: a value has no JSON form; the message names its key.
        """
        return dumps_data(self.data)

    def is_modified(self, text: str) -> bool:
        """Whether the id or data (as JSON ``text``) differ from when the
        session was loaded, or ``modified`` was set.
        """
        return self.force_modified or self.sid != self.original_id or text != self.original_text

    @property
    def permanent(self) -> bool:
        """Flask's ``session.permanent``: the ``"_permanent"`` data key."""
        return bool(self.data.get("_permanent", False))

    def is_saved(self, text: str) -> bool:
        """Whether the store already holds this id with this data."""
        return self.saved_id == self.sid and text == self.saved_text

    # -- loading -------------------------------------------------------------

    def load(self) -> Steps[None]:
        """Load the session the request names, or start a new one.

        An unknown, expired, timed-out or corrupt session gets a new id: a
        client-chosen id is never adopted. A request without a session of
        ours may take over a legacy one (see :mod:`.migrate`). If it fails,
        :meth:`end` does not try again (and wait on a dead store).

        :raises StoreError: the store failed.
        """
        try:
            sid = self.cookie_sid = self.request.signed_id(self.secrets)
            document: Document | None = None
            touched = self.core.load_touches
            if sid is not None:
                protection = self.core.protection
                key = sid if protection is None else protection.store_key(sid)
                # _fetch, inline: the one store call of most requests.
                try:
                    document = yield GetAndTouch(key) if touched else Get(key)
                    if document is not None:
                        doc.check_document(document)
                        if protection is not None:
                            document = self._open(sid, document)
                    elif protection is not None and protection.hash_ids:
                        document = yield from self._find_unhashed(sid)
                        touched = False
                except CorruptDocument as exc:
                    _log_corrupt(sid, exc, "a new session starts")
                    document = None
                if document is not None and self._timed_out(document):
                    device = document.get(doc.DEVICE_MEMBER)
                    yield from self._remove(key, document, device, "timeout")
                    document = None
            if document is not None and sid is not None:
                try:
                    self._inflate(sid, document)
                    self.touched = touched or self._fresh(document)
                except CorruptDocument as exc:
                    _log_corrupt(sid, exc, "a new session starts")
                    document = None
                if document is not None and (yield from self._revoked_unfiled()):
                    yield from self._remove(self.key, self.base, self.device, "revoke")
                    document = None
            if document is None:
                self._generate({})
                if self.core.takeover and not self.header:
                    # A header request (API client) ignores cookies, legacy
                    # ones too: its response must not set or delete any.
                    yield from self._take_over()
        except BaseException:
            self.load_failed = True
            raise
        self.loaded = True

    def _revoked_unfiled(self) -> Steps[bool]:
        """Whether a session the user index does not hold (see
        :meth:`UserIndex.unfiled`) was revoked: its user has a revoke
        record. The only read of that record on a load, and only for such a
        session, which its first save then files: a read-only request of an
        indexed session stays one round trip.
        """
        users, user = self.core.users, self.unfiled_user
        if users is None or user is None:
            return False
        return (yield from users.revoked(user))

    def _take_over(self) -> Steps[None]:
        """Take over the legacy session the request's cookies name, if any
        (see :mod:`.migrate`); one naming a user who was logged out
        everywhere since the switch is deleted instead.
        """
        takeover: Takeover | None = yield TakeOver()
        if takeover is None:
            return
        self.takeover = takeover
        users = self.core.users
        user = None if users is None else users.owner(takeover.data)
        if users is not None and user is not None and (yield from users.revoked(user)):
            # Any record counts: every legacy session predates the switch.
            yield from takeover.refuse()
        # A new session whose data differs from its (empty) original: saved
        # at the end like any written session.
        self.data = takeover.data

    def _fetch(self, sid: str) -> Steps[Document | None]:
        """Return the stored document of the session (under its key), or
        ``None`` if missing or corrupt.

        A corrupt entry is logged and left in place; the caller starts a new
        session with a new id.
        """
        try:
            document: Document | None = yield Get(self.key)
            if document is None:
                return None
            doc.check_document(document)
            return document if self.core.protection is None else self._open(sid, document)
        except CorruptDocument as exc:
            _log_corrupt(sid, exc, "a new session starts")
            return None

    # -- protection at rest ------------------------------------------------

    def _open(self, sid: str, document: Document) -> Document:
        """Return a checked stored document in the clear, noting which of its
        members the next write encrypts anew.

        :raises CorruptDocument: a value does not decrypt.
        """
        protection = self.core.protection
        assert protection is not None
        opened = protection.open(hash_id(sid), document)
        self.stale = opened.stale
        return opened.document

    def _protect_id(self) -> None:
        """Set the hashed id and the store key of a new :attr:`sid`."""
        protection = self.core.protection
        assert protection is not None
        self.hashed = hash_id(self.sid)
        if protection.hash_ids:
            self.key = self.hashed

    def _find_unhashed(self, sid: str) -> Steps[Document | None]:
        """With ``CONNECT_SESSION_HASH_IDS``, for a session not found under
        its hash: return it from under its id, where it was stored before
        the option was on, after moving it under its hash (its user-index
        entry too), so its next request costs one round trip again.

        A request that moves it meanwhile writes the hash before it removes
        the id: if the id is gone, the hash is read once more.

        :raises CorruptDocument: the stored document is corrupt.
        """
        protection = self.core.protection
        assert protection is not None
        hashed = hash_id(sid)
        stored: Document | None = yield Get(sid)
        if stored is None:
            stored = yield Get(hashed)
            if stored is None:
                return None
            return self._open(sid, doc.check_document(stored))
        document = self._open(sid, doc.check_document(stored))
        device = document.get(doc.DEVICE_MEMBER)
        device = device if isinstance(device, dict) else None
        users = self.core.users
        if users is not None:
            # Filed under the hash before it is stored there, as any write.
            yield from users.refile(hashed, device)
        yield Set(hashed, protection.seal(hashed, document))
        self.stale = {}
        yield from self._drop(sid, device)
        return document

    def _timed_out(self, document: Document) -> bool:
        timeout = self.options.absolute_timeout
        if timeout is None:  # the usual case: nothing to read
            return False
        created = doc.stamp(document)
        return created is not None and self.core.now_ms() - created > timeout * 1000

    def _fresh(self, document: Document) -> bool:
        # CONNECT_SESSION_TOUCH_AFTER: touched less than that long ago. The
        # interval counts as at most half the lifetime the last touch gave,
        # so an interval as long as the lifetime cannot let an active
        # session expire between touches.
        interval = self.options.touch_after
        touch = doc.last_touch(document, self.core.browser_lifetime) if interval else None
        if touch is None:
            return False
        last, lifetime = touch
        return 0 <= self.core.now_ms() - last < min(interval, lifetime / 2) * 1000

    def _generate(self, data: dict[str, t.Any], *, keep_original: bool = False) -> None:
        """Make this a brand-new session holding ``data``.

        :param keep_original: keep the id and data the session was loaded
            with as its original (``regenerate``), so the new id counts as a
            change; otherwise the new, empty session is the original.
        """
        self.sid = self.key = self.request.generate_id()
        if self.core.protection is not None:
            self._protect_id()
        if not keep_original:
            self.original_id, self.original_text = self.sid, "{}"
            self.loaded_values = {}
        self.data = data
        self.cookie_obj = self.new_cookie()
        self.cookie_document = None
        self.is_new = True
        self.in_store = False
        self.touched = False
        self.base = {}
        self.tag_macs, self.stored_tags = {}, {}
        self.saved_text = None
        self.device = None
        self.login_user = self.unfiled_user = None
        if self.options.absolute_timeout is not None:
            self.created = self.core.now_ms()
            self.created_unsaved = True

    def _inflate(self, sid: str, document: Document) -> None:
        """Fill this session from a stored document.

        :raises CorruptDocument: the values are nested too deeply to read.
        """
        stored = doc.split(document)
        macs = stored.macs
        secrets = self.secrets
        tag_macs: dict[str, str] = {}

        def trusted(key: str, raw: t.Any) -> bool:
            # Only a value whose MAC verifies was written by this extension.
            index = verify(secrets, sid, key, raw, macs.get(key))
            if index is None:
                return False
            # Under a fallback secret: re-made with the current one when saved.
            tag_macs[key] = macs[key] if index == 0 else sign_value(secrets[0], sid, key, raw)
            return True

        self.data, self.base = load_data(stored.values, trusted)
        self.loaded_values = self.base
        self.sid = self.key = sid
        if self.core.protection is not None:
            self._protect_id()
        self.stored_tags, self.tag_macs = macs, tag_macs
        # The Cookie object is built only if the request needs it.
        self.cookie_obj = None
        self.cookie_document = stored.cookie
        self.device = stored.device
        users = self.core.users
        if users is not None:
            self.login_user = users.owner(stored.values)
            self.unfiled_user = users.unfiled(stored.values, stored.device)
        self.is_new = False
        self.in_store = True
        self.original_id, self.original_text = sid, dumps(self.base)
        if not self.options.resave:
            self.saved_id, self.saved_text = sid, self.original_text
        if self.options.absolute_timeout is not None:
            if stored.created is not None:
                self.created, self.created_unsaved = stored.created, False
            else:
                # Made before the timeout was enabled, or by an app that does
                # not keep the start time: the count starts now, and the start
                # is saved at the end of this request (see should_save).
                self.created, self.created_unsaved = self.core.now_ms(), True

    # -- the session methods ---------------------------------------------

    def regenerate(self, keep: bool) -> Steps[None]:
        """Move the session to a new id; see ``session.regenerate()``.

        With ``keep``, the data goes along but for the
        ``CONNECT_SESSION_REGENERATE_DROP`` keys. If the stored session is
        gone already (revoked or destroyed by another request meanwhile), its
        data is not carried over: the new id starts empty, so a request in
        flight cannot keep a revoked login.
        """
        drop = self.options.regenerate_drop
        data = {k: v for k, v in self.data.items() if k not in drop} if keep else {}
        if not self.in_store:
            self._move(data, keep_login=keep)
            return
        users = self.core.users
        if keep and users is not None and users.owner(data) is not None:
            yield from self._move_logged_in(data, users)
            return
        old, device = self.key, self.device
        user = self._user(self.base, device)
        if (yield from self._drop(old, device)):
            self.regenerated_from, self.regenerated_user = old, user
        else:
            data, keep = {}, False
        self._move(data, keep_login=keep)

    def _move(self, data: dict[str, t.Any], *, keep_login: bool) -> None:
        """Give the session a new id holding ``data``, for :meth:`regenerate`.

        With ``CONNECT_SESSION_USER_KEY``, the absolute timeout's clock goes
        along (only a login restarts it, see :meth:`_begin_login`), and with
        ``keep_login`` so does the login: its ``"_device"`` member (when the
        user logged in) and the user it belongs to.
        """
        created, device = self.created, self.device
        login_user, unfiled_user = self.login_user, self.unfiled_user
        self._generate(data, keep_original=True)
        if self.core.users is None:
            return
        if created is not None:
            self.created = created
        if keep_login:
            self.device, self.login_user = device, login_user
            self.unfiled_user = unfiled_user

    def _move_logged_in(self, data: dict[str, t.Any], users: UserIndex) -> Steps[None]:
        """``regenerate(keep=True)`` of a stored session that names a user.

        The new id is stored (and filed in the user's index) *before* the
        old one is removed, so a revoke running meanwhile always finds one of
        them (see :meth:`ConnectSession.revoke
        <flask_connect_session.ConnectSession.revoke>`). If the old one is
        gone by then (revoked, or logged out by another request), the new
        one goes too and nothing is carried over.

        :raises TypeError: a value cannot be stored; nothing was changed.
        """
        old, device = self.key, self.device
        user = self._user(self.base, device)
        self._move(data, keep_login=True)
        self._apply_permanent()
        tagged, text = self.current()
        self.cookie.touch()
        yield from self._write(tagged, text, announce=False)
        if not self.in_store:  # revoked while this request ran
            yield from self._drop(old, device)
            return
        yield from users.refile(self.key, self.device)
        if (yield from self._drop(old, device)):
            self.regenerated_from = old
            yield from self._announce(user)
        else:
            yield from self._drop(self.key, self.device)
            self._move({}, keep_login=False)

    def destroy(self, reason: str = "destroy") -> Steps[bool]:
        """Destroy the session; see ``session.destroy()``. Return whether
        this removed a stored session (another request may have removed it
        first).

        :param reason: the ``reason`` :data:`session_destroyed` is sent with.
        """
        removed = False
        if self.in_store:
            removed = yield from self._remove(self.key, self.base, self.device, reason)
        elif self.regenerated_from is not None:
            # regenerate() removed the stored id and the new one was never
            # stored: this ends that session.
            old, user = self.regenerated_from, self.regenerated_user
            yield from self._notify_destroyed(old, user, reason)
            removed = True
        self._forget()
        self.destroyed = True
        return removed

    def reload(self) -> Steps[None]:
        """Re-read the session; see ``session.reload()``.

        :raises SessionNotFound: it is no longer stored.
        """
        document = (yield from self._fetch(self.sid)) if self.in_store else None
        if document is None:
            raise SessionNotFound(f"session {self.sid[:6]}... is not in the store")
        self._inflate(self.sid, document)

    def save(self) -> Steps[None]:
        """Write the session now; see ``session.save()``."""
        tagged, text = self.current()
        self.cookie.touch()
        yield from self._write(tagged, text)

    def touch(self) -> None:
        """Reset the cookie's expiry to now plus its original max age."""
        self.cookie.touch()

    def _forget(self) -> None:
        """Make this a new, unsaved session after its stored session was
        removed: writes made later in the request start a new id.
        """
        # Instructions for the rest of this request (another extension's
        # after_request hook) outlive the data they were written beside.
        keeps = self.options.keep_on_destroy
        kept = {key: self.data[key] for key in keeps if key in self.data}
        self._generate(kept)
        self.regenerated_from = self.regenerated_user = None

    # -- removing ----------------------------------------------------------

    def _user(self, data: cabc.Mapping[str, t.Any], device: object) -> str | None:
        """The user a stored session belongs to, for the signals."""
        return stored_user(data, self.options.user_key, device)

    def _drop(self, key: str, device: object) -> Steps[bool]:
        """Remove the session stored under ``key`` from the store and, if
        that removed a live session, from the index; return whether it did.

        A store that cannot tell (its ``destroy`` returns ``None``) counts
        as having removed it.
        """
        removed: bool | None = yield Destroy(key)
        if removed is False:
            return False
        users = self.core.users
        if users is not None:
            yield from users.removed(key, device)
        return True

    def _remove(
        self, key: str, data: cabc.Mapping[str, t.Any], device: object, reason: str
    ) -> Steps[bool]:
        """Remove the session stored under ``key`` (with ``data`` and
        ``device``) and, if that removed a live session, send
        :data:`session_destroyed`; return whether it did. Sent once per
        session, whoever removes it first.
        """
        if not (yield from self._drop(key, device)):
            return False
        yield from self._notify_destroyed(key, self._user(data, device), reason)
        return True

    def _notify_destroyed(self, key: str, user: str | None, reason: str) -> Steps[None]:
        if session_destroyed.receivers:
            yield Notify(session_destroyed, handle=self.core.handle(key), user=user, reason=reason)

    # -- writing -------------------------------------------------------------

    def _touched_stamp(self, cookie: CookieDocument) -> int | None:
        # With a touch interval, a browser-session cookie's document records
        # when it was written; an expiring cookie's expires already tells.
        if self.options.touch_after and cookie.get("expires") is None:
            return self.core.now_ms()
        return None

    def _sign_tagged(self, values: cabc.Mapping[str, t.Any], macs: dict[str, str]) -> None:
        """Add to ``macs`` the MAC of each of ``values`` (about to be written)
        that holds Flask tags, so it is decoded as such when read back.
        """
        for key, value in values.items():
            if holds_tags(value):
                macs[key] = sign_value(self.secrets[0], self.sid, key, value)

    def _write(self, tagged: dict[str, t.Any], text: str, *, announce: bool = True) -> Steps[None]:
        """Store the session: only the changed keys for a stored session,
        the whole document for a new one.

        :param announce: send :data:`session_created` (or
            :data:`session_regenerated`) when a new id is stored.
        :raises TypeError: a new value holds NaN or an infinity.
        """
        check_finite(tagged, text, self.loaded_values)
        login = self._begin_login()
        cookie = self.cookie.to_document()
        device, old_device = None, self.device
        users = self.core.users
        if users is not None:
            device = yield from users.before_write(self, self.data, cookie)
        if self.in_store:
            changes, removed = doc.changed_keys(self.base, tagged)
            macs = {k: m for k, m in self.tag_macs.items() if k in tagged and k not in changes}
            self._sign_tagged(changes, macs)
            created = self.created if self.created_unsaved else None
            merge = doc.merge(
                changes,
                removed,
                macs,
                self.stored_tags,
                doc.Revision(cookie, device, created, self._touched_stamp(cookie)),
                old_device,
            )
            changes = merge.changes
            protection = self.core.protection
            if protection is not None:
                changes = protection.seal_changes(self.hashed, changes, merge.removed, self.stale)
                self.stale = {}
            try:
                stored: bool = yield Merge(self.key, changes, merge.removed)
            except CorruptDocument as exc:
                _log_corrupt(self.sid, exc, "not overwritten")
                stored = False
            if users is not None:
                yield from users.after_write(self, device, stored)
            if not stored:
                # Destroyed by another request meanwhile: a logout stays a
                # logout. The id is never stored again (set), even by a
                # later save in this request, which starts a new one. The
                # cookie is left alone: the browser may have logged in anew.
                self._forget()
                return
            stored_tags = merge.stored_macs
        else:
            macs = {}
            self._sign_tagged(tagged, macs)
            revision = doc.Revision(cookie, device, self.created, self._touched_stamp(cookie))
            document = doc.assemble(tagged, macs, revision)
            protection = self.core.protection
            if protection is not None:
                document = protection.seal(self.hashed, document)
                self.stale = {}
            yield Set(self.key, document)
            self.in_store = True
            if announce:
                yield from self._announce(doc.device_user(device))
            stored_tags = dict(macs)
        self.device = device
        self.created_unsaved = False
        self.base = tagged
        self.tag_macs, self.stored_tags = macs, stored_tags
        self.saved_id, self.saved_text = self.sid, text
        if self.force_modified:
            self.force_saved = True
        if users is not None:
            yield from self._after_write(users, tagged, login)

    def _begin_login(self) -> str | None:
        """Return the user a write logs in, if any: its data names a user the
        session did not belong to (``regenerate(keep=True)`` keeps the user
        it belonged to). A login restarts the absolute timeout.
        """
        users = self.core.users
        if users is None:
            return None
        user = users.owner(self.data)
        if user is None or user == self.login_user:
            return None
        if self.options.absolute_timeout is not None:
            self.created, self.created_unsaved = self.core.now_ms(), True
        return user

    def _after_write(
        self, users: UserIndex, tagged: dict[str, t.Any], login: str | None
    ) -> Steps[None]:
        """After a write: a session that was not in the user index and has
        just been filed ends if its user was revoked meanwhile (the revoke
        could not list it); a login evicts the user's sessions beyond
        ``CONNECT_SESSION_MAX_PER_USER``.
        """
        self.login_user = users.owner(self.data)
        unfiled, self.unfiled_user = self.unfiled_user, None
        if unfiled is not None and doc.device_user(self.device) == unfiled:
            if (yield from users.revoked(unfiled)):
                yield from self._remove(self.key, tagged, self.device, "revoke")
                self._forget()
                return
        limit = self.options.max_per_user
        if login is not None and limit is not None:
            yield from users.evict(login, self.key, limit)

    def _announce(self, user: str | None) -> Steps[None]:
        """Send :data:`session_created` or :data:`session_regenerated` for a
        session just stored under a new id.
        """
        old = self.regenerated_from
        if old is None:
            if session_created.receivers:
                yield Notify(
                    session_created, handle=handle(self.sid), user=user, with_session=True
                )
        else:
            self.regenerated_from = None
            if session_regenerated.receivers:
                yield Notify(
                    session_regenerated,
                    handle=handle(self.sid),
                    user=user,
                    with_session=True,
                    old_handle=self.core.handle(old),
                )

    # -- the end of the request ------------------------------------------

    def should_destroy(self, tagged: dict[str, t.Any]) -> bool:
        """Whether the session was emptied during the request and ``unset``
        is ``"destroy"``: it is removed from the store and the cookie deleted.
        """
        emptied = self.in_store and not tagged and bool(self.base)
        return emptied and self.options.unset == "destroy"

    def should_save(self, text: str) -> bool:
        """express-session's ``shouldSave``: a new session if written to (or
        ``save_uninitialized``), a loaded one if changed (or ``resave``).
        """
        if (
            self.sid != self.cookie_sid
            and not self.options.save_uninitialized
            and self.saved_text is None
        ):
            return self.is_modified(text)
        # A loaded session whose start time (absolute timeout) is not stored
        # yet is saved, or its count would restart on every read; one the
        # view marked modified is saved, as Flask's ``modified`` promises.
        users = self.core.users
        return not self.is_saved(text) or (
            self.in_store
            and (
                (self.force_modified and not self.force_saved)
                or self.created_unsaved
                or (users is not None and users.due(self, self.data))
            )
        )

    def should_touch(self) -> bool:
        """Whether to extend the store lifetime of a loaded, unsaved session
        (not done already by the load).
        """
        return (
            self.core.store_touches
            and not self.touched
            and self.in_store
            and self.sid == self.cookie_sid
        )

    def should_set_cookie(self, text: str) -> bool:
        """express-session's ``shouldSetCookie``, plus Flask's refresh of
        permanent sessions: a new or regenerated session once stored; a loaded
        one on every response with ``rolling``, or when its expiring cookie
        changed or is refreshed.
        """
        if not self.in_store:
            return False
        if self.sid != self.cookie_sid or self.options.rolling or self.resend_cookie:
            return True
        # Cheap checks first: the Cookie object is built only if needed.
        changed = self.is_modified(text) or (self.options.refresh_each_request and self.permanent)
        return changed and self.cookie.expires is not None

    def _apply_permanent(self) -> None:
        # Flask's session.permanent: without a configured max_age, a permanent
        # session's cookie lives PERMANENT_SESSION_LIFETIME, and one made
        # non-permanent during the request goes back to a browser-session
        # cookie, which must then be re-sent to replace the expiring one.
        if self.options.cookie.max_age is not None:
            return
        if self.permanent:
            if self.cookie.expires is None:
                self.cookie.max_age = self.options.permanent_lifetime
        elif self.base.get("_permanent") is True and self.cookie.expires is not None:
            self.cookie.expires = None
            self.resend_cookie = True

    def end(self) -> Steps[Ending]:
        """Run the end-of-request lifecycle and say what the response carries.

        A session the view never touched costs nothing, except with
        ``rolling`` or ``save_uninitialized``, which load it. It runs once:
        when it fails, Flask asks again for the 500 response, and the second
        call does nothing, so a failed save is not retried behind the error.

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        if self.ended:
            return UNTOUCHED
        self.ended = True
        if not self.loaded:
            if self.load_failed or not self.core.loads_untouched:
                return UNTOUCHED
            yield from self.load()
        ending = Ending(vary=True)
        tagged, text = self.current()
        if self.destroyed and not tagged:
            ending.expire, ending.cookie = True, self.cookie
        elif self.should_destroy(tagged):
            yield from self._remove(self.key, self.base, self.device, "unset")
            ending.expire, ending.cookie = True, self.cookie
        else:
            # The session lives on: save or touch it, and decide its cookie.
            self._apply_permanent()
            cookie_touched = True
            if self.should_save(text):
                # express touches the cookie of every session it saves or
                # touches: the expiry moves to now + original max age.
                self.cookie.touch()
                yield from self._write(tagged, text)
            elif self.should_touch():
                cookie = self.cookie
                cookie.touch()
                if self.options.touch_after:
                    # The stored cookie must show this touch, for the next
                    # request's interval check: only the cookie member is written.
                    yield from self._write(tagged, text)
                else:
                    document = {**tagged, doc.COOKIE_MEMBER: cookie.to_document()}
                    protection = self.core.protection
                    if protection is not None:
                        document = protection.seal(self.hashed, document)
                    yield Touch(self.key, document)
            else:
                cookie_touched = False
            if self.should_set_cookie(text):
                cookie = self.cookie
                if not cookie_touched:
                    # Touched once per request: the expiry sent is the one
                    # stored, to the millisecond.
                    cookie.touch()
                # A secure cookie never goes over plain HTTP (the session is
                # saved), and neither does the id in a header.
                if not cookie.requires_secure or self.request.secure:
                    ending.send, ending.cookie = sign(self.sid, self.secrets[0]), cookie
        if self.takeover is not None:
            yield from self._finish_takeover(ending)
        return ending

    def _finish_takeover(self, ending: Ending) -> Steps[None]:
        """After a takeover: delete the legacy cookies and, once our copy is
        saved, the legacy record.

        Nothing legacy is removed when the session was saved but its cookie
        could not be sent (a secure cookie over plain HTTP): the next request
        takes it over again rather than losing it.
        """
        takeover = self.takeover
        assert takeover is not None
        if self.in_store and ending.send is None:
            return
        ending.takeover = takeover
        yield from takeover.finish(self.sid if self.in_store else None)
