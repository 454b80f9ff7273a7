from flask import Flask, flash, redirect, render_template_string, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_login import fresh_login_required, login_required
from flask_wtf.csrf import CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash
from flask_connect_session import ConnectSession

app = Flask(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
app.config["CONNECT_SESSION_USER_KEY"] = "_user_id"  # Flask-Login's key
sessions = ConnectSession(app)
login_manager = LoginManager(app)
login_manager.login_view = "login_form"
login_manager.session_protection = "strong"
CSRFProtect(app)


class User(UserMixin):
    def __init__(self, name, password):
        self.name = name
        self.password_version = 0
        self.set_password(password)

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)
        self.password_version += 1  # remember-me cookies made before stop working

    def get_id(self):
        return f"{self.name}.{self.password_version}"


USERS = {"ann": User("ann", "correct horse")}  # your database


@login_manager.user_loader
def load_user(user_id):
    name, _, version = user_id.partition(".")
    user = USERS.get(name)
    return user if user and str(user.password_version) == version else None


def check_password(form):
    user = USERS.get(form.get("name", ""))
    if user and check_password_hash(user.password_hash, form.get("password", "")):
        return user
    return None


FORM = """
<form method="post" action="{{ action }}">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  {% if action == "/login" %}<input name="name">{% endif %}
  <input name="password" type="password">
  {% if action == "/login" %}
    <label><input type="checkbox" name="remember" value="1"> Remember me</label>
  {% endif %}
  <button>Send</button>
</form>
"""


@app.get("/login")
def login_form():
    return render_template_string(FORM, action="/login")


@app.post("/login")
def login():
    user = check_password(request.form)
    if user is None:
        flash("Wrong name or password.")
        return redirect("/login")
    session.regenerate(keep=True)  # new id, a new CSRF token
    login_user(user, remember=request.form.get("remember") == "1")
    return redirect("/")


@app.get("/")
@login_required
def index():
    return f"Hello {current_user.name}"


@app.post("/logout")
@login_required
def logout():
    logout_user()
    session.destroy()
    flash("Logged out.")  # goes into a brand-new session
    return redirect("/login")


@app.get("/password")
@fresh_login_required
def password_form():
    return render_template_string(FORM, action="/password")


@app.post("/password")
@fresh_login_required
def change_password():
    old_id = current_user.get_id()
    current_user.set_password(request.form["password"])  # bumps the version
    sessions.revoke(old_id, keep_current=True)  # every other device
    session.regenerate(keep=True)  # a new id here too
    login_user(current_user)  # the new id in this session
    flash("Password changed; your other devices were logged out.")
    return redirect("/")
