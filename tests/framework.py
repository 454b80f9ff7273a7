"""One behaviour suite, two frameworks: apps, views and test clients that
are the same on Flask and on Quart.

A test takes the ``framework`` fixture (``"flask"`` or ``"quart"``, see
conftest) and builds its app with :func:`new_app` and :func:`connect` (or
conftest's ``make_app``). Its views are written once, as Flask views: plain
functions using this module's :data:`session`, :data:`request`,
:func:`flash`... which are Flask's in a Flask request and Quart's in a Quart
one, where Quart's coroutines (``await session.regenerate()``,
``await request.get_json()``) are awaited for the view. Quart runs such a
view in a worker thread, as it runs every synchronous view, and the
coroutines run in the app's event loop meanwhile.

``app.test_client()`` is Flask's test client on both: for a Quart app it is
Werkzeug's client over a bridge that hands each request to the app's ASGI
interface in the test event loop (:mod:`async_bridge`), so requests, cookies,
``session_transaction()`` and exceptions (propagated when the app is
testing, as Flask's client does) work the same. Quart's own async client
and a real ASGI server (hypercorn) are used where the test says so.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import concurrent.futures
import contextlib
import importlib.metadata
import inspect
import socket
import time
import typing as t

import flask
import quart
from quart.signals import got_request_exception
from werkzeug.datastructures import Headers
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.local import LocalProxy
from werkzeug.test import Client
from werkzeug.test import EnvironBuilder
from werkzeug.test import TestResponse

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session.quart import BlockingStore
from flask_connect_session.quart import QuartConnectSession
from flask_connect_session.quart import _synchronous
from flask_connect_session.stores import AsyncMemoryStore

from async_bridge import TIMEOUT
from async_bridge import loop

T = t.TypeVar("T")

FRAMEWORKS = ("flask", "quart")

#: A Flask or a Quart app.
App = t.Any

_WERKZEUG = importlib.metadata.version("werkzeug")


def new_app(framework: str, name: str = __name__, **kwargs: t.Any) -> App:
    """A new, unconfigured app of ``framework`` whose ``test_client()`` is
    Flask's (see the module's docstring).
    """
    if framework == "flask":
        return flask.Flask(name, **kwargs)
    app = quart.Quart(name, **kwargs)
    app.test_client_class = QuartTestClient
    _use_view_threads()
    return app


_view_threads: concurrent.futures.ThreadPoolExecutor | None = None


def _use_view_threads() -> None:
    """Give the test event loop as many worker threads as Flask's test
    clients may have requests in flight (tests run up to 50 at once), for
    Quart's synchronous views.
    """
    global _view_threads
    if _view_threads is None:
        _view_threads = concurrent.futures.ThreadPoolExecutor(64, "view")
        loop().loop.set_default_executor(_view_threads)


def connect(app: App) -> ConnectSession | QuartConnectSession:
    """Set the extension up on ``app``: :class:`ConnectSession` or
    :class:`QuartConnectSession`.

    A plain :class:`MemoryStore` given as ``CONNECT_SESSION_STORE`` is what a
    Quart app gets for ``memory://`` (:class:`AsyncMemoryStore`, in the event
    loop), over that very store, so the test can still read it.
    """
    if isinstance(app, flask.Flask):
        return ConnectSession(app)
    store = app.config.get("CONNECT_SESSION_STORE")
    if type(store) is MemoryStore:
        app.config["CONNECT_SESSION_STORE"] = in_event_loop(store)
    return QuartConnectSession(app)


def in_event_loop(store: MemoryStore) -> AsyncMemoryStore:
    """An :class:`AsyncMemoryStore` over ``store``'s entries."""
    async_store = AsyncMemoryStore(ttl=store.ttl)
    async_store.store = store
    return async_store


def framework_of(app: App) -> str:
    return "flask" if isinstance(app, flask.Flask) else "quart"


def sync_store_of(app: App) -> t.Any:
    """The synchronous store the app's sessions live in: for Quart, the one
    its asyncio store runs on in worker threads (a memory store, any store
    given as a synchronous one), else its asyncio store (Redis, SQL) seen
    synchronously through the test event loop, as the commands see it.
    """
    store = app.session_interface.store
    if framework_of(app) == "flask":
        return store
    return _synchronous(store) or BlockingStore(store, loop().loop)


def store_name(app: App) -> str:
    """The store's name in a :class:`StoreError` message."""
    return type(app.session_interface.store).__name__


