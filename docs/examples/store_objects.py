import os

import cachelib
import redis
import sqlalchemy
from flask import Flask, session
from flask_sqlalchemy import SQLAlchemy
from flask_connect_session import ConnectSession

db = SQLAlchemy()


def use_a_redis_client(app):  # its pool, TLS and timeouts as you set them
    app.config["CONNECT_SESSION_STORE"] = redis.Redis.from_url(app.config["REDIS_URL"])


def use_flask_sqlalchemy(app):
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"  # in the instance folder
    db.init_app(app)  # before ConnectSession(app), which takes db's engine
    app.config["CONNECT_SESSION_STORE"] = db  # a Flask-SQLAlchemy object: its engine


def use_a_sqlalchemy_engine(app):
    path = os.path.join(app.instance_path, "sessions.db")
    app.config["CONNECT_SESSION_STORE"] = sqlalchemy.create_engine(f"sqlite:///{path}")


def use_a_cachelib_cache(app):  # any cachelib cache: MongoDB, DynamoDB, uWSGI...
    directory = os.path.join(app.instance_path, "cache")
    app.config["CONNECT_SESSION_STORE"] = cachelib.FileSystemCache(directory)


def create_app(use_store, **config):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a long random string"
    app.config.update(config)
    use_store(app)
    ConnectSession(app)

    @app.get("/")
    def index():
        session["views"] = session.get("views", 0) + 1
        return str(session["views"])

    return app
