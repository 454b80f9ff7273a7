"""The documentation against the code: the configuration reference lists
every setting with its real default, the recipes work as written, and the
CLI, fixture and API pages cover what exists.
"""

from __future__ import annotations

import collections.abc as cabc
import concurrent.futures
import dataclasses
import functools
import importlib.util
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import tomllib
import typing as t
import uuid
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from datetime import timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from flask import Config
from flask import Flask
from flask import request
from flask import session
from flask.testing import FlaskClient
from markupsafe import Markup

import flask_connect_session
from flask_connect_session import MemoryStore
from flask_connect_session import RedisStore
from flask_connect_session import Store
from flask_connect_session import pytest_plugin
from flask_connect_session import testing
from flask_connect_session.cli import session_cli
from flask_connect_session.interface import ConnectSessionInterface
from flask_connect_session.migrate import parse_migrate_from
from flask_connect_session.options import CookieOptions
from flask_connect_session.options import Options
from flask_connect_session.options import app_secrets
from flask_connect_session.signing import sign
from flask_connect_session.testing import install_store
from flask_connect_session.testing import server_session
from flask_connect_session.testing import set_server_session

from server_fixtures import serve_wsgi

pytest_plugins = ("pytester",)

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
        options = Options.from_config(config)
        parse_migrate_from(config, options.key)
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
    """The keys init_app accepts (options.KNOWN_KEYS) are exactly the
    CONNECT_SESSION_* settings the docs describe: a new setting cannot be
    added without its docs, nor documented while refused as a typo.
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


def load_example(monkeypatch: pytest.MonkeyPatch, name: str) -> t.Any:
    """Import the program ``docs/examples/<name>`` as a module of its own,
    with no ``FLASK_`` environment variable of the test run leaking in.
    """
    for variable in [variable for variable in os.environ if variable.startswith("FLASK_")]:
        monkeypatch.delenv(variable)
    module_name = "docs_example_" + name.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)
    spec.loader.exec_module(module)
    return module


def test_factory_reads_the_toml_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/examples/factory.py with docs/examples/config.toml beside it."""
    pytest.importorskip("redis")  # the example names a redis:// store
    app = load_example(monkeypatch, "factory.py").create_app()
    options = options_of(app)
    assert options.rolling is True
    assert options.absolute_timeout == 43200
    assert options.cookie.max_age == 86400  # maxAge in ms, as in express
    assert (options.cookie.samesite, options.cookie.secure) == ("Lax", "auto")
    assert type(app.session_interface).__name__ == "ConnectSessionInterface"
    with app.app_context():
        assert type(app.extensions["connect_session"].store).__name__ == "RedisStore"


