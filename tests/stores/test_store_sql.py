"""SQLStore on real PostgreSQL, MariaDB and SQLite: what the contract suite
does not cover (URLs and config, time zones, expiry and pruning, the table
layout, outages and lock timeouts, the create-table command).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import typing as t
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import SQLStore
from flask_connect_session import StoreError
from flask_connect_session.errors import CorruptDocument
from flask_connect_session.stores import sql as sql_module
from flask_connect_session.stores.sql import SQLStoreError

import sql_raw
from conftest import SECRET
from conftest import add_views
from server_fixtures import MARIADB_TIMEZONE
from server_fixtures import PG_TIMEZONE
from server_fixtures import MariaDBServer
from server_fixtures import PostgresServer
from store_harness import doc

pytestmark = pytest.mark.slow

DATABASES = ["postgresql", "mariadb", "sqlite"]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest) -> str:
    """A URL of each database in turn, emptied."""
    return t.cast(str, request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def store(url: str) -> t.Iterator[SQLStore]:
    store = SQLStore(url)
    yield store
    store.engine.dispose()


def make_app(tmp_path: Path, **config: t.Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY=SECRET, TESTING=True, **config)
    ConnectSession(app)
    add_views(app)
    return app


# -- configuration --------------------------------------------------------------


def test_url_builds_a_sql_store_whose_table_is_configured(postgresql_url: str) -> None:
    with sa.create_engine(postgresql_url).begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA app")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        CONNECT_SESSION_STORE=postgresql_url,
        CONNECT_SESSION_SQL_TABLE="app.web_sessions",
        CONNECT_SESSION_TTL=600,
    )
    ext = ConnectSession(app)
    store = ext.store
    assert isinstance(store, SQLStore)
    assert store.table.fullname == "app.web_sessions" and store.ttl == 600
    store.set("s1", doc(None, a=1))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sid FROM app.web_sessions").scalar() == "s1"
    assert 599 <= t.cast(float, sql_raw.remaining(store, "s1")) <= 600


def test_relative_sqlite_path_is_in_the_instance_folder(tmp_path: Path) -> None:
    app = make_app(tmp_path, CONNECT_SESSION_STORE="sqlite:///sessions.db")
    client = app.test_client()
    assert client.post("/set", json={"a": 1}).status_code == 200
    assert (tmp_path / "instance" / "sessions.db").is_file()
    assert client.get("/get").json["data"] == {"a": 1}


def test_absolute_sqlite_path(tmp_path: Path) -> None:
    app = make_app(tmp_path, CONNECT_SESSION_STORE=f"sqlite:///{tmp_path / 'abs.db'}")
    assert app.test_client().post("/set", json={"a": 1}).status_code == 200
    assert (tmp_path / "abs.db").is_file()


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://ann:s3cret@db:notaport/app",
        "postgresql+nosuchdriver://ann:s3cret@db/app",
        "mysql+nosuchdriver://ann:s3cret@db/app",
        "mariadbx+pymysql://ann:s3cret@db/app",
    ],
)
def test_malformed_url_names_the_key_and_hides_the_password(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE") as info:
        make_app(tmp_path, CONNECT_SESSION_STORE=value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("table", ["", "a.b.c", ".x", "x.", 5])
def test_bad_table_name_names_the_key(tmp_path: Path, table: object) -> None:
    with pytest.raises(ValueError, match="CONNECT_SESSION_SQL_TABLE"):
        make_app(tmp_path, CONNECT_SESSION_SQL_TABLE=table)


def test_init_app_needs_no_database(tmp_path: Path) -> None:
    """The table is created on first use: init_app works with the database
    down, and the store works once it is up.
    """
    app = make_app(tmp_path, CONNECT_SESSION_STORE="postgresql+psycopg://x@127.0.0.1:1/none")
    assert isinstance(app.extensions["connect_session"].store, SQLStore)


def test_engine_is_used_as_is(tmp_path: Path, sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    app = make_app(tmp_path, CONNECT_SESSION_STORE=engine, CONNECT_SESSION_SQL_TABLE="s")
    store = app.extensions["connect_session"].store
    assert isinstance(store, SQLStore) and store.engine is engine
    assert app.test_client().post("/set", json={"a": 1}).status_code == 200
    assert sa.inspect(engine).has_table("s")


def test_flask_sqlalchemy_object_gives_its_engine(tmp_path: Path, postgresql_url: str) -> None:
    from flask_sqlalchemy import SQLAlchemy

    db = SQLAlchemy()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET, SQLALCHEMY_DATABASE_URI=postgresql_url, CONNECT_SESSION_STORE=db
    )
    db.init_app(app)
    ConnectSession(app)
    add_views(app)
    store = app.extensions["connect_session"].store
    with app.app_context():
        assert isinstance(store, SQLStore) and store.engine is db.engine
    client = app.test_client()
    client.post("/set", json={"a": 1})
    assert client.get("/get").json["data"] == {"a": 1}


def test_flask_sqlalchemy_object_without_init_app_is_a_value_error(tmp_path: Path) -> None:
    from flask_sqlalchemy import SQLAlchemy

    with pytest.raises(ValueError, match="CONNECT_SESSION_STORE.*init_app"):
        make_app(tmp_path, CONNECT_SESSION_STORE=SQLAlchemy())


def test_repr_hides_the_password() -> None:
    store = SQLStore("postgresql+psycopg://ann:s3cret@127.0.0.1:1/app")
    assert "s3cret" not in repr(store) and "127.0.0.1" in repr(store)


# -- table layout ----------------------------------------------------------------


def test_table_is_connect_pg_simples_plus_user_id(store: SQLStore) -> None:
    store.set("s1", doc(None, a=1))
    inspector = sa.inspect(store.engine)
    columns = {column["name"]: column for column in inspector.get_columns("session")}
    assert set(columns) == {"sid", "sess", "expire", "user_id"}
    assert inspector.get_pk_constraint("session")["constrained_columns"] == ["sid"]
    assert columns["user_id"]["nullable"] and not columns["sess"]["nullable"]
    indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("session")}
    assert indexes["IDX_session_expire"] == ["expire"]
    assert indexes["IDX_session_user_id"] == ["user_id"]
    if store.engine.dialect.name == "postgresql":
        assert str(columns["sess"]["type"]) == "JSON"


def test_sids_differing_in_case_are_different_sessions(store: SQLStore) -> None:
    store.set("abc", doc(None, n=1))
    store.set("ABC", doc(None, n=2))
    assert store.get("abc") == doc(None, n=1)
    assert store.get("ABC") == doc(None, n=2)


def test_works_on_connect_pg_simples_own_table(postgresql_url: str) -> None:
    """The table as connect-pg-simple's table.sql creates it (no user_id)."""
    engine = sa.create_engine(postgresql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            'CREATE TABLE "session" ("sid" varchar NOT NULL COLLATE "default",'
            ' "sess" json NOT NULL, "expire" timestamp(6) NOT NULL)'
        )
        conn.exec_driver_sql(
            'ALTER TABLE "session" ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid")'
            " NOT DEFERRABLE INITIALLY IMMEDIATE"
        )
        conn.exec_driver_sql('CREATE INDEX "IDX_session_expire" ON "session" ("expire")')
    store = SQLStore(engine)
    document = doc(60, a=1)
    store.set("s1", document)
    assert store.get_and_touch("s1") == document
    assert store.merge("s1", {"b": 2}, [])
    assert store.get("s1") == document | {"b": 2}
    assert store.length() == 1 and store.prune() == 0
    # The per-user index needs the user_id column: a clear error, not a
    # wrong answer.
    with pytest.raises(RuntimeError, match="no user_id column"):
        store.index_sessions("42")
    with pytest.raises(RuntimeError, match="no user_id column"):
        store.index_add("42", "s1", 0)
    engine.dispose()


