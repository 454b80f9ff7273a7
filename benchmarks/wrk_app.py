"""The app ``benchmarks/wrk_compare.py`` serves with gunicorn.

``BENCH_VARIANT`` picks the session implementation (``connect``,
``connect-touch-60`` with ``CONNECT_SESSION_TOUCH_AFTER = 60``,
``flask-session``, or the anchors ``flask-no-session`` and ``flask-cookie``,
Flask's own signed-cookie session), ``BENCH_REDIS_URL`` the Redis server. The app and its
views are ``bench.py``'s, so both benchmarks measure the same code.
"""

from __future__ import annotations

import os

import redis

from bench import cookie_session
from bench import flask_app
from bench import flask_session
from bench import no_session

url = os.environ["BENCH_REDIS_URL"]
variant = os.environ.get("BENCH_VARIANT")
if variant == "flask-session":
    app = flask_session(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url))
elif variant == "flask-no-session":
    app = no_session()
elif variant == "flask-cookie":
    app = cookie_session()
else:
    from flask_connect_session import ConnectSession

    touch = 60 if os.environ.get("BENCH_VARIANT") == "connect-touch-60" else 0
    app = flask_app(CONNECT_SESSION_STORE=url, CONNECT_SESSION_TOUCH_AFTER=touch)
    ConnectSession(app)
