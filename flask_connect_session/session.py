"""``flask.session``: a mapping over one request's :class:`~.core.Lifecycle`,
loaded lazily, with express-session's methods.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

from flask.sessions import SessionMixin

from .calls import run
from .document import is_reserved
from .migrate import find

if t.TYPE_CHECKING:
    from blinker import NamedSignal
    from flask import Flask
    from werkzeug.sansio.request import Request as SansIORequest
    from werkzeug.wrappers import Request

    from .cookie import Cookie
    from .core import Lifecycle
    from .interface import ConnectSessionInterface
    from .interface import Driver
    from .migrate import Takeover
    from .signing import Secret
    from .transport import Transport


class SessionData(cabc.MutableMapping[str, t.Any]):
    """The mapping part of a server-side session, shared by Flask's
    :class:`ServerSession` and Quart's session: the user's data, held by the
    request's :class:`~.core.Lifecycle`. Subclasses say how the data is
    loaded (:meth:`_data`).

    .. versionadded:: 0.1
    """

    _life: Lifecycle

    def _data(self) -> dict[str, t.Any]:
        """Return the loaded data."""
        return self._life.data

    def __getitem__(self, key: str) -> t.Any:
        return self._data()[key]

    def __setitem__(self, key: str, value: t.Any) -> None:
        if is_reserved(key):
            raise KeyError(f"{key!r} is reserved in the stored session document")
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __iter__(self) -> cabc.Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def get(self, key: str, default: t.Any = None) -> t.Any:
        return self._data().get(key, default)

    def clear(self) -> None:
        self._data().clear()

    def __repr__(self) -> str:
        life = self._life
        if not life.loaded:
            return f"<{type(self).__name__} (not loaded)>"
        return f"<{type(self).__name__} {life.sid[:6]}... {life.data!r}>"

    @property
    def id(self) -> str:
        """The session id. Read-only: use ``regenerate()`` for a new one."""
        self._data()
        return self._life.sid

    @property
    def cookie(self) -> Cookie:
        """The session's :class:`~flask_connect_session.Cookie`."""
        self._data()
        return self._life.cookie

    @property
    def new(self) -> bool:
        """``True`` for a session created during this request."""
        self._data()
        return self._life.is_new

    @property
    def modified(self) -> bool:
        """Whether the data changed during this request. Setting it to
        ``True`` forces a save, as with Flask's cookie session.
        """
        life = self._life
        return life.loaded and life.is_modified(life.current()[1])

    @modified.setter
    def modified(self, value: bool) -> None:
        self._life.force_modified = value

    def touch(self) -> None:
        """Reset the cookie's expiry to now plus its ``original_max_age``."""
        self._data()
        self._life.touch()