@pytest.mark.parametrize("database", DATABASES)
def test_ddl_is_the_databases_own(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    url = request.getfixturevalue(f"{database}_url")
    app = make_app(tmp_path, CONNECT_SESSION_STORE=url)
    result = app.test_cli_runner().invoke(args=["session", "create-table", "--sql"])
    assert result.exit_code == 0, result.output
    ddl = result.output
    assert "CREATE TABLE session" in ddl and "IDX_session_expire" in ddl
    assert {"postgresql": "sess JSON", "mariadb": "sess MEDIUMTEXT", "sqlite": "sess TEXT"}[
        database
    ] in ddl
    store = app.extensions["connect_session"].store
    assert not sa.inspect(store.engine).has_table("session")  # only printed
    result = app.test_cli_runner().invoke(args=["session", "create-table"])
    assert result.exit_code == 0, result.output
    assert sa.inspect(store.engine).has_table("session")


def test_create_table_on_another_store_is_a_clear_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    result = app.test_cli_runner().invoke(args=["session", "create-table"])
    assert result.exit_code == 1 and "only SQLStore" in result.output


# -- time zones -----------------------------------------------------------------


def test_expire_is_utc_on_a_postgresql_server_in_another_zone(
    postgresql_server: PostgresServer, postgresql_url: str
) -> None:
    store = SQLStore(postgresql_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW timezone").scalar() == PG_TIMEZONE
    store.set("s1", doc(None, a=1))
    found = sql_raw.row(store, "s1")
    assert found is not None
    expected = sql_raw.utcnow() + timedelta(seconds=store.ttl)
    assert abs((found[1] - expected).total_seconds()) < 5
    assert store.get("s1") == doc(None, a=1)


def test_expire_is_utc_on_a_mariadb_server_in_another_zone(
    mariadb_server: MariaDBServer, mariadb_url: str
) -> None:
    store = SQLStore(mariadb_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@time_zone").scalar() == MARIADB_TIMEZONE
    store.set("s1", doc(100, a=1))
    remaining = sql_raw.remaining(store, "s1")
    assert remaining is not None and 95 < remaining <= 101


# -- expiry and pruning -------------------------------------------------------------


def test_an_expired_row_is_missing_everywhere(store: SQLStore) -> None:
    sql_raw.plant(store, "old", b'{"cookie":{}}', ttl=-1)
    sql_raw.plant(store, "dead", b'{"cookie":{},"a":1}', ttl=-1)
    assert store.get("dead") is None
    assert store.get_and_touch("dead") is None
    assert store.merge("dead", {"b": 2}, []) is False
    store.touch("dead", doc(600))
    assert sql_raw.remaining(store, "dead") is None  # not brought back
    assert store.all() == {} and store.length() == 0
    assert store.prune() == 2
    assert sql_raw.row(store, "dead") is None


def test_prune_works_in_bounded_batches(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setattr(sql_module, "PRUNE_BATCH", 7)
    store = SQLStore(url)
    store.create_table()
    rows = [
        {
            "sid": f"s{n}",
            "sess": '{"cookie":{}}',
            "expire": sql_raw.utcnow() - timedelta(seconds=1),
        }
        for n in range(30)
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(store.table), rows)
    store.set("live", doc(None))
    statements: list[str] = []
    sa.event.listen(
        store.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    assert store.prune() == 30
    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
    # One for the expired revoke records, five batches of sessions.
    assert len(deletes) == 6 and sum("_revoked" in s for s in deletes) == 1
    assert store.length() == 1 and store.get("live") == doc(None)


def test_each_process_prunes_on_its_own_in_the_background(url: str) -> None:
    store = SQLStore(url, prune_interval=0.05)
    sql_raw.plant(store, "dead", b'{"cookie":{}}', ttl=-1)
    deadline = time.monotonic() + 10
    while sql_raw.row(store, "dead") is not None:
        assert time.monotonic() < deadline, "no automatic prune"
        store.get("other")
        time.sleep(0.05)


def test_a_failing_automatic_prune_never_fails_the_request(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLStore(sqlite_url, prune_interval=0.01)
    failed = threading.Event()

    def prune() -> int:
        failed.set()
        raise RuntimeError("prune broke")

    monkeypatch.setattr(store, "prune", prune)
    store.set("s1", doc(None, a=1))
    time.sleep(0.05)
    with caplog.at_level(logging.ERROR, "flask_connect_session"):
        assert store.get("s1") == doc(None, a=1)
        assert failed.wait(5)
        deadline = time.monotonic() + 5
        while "pruning expired sessions failed" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.01)


# -- odd documents ---------------------------------------------------------------


def test_get_and_touch_of_a_document_holding_nul(store: SQLStore) -> None:
    """PostgreSQL's json operators reject \\u0000: such a session is still
    read and extended to its originalMaxAge.
    """
    document = doc(10, text="a\x00b")
    document["cookie"]["originalMaxAge"] = 300_000
    store.set("s1", document)
    assert store.get_and_touch("s1") == document
    remaining = sql_raw.remaining(store, "s1")
    assert remaining is not None and 298 < remaining <= 300


@pytest.mark.parametrize("text", ["a\udcffb", "\ud83d", "\ude00x"])
def test_get_and_touch_of_a_document_holding_a_lone_surrogate(store: SQLStore, text: str) -> None:
    """A lone surrogate is stored as its \\uXXXX escape, which PostgreSQL's
    json operators reject ("invalid input syntax for type json"): such a
    session is still read and extended to its originalMaxAge, never a 500.
    """
    document = doc(10, text=text)
    document["cookie"]["originalMaxAge"] = 300_000
    store.set("s1", document)
    assert store.get_and_touch("s1") == document
    remaining = sql_raw.remaining(store, "s1")
    assert remaining is not None and 298 < remaining <= 300


def test_get_and_touch_of_a_document_holding_nan(store: SQLStore) -> None:
    """A document an older version wrote with Python's NaN (a text column
    holds it; PostgreSQL's json column refuses it) is read and extended to
    its originalMaxAge, though SQLite's json functions cannot parse it.
    """
    raw = b'{"v":NaN,"w":Infinity,"cookie":{"originalMaxAge":300000,"expires":null}}'
    if store.engine.dialect.name == "postgresql":
        # Its json column refuses the document, so there is none to read.
        store.create_table()
        sess = sa.cast(sa.literal(raw.decode()), store.table.c.sess.type)
        with pytest.raises(sa.exc.DBAPIError, match="json"), store.engine.begin() as conn:
            conn.execute(sa.insert(store.table).values(sid="s1", sess=sess, expire=sa.func.now()))
        return
    sql_raw.plant(store, "s1", raw, ttl=10)
    document = store.get_and_touch("s1")
    assert document is not None and math.isnan(document["v"]) and document["w"] == math.inf
    remaining = sql_raw.remaining(store, "s1")
    assert remaining is not None and 298 < remaining <= 300


def test_corrupt_row_is_left_in_place(store: SQLStore) -> None:
    sql_raw.plant(store, "bad", b"[1, 2]")
    with pytest.raises(CorruptDocument):
        store.get("bad")
    assert sql_raw.raw(store, "bad") == b"[1, 2]"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'{"a": 1}', b'{"cookie": 5}', b"not json", b'"text"'])
def test_reading_a_corrupt_row_does_not_extend_its_lifetime(store: SQLStore, raw: bytes) -> None:
    """get_and_touch of a row that is no session document leaves it exactly
    as it was, expiry included (a corrupt entry is neither overwritten nor
    deleted: docs/behaviour.rst, "Errors").
    """
    sql_raw.plant(store, "bad", raw, ttl=5)
    table = store.table

    def expiry() -> t.Any:
        with store.engine.connect() as conn:
            query = sa.select(table.c.expire).where(table.c.sid == "bad")
            return conn.execute(query).scalar_one()

    before = expiry()
    with pytest.raises(CorruptDocument):
        store.get_and_touch("bad")
    assert expiry() == before


# -- outages and lock timeouts -------------------------------------------------------


def test_postgresql_down_is_an_error_then_recovers(
    postgresql_server: PostgresServer,
    postgresql_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(tmp_path, CONNECT_SESSION_STORE=postgresql_url)
    client = app.test_client()
    assert client.post("/set", json={"a": 1}).status_code == 200
    postgresql_server.stop()
    try:
        app.testing = False  # a 500, not the exception
        with caplog.at_level(logging.ERROR):
            assert client.get("/get").status_code == 500
            assert client.post("/set", json={"a": 2}).status_code == 500
        errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert errors and all(isinstance(error, StoreError) for error in errors)
    finally:
        postgresql_server.start()
    assert client.get("/get").json["data"] == {"a": 1}  # nothing overwritten


def test_mariadb_down_is_an_error_then_recovers(
    mariadb_server: MariaDBServer, mariadb_url: str
) -> None:
    store = SQLStore(mariadb_url)
    store.set("s1", doc(None, a=1))
    mariadb_server.stop()
    try:
        with pytest.raises(SQLStoreError, match="2003"):
            store.get("s1")
    finally:
        mariadb_server.start()
    assert store.get("s1") == doc(None, a=1)


@pytest.mark.parametrize("given", ["url", "engine"])
def test_a_row_lock_held_too_long_is_an_error(
    monkeypatch: pytest.MonkeyPatch, postgresql_url: str, given: str
) -> None:
    """The store's own connections get the lock timeout at connect; on an
    engine of the app's, each merge sets it for its transaction only.
    """
    monkeypatch.setattr(sql_module, "LOCK_TIMEOUT", 1)
    store = SQLStore(postgresql_url if given == "url" else sa.create_engine(postgresql_url))
    store.set("s1", doc(None, a=1))
    with store.engine.connect() as holder:
        holder.exec_driver_sql("SELECT 1 FROM session WHERE sid = 's1' FOR UPDATE")
        with pytest.raises(SQLStoreError, match="lock"):
            store.merge("s1", {"b": 2}, [])
        holder.rollback()
    assert store.merge("s1", {"b": 2}, [])
    assert store.get("s1") == doc(None, a=1, b=2)
    if given == "engine":
        with store.engine.connect() as conn:  # the app's sessions keep theirs
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "0"


def test_mysql_url_on_mariadb(mariadb_server: MariaDBServer, mariadb_url: str) -> None:
    """``mysql+pymysql://`` (SQLAlchemy's MySQL dialect) works the same."""
    store = SQLStore(mariadb_server.url().replace("mariadb+", "mysql+", 1))
    assert store.engine.dialect.name == "mysql"
    store.set("s1", doc(None, a=1))
    assert store.get_and_touch("s1") == doc(None, a=1)
    assert store.merge("s1", {"b": 2}, ["a"])
    assert store.get("s1") == doc(None, b=2)
    sql_raw.plant(store, "dead", b'{"cookie":{}}', ttl=-1)
    assert store.prune() == 1 and store.length() == 1
    store.engine.dispose()


def _real_deadlock(url: str) -> sa.exc.OperationalError:
    """Make MariaDB pick a deadlock victim: two transactions each lock one
    row, then ask for the other's. Return the victim's error.
    """
    import threading

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE dl (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO dl VALUES (1), (2)")
    barrier = threading.Barrier(2)
    errors: list[sa.exc.OperationalError] = []

    def lock(first: int, second: int) -> None:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"SELECT id FROM dl WHERE id = {first} FOR UPDATE")
                barrier.wait(timeout=10)
                conn.exec_driver_sql(f"SELECT id FROM dl WHERE id = {second} FOR UPDATE")
        except sa.exc.OperationalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    engine.dispose()
    assert len(errors) == 1
    return errors[0]


def test_a_deadlock_victim_is_run_again(mariadb_url: str) -> None:
    """A transaction MariaDB rolled back as a deadlock victim (error 1213,
    which concurrent merges and reads can meet) is run again; other errors
    are not.
    """
    deadlock = SQLStoreError.scrub(_real_deadlock(mariadb_url))
    assert deadlock.deadlock
    store = SQLStore(mariadb_url)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise deadlock
        return "done"

    assert store._retry_deadlocks(flaky) == "done" and len(calls) == 3
    other = SQLStoreError.scrub(
        sa.exc.OperationalError("SELECT 1", {}, Exception(2006, "server has gone away"))
    )
    assert not other.deadlock
    calls.clear()

    def down() -> str:
        calls.append(1)
        raise other

    with pytest.raises(SQLStoreError):
        store._retry_deadlocks(down)
    assert len(calls) == 1
    store.engine.dispose()


def test_revoke_records_have_their_own_table(url: str) -> None:
    """``<table>_revoked``: created with the session table, in the DDL, and
    a clear error when migrations left it out.
    """
    from flask_connect_session.stores.sql import session_table

    bare = SQLStore(url, create_table=False)
    session_table().create(bare.engine)  # as a migration of old made it
    assert "CREATE TABLE session_revoked" in bare.ddl()
    with pytest.raises(RuntimeError, match="'session_revoked' is missing"):
        bare.index_revoke("42", time.time(), time.time() + 60)
    with pytest.raises(RuntimeError, match="create-table"):
        bare.index_revoked("42")
    bare.engine.dispose()
    store = SQLStore(url)
    now = time.time()
    store.index_revoke("x" * 300, now, now + 60)  # a long id, as the index files it
    assert store.index_revoked("x" * 300) == pytest.approx(now, abs=1e-3)
    assert store.index_revoked("x" * 299) is None
    assert sa.inspect(store.engine).has_table("session_revoked")
    store.clear()
    assert store.index_revoked("x" * 300) is None
    store.engine.dispose()