def test_factory_with_the_environment_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``export`` lines of docs/configuration.rst, run as written: they
    win over config.toml.
    """
    pytest.importorskip("redis")
    factory = load_example(monkeypatch, "factory.py")
    exports = re.findall(r"^\s+\$ export (FLASK_\w+)=(.+)$", CONFIGURATION, re.M)
    assert len(exports) >= 3
    for name, value in exports:
        if value.startswith('"$('):  # the generated secret
            value = "generated"
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLASK_CONNECT_SESSION_COOKIE__maxAge", "60000")
    app = factory.create_app()
    options = options_of(app)
    assert app.config["SECRET_KEY"] == "generated"
    assert options.cookie.max_age == 60
    assert options.cookie.secure == "auto"
    assert options.rolling is True  # from config.toml
    with app.app_context():
        assert type(app.extensions["connect_session"].store).__name__ == "RedisStore"


@pytest.fixture
def instance_recipe(monkeypatch: pytest.MonkeyPatch) -> t.Any:
    """docs/examples/instance_app.py, imported as a module of its own."""
    return load_example(monkeypatch, "instance_app.py")


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
    # Rotation: a cookie signed with the fallback key still verifies, and
    # the session it names is re-signed with the new key.
    sid = testing.server_session_id(client)
    assert sid is not None
    fallback = app.config["SECRET_KEY_FALLBACKS"][0]
    old_client = app.test_client()
    old_client.set_cookie("myapp.sid", sign(sid, fallback))
    assert old_client.get("/").text == "3"
    renewed = old_client.get_cookie("myapp.sid")
    assert renewed is not None and renewed.value == sign(sid, app.config["SECRET_KEY"])


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
    fixtures = [name for name in vars(pytest_plugin) if name.startswith("connect_session_")]
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


# -- the programs under docs/examples, run --------------------------------


def sid_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("connect.sid")
    return None if cookie is None else cookie.value


def test_quickstart_example(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """The program of the README's quickstart (docs/examples/quickstart.py),
    on a real Redis (the test server's, not localhost:6379).
    """
    app = load_example(monkeypatch, "quickstart.py").app
    app.testing = True
    install_store(app, RedisStore(redis_url))
    client = app.test_client()
    assert client.get("/").text == "1 views, user None"
    assert client.get("/").text == "2 views, user None"
    before = sid_cookie(client)
    assert client.post("/login", data={"name": "ann"}).status_code == 302
    assert sid_cookie(client) != before  # regenerated
    assert client.get("/").text == "1 views, user ann"  # regenerate() emptied it
    logged_in = sid_cookie(client)
    response = client.post("/logout", follow_redirects=True)
    assert response.text == "1 views, user None"
    assert sid_cookie(client) not in (None, logged_in)  # the flash's new session


def test_quart_example(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """docs/examples/quart_app.py, the program of the Quart page, on a real
    Redis (the test server's): the views await the session's methods and the
    per-user API.
    """
    from flask_connect_session.quart import QuartSessionInterface
    from flask_connect_session.stores import StoreSettings
    from flask_connect_session.stores import async_store_from_url

    from async_bridge import loop

    app = load_example(monkeypatch, "quart_app.py").app
    app.testing = True
    interface = app.session_interface
    store = async_store_from_url(redis_url, StoreSettings("sess:", 86400))
    app.session_interface = QuartSessionInterface(interface.options, store)

    async def visit() -> None:
        laptop, phone = app.test_client(), app.test_client()
        assert await (await laptop.get("/")).get_data(as_text=True) == "1 views, user None"
        assert await (await laptop.get("/")).get_data(as_text=True) == "2 views, user None"
        for client in (laptop, phone):
            assert (await client.post("/login", form={"name": "ann"})).status_code == 302
        page = await (await laptop.get("/")).get_data(as_text=True)
        assert page == "1 views, user ann"  # regenerate() emptied it
        done = await laptop.post("/logout-everywhere")
        assert await done.get_data(as_text=True) == "logged out of 2 session(s)"
        page = await (await phone.get("/")).get_data(as_text=True)
        assert page == "1 views, user None"
        await phone.post("/login", form={"name": "bob"})
        logout = await phone.post("/logout", follow_redirects=True)
        assert await logout.get_data(as_text=True) == "1 views, user None"

    loop().run(visit())


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_recipes_example(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """docs/examples/recipes_app.py with the real Flask-Login and Flask-WTF:
    the login form's CSRF token, a regenerated login, remember-me, a
    password change that logs the other devices out (remember-me cookie
    included), and a logout that deletes both cookies.
    """
    pytest.importorskip("flask_login")
    pytest.importorskip("flask_wtf")
    app = load_example(monkeypatch, "recipes_app.py").app
    app.testing = True
    install_store(app, RedisStore(redis_url))

    def log_in(password: str = "correct horse") -> FlaskClient:
        client = app.test_client()
        token = csrf_token(client.get("/login").text)
        assert client.post("/login", data={"name": "ann", "password": password}).status_code == 400
        form = {"name": "ann", "password": password, "remember": "1", "csrf_token": token}
        before = sid_cookie(client)
        assert client.post("/login", data=form).location == "/"
        assert sid_cookie(client) != before
        return client

    laptop, phone = log_in(), log_in()
    assert laptop.get("/").text == phone.get("/").text == "Hello ann"
    assert phone.get_cookie("remember_token") is not None
    wrong = app.test_client()
    form = {"name": "ann", "password": "guess", "csrf_token": csrf_token(wrong.get("/login").text)}
    assert wrong.post("/login", data=form).location == "/login"

    token = csrf_token(laptop.get("/password").text)
    changed = laptop.post("/password", data={"password": "new horse", "csrf_token": token})
    assert changed.location == "/"
    assert laptop.get("/").text == "Hello ann"
    # The phone's session is gone, and its remember-me cookie names the
    # old password version: it is logged out for good.
    assert phone.get("/").status_code == 302
    assert phone.get("/").location.startswith("/login")

    token = csrf_token(laptop.get("/password").text)
    response = laptop.post("/logout", data={"csrf_token": token})
    assert response.location == "/login"
    deleted = {
        c.split("=")[0]
        for c in response.headers.getlist("Set-Cookie")
        if "Expires=Thu, 01 Jan 1970" in c
    }
    assert "remember_token" in deleted
    assert laptop.get("/").status_code == 302


# -- every Python block of the docs is a tested program or an excerpt of one

ROOT = DOCS.parent

#: Each program the docs show (whole or in excerpts), and the test that runs it.
TESTED_PROGRAMS = {
    "docs/examples/quickstart.py": "tests/test_docs.py::test_quickstart_example",
    "docs/examples/factory.py": "tests/test_docs.py::test_factory_reads_the_toml_recipe",
    "docs/examples/recipes_app.py": "tests/test_docs.py::test_recipes_example",
    "docs/examples/instance_app.py": "tests/test_docs.py::test_instance_folder_recipe",
    "docs/examples/instance_settings.py": "tests/test_docs.py::test_instance_folder_recipe",
    "docs/examples/session_tour.py": "tests/test_docs.py::test_session_tour_example",
    "docs/examples/counter.py": (
        "tests/test_docs.py::test_counter_recipe_keeps_every_concurrent_increment"
    ),
    "docs/examples/production.py": "tests/test_docs.py::test_production_example",
    "docs/examples/testing_app.py": "tests/test_docs.py::test_testing_examples",
    "docs/examples/test_testing_app.py": "tests/test_docs.py::test_testing_examples",
    "docs/examples/users_app.py": "tests/test_docs.py::test_users_example",
    "docs/examples/store_objects.py": "tests/test_docs.py::test_store_objects_example",
    "docs/examples/express_shared.py": "tests/test_docs.py::test_express_shared_example",
    "docs/examples/api_client.py": (
        "tests/test_example_app.py::test_api_client_recipe_runs_as_written"
    ),
    "tests/test_core.py": "tests/test_core.py::test_end_of_request",
    "docs/examples/quart_app.py": "tests/test_docs.py::test_quart_example",
}

#: The first line of an excerpt names the program it comes from.
EXCERPT = re.compile(r"# excerpt of (\S+)")


@dataclasses.dataclass
class Block:
    """A code block of the docs: where it is and its (dedented) code."""

    where: str
    code: str

    def __str__(self) -> str:
        return self.where


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _rst_blocks(path: Path) -> cabc.Iterator[Block]:
    lines = path.read_text().split("\n")
    for number, line in enumerate(lines):
        match = re.fullmatch(
            r"(\s*)\.\. (?:code-block|code|sourcecode):: (?:python|py|pycon)\s*", line
        )
        if not match:
            continue
        indent = len(match.group(1))
        body = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        # The directive's options (:caption: ...) come first.
        while body and re.match(r"\s*:[\w-]+:", body[0]):
            del body[0]
        code = textwrap.dedent("\n".join(body)).strip("\n")
        yield Block(f"{_shown(path)}:{number + 1}", code)


def _markdown_blocks(path: Path) -> cabc.Iterator[Block]:
    text = path.read_text()
    pattern = r"^```(?:python|py|\{code-block\} python)\n(.*?)^```"
    for match in re.finditer(pattern, text, re.M | re.S):
        number = text.count("\n", 0, match.start()) + 1
        yield Block(f"{_shown(path)}:{number}", match.group(1).strip("\n"))


def python_blocks() -> list[Block]:
    """Every Python code block of the README and the docs."""
    blocks: list[Block] = []
    for path in sorted(DOCS.glob("*.rst")):
        blocks += _rst_blocks(path)
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        blocks += _markdown_blocks(path)
    return blocks


def program(path: str) -> str:
    assert path in TESTED_PROGRAMS, f"{path} is not a tested program (TESTED_PROGRAMS)"
    return (ROOT / path).read_text()


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def test_the_block_finder_finds_what_it_should(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "Text::\n\n    x = 1\n\n.. code-block:: python\n   :caption: a\n\n    y = 2\n"
        "      z = 3\n\nAfter.\n\n   .. code-block:: python\n\n       w = 4\n"
    )
    assert [block.code for block in _rst_blocks(page.resolve())] == ["y = 2\n  z = 3", "w = 4"]


def test_every_tested_program_and_its_test_exist() -> None:
    for path, test in TESTED_PROGRAMS.items():
        assert (ROOT / path).is_file(), path
        module, _, name = test.partition("::")
        assert f"\ndef {name}(" in (ROOT / module).read_text(), f"{test} does not exist"


def test_every_example_program_is_tested() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        assert str(path.relative_to(ROOT)) in TESTED_PROGRAMS, f"{path.name}: no test runs it"


@pytest.mark.parametrize("block", python_blocks(), ids=str)
def test_python_block_is_a_tested_program_or_an_excerpt_of_one(block: Block) -> None:
    """A reader can run what the docs show: each Python block is a whole
    program that a test runs, or visibly (its first line says so) an
    excerpt of one, every line of it in that program, in order.
    """
    first, _, rest = block.code.partition("\n")
    excerpt = EXCERPT.fullmatch(first.strip())
    if excerpt is None:
        whole = [path for path in TESTED_PROGRAMS if program(path).strip() == block.code.strip()]
        assert whole, (
            f"{block}: neither a tested program (TESTED_PROGRAMS) nor an excerpt of one"
            " (first line '# excerpt of <path>')"
        )
        return
    lines = iter(_code_lines(program(excerpt.group(1))))
    for line in _code_lines(rest):
        if line == "...":  # the reader's own code
            continue
        assert any(line == candidate for candidate in lines), (
            f"{block}: {line!r} is not in {excerpt.group(1)} (in this order)"
        )


def test_literal_includes_of_python_are_tested_programs() -> None:
    for path in sorted(DOCS.glob("*.rst")):
        for included in re.findall(
            r"^\s*\.\. literalinclude:: (\S+\.py)\s*$", path.read_text(), re.M
        ):
            program(str((path.parent / included).resolve().relative_to(ROOT)))


def test_literal_blocks_name_their_language() -> None:
    """A bare ``::`` block is highlighted as Python: every literal block says
    what it holds, so no Python escapes the check above.
    """
    for path in sorted(DOCS.glob("*.rst")):
        for number, line in enumerate(path.read_text().split("\n"), 1):
            if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
                pytest.fail(f"{path.name}:{number}: a literal block without a language")


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_session_tour_example(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """docs/examples/session_tour.py: nested changes are saved, the cookie's
    lifetime is per session, regenerate(keep=True) moves the data, destroy()
    deletes the cookie, and a dead store is the handler's 503.
    """
    app = load_example(monkeypatch, "session_tour.py").app
    app.testing = True
    store = RedisStore(redis_url)
    install_store(app, store)
    client = app.test_client()
    first = client.post("/cart", data={"item": "42"}).json
    second = client.post("/cart", data={"item": "7"}).json
    assert first["id"] == second["id"] and second["cart"] == [42, 7]
    cookie = client.get_cookie("connect.sid")
    assert cookie is not None and cookie.expires is not None
    assert 3590 < (cookie.expires - datetime.now(UTC)).total_seconds() <= 3600
    # A dead store fails the view's first access: the handler answers.
    install_store(app, RedisStore(f"redis://127.0.0.1:{closed_port()}/0"))
    app.testing = False  # the error handler, not the test client, answers
    down = client.post("/cart", data={"item": "1"})
    assert (down.status_code, down.text) == (503, "Sessions are down for maintenance, back soon.")
    install_store(app, store)
    login = client.post("/login", data={"name": "ann"}).json
    assert login["id"] != first["id"] and store.get(first["id"]) is None
    assert store.get(login["id"])["cart"] == [42, 7]  # type: ignore[index]
    response = client.post("/logout")
    assert response.json == {"user": None} and store.get(login["id"]) is None
    assert client.get_cookie("connect.sid") is None


@pytest.fixture
def served_counter(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> cabc.Iterator[t.Any]:
    """docs/examples/counter.py over real HTTP (a threaded server) on a real
    Redis, plus a view that counts in the session, for comparison.
    """
    module = load_example(monkeypatch, "counter.py")
    app = module.app
    install_store(app, RedisStore(redis_url))
    both_read = threading.Barrier(2, timeout=10)

    @app.post("/in-session")
    def in_session() -> str:
        views = session.get("views", 0)
        if request.args.get("race"):
            both_read.wait()  # both requests have read the same value
        session["views"] = views + 1
        return str(session["views"])

    with serve_wsgi(app) as url:
        yield url


def test_counter_recipe_keeps_every_concurrent_increment(served_counter: str) -> None:
    """The README's claim, both ways: two requests incrementing the same
    session key at once can lose an increment (here, forced: both read
    before either writes), and the recipe's counter loses none of 20
    concurrent increments.
    """
    with requests.Session() as browser:
        assert browser.post(served_counter + "/in-session", timeout=10).text == "1"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            racing = [
                pool.submit(browser.post, served_counter + "/in-session?race=1", timeout=10)
                for _ in range(2)
            ]
            assert [future.result().text for future in racing] == ["2", "2"]
        assert browser.post(served_counter + "/in-session", timeout=10).text == "3"  # one lost

        assert browser.post(served_counter + "/visits", timeout=10).text == "1"
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            futures = [
                pool.submit(browser.post, served_counter + "/visits", timeout=10)
                for _ in range(20)
            ]
            counts = sorted(int(future.result().text) for future in futures)
        assert counts == list(range(2, 22))  # every increment counted, once
        assert browser.post(served_counter + "/visits", timeout=10).text == "22"


# -- what round-trips (docs/session.rst, "Values") -------------------------

SESSION_PAGE = (DOCS / "session.rst").read_text()

#: (what a view stores, what the next request reads back), for each claim.
ROUND_TRIPS = {
    "json": ({"a": [1, 2.5, None, True, "é"]}, {"a": [1, 2.5, None, True, "é"]}),
    "big integer": (2**64, 2**64),
    "int dict keys": ({1: "a", 2: "b"}, {"1": "a", "2": "b"}),
    "other dict keys": ({None: 1, True: 2, 1.5: 3}, {"null": 1, "true": 2, "1.5": 3}),
    "tuples": ((1, (2, 3)), (1, (2, 3))),
    "bytes": (b"\x00\xff", b"\x00\xff"),
    "uuid": (uuid.UUID(int=5), uuid.UUID(int=5)),
    "markup": (Markup("<b>x</b>"), Markup("<b>x</b>")),
    "microseconds dropped": (
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    "naive is UTC": (datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    "other zone to UTC": (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC),
    ),
}


@pytest.mark.flask_only("set_server_session drives Flask's test client")
def test_values_round_trip_as_the_session_page_says(
    make_app: cabc.Callable[..., Flask], store: Store
) -> None:
    """Each claim of the "Values" section, on every store kind."""
    client = make_app().test_client()
    set_server_session(client, {name: value for name, (value, _) in ROUND_TRIPS.items()})
    back = server_session(client)
    for name, (_, expected) in ROUND_TRIPS.items():
        assert back[name] == expected, name
        assert type(back[name]) is type(expected), name
        if isinstance(expected, datetime):
            assert expected.tzinfo is UTC
    page = " ".join(SESSION_PAGE.split())
    for claim in ("microseconds are dropped", "with ``tzinfo=UTC``", '``{"1": "a"}``'):
        assert claim in page, claim


@pytest.mark.flask_only("set_server_session drives Flask's test client")
@pytest.mark.parametrize(
    "value", [date(2026, 1, 2), time(3, 4), {1, 2}, Decimal("1.5"), object()], ids=repr
)
def test_values_without_a_json_form_are_a_type_error(
    make_app: cabc.Callable[..., Flask], value: t.Any
) -> None:
    client = make_app().test_client()
    with pytest.raises(TypeError, match=r"^session\['x'\] cannot be stored as JSON"):
        set_server_session(client, {"x": value})


def in_instance_folder(monkeypatch: pytest.MonkeyPatch, module: t.Any, tmp_path: Path) -> Path:
    """Make the apps ``module`` builds use an instance folder under
    ``tmp_path`` (not one beside the example); return it.
    """
    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.setattr(module, "Flask", functools.partial(Flask, instance_path=str(instance)))
    return instance


def test_production_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """docs/examples/production.py: the secret from the instance folder, a
    TLS Redis client with a private CA (built, not contacted), and ProxyFix:
    the cookie is Secure exactly when the proxy says the request was HTTPS.
    """
    production = load_example(monkeypatch, "production.py")
    instance = in_instance_folder(monkeypatch, production, tmp_path)
    (instance / "settings.py").write_text('SECRET_KEY = "from the instance folder"\n')
    app = production.create_app()
    assert app.config["SECRET_KEY"] == "from the instance folder"
    with app.app_context():
        store = app.extensions["connect_session"].store
    assert isinstance(store, RedisStore)
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["ssl_ca_certs"]) == (
        "redis.internal",
        6380,
        "/etc/ssl/private-ca.pem",
    )
    assert options_of(app).touch_after == 60
    install_store(app, MemoryStore())  # redis.internal is not reachable here
    add_counter(app)
    client = app.test_client()
    proxied = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in proxied.headers["Set-Cookie"]
    plain = app.test_client().get("/")
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_testing_examples(pytester: pytest.Pytester) -> None:
    """docs/examples/test_testing_app.py, run by pytest as a user's suite
    would run it (the plugin loaded from its entry point), against
    docs/examples/testing_app.py: every test passes.
    """
    for name in ("testing_app.py", "test_testing_app.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    result = pytester.runpytest("-p", "no:cacheprovider", "test_testing_app.py")
    result.assert_outcomes(passed=8)


def test_users_example(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/examples/users_app.py on a real Redis: the devices page lists
    each login, logging one device out by its handle ends that session, a
    password change ends every other one, and the signal receivers log and
    count.
    """
    users = load_example(monkeypatch, "users_app.py")
    app = users.app
    app.testing = True
    install_store(app, RedisStore(redis_url))

    def device(agent: str, password: str = "correct horse") -> FlaskClient:
        client = app.test_client()
        client.environ_base["HTTP_USER_AGENT"] = agent
        set_server_session(client, {"cart": [1]})  # a visitor's session, before login
        form = {"user_id": "42", "password": password}
        assert client.post("/login", data=form).location == "/devices"
        return client

    wrong = app.test_client().post("/login", data={"user_id": "42", "password": "guess"})
    assert wrong.status_code == 403
    with caplog.at_level(logging.INFO, logger=app.logger.name):
        laptop, phone, tablet = device("Laptop"), device("Phone"), device("Tablet")
    assert users.METRICS["sessions_created"] == 3
    assert caplog.text.count("now belongs to 42") == 3
    page = laptop.get("/devices").text
    assert page.count("<li>") == 3 and "Laptop, seen" in page
    listed = {
        agent: handle
        for agent, handle in re.findall(
            r'<li>(\w+), seen.*?name="handle" value="([^"]+)"', page, re.S
        )
    }
    assert set(listed) == {"Laptop", "Phone", "Tablet"}
    marked = [entry.split(",")[0] for entry in page.split("<li>") if "(this one)" in entry]
    assert marked == ["Laptop"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=app.logger.name):
        laptop.post("/devices/logout", data={"handle": listed["Phone"]})
    assert "of 42 ended: revoke" in caplog.text
    assert phone.get("/devices").status_code == 401  # a new session: no user_id
    assert laptop.get("/devices").text.count("<li>") == 2

    response = laptop.post("/password", data={"password": "new horse"})
    assert response.location == "/devices"
    assert tablet.get("/devices").status_code == 401
    assert laptop.get("/devices").text.count("<li>") == 1
    assert device("Phone", "new horse").get("/devices").text.count("<li>") == 2


@pytest.mark.parametrize(
    ("use", "kind"),
    [
        ("use_a_redis_client", "RedisStore"),
        ("use_flask_sqlalchemy", "SQLStore"),
        ("use_a_sqlalchemy_engine", "SQLStore"),
        ("use_a_cachelib_cache", "CachelibStore"),
    ],
)
def test_store_objects_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, use: str, kind: str
) -> None:
    """docs/examples/store_objects.py: each object given as
    CONNECT_SESSION_STORE gets its store, which keeps a session.
    """
    pytest.importorskip("flask_sqlalchemy")
    module = load_example(monkeypatch, "store_objects.py")
    in_instance_folder(monkeypatch, module, tmp_path)
    app = module.create_app(getattr(module, use), REDIS_URL=redis_url, TESTING=True)
    with app.app_context():
        store = app.extensions["connect_session"].store
    assert type(store).__name__ == kind
    client = app.test_client()
    assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]
    if kind == "SQLStore":
        store.engine.dispose()


