"""Quart's driver of the session core: the same sessions for Flask's
asyncio twin.

:class:`QuartConnectSession` installs :class:`QuartSessionInterface`, whose
``open_session`` reads the request's session from the store when the
request carries a validly signed id (Quart's session is a plain mapping, so
it cannot load lazily) and whose ``save_session`` runs the core's end of the
request and writes what it decided on the response. Every decision is the
core's (:mod:`.core`); the store calls it asks for are awaited here
(:func:`.calls.run_async`) on an :class:`~.stores.base.AsyncStore`.

Needs the ``quart`` extra: ``pip install flask-connect-session[quart]``.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextlib
import functools
import inspect
import typing as t

import click
from flask.sessions import SessionMixin
from quart import current_app
from quart import has_app_context
from quart import has_request_context
from quart import has_websocket_context
from quart import session as quart_session
from quart.cli import ScriptInfo
from quart.sessions import SessionInterface

from .calls import run_async
from .cli import Target
from .cli import make_group
from .cli import run_with
from .core import UNTOUCHED
from .errors import StoreError
from .extension import install
from .extension import list_sessions
from .extension import prepare_store
from .extension import read_options
from .extension import revoke_sessions
from .interface import AppEnvironment
from .interface import Driver
from .interface import apply_ending
from .options import app_secrets
from .session import DriverSession
from .session import proxied_secure
from .stores import build_async_store
from .stores.base import OPTIONAL_METHODS
from .stores.base import AsyncStore
from .stores.base import Store
from .stores.base import implements
from .stores.memory import AsyncMemoryStore
from .stores.threaded import ThreadedStore

if t.TYPE_CHECKING:
    from quart import Quart
    from quart.wrappers import BaseRequestWebsocket
    from quart.wrappers import Response
    from werkzeug.datastructures import Headers
    from werkzeug.wrappers import Response as WerkzeugResponse

    from .calls import Steps
    from .core import Lifecycle
    from .signing import Secret
    from .transport import Transport
    from .users import SessionInfo
    from .users import UserIndex

T = t.TypeVar("T")

#: Whether the request's signed id was read yet.
_UNREAD: t.Any = object()


class HeadersEnviron(cabc.MutableMapping[str, t.Any]):
    """A request's headers seen as the ``HTTP_*`` keys of a WSGI environ,
    which is what the transports (:mod:`.transport`) read: Quart requests
    have headers, not an environ. Deleting ``HTTP_COOKIE`` removes the
    ``Cookie`` headers.

    :param headers: the request's headers.
    """

    def __init__(self, headers: Headers) -> None:
        self.headers = headers

    @staticmethod
    def _name(key: str) -> str:
        if not key.startswith("HTTP_"):
            raise KeyError(key)
        return key[5:].replace("_", "-")

    def __getitem__(self, key: str) -> str:
        name = self._name(key)
        values = self.headers.getlist(name)
        if not values:
            raise KeyError(key)
        # As WSGI servers join repeated headers (cookies with "; ").
        return ("; " if name == "COOKIE" else ", ").join(values)

    def __setitem__(self, key: str, value: t.Any) -> None:
        self.headers[self._name(key)] = value

    def __delitem__(self, key: str) -> None:
        name = self._name(key)
        if name not in self.headers:
            raise KeyError(key)
        del self.headers[name]

    def __iter__(self) -> cabc.Iterator[str]:
        return iter({"HTTP_" + name.upper().replace("-", "_") for name in self.headers.keys()})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def is_secure(request: BaseRequestWebsocket, proxy: bool | None) -> bool:
    """Whether a Quart request came over HTTPS, as ``CONNECT_SESSION_PROXY``
    decides (see :func:`.session.is_secure`). The scheme is the one in the
    ASGI scope: an ASGI server cannot tell one a proxy middleware rewrote.
    """
    if proxy is None:
        return request.is_secure
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return proxied_secure(request.scheme in ("https", "wss"), proxy, forwarded)


def _run_pure(steps: Steps[T]) -> T:
    """Run a core operation that needs no I/O (loading a request that
    carries no id): it yields no call.
    """
    try:
        call = next(steps)
    except StopIteration as done:
        return t.cast(T, done.value)
    steps.close()
    raise RuntimeError(f"the session core asked for {type(call).__name__} outside the event loop")


class QuartSession(DriverSession, SessionMixin):  # type: ignore[override]
    """The session of one Quart request, as :data:`quart.session`.

    A mutable mapping of the user's data, with the methods of
    :class:`~flask_connect_session.session.ServerSession`; the ones that
    reach the store are coroutines: ``await session.regenerate()``,
    ``destroy()``, ``reload()``, ``save()``. It is read from the store when
    the request starts, if the request carries a validly signed id; a view
    that never touches it still gets no cookie and no ``Vary``.

    It is also what the core (:mod:`.core`) knows of the request and the
    environment its calls run in (:class:`.calls.AsyncEnvironment`).

    .. versionadded:: 0.1
    """

    #: The store failure that ended the load, raised again in the view.
    _failure: StoreError | None = None
    _request: BaseRequestWebsocket

    def __init__(
        self,
        interface: QuartSessionInterface,
        request: BaseRequestWebsocket,
        secrets: tuple[Secret, ...],
        transport: Transport,
        app: Quart,
        environ: HeadersEnviron,
    ) -> None:
        self._interface = interface
        self._request = request
        self._environ = environ
        self._app = app
        self._signed = _UNREAD
        #: Where this request's session id travels (cookie or header).
        self.transport = transport
        #: The store the session lives in.
        self.store: AsyncStore = interface.store
        #: Whether the view (or anything during the request) used the session.
        self.accessed = False
        header = transport is not interface.transports.cookie
        self._life: Lifecycle = interface.core.lifecycle(self, secrets, header=header)

    def _data(self) -> dict[str, t.Any]:
        life = self._life
        self.accessed = True
        if not life.loaded:
            if self._failure is not None:
                raise self._failure
            # Not loaded when the request started: it carries no id of ours,
            # so loading needs no store call.
            _run_pure(life.load())
        return life.data

    # -- the request, as the core sees it ---------------------------------------

    @property
    def secure(self) -> bool:
        """Whether the request came over HTTPS (``CONNECT_SESSION_PROXY``)."""
        return is_secure(self._request, self._interface.options.proxy)

    def signed_id(self, secrets: tuple[Secret, ...]) -> str | None:
        """The validly signed id the request's cookie (or header) carries;
        verified once per request.
        """
        if self._signed is _UNREAD:
            self._signed = self.transport.read(self._environ, secrets)
        return t.cast("str | None", self._signed)

    # -- express-session methods -----------------------------------------

    async def regenerate(self, keep: bool = False) -> None:
        """Give the session a new id, destroying the old one in the store;
        see :meth:`ServerSession.regenerate
        <flask_connect_session.session.ServerSession.regenerate>`.

        :param keep: carry the data over to the new id.
        :raises StoreError: the store failed.
        """
        self._data()
        await run_async(self._life.regenerate(keep), self)

    async def destroy(self) -> None:
        """Remove the session from the store now and empty it; see
        :meth:`ServerSession.destroy
        <flask_connect_session.session.ServerSession.destroy>`.

        :raises StoreError: the store failed.
        """
        self._data()
        await run_async(self._life.destroy(), self)

    async def reload(self) -> None:
        """Replace the data with the stored copy, dropping unsaved changes.

        :raises SessionNotFound: the store no longer has this session.
        :raises StoreError: the store failed.
        """
        self._data()
        await run_async(self._life.reload(), self)

    async def save(self) -> None:
        """Write the session to the store now; see :meth:`ServerSession.save
        <flask_connect_session.session.ServerSession.save>`.

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        self._data()
        await run_async(self._life.save(), self)


