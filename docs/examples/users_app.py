import collections

from flask import Flask, abort, flash, redirect, render_template_string, request, session
from werkzeug.security import check_password_hash, generate_password_hash
from flask_connect_session import ConnectSession
from flask_connect_session import session_created, session_destroyed, session_regenerated

app = Flask(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
app.config["CONNECT_SESSION_USER_KEY"] = "user_id"
sessions = ConnectSession(app)

PASSWORDS = {"42": generate_password_hash("correct horse")}  # your user database
METRICS = collections.Counter()  # or prometheus_client counters


def check_password(form):
    user_id = form.get("user_id", "")
    if user_id in PASSWORDS and check_password_hash(PASSWORDS[user_id], form["password"]):
        return user_id
    abort(403)


def logged_in_user():
    return session.get("user_id") or abort(401)


DEVICES = """
<ul>{% for device in devices %}
  <li>{{ device.user_agent }}, seen {{ device.last_seen }}
    {% if device.current %}(this one){% endif %}
    <form method="post" action="/devices/logout">
      <input type="hidden" name="handle" value="{{ device.handle }}"><button>Log out</button>
    </form>
{% endfor %}</ul>
"""


@app.post("/login")
def login():
    user_id = check_password(request.form)
    session.regenerate()  # a new id against fixation
    session["user_id"] = user_id  # now indexed for this user
    # "Remember me": a long-lived session (PERMANENT_SESSION_LIFETIME,
    # 31 days by default) that survives a browser restart; revoke ends it.
    session.permanent = request.form.get("remember") == "1"
    return redirect("/devices")


@app.get("/devices")
def devices():
    return render_template_string(DEVICES, devices=sessions.user_sessions(logged_in_user()))


@app.post("/devices/logout")
def logout_devices():
    user_id, handle = logged_in_user(), request.form.get("handle")
    if handle:  # one device, maybe this one
        sessions.revoke(user_id, handle)
    else:  # every device but this one
        sessions.revoke(user_id, keep_current=True)
    return redirect("/devices")


@app.post("/password")
def change_password():
    user_id = logged_in_user()
    PASSWORDS[user_id] = generate_password_hash(request.form["password"])
    sessions.revoke(user_id, keep_current=True)  # every other device
    session.regenerate(keep=True)  # and a new id here
    flash("Password changed; your other devices were logged out.")
    return redirect("/devices")


@session_regenerated.connect_via(app)
def log_login(app, handle, user, session, old_handle, **extra):
    app.logger.info("session %s (was %s) now belongs to %s", handle, old_handle, user)


@session_created.connect_via(app)
def count_session(app, **extra):
    METRICS["sessions_created"] += 1


@session_destroyed.connect_via(app)
def log_logout(app, handle, user, reason, **extra):
    app.logger.info("session %s of %s ended: %s", handle, user, reason)
