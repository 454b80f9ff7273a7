"""Test helpers for apps that use :class:`ConnectSession`: read and write
the server-side session behind a test client, count store calls, swap the
store. They need neither pytest nor any other test framework.

The pytest fixtures built on them (``connect_session_server``,
``connect_session_counting_store``, ``connect_session_memory_store``) are in
:mod:`flask_connect_session.pytest_plugin`, which installing the package
registers as a pytest plugin, as Flask keeps its test helpers
(``flask.testing``) apart from any plugin: this module never imports pytest,
nor the plugin.

.. versionadded:: 0.1
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import functools
import typing as t

from werkzeug.datastructures import Headers

from .interface import ConnectSessionInterface
from .signing import sign
from .stores.base import Store
from .stores.base import implements

if t.TYPE_CHECKING:
    from flask import Flask
    from flask.sessions import SessionInterface
    from flask.testing import FlaskClient

    from .session import ServerSession
    from .stores.base import Document

__all__ = [
    "CountingStore",
    "ServerSessionAccess",
    "install_store",
    "server_session",
    "server_session_id",
    "session_headers",
    "session_interface",
    "set_server_session",
]


def session_interface(app: Flask) -> ConnectSessionInterface:
    """Return the app's :class:`ConnectSessionInterface`.

    :raises RuntimeError: the app does not use :class:`ConnectSession`.
    """
    interface = app.session_interface
    if not isinstance(interface, ConnectSessionInterface):
        raise RuntimeError(f"app {app.name!r} does not use ConnectSession")
    return interface


def install_store(app: Flask, store: Store) -> SessionInterface:
    """Make ``store`` the app's session store, with the same options.

    Returns the session interface it replaces: assign it back to
    ``app.session_interface`` to undo. Inside an app context,
    ``app.extensions["connect_session"].store`` is then ``store``.

    :raises RuntimeError: the app does not use :class:`ConnectSession`.
    """
    previous = session_interface(app)
    interface = type(previous)(previous.options, store, previous.legacy)
    app.session_interface = interface
    return previous


# -- reading and writing the session behind a client ---------------------


class _Discard(Exception):
    """Leaves ``session_transaction`` without saving the session."""


class _ReadOnlyStore(Store):
    """Reads through to a store and never changes it: what a load would
    remove (a session past its absolute timeout) stays, and no
    :data:`~flask_connect_session.session_destroyed` is sent for it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ttl = store.ttl

    def get(self, sid: str) -> Document | None:
        return self.store.get(sid)

    def set(self, sid: str, session: Document) -> None:
        raise RuntimeError("a read-only store cannot set")

    def destroy(self, sid: str) -> bool:
        return False  # "another request removed it first": nothing to report


class _ReadOnlyTouchingStore(_ReadOnlyStore):
    """A :class:`_ReadOnlyStore` over a store that loads with
    ``get_and_touch``, so the read is the very store call a request makes.
    """

    def get_and_touch(self, sid: str) -> Document | None:
        return self.store.get_and_touch(sid)


def _read_only(store: Store) -> Store:
    """A view of ``store`` whose loads change nothing stored."""
    read_only = _ReadOnlyTouchingStore if implements(store, "get_and_touch") else _ReadOnlyStore
    return read_only(store)


def _peek(client: FlaskClient, kwargs: dict[str, t.Any]) -> tuple[str | None, dict[str, t.Any]]:
    """Return the id and data of the stored session the client's cookie
    names, or ``(None, {})``. Loads it as a request would, writes nothing.
    """
    app = client.application
    session_interface(app)
    result: tuple[str | None, dict[str, t.Any]] = (None, {})
    try:
        with client.session_transaction(**kwargs) as opened:
            session = t.cast("ServerSession", opened)
            # Flask hands the session out after leaving the request context:
            # the load gets the app's back (a legacy takeover reads its
            # secret), and a store that removes nothing.
            session.store = _read_only(session.store)
            with app.app_context():
                data = dict(session)
            if not session.new:
                result = (session.id, data)
            # Leaving with an exception skips save_session: no write, no
            # touch, no cookie, whatever the lifecycle options.
            raise _Discard
    except _Discard:
        pass
    return result