def wait(awaitable: cabc.Awaitable[T]) -> T:
    """Await ``awaitable`` in the test event loop, from a view's worker
    thread (Quart's synchronous views) or the test itself, in the caller's
    context (the request's).
    """

    async def result() -> T:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(result(), loop().loop).result(TIMEOUT)


def resolve(value: T | cabc.Awaitable[T]) -> T:
    """``value``, awaited if it is awaitable: what a view does with the
    result of Quart's coroutine API (``ext.revoke(...)``...).
    """
    return wait(value) if inspect.isawaitable(value) else value


def _in_quart() -> bool:
    return quart.has_request_context() or quart.has_websocket_context()


# -- what views use ---------------------------------------------------------------


class BlockingSession(cabc.MutableMapping[str, t.Any]):
    """Quart's session for a synchronous view: its coroutine methods
    (``regenerate()``...) are awaited for the caller.
    """

    __slots__ = ("_session",)

    def __init__(self, session: t.Any) -> None:
        object.__setattr__(self, "_session", session)

    def __getitem__(self, key: str) -> t.Any:
        return self._session[key]

    def __setitem__(self, key: str, value: t.Any) -> None:
        self._session[key] = value

    def __delitem__(self, key: str) -> None:
        del self._session[key]

    def __iter__(self) -> cabc.Iterator[str]:
        return iter(self._session)

    def __len__(self) -> int:
        return len(self._session)

    def __contains__(self, key: object) -> bool:
        return key in self._session

    def __repr__(self) -> str:
        return repr(self._session)

    def get(self, key: str, default: t.Any = None) -> t.Any:
        return self._session.get(key, default)

    def clear(self) -> None:
        self._session.clear()

    def __getattr__(self, name: str) -> t.Any:
        value = getattr(self._session, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: wait(value(*args, **kwargs))
        return value

    def __setattr__(self, name: str, value: t.Any) -> None:
        setattr(self._session, name, value)


def _session() -> t.Any:
    if _in_quart():
        return BlockingSession(quart.session._get_current_object())  # type: ignore[attr-defined]
    return flask.session._get_current_object()  # type: ignore[attr-defined]


#: The current request's session (``flask.session``, or Quart's).
session: t.Any = LocalProxy(_session)


class BlockingRequest:
    """Quart's request for a synchronous view: its body is read for the caller."""

    #: Quart's awaitable properties.
    AWAITABLE = frozenset(("json", "form", "files", "values", "data"))

    def __init__(self, request: t.Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> t.Any:
        if name in self.AWAITABLE:
            return wait(getattr(self._request, name))
        value = getattr(self._request, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: wait(value(*args, **kwargs))
        return value


def _request() -> t.Any:
    if _in_quart():
        return BlockingRequest(quart.request._get_current_object())  # type: ignore[attr-defined]
    return flask.request._get_current_object()  # type: ignore[attr-defined]


#: The current request (``flask.request``, or Quart's).
request: t.Any = LocalProxy(_request)


def flash(message: str, category: str = "message") -> None:
    """:func:`flask.flash` (or Quart's)."""
    if _in_quart():
        wait(quart.flash(message, category))
    else:
        flask.flash(message, category)


def get_flashed_messages(**kwargs: t.Any) -> t.Any:
    """:func:`flask.get_flashed_messages` (or Quart's)."""
    if _in_quart():
        return quart.get_flashed_messages(**kwargs)
    return flask.get_flashed_messages(**kwargs)


def redirect(location: str, code: int = 302) -> t.Any:
    """:func:`flask.redirect` (or Quart's)."""
    return quart.redirect(location, code) if _in_quart() else flask.redirect(location, code)


def make_response(*args: t.Any) -> t.Any:
    """:func:`flask.make_response` (or Quart's)."""
    if _in_quart():
        return wait(quart.make_response(*args))
    return flask.make_response(*args)


def render_template_string(source: str, **context: t.Any) -> str:
    """:func:`flask.render_template_string` (or Quart's)."""
    if _in_quart():
        return wait(quart.render_template_string(source, **context))
    return flask.render_template_string(source, **context)


def Response(*args: t.Any, **kwargs: t.Any) -> t.Any:  # noqa: N802 - a class, to views
    """The current framework's response class."""
    return (quart.Response if _in_quart() else flask.Response)(*args, **kwargs)


def stream_with_context(body: cabc.Iterator[T]) -> cabc.Iterator[T]:
    """:func:`flask.stream_with_context` (Quart keeps the request context
    while it sends a body: the body is sent as it is).
    """
    return body if _in_quart() else flask.stream_with_context(body)


def proxy_fix(app: App) -> None:
    """Trust one proxy's ``X-Forwarded-*`` headers, as a deployment behind
    one does: Werkzeug's ``ProxyFix`` for Flask, Hypercorn's
    ``ProxyFixMiddleware`` for Quart.
    """
    if framework_of(app) == "flask":
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)
    else:
        from hypercorn.middleware import ProxyFixMiddleware

        app.asgi_app = ProxyFixMiddleware(app.asgi_app, mode="legacy", trusted_hops=1)


def current_app() -> App:
    """The app of the current request."""
    if _in_quart():
        return quart.current_app._get_current_object()  # type: ignore[attr-defined]
    return flask.current_app._get_current_object()  # type: ignore[attr-defined]


# -- requests outside a view ------------------------------------------------------------


@contextlib.contextmanager
def in_request(app: App, path: str = "/", **kwargs: t.Any) -> cabc.Iterator[t.Any]:
    """A request context of ``app`` (``test_request_context(path, **kwargs)``,
    Flask's keywords); yields its session, as a view sees it, until the
    block ends (the request's end is :func:`end_request`).
    """
    if framework_of(app) == "flask":
        with app.test_request_context(path, **kwargs):
            yield flask.session._get_current_object()  # type: ignore[attr-defined]
        return
    context = app.test_request_context(path, headers=Headers(kwargs.pop("headers", None)))
    assert not kwargs, f"not supported for Quart: {sorted(kwargs)}"
    # The session is opened as pushing the context would open it.
    interface = app.session_interface
    opened = loop().run(interface.open_session(app, context.request))
    if opened is None:
        yield loop().run(interface.make_null_session(app))
    else:
        yield BlockingSession(opened)


def end_request(app: App, session: t.Any) -> t.Any:
    """Run the end of a request of :func:`in_request` whose session is
    ``session``; return the response it wrote on.
    """
    if framework_of(app) == "flask":
        response = app.response_class()
        app.session_interface.save_session(app, session, response)
        return response
    response = quart.Response(b"")
    loop().run(app.session_interface.save_session(app, session._session, response))
    return response


def call(app: App, method: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
    """Call a method of the app's extension (``user_sessions``, ``revoke``)
    in a request of its own, as another request would; Quart's are awaited.
    """
    extension = app.extensions["connect_session"]
    if framework_of(app) == "flask":
        with app.test_request_context():
            return getattr(extension, method)(*args, **kwargs)

    async def in_context() -> t.Any:
        async with app.test_request_context("/"):
            return await getattr(extension, method)(*args, **kwargs)

    return loop().run(in_context())


# -- a real server ------------------------------------------------------------------


@contextlib.contextmanager
def serve(app: App) -> cabc.Iterator[str]:
    """Serve ``app`` on a free loopback port and yield its base URL: a Flask
    app on Werkzeug's threaded WSGI server, a Quart app on Hypercorn (in the
    test event loop, with its default settings).
    """
    if framework_of(app) == "flask":
        from server_fixtures import serve_wsgi

        with serve_wsgi(app) as base:
            yield base
        return
    with serve_asgi(app) as base:
        yield base


@contextlib.contextmanager
def serve_asgi(app: t.Any) -> cabc.Iterator[str]:
    """Serve the ASGI ``app`` with Hypercorn on a free loopback port, in the
    test event loop; yield its base URL. Shut down gracefully on exit.
    """
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from server_fixtures import HOST

    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    config = Config()
    # Hypercorn takes the bound socket over (no race for the port).
    config.bind = [f"fd://{listener.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 5
    stop: asyncio.Event | None = None

    async def run() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)

    server = asyncio.run_coroutine_threadsafe(run(), loop().loop)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if server.done() or time.monotonic() > deadline:
                    server.result(0)  # its error, if it failed
                    raise
                time.sleep(0.02)
        yield f"http://{HOST}:{port}"
    finally:
        if stop is not None:
            loop().loop.call_soon_threadsafe(stop.set)
        server.result(TIMEOUT)


# -- Flask's test client for Quart apps ----------------------------------------------


class AsgiBridge:
    """A WSGI callable that hands each request to an ASGI app in the test
    event loop and returns its response.

    The app's exception, when it would propagate (``TESTING``, or
    ``PROPAGATE_EXCEPTIONS``), is raised to the caller as Flask's test
    client raises it; Quart would turn it into a traceback page.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        got_request_exception.connect(_record_exception, app)

    def __call__(
        self, environ: dict[str, t.Any], start_response: cabc.Callable[..., t.Any]
    ) -> list[bytes]:
        scope = _scope(environ)
        body = environ["wsgi.input"].read()
        status, headers, chunks = loop().run(self._serve(scope, body))
        error = scope.get("test.exception")
        if error is not None and self._propagates():
            raise error
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, '')}", headers)
        return chunks

    def _propagates(self) -> bool:
        propagate = self.app.config["PROPAGATE_EXCEPTIONS"]
        return bool(self.app.testing or self.app.debug) if propagate is None else bool(propagate)

    async def _serve(
        self, scope: dict[str, t.Any], body: bytes
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        messages: list[dict[str, t.Any]] = [
            {"type": "http.request", "body": body, "more_body": False}
        ]
        start: dict[str, t.Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, t.Any]:
            if messages:
                return messages.pop(0)
            # The client waits for the response: it never disconnects.
            await asyncio.get_running_loop().create_future()
            raise AssertionError("unreachable")

        async def send(message: dict[str, t.Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return start["status"], headers, chunks


async def _record_exception(sender: App, exception: BaseException, **kwargs: t.Any) -> None:
    quart.request.scope["test.exception"] = exception


def deliverable(value: str) -> bool:
    """Whether an HTTP server delivers a header holding ``value`` to an ASGI
    app at all: a line break or NUL in a header is a malformed request, and
    a lone surrogate has no bytes to send.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(char in value for char in "\r\n\0")


def _wire(value: object) -> bytes:
    """A header value as a client sends it: Latin-1, else UTF-8."""
    text = str(value)
    if not deliverable(text):
        raise ValueError(f"no HTTP server delivers this header value: {text!r}")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _scope(environ: dict[str, t.Any]) -> dict[str, t.Any]:
    """The ASGI HTTP scope of a WSGI environ."""
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), _wire(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        if environ.get(key):
            headers.append((name, _wire(environ[key])))
    # An ASGI path includes the root path (a WSGI PATH_INFO does not).
    raw_path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/")).encode("latin-1")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2],
        "method": environ["REQUEST_METHOD"],
        "scheme": environ["wsgi.url_scheme"],
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "headers": headers,
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), int(environ.get("REMOTE_PORT") or 0)),
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 80)),
        "extensions": {},
    }


