"""Flask's session interface: a thin driver of the session core.

:meth:`ConnectSessionInterface.open_session` verifies the id the request
carries and hands Flask a lazy :class:`~.session.ServerSession`;
:meth:`~ConnectSessionInterface.save_session` runs the core's end of the
request and writes what it decided (cookie or header, ``Vary``) on the
response. Every decision is the core's (:mod:`.core`); the store calls it
asks for run here, synchronously (:func:`.calls.run`).
"""

from __future__ import annotations

import typing as t

from flask.sessions import SessionInterface

from .calls import run
from .core import UNTOUCHED
from .core import Core
from .options import app_secrets
from .session import ServerSession
from .transport import Transports
from .transport import add_vary

if t.TYPE_CHECKING:
    from blinker import NamedSignal
    from flask import Flask
    from werkzeug.wrappers import Request
    from werkzeug.wrappers import Response

    from .core import Ending
    from .migrate import LegacySource
    from .options import Options
    from .stores.base import AsyncStore
    from .stores.base import Store


#: The store of a driver: synchronous (Flask) or asyncio (Quart).
S = t.TypeVar("S", bound="Store | AsyncStore")


class AppEnvironment(t.Generic[S]):
    """Runs the core's calls outside a request (the per-user API from a
    script or the CLI): on the app's store (a :class:`~.stores.base.Store`,
    or for Quart an :class:`~.stores.base.AsyncStore`), with the app as
    signal sender.

    :param app: the application (Flask's or Quart's).
    :param store: its store.
    """

    def __init__(self, app: t.Any, store: S) -> None:
        self.app = app
        self.store = store

    def send_signal(
        self, signal: NamedSignal, with_session: bool, kwargs: dict[str, t.Any]
    ) -> None:
        """Send ``signal`` with the app as sender (there is no session)."""
        signal.send(self.app, **kwargs)

    def take_over(self) -> None:
        """There is no request, so no legacy cookie to take over."""
        return None


class Driver(t.Generic[S]):
    """What a framework's session interface holds for its app: the options,
    the store, the legacy sources, the session rules (:class:`~.core.Core`)
    and the transports. Flask's interface and Quart's are drivers over a
    synchronous and an asyncio store.

    :param options: the parsed configuration.
    :param store: the session store.
    :param legacy: the legacy sessions to take over
        (``CONNECT_SESSION_MIGRATE_FROM``, see :mod:`.migrate`).
    """

    def __init__(self, options: Options, store: S, legacy: tuple[LegacySource, ...] = ()) -> None:
        #: The parsed configuration.
        self.options = options
        #: The live store.
        self.store = store
        #: The legacy sources a request without a session of ours asks.
        self.legacy = legacy
        #: The session rules, shared by every request.
        self.core = Core(options, store, takeover=bool(legacy))
        #: Where the session id travels: the cookie, or the configured header.
        self.transports = Transports(options)


class ConnectSessionInterface(Driver["Store"], SessionInterface):
    """Server-side sessions with express-session's semantics and wire format.

    :meth:`open_session` only verifies the cookie; the store is read when the
    view first touches :data:`flask.session`. :meth:`save_session` runs the
    core's end of the request and sets or deletes the cookie. Every store
    failure becomes a logged :class:`~flask_connect_session.StoreError`.

    :param options: the parsed configuration.
    :param store: the session store.
    :param legacy: the legacy sessions to take over
        (``CONNECT_SESSION_MIGRATE_FROM``, see :mod:`.migrate`).

    .. versionadded:: 0.1
    """

    session_class = ServerSession

    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        """Return a session that reads the store lazily.

        Returns ``None`` (Flask's null session) when no secret is configured.
        Verifies the id the request carries and does no other work: a view
        that never touches the session pays for nothing more.
        """
        secrets = app_secrets(app)
        if not secrets:
            return None
        return ServerSession(self, request, secrets, self.transports.choose(request), app)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        """Run the end-of-request lifecycle and write the cookie.

        It runs once per request: when it fails, Flask calls it again for
        the 500 response, and that call does nothing.

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        life = session._started
        if life is None:
            if not self.core.loads_untouched:
                return
            life = session._life
        ending = run(life.end(), session)
        if ending is not UNTOUCHED:
            apply_ending(ending, session.transport, response)


def apply_ending(ending: Ending, transport: t.Any, response: t.Any) -> None:
    """Write what the core decided for the session on a response (Flask's,
    or Quart's, which shares Werkzeug's header API).
    """
    if ending.vary:
        add_vary(response, transport.vary)
    if ending.cookie is not None:
        if ending.send is not None:
            transport.send(response, ending.send, ending.cookie)
        elif ending.expire:
            transport.expire(response, ending.cookie)
    if ending.takeover is not None:
        for source in ending.takeover.present:
            source.cookie.delete(response)
