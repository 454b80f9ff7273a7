"""One browser, two apps on one PostgreSQL table: an Express app
(express-session + connect-pg-simple, ``express_pg_app/app.js``) and a Flask
app (or a Quart app in its place) with ``SQLStore`` share a session cookie,
both ways: data, regenerate, destroy. The server's time zone is not UTC; the Node side runs its
connections in UTC as the docs say.
"""

from __future__ import annotations

import collections.abc as cabc
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests

from flask_connect_session import SQLStore

import framework as fw
from conftest import add_views

if t.TYPE_CHECKING:
    from server_fixtures import ExpressApp
    from server_fixtures import ExpressPgAppFactory
    from server_fixtures import PostgresServer

pytestmark = pytest.mark.slow

SECRET = "keyboard cat"
COOKIE = "connect.sid"
TIMEOUT = 10

#: JSON both sides must carry unchanged (a NUL among them: PostgreSQL's
#: json operators refuse it, the store copes).
DATA: dict[str, t.Any] = {
    "user": {"name": "Zoë", "roles": ["admin", "dev"], "prefs": {"tz": None}},
    "cart": [{"sku": "A1", "qty": 2, "price": 9.99}],
    "int": 42,
    "float": 3.14159,
    "max_safe_int": 2**53 - 1,
    "emoji": "😀👍🏽🇫🇷",
    "escapes": 'quote " backslash \\ nul \u0000 ls \u2028',
    "yes": True,
    "nothing": None,
    "empty_list": [],
    "empty_object": {},
}


class Pair(t.NamedTuple):
    """The two apps, one cookie jar, and the Flask side's store."""

    flask: str
    express: ExpressApp
    browser: requests.Session
    store: SQLStore

    def flask_get(self) -> dict[str, t.Any]:
        response = self.browser.get(f"{self.flask}/get", timeout=TIMEOUT)
        response.raise_for_status()
        return t.cast(dict[str, t.Any], response.json())

    def express_get(self) -> dict[str, t.Any]:
        response = self.browser.get(f"{self.express.url}/get", timeout=TIMEOUT)
        response.raise_for_status()
        return t.cast(dict[str, t.Any], response.json())

    def post(self, base: str, path: str, body: t.Any = None) -> dict[str, t.Any]:
        response = self.browser.post(f"{base}{path}", json=body, timeout=TIMEOUT)
        response.raise_for_status()
        if not response.headers.get("Content-Type", "").startswith("application/json"):
            return {}
        return t.cast(dict[str, t.Any], response.json())

    def expire_of(self, sid: str) -> datetime | None:
        import sql_raw

        found = sql_raw.row(self.store, sid)
        return None if found is None else found[1]


@pytest.fixture(params=[None, 60_000], ids=["browser-session", "max-age"])
def pair(
    request: pytest.FixtureRequest,
    framework: str,
    postgresql_server: PostgresServer,
    postgresql_url: str,
    express_pg_app_factory: ExpressPgAppFactory,
) -> cabc.Iterator[Pair]:
    max_age_ms: int | None = request.param
    store = SQLStore(postgresql_url)
    store.create_table()  # connect-pg-simple expects it
    app = fw.new_app(framework)
    app.config.update(SECRET_KEY=SECRET, CONNECT_SESSION_STORE=store)
    if max_age_ms is not None:
        app.config["CONNECT_SESSION_COOKIE"] = {"maxAge": max_age_ms}
    fw.connect(app)
    add_views(app)
    node_url = f"postgres://postgres@{postgresql_server.host}:{postgresql_server.port}/postgres"
    express = express_pg_app_factory(node_url, SECRET, max_age_ms)
    try:
        with fw.serve(app) as flask_url, requests.Session() as browser:
            yield Pair(flask_url, express, browser, store)
    finally:
        express.stop()
        store.engine.dispose()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_express_session_is_read_and_changed_by_flask(pair: Pair) -> None:
    created = pair.post(pair.express.url, "/set", DATA)
    sid = created["id"]
    # connect-pg-simple wrote UTC (its connections run in UTC).
    expire = pair.expire_of(sid)
    assert expire is not None
    lifetime = 86400 if created["cookie"]["expires"] is None else 60
    assert abs((expire - _utcnow()).total_seconds() - lifetime) < 10

    seen = pair.flask_get()
    assert seen["id"] == sid and seen["data"] == DATA and not seen["new"]
    pair.post(pair.flask, "/set", {"flask": "was here", "int": 43})
    back = pair.express_get()
    assert back["id"] == sid
    assert back["data"] == {**DATA, "flask": "was here", "int": 43}


def test_flask_session_is_read_and_changed_by_express(pair: Pair) -> None:
    sid = pair.post(pair.flask, "/set", DATA)["id"]
    expire = pair.expire_of(sid)
    assert expire is not None and expire > _utcnow()
    seen = pair.express_get()
    assert seen["id"] == sid and seen["data"] == DATA
    pair.post(pair.express.url, "/set", {"express": "was here"})
    assert pair.flask_get()["data"] == {**DATA, "express": "was here"}


@pytest.mark.parametrize("side", ["express", "flask"])
def test_regenerate_on_one_side_is_seen_by_the_other(pair: Pair, side: str) -> None:
    old = pair.post(pair.flask, "/set", {"user": "ann"})["id"]
    if side == "express":
        pair.post(pair.express.url, "/regenerate")
        pair.post(pair.express.url, "/set", {"after": 1})
        new = pair.flask_get()
        assert new["data"] == {"after": 1}
    else:
        pair.post(pair.flask, "/regenerate")
        pair.post(pair.flask, "/set", {"after": 1})
        new = pair.express_get()
        assert new["data"] == {"after": 1}
    assert new["id"] != old
    assert pair.store.get(old) is None and pair.expire_of(old) is None


@pytest.mark.parametrize("side", ["express", "flask"])
def test_destroy_on_one_side_is_seen_by_the_other(pair: Pair, side: str) -> None:
    sid = pair.post(pair.express.url, "/set", {"user": "ann"})["id"]
    assert pair.flask_get()["data"] == {"user": "ann"}
    if side == "express":
        pair.post(pair.express.url, "/destroy")
        other = pair.flask_get()
        assert other["new"]
    else:
        pair.post(pair.flask, "/destroy")
        other = pair.express_get()
    assert other["data"] == {} and other["id"] != sid
    assert pair.expire_of(sid) is None


def test_a_flask_read_extends_a_row_express_wrote(pair: Pair) -> None:
    """A Flask request that reads an Express session extends its row to the
    session's full lifetime again, in UTC.
    """
    import sqlalchemy as sa

    created = pair.post(pair.express.url, "/set", {"user": "ann"})
    sid = created["id"]
    table = pair.store.table
    with pair.store.engine.begin() as conn:
        soon = _utcnow() + timedelta(seconds=30)
        conn.execute(sa.update(table).where(table.c.sid == sid).values(expire=soon))
    assert pair.flask_get()["data"] == {"user": "ann"}
    expire = pair.expire_of(sid)
    assert expire is not None
    lifetime = 86400 if created["cookie"]["expires"] is None else 60
    assert abs((expire - _utcnow()).total_seconds() - lifetime) < 10
