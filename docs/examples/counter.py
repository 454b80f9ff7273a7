from flask import Flask, current_app, session
from flask_connect_session import ConnectSession

app = Flask(__name__)
app.config["SECRET_KEY"] = "a long random string"
app.config["CONNECT_SESSION_STORE"] = "redis://localhost:6379/0"
ConnectSession(app)


@app.post("/visits")
def visit():
    # Not session["visits"] += 1: two requests at once would both read 4 and
    # both write 5. Redis runs INCR for one request after the other.
    redis = current_app.extensions["connect_session"].store.client
    key = f"visits:{session.id}"
    session["counting"] = True  # stores a new session, so its id stays
    with redis.pipeline() as pipe:  # MULTI ... EXEC: both commands or neither
        visits, _ = pipe.incr(key).expire(key, 86400).execute()
    return str(visits)
