"""``flask.session``: a lazily loaded mapping with express-session's methods."""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask.sessions import SessionMixin

from .serialization import dumps_data
from .serialization import is_reserved

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .cookie import Cookie
    from .transport import Transport


class SessionBackend(t.Protocol):
    """What a session calls for the work that needs the store.

    The session interface implements it; the session only keeps state.
    """

    def load(self, session: ServerSession) -> None: ...
    def inflate_cookie(self, session: ServerSession) -> Cookie: ...
    def regenerate(self, session: ServerSession, keep: bool) -> None: ...
    def destroy(self, session: ServerSession) -> bool: ...
    def reload(self, session: ServerSession) -> None: ...
    def save(self, session: ServerSession) -> None: ...


class ServerSession(SessionMixin):
    """The session of one request, as :data:`flask.session`.

    A mutable mapping of the user's data. Nothing is read from the store
    until the first access to the data or to :attr:`id`, :attr:`cookie` or
    :attr:`new`, so a view that never touches the session costs no store
    call. Changes are found by comparing each key's JSON with the loaded
    version, so nested changes count without ``session.modified = True``.

    The state below is managed by the session interface; the public API is
    the mapping, :attr:`id`, :attr:`cookie`, :attr:`new` and the
    express-session methods.

    .. versionadded:: 0.1
    """

    # Defaults as class attributes, so opening a session the view may never
    # touch costs four assignments. The backend's load() sets the rest.

    #: Whether the session was accessed through :data:`flask.session`.
    accessed = False
    #: Whether the store was read (or a new session made) for this request.
    loaded = False
    #: Whether reading the store failed during this request.
    load_failed = False
    #: Whether the end-of-request lifecycle has run (it runs once).
    ended = False
    _force_modified = False
    #: The validly signed id the request's cookie (or header) carried
    #: (express's ``cookieId``), or ``None``; read at load.
    cookie_sid: str | None = None
    #: The current session id.
    sid = ""
    #: The user's data.
    data: dict[str, t.Any]
    #: The cookie, built on first use from ``cookie_document``.
    cookie_obj: Cookie | None = None
    #: The stored ``"cookie"`` member not yet turned into ``cookie_obj``.
    cookie_document: dict[str, t.Any] | None = None
    is_new = True
    #: Creation time (ms since the epoch) when an absolute timeout is set.
    created: int | None = None
    #: Whether ``created`` is not in the stored document yet.
    created_unsaved = False
    #: Whether the store holds ``sid``, as far as this request knows.
    in_store = False
    #: Whether the load already extended the store lifetime.
    touched = False
    #: The stored (tagged) values as last loaded or saved: what a save
    #: compares key by key to write only the changes.
    base: dict[str, t.Any]
    #: The stored (tagged) values the session was loaded with, kept across
    #: :meth:`regenerate`: a NaN or infinity among them (stored by another
    #: app or an older version) may be written back as it is, never anew.
    loaded_values: dict[str, t.Any]
    #: The MAC (see :mod:`.provenance`) of each stored value this extension
    #: wrote with tags, by key, as last loaded or saved.
    tag_macs: dict[str, str]
    #: The document's ``"_tagged:<key>"`` members as last loaded or saved,
    #: by data key (whatever their values), so a save sets or removes only
    #: those of the keys it changes.
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
    device: dict[str, t.Any] | None = None
    #: The stored id :meth:`regenerate` moved away from, until the new id is
    #: stored (for :data:`~flask_connect_session.session_regenerated`).
    regenerated_from: str | None = None
    #: The user that stored id belonged to (for its signals).
    regenerated_user: str | None = None
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
        backend: SessionBackend,
        request: Request,
        secrets: tuple[str | bytes, ...],
        transport: Transport,
    ) -> None:
        self._backend = backend
        #: The request this session belongs to.
        self.request = request
        #: The secrets in force for this request; the first signs.
        self.secrets = secrets
        #: Where this request's session id travels (cookie or header).
        self.transport = transport

    def _load(self) -> dict[str, t.Any]:
        if not self.loaded:
            self.accessed = True
            try:
                self._backend.load(self)
            except Exception:
                # Remembered so the end of the request does not try (and
                # wait on a dead store) again.
                self.load_failed = True
                raise
        return self.data

    # -- mapping ---------------------------------------------------------

    def __getitem__(self, key: str) -> t.Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: t.Any) -> None:
        if is_reserved(key):
            raise KeyError(f"{key!r} is reserved in the stored session document")
        self._load()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._load()[key]

    def __iter__(self) -> cabc.Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def get(self, key: str, default: t.Any = None) -> t.Any:
        return self._load().get(key, default)

    def clear(self) -> None:
        self._load().clear()

    def __repr__(self) -> str:
        if not self.loaded:
            return "<ServerSession (not loaded)>"
        return f"<ServerSession {self.sid[:6]}... {self.data!r}>"

    # -- state -----------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id. Read-only: use :meth:`regenerate` for a new one."""
        self._load()
        return self.sid

    @property
    def cookie(self) -> Cookie:
        """The session's :class:`~flask_connect_session.Cookie`."""
        self._load()
        if self.cookie_obj is None:
            self.cookie_obj = self._backend.inflate_cookie(self)
        return self.cookie_obj

    @property
    def new(self) -> bool:  # type: ignore[override]
        """``True`` for a session created during this request."""
        self._load()
        return self.is_new

    def current(self) -> tuple[dict[str, t.Any], str]:
        """Return the data's stored (tagged) form and its JSON text.

        :raises TypeError: a value has no JSON form; the message names its key.
        """
        return dumps_data(self.data)

    def is_modified(self, text: str) -> bool:
        """Whether the id or data (as JSON ``text``) differ from when the
        session was loaded, or ``modified`` was set.
        """
        return self._force_modified or self.sid != self.original_id or text != self.original_text

    def is_saved(self, text: str) -> bool:
        """Whether the store already holds this id with this data."""
        return self.saved_id == self.sid and text == self.saved_text

    @property
    def modified(self) -> bool:
        """Whether the data changed during this request. Setting it to
        ``True`` forces a save, as with Flask's cookie session.
        """
        return self.loaded and self.is_modified(self.current()[1])

    @modified.setter
    def modified(self, value: bool) -> None:
        self._force_modified = value

    # -- express-session methods -----------------------------------------

    def regenerate(self, keep: bool = False) -> None:
        """Give the session a new id, destroying the old one in the store.

        Call it on login, against session fixation. The data is emptied, as
        in express-session, unless ``keep`` is true; even then the keys of
        ``CONNECT_SESSION_REGENERATE_DROP`` (Flask-WTF's ``"csrf_token"`` by
        default) are not carried over. The new cookie is sent. A session
        removed meanwhile (revoked, or logged out by another request)
        carries nothing over, even with ``keep``.

        With ``CONNECT_SESSION_USER_KEY``, a logged-in session moved with
        ``keep`` is stored under its new id at once, before the old id is
        removed, so that "log out everywhere" meanwhile finds it.

        :param keep: carry the data over to the new id.
        :raises StoreError: the store failed.
        :raises TypeError: (a logged-in session moved with ``keep``) a value
            cannot be stored; the message names its key.
        """
        self._load()
        self._backend.regenerate(self, keep)

    def destroy(self) -> None:
        """Remove the session from the store now and empty it.

        The response deletes the cookie. Writes made later in the same request
        start a brand-new session with a new id, so a logout followed by
        :func:`flask.flash` works.

        :raises StoreError: the store failed.
        """
        self._load()
        self._backend.destroy(self)

    def reload(self) -> None:
        """Replace the data with the stored copy, dropping unsaved changes.

        :raises SessionNotFound: the store no longer has this session.
        :raises StoreError: the store failed.
        """
        self._load()
        self._backend.reload(self)

    def save(self) -> None:
        """Write the session to the store now instead of at the end of the
        request; if it does not change again, it is not written again then.

        A session removed meanwhile (revoked, or logged out by another
        request) stays removed: the data is emptied, as by :meth:`destroy`,
        and writes made later in the request start a new id.

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        self._load()
        self._backend.save(self)

    def touch(self) -> None:
        """Reset the cookie's expiry to now plus its ``original_max_age``."""
        self.cookie.touch()
