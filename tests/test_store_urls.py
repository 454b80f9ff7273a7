"""``CONNECT_SESSION_STORE`` URLs at ``init_app``: a scheme that is nearly
right gets a suggestion, a password is redacted where it stands in the URL
(and nowhere else), and a store whose client package is missing is a
``ValueError`` naming the key and the package to install.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session.stores.base import scrub_url_secrets

from without_packages import run_without


def init_error(url: str) -> str:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", TESTING=True, CONNECT_SESSION_STORE=url)
    with pytest.raises(ValueError) as info:
        ConnectSession(app)
    return str(info.value)


# -- schemes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "suggested"),
    [
        ("postgres://u:pw@localhost/db", "postgresql://"),
        ("postgres+psycopg://u:pw@localhost/db", "postgresql+psycopg://"),
        ("POSTGRES://localhost/db", "postgresql://"),
    ],
)
def test_postgres_scheme_suggests_postgresql(url: str, suggested: str) -> None:
    """Heroku-style ``postgres://`` URLs, which SQLAlchemy 2 refuses."""
    message = init_error(url)
    assert message.startswith("CONNECT_SESSION_STORE: ")
    assert f"did you mean {suggested}" in message
    assert ":pw@" not in message


def test_unknown_scheme_lists_the_known_ones() -> None:
    message = init_error("ftp://u:pw@host/")
    assert message.startswith("CONNECT_SESSION_STORE: unknown store URL scheme")
    assert "redis://" in message and "did you mean" not in message
    assert ":pw@" not in message


# -- passwords: redacted where they stand --------------------------------


def test_a_short_password_is_redacted_in_the_url_only() -> None:
    """With the password ``sql``, the driver's message keeps ``sqlalchemy``
    and the scheme ``postgresql+...`` intact: only the URL's password goes.
    """
    message = init_error("postgresql+nosuchdriver://u:sql@localhost/db")
    assert "postgresql+nosuchdriver://u:***@localhost/db" in message
    assert "sqlalchemy" in message  # SQLAlchemy's "Can't load plugin: sqlalchemy.dialects..."
    assert ":sql@" not in message


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        # The URL as the message quotes it (redacted whole), and its password
        # in a URL that a client library rewrote (valkey:// -> redis://).
        (
            "valkey://:sql@h:6379/x",
            "bad db in 'redis://:sql@h:6379/x' for valkey://:sql@h:6379/x; pip install sqlalchemy",
            "bad db in 'redis://:***@h:6379/x' for valkey://:***@h:6379/x; pip install sqlalchemy",
        ),
        # A user info without ":" is redacted whole, as redact_url does.
        (
            "redis://sql@h/0",
            "cannot reach redis://sql@h/0 (postgresql-like sql)",
            "cannot reach redis://***@h/0 (postgresql-like sql)",
        ),
        # The percent-decoded form, where it stands in a URL or keyword.
        (
            "redis://u:s%40ql@h/0",
            "connect to redis://u:s@ql@h/0 failed: Connection(password='s@ql'); s@ql!",
            "connect to redis://u:***@h/0 failed: Connection(password='***'); s@ql!",
        ),
        # A password query parameter.
        (
            "redis://h/0?password=sql",
            "no auth for rediss://h/0?db=1&password=sql&x=1, sqlite",
            "no auth for rediss://h/0?db=1&password=***&x=1, sqlite (in 'redis://h/0?password=***')",
        ),
    ],
)
def test_scrub_replaces_the_password_where_it_stands(url: str, text: str, expected: str) -> None:
    assert scrub_url_secrets(text, url) == expected


# -- missing optional packages ---------------------------------------------

#: Runs ``ConnectSession`` with the config JSON in ``sys.argv[1]``.
_INIT = """
import json
import sys

from flask import Flask
from flask_connect_session import ConnectSession

app = Flask(__name__)
app.config.update(SECRET_KEY="s", TESTING=True, **json.loads(sys.argv[1]))
try:
    ConnectSession(app)
except ValueError as exc:
    print(f"ValueError: {exc}")
else:
    print("no error")
"""


def init_without(packages: str, config: dict[str, t.Any]) -> str:
    return run_without(packages, _INIT, json.dumps(config))


@pytest.mark.parametrize(
    ("missing", "url", "install"),
    [
        ("pymemcache", "memcached://127.0.0.1:11211", "pip install pymemcache"),
        ("redis", "redis://:sql@127.0.0.1:6379/0", "pip install redis"),
        ("redis", "valkey://127.0.0.1:6379/0", "pip install redis"),
        ("redis", "redis+sentinel://127.0.0.1:26379/mymaster", "pip install redis"),
        ("sqlalchemy", "sqlite:////tmp/sessions.db", "pip install sqlalchemy"),
        ("psycopg2", "postgresql+psycopg2://u:sql@127.0.0.1/db", "pip install psycopg2-binary"),
        ("psycopg", "postgresql+psycopg://u@127.0.0.1/db", "pip install 'psycopg[binary]'"),
        ("pymysql", "mariadb+pymysql://u@127.0.0.1/db", "pip install pymysql"),
    ],
)
def test_missing_package_is_a_value_error_naming_the_key_and_package(
    missing: str, url: str, install: str
) -> None:
    """Whatever the store, a missing client or driver gives the same kind of
    error at ``init_app``, with an install command that works (none of them
    names an extra of this package, which is not on PyPI).
    """
    output = init_without(missing, {"CONNECT_SESSION_STORE": url})
    assert output.startswith("ValueError: CONNECT_SESSION_STORE: "), output
    assert f"needs {missing}, which is not installed: {install}" in output
    assert ":sql@" not in output


def test_missing_msgspec_for_a_flask_session_source_is_a_value_error() -> None:
    table = {"type": "flask-session", "store": "redis://127.0.0.1:6379/0"}
    output = init_without("msgspec", {"CONNECT_SESSION_MIGRATE_FROM": [table]})
    assert output == (
        "ValueError: CONNECT_SESSION_MIGRATE_FROM[0]: needs msgspec, which is not"
        " installed: pip install msgspec"
    )
