from flask import Flask
from flask_connect_session import ConnectSession

app = Flask(__name__)
app.config.update(
    CONNECT_SESSION_STORE="redis://localhost:6379/0",
    CONNECT_SESSION_SECRET=["new secret", "old secret"],
    CONNECT_SESSION_COOKIE={"maxAge": 86400000},  # express units: ms
)
ConnectSession(app)