class QuartTestClient(Client):
    """Flask's test client API for a Quart app (Werkzeug's client over an
    :class:`AsgiBridge`): the same requests, cookie jar, responses and
    ``session_transaction()``.
    """

    def __init__(self, app: App, use_cookies: bool = True, **kwargs: t.Any) -> None:
        super().__init__(AsgiBridge(app), TestResponse, use_cookies=use_cookies)
        self.app = app
        # As FlaskClient sends them.
        self.environ_base = {
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_USER_AGENT": f"Werkzeug/{_WERKZEUG}",
        }

    def __enter__(self) -> QuartTestClient:
        # Flask's client keeps the last request's context here; tests that
        # read it are Flask's own.
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def open(self, *args: t.Any, **kwargs: t.Any) -> TestResponse:
        if not (args and isinstance(args[0], EnvironBuilder | dict)):
            kwargs["environ_base"] = {**self.environ_base, **kwargs.get("environ_base", {})}
        return super().open(*args, **kwargs)

    @contextlib.contextmanager
    def session_transaction(
        self, path: str = "/", *, base_url: str | None = None, headers: t.Any = None
    ) -> cabc.Iterator[t.Any]:
        """Open the client's session, let the caller change it, and save it
        (as :meth:`flask.testing.FlaskClient.session_transaction`).
        """
        if self._cookies is None:
            raise TypeError("Cookies are disabled. Create a client with 'use_cookies=True'.")
        builder = EnvironBuilder(path, base_url=base_url, headers=headers)
        environ = builder.get_environ()
        builder.close()
        self._add_cookies_to_wsgi(environ)
        app = self.app
        sent = Headers(headers)
        if "HTTP_COOKIE" in environ:
            sent["Cookie"] = environ["HTTP_COOKIE"]
        context = {"path": path, "headers": sent, "scheme": environ["wsgi.url_scheme"]}

        async def open_session() -> t.Any:
            async with app.test_request_context(**context) as ctx:
                return await app.session_interface.open_session(app, ctx.request)

        opened = loop().run(open_session())
        if opened is None:
            raise RuntimeError("Session backend did not open a session.")
        yield BlockingSession(opened)
        response = quart.Response(b"")

        async def save_session() -> None:
            async with app.test_request_context(**context):
                await app.session_interface.save_session(app, opened, response)

        loop().run(save_session())
        self._update_cookies_from_response(
            environ.get("SERVER_NAME", "localhost"), path, response.headers.getlist("Set-Cookie")
        )
