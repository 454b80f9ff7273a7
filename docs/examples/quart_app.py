from quart import Quart, flash, redirect, request, session, url_for
from flask_connect_session.quart import QuartConnectSession

app = Quart(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
app.config["CONNECT_SESSION_USER_KEY"] = "user"
sessions = QuartConnectSession(app)  # or: sessions.init_app(app) in a factory


@app.get("/")
async def index():
    session["views"] = session.get("views", 0) + 1  # the mapping is plain
    return f"{session['views']} views, user {session.get('user')}"


@app.post("/login")
async def login():
    await session.regenerate()  # a new id on login: no session fixation
    session["user"] = (await request.form)["name"]
    return redirect(url_for("index"))


@app.post("/logout")
async def logout():
    await session.destroy()  # gone from the store, the cookie deleted
    await flash("Logged out.")  # goes into a brand-new session
    return redirect(url_for("index"))


@app.post("/logout-everywhere")
async def logout_everywhere():
    count = await sessions.revoke(session["user"])  # every device of this user
    return f"logged out of {count} session(s)"
