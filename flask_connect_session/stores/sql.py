"""A store in a SQL table through SQLAlchemy Core, sharing connect-pg-simple's
table layout (PostgreSQL, MariaDB/MySQL, SQLite).
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import hashlib
import logging
import os
import random
import threading
import time
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from ..cookie import MAX_LIFETIME
from ..document import DEVICE_MEMBER
from ..document import decode
from ..document import device_user
from ..errors import describe
from .base import DEFAULT_TTL
from .base import Document
from .base import Store
from .base import apply_changes
from .base import decode_entries
from .base import document_ttl
from .base import redact_url
from .base import split_table_name
from .base import touched_ttl

logger = logging.getLogger("flask_connect_session")

#: Mean seconds between two automatic prunes in one process (connect-pg-simple's
#: ``pruneSessionInterval``); each wait is drawn between half and 1.5 times it.
PRUNE_INTERVAL = 900.0
#: Rows one prune statement deletes at most, so it never holds locks long.
PRUNE_BATCH = 1000
#: Seconds a PostgreSQL merge waits for a row lock before failing.
LOCK_TIMEOUT = 10
#: Seconds a store built from a PostgreSQL URL waits for a new connection
#: (``?connect_timeout=`` in the URL overrides it).
CONNECT_TIMEOUT = 5
#: PostgreSQL drivers that pass libpq's ``options`` at connect.
_LIBPQ_DRIVERS = frozenset(("psycopg", "psycopg2"))
#: Attempts of SQLite's compare-and-swap merge before it gives up.
CAS_ATTEMPTS = 100

#: How many times a transaction the database rolled back as a deadlock
#: victim is run again.
DEADLOCK_ATTEMPTS = 5
#: Attempts at creating (or inspecting) the table on first use while other
#: processes do the same (a first deploy: every worker's first request).
CREATE_ATTEMPTS = 12

_T = t.TypeVar("_T")

#: What a process gets when another creates the same table at that moment:
#: PostgreSQL's duplicate table or object, its unique violation on the
#: system catalogue (two ``CREATE TABLE`` committing at once), a lock
#: timeout or deadlock; MySQL/MariaDB's "table exists", "duplicate key
#: name", lock wait timeout or deadlock. (SQLite: see :func:`_is_creation_race`.)
_CREATION_RACE: frozenset[str | int] = frozenset(
    ("42P07", "42710", "23505", "55P03", "40P01", 1050, 1061, 1205, 1213)
)


def error_code(exc: BaseException) -> str | int | None:
    """Return the database's own code for a driver error, or ``None``:
    PostgreSQL's SQLSTATE (``"23505"``), MySQL/MariaDB's error number
    (``1050``), SQLite's result code name (``"SQLITE_BUSY"``).

    :param exc: a SQLAlchemy ``DBAPIError`` or the driver's exception.
    """
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if orig is None:
        return None
    # MySQL drivers put the error number first (PyMySQL also has a sqlstate,
    # less precise).
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    # psycopg 3, then psycopg2.
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate
    name = getattr(orig, "sqlite_errorname", None)
    return name if isinstance(name, str) else None


class SQLStoreError(Exception):
    """A database error met by :class:`SQLStore`, told without the values
    of the statement.

    SQLAlchemy's message quotes the bound parameters (a session's id and its
    whole document) and some drivers quote values too, so the store raises
    this instead, naming SQLAlchemy's error class, the driver's error class
    and code, and the first line of the driver's message with every
    parameter value taken out; nothing is chained to it.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str, code: int | str | None = None) -> None:
        super().__init__(message)
        #: The driver's error code (MySQL/MariaDB's number, PostgreSQL's
        #: SQLSTATE), or ``None``.
        self.code = code

    @classmethod
    def scrub(cls, exc: sa.exc.StatementError) -> SQLStoreError:
        """Return the error to raise instead of ``exc``."""
        orig = exc.orig
        code = None if orig is None else error_code(orig)
        detail = str(orig if orig is not None else exc).strip().partition("\n")[0]
        for value in sorted(_parameter_texts(exc.params), key=len, reverse=True):
            detail = detail.replace(value, "***")
        driver = "" if orig is None else f"{type(orig).__module__}.{type(orig).__name__}"
        where = ", ".join(str(part) for part in (driver, code) if part)
        return cls(f"{type(exc).__name__} ({where}): {detail}", code)

    @property
    def deadlock(self) -> bool:
        """Whether the database rolled the transaction back as a deadlock
        victim (MySQL/MariaDB error 1213, PostgreSQL SQLSTATE 40P01).
        """
        return self.code in (1213, "40P01")


def _parameter_texts(params: object) -> cabc.Iterator[str]:
    """The text values among a statement's parameters (a mapping, or a
    sequence of them for an executemany).
    """
    if isinstance(params, cabc.Mapping):
        params = [params]
    if not isinstance(params, cabc.Sequence):
        return
    for group in params:
        values = group.values() if isinstance(group, cabc.Mapping) else group
        if isinstance(values, cabc.Iterable):
            # Shorter values would garble the message more than they hide.
            yield from (v for v in values if isinstance(v, str) and len(v) > 3)


