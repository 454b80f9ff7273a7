"""An app factory that reads deployment settings from the instance folder.

Defaults that ship with the code are set first; ``instance/settings.py``
(kept out of version control, one per deployment) overrides them, and
``FLASK_``-prefixed environment variables override both.
"""

from __future__ import annotations

import typing as t

from flask import Flask

from flask_connect_session import ConnectSession


def create_app(instance_path: str | None = None, **overrides: t.Any) -> Flask:
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_mapping(
        CONNECT_SESSION_COOKIE={"max_age": 3600, "samesite": "Lax"},
        CONNECT_SESSION_ROLLING=True,
    )
    # instance/settings.py: SECRET_KEY, CONNECT_SESSION_STORE, ...
    app.config.from_pyfile("settings.py", silent=True)
    app.config.from_prefixed_env()
    app.config.update(overrides)
    ConnectSession(app)
    return app
