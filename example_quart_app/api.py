"""The example app's JSON API, for clients that send the session id in the
``CONNECT_SESSION_HEADER`` header instead of a cookie.
"""

from __future__ import annotations

from quart import Blueprint
from quart import current_app
from quart import request
from quart import session

api = Blueprint("api", __name__, url_prefix="/api")

Json = dict[str, object]


@api.before_request
async def header_only() -> tuple[Json, int] | None:
    """Refuse requests without the session header: a cookie never drives
    the API, so these endpoints need no CSRF token.
    """
    header = str(current_app.config["CONNECT_SESSION_HEADER"])
    if header not in request.headers:
        return {"error": f"send the session id in the {header} header"}, 400
    return None


@api.post("/login")
async def login() -> Json:
    """Log in as ``{"name": ...}``; the response header carries the new id."""
    body = await request.get_json(silent=True)
    name = str(body.get("name", "")).strip() if isinstance(body, dict) else ""
    await session.regenerate()
    session["user"] = name or "anonymous"
    return {"user": session["user"]}


@api.get("/me")
async def me() -> Json | tuple[Json, int]:
    """Who the session belongs to; 401 when nobody is logged in."""
    user = session.get("user")
    if user is None:
        return {"error": "not logged in"}, 401
    return {"user": user}


@api.post("/logout")
async def logout() -> Json:
    """End the session; the response header is empty."""
    await session.destroy()
    return {"user": None}
