"""Configuration: every key, its default, validation and Flask fallbacks."""

from __future__ import annotations

import json
import logging
import typing as t
from datetime import timedelta

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session.options import Options
from flask_connect_session.options import app_secrets
from flask_connect_session.options import parse_bool
from flask_connect_session.signing import generate_sid


def options(**config: t.Any) -> Options:
    app = Flask(__name__)
    app.config.update(config)
    return Options.from_config(app.config)


def custom_genid(request: object) -> str:
    return "custom-id"


def test_defaults() -> None:
    """Every key has the spec's default."""
    opts = options()
    assert opts.key == "connect.sid"
    assert opts.proxy is None
    assert opts.store == "memory://"
    assert (opts.rolling, opts.resave, opts.save_uninitialized) == (False, False, False)
    assert opts.unset == "destroy"
    assert opts.genid is generate_sid
    assert opts.key_prefix == "sess:"
    assert opts.ttl == 86400
    assert opts.absolute_timeout is None
    cookie = opts.cookie
    assert (cookie.path, cookie.domain, cookie.httponly, cookie.secure) == ("/", None, True, False)
    assert (cookie.samesite, cookie.partitioned, cookie.priority, cookie.max_age) == (
        None,
        False,
        None,
        None,
    )


def test_flask_cookie_settings_are_the_defaults() -> None:
    """SESSION_COOKIE_* and APPLICATION_ROOT fill the cookie table's defaults."""
    cookie = options(
        SESSION_COOKIE_DOMAIN="example.com",
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PARTITIONED=True,
        APPLICATION_ROOT="/app",
    ).cookie
    assert cookie.domain == "example.com"
    assert cookie.httponly is False
    assert cookie.secure is True
    assert cookie.samesite == "Lax"
    assert cookie.partitioned is True
    assert cookie.path == "/app"
    assert options(SESSION_COOKIE_PATH="/p", APPLICATION_ROOT="/app").cookie.path == "/p"


def test_cookie_table_overrides_flask_settings() -> None:
    """CONNECT_SESSION_COOKIE wins over SESSION_COOKIE_*."""
    cookie = options(
        SESSION_COOKIE_SECURE=True, CONNECT_SESSION_COOKIE={"secure": False, "path": "/x"}
    ).cookie
    assert cookie.secure is False
    assert cookie.path == "/x"


def test_camel_case_cookie_keys_use_express_units() -> None:
    """maxAge is milliseconds (express), max_age seconds; both mean the same."""
    camel = options(
        CONNECT_SESSION_COOKIE={"maxAge": 60000, "httpOnly": False, "sameSite": "strict"}
    ).cookie
    snake = options(
        CONNECT_SESSION_COOKIE={"max_age": 60, "httponly": False, "samesite": "Strict"}
    ).cookie
    assert camel == snake
    assert camel.max_age == 60
    assert camel.samesite == "Strict"