def test_express_shared_example(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """docs/examples/express_shared.py: the secret list rotates (a cookie
    signed with the old secret works and is re-signed with the new one)
    and maxAge is express's milliseconds.
    """
    app = load_example(monkeypatch, "express_shared.py").app
    app.testing = True
    assert options_of(app).cookie.max_age == 86400
    store = RedisStore(redis_url)
    install_store(app, store)
    add_counter(app)
    store.set("from-express", {"cookie": {"originalMaxAge": 86400000, "expires": None}})
    client = app.test_client()
    client.set_cookie("connect.sid", sign("from-express", "old secret"))
    assert client.get("/").text == "1"
    assert client.get_cookie("connect.sid").value == sign("from-express", "new secret")  # type: ignore[union-attr]


# -- the other blocks: TOML, URLs, commands ----------------------------------


def _blocks_of(language: str) -> list[Block]:
    blocks: list[Block] = []
    for path in sorted(DOCS.glob("*.rst")):
        text = path.read_text()
        for match in re.finditer(
            rf"^(\s*)\.\. code-block:: {language}\n\n((?:\1 .*\n|\n)+)", text, re.M
        ):
            number = text.count("\n", 0, match.start()) + 1
            yield_code = textwrap.dedent(match.group(2)).strip("\n")
            blocks.append(Block(f"{_shown(path)}:{number}", yield_code))
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = path.read_text()
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.M | re.S):
            number = text.count("\n", 0, match.start()) + 1
            blocks.append(Block(f"{_shown(path)}:{number}", match.group(1)))
    return blocks


