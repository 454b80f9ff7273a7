"""The pytest plugin of flask-connect-session: fixtures over the helpers in
:mod:`flask_connect_session.testing`.

Installing the package registers this module as a pytest plugin (entry point
``connect_session`` in the ``pytest11`` group). It only defines fixtures, and
a fixture does nothing until a test asks for it:

``connect_session_server``
    A :class:`~flask_connect_session.testing.ServerSessionAccess`: read and
    write the server-side session behind a test client's cookie, or start
    one for a header client.

``connect_session_counting_store``
    ``install(app) -> CountingStore``: wraps the app's store in a
    :class:`~flask_connect_session.testing.CountingStore` that records every
    call, for the rest of the test.

``connect_session_memory_store``
    ``install(app) -> MemoryStore``: gives the app a fresh, empty
    :class:`~flask_connect_session.MemoryStore` for the rest of the test.

Stores installed by the fixtures are removed again when the test ends.
Disable the plugin with ``-p no:connect_session``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t

import pytest

from .stores.memory import MemoryStore
from .testing import CountingStore
from .testing import ServerSessionAccess
from .testing import install_store
from .testing import session_interface

if t.TYPE_CHECKING:
    from flask import Flask
    from flask.sessions import SessionInterface


@pytest.fixture
def connect_session_server() -> ServerSessionAccess:
    """Read and write the server-side session behind a test client's cookie:
    ``.get(client)``, ``.id(client)``, ``.set(client, data)``; and
    ``.headers(client, data)`` for a header client.
    """
    return ServerSessionAccess()


@pytest.fixture
def _connect_session_installed() -> cabc.Iterator[list[tuple[Flask, SessionInterface]]]:
    """Undo every store installation of this test, last first."""
    installed: list[tuple[Flask, SessionInterface]] = []
    yield installed
    for app, previous in reversed(installed):
        app.session_interface = previous


@pytest.fixture
def connect_session_counting_store(
    _connect_session_installed: list[tuple[Flask, SessionInterface]],
) -> cabc.Callable[[Flask], CountingStore]:
    """``install(app)``: wrap the app's store in a :class:`CountingStore`
    for the rest of the test, and return the wrapper.
    """

    def install(app: Flask) -> CountingStore:
        store = CountingStore(session_interface(app).store)
        _connect_session_installed.append((app, install_store(app, store)))
        return store

    return install


@pytest.fixture
def connect_session_memory_store(
    _connect_session_installed: list[tuple[Flask, SessionInterface]],
) -> cabc.Callable[[Flask], MemoryStore]:
    """``install(app)``: give the app a fresh, empty :class:`MemoryStore`
    (with the app's ``CONNECT_SESSION_TTL``) for the rest of the test, and
    return it.
    """

    def install(app: Flask) -> MemoryStore:
        store = MemoryStore(ttl=session_interface(app).options.ttl)
        _connect_session_installed.append((app, install_store(app, store)))
        return store

    return install