def test_max_age_timedelta() -> None:
    """max_age accepts a timedelta."""
    assert options(CONNECT_SESSION_COOKIE={"max_age": timedelta(hours=1)}).cookie.max_age == 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("auto", "auto"), ("AUTO", "auto"), ("yes", True)],
)
def test_cookie_secure_values(value: object, expected: object) -> None:
    """secure is a boolean or "auto"."""
    assert options(CONNECT_SESSION_COOKIE={"secure": value}).cookie.secure == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lax", "Lax"),
        ("STRICT", "Strict"),
        ("None", "None"),
        ("auto", "auto"),
        (True, "Strict"),
        (False, None),
        (None, None),
    ],
)
def test_cookie_samesite_values(value: object, expected: object) -> None:
    """samesite accepts any case, "auto", and express's true/false."""
    assert options(CONNECT_SESSION_COOKIE={"sameSite": value}).cookie.samesite == expected


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"CONNECT_SESSION_ROLLING": "maybe"}, "CONNECT_SESSION_ROLLING"),
        ({"CONNECT_SESSION_RESAVE": 2}, "CONNECT_SESSION_RESAVE"),
        ({"CONNECT_SESSION_SAVE_UNINITIALIZED": None}, "CONNECT_SESSION_SAVE_UNINITIALIZED"),
        ({"CONNECT_SESSION_PROXY": "sometimes"}, "CONNECT_SESSION_PROXY"),
        ({"CONNECT_SESSION_UNSET": "forget"}, "CONNECT_SESSION_UNSET"),
        ({"CONNECT_SESSION_GENID": "no.such.module:fn"}, "CONNECT_SESSION_GENID"),
        ({"CONNECT_SESSION_GENID": 42}, "CONNECT_SESSION_GENID"),
        ({"CONNECT_SESSION_GENID": "json:__name__"}, "CONNECT_SESSION_GENID"),
        ({"CONNECT_SESSION_KEY": ""}, "CONNECT_SESSION_KEY"),
        ({"CONNECT_SESSION_KEY": 5}, "CONNECT_SESSION_KEY"),
        ({"CONNECT_SESSION_KEY_PREFIX": 5}, "CONNECT_SESSION_KEY_PREFIX"),
        ({"CONNECT_SESSION_TTL": "a day"}, "CONNECT_SESSION_TTL"),
        ({"CONNECT_SESSION_TTL": -1}, "CONNECT_SESSION_TTL"),
        ({"CONNECT_SESSION_ABSOLUTE_TIMEOUT": "1h"}, "CONNECT_SESSION_ABSOLUTE_TIMEOUT"),
        ({"CONNECT_SESSION_SECRET": []}, "CONNECT_SESSION_SECRET"),
        ({"CONNECT_SESSION_SECRET": ["ok", ""]}, "CONNECT_SESSION_SECRET"),
        ({"CONNECT_SESSION_SECRET": 12}, "CONNECT_SESSION_SECRET"),
        ({"SECRET_KEY": "x", "SECRET_KEY_FALLBACKS": [3]}, "SECRET_KEY_FALLBACKS"),
        ({"CONNECT_SESSION_COOKIE": "max_age=3"}, "CONNECT_SESSION_COOKIE"),
        ({"CONNECT_SESSION_COOKIE": {"maxage": 3}}, "CONNECT_SESSION_COOKIE['maxage']"),
        ({"CONNECT_SESSION_COOKIE": {"secure": "sometimes"}}, "['secure']"),
        ({"CONNECT_SESSION_COOKIE": {"sameSite": "loose"}}, "['sameSite']"),
        ({"CONNECT_SESSION_COOKIE": {"priority": "urgent"}}, "['priority']"),
        ({"CONNECT_SESSION_COOKIE": {"max_age": "1h"}}, "['max_age']"),
        ({"CONNECT_SESSION_COOKIE": {"maxAge": -5}}, "['maxAge']"),
        ({"CONNECT_SESSION_COOKIE": {"maxAge": "1 day"}}, "['maxAge']: expected milliseconds"),
        ({"CONNECT_SESSION_COOKIE": {"path": 3}}, "['path']"),
        ({"CONNECT_SESSION_COOKIE": {"httpOnly": "nah"}}, "['httpOnly']"),
        ({"CONNECT_SESSION_COOKIE": {"http_only": "nah"}}, "['http_only']"),
        ({"CONNECT_SESSION_COOKIE": {"samesite": "loose"}}, "['samesite']"),
        ({"CONNECT_SESSION_STORE": "ftp://x"}, "CONNECT_SESSION_STORE"),
        ({"CONNECT_SESSION_STORE": "memory://host"}, "CONNECT_SESSION_STORE"),
        ({"CONNECT_SESSION_STORE": 3}, "CONNECT_SESSION_STORE"),
        ({"CONNECT_SESSION_KEEP_ON_DESTROY": "_remember"}, "CONNECT_SESSION_KEEP_ON_DESTROY"),
        ({"CONNECT_SESSION_KEEP_ON_DESTROY": ["cookie"]}, "CONNECT_SESSION_KEEP_ON_DESTROY"),
        ({"CONNECT_SESSION_KEEP_ON_DESTROY": [""]}, "CONNECT_SESSION_KEEP_ON_DESTROY"),
    ],
)
def test_bad_config_is_a_value_error_naming_the_key(config: dict[str, t.Any], named: str) -> None:
    """init_app raises ValueError whose message names the offending key."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s")
    app.config.update(config)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        ConnectSession(app)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        (1, True),
        (False, False),
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        (0, False),
    ],
)
def test_parse_bool_accepts_the_spec_spellings(value: object, expected: bool) -> None:
    """Booleans accept True/False and true/false/1/0/yes/no/on/off in any case."""
    assert parse_bool("K", value) is expected


def test_genid_import_paths() -> None:
    """GENID takes a callable or an import path with ':' or '.'."""
    assert options(CONNECT_SESSION_GENID=custom_genid).genid is custom_genid
    assert options(CONNECT_SESSION_GENID=f"{__name__}:custom_genid").genid is custom_genid
    assert options(CONNECT_SESSION_GENID=f"{__name__}.custom_genid").genid is custom_genid


def test_secrets_are_read_per_request() -> None:
    """The secret list follows the config as it is now, fallbacks after."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="a", SECRET_KEY_FALLBACKS=["b", "c"])
    assert app_secrets(app) == ("a", "b", "c")
    app.config["CONNECT_SESSION_SECRET"] = "x"
    assert app_secrets(app) == ("x",)
    app.config["CONNECT_SESSION_SECRET"] = ["y", "x"]
    assert app_secrets(app) == ("y", "x")
    app.config.update(CONNECT_SESSION_SECRET=None, SECRET_KEY=None)
    assert app_secrets(app) == ()