@contextlib.contextmanager
def _scrubbed() -> cabc.Iterator[None]:
    """Turn a SQLAlchemy statement error into a :class:`SQLStoreError`,
    with nothing chained (the original's message quotes the parameters).
    """
    try:
        yield
    except sa.exc.StatementError as exc:
        error = SQLStoreError.scrub(exc)
    else:
        return
    raise error from None


def _without_parameters(engine: sa.Engine) -> sa.Engine:
    """``engine``, or a view of it sharing its pool, whose logs and errors
    leave the bound parameters out (``hide_parameters``), even with echo on.
    """
    if engine.hide_parameters:
        return engine
    view = engine.execution_options()
    view.hide_parameters = True
    return view


def _is_creation_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether ``exc`` is what creating the table gives while another
    process creates it: that one has made it (it is there now), or held a
    lock this one gave up waiting for. SQLite reports the latter as busy or
    locked, at once when a read transaction cannot become a write one.
    """
    code = error_code(exc)
    # SQLITE_SCHEMA: another connection changed the schema (created the
    # table) under this one's prepared statement.
    if isinstance(code, str) and code.startswith(
        ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_SCHEMA")
    ):
        return True
    if code == "SQLITE_ERROR":
        return "already exists" in str(exc.orig)
    return code in _CREATION_RACE


def _utcnow() -> datetime:
    # Naive UTC: the column is a timestamp without time zone, so the value
    # is stored as is, whatever the server's or the session's time zone.
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_wal(dbapi_connection: t.Any, record: t.Any) -> None:
    # Write-ahead logging: readers and a writer do not block each other, so
    # the workers of one machine share the file without queueing. The mode
    # sticks to the file; an in-memory database ignores it. With WAL,
    # synchronous=NORMAL never corrupts the file and syncs at checkpoints
    # only (a power cut may lose the last sessions written, not the table).
    # A cursor: the asyncio drivers' adapted connections have no execute().
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_sqlite_file(url: sa.URL) -> None:
    """Create a missing SQLite database file, empty and mode 0600: SQLite
    makes it a database at first use, and gives the ``-wal``, ``-shm`` and
    journal files it creates beside it the same mode. (Left to SQLite, all
    would be readable by every local user.)
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(database, flags | getattr(os, "O_CLOEXEC", 0), 0o600))
    except OSError:
        pass  # there already, or no folder: SQLite reports the latter at first use


#: Longest user id the ``user_id`` column holds.
USER_ID_LENGTH = 255


def _column_user(user: str) -> str:
    """The ``user_id`` column's value for ``user``: the id itself, or for an
    id too long for the column, a SHA-256 of it (with a prefix no id of that
    length has). :meth:`SQLStore.index_sessions` checks each row's document,
    so two ids sharing a column value never see each other's sessions.
    """
    if len(user) <= USER_ID_LENGTH:
        return user
    digest = hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _device_user(document: cabc.Mapping[str, t.Any]) -> str | None:
    """The user the per-user index files ``document`` under, or ``None``."""
    return device_user(document.get(DEVICE_MEMBER))


def _row_user(document: cabc.Mapping[str, t.Any]) -> str | None:
    """The ``user_id`` column's value for a document about to be written."""
    user = _device_user(document)
    return None if user is None else _column_user(user)


def session_table(name: str = "session", metadata: sa.MetaData | None = None) -> sa.Table:
    """Return the session :class:`~sqlalchemy.schema.Table`: connect-pg-simple's
    ``sid``, ``sess`` and ``expire`` columns, plus a nullable, indexed
    ``user_id`` for the per-user index.

    Add it to your own metadata to have Alembic's autogenerate manage it.

    :param name: ``"table"`` or ``"schema.table"``.
    :param metadata: the metadata to add it to (a new one by default).
    """
    schema, table = split_table_name(name)
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column(
            "sid",
            # Binary collation on MariaDB/MySQL: ids differing in case are
            # different sessions (the default collation ignores case).
            sa.String().with_variant(
                mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            primary_key=True,
        ),
        sa.Column(
            "sess",
            sa.Text()
            .with_variant(postgresql.JSON(), "postgresql")
            .with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("expire", _timestamp(), nullable=False),
        sa.Column("user_id", sa.String(USER_ID_LENGTH), nullable=True),
        # connect-pg-simple's index name, for its default table "session".
        sa.Index(f"IDX_{table}_expire", "expire"),
        sa.Index(f"IDX_{table}_user_id", "user_id"),
        schema=schema,
        **_TABLE_OPTIONS,
    )


def revoked_table(name: str = "session", metadata: sa.MetaData | None = None) -> sa.Table:
    """Return the :class:`~sqlalchemy.schema.Table` of the per-user revoke
    records (:meth:`SQLStore.index_revoke`), ``<table>_revoked`` beside the
    session table: ``user_id`` (primary key, as the session table's
    ``user_id`` column holds it), ``revoked_at`` and ``expire`` (indexed;
    :meth:`SQLStore.prune` deletes expired rows).

    Add it to your own metadata, beside :func:`session_table`, to have
    Alembic's autogenerate manage it.

    :param name: the session table's ``"table"`` or ``"schema.table"``.
    :param metadata: the metadata to add it to (a new one by default).
    """
    schema, table = split_table_name(name)
    return sa.Table(
        f"{table}_revoked",
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("user_id", sa.String(USER_ID_LENGTH), primary_key=True),
        sa.Column("revoked_at", _timestamp(), nullable=False),
        sa.Column("expire", _timestamp(), nullable=False),
        sa.Index(f"IDX_{table}_revoked_expire", "expire"),
        schema=schema,
        **_TABLE_OPTIONS,
    )


#: Whatever the database's default: sessions hold any Unicode, and ids that
#: differ in case differ.
_TABLE_OPTIONS: dict[str, t.Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}


def _timestamp() -> sa.types.TypeEngine[datetime]:
    # Microseconds everywhere (PostgreSQL's and MariaDB's default is less).
    return (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=6), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    )


