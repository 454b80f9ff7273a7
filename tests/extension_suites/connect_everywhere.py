"""A pytest plugin that gives every Flask app a test suite creates our
sessions: ``ConnectSession`` on the memory store, with Flask's cookie name
``session`` and the per-user index on Flask-Login's key (``_user_id``, as
docs/recipes.rst recommends), set up as soon as the app exists (the suite's
tests are not changed).

tests/test_extension_suites.py runs other projects' test suites with
``-p connect_everywhere`` and this directory on ``PYTHONPATH``. When the
environment names a file in ``CONNECT_EVERYWHERE_COUNT``, the number of apps
set up is written there at the end, so the run can tell the plugin worked.
"""

from __future__ import annotations

import os
import typing as t

import flask
import pytest

from flask_connect_session import ConnectSession

#: Flask's own ``__init__``, wrapped while the plugin is active.
_flask_init = flask.Flask.__init__
_apps_set_up = 0


def _init_with_our_sessions(self: flask.Flask, *args: t.Any, **kwargs: t.Any) -> None:
    global _apps_set_up
    _flask_init(self, *args, **kwargs)
    self.config.update(
        CONNECT_SESSION_STORE="memory://",
        CONNECT_SESSION_KEY="session",
        CONNECT_SESSION_USER_KEY="_user_id",
    )
    ConnectSession(self)
    _apps_set_up += 1


def pytest_configure(config: pytest.Config) -> None:
    flask.Flask.__init__ = _init_with_our_sessions  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    flask.Flask.__init__ = _flask_init  # type: ignore[method-assign]
    count_file = os.environ.get("CONNECT_EVERYWHERE_COUNT")
    if count_file:
        with open(count_file, "w") as file:
            file.write(f"{_apps_set_up}\n")