def test_toml_file_configures_everything(tmp_path: t.Any) -> None:
    """Every setting can come from a TOML file through app.config.from_file."""
    import tomllib

    path = tmp_path / "config.toml"
    path.write_text(
        """
SECRET_KEY = "s"
CONNECT_SESSION_KEY = "sid"
CONNECT_SESSION_SECRET = ["new", "old"]
CONNECT_SESSION_PROXY = true
CONNECT_SESSION_STORE = "memory://"
CONNECT_SESSION_ROLLING = "yes"
CONNECT_SESSION_RESAVE = true
CONNECT_SESSION_SAVE_UNINITIALIZED = "on"
CONNECT_SESSION_UNSET = "keep"
CONNECT_SESSION_GENID = "flask_connect_session.signing:generate_sid"
CONNECT_SESSION_KEY_PREFIX = "app1:"
CONNECT_SESSION_TTL = 600
CONNECT_SESSION_ABSOLUTE_TIMEOUT = 28800

[CONNECT_SESSION_COOKIE]
maxAge = 60000
sameSite = "lax"
secure = "auto"
priority = "high"
path = "/"
domain = "example.com"
httpOnly = true
partitioned = false
"""
    )
    app = Flask(__name__)
    app.config.from_file(str(path), load=tomllib.load, text=False)
    ConnectSession(app)
    opts = app.session_interface.options  # type: ignore[attr-defined]
    assert opts.key == "sid"
    assert app_secrets(app) == ("new", "old")
    assert opts.proxy is True
    assert (opts.rolling, opts.resave, opts.save_uninitialized) == (True, True, True)
    assert opts.unset == "keep"
    assert opts.genid is generate_sid
    assert (opts.key_prefix, opts.ttl, opts.absolute_timeout) == ("app1:", 600, 28800)
    assert opts.cookie.max_age == 60
    assert (opts.cookie.samesite, opts.cookie.secure, opts.cookie.priority) == (
        "Lax",
        "auto",
        "High",
    )
    assert opts.cookie.domain == "example.com"