def _from_time(seconds: float) -> datetime:
    """A :func:`time.time` value as the naive UTC datetime the tables hold."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


class SQLStore(Store):
    """Keep sessions in a SQL table, through SQLAlchemy 2 (extra ``[sql]``).

    The table is connect-pg-simple's (``sid``, ``sess``, ``expire``), so an
    Express app with connect-pg-simple on the same PostgreSQL table shares
    sessions with this app in both directions. Times are stored in UTC
    whatever the database's time zone. A row whose ``expire`` has passed is
    a missing session; :meth:`prune` deletes such rows, and each process also
    prunes on its own, in a background thread, at random times averaging
    :data:`PRUNE_INTERVAL` seconds.

    Merges are atomic: a row lock (``SELECT ... FOR UPDATE``) on PostgreSQL
    and MariaDB/MySQL, a compare-and-swap ``UPDATE`` on SQLite.
    :meth:`get_and_touch` is one ``UPDATE ... RETURNING`` on PostgreSQL and
    SQLite, a ``SELECT`` then an ``UPDATE`` on MariaDB/MySQL.

    :param engine_or_url: a SQLAlchemy :class:`~sqlalchemy.engine.Engine` or
        URL (``postgresql+psycopg://...``, ``mariadb+pymysql://...``,
        ``sqlite:////abs/path.db``). An engine built here from a URL checks
        its connections before use; on SQLite it puts the database in WAL
        mode with ``synchronous=NORMAL``.
    :param table: ``"table"`` or ``"schema.table"``.
    :param ttl: lifetime, in seconds, of sessions whose cookie has no expiry.
    :param create_table: create the table (and indexes) if missing.
    :param prune_interval: mean seconds between automatic prunes; ``None``
        turns them off.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        engine_or_url: sa.Engine | str | sa.URL,
        *,
        table: str = "session",
        ttl: int = DEFAULT_TTL,
        create_table: bool = True,
        prune_interval: float | None = PRUNE_INTERVAL,
    ) -> None:
        #: Whether each merge sets PostgreSQL's lock timeout itself: not when
        #: the store made the engine with a libpq driver, whose connections
        #: get it once, at connect.
        self._lock_timeout_per_merge = True
        if isinstance(engine_or_url, sa.Engine):
            self.engine = engine_or_url
        else:
            self.engine = self._engine_from_url(sa.make_url(engine_or_url))
        self._engine = _without_parameters(self.engine)
        if self.engine.dialect.name == "sqlite":
            _private_sqlite_file(self.engine.url)
        self.ttl = ttl
        #: The session table.
        self.table = session_table(table)
        #: The per-user revoke records (``CONNECT_SESSION_USER_KEY``).
        self.revoked = revoked_table(table, self.table.metadata)
        self._dialect = self.engine.dialect.name
        self._autocommit = self._dialect in ("postgresql", "sqlite")
        self._prune_interval = prune_interval
        self._prune_lock = threading.Lock()
        self._create_lock = self._new_lock()
        self._next_prune = self._prune_due(time.monotonic())
        self._pid = os.getpid()
        #: Whether the table has the ``user_id`` column (a table that
        #: connect-pg-simple created has not); known after first use.
        self._user_column = True
        #: Whether the revoke records' table exists; known after first use.
        self._revoked_table = True
        self._build_statements()
        self._create = create_table
        # Checked (and created) on first use, not here: init_app never needs
        # the database up, and a database that was down at start is picked
        # up later.
        self._schema_unchecked = True

    def _engine_from_url(self, url: sa.URL) -> sa.Engine:
        """The engine this store makes for ``url``: connections checked
        before use (a restarted database is picked up without restarting
        the app), timeouts on connecting and on waiting for a row lock,
        SQLite in WAL mode.
        """
        connect_args: dict[str, t.Any] = {}
        driver = url.get_driver_name()
        if driver in _LIBPQ_DRIVERS:
            if "options" not in url.query:
                connect_args["options"] = f"-c lock_timeout={LOCK_TIMEOUT}s"
                self._lock_timeout_per_merge = False
            if "connect_timeout" not in url.query:
                # A database that does not answer fails the request
                # instead of holding the worker (libpq waits forever).
                connect_args["connect_timeout"] = CONNECT_TIMEOUT
        elif driver == "asyncpg" and "timeout" not in url.query:
            connect_args["timeout"] = CONNECT_TIMEOUT
        engine = self._create_engine(
            url, pool_pre_ping=True, connect_args=connect_args, hide_parameters=True
        )
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_wal)
        return engine

    def _create_engine(self, url: sa.URL, **options: t.Any) -> sa.Engine:
        return sa.create_engine(url, **options)

    def _new_lock(self) -> t.ContextManager[t.Any]:
        """A lock for the first use's schema check."""
        return threading.Lock()

    def _pause(self, seconds: float) -> None:
        """Wait before trying again."""
        time.sleep(seconds)

    def _start_background_prune(self) -> None:
        """Run :meth:`_background_prune` without making the caller wait."""
        threading.Thread(target=self._background_prune, name="session-prune", daemon=True).start()

    def __repr__(self) -> str:
        url = redact_url(self.engine.url.render_as_string(hide_password=True))
        return f"{type(self).__name__}({url!r}, table={self.table.fullname!r})"

    # -- schema ------------------------------------------------------------

    def create_table(self) -> None:
        """Create the table, the revoke records' table
        (:func:`revoked_table`) and their indexes if they are missing.

        Safe while other processes do the same, as the workers of a first
        deploy do (see :meth:`_despite_other_creators`).
        """
        self._despite_other_creators(self._create_table)

    def _create_table(self) -> None:
        # checkfirst: an attempt after a lost race finds the winner's table.
        self.table.metadata.create_all(self._engine, checkfirst=True)

    def _check_schema(self) -> None:
        """Create the tables if asked to, and find out whether the session
        table has the ``user_id`` column (without it, as in connect-pg-simple's
        own table, the statements leave it out and the per-user index is
        unavailable) and whether the revoke records' table exists.
        """
        self._despite_other_creators(self._inspect_schema)
        self._schema_unchecked = False

    def _inspect_schema(self) -> None:
        if self._create:
            self._create_table()
        inspector = sa.inspect(self._engine)
        columns = inspector.get_columns(self.table.name, schema=self.table.schema)
        if not any(column["name"] == "user_id" for column in columns):
            self._user_column = False
            self._build_statements()
        self._revoked_table = inspector.has_table(self.revoked.name, schema=self.revoked.schema)

    def _despite_other_creators(self, operation: cabc.Callable[[], None]) -> None:
        """Run ``operation``, again (up to :data:`CREATE_ATTEMPTS` times, after
        a growing random pause) while it fails because another process is
        creating the table at that moment (:func:`_is_creation_race`).

        Each attempt is a transaction that the failure rolled back whole, and
        checks before it creates, so the next one finds the table the other
        process made, or gets the lock it waited for. Any other failure, or
        the last one, is raised as a ``RuntimeError`` naming the table and
        the database's error code (PostgreSQL's messages do not show their
        SQLSTATE), with the driver's exception chained.
        """
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                operation()
                return
            except sa.exc.DBAPIError as exc:
                code = error_code(exc)
                if attempt < CREATE_ATTEMPTS and _is_creation_race(exc):
                    logger.debug(
                        "SQLStore: table %s is being created by another process"
                        " (database error %s); trying again",
                        self.table.fullname,
                        code,
                    )
                    self._pause(random.uniform(0.02, 0.04) * attempt)
                    continue
                raise RuntimeError(
                    f"SQLStore could not create or inspect table {self.table.fullname!r}"
                    f" (database error {code}): {describe(exc.orig or exc)}"
                ) from exc

    @contextlib.contextmanager
    def _connect(self, transaction: bool = False) -> cabc.Iterator[sa.Connection]:
        """A connection, after creating the table on first use; starts a
        background prune when one is due.

        With ``transaction``, its statements run in one transaction that
        commits on exit. Without, each statement is on its own: autocommit
        where switching to it costs no round trip (PostgreSQL, SQLite), so a
        one-statement operation is one round trip, not three.
        """
        self._maybe_prune()
        with _scrubbed():
            if self._schema_unchecked:
                with self._create_lock:
                    if self._schema_unchecked:
                        self._check_schema()
            if transaction or not self._autocommit:
                with self._engine.begin() as conn:
                    yield conn
            else:
                with self._engine.connect() as conn:
                    yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def ddl(self) -> str:
        """Return the ``CREATE TABLE`` and ``CREATE INDEX`` statements for this
        store's database, for migration tools.
        """
        statements: list[sa.schema.ExecutableDDLElement] = []
        for table in (self.table, self.revoked):
            statements.append(sa.schema.CreateTable(table))
            statements += [
                sa.schema.CreateIndex(index)
                for index in sorted(table.indexes, key=lambda index: str(index.name))
            ]
        return "".join(
            f"{str(statement.compile(dialect=self.engine.dialect)).strip()};\n\n"
            for statement in statements
        )

    # -- statements, chosen once per dialect ---------------------------------

    def _build_statements(self) -> None:
        c = self.table.c
        pg = self._dialect == "postgresql"
        # sess as text in and out: json is only PostgreSQL's column type.
        self._sess_out: sa.ColumnElement[str] = (
            sa.cast(c.sess, sa.Text) if pg else t.cast("sa.ColumnElement[str]", c.sess)
        )
        sess_in = sa.bindparam("p_sess", type_=sa.Text)
        self._sess_in: sa.ColumnElement[t.Any] = (
            sa.cast(sess_in, postgresql.JSON) if pg else sess_in
        )
        live = sa.and_(c.sid == sa.bindparam("p_sid"), c.expire > sa.bindparam("now"))
        self._live = live
        self._select = sa.select(self._sess_out).where(live)
        self._select_for_update = self._select.with_for_update()
        # user_id mirrors the document's _device user (the per-user index):
        # every statement that writes sess writes it too.
        user = sa.bindparam("p_user", type_=c.user_id.type)
        # (Extra parameters such as p_user are ignored by statements
        # without the column.)
        users: dict[str, t.Any] = {"user_id": user} if self._user_column else {}
        values = {
            "sid": sa.bindparam("p_sid"),
            "sess": self._sess_in,
            "expire": sa.bindparam("p_expire"),
            **users,
        }
        self._insert = sa.insert(self.table).values(values)
        self._upsert: sa.Executable
        if pg or self._dialect == "sqlite":
            insert = (postgresql.insert if pg else sqlite.insert)(self.table).values(values)
            self._upsert = insert.on_conflict_do_update(
                index_elements=[c.sid],
                set_={
                    "sess": insert.excluded.sess,
                    "expire": insert.excluded.expire,
                    **({"user_id": insert.excluded.user_id} if self._user_column else {}),
                },
            )
        elif self._dialect in ("mysql", "mariadb"):
            mysql_insert = mysql.insert(self.table).values(values)
            self._upsert = mysql_insert.on_duplicate_key_update(
                sess=mysql_insert.inserted.sess,
                expire=mysql_insert.inserted.expire,
                **({"user_id": mysql_insert.inserted.user_id} if self._user_column else {}),
            )
        else:
            self._upsert = None  # type: ignore[assignment]
        self._delete = sa.delete(self.table).where(c.sid == sa.bindparam("p_sid"))
        self._delete_live = sa.delete(self.table).where(live)
        self._extend = sa.update(self.table).where(live).values(expire=sa.bindparam("p_expire"))
        self._rewrite = (
            sa.update(self.table)
            .where(live)
            .values(sess=self._sess_in, expire=sa.bindparam("p_expire"), **users)
        )
        self._swap = (
            sa.update(self.table)
            .where(live, self._sess_out == sa.bindparam("old"))
            .values(sess=self._sess_in, expire=sa.bindparam("p_expire"), **users)
        )
        # user_id is compared through coalesce(), which its index cannot
        # serve: a plan cached while the table was small (PostgreSQL's
        # generic plans) must never scan all of a user's rows to find one.
        self._index_remove = (
            sa.update(self.table)
            .where(
                c.sid == sa.bindparam("p_sid"),
                sa.func.coalesce(c.user_id, "") == sa.bindparam("p_user", type_=c.user_id.type),
            )
            .values(user_id=None)
        )
        self._index_sessions = sa.select(c.sid, self._sess_out).where(
            c.user_id == sa.bindparam("p_user"), c.expire > sa.bindparam("now")
        )
        self._get_and_extend = None
        lifetime = self._touched_lifetime()
        if lifetime is not None:
            extended = self._plus_seconds(sa.bindparam("now", type_=c.expire.type), lifetime)
            # PostgreSQL's json operators fail on a document holding a
            # \u0000 escape or a surrogate's (a lone one is stored escaped),
            # SQLite's on one holding NaN or Infinity (which an older
            # version wrote, as Python's json does): such a row keeps its
            # expiry here and is extended from Python if it decodes there (a
            # second statement, for that rare row).
            unreadable: sa.ColumnElement[bool] = (
                self._sess_out.op("~*")(r"\\u(0000|d[89a-f])")
                if pg
                else sa.func.json_valid(self._sess_out) == 0
            )
            self._get_and_extend = (
                sa.update(self.table)
                .where(live)
                .values(
                    expire=sa.case((unreadable, c.expire), *self._not_a_session(), else_=extended)
                )
                .returning(self._sess_out, unreadable)
            )
        r = self.revoked.c
        self._revoked_update = (
            sa.update(self.revoked)
            .where(r.user_id == sa.bindparam("p_user"))
            .values(revoked_at=sa.bindparam("p_at"), expire=sa.bindparam("p_expire"))
        )
        self._revoked_insert = sa.insert(self.revoked).values(
            user_id=sa.bindparam("p_user"),
            revoked_at=sa.bindparam("p_at"),
            expire=sa.bindparam("p_expire"),
        )
        self._revoked_select = sa.select(r.revoked_at).where(
            r.user_id == sa.bindparam("p_user"), r.expire > sa.bindparam("now")
        )
        self._all = sa.select(c.sid, self._sess_out).where(c.expire > sa.bindparam("now"))
        self._count = (
            sa.select(sa.func.count())
            .select_from(self.table)
            .where(c.expire > sa.bindparam("now"))
        )
        self._clear = sa.delete(self.table)
        self._clear_live = sa.delete(self.table).where(c.expire > sa.bindparam("now"))
        self._prune = self._prune_statement()

    def _not_a_session(self) -> list[tuple[sa.ColumnElement[bool], sa.ColumnElement[t.Any]]]:
        """CASE branches keeping the expiry of a row whose ``sess`` is not a
        session document (not an object with an object ``cookie``): a
        corrupt entry is left as it is, its lifetime not extended (docs/behaviour.rst,
        "Errors").
        Separate branches, evaluated in order, so SQLite's ``json_type``
        never sees text that is not JSON.
        """
        c = self.table.c
        if self._dialect == "postgresql":
            cookie = sa.func.json_typeof(c.sess.op("->")(sa.literal("cookie")))
            return [
                (sa.func.json_typeof(c.sess) != "object", c.expire),
                (sa.or_(cookie.is_(None), cookie != "object"), c.expire),
            ]
        if self._dialect == "sqlite":
            cookie = sa.func.json_type(c.sess, "$.cookie")
            return [
                (sa.func.json_valid(c.sess) == 0, c.expire),
                (sa.func.json_type(c.sess) != "object", c.expire),
                (sa.or_(cookie.is_(None), cookie != "object"), c.expire),
            ]
        return []

    def _touched_lifetime(self) -> sa.ColumnElement[t.Any] | None:
        """SQL for :func:`touched_ttl` of the row's document: its cookie's
        ``originalMaxAge`` in whole seconds rounded up, else ``:ttl``.
        ``None`` where the database cannot update and return in one statement.
        """
        ttl = sa.bindparam("ttl", type_=sa.Integer)
        if self._dialect == "postgresql":
            sess = self.table.c.sess
            member = sess.op("->")(sa.literal("cookie")).op("->")(sa.literal("originalMaxAge"))
            millis = sa.cast(
                sess.op("->")(sa.literal("cookie")).op("->>")(sa.literal("originalMaxAge")),
                sa.Numeric,
            )
            # -> on anything but an object is NULL, so a corrupt document
            # gets the default rather than an error (it is reported on decode).
            return sa.case(
                (
                    sa.and_(
                        sa.func.json_typeof(member) == "number",
                        sa.func.abs(millis) <= MAX_LIFETIME * 1000,
                    ),
                    sa.func.ceil(millis / 1000),
                ),
                else_=ttl,
            )
        if self._dialect == "sqlite":
            sess = self.table.c.sess
            path = "$.cookie.originalMaxAge"
            stored = sa.func.json_extract(sess, path)
            seconds = stored / 1000.0
            whole = sa.cast(seconds, sa.Integer)
            # SQLite evaluates CASE branches in order: json_type never sees
            # text that is not JSON.
            return sa.case(
                (sa.func.json_valid(sess) == 0, ttl),
                (
                    sa.and_(
                        sa.func.json_type(sess, path).in_(("integer", "real")),
                        sa.func.abs(stored) <= MAX_LIFETIME * 1000,
                    ),
                    whole + sa.case((seconds > whole, 1), else_=0),
                ),
                else_=ttl,
            )
        return None

    def _plus_seconds(
        self, when: sa.ColumnElement[t.Any], seconds: sa.ColumnElement[t.Any]
    ) -> sa.ColumnElement[t.Any]:
        if self._dialect == "postgresql":
            return when + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
        # SQLite keeps SQLAlchemy's "YYYY-MM-DD HH:MM:SS.ffffff" text;
        # strftime's %f has milliseconds, padded back to six digits.
        return sa.func.strftime(
            "%Y-%m-%d %H:%M:%f", sa.cast(when, sa.Text), sa.func.printf("%+d seconds", seconds)
        ).op("||")("000")

    def _prune_statement(self) -> sa.Executable:
        c = self.table.c
        dead = c.expire <= sa.bindparam("now")
        if self._dialect in ("mysql", "mariadb"):
            # DELETE ... LIMIT as text: SQLAlchemy's own (mysql_limit on a
            # delete) only came in a later 2.0 release than our floor.
            name = self.engine.dialect.identifier_preparer.format_table(self.table)
            # text() would read ":name" in a quoted table name as a parameter.
            name = name.replace(":", "\\:")
            return sa.text(f"DELETE FROM {name} WHERE expire <= :now LIMIT {PRUNE_BATCH}")
        batch = sa.select(c.sid).where(dead).limit(PRUNE_BATCH)
        if self._dialect == "postgresql":
            # Rows a merge holds are left for the next prune.
            batch = batch.with_for_update(skip_locked=True)
        return sa.delete(self.table).where(c.sid.in_(batch.scalar_subquery()))

    # -- the store interface --------------------------------------------------

    def get(self, sid: str) -> Document | None:
        with self._connect() as conn:
            text = conn.execute(self._select, {"p_sid": sid, "now": _utcnow()}).scalar()
        return None if text is None else decode(text)

    def set(self, sid: str, session: Document) -> None:
        ttl = document_ttl(session, self.ttl)
        with self._connect(transaction=self._upsert is None) as conn:
            if ttl <= 0:
                conn.execute(self._delete, {"p_sid": sid})
            else:
                now = _utcnow()
                self._upsert_row(conn, sid, session, now + timedelta(seconds=ttl))

    def _text(self, document: cabc.Mapping[str, t.Any]) -> str:
        """The ``sess`` of a document; PostgreSQL and MariaDB take UTF-8 only,
        so lone surrogates are escapes.

        :raises SessionTooLarge: it is longer than :attr:`max_size`.
        """
        return self.encoded(document).decode("utf-8")

    def _upsert_row(
        self, conn: sa.Connection, sid: str, session: Document, expire: datetime
    ) -> None:
        params = {
            "p_sid": sid,
            "p_sess": self._text(session),
            "p_expire": expire,
            "p_user": _row_user(session),
        }
        if self._upsert is not None:
            conn.execute(self._upsert, params)
            return
        # Another dialect: update, else insert.
        if conn.execute(self._rewrite, {**params, "now": datetime.min}).rowcount == 0:
            conn.execute(self._insert, params)

    def destroy(self, sid: str) -> bool:
        """Delete the row; whether it was a live session. One statement for
        a live row; an expired leftover costs a second.
        """
        with self._connect() as conn:
            if conn.execute(self._delete_live, {"p_sid": sid, "now": _utcnow()}).rowcount:
                return True
            conn.execute(self._delete, {"p_sid": sid})
        return False

    def touch(self, sid: str, session: Document) -> None:
        self._extend_to(sid, _utcnow(), document_ttl(session, self.ttl))

    def get_and_touch(self, sid: str) -> Document | None:
        now = _utcnow()
        if self._get_and_extend is not None:
            with self._connect() as conn:
                params = {"p_sid": sid, "now": now, "ttl": self.ttl}
                row = conn.execute(self._get_and_extend, params).first()
            if row is None:
                return None
            document = decode(row[0])
            if row[1]:
                self._extend_to(sid, now, touched_ttl(document, self.ttl))
            return document
        # MariaDB/MySQL have no UPDATE ... RETURNING: read, then extend.
        return self._retry_deadlocks(lambda: self._read_and_extend(sid, now))

    def _read_and_extend(self, sid: str, now: datetime) -> Document | None:
        with self._connect(transaction=True) as conn:
            text = conn.execute(self._select, {"p_sid": sid, "now": now}).scalar()
            if text is None:
                return None
            document = decode(text)
            self._extend_to(sid, now, touched_ttl(document, self.ttl), conn)
        return document

    def _retry_deadlocks(self, operation: cabc.Callable[[], _T]) -> _T:
        """Run a transaction, again (after a short random pause) when the
        database chose it as a deadlock victim, as InnoDB and PostgreSQL ask:
        the transaction was rolled back whole, so running it again is safe.
        """
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                return operation()
            except SQLStoreError as exc:
                if attempt == DEADLOCK_ATTEMPTS - 1 or not exc.deadlock:
                    raise
            self._pause(random.uniform(0, 0.01 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _extend_to(
        self, sid: str, now: datetime, ttl: float, conn: sa.Connection | None = None
    ) -> None:
        """Set the expiry of the live row ``sid`` to ``ttl`` seconds from
        ``now`` (delete it if ``ttl`` is not positive).
        """
        if conn is None:
            with self._connect() as conn:
                self._extend_to(sid, now, ttl, conn)
            return
        if ttl <= 0:
            conn.execute(self._delete, {"p_sid": sid})
        else:
            params = {"p_sid": sid, "now": now, "p_expire": now + timedelta(seconds=ttl)}
            conn.execute(self._extend, params)

    def merge(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: cabc.Iterable[str]
    ) -> bool:
        removed = list(removed)
        if self._dialect == "sqlite":
            return self._merge_by_swap(sid, changes, removed)
        return self._retry_deadlocks(lambda: self._merge_locked(sid, changes, removed))

    def _merge_locked(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: list[str]
    ) -> bool:
        # PostgreSQL and MariaDB/MySQL: lock the row, merge, write, commit.
        with self._connect(transaction=True) as conn:
            if self._dialect == "postgresql" and self._lock_timeout_per_merge:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}s'")
            now = _utcnow()
            text = conn.execute(self._select_for_update, {"p_sid": sid, "now": now}).scalar()
            if text is None:
                return False
            document = apply_changes(decode(text), changes, removed)
            self._write_merged(conn, sid, document, now, self._rewrite, {})
        return True

    def _merge_by_swap(
        self, sid: str, changes: cabc.Mapping[str, t.Any], removed: list[str]
    ) -> bool:
        # SQLite: write only if the row still holds what was read; on a lost
        # race read again. Each statement is atomic on its own, whatever
        # transaction mode the caller's engine uses.
        for _ in range(CAS_ATTEMPTS):
            now = _utcnow()
            with self._connect() as conn:
                old = conn.execute(self._select, {"p_sid": sid, "now": now}).scalar()
            if old is None:
                return False
            document = apply_changes(decode(old), changes, removed)
            with self._connect() as conn:
                if self._write_merged(conn, sid, document, now, self._swap, {"old": old}):
                    return True
        raise RuntimeError(f"merge of a session lost {CAS_ATTEMPTS} races in a row")

    def _write_merged(
        self,
        conn: sa.Connection,
        sid: str,
        document: Document,
        now: datetime,
        statement: sa.Executable,
        extra: dict[str, t.Any],
    ) -> bool:
        """Write a merged document with ``statement`` (or delete it if its
        cookie has expired); whether a row matched.
        """
        ttl = document_ttl(document, self.ttl)
        if ttl <= 0:
            conn.execute(self._delete, {"p_sid": sid})
            return True
        params = {
            "p_sid": sid,
            "now": now,
            "p_sess": self._text(document),
            "p_expire": now + timedelta(seconds=ttl),
            "p_user": _row_user(document),
            **extra,
        }
        return bool(conn.execute(statement, params).rowcount)

    # -- the per-user index: the user_id column ------------------------------

    def index_add(self, user: str, sid: str, until: float) -> None:
        """Nothing to do: the write that follows stores the document's
        ``_device`` user in ``user_id`` (setting it now would file the row
        under ``user`` before its document says so, and wrongly if that write
        fails). The row's own expiry is the entry's.

        :raises RuntimeError: the table has no ``user_id`` column.
        """
        if self._schema_unchecked:
            with self._connect():  # looks at the table once
                pass
        self._require_user_column()

    def index_remove(self, user: str, sid: str) -> None:
        """Clear the row's ``user_id`` if it still names ``user``."""
        with self._connect() as conn:
            self._require_user_column()
            conn.execute(self._index_remove, {"p_sid": sid, "p_user": _column_user(user)})

    def index_sessions(self, user: str) -> dict[str, Document]:
        """The live rows of ``user``: one indexed ``SELECT``. Expired rows
        are invisible here and go with :meth:`prune`, so the index never
        holds a dead entry for long.
        """
        with self._connect() as conn:
            self._require_user_column()
            params = {"p_user": _column_user(user), "now": _utcnow()}
            rows = conn.execute(self._index_sessions, params).all()
        documents = decode_entries({sid: text for sid, text in rows})
        # A hashed column value may be shared (in theory): the document says.
        return {sid: doc for sid, doc in documents.items() if _device_user(doc) == user}

    def index_revoke(self, user: str, at: float, until: float) -> None:
        """Update ``user``'s row of the revoke records, or insert it."""
        params = {
            "p_user": _column_user(user),
            "p_at": _from_time(at),
            "p_expire": _from_time(until),
        }
        for attempt in range(2):
            with self._connect() as conn:
                self._require_revoked_table()
                if conn.execute(self._revoked_update, params).rowcount:
                    return
            try:
                with self._connect() as conn:
                    conn.execute(self._revoked_insert, params)
                return
            except sa.exc.IntegrityError:
                # Another revoke of this user inserted it first: update it.
                if attempt:
                    raise

    def index_revoked(self, user: str) -> float | None:
        with self._connect() as conn:
            self._require_revoked_table()
            params = {"p_user": _column_user(user), "now": _utcnow()}
            at = conn.execute(self._revoked_select, params).scalar()
        return None if at is None else at.replace(tzinfo=UTC).timestamp()

    def _require_revoked_table(self) -> None:
        if not self._revoked_table:
            raise RuntimeError(
                f"table {self.revoked.fullname!r} is missing, which CONNECT_SESSION_USER_KEY"
                " needs: create it (see flask session create-table --sql)"
            )

    def _require_user_column(self) -> None:
        if not self._user_column:
            raise RuntimeError(
                f"table {self.table.fullname!r} has no user_id column, which"
                " CONNECT_SESSION_USER_KEY needs: add it (see flask session create-table --sql)"
            )

    def all(self) -> dict[str, Document]:
        with self._connect() as conn:
            rows = conn.execute(self._all, {"now": _utcnow()}).all()
        return decode_entries({sid: text for sid, text in rows})

    def length(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(self._count, {"now": _utcnow()}).scalar_one())

    def clear(self) -> int:
        """Delete every row, the revoke records' too; return how many live
        sessions went.
        """
        with self._connect(transaction=True) as conn:
            # Live rows first, to count them; then the expired ones.
            removed = conn.execute(self._clear_live, {"now": _utcnow()}).rowcount
            conn.execute(self._clear)
            if self._revoked_table:
                conn.execute(sa.delete(self.revoked))
        return int(removed)

    def prune(self) -> int:
        """Delete expired rows, :data:`PRUNE_BATCH` at a time (one short
        transaction each), and expired revoke records; return how many
        sessions went.
        """
        now = _utcnow()
        removed = 0
        with self._connect() as conn:
            if self._revoked_table:
                conn.execute(sa.delete(self.revoked).where(self.revoked.c.expire <= now))
        while True:
            with self._connect() as conn:
                count = conn.execute(self._prune, {"now": now}).rowcount
            removed += count
            if count < PRUNE_BATCH:
                return removed

    # -- automatic pruning -------------------------------------------------------

    def _prune_due(self, now: float) -> float:
        if self._prune_interval is None:
            return float("inf")
        return now + self._prune_interval * (0.5 + random.random())

    def _maybe_prune(self) -> None:
        """Start a background prune when one is due. Checked on each store
        call rather than by a timer thread, so it works in forked workers.
        """
        now = time.monotonic()
        if self._pid != os.getpid():
            # A forked worker (gunicorn --preload): its own schedule, so the
            # workers do not all prune at once, and no connection of the
            # parent's pool (SQLAlchemy's advice for forks).
            self._pid = os.getpid()
            self._next_prune = self._prune_due(now)
            self._prune_lock = threading.Lock()
            self.engine.dispose(close=False)
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        self._next_prune = self._prune_due(now)
        self._start_background_prune()

    def _background_prune(self) -> None:
        try:
            removed = self.prune()
        except Exception:
            # Never the request's problem; the next prune will try again.
            logger.exception("SQLStore: pruning expired sessions failed")
        else:
            logger.debug("SQLStore: pruned %d expired session(s)", removed)
        finally:
            self._prune_lock.release()
