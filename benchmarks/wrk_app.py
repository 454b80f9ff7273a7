"""The app ``benchmarks/wrk_compare.py`` serves with gunicorn.

``BENCH_VARIANT`` picks the session implementation (``connect`` or
``flask-session``), ``BENCH_REDIS_URL`` the Redis server.
"""

from __future__ import annotations

import os

import redis
from flask import Flask
from flask import session

app = Flask(__name__)
app.config["SECRET_KEY"] = "benchmark secret"
url = os.environ["BENCH_REDIS_URL"]
if os.environ.get("BENCH_VARIANT") == "flask-session":
    from flask_session import Session

    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(url),
        SESSION_SERIALIZATION_FORMAT="json",
    )
    Session(app)
else:
    from flask_connect_session import ConnectSession

    app.config["CONNECT_SESSION_STORE"] = url
    ConnectSession(app)


@app.get("/reads")
def reads() -> str:
    return str(session.get("n"))


@app.get("/increments")
def increments() -> str:
    session["n"] = session.get("n", 0) + 1
    return "x"
