# instance/settings.py (one per deployment, not in version control)
SECRET_KEY = "replace with secrets.token_hex(32)"
SECRET_KEY_FALLBACKS = ["the previous key, while cookies signed with it live"]
CONNECT_SESSION_KEY = "myapp.sid"
CONNECT_SESSION_STORE = "memory://"  # e.g. "rediss://:password@redis.internal:6380/0"
CONNECT_SESSION_COOKIE = {"max_age": 7200, "samesite": "Lax", "secure": "auto"}
