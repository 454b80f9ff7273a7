"""The documentation against the code: the configuration reference lists
every setting with its real default, the recipes work as written, and the
CLI, fixture and API pages cover what exists.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import sys
import tomllib
import typing as t
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask import Config
from flask import Flask
from flask import session

import flask_connect_session
from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session import testing
from flask_connect_session.cli import session_cli
from flask_connect_session.interface import ConnectSessionInterface
from flask_connect_session.options import CookieOptions
from flask_connect_session.options import Options
from flask_connect_session.options import app_secrets

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = DOCS / "examples"
CONFIGURATION = (DOCS / "configuration.rst").read_text()

#: Options fields set from Flask's own keys rather than CONNECT_SESSION_*.
FLASK_KEYS = {
    "permanent_lifetime": "PERMANENT_SESSION_LIFETIME",
    "refresh_each_request": "SESSION_REFRESH_EACH_REQUEST",
}


def config_key(field: str) -> str:
    return FLASK_KEYS.get(field, f"CONNECT_SESSION_{field.upper()}")


def documented_settings(text: str = CONFIGURATION) -> dict[str, str]:
    """``.. confval::`` name -> the text of its ``:default:`` option."""
    settings = {}
    for match in re.finditer(r"^\.\. confval:: (\S+)\n((?:[ ]{3}.*\n|\n)*)", text, re.M):
        default = re.search(r"^[ ]{3}:default: (.+)$", match.group(2), re.M)
        assert default, f"{match.group(1)} has no :default:"
        settings[match.group(1)] = default.group(1).strip()
    return settings


SETTINGS = documented_settings()


def documented_value(name: str) -> t.Any:
    """Evaluate a ``:default: ``literal````; ``timedelta`` becomes seconds."""
    text = SETTINGS[name]
    # Roles (:class:`...`) in confval options crash Sphinx's HTML writer.
    literal = re.fullmatch(r"``(.+)``", text)
    assert literal, f"{name}: default {text!r} is not a ``literal``"
    value = eval(literal.group(1), {"__builtins__": {}}, {"timedelta": timedelta})
    return value.total_seconds() if isinstance(value, timedelta) else value


def assert_documented_default(name: str, default: t.Any) -> None:
    assert name in SETTINGS, f"{name} is not in docs/configuration.rst"
    if callable(default):
        path = f"{default.__module__}.{default.__qualname__}"
        assert path in SETTINGS[name], f"{name}: the docs should name {path}"
        return
    documented = documented_value(name)
    if isinstance(documented, list):
        documented = tuple(documented)  # a config file's list, kept as a tuple
    assert documented == default, f"{name}: the docs say {SETTINGS[name]}"


def test_the_parser_reads_what_it_should() -> None:
    parsed = documented_settings(
        ".. confval:: A\n   :type: ``int``\n   :default: ``3``\n\n   Text.\n\n"
        ".. confval:: B\n   :default: ``timedelta(days=1)``\n"
    )
    assert parsed == {"A": "``3``", "B": "``timedelta(days=1)``"}
    with pytest.raises(AssertionError, match="no :default:"):
        documented_settings(".. confval:: C\n   :type: ``int``\n")


def test_confval_options_hold_no_roles() -> None:
    """A role (``:class:`...```) inside ``:type:`` or ``:default:`` crashes
    Sphinx's HTML writer once its target exists: keep them plain literals.
    """
    offending = re.findall(r"^[ ]{3}:(?:type|default):.*:\w+:`.*$", CONFIGURATION, re.M)
    assert offending == []


# -- the configuration reference ------------------------------------------


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Options)])
def test_every_option_is_documented_with_its_default(field: str) -> None:
    default = next(f for f in dataclasses.fields(Options) if f.name == field).default
    if field == "cookie":
        assert default == CookieOptions()
        assert documented_value("CONNECT_SESSION_COOKIE") == {}
        return
    assert_documented_default(config_key(field), default)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(CookieOptions)])
def test_every_cookie_setting_is_documented_with_its_default(field: str) -> None:
    default = next(f for f in dataclasses.fields(CookieOptions) if f.name == field).default
    assert_documented_default(f"CONNECT_SESSION_COOKIE.{field}", default)


def test_defaults_in_a_fresh_app_are_the_documented_ones() -> None:
    """What ``init_app`` makes of an app that sets nothing, Flask's own
    defaults (``APPLICATION_ROOT``, ``SESSION_COOKIE_HTTPONLY``...) included.
    """
    options = Options.from_config(Flask(__name__).config)
    for field in dataclasses.fields(Options):
        if field.name != "cookie":
            assert_documented_default(config_key(field.name), getattr(options, field.name))
    for field in dataclasses.fields(CookieOptions):
        assert_documented_default(
            f"CONNECT_SESSION_COOKIE.{field.name}", getattr(options.cookie, field.name)
        )


class RecordingConfig(Config):
    """A Flask config that remembers every key read from it."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> t.Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: t.Any = None) -> t.Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def keys_the_code_reads() -> set[str]:
    read: set[str] = set()
    for extra in ({}, {"SECRET_KEY": "a", "SECRET_KEY_FALLBACKS": ["b"]}):
        app = Flask(__name__)
        config = app.config = RecordingConfig(".", {**app.config, **extra})
        Options.from_config(config)
        app_secrets(app)
        read |= config.read
    return read