class QuartSessionInterface(Driver[AsyncStore], SessionInterface):
    """Quart's session interface over the session core.

    :meth:`open_session` reads the session the request names (a request
    without a validly signed id costs no store call); :meth:`save_session`
    runs the end of the request and sets or deletes the cookie. A store
    failure while opening is raised again before the view (see
    :meth:`QuartConnectSession.init_app`), so the app's error handlers see
    it as in Flask.

    :param options: the parsed configuration.
    :param store: the asyncio session store.
    :param legacy: the legacy sessions to take over.

    .. versionadded:: 0.1
    """

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> QuartSession | None:
        """Return the request's session, read from the store if the request
        carries a validly signed id (or, with legacy sources, may carry a
        legacy session to take over).

        Returns ``None`` (Quart's null session) when no secret is configured.
        """
        secrets = app_secrets(app)
        if not secrets:
            return None
        environ = HeadersEnviron(request.headers)
        transport = self.transports.choose(request, environ)
        session = QuartSession(self, request, secrets, transport, app, environ)
        cookie = transport is self.transports.cookie
        if session.signed_id(secrets) is not None or (self.core.takeover and cookie):
            try:
                await run_async(session._life.load(), session)
            except StoreError as exc:
                # Logged already; raised in the request's dispatch, where the
                # app's error handlers see it.
                session._failure = exc
        return session

    async def save_session(  # type: ignore[override]
        self,
        app: Quart,
        session: QuartSession,
        response: Response | WerkzeugResponse | None,
    ) -> None:
        """Run the end-of-request lifecycle and write the cookie (a
        websocket, which has no response, only saves).

        :raises StoreError: the store failed.
        :raises TypeError: a value cannot be stored; the message names its key.
        """
        if not (session.accessed or self.core.loads_untouched):
            return
        ending = await run_async(session._life.end(), session)
        if ending is not UNTOUCHED and response is not None:
            apply_ending(ending, session.transport, response)