@pytest.mark.parametrize("block", _blocks_of("toml"), ids=str)
def test_toml_block_is_valid_config(block: Block) -> None:
    """A TOML block parses, and every CONNECT_SESSION_* key in it is a setting."""
    from flask_connect_session.options import KNOWN_KEYS

    config = tomllib.loads(block.code)
    assert config, block
    for key in config:
        if key.startswith("CONNECT_SESSION_"):
            assert key in KNOWN_KEYS, f"{block}: {key} is not a setting"


def test_store_urls_in_the_stores_page_have_known_schemes() -> None:
    from flask_connect_session.stores import FACTORIES

    urls = [
        line.split()[0]
        for block in _blocks_of("text")
        if block.where.startswith("docs/stores.md")
        for line in block.code.split("\n")
        if "://" in line
    ]
    assert len(urls) >= 10
    for url in urls:
        scheme = url.partition("://")[0]
        assert scheme in FACTORIES or scheme.partition("+")[0] + "+" in FACTORIES, url


@pytest.fixture
def served_example() -> cabc.Iterator[str]:
    from example_app import create_app

    with serve_wsgi(create_app()) as url:
        yield url


def test_the_curl_commands_of_the_api_clients_page(served_example: str) -> None:
    """Run as written (against the served example app): ``-H 'X-Session-Id;'``
    sends the header empty and gets a session in it, the id then names
    the session; ``-H 'X-Session-Id: '`` sends no header at all.
    """
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    page = (DOCS / "api-clients.rst").read_text()
    commands = re.findall(r"^    \$ (curl .*)$", page, re.M)
    assert len(commands) == 2

    def curl(command: str) -> str:
        argv = shlex.split(command.replace("http://127.0.0.1:5000", served_example))
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout

    login = curl(commands[0])
    assert login.startswith("HTTP/1.1 200") and login.endswith('{"user":"ann"}\n')
    sid = re.search(r"^X-Session-Id: (\S+)$", login, re.M | re.I)
    assert sid is not None and sid.group(1).startswith("s%3A")
    assert "Set-Cookie" not in login
    me = commands[1].replace("s%3AZ8qHkP...", sid.group(1))
    assert curl(me) == '{"user":"ann"}\n'
    dropped = curl(commands[0].replace("X-Session-Id;", "X-Session-Id: "))
    assert dropped.startswith("HTTP/1.1 400")


