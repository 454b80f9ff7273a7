"""The ``ConnectSession`` Flask extension."""

from __future__ import annotations

import logging
import typing as t

import click
from flask import current_app
from flask import has_app_context
from flask import has_request_context
from flask import session as flask_session

from .calls import run
from .interface import AppEnvironment
from .interface import ConnectSessionInterface
from .migrate import check_prefixes
from .migrate import parse_migrate_from
from .options import Options
from .options import app_secrets
from .options import check_secrets
from .session import ServerSession
from .stores import StoreSettings
from .stores import store_from_url
from .stores import store_from_value
from .stores.base import AsyncStore
from .stores.base import Store
from .stores.base import keeps_user_index
from .stores.memory import MemoryStore
from .stores.threaded import SyncBackedStore
from .users import SessionInfo
from .users import UserIndex

if t.TYPE_CHECKING:
    from flask import Flask

    from .calls import Steps
    from .core import Lifecycle
    from .migrate import LegacySource

logger = logging.getLogger("flask_connect_session")

_memory_warning_given = False


def build_store(options: Options, app: Flask | None = None) -> Store:
    """Return the store ``CONNECT_SESSION_STORE`` names: a URL, a ``Store``,
    a cachelib cache, a redis-py/valkey client (``Redis``,
    ``RedisCluster``...), which gets a :class:`RedisStore`, or a SQLAlchemy
    ``Engine`` or Flask-SQLAlchemy object, which gets a ``SQLStore``.

    :param app: the app being set up: its instance folder holds relative
        SQLite paths, its context gives a Flask-SQLAlchemy object's engine.
    :raises ValueError: the value is none of these, or the URL is malformed;
        the message names the key.
    """
    value = options.store
    settings = StoreSettings(
        options.key_prefix,
        options.ttl,
        options.sql_table,
        None if app is None else app.instance_path,
    )
    if isinstance(value, str):
        try:
            return store_from_url(value, settings)
        except ValueError as exc:
            raise ValueError(f"CONNECT_SESSION_STORE: {exc}") from exc
    store = store_from_value(_flask_sqlalchemy_engine(value, app), settings)
    if store is None:
        raise ValueError(
            "CONNECT_SESSION_STORE: expected a URL, a Store, a cachelib cache, a"
            f" Redis client or a SQLAlchemy engine, got {value!r}"
        )
    return store


def _flask_sqlalchemy_engine(value: object, app: Flask | None) -> object:
    """The engine of a Flask-SQLAlchemy ``SQLAlchemy`` object; any other
    value as is. Duck-typed, so Flask-SQLAlchemy need not be installed.
    """
    if not (hasattr(type(value), "engines") and hasattr(type(value), "engine")):
        return value
    try:
        if app is None:
            return value.engine  # type: ignore[attr-defined]
        # Flask-SQLAlchemy keeps one engine per app, found through the context.
        with app.app_context():
            return value.engine  # type: ignore[attr-defined]
    except (KeyError, RuntimeError) as exc:
        raise ValueError(
            "CONNECT_SESSION_STORE: the Flask-SQLAlchemy object has no engine for"
            f" this app; call db.init_app(app) first ({exc!r})"
        ) from exc


def read_options(app: t.Any) -> Options:
    """Check the app's secrets and parse its ``CONNECT_SESSION_*`` config
    (Flask's or Quart's app).

    :raises ValueError: a setting is invalid; the message names its key.
    """
    check_secrets(app)
    return Options.from_config(app.config)


def prepare_store(
    app: t.Any, options: Options, store: Store | AsyncStore
) -> tuple[LegacySource, ...]:
    """Apply the settings that concern the app's store and return the legacy
    sources to take over (``CONNECT_SESSION_MIGRATE_FROM``).

    :raises ValueError: the store cannot keep the per-user index, or a
        legacy source could reach the store's keys; the message names the key.
    """
    # A limit on what requests store, so it applies to a store the app
    # built itself too.
    store.max_size = options.max_size
    if options.user_key is not None and not keeps_user_index(store):
        raise ValueError(
            f"CONNECT_SESSION_USER_KEY: {type(store).__name__} cannot keep the per-user"
            " index; use MemoryStore, FileSystemStore, RedisStore or SQLStore"
        )
    legacy = parse_migrate_from(app.config, options.key)
    check_prefixes(legacy, _backing(store))
    return legacy


def _backing(store: Store | AsyncStore) -> Store | AsyncStore:
    """The store that keeps the sessions: for an asyncio store run on a
    synchronous one (Quart's), that one.
    """
    return store.store if isinstance(store, SyncBackedStore) else store


