"""The ``ConnectSession`` Flask extension."""

from __future__ import annotations

import logging
import sys
import typing as t

from cachelib import BaseCache
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
from .stores.base import Store
from .stores.base import keeps_user_index
from .stores.cachelib import CachelibStore
from .stores.memory import MemoryStore
from .stores.redis import RedisStore
from .users import SessionInfo
from .users import UserIndex

if t.TYPE_CHECKING:
    from flask import Flask

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
    if isinstance(value, Store):
        return value
    if isinstance(value, str):
        settings = StoreSettings(
            options.key_prefix,
            options.ttl,
            options.sql_table,
            None if app is None else app.instance_path,
        )
        try:
            return store_from_url(value, settings)
        except ValueError as exc:
            raise ValueError(f"CONNECT_SESSION_STORE: {exc}") from exc
    engine = _sql_engine(value, app)
    if engine is not None:
        from .stores.sql import SQLStore

        return SQLStore(engine, table=options.sql_table, ttl=options.ttl)
    if isinstance(value, BaseCache):
        return CachelibStore(value, key_prefix=options.key_prefix, ttl=options.ttl)
    # redis-py and valkey clients, plain or cluster: duck-typed, so neither
    # package has to be installed to get here.
    if callable(getattr(value, "register_script", None)):
        return RedisStore(value, key_prefix=options.key_prefix, ttl=options.ttl)
    raise ValueError(
        "CONNECT_SESSION_STORE: expected a URL, a Store, a cachelib cache, a"
        f" Redis client or a SQLAlchemy engine, got {value!r}"
    )


def _sql_engine(value: object, app: Flask | None) -> t.Any:
    """The SQLAlchemy ``Engine`` that ``value`` is or (a Flask-SQLAlchemy
    ``SQLAlchemy`` object) holds; ``None`` for anything else. Duck-typed, so
    neither package has to be installed to get here.
    """
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy is None:
        return None
    if isinstance(value, sqlalchemy.Engine):
        return value
    if not (hasattr(type(value), "engines") and hasattr(type(value), "engine")):
        return None
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
        check_secrets(app)
        options = Options.from_config(app.config)
        store = build_store(options, app)
        # A limit on what requests store, so it applies to a store the app
        # built itself too.
        store.max_size = options.max_size
        if options.user_key is not None and not keeps_user_index(store):
            raise ValueError(
                f"CONNECT_SESSION_USER_KEY: {type(store).__name__} cannot keep the per-user"
                " index; use MemoryStore, FileSystemStore, RedisStore or SQLStore"
            )
        legacy = parse_migrate_from(app.config, options.key)
        check_prefixes(legacy, store)
        interface = ConnectSessionInterface(options, store, legacy)
        app.session_interface = interface
        app.extensions["connect_session"] = self
        from .cli import session_cli

        app.cli.add_command(session_cli)
        if not app_secrets(app):
            logger.warning(
                "no SECRET_KEY or CONNECT_SESSION_SECRET: sessions are disabled"
                " (flask.session is Flask's null session)"
            )
        if isinstance(store, MemoryStore) and not (app.debug or app.testing):
            _warn_memory_store()

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
        current = self._current()
        steps = self._index().sessions(str(user), _current_key(current))
        infos = run(steps, self._environment(current))
        return sorted(infos.values(), key=lambda info: info.last_seen, reverse=True)

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
        env = self._environment(current)
        life = None if current is None else current._life
        user = str(user)
        current_sid = _current_key(current)
        # Recorded before the listing: whatever the listing misses ends at
        # its next use (the session core reads the record then).
        began = run(index.record_revoke(user), env) if handle is None else None
        spared = current if keep_current else None
        count = 0
        if current is not None and life is not None and life.unfiled_user == user:
            if handle is None:
                if spared is not None:
                    life.unfiled_user = None  # its save files it, not ends it
                else:
                    count += int(run(life.destroy("revoke"), current))
        listed = run(index.sessions(user, current_sid), env)
        if handle is not None:
            listed = {sid: info for sid, info in listed.items() if info.handle == handle}
        removed, missed = self._revoke_listed(user, listed, current, spared)
        count += removed
        if began is not None and missed:
            # A session listed was gone when removed: it may have moved to a
            # new id meanwhile, which regenerate() stores and files before
            # it removes the old one. List once more, for the sessions that
            # existed when the revoke began (a move keeps the login time).
            again = {
                sid: info
                for sid, info in run(index.sessions(user, current_sid), env).items()
                if info.created.timestamp() <= began
            }
            count += self._revoke_listed(user, again, current, spared)[0]
        return count

    def _revoke_listed(
        self,
        user: str,
        listed: dict[str, SessionInfo],
        current: ServerSession | None,
        spared: ServerSession | None,
    ) -> tuple[int, bool]:
        """Revoke the ``listed`` sessions of ``user`` but ``spared``'s; the
        ``current`` request's one through its lifecycle, so its response
        deletes the cookie. Return how many went, and whether any was gone
        already.
        """
        sids = [sid for sid, info in listed.items() if not (spared is not None and info.current)]
        wanted = len(sids)
        removed = 0
        current_key = _current_key(current)
        if current is not None and current_key in sids:
            sids.remove(current_key)
            removed = int(run(current._life.destroy("revoke"), current))
        removed += run(self._index().revoke(user, sids), self._environment(current))
        return removed, removed < wanted

    def _environment(self, current: ServerSession | None) -> ServerSession | AppEnvironment:
        # The calls of a per-user operation run in the current request's
        # session when there is one, else on the app's store.
        if current is not None:
            return current
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        return AppEnvironment(app, self._interface(app).store)


def _current_key(current: ServerSession | None) -> str | None:
    """The store key of the current request's session (loading it), if any:
    what the user index holds.
    """
    if current is None:
        return None
    current._data()  # loads it
    return current._life.key


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