def server_session(client: FlaskClient, **kwargs: t.Any) -> dict[str, t.Any]:
    """Return the data of the stored session behind the client's cookie.

    The session is loaded as a view's first access would load it (the same
    store call, Flask's tagged types restored), and nothing is written back
    or removed: a session past its absolute timeout reads as empty, as a
    request would find it, but stays stored, and no signal is sent. Empty
    when the client has no valid cookie or the store has no such session.

    :param client: a test client of an app that uses :class:`ConnectSession`.
    :param kwargs: passed to :meth:`~flask.testing.FlaskClient.session_transaction`
        (so to :meth:`~flask.Flask.test_request_context`), e.g.
        ``base_url="https://localhost"``.
    :raises RuntimeError: the app does not use :class:`ConnectSession`.
    :raises StoreError: the store failed.
    """
    return _peek(client, kwargs)[1]


def server_session_id(client: FlaskClient, **kwargs: t.Any) -> str | None:
    """Return the id of the stored session behind the client's cookie, or
    ``None`` when there is none. Takes the arguments of :func:`server_session`.
    """
    return _peek(client, kwargs)[0]


def set_server_session(
    client: FlaskClient, data: cabc.Mapping[str, t.Any], **kwargs: t.Any
) -> str | None:
    """Replace the data of the session behind the client's cookie with
    ``data``, as one request that does so would.

    Built on :meth:`~flask.testing.FlaskClient.session_transaction`: the
    session goes through the app's lifecycle, so a new session is stored and
    its cookie given to the client, and empty ``data`` destroys a stored
    session (with ``CONNECT_SESSION_UNSET = "destroy"``). Returns the id of
    the stored session, or ``None`` if there is none afterwards.

    :param client: a test client of an app that uses :class:`ConnectSession`.
    :param data: the new session data.
    :param kwargs: passed to ``session_transaction``; a ``Secure`` cookie
        needs ``base_url="https://localhost"``.
    :raises RuntimeError: the app does not use :class:`ConnectSession`, or
        the session was stored but the client did not get its cookie.
    :raises StoreError: the store failed.
    :raises TypeError: a value cannot be stored; the message names its key.
    """
    session_interface(client.application)
    with client.session_transaction(**kwargs) as session:
        session.clear()
        session.update(data)
    sid = server_session_id(client, **kwargs)
    if data and sid is None:
        raise RuntimeError(
            "the session was stored but the client did not get its cookie"
            " (a Secure cookie over http? pass base_url='https://localhost')"
        )
    return sid


def session_headers(
    client: FlaskClient, data: cabc.Mapping[str, t.Any], **kwargs: t.Any
) -> dict[str, str]:
    """Store a new session holding ``data``, as a header request that writes
    it would, and return the request headers that name it.

    For apps with :confval:`CONNECT_SESSION_HEADER`: pass the result as
    ``headers=`` to the client's requests, and to :func:`server_session` and
    :func:`set_server_session` to read or change that session. With empty
    ``data`` nothing is stored and the header is empty (a header request
    with no session yet).

    :param client: a test client of an app that uses :class:`ConnectSession`,
        with cookies on (``session_transaction`` needs them; a header request
        neither reads nor sets the cookie).
    :param data: the data of the new session.
    :param kwargs: passed to ``session_transaction``; its ``headers`` are
        sent too.
    :raises RuntimeError: the app does not use :class:`ConnectSession`, or
        has no ``CONNECT_SESSION_HEADER``.
    :raises StoreError: the store failed.
    :raises TypeError: a value cannot be stored; the message names its key.

    .. versionadded:: 0.1
    """
    name = session_interface(client.application).options.header
    if name is None:
        raise RuntimeError(f"app {client.application.name!r} has no CONNECT_SESSION_HEADER")
    headers = Headers(kwargs.pop("headers", None))
    headers[name] = ""  # a header request with no session yet
    with client.session_transaction(headers=headers, **kwargs) as opened:
        session = t.cast("ServerSession", opened)
        session.update(data)
    # The response of session_transaction is thrown away: sign the id as it
    # would have been sent.
    life = session._life
    return {name: sign(life.sid, life.secrets[0]) if life.in_store else ""}