def install(
    app: t.Any, extension: object, commands: click.Command, store: Store | AsyncStore
) -> None:
    """Register ``extension`` on ``app`` (whose session interface is set),
    add the ``session`` command group and log the setup warnings: no secret,
    or the per-process memory store outside debug and testing.
    """
    app.extensions["connect_session"] = extension
    app.cli.add_command(commands)
    if not app_secrets(app):
        logger.warning(
            "no SECRET_KEY or CONNECT_SESSION_SECRET: sessions are disabled"
            " (the session is the framework's null session)"
        )
    if isinstance(_backing(store), MemoryStore) and not (app.debug or app.testing):
        _warn_memory_store()


class ConnectSession:
    """Server-side sessions for Flask with express-session's options,
    methods and wire format.

    ::

        app = Flask(__name__)
        app.config["SECRET_KEY"] = "change me"
        ConnectSession(app)

    or, with an application factory, ``ext = ConnectSession()`` then
    ``ext.init_app(app)``.

    :param app: the application to set up now.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None) -> None:
        # Per-app state (the options, the store) lives in the interface
        # installed on each app, never here; the constructor's app is kept
        # only so that .store can answer outside an app context.
        self._app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the ``CONNECT_SESSION_*`` config once, build the store and
        install the session interface.

        Registers this extension as ``app.extensions["connect_session"]`` and
        adds the ``flask session`` command group.

        :raises ValueError: a setting is invalid; the message names its key.
        """
        options = read_options(app)
        store = build_store(options, app)
        legacy = prepare_store(app, options, store)
        interface = ConnectSessionInterface(options, store, legacy)
        app.session_interface = interface
        from .cli import session_cli

        install(app, self, session_cli, store)

    @property
    def store(self) -> Store:
        """The live store of the current app, inside an app context; outside
        one, of the app given to the constructor (``ConnectSession(app)``).

        The store of the session interface installed on that app, so a store
        installed later (:func:`~flask_connect_session.testing.install_store`)
        is the one given.

        :raises RuntimeError: outside an app context, an extension made
            without an app (``init_app`` may have set it up on several); or
            the app does not use this extension.
        """
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        elif self._app is not None:
            app = self._app
        else:
            raise RuntimeError(
                "ConnectSession.store needs an app context (with app.app_context():"
                " ...), or an extension constructed with its app: ConnectSession(app)"
            )
        return self._interface(app).store

    # -- users and their devices ------------------------------------------

    def _interface(self, app: Flask | None = None) -> ConnectSessionInterface:
        """The session interface this extension installed on ``app`` (by
        default the current app), which holds that app's options and store.
        """
        if app is None:
            app = t.cast("Flask", current_app._get_current_object())  # type: ignore[attr-defined]
        interface = app.session_interface
        if (
            not isinstance(interface, ConnectSessionInterface)
            or app.extensions.get("connect_session") is not self
        ):
            raise RuntimeError(f"ConnectSession is not set up on app {app.name!r}")
        return interface

    def _index(self) -> UserIndex:
        index = self._interface().core.users
        if index is None:
            raise RuntimeError("CONNECT_SESSION_USER_KEY is not set: there is no user index")
        return index

    def _current(self) -> ServerSession | None:
        # The session of the request being served, if any.
        if has_request_context():
            current = flask_session._get_current_object()  # type: ignore[attr-defined]
            if isinstance(current, ServerSession):
                return current
        return None

    def user_sessions(self, user: str | int) -> list[SessionInfo]:
        """Return the sessions of ``user``, most recently seen first.

        Costs O(that user's sessions) store work, never a scan. Needs an app
        context and ``CONNECT_SESSION_USER_KEY``.

        :param user: the user, as the session data names it (compared as str).
        :raises StoreError: the store failed.

        .. versionadded:: 0.1
        """
        index, current = self._index(), self._current()
        steps = list_sessions(index, user, None if current is None else current._life)
        return run(steps, self._environment(current))

    def revoke(
        self, user: str | int, handle: str | None = None, *, keep_current: bool = False
    ) -> int:
        """Log ``user`` out of all their sessions, or of the one ``handle``
        names; return how many sessions were removed.

        Each is removed from the store at once, so its next request is a new,
        empty session, and a request of it still in flight cannot bring it
        back. :data:`~flask_connect_session.session_destroyed` is sent for
        each with ``reason="revoke"``. When the current request's session is
        revoked, its response deletes the cookie.

        Without ``handle`` it is complete: every session of ``user`` that
        exists when it is called ends, including one that a request is
        moving to a new id at that moment (``regenerate()``), and the ones
        the index does not hold (stored before ``CONNECT_SESSION_USER_KEY``
        was set, or by an Express app; a legacy session waiting to be taken
        over), which end at their next use: a revoke record of the user,
        kept as long as such a session can live, tells. Those are not
        counted. Sessions created afterwards are not affected.

        :param handle: a :attr:`SessionInfo.handle`; other sessions stay.
        :param keep_current: spare the session of the request being served.
        :raises StoreError: the store failed.

        .. versionadded:: 0.1
        """
        index, current = self._index(), self._current()
        life = None if current is None else current._life
        steps = revoke_sessions(index, user, handle, life, keep_current=keep_current)
        return run(steps, self._environment(current))

    def _environment(self, current: ServerSession | None) -> ServerSession | AppEnvironment[Store]:
        # The calls of a per-user operation run in the current request's
        # session when there is one, else on the app's store.
        if current is not None:
            return current
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        return AppEnvironment(app, self._interface(app).store)


