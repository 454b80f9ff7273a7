"""The ``ConnectSession`` Flask extension."""

from __future__ import annotations

import logging
import sys
import typing as t

from cachelib import BaseCache
from flask import current_app
from flask import has_app_context

from .interface import ConnectSessionInterface
from .options import Options
from .options import config_secrets
from .stores import StoreSettings
from .stores import store_from_url
from .stores.base import Store
from .stores.cachelib import CachelibStore
from .stores.memory import MemoryStore
from .stores.redis import RedisStore

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
        self._store: Store | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the ``CONNECT_SESSION_*`` config once, build the store and
        install the session interface.

        Registers this extension as ``app.extensions["connect_session"]`` and
        adds the ``flask session`` command group.

        :raises ValueError: a setting is invalid; the message names its key.
        """
        options = Options.from_config(app.config)
        store = build_store(options, app)
        app.session_interface = ConnectSessionInterface(options, store)
        app.extensions["connect_session"] = self
        self._store = store
        from .cli import session_cli

        app.cli.add_command(session_cli)
        if not config_secrets(app.config):
            logger.warning(
                "no SECRET_KEY or CONNECT_SESSION_SECRET: sessions are disabled"
                " (flask.session is Flask's null session)"
            )
        if isinstance(store, MemoryStore) and not (app.debug or app.testing):
            _warn_memory_store()

    @property
    def store(self) -> Store:
        """The live store: the current app's inside an app context, else the
        store of the last app this extension was set up on.
        """
        if has_app_context():
            interface = current_app.session_interface
            if isinstance(interface, ConnectSessionInterface):
                return interface.store
        if self._store is None:
            raise RuntimeError("ConnectSession.init_app() has not been called")
        return self._store


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