def _current_session() -> SessionMixin:
    """The session of the request (or websocket) being served."""
    return t.cast(t.Any, quart_session)._get_current_object()  # type: ignore[no-any-return]


async def _raise_store_failure() -> None:
    """Before the view: raise the store failure that ended the session's
    load, in the request's dispatch (Quart opens the session before it), so
    ``@app.errorhandler(StoreError)`` and the 500 handling see it as in Flask.
    """
    failure = getattr(_current_session(), "_failure", None)
    if failure is not None:
        raise failure


async def _close_store(store: AsyncStore) -> None:
    """Close the connections ``store`` holds open: its ``aclose()`` (an
    asyncio Redis store's clients), else its ``dispose()`` (an asyncio SQL
    store's engine). A store without either holds none of its own.

    :class:`QuartConnectSession` runs it when the app stops serving, for a
    store it built from a URL.
    """
    close = getattr(store, "aclose", None) or getattr(store, "dispose", None)
    if close is not None:
        await close()


class QuartConnectSession:
    """Server-side sessions for Quart, the same as :class:`ConnectSession
    <flask_connect_session.ConnectSession>` gives Flask: the same config,
    cookie and stored documents, on an asyncio store
    (``CONNECT_SESSION_STORE``; a synchronous store runs in worker threads).

    ::

        app = Quart(__name__)
        app.config["SECRET_KEY"] = "change me"
        QuartConnectSession(app)

    :param app: the application to set up now.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Quart | None = None) -> None:
        self._app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Read the ``CONNECT_SESSION_*`` config once, build the store and
        install the session interface.

        Registers this extension as ``app.extensions["connect_session"]``
        and adds the ``quart session`` command group. A store built from a
        URL is closed when the app stops serving (``after_serving``); one
        passed in as an object is left open.

        :raises ValueError: a setting is invalid; the message names its key.
        """
        options = read_options(app)
        store = build_async_store(options, app)
        legacy = prepare_store(app, options, store)
        app.session_interface = QuartSessionInterface(  # type: ignore[assignment]
            options, store, legacy
        )
        # First of the app's hooks: nothing runs on a session that failed.
        app.before_request_funcs[None].insert(0, _raise_store_failure)
        app.before_websocket_funcs[None].insert(0, _raise_store_failure)
        if isinstance(options.store, str):
            # Built from a URL, so the app's own to close; a store, client
            # or engine passed in is the user's.
            async def close() -> None:
                await _close_store(store)

            app.after_serving(close)
        install(app, self, quart_session_cli, store)

    @property
    def store(self) -> AsyncStore:
        """The live store of the current app, inside an app context; outside
        one, of the app given to the constructor.

        :raises RuntimeError: no app to tell, or it does not use this extension.
        """
        return self._interface(self._target_app()).store

    def _target_app(self) -> Quart:
        if has_app_context():
            return t.cast("Quart", current_app._get_current_object())  # type: ignore[attr-defined]
        if self._app is not None:
            return self._app
        raise RuntimeError(
            "QuartConnectSession.store needs an app context (async with"
            " app.app_context(): ...), or an extension constructed with its app"
        )

    def _interface(self, app: Quart) -> QuartSessionInterface:
        interface = app.session_interface
        if (
            not isinstance(interface, QuartSessionInterface)
            or app.extensions.get("connect_session") is not self
        ):
            raise RuntimeError(f"QuartConnectSession is not set up on app {app.name!r}")
        return interface

    # -- users and their devices ------------------------------------------

    def _context(
        self,
    ) -> tuple[UserIndex, Lifecycle | None, QuartSession | AppEnvironment[AsyncStore]]:
        """The user index, the lifecycle of the request being served (if
        any) and the environment the per-user calls run in.
        """
        app = t.cast("Quart", current_app._get_current_object())  # type: ignore[attr-defined]
        interface = self._interface(app)
        index = interface.core.users
        if index is None:
            raise RuntimeError("CONNECT_SESSION_USER_KEY is not set: there is no user index")
        if has_request_context() or has_websocket_context():
            current = _current_session()
            if isinstance(current, QuartSession):
                current.accessed = True
                return index, current._life, current
        return index, None, AppEnvironment(app, interface.store)

    async def user_sessions(self, user: str | int) -> list[SessionInfo]:
        """Return the sessions of ``user``, most recently seen first; see
        :meth:`ConnectSession.user_sessions
        <flask_connect_session.ConnectSession.user_sessions>`.

        :raises StoreError: the store failed.
        """
        index, current, env = self._context()
        return await run_async(list_sessions(index, user, current), env)

    async def revoke(
        self, user: str | int, handle: str | None = None, *, keep_current: bool = False
    ) -> int:
        """Log ``user`` out of all their sessions, or of the one ``handle``
        names; return how many were removed. See :meth:`ConnectSession.revoke
        <flask_connect_session.ConnectSession.revoke>`.

        :raises StoreError: the store failed.
        """
        index, current, env = self._context()
        steps = revoke_sessions(index, user, handle, current, keep_current=keep_current)
        return await run_async(steps, env)