class DriverSession(SessionData):
    """A session that is also what the core knows of its request (the
    :class:`~.core.Request` facts) and the environment its calls run in
    (:mod:`.calls`): the part Flask's :class:`ServerSession` and Quart's
    session share. Each says how it tells HTTPS and reads the signed id.
    """

    _interface: Driver[t.Any]
    _request: SansIORequest
    _app: t.Any
    #: Where this request's session id travels (cookie or header).
    transport: Transport

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` header."""
        return self._request.headers.get("User-Agent")

    @property
    def remote_addr(self) -> str | None:
        """The client's address (a proxy middleware may have set it)."""
        return self._request.remote_addr

    def generate_id(self) -> str:
        """A new session id from ``CONNECT_SESSION_GENID``."""
        return self._interface.options.genid(self._request)

    def send_signal(
        self, signal: NamedSignal, with_session: bool, kwargs: dict[str, t.Any]
    ) -> None:
        """Send ``signal`` with the app as sender."""
        if with_session:
            kwargs = {**kwargs, "session": self}
        signal.send(self._app, **kwargs)

    def take_over(self) -> Takeover | None:
        """Ask the app's legacy sources for this request's legacy session
        (blocking: an asynchronous driver runs it in a worker thread).
        """
        return find(self._app, self._request.cookies, self._interface.legacy)


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
    return proxied_secure(scheme == "https", proxy, environ.get("HTTP_X_FORWARDED_PROTO", ""))


def proxied_secure(connection_secure: bool, proxy: bool, forwarded: object) -> bool:
    """Whether a request is HTTPS under ``CONNECT_SESSION_PROXY = True`` or
    ``False``: the connection is, or (``True`` only) the first value of its
    ``X-Forwarded-Proto`` header, trimmed, in any case, says ``https``.
    """
    if connection_secure:
        return True
    if proxy is False:
        return False
    return str(forwarded).partition(",")[0].strip().lower() == "https"


class ServerSession(DriverSession, SessionMixin):  # type: ignore[override]
    """The session of one Flask request, as :data:`flask.session`.

    A mutable mapping of the user's data. Nothing is read from the store
    until the first access to the data or to :attr:`id`, :attr:`cookie` or
    :attr:`new`, so a view that never touches the session costs no store
    call. Changes are found by comparing each key's JSON with the loaded
    version, so nested changes count without ``session.modified = True``.

    It is also what the core (:mod:`.core`) knows of the request (HTTPS or
    not, user agent, address, the signed id it carries) and the environment
    its calls run in (see :mod:`.calls`): the store, the signals (sent with
    the app and this session) and the takeover hook.

    .. versionadded:: 0.1
    """

    #: The lifecycle, once the view touched the session.
    _started: Lifecycle | None = None
    _request: Request

    def __init__(
        self,
        interface: ConnectSessionInterface,
        request: Request,
        secrets: tuple[Secret, ...],
        transport: Transport,
        app: Flask,
    ) -> None:
        # Only what the request needs if the view never touches the session:
        # the lifecycle is made at the first access.
        self._interface = interface
        self._request = request
        self._secrets = secrets
        #: Where this request's session id travels (cookie or header).
        self.transport = transport
        self._app = app
        #: The store the session lives in.
        self.store = interface.store

    @property
    def _life(self) -> Lifecycle:  # type: ignore[override]
        life = self._started
        if life is None:
            interface = self._interface
            header = self.transport is not interface.transports.cookie
            life = self._started = interface.core.lifecycle(self, self._secrets, header=header)
        return life

    def _data(self) -> dict[str, t.Any]:
        life = self._life
        if not life.loaded:
            self.accessed = True
            run(life.load(), self)
        return life.data

    # -- the request, as the core sees it ---------------------------------------

    @property
    def secure(self) -> bool:
        """Whether the request came over HTTPS (``CONNECT_SESSION_PROXY``)."""
        return is_secure(self._request, self._interface.options.proxy)

    def signed_id(self, secrets: tuple[Secret, ...]) -> str | None:
        """The validly signed id the request's cookie (or header) carries."""
        return self.transport.read(self._request.environ, secrets)

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
        self._data()
        run(self._life.regenerate(keep), self)

    def destroy(self) -> None:
        """Remove the session from the store now and empty it.

        The response deletes the cookie. Writes made later in the same request
        start a brand-new session with a new id, so a logout followed by
        :func:`flask.flash` works.

        :raises StoreError: the store failed.
        """
        self._data()
        run(self._life.destroy(), self)

    def reload(self) -> None:
        """Replace the data with the stored copy, dropping unsaved changes.

        :raises SessionNotFound: the store no longer has this session.
        :raises StoreError: the store failed.
        """
        self._data()
        run(self._life.reload(), self)

    def save(self) -> None:
        """Write the session to the store now instead of at the end of the
        request; if it does not change again, it is not written again then.

        A session removed meanwhile (revoked, or logged out by another
        request) stays removed: the data is emptied, as by :meth:`destroy`,
        and writes made later in the request start a new id.

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        self._data()
        run(self._life.save(), self)
