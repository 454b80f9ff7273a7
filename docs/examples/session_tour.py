from flask import Flask, request, session
from flask_connect_session import ConnectSession, StoreError

app = Flask(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
ConnectSession(app)


@app.post("/cart")
def add_to_cart():
    session.setdefault("cart", [])
    session["cart"].append(int(request.form["item"]))  # noticed: no session.modified = True
    session.cookie.max_age = 3600  # this session's cookie lives an hour
    return {"id": session.id, "cart": session["cart"]}  # session.id is read-only


@app.post("/login")
def login():
    session.regenerate(keep=True)  # a new id on login; keep=True keeps the cart
    session["user"] = request.form["name"]
    return {"id": session.id, "user": session["user"]}


@app.post("/logout")
def logout():
    session.destroy()  # gone from the store; the response deletes the cookie
    return {"user": None}


@app.errorhandler(StoreError)
def store_down(error):
    return "Sessions are down for maintenance, back soon.", 503
