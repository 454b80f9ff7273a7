from flask import Flask, abort, session
from flask_connect_session import ConnectSession


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a long random string"
    app.config["CONNECT_SESSION_HEADER"] = "X-Session-Id"  # for the API client
    ConnectSession(app)

    @app.get("/")
    def index():
        session["views"] = session.get("views", 0) + 1
        return f"{session['views']} views"

    @app.get("/about")
    def about():
        return "A page that never touches the session."

    @app.get("/login-as-ann")
    def login_as_ann():
        session.regenerate()
        session["user"] = "ann"
        return "ok"

    @app.get("/profile")
    def profile():
        return f"Profile of {session.get('user')}"

    @app.get("/dashboard")
    def dashboard():
        if "user" not in session:
            abort(401)
        session["visits"] = session.get("visits", 0) + 1
        return f"Hello {session['user']}"

    @app.get("/api/me")
    def me():
        return {"user": session.get("user")}

    return app