# -- the ``quart session`` command group ----------------------------------------


class BlockingStore(Store):
    """A synchronous view of an asyncio store, for the commands (which run
    in a worker thread): each call runs in the event loop and waits. It
    implements the optional methods the store implements, and is named
    after the store's class, as the commands' messages name it.

    :param store: the asyncio store.
    :param loop: the running event loop the store's calls run in.
    """

    store: AsyncStore

    def __new__(cls, store: AsyncStore, loop: asyncio.AbstractEventLoop) -> BlockingStore:
        missing = frozenset(name for name in OPTIONAL_METHODS if not implements(store, name))
        return super().__new__(_view_class(type(store), missing))

    def __init__(self, store: AsyncStore, loop: asyncio.AbstractEventLoop) -> None:
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "_loop", loop)

    def __repr__(self) -> str:
        return repr(self.store)

    def _wait(self, awaitable: cabc.Awaitable[T]) -> T:
        return _wait(awaitable, self._loop)

    def __getattr__(self, name: str) -> t.Any:
        # The store's own attributes (SQL's table, create_table()...).
        value = getattr(self.store, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
            result = value(*args, **kwargs)
            return self._wait(result) if inspect.isawaitable(result) else result

        return call

    @property
    def ttl(self) -> int:  # type: ignore[override]
        """The store's lifetime of browser-session cookies' sessions."""
        return self.store.ttl

    def get(self, sid: str) -> dict[str, t.Any] | None:
        return self._wait(self.store.get(sid))

    def set(self, sid: str, session: dict[str, t.Any]) -> None:
        self._wait(self.store.set(sid, session))

    def destroy(self, sid: str) -> bool | None:
        return self._wait(self.store.destroy(sid))

    def all(self) -> dict[str, dict[str, t.Any]]:
        return self._wait(self.store.all())

    def length(self) -> int:
        return self._wait(self.store.length())

    def clear(self) -> int | None:
        return self._wait(self.store.clear())

    def prune(self) -> int:
        return self._wait(self.store.prune())

    def index_prune(self) -> int:
        return self._wait(self.store.index_prune())


@functools.cache
def _view_class(store_class: type, missing: frozenset[str]) -> type[BlockingStore]:
    """:class:`BlockingStore` under the name of ``store_class``, leaving the
    methods in ``missing`` to :class:`Store` (so :func:`implements` tells).
    """
    namespace: dict[str, t.Any] = {name: getattr(Store, name) for name in missing}
    namespace["__module__"] = BlockingStore.__module__
    return type(store_class.__name__, (BlockingStore,), namespace)


def _wait(awaitable: cabc.Awaitable[T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``awaitable`` in ``loop`` (running in another thread) and return
    its result; it runs in the caller's context (the app context).
    """

    async def result() -> T:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(result(), loop).result()


class _BlockingAdmin:
    """The app's sessions seen synchronously by the commands (see
    :class:`.cli.Admin`), on ``store``.

    :param app: the application.
    :param index: its user index, if ``CONNECT_SESSION_USER_KEY`` is set.
    :param store: the asyncio store the commands use (see
        :func:`_command_store`).
    :param loop: the running event loop the store's calls run in.
    """

    def __init__(
        self,
        app: Quart,
        index: UserIndex | None,
        store: AsyncStore,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._app = app
        self._index = index
        self._async_store = store
        self._loop = loop
        # A store run on a synchronous one: the commands use that directly.
        self.store = _synchronous(store) or BlockingStore(store, loop)

    def _run(self, steps: cabc.Callable[[UserIndex], Steps[T]]) -> T:
        if self._index is None:
            raise RuntimeError("CONNECT_SESSION_USER_KEY is not set: there is no user index")
        env = AppEnvironment(self._app, self._async_store)
        return _wait(run_async(steps(self._index), env), self._loop)

    def user_sessions(self, user: str | int) -> list[SessionInfo]:
        return self._run(lambda index: list_sessions(index, user, None))

    def revoke(
        self, user: str | int, handle: str | None = None, *, keep_current: bool = False
    ) -> int:
        return self._run(
            lambda index: revoke_sessions(index, user, handle, None, keep_current=keep_current)
        )


def _synchronous(store: AsyncStore) -> Store | None:
    """The synchronous store ``store`` runs its calls on, which a command
    (in a worker thread) may call directly: a memory store's, or any store's
    given as a synchronous one. ``None`` for the asyncio stores (Redis; SQL,
    whose synchronous face runs only inside the asyncio engine's calls).
    """
    if isinstance(store, ThreadedStore | AsyncMemoryStore):
        return store.store
    return None


@contextlib.asynccontextmanager
async def _command_store(
    app: Quart, interface: QuartSessionInterface
) -> cabc.AsyncIterator[AsyncStore]:
    """The store a command uses: the app's, or, when the app built it from
    a URL and it holds connections (Redis, SQL), a new one for the
    command's event loop, closed after it. An asyncio client's connections
    belong to the event loop that opened them, and the app's may be serving
    in another loop of the same process (or a command before this one in its
    own loop, which is closed now).
    """
    options = interface.options
    if not isinstance(options.store, str) or _synchronous(interface.store) is not None:
        yield interface.store
        return
    store = build_async_store(options, app)
    store.max_size = options.max_size
    try:
        yield store
    finally:
        await _close_store(store)


def _quart_command(callback: cabc.Callable[..., None]) -> cabc.Callable[..., None]:
    """Run ``callback`` for the app Quart's CLI loads: in an event loop
    with the app context pushed (as Quart's own ``with_appcontext``), the
    command itself in a worker thread so the store's coroutines can run in
    that loop meanwhile.
    """

    @functools.wraps(callback)
    def command(*args: t.Any, **kwargs: t.Any) -> None:
        app = click.get_current_context().ensure_object(ScriptInfo).load_app()

        async def main() -> None:
            async with app.app_context():
                body = functools.partial(callback, *args, **kwargs)
                extension = app.extensions.get("connect_session")
                if not isinstance(extension, QuartConnectSession):
                    await asyncio.to_thread(run_with, None, body)
                    return
                interface = extension._interface(app)
                async with _command_store(app, interface) as store:
                    loop = asyncio.get_running_loop()
                    admin = _BlockingAdmin(app, interface.core.users, store, loop)
                    await asyncio.to_thread(run_with, Target(app, admin), body)

        _run_loop(main())

    return command


def _run_loop(main: cabc.Coroutine[t.Any, t.Any, None]) -> None:
    """``asyncio.run(main)``, in a thread of its own when this thread runs
    an event loop already (a command invoked from async code).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main).result()


#: The ``quart session`` command group, which :class:`QuartConnectSession`
#: adds to the app: the commands of ``flask session``.
quart_session_cli = make_group(_quart_command)

__all__ = ["QuartConnectSession", "QuartSession", "QuartSessionInterface", "quart_session_cli"]
