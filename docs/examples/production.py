import redis
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from flask_connect_session import ConnectSession


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_pyfile("settings.py")  # SECRET_KEY, from the instance folder
    app.config["CONNECT_SESSION_STORE"] = redis.Redis.from_url(
        "rediss://sessions:s3cret@redis.internal:6380/0",
        ssl_ca_certs="/etc/ssl/private-ca.pem",
    )
    app.config["CONNECT_SESSION_COOKIE"] = {"secure": "auto", "samesite": "Lax"}
    app.config["CONNECT_SESSION_TOUCH_AFTER"] = 60  # a read extends the lifetime once a minute
    ConnectSession(app)
    # Behind one reverse proxy that sets X-Forwarded-For, -Proto and -Host.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    return app
