import tomllib

from flask import Flask
from flask_connect_session import ConnectSession

connect_session = ConnectSession()


def create_app():
    app = Flask(__name__)
    app.config.from_file("config.toml", load=tomllib.load, text=False)
    app.config.from_prefixed_env()  # after from_file, so the environment wins
    connect_session.init_app(app)
    return app
