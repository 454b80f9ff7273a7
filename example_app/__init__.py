"""Example app: a view counter, login with regenerate, logout with destroy,
and the same for API clients as JSON under ``/api`` (see ``api.py``), and a
"Your devices" page (log out this device or all the others).

Run it with ``flask --app example_app run`` (see the README).
"""

from __future__ import annotations

import tomllib
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

from .api import api

CONFIG = Path(__file__).with_name("config.toml")


def create_app(config_file: str | Path = CONFIG) -> Flask:
    """Build the example app, configured from a TOML file."""
    app = Flask(__name__)
    app.config.from_file(str(config_file), load=tomllib.load, text=False)
    app.config.from_prefixed_env()
    sessions = ConnectSession(app)

    @app.get("/")
    def index() -> str:
        session["views"] = session.get("views", 0) + 1
        return render_template("index.html", cookie=session.cookie)

    @app.post("/login")
    def login() -> Response:
        name = request.form.get("name", "").strip() or "anonymous"
        # A new id on login defeats session fixation; keep=True keeps the counter.
        session.regenerate(keep=True)
        session["user"] = name
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
