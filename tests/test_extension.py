"""``ConnectSession`` keeps no state of its own for an app: each app's store
lives in the session interface installed on that app, so one extension
object set up on two apps gives each its own store.
"""

from __future__ import annotations

import pytest
from flask import Flask

from flask_connect_session import ConnectSession
from flask_connect_session import MemoryStore
from flask_connect_session.testing import install_store


def make_app(store: MemoryStore) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", TESTING=True, CONNECT_SESSION_STORE=store)
    return app


def test_one_extension_on_two_apps_gives_each_its_own_store() -> None:
    first, second = MemoryStore(), MemoryStore()
    app_one, app_two = make_app(first), make_app(second)
    ext = ConnectSession()
    ext.init_app(app_one)
    ext.init_app(app_two)
    assert app_one.extensions["connect_session"] is ext
    assert app_two.extensions["connect_session"] is ext
    with app_one.app_context():
        assert ext.store is first
    with app_two.app_context():
        assert ext.store is second
    with app_one.app_context():  # not "the last app it was set up on"
        assert ext.store is first


def test_outside_an_app_context_an_extension_made_without_its_app_does_not_guess() -> None:
    """Without an app context, and without an app given to the constructor,
    there is no way to tell which app is meant: a clear error, never the
    store of whichever app was set up last.
    """
    app = make_app(MemoryStore())
    ext = ConnectSession()
    ext.init_app(app)
    with pytest.raises(RuntimeError, match=r"app context .*ConnectSession\(app\)"):
        ext.store  # noqa: B018


def test_outside_an_app_context_the_constructors_app_answers() -> None:
    first, second = MemoryStore(), MemoryStore()
    app_one, app_two = make_app(first), make_app(second)
    ext = ConnectSession(app_one)
    assert ext.store is first
    ext.init_app(app_two)
    assert ext.store is first  # still the constructor's app
    with app_two.app_context():
        assert ext.store is second


def test_the_store_is_the_live_one() -> None:
    """A store installed later on the app (a test helper does it) is what
    ``.store`` gives, inside an app context and out.
    """
    app = make_app(MemoryStore())
    ext = ConnectSession(app)
    replacement = MemoryStore()
    install_store(app, replacement)
    assert ext.store is replacement
    with app.app_context():
        assert app.extensions["connect_session"].store is replacement


def test_an_app_the_extension_is_not_set_up_on_is_an_error() -> None:
    ext = ConnectSession(make_app(MemoryStore()))
    other = Flask(__name__)
    with other.app_context(), pytest.raises(RuntimeError, match="not set up on app"):
        ext.store  # noqa: B018
