"""The recipes of docs/recipes.rst, with the real Flask-Login and Flask-WTF
(test dependencies only), on the memory store and a real redis-server.
"""

from __future__ import annotations

import time
import typing as t

import pytest
from flask import Flask
from flask import flash
from flask import get_flashed_messages
from flask import request
from flask import session
from flask.testing import FlaskClient
from flask_login import LoginManager
from flask_login import UserMixin
from flask_login import current_user
from flask_login import fresh_login_required
from flask_login import login_required
from flask_login import login_user
from flask_login import logout_user
from flask_wtf.csrf import CSRFProtect
from flask_wtf.csrf import generate_csrf

from flask_connect_session import ConnectSession
from flask_connect_session import Store

from conftest import SECRET
from conftest import STORE_BUILDERS


class User(UserMixin):
    """A user whose Flask-Login id carries a version that a password change
    bumps, so remember-me cookies made before the change stop working
    (Flask-Login's "alternative tokens").
    """

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.version = 1

    def get_id(self) -> str:
        return f"{self.user_id}.{self.version}"


@pytest.fixture(params=["memory", "redis"])
def recipe_store(request: pytest.FixtureRequest) -> Store:
    return STORE_BUILDERS[request.param](request)


def make_app(store: Store, **config: t.Any) -> Flask:
    """The recipes' app: Flask-Login, Flask-WTF's CSRFProtect and the user
    index on Flask-Login's own key; nothing else configured.
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        TESTING=True,
        CONNECT_SESSION_STORE=store,
        CONNECT_SESSION_USER_KEY="_user_id",  # Flask-Login's key
    )
    app.config.update(config)
    sessions = ConnectSession(app)
    login_manager = LoginManager(app)
    CSRFProtect(app)
    users = {name: User(name) for name in ("ann", "bob")}

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        name, _, version = user_id.partition(".")
        user = users.get(name)
        return user if user is not None and str(user.version) == version else None

    @app.get("/form")
    def form() -> str:
        return generate_csrf()

    @app.post("/login")
    def login() -> str:
        user = users[request.form["name"]]
        session.regenerate(keep=True)  # a new id; the CSRF token stays
        login_user(user, remember=request.form.get("remember") == "1")
        return session.id

    @app.post("/logout")
    @login_required
    def logout() -> str:
        logout_user()
        session.destroy()
        flash("Logged out.")  # lands in a brand-new session
        return "bye"

    @app.post("/logout-reversed")
    @login_required
    def logout_reversed() -> str:
        session.destroy()
        logout_user()
        return "bye"

    @app.post("/reset")
    def reset() -> str:
        session.regenerate()  # a new id and an empty session
        return "reset"

    @app.get("/me")
    @login_required
    def me() -> dict[str, t.Any]:
        return {"user": current_user.user_id, "fresh": session.get("_fresh")}

    @app.get("/fresh")
    @fresh_login_required
    def fresh() -> str:
        return "fresh"

    @app.post("/password")
    @fresh_login_required
    def change_password() -> str:
        old_id = current_user.get_id()
        current_user.version += 1  # stands for storing the new password hash
        sessions.revoke(old_id, keep_current=True)  # every other device
        session.regenerate(keep=True)
        login_user(current_user)  # the new id; old remember-me cookies fail
        return "changed"

    @app.get("/flashes")
    def flashes() -> list[str]:
        return get_flashed_messages()

    return app


def csrf(client: FlaskClient) -> str:
    return client.get("/form").text


def login(
    app: Flask, name: str = "ann", *, remember: bool = False, agent: str = "Browser"
) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    data = {"name": name, "csrf_token": csrf(client), "remember": "1" if remember else ""}
    assert client.post("/login", data=data).status_code == 200
    return client


def post(client: FlaskClient, path: str, token: str | None = None) -> int:
    return client.post(path, data={"csrf_token": token or csrf(client)}).status_code


# -- Flask-Login ---------------------------------------------------------------


def test_login_regenerates_and_replaces_the_csrf_token(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    client = app.test_client()
    token = csrf(client)
    before = client.get_cookie("connect.sid")
    assert before is not None
    sid = client.post("/login", data={"name": "ann", "csrf_token": token}).text
    assert recipe_store.get(sid) is not None
    assert client.get_cookie("connect.sid").value != before.value  # type: ignore[union-attr]
    # CONNECT_SESSION_REGENERATE_DROP: the token known before login is void
    # after it; forms rendered after login carry the new one.
    assert client.post("/reset", data={"csrf_token": token}).status_code == 400
    assert post(client, "/reset") == 200


def test_a_csrf_token_planted_before_login_is_void_after_it(recipe_store: Store) -> None:
    """The attacker plants his own session (and so his own Flask-WTF token)
    in the victim's browser; the victim logs in; the attacker's forged POST
    carrying that token is refused.
    """
    app = make_app(recipe_store)
    emails: list[str] = []

    @app.post("/email")
    @login_required
    def change_email() -> str:
        emails.append(request.form["email"])
        return "changed"

    attacker = app.test_client()
    token = csrf(attacker)  # the attacker's own session and token
    planted = attacker.get_cookie("connect.sid")
    assert planted is not None
    victim = app.test_client()
    victim.set_cookie("connect.sid", planted.value)  # e.g. from a sibling subdomain
    # The victim's login form is rendered in the planted session: same token.
    assert csrf(victim) == token
    assert victim.post("/login", data={"name": "ann", "csrf_token": token}).status_code == 200
    forged = victim.post("/email", data={"email": "evil@example.com", "csrf_token": token})
    assert forged.status_code == 400
    assert emails == []
    # The victim's own forms work.
    assert victim.post("/email", data={"email": "ann@example.com", "csrf_token": csrf(victim)})
    assert emails == ["ann@example.com"]


@pytest.mark.parametrize("remember", [False, True])
def test_logout_removes_both_cookies(recipe_store: Store, remember: bool) -> None:
    """``logout_user()`` then ``session.destroy()``, with no configuration:
    Flask-Login's order to delete the remember-me cookie (``_remember``) is
    a key ``CONNECT_SESSION_KEEP_ON_DESTROY`` keeps by default.
    """
    app = make_app(recipe_store)
    client = login(app, remember=remember)
    assert (client.get_cookie("remember_token") is not None) is remember
    assert post(client, "/logout") == 200
    assert client.get_cookie("remember_token") is None
    assert client.get_cookie("connect.sid") is not None  # the new session of the flash
    assert client.get("/flashes").json == ["Logged out."]
    assert client.get("/me").status_code == 401


def test_the_trap_without_keep_on_destroy(recipe_store: Store) -> None:
    """With ``CONNECT_SESSION_KEEP_ON_DESTROY = []``, logout_user() then
    destroy() loses Flask-Login's order to delete the remember-me cookie, and
    the user is logged back in; destroy() then logout_user() works either way.
    """
    app = make_app(recipe_store, CONNECT_SESSION_KEEP_ON_DESTROY=[])
    client = login(app, remember=True)
    post(client, "/logout")
    assert client.get_cookie("remember_token") is not None
    assert client.get("/me").status_code == 200
    client = login(app, remember=True)
    post(client, "/logout-reversed")
    assert client.get_cookie("remember_token") is None
    assert client.get("/me").status_code == 401


def test_remember_me_across_a_session_expiry(recipe_store: Store) -> None:
    app = make_app(recipe_store, CONNECT_SESSION_COOKIE={"max_age": 1})
    client = login(app, remember=True)
    old = client.get_cookie("connect.sid")
    time.sleep(1.6)  # the session expires (the store's and the cookie's)
    response = client.get("/me")
    assert response.json == {"user": "ann", "fresh": False}  # from the cookie
    new = client.get_cookie("connect.sid")
    assert new is not None and old is not None and new.value != old.value
    assert client.get("/fresh").status_code == 401  # not a fresh login
    without = login(app, remember=False)
    time.sleep(1.6)
    assert without.get("/me").status_code == 401


def test_strong_session_protection(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    app.login_manager.session_protection = "strong"  # type: ignore[attr-defined]
    client = login(app, remember=True, agent="Browser")
    assert client.get("/me").status_code == 200
    # Another browser presenting the stolen cookies: logged out, both ways.
    assert client.get("/me", headers={"User-Agent": "Thief"}).status_code == 401
    assert client.get_cookie("remember_token") is None
    assert client.get("/me").status_code == 401


def test_fresh_login(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    client = login(app, remember=True)
    assert client.get("/fresh").status_code == 200
    client.delete_cookie("connect.sid")  # a new browser session
    assert client.get("/me").json == {"user": "ann", "fresh": False}
    assert client.get("/fresh").status_code == 401
    data = {"name": "ann", "csrf_token": csrf(client)}
    client.post("/login", data=data)
    assert client.get("/fresh").status_code == 200


# -- Flask-WTF -----------------------------------------------------------------


def test_csrf_token_replaced_by_a_plain_regenerate(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    client = app.test_client()
    token = csrf(client)
    assert post(client, "/reset", token) == 200  # regenerate() empties the session
    assert post(client, "/reset", token) == 400  # the old form's token is refused
    assert csrf(client) != token
    assert post(client, "/reset") == 200


def test_form_posted_after_logout_is_rejected(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    client = login(app)
    token = csrf(client)
    assert post(client, "/logout", token) == 200
    data = {"name": "ann", "csrf_token": token}
    assert client.post("/login", data=data).status_code == 400


# -- log out everywhere after a password change ------------------------------


def test_password_change_logs_out_everywhere(recipe_store: Store) -> None:
    app = make_app(recipe_store)
    phone = login(app, remember=True, agent="Phone")
    laptop = login(app, agent="Laptop")
    other_user = login(app, "bob")
    assert post(laptop, "/password") == 200
    assert laptop.get("/me").json == {"user": "ann", "fresh": True}
    with app.test_request_context():
        listed = app.extensions["connect_session"].user_sessions("ann.2")
        assert [info.user_agent for info in listed] == ["Laptop"]
        assert app.extensions["connect_session"].user_sessions("ann.1") == []
    # The phone's session is gone and its remember-me cookie no longer loads.
    assert phone.get("/me").status_code == 401
    assert phone.get("/me").status_code == 401
    assert other_user.get("/me").status_code == 200


def test_flash_before_destroy_survives_when_kept(recipe_store: Store) -> None:
    """A kept key still in the session at the end of the request is saved
    in the new session: here Flask's ``_flashes``, flashed before destroy().
    """
    for keep, expected in ((["_remember"], []), (["_remember", "_flashes"], ["Goodbye."])):
        app = make_app(recipe_store, CONNECT_SESSION_KEEP_ON_DESTROY=keep)

        @app.post("/goodbye")
        def goodbye() -> str:
            flash("Goodbye.")
            session.destroy()
            return "bye"

        client = app.test_client()
        post(client, "/goodbye")
        assert client.get("/flashes").json == expected  # unless kept, gone with the session


def test_kept_keys_are_per_app(recipe_store: Store) -> None:
    """One ``ConnectSession`` set up on two apps: each keeps the keys its
    own config names.
    """
    sessions = ConnectSession()
    apps = []
    for keep in (["_flashes"], []):
        app = Flask(__name__)
        app.config.update(
            SECRET_KEY=SECRET,
            TESTING=True,
            CONNECT_SESSION_STORE=recipe_store,
            CONNECT_SESSION_KEEP_ON_DESTROY=keep,
        )
        sessions.init_app(app)

        @app.post("/goodbye")
        def goodbye() -> str:
            flash("Goodbye.")
            session.destroy()
            return "bye"

        @app.get("/flashes")
        def flashes() -> list[str]:
            return get_flashed_messages()

        apps.append(app)
    for app, expected in zip(apps, (["Goodbye."], []), strict=True):
        client = app.test_client()
        client.post("/goodbye")
        assert client.get("/flashes").json == expected