# -- the README ----------------------------------------------------------------

README = (ROOT / "README.md").read_text()


def test_readme_config_table_lists_every_setting() -> None:
    from flask_connect_session.options import KNOWN_KEYS

    rows = set(re.findall(r"^\| `(CONNECT_SESSION_\w+)` \|", README, re.M))
    assert rows == KNOWN_KEYS


def test_readme_names_every_store_that_keeps_the_user_index() -> None:
    """The stores with the index methods, as the README lists them."""
    from flask_connect_session.stores.base import INDEX_METHODS
    from flask_connect_session.stores.filesystem import FileSystemStore
    from flask_connect_session.stores.sql import SQLStore

    for kind in (MemoryStore, FileSystemStore, RedisStore, SQLStore):
        assert all(getattr(kind, m) is not getattr(Store, m) for m in INDEX_METHODS), kind
    sentence = " ".join(README.split("user to their sessions (", 1)[1].split(")", 1)[0].split())
    assert sentence == "memory, files, Redis, Redis Cluster and SQL"


def test_readme_commands_install_from_the_lock() -> None:
    """The example-app command installs the locked versions, so an upstream
    release cannot break it; no install hint names the package on PyPI
    (where it is not), except to say that it does not work.
    """
    command = "python3 -m pip install -c constraints/lock.txt -e . && flask --app example_app run"
    assert command + " --debug" in README
    for text in (README, *(path.read_text() for path in sorted(DOCS.glob("*.*")))):
        hints = re.findall(r"pip install '?flask-connect-session\S*(.{0,40})", text, re.S)
        assert all("does not work" in " ".join(after.split()) for after in hints), hints


def test_the_contract_is_in_the_repository() -> None:
    """Code, tests and docs point to docs/behaviour.rst, never to a contract
    a reader of the repository cannot open.
    """
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offending = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".rst", ".md", ".toml", ".cfg", ".txt", ".js", ""}:
            continue
        text = path.read_text(errors="replace") if path.is_file() else ""
        offending += [
            f"{name}: {line.strip()}" for line in text.split("\n") if re.search(r"\bSPEC\b", line)
        ]
    assert offending == []
    assert "behaviour" in (DOCS / "index.rst").read_text()