def test_prefixed_env_configures_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting can come from FLASK_-prefixed environment variables."""
    env = {
        "FLASK_SECRET_KEY": "s",
        "FLASK_CONNECT_SESSION_KEY": "sid",
        "FLASK_CONNECT_SESSION_SECRET": json.dumps(["new", "old"]),
        "FLASK_CONNECT_SESSION_PROXY": "false",
        "FLASK_CONNECT_SESSION_STORE": "memory://",
        "FLASK_CONNECT_SESSION_ROLLING": "1",
        "FLASK_CONNECT_SESSION_RESAVE": "true",
        "FLASK_CONNECT_SESSION_SAVE_UNINITIALIZED": "true",
        "FLASK_CONNECT_SESSION_UNSET": "keep",
        "FLASK_CONNECT_SESSION_GENID": f"{__name__}:custom_genid",
        "FLASK_CONNECT_SESSION_KEY_PREFIX": "app1:",
        "FLASK_CONNECT_SESSION_TTL": "600",
        "FLASK_CONNECT_SESSION_ABSOLUTE_TIMEOUT": "3600",
        "FLASK_CONNECT_SESSION_COOKIE": json.dumps({"maxAge": 60000}),
        "FLASK_CONNECT_SESSION_COOKIE__sameSite": "strict",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = Flask(__name__)
    app.config.from_prefixed_env()
    ConnectSession(app)
    opts = app.session_interface.options  # type: ignore[attr-defined]
    assert opts.key == "sid"
    assert app_secrets(app) == ("new", "old")
    assert opts.proxy is False
    assert (opts.rolling, opts.resave, opts.save_uninitialized) == (True, True, True)
    assert opts.unset == "keep"
    assert opts.genid is custom_genid
    assert (opts.key_prefix, opts.ttl, opts.absolute_timeout) == ("app1:", 600, 3600)
    assert (opts.cookie.max_age, opts.cookie.samesite) == (60, "Strict")


def test_extension_registers_itself_and_the_store() -> None:
    """app.extensions["connect_session"] is the extension; .store the live store."""
    store = MemoryStore()
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=store)
    ext = ConnectSession()
    ext.init_app(app)
    assert app.extensions["connect_session"] is ext
    with app.app_context():
        assert app.extensions["connect_session"].store is store
    assert "session" in app.cli.commands


def test_memory_store_url_builds_a_memory_store() -> None:
    """memory:// builds a MemoryStore with the configured TTL."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_TTL=42)
    ext = ConnectSession(app)
    assert isinstance(ext.store, MemoryStore)
    assert ext.store.ttl == 42


def init(**config: t.Any) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", TESTING=True, **config)
    ConnectSession(app)


@pytest.mark.parametrize(
    ("key", "closest"),
    [
        ("CONNECT_SESSION_STOR", "CONNECT_SESSION_STORE"),
        ("CONNECT_SESSION_ROLLNG", "CONNECT_SESSION_ROLLING"),
        ("CONNECT_SESSION_USERKEY", "CONNECT_SESSION_USER_KEY"),
        ("CONNECT_SESSION__STORE", "CONNECT_SESSION_STORE"),
    ],
)
def test_misspelt_key_is_an_error_naming_the_closest_known_key(key: str, closest: str) -> None:
    """A typo such as CONNECT_SESSION_STOR must never leave the app on the
    per-process memory store with only a log line to show for it.
    """
    with pytest.raises(ValueError) as info:
        init(**{key: "redis://localhost:6379/0"})
    assert str(info.value).startswith(f"{key}: ")
    assert f"did you mean {closest}?" in str(info.value)


def test_unknown_key_with_no_close_setting_is_an_error_naming_the_closest() -> None:
    with pytest.raises(ValueError, match=r"^CONNECT_SESSION_ZZZZZZZZ: not a setting") as info:
        init(CONNECT_SESSION_ZZZZZZZZ=1)
    assert "closest: CONNECT_SESSION_" in str(info.value)


