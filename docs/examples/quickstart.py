from flask import Flask, flash, redirect, request, session, url_for
from flask_connect_session import ConnectSession

app = Flask(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
ConnectSession(app)  # or: ext = ConnectSession(); ext.init_app(app)


@app.get("/")
def index():
    session["views"] = session.get("views", 0) + 1
    return f"{session['views']} views, user {session.get('user')}"


@app.post("/login")
def login():
    session.regenerate()  # a new id on login: no session fixation
    session["user"] = request.form["name"]
    return redirect(url_for("index"))


@app.post("/logout")
def logout():
    session.destroy()  # gone from the store, the cookie deleted
    flash("Logged out.")  # goes into a brand-new session
    return redirect(url_for("index"))