def test_every_key_the_code_reads_is_documented() -> None:
    read = keys_the_code_reads()
    assert "CONNECT_SESSION_STORE" in read and "SESSION_COOKIE_SECURE" in read  # sanity
    for key in sorted(read):
        if key.startswith("CONNECT_SESSION_"):
            assert key in SETTINGS, f"{key} is read but has no confval"
        else:
            assert f"``{key}``" in CONFIGURATION or key in SETTINGS, f"{key} is not mentioned"


def test_known_keys_are_the_documented_settings() -> None:
    """The keys init_app does not warn about (options.KNOWN_KEYS) are exactly
    the CONNECT_SESSION_* settings the docs describe: a new setting cannot be
    added without its docs, nor documented while warned about as a typo.
    """
    from flask_connect_session.options import KNOWN_KEYS

    documented = {name.partition(".")[0] for name in SETTINGS}
    assert KNOWN_KEYS == {key for key in documented if key.startswith("CONNECT_SESSION_")}


def test_every_documented_setting_is_read() -> None:
    read = keys_the_code_reads()
    for name in SETTINGS:
        top = name.partition(".")[0]
        assert top in read, f"docs/configuration.rst documents {name}, which nothing reads"


def test_cookie_aliases_in_the_docs_are_accepted() -> None:
    """The camelCase spellings the reference mentions are accepted."""
    for alias in ("httpOnly", "sameSite", "maxAge"):
        assert f"``{alias}``" in CONFIGURATION
    config = Flask(__name__).config
    config["CONNECT_SESSION_COOKIE"] = {"httpOnly": False, "sameSite": "strict", "maxAge": 1500}
    cookie = Options.from_config(config).cookie
    assert (cookie.httponly, cookie.samesite, cookie.max_age) == (False, "Strict", 1.5)


# -- the recipes, as written ----------------------------------------------


def options_of(app: Flask) -> Options:
    interface = app.session_interface
    assert isinstance(interface, ConnectSessionInterface)
    return interface.options


def test_toml_recipe() -> None:
    pytest.importorskip("redis")  # the example names a redis:// store
    app = Flask(__name__)
    assert app.config.from_file(str(EXAMPLES / "config.toml"), load=tomllib.load, text=False)
    ConnectSession(app)
    options = options_of(app)
    assert options.rolling is True
    assert options.absolute_timeout == 43200
    assert options.cookie.max_age == 86400  # maxAge in ms, as in express
    assert (options.cookie.samesite, options.cookie.secure) == ("Lax", "auto")
    assert type(app.session_interface).__name__ == "ConnectSessionInterface"
    with app.app_context():
        assert type(app.extensions["connect_session"].store).__name__ == "RedisStore"


