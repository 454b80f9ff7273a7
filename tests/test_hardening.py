"""Regression tests for the low-severity findings of the second security
review (issue 22): each reproduces what the review did against real servers
and checks it now fails.
"""

from __future__ import annotations

import collections.abc as cabc
import logging
import traceback
import typing as t
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import session

from flask_connect_session import ConnectSession
from flask_connect_session import SQLStore
from flask_connect_session import StoreError
from flask_connect_session.stores import sql as sql_module

from conftest import SECRET

# -- 5. SQLStore errors never quote the sid or the session's data -------------------

#: What the session holds: no error or log line may show it.
API_TOKEN = "tok_live_9f8e7d6c5b4a"


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would print it, tracebacks and their
    chained exceptions included.
    """
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


def _locker(dialect: str, url: str) -> cabc.Callable[[], t.Any]:
    """Return a function that locks the session table from another
    connection (returned, to be closed by the caller) so that the next
    write of the table times out.
    """

    def lock() -> sa.Connection:
        conn = sa.create_engine(url, poolclass=sa.pool.NullPool).connect()
        if dialect == "postgresql":
            conn.exec_driver_sql("LOCK TABLE session IN ACCESS EXCLUSIVE MODE")
        elif dialect == "mariadb":
            conn.exec_driver_sql("LOCK TABLES session WRITE")
        else:
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        return conn

    return lock


def _short_lock_waits(dialect: str, url: str, given: str) -> tuple[object, str]:
    """The store setting (a URL or an engine of the app's) for ``url``,
    with lock waits of about a second, and the URL the locker uses.
    """
    if dialect == "postgresql":
        options = {"options": "-c lock_timeout=1s"}
    elif dialect == "mariadb":
        options = {"init_command": "SET lock_wait_timeout=1, innodb_lock_wait_timeout=1"}
    else:
        options = {"timeout": "0.2"}
    if given == "engine":
        connect_args = {k: float(v) if k == "timeout" else v for k, v in options.items()}
        # echo: the app logs its statements, ours must not show their values.
        return sa.create_engine(url, connect_args=connect_args, echo=True), url
    query = "&".join(f"{k}={quote(v)}" for k, v in options.items())
    return f"{url}?{query}", url


@pytest.mark.slow
@pytest.mark.parametrize("given", ["url", "engine"])
@pytest.mark.parametrize("dialect", ["postgresql", "mariadb", "sqlite"])
def test_sql_errors_quote_neither_the_sid_nor_the_data(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    dialect: str,
    given: str,
) -> None:
    """A write that times out on a lock (PostgreSQL's lock timeout,
    MariaDB's lock wait timeout, SQLite's "database is locked") fails with
    a logged StoreError; nothing logged or raised holds the session's data
    or more than 6 characters of its id, whether the store built the
    engine from a URL or the app passed its own.
    """
    monkeypatch.setattr(sql_module, "LOCK_TIMEOUT", 1)
    url = t.cast(str, request.getfixturevalue(f"{dialect}_url"))
    setting, lock_url = _short_lock_waits(dialect, url, given)
    lock = _locker(dialect, lock_url)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=setting)
    store = ConnectSession(app).store
    assert isinstance(store, SQLStore)
    assert store.length() == 0  # creates the table
    held: list[sa.Connection] = []
    sids: list[str] = []

    @app.post("/login")
    def login() -> str:
        session["user"] = "alice"
        session["api_token"] = API_TOKEN
        sids.append(session.id)
        held.append(lock())
        return "ok"

    client = app.test_client()
    try:
        with caplog.at_level(logging.DEBUG):
            assert client.post("/login").status_code == 500
    finally:
        for conn in held:
            conn.close()
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert errors and isinstance(errors[0], StoreError)
    text = _everything_logged(caplog.records)
    text += "".join(traceback.format_exception(errors[0]))
    text += repr(errors[0]) + repr(errors[0].__cause__)
    assert "lock" in text.lower()  # the database's reason is still there
    [sid] = sids
    assert sid[:6] in text and sid[:7] not in text
    assert API_TOKEN not in text and "alice" not in text
    assert store.length() == 0  # and nothing was stored
    if isinstance(setting, sa.Engine):
        setting.dispose()