class ServerSessionAccess:
    """Read and write the server-side session behind a test client's cookie
    (or, with ``headers=``, a header client's); the ``connect_session_server``
    fixture.

    ::

        def test_dashboard(client, connect_session_server):
            connect_session_server.set(client, {"user": "ann"})
            assert client.get("/dashboard").status_code == 200
            assert connect_session_server.get(client)["visits"] == 1

    .. versionadded:: 0.1
    """

    def get(self, client: FlaskClient, **kwargs: t.Any) -> dict[str, t.Any]:
        """See :func:`server_session`."""
        return server_session(client, **kwargs)

    def id(self, client: FlaskClient, **kwargs: t.Any) -> str | None:
        """See :func:`server_session_id`."""
        return server_session_id(client, **kwargs)

    def set(
        self, client: FlaskClient, data: cabc.Mapping[str, t.Any], **kwargs: t.Any
    ) -> str | None:
        """See :func:`set_server_session`."""
        return set_server_session(client, data, **kwargs)

    def headers(
        self, client: FlaskClient, data: cabc.Mapping[str, t.Any], **kwargs: t.Any
    ) -> dict[str, str]:
        """See :func:`session_headers`."""
        return session_headers(client, data, **kwargs)


# -- counting store calls ------------------------------------------------

#: The methods of :class:`Store` a store may leave to the base class.
OPTIONAL_METHODS = tuple(
    name
    for name, value in vars(Store).items()
    if callable(value)
    and not name.startswith("_")
    and not getattr(value, "__isabstractmethod__", False)
)


class CountingStore(Store):
    """Wrap a store, record every call made to it, and delegate.

    ::

        store = CountingStore(MemoryStore())
        ...
        assert store.counts["get"] == 1
        assert store.calls[-1] == ("merge", sid)

    The wrapper implements exactly the optional methods the wrapped store
    implements (``CountingStore(store)`` builds a subclass that does), so
    the session interface makes the same calls it would make to ``store``.
    Calls a base-class default makes (:meth:`Store.merge` calls
    :meth:`get` and :meth:`set`) are recorded as those calls.

    :param store: the store to wrap.

    .. versionadded:: 0.1
    """

    def __new__(cls, store: Store) -> CountingStore:
        if cls is CountingStore:
            cls = _counting_class(type(store))
        return super().__new__(cls)

    def __init__(self, store: Store) -> None:
        #: The wrapped store.
        self.store = store
        #: Every call in order, as ``(method, sid)``; ``sid`` is ``None`` for
        #: methods that take none (``all``, ``length``, ``clear``, ``prune``).
        self.calls: list[tuple[str, str | None]] = []

    @property
    def ttl(self) -> int:
        """The wrapped store's :attr:`~Store.ttl`."""
        return self.store.ttl

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.store.ttl = value

    @property
    def counts(self) -> collections.Counter[str]:
        """How many times each method was called."""
        return collections.Counter(method for method, _ in self.calls)

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    def record(self, method: str, sid: str | None = None) -> None:
        """Record one call."""
        self.calls.append((method, sid))

    def get(self, sid: str) -> Document | None:
        self.record("get", sid)
        return self.store.get(sid)

    def set(self, sid: str, session: Document) -> None:
        self.record("set", sid)
        self.store.set(sid, session)

    def destroy(self, sid: str) -> bool | None:
        self.record("destroy", sid)
        return self.store.destroy(sid)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.store!r}: {len(self.calls)} call(s)>"


def _delegate(method: str) -> cabc.Callable[..., t.Any]:
    def call(self: CountingStore, *args: t.Any) -> t.Any:
        self.record(method, args[0] if args and isinstance(args[0], str) else None)
        return getattr(self.store, method)(*args)

    call.__name__ = call.__qualname__ = method
    call.__doc__ = f"Record the call, then call the wrapped store's ``{method}``."
    return call


@functools.cache
def _counting_class(store_class: type[Store]) -> type[CountingStore]:
    """Return the :class:`CountingStore` subclass for ``store_class``: it
    defines the optional methods ``store_class`` overrides, and only those.
    """
    namespace: dict[str, t.Any] = {
        method: _delegate(method)
        for method in OPTIONAL_METHODS
        if getattr(store_class, method) is not getattr(Store, method)
    }
    namespace["__module__"] = __name__
    namespace["__doc__"] = f"A :class:`CountingStore` over a {store_class.__name__}."
    return t.cast(
        "type[CountingStore]",
        type(f"Counting{store_class.__name__}", (CountingStore,), namespace),
    )
