"""The example app's JSON API, for clients that send the session id in the
``CONNECT_SESSION_HEADER`` header instead of a cookie (mobile apps, scripts,
single-page apps on another origin).
"""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import request
from flask import session
from werkzeug.wrappers import Response

api = Blueprint("api", __name__, url_prefix="/api")

Json = dict[str, object]


def _header() -> str:
    return str(current_app.config["CONNECT_SESSION_HEADER"])


@api.before_request
def header_only() -> tuple[Json, int] | None:
    """Refuse requests without the session header.

    A cookie never drives the API: a browser sends a cookie with any
    cross-site request, but cannot add a custom header to one unless CORS
    allows it, so these endpoints need no CSRF token.
    """
    if request.method == "OPTIONS":  # a CORS preflight carries no header
        return None
    if _header() not in request.headers:
        return {"error": f"send the session id in the {_header()} header"}, 400
    return None


@api.after_request
def cors(response: Response) -> Response:
    """Let pages from ``API_CORS_ORIGINS`` call the API and read the header."""
    origin = request.headers.get("Origin")
    if origin is not None and origin in current_app.config.get("API_CORS_ORIGINS", ()):
        response.headers["Access-Control-Allow-Origin"] = origin
        # Without this, a page's script cannot read the id the response sends.
        response.headers["Access-Control-Expose-Headers"] = _header()
        if request.method == "OPTIONS":
            # The preflight: the page may send the header (and JSON bodies).
            response.headers["Access-Control-Allow-Headers"] = f"{_header()}, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


@api.post("/login")
def login() -> Json:
    """Log in as ``{"name": ...}``; the response header carries the new id."""
    body = request.get_json(silent=True)
    name = str(body.get("name", "")).strip() if isinstance(body, dict) else ""
    # A new id on login defeats session fixation, for headers as for cookies.
    session.regenerate()
    session["user"] = name or "anonymous"
    return {"user": session["user"]}


@api.get("/me")
def me() -> Json | tuple[Json, int]:
    """Who the session belongs to; 401 when nobody is logged in."""
    user = session.get("user")
    if user is None:
        return {"error": "not logged in"}, 401
    return {"user": user}


@api.post("/logout")
def logout() -> Json:
    """End the session; the response header is empty."""
    session.destroy()
    return {"user": None}