@pytest.mark.parametrize(
    ("key", "resembles"),
    [
        ("CONNECT_SESION_TTL", "CONNECT_SESSION_TTL"),
        ("CONNECT_SESSIONS_STORE", "CONNECT_SESSION_STORE"),
        ("CONECT_SESSION_ROLLING", "CONNECT_SESSION_ROLLING"),
        ("CONNECTSESSION_STORE", "CONNECT_SESSION_STORE"),
        ("CONNECT-SESSION-STORE", "CONNECT_SESSION_STORE"),
        ("connect_session_store", "CONNECT_SESSION_STORE"),
        ("FLASK_CONNECT_SESSION_STORE", "CONNECT_SESSION_STORE"),
        ("CONNECT_SESSON_KEY_PREFIX", "CONNECT_SESSION_KEY_PREFIX"),
    ],
)
def test_near_miss_of_the_prefix_is_warned_about(
    key: str, resembles: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that nearly has our prefix is no setting of ours, so it cannot
    be an error (it may be another extension's), but it must not pass
    silently either.
    """
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        init(**{key: "redis://localhost:6379/0"})
    messages = [r.getMessage() for r in caplog.records]
    assert f"{key} is not a setting and is ignored; did you mean {resembles}?" in messages


@pytest.mark.parametrize(
    "key",
    [
        # Flask-Session's keys, which a migrating app keeps (Flask's own are
        # in every app's config), and another extension's.
        "SESSION_KEY_PREFIX",
        "SESSION_TYPE",
        "SESSION_REDIS",
        "SESSION_USE_SIGNER",
        "SESSION_PERMANENT",
        "SQLALCHEMY_DATABASE_URI",
    ],
)
def test_other_keys_are_not_warned_about(key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        init(**{key: None})
    assert [r.getMessage() for r in caplog.records] == []


def test_known_keys_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        init(CONNECT_SESSION_ROLLING=True, CONNECT_SESSION_TTL=60)
    assert [r.getMessage() for r in caplog.records] == []


def test_misspelt_cookie_key_suggests_the_right_one() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_COOKIE={"sameSit": "lax"})
    with pytest.raises(ValueError, match=r"\['sameSit'\]: unknown cookie setting \(did you mean"):
        ConnectSession(app)


def test_missing_secret_logs_a_warning_and_gives_null_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a secret, flask.session is Flask's NullSession; init_app warns."""
    from flask import session
    from flask.sessions import NullSession

    app = Flask(__name__)
    app.testing = True
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        ConnectSession(app)
    assert any("SECRET_KEY" in r.getMessage() for r in caplog.records)

    @app.get("/")
    def index() -> str:
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
        assert session.get("x") is None
        with pytest.raises(RuntimeError, match="secret key"):
            session["x"] = 1
        return "ok"

    assert app.test_client().get("/").data == b"ok"


def test_memory_store_warning_outside_debug_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MemoryStore outside DEBUG/TESTING warns once per process."""
    from flask_connect_session import extension

    monkeypatch.setattr(extension, "_memory_warning_given", False)
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        for _ in range(2):
            app = Flask(__name__)
            app.config["SECRET_KEY"] = "s"
            ConnectSession(app)
    warnings = [r for r in caplog.records if "MemoryStore" in r.getMessage()]
    assert len(warnings) == 1


def test_memory_store_no_warning_in_debug(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In DEBUG or TESTING the MemoryStore warning is not given."""
    from flask_connect_session import extension

    monkeypatch.setattr(extension, "_memory_warning_given", False)
    with caplog.at_level(logging.WARNING, logger="flask_connect_session"):
        for flag in ("DEBUG", "TESTING"):
            app = Flask(__name__)
            app.config.update({"SECRET_KEY": "s", flag: True})
            ConnectSession(app)
    assert not [r for r in caplog.records if "MemoryStore" in r.getMessage()]


def test_redis_client_as_store_gets_a_redis_store(redis_url: str) -> None:
    """A redis-py client in CONNECT_SESSION_STORE is wrapped in a RedisStore."""
    import redis

    from flask_connect_session import RedisStore

    client = redis.Redis.from_url(redis_url)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", CONNECT_SESSION_STORE=client, CONNECT_SESSION_TTL=60)
    store = ConnectSession(app).store
    assert isinstance(store, RedisStore)
    assert store.client is client and store.ttl == 60 and store.key_prefix == "sess:"


# -- CONNECT_SESSION_REGENERATE_DROP (issue 22) ---------------------------------


def test_regenerate_drop_default_and_values() -> None:
    assert options().regenerate_drop == ("csrf_token",)
    assert options(CONNECT_SESSION_REGENERATE_DROP=[]).regenerate_drop == ()
    keys = ["csrf_token", "otp_pending"]
    assert options(CONNECT_SESSION_REGENERATE_DROP=keys).regenerate_drop == tuple(keys)


@pytest.mark.parametrize("value", ["csrf_token", [""], [1], None, {"csrf_token"}])
def test_bad_regenerate_drop_names_the_key(value: object) -> None:
    # A bare string would mean one-character keys.
    with pytest.raises(ValueError, match="CONNECT_SESSION_REGENERATE_DROP"):
        options(CONNECT_SESSION_REGENERATE_DROP=value)


def test_regenerate_keep_drops_the_configured_keys() -> None:
    from flask import session

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="s",
        TESTING=True,
        CONNECT_SESSION_STORE=MemoryStore(),
        CONNECT_SESSION_REGENERATE_DROP=["otp_pending"],
    )
    ConnectSession(app)

    @app.post("/step-up")
    def step_up() -> dict[str, t.Any]:
        session.regenerate(keep=True)
        return dict(session)

    client = app.test_client()
    with client.session_transaction() as before:
        before.update(csrf_token="t", otp_pending=True, cart=[1])
    assert client.post("/step-up").json == {"csrf_token": "t", "cart": [1]}