# -- the per-user operations, for Flask's and Quart's extensions ----------------


def list_sessions(
    index: UserIndex, user: str | int, current: Lifecycle | None
) -> Steps[list[SessionInfo]]:
    """The sessions of ``user``, most recently seen first (see
    :meth:`ConnectSession.user_sessions`).

    :param current: the lifecycle of the request being served, if any: its
        session is marked :attr:`SessionInfo.current`.
    """
    current_key = yield from _current_key(current)
    infos = yield from index.sessions(str(user), current_key)
    return sorted(infos.values(), key=lambda info: info.last_seen, reverse=True)


def _current_key(current: Lifecycle | None) -> Steps[str | None]:
    """The store key of the request's session (what the user index holds),
    loading it if the view has not.
    """
    if current is None:
        return None
    if not current.loaded:
        yield from current.load()
    return current.key


def revoke_sessions(
    index: UserIndex,
    user: str | int,
    handle: str | None,
    current: Lifecycle | None,
    *,
    keep_current: bool = False,
) -> Steps[int]:
    """Log ``user`` out of all their sessions, or of the one ``handle``
    names; return how many were removed (see :meth:`ConnectSession.revoke`).

    :param current: the lifecycle of the request being served, if any: its
        session is destroyed through it, so its response deletes the cookie.
    :param keep_current: spare ``current``'s session.
    """
    user = str(user)
    current_key = yield from _current_key(current)
    # Recorded before the listing: whatever the listing misses ends at
    # its next use (the session core reads the record then).
    began = (yield from index.record_revoke(user)) if handle is None else None
    spared = current if keep_current else None
    count = 0
    if current is not None and current.unfiled_user == user and handle is None:
        if spared is not None:
            current.unfiled_user = None  # its save files it, not ends it
        else:
            count += int((yield from current.destroy("revoke")))
    listed = yield from index.sessions(user, current_key)
    if handle is not None:
        listed = {sid: info for sid, info in listed.items() if info.handle == handle}
    removed, missed = yield from _revoke_listed(index, user, listed, current, spared)
    count += removed
    if began is not None and missed:
        # A session listed was gone when removed: it may have moved to a
        # new id meanwhile, which regenerate() stores and files before
        # it removes the old one. List once more, for the sessions that
        # existed when the revoke began (a move keeps the login time).
        again = yield from index.sessions(user, current_key)
        again = {sid: info for sid, info in again.items() if info.created.timestamp() <= began}
        count += (yield from _revoke_listed(index, user, again, current, spared))[0]
    return count


def _revoke_listed(
    index: UserIndex,
    user: str,
    listed: dict[str, SessionInfo],
    current: Lifecycle | None,
    spared: Lifecycle | None,
) -> Steps[tuple[int, bool]]:
    """Revoke the ``listed`` sessions of ``user`` but ``spared``'s; the
    ``current`` request's one through its lifecycle, so its response
    deletes the cookie. Return how many went, and whether any was gone
    already.
    """
    sids = [sid for sid, info in listed.items() if not (spared is not None and info.current)]
    wanted = len(sids)
    removed = 0
    if current is not None and current.key in sids:
        sids.remove(current.key)
        removed = int((yield from current.destroy("revoke")))
    removed += yield from index.revoke(user, sids)
    return removed, removed < wanted


def _warn_memory_store() -> None:
    # Once per process, as express-session warns once per middleware.
    global _memory_warning_given
    if not _memory_warning_given:
        _memory_warning_given = True
        logger.warning(
            "MemoryStore is not designed for production: it keeps sessions in"
            " this process only, so they are lost on restart and not shared"
            " between workers; set CONNECT_SESSION_STORE to redis:// or file://"
        )
