"""Example app: a view counter, login with regenerate (and "remember me",
a long-lived session), logout with destroy, the same for API clients as JSON
under ``/api`` (see ``api.py``), and a "Your devices" page (log out this
device or all the others).

Run it with ``flask --app example_app run`` (see the README).
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from werkzeug.wrappers import Response

from flask_connect_session import ConnectSession
from flask_connect_session.users import handle

from .api import api

CONFIG = Path(__file__).with_name("config.toml")

#: How long "remember me" keeps a session (the cookie's max_age otherwise).
REMEMBER_FOR = timedelta(days=30)


def create_app(config_file: str | Path = CONFIG) -> Flask:
    """Build the example app, configured from a TOML file."""
    app = Flask(__name__)
    app.config.from_file(str(config_file), load=tomllib.load, text=False)
    app.config.from_prefixed_env()
    sessions = ConnectSession(app)

    @app.get("/")
    def index() -> str:
        session["views"] = session.get("views", 0) + 1
        # The handle names the session without revealing its id: the page
        # (and any script on it) never sees the id, which HttpOnly hides.
        return render_template("index.html", cookie=session.cookie, handle=handle(session.id))

    @app.post("/login")
    def login() -> Response:
        name = request.form.get("name", "").strip() or "anonymous"
        # A new id on login defeats session fixation; keep=True keeps the
        # counter, but not a CSRF token an attacker could have planted with
        # his own session (CONNECT_SESSION_REGENERATE_DROP, in config.toml).
        session.regenerate(keep=True)
        session["user"] = name
        if request.form.get("remember"):
            # "Remember me" is a long-lived session: it survives a browser
            # restart, and "log out everywhere" ends it like any other.
            session.cookie.max_age = REMEMBER_FOR
        flash(f"Logged in as {name}.")
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response:
        session.destroy()
        # Written after destroy(): goes into a brand-new session.
        flash("Logged out.")
        return redirect(url_for("index"))

    app.register_blueprint(api)

    @app.get("/devices")
    def devices() -> str | Response:
        if "user" not in session:
            return redirect(url_for("index"))
        return render_template("devices.html", devices=sessions.user_sessions(session["user"]))

    @app.post("/devices/logout")
    def logout_devices() -> Response:
        if "user" in session:
            handle = request.form.get("handle")
            if handle:
                sessions.revoke(session["user"], handle)  # one device (maybe this one)
            else:
                count = sessions.revoke(session["user"], keep_current=True)
                flash(f"Logged out {count} other device(s).")
        return redirect(url_for("devices"))

    return app