def test_environment_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``export`` lines of docs/configuration.rst, run as written."""
    pytest.importorskip("redis")
    exports = re.findall(r"^\s+\$ export (FLASK_\w+)=(.+)$", CONFIGURATION, re.M)
    assert len(exports) >= 3
    for name in [name for name in os.environ if name.startswith("FLASK_")]:
        monkeypatch.delenv(name)
    for name, value in exports:
        if value.startswith('"$('):  # the generated secret
            value = "generated"
        monkeypatch.setenv(name, value)
    app = Flask(__name__)
    app.config.from_prefixed_env()
    ConnectSession(app)
    options = options_of(app)
    assert app.config["SECRET_KEY"] == "generated"
    assert options.cookie.max_age == 86400
    assert options.cookie.secure == "auto"
    with app.app_context():
        assert type(app.extensions["connect_session"].store).__name__ == "RedisStore"


@pytest.fixture
def instance_recipe(monkeypatch: pytest.MonkeyPatch) -> t.Any:
    """docs/examples/instance_app.py, imported as a module of its own."""
    for name in [name for name in os.environ if name.startswith("FLASK_")]:
        monkeypatch.delenv(name)
    spec = importlib.util.spec_from_file_location("instance_recipe", EXAMPLES / "instance_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "instance_recipe", module)
    spec.loader.exec_module(module)
    return module


def add_counter(app: Flask) -> None:
    @app.get("/")
    def index() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])


def test_instance_folder_recipe(instance_recipe: t.Any, tmp_path: Path) -> None:
    """Settings in ``instance/settings.py`` override the defaults in code."""
    instance = tmp_path / "instance"
    instance.mkdir()
    shutil.copy(EXAMPLES / "instance_settings.py", instance / "settings.py")
    app = instance_recipe.create_app(instance_path=str(instance), TESTING=True)
    assert app.instance_path == str(instance)
    options = options_of(app)
    assert options.key == "myapp.sid"
    assert options.cookie.max_age == 7200  # the instance file wins over the code
    assert options.rolling is True  # set in code, not in the instance file
    with app.app_context():
        assert isinstance(app.extensions["connect_session"].store, MemoryStore)
    add_counter(app)
    client = app.test_client()
    response = client.get("/")
    assert response.text == "1"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("myapp.sid=s%3A")
    expires = re.search(r"Expires=([^;]+)", cookie)
    assert expires, cookie
    lifetime = parsedate_to_datetime(expires.group(1)) - datetime.now(UTC)
    assert 7190 < lifetime.total_seconds() <= 7200
    assert client.get("/").text == "2"


def test_instance_folder_recipe_environment_wins(
    instance_recipe: t.Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    shutil.copy(EXAMPLES / "instance_settings.py", instance / "settings.py")
    monkeypatch.setenv("FLASK_CONNECT_SESSION_KEY", "env.sid")
    app = instance_recipe.create_app(instance_path=str(instance), TESTING=True)
    assert options_of(app).key == "env.sid"


def test_instance_folder_recipe_without_a_settings_file(
    instance_recipe: t.Any, tmp_path: Path
) -> None:
    """No instance file: the defaults in code, and no secret, so Flask's
    null session (sessions are off, as the docs say).
    """
    app = instance_recipe.create_app(instance_path=str(tmp_path / "empty"), TESTING=True)
    options = options_of(app)
    assert options.key == "connect.sid" and options.cookie.max_age == 3600
    assert "SECRET_KEY" not in app.config or not app.config["SECRET_KEY"]
    add_counter(app)
    with pytest.raises(RuntimeError, match="secret key"):
        app.test_client().get("/")


# -- the other pages cover what exists ------------------------------------


def test_cli_page_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.rst").read_text()
    assert session_cli.commands
    for name, command in session_cli.commands.items():
        assert f"``flask session {name}" in text, f"flask session {name} is not documented"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in text, f"{name} {opt} is not documented"


def test_testing_page_covers_every_fixture() -> None:
    text = (DOCS / "testing.rst").read_text()
    fixtures = [name for name in vars(testing) if name.startswith("connect_session_")]
    assert len(fixtures) >= 3
    for name in fixtures:
        assert f".. py:function:: {name}()" in text, f"fixture {name} is not documented"


def test_api_page_covers_every_public_name() -> None:
    text = (DOCS / "api.rst").read_text()
    for name in flask_connect_session.__all__:
        assert f"flask_connect_session.{name}\n" in text, f"{name} is not in docs/api.rst"
    for name in testing.__all__:
        assert f"flask_connect_session.testing.{name}\n" in text, f"testing.{name}"


def test_every_page_is_in_the_toctree() -> None:
    index = (DOCS / "index.rst").read_text()
    entries = set(re.findall(r"^   ([\w-]+)$", index, re.M))
    pages = {p.stem for p in DOCS.glob("*.rst")} | {p.stem for p in DOCS.glob("*.md")}
    assert pages - {"index"} <= entries, f"not in any toctree: {pages - {'index'} - entries}"
