"""The example app for Quart: the same pages as ``example_app`` (a view
counter, login with regenerate and "remember me", logout with destroy, the
"Your devices" page) and its JSON API for clients that send the session id
in a header (see ``api.py``), with Quart's async views: the session methods
that reach the store, and the per-user API, are awaited.

Run it with ``quart --app example_quart_app run`` (see the README).
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from quart import Quart
from quart import flash
from quart import redirect
from quart import render_template
from quart import request
from quart import session
from quart import url_for
from werkzeug.wrappers import Response

from flask_connect_session.quart import QuartConnectSession
from flask_connect_session.users import handle

from .api import api

#: The Flask example's config and templates: the same keys and pages.
EXAMPLE_APP = Path(__file__).resolve().parent.parent / "example_app"
CONFIG = EXAMPLE_APP / "config.toml"

#: How long "remember me" keeps a session (the cookie's max_age otherwise).
REMEMBER_FOR = timedelta(days=30)


def create_app(config_file: str | Path = CONFIG) -> Quart:
    """Build the example app, configured from a TOML file."""
    app = Quart(__name__, template_folder=str(EXAMPLE_APP / "templates"))
    app.config.from_file(str(config_file), load=tomllib.load, text=False)
    app.config.from_prefixed_env()  # QUART_SECRET_KEY=...
    sessions = QuartConnectSession(app)

    @app.get("/")
    async def index() -> str:
        session["views"] = session.get("views", 0) + 1
        # The handle names the session without revealing its id.
        return await render_template(
            "index.html", cookie=session.cookie, handle=handle(session.id)
        )

    @app.post("/login")
    async def login() -> Response:
        form = await request.form
        name = form.get("name", "").strip() or "anonymous"
        # A new id on login defeats session fixation; keep=True keeps the
        # counter, but not a CSRF token planted before the login.
        await session.regenerate(keep=True)
        session["user"] = name
        if form.get("remember"):
            # "Remember me" is a long-lived session, which "log out
            # everywhere" ends like any other.
            session.cookie.max_age = REMEMBER_FOR
        await flash(f"Logged in as {name}.")
        return redirect(url_for("index"))

    @app.post("/logout")
    async def logout() -> Response:
        await session.destroy()
        # Written after destroy(): goes into a brand-new session.
        await flash("Logged out.")
        return redirect(url_for("index"))

    app.register_blueprint(api)

    @app.get("/devices")
    async def devices() -> str | Response:
        if "user" not in session:
            return redirect(url_for("index"))
        listed = await sessions.user_sessions(session["user"])
        return await render_template("devices.html", devices=listed)

    @app.post("/devices/logout")
    async def logout_devices() -> Response:
        if "user" in session:
            handle = (await request.form).get("handle")
            if handle:
                await sessions.revoke(session["user"], handle)  # one device (maybe this one)
            else:
                count = await sessions.revoke(session["user"], keep_current=True)
                await flash(f"Logged out {count} other device(s).")
        return redirect(url_for("devices"))

    return app
