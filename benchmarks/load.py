"""Load test: gunicorn workers sharing sessions in Redis, then verify every one.

Starts its own redis-server (free loopback port) and a gunicorn with several
sync workers serving a Flask app on ``RedisStore``, creates many sessions,
then drives the app for a bounded time with many client threads. Each session
is shared by two clients that hit it concurrently; each keeps its own cookie
jar and a record of what it was acknowledged. Every request increments the
client's own counter key in the session and appends a unique marker to the
client's own list key (different keys, so no concurrent update may be lost:
docs/behaviour.rst, "Concurrency"). At the end every session is checked in Redis and through
a final GET via the app: 0 lost updates, 0 cross-session leaks, 0 errors.

    python benchmarks/load.py [--seconds 30] [--threads 32] [--sessions 500] [--workers 4]

Prints throughput, latency percentiles, errors and the verification result
(``--json`` for a machine-readable summary); exits 1 on any error, loss or
leak, 130 on Ctrl-C. Everything it starts is stopped at the end, on Ctrl-C
too. Loopback only. See LOAD.md here for results.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import http.client
import http.cookies
import json
import os
import platform
import random
import secrets
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
import types
import typing as t
from pathlib import Path

# The tests' server helpers (free ports, readiness, clean stop) serve here too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
if t.TYPE_CHECKING:
    from gunicorn_server import GunicornServer

HOST = "127.0.0.1"
COOKIE_NAME = "connect.sid"
#: Socket timeout of every client request: a hung server fails the run.
REQUEST_TIMEOUT = 10.0

APP_SOURCE = textwrap.dedent(
    """
    import os

    from flask import Flask, request, session

    from flask_connect_session import ConnectSession

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="load test secret",
        CONNECT_SESSION_STORE=os.environ["LOAD_STORE_URL"],
    )
    ConnectSession(app)


    @app.post("/create")
    def create():
        session["label"] = request.get_json()["label"]
        return {"id": session.id, "label": session["label"]}


    @app.post("/hit")
    def hit():
        body = request.get_json()
        if session.new:  # the cookie's session is gone: report, write nothing
            return {"id": session.id, "lost": True}, 410
        client = body["client"]
        counter = f"n{client}"
        session[counter] = session.get(counter, 0) + 1
        session.setdefault(f"log{client}", []).append(body["seq"])
        return {"id": session.id, "label": session.get("label"), "n": session[counter]}


    @app.get("/get")
    def get():
        return {"id": session.id, "new": session.new, "data": dict(session)}
    """
)


# --------------------------------------------------------------------------
# Servers.
# --------------------------------------------------------------------------


def start_gunicorn(workdir: Path, store_url: str, workers: int) -> GunicornServer:
    """``gunicorn --workers N`` over :data:`APP_SOURCE` on a free loopback port,
    returned once every worker has booted.
    """
    from gunicorn_server import GunicornServer

    (workdir / "load_app.py").write_text(APP_SOURCE)
    server = GunicornServer(
        "load_app:app",
        workers=workers,
        log_path=workdir / "gunicorn.log",
        env={**os.environ, "LOAD_STORE_URL": store_url},
        pythonpath=[workdir],
        cwd=workdir,
        extra_args=["--backlog=2048", "--graceful-timeout=5", "--timeout=30"],
    )
    return server.start()


# --------------------------------------------------------------------------
# Clients.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class SessionRef:
    """One session of the run: its id, its label and its two owners."""

    index: int
    sid: str
    label: str
    cookie: str
    owners: tuple[int, ...]


class Http:
    """A minimal HTTP/1.1 client on one reconnecting connection (loopback)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)

    def request(
        self, method: str, path: str, cookie: str, body: dict[str, t.Any] | None = None
    ) -> tuple[int, dict[str, t.Any] | None, str | None]:
        """Return status, JSON body (or ``None``) and the new session cookie
        value if one was set.
        """
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request reconnects
            raise
        if response.will_close:
            self.conn.close()
        new_cookie = None
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            jar.load(header)
            if COOKIE_NAME in jar:
                new_cookie = jar[COOKIE_NAME].value
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed, new_cookie

    def close(self) -> None:
        self.conn.close()


@dataclasses.dataclass
class ClientStats:
    """What one client thread saw and was acknowledged."""

    requests: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    #: session index -> markers acknowledged with a 200, in order.
    acked: dict[int, list[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    #: session index -> markers of failed requests (may or may not be stored).
    unknown: dict[int, set[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(set)
    )
    #: answers that named another session or label (a leak seen live).
    wrong_answers: list[str] = dataclasses.field(default_factory=list)


def run_client(
    client: int,
    port: int,
    sessions: list[SessionRef],
    deadline: float,
    max_requests: int,
    stop: threading.Event,
    stats: ClientStats,
) -> None:
    """Hit this client's sessions in random order until the deadline."""
    rng = random.Random(client)
    jars = {ref.index: ref.cookie for ref in sessions}  # this client's own cookies
    web = Http(port)
    try:
        for seq in range(max_requests):
            if stop.is_set() or time.monotonic() >= deadline:
                return
            ref = rng.choice(sessions)
            marker = f"{client}:{seq}"
            start = time.perf_counter()
            stats.requests += 1
            try:
                status, body, new_cookie = web.request(
                    "POST", "/hit", jars[ref.index], {"client": client, "seq": marker}
                )
            except (OSError, http.client.HTTPException) as exc:
                stats.errors[type(exc).__name__] += 1
                stats.unknown[ref.index].add(marker)
                continue
            stats.latencies.append(time.perf_counter() - start)
            if new_cookie is not None:
                jars[ref.index] = new_cookie
            if status != 200 or body is None:
                stats.errors[f"HTTP {status}"] += 1
                stats.unknown[ref.index].add(marker)
                continue
            if body.get("id") != ref.sid or body.get("label") != ref.label:
                stats.wrong_answers.append(
                    f"client {client} on session {ref.index}: answered {body}"
                )
            stats.acked[ref.index].append(marker)
    finally:
        web.close()


def create_sessions(port: int, count: int, threads: int) -> list[SessionRef]:
    """Create ``count`` sessions, each with a unique label, in parallel."""
    refs: list[SessionRef | None] = [None] * count
    failures: list[str] = []

    def work(indexes: range) -> None:
        web = Http(port)
        try:
            for index in indexes:
                label = f"S{index}-{secrets.token_hex(4)}"
                status, body, cookie = web.request("POST", "/create", "", {"label": label})
                if status != 200 or body is None or cookie is None:
                    failures.append(f"creating session {index}: HTTP {status} {body}")
                    continue
                owners = tuple(sorted({index % threads, (index + threads // 2) % threads}))
                refs[index] = SessionRef(index, body["id"], label, cookie, owners)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"creating sessions: {exc!r}")
        finally:
            web.close()

    workers = [
        threading.Thread(target=work, args=(range(i, count, threads),)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    if failures or any(ref is None for ref in refs):
        raise RuntimeError("could not create the sessions: " + "; ".join(failures[:5]))
    return [ref for ref in refs if ref is not None]


# --------------------------------------------------------------------------
# Verification.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Verification:
    sessions: int = 0
    checked_via_app: int = 0
    acked_updates: int = 0
    lost_updates: int = 0
    leaks: int = 0
    corrupt: int = 0
    app_mismatches: int = 0
    stray_sessions: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost_updates
            or self.leaks
            or self.corrupt
            or self.app_mismatches
            or self.stray_sessions
        )

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


def expected_keys(ref: SessionRef) -> set[str]:
    return {"label"} | {f"{kind}{c}" for c in ref.owners for kind in ("n", "log")}


def check_session(
    ref: SessionRef, data: dict[str, t.Any], stats: list[ClientStats], result: Verification
) -> None:
    """Compare one session's stored data with what its owners were told."""
    if data.get("label") != ref.label:
        result.leaks += 1
        result.problem(f"session {ref.index}: label {data.get('label')!r}, not {ref.label!r}")
    foreign = set(data) - expected_keys(ref)
    if foreign:
        result.leaks += len(foreign)
        result.problem(f"session {ref.index}: keys of other clients {sorted(foreign)}")
    for client in ref.owners:
        acked = stats[client].acked.get(ref.index, [])
        unknown = stats[client].unknown.get(ref.index, set())
        result.acked_updates += len(acked)
        log = data.get(f"log{client}", [])
        if not isinstance(log, list):
            result.corrupt += 1
            result.problem(f"session {ref.index}: log{client} is {log!r}")
            continue
        strangers = [m for m in log if not str(m).startswith(f"{client}:")]
        if strangers:
            result.leaks += len(strangers)
            result.problem(f"session {ref.index}: log{client} holds {strangers[:3]}")
        # Failed requests may or may not have been applied: drop those.
        kept = [m for m in log if m not in unknown]
        missing = len(set(acked) - set(kept))
        result.lost_updates += missing
        if missing or kept != acked:
            result.problem(
                f"session {ref.index} client {client}: {missing} acknowledged updates lost"
                f" ({len(acked)} acknowledged, {len(kept)} stored)"
            )
        counter = data.get(f"n{client}", 0)
        if not isinstance(counter, int) or counter < len(acked):
            result.lost_updates += 0 if missing else 1
            result.problem(f"session {ref.index} client {client}: counter {counter!r}")
        elif counter != len(log) or counter > len(acked) + len(unknown):
            result.corrupt += 1
            result.problem(
                f"session {ref.index} client {client}: counter {counter},"
                f" {len(log)} logged, {len(acked)} acknowledged"
            )


def verify(
    redis_client: t.Any, port: int, refs: list[SessionRef], stats: list[ClientStats]
) -> Verification:
    """Check every session in Redis, then through a final GET via the app."""
    result = Verification(sessions=len(refs))
    stored = {
        key.decode()[len("sess:") :] for key in redis_client.scan_iter(match="sess:*", count=1000)
    }
    expected_sids = {ref.sid for ref in refs}
    result.stray_sessions = len(stored - expected_sids)
    if result.stray_sessions:
        result.problem(f"{result.stray_sessions} sessions in Redis that no client created")
    web = Http(port)
    try:
        for ref in refs:
            raw = redis_client.get(f"sess:{ref.sid}")
            try:
                document = json.loads(raw) if raw is not None else None
            except ValueError:
                document = None
            if not isinstance(document, dict) or not isinstance(document.get("cookie"), dict):
                result.corrupt += 1
                result.problem(f"session {ref.index}: stored value {raw!r:.80}")
                continue
            data = {k: v for k, v in document.items() if k != "cookie"}
            check_session(ref, data, stats, result)
            status, body, _ = web.request("GET", "/get", ref.cookie)
            result.checked_via_app += 1
            if status != 200 or body is None or body.get("id") != ref.sid or body["data"] != data:
                result.app_mismatches += 1
                result.problem(f"session {ref.index}: the app answered {status} {body}")
    finally:
        web.close()
    return result


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def _interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration (30)")
    parser.add_argument("--threads", type=int, default=32, help="client threads (32)")
    parser.add_argument("--sessions", type=int, default=500, help="sessions (500)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (4)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="cap on requests per client thread (1,000,000)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary too")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads < 1 or args.sessions < 1 or args.workers < 1:
        parser.error("--seconds, --threads, --sessions and --workers must be positive")
    if args.seconds > 3600:
        parser.error("--seconds is at most 3600")
    if shutil.which("redis-server") is None:
        parser.error("redis-server not found: apt-get install redis-server")

    from server_fixtures import RedisServer

    signal.signal(signal.SIGTERM, _interrupt)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    gunicorn: GunicornServer | None = None
    with tempfile.TemporaryDirectory(prefix="fcs-load-") as tmp:
        workdir = Path(tmp)
        (workdir / "redis").mkdir()
        redis_server = RedisServer(str(shutil.which("redis-server")), workdir / "redis")
        try:
            redis_server.start()
            gunicorn = start_gunicorn(workdir, redis_server.url, args.workers)
            print(
                f"redis-server on {redis_server.url}, gunicorn --workers={args.workers}"
                f" on {gunicorn.url}",
                flush=True,
            )
            refs = create_sessions(gunicorn.port, args.sessions, min(args.threads, 16))
            by_client: dict[int, list[SessionRef]] = collections.defaultdict(list)
            for ref in refs:
                for owner in ref.owners:
                    by_client[owner].append(ref)
            stats = [ClientStats() for _ in range(args.threads)]
            print(
                f"{len(refs)} sessions, {args.threads} clients, {args.seconds:g}s of load...",
                flush=True,
            )
            started = time.monotonic()
            deadline = started + args.seconds
            for client in range(args.threads):
                if not by_client[client]:
                    continue
                thread = threading.Thread(
                    target=run_client,
                    args=(
                        client,
                        gunicorn.port,
                        by_client[client],
                        deadline,
                        args.max_requests,
                        stop,
                        stats[client],
                    ),
                    name=f"client-{client}",
                )
                thread.start()
                threads.append(thread)
            for thread in threads:  # joined in slices, so Ctrl-C gets through
                while thread.is_alive():
                    thread.join(timeout=0.2)
            elapsed = time.monotonic() - started

            with redis_server.client() as redis_client:
                result = verify(redis_client, gunicorn.port, refs, stats)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping", file=sys.stderr)
            return 130
        except Exception as exc:
            print(f"load run failed: {exc!r}", file=sys.stderr)
            if gunicorn is not None:
                print(f"--- gunicorn log (tail) ---\n{gunicorn.tail()}", file=sys.stderr)
            return 1
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=REQUEST_TIMEOUT + 5)
            if gunicorn is not None:
                gunicorn.stop()
            redis_server.stop()

    latencies = sorted(x for s in stats for x in s.latencies)
    errors: collections.Counter[str] = collections.Counter()
    for s in stats:
        errors.update(s.errors)
    wrong = [w for s in stats for w in s.wrong_answers]
    total = sum(s.requests for s in stats)
    summary = {
        "seconds": round(elapsed, 2),
        "threads": args.threads,
        "sessions": args.sessions,
        "workers": args.workers,
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p90": round(percentile(latencies, 0.90) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round(latencies[-1] * 1000, 2) if latencies else None,
        },
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "wrong_answers": len(wrong),
        "acknowledged_updates": result.acked_updates,
        "lost_updates": result.lost_updates,
        "leaks": result.leaks,
        "corrupt_sessions": result.corrupt,
        "stray_sessions": result.stray_sessions,
        "checked_in_redis": result.sessions,
        "checked_via_app": result.checked_via_app,
        "app_mismatches": result.app_mismatches,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}",
    }
    passed = result.ok and not errors and not wrong
    summary["result"] = "PASS" if passed else "FAIL"

    lat = summary["latency_ms"]
    print(
        textwrap.dedent(
            f"""
            duration        {summary["seconds"]} s
            requests        {total} ({summary["requests_per_second"]} req/s)
            latency         p50 {lat["p50"]} ms, p90 {lat["p90"]} ms, p99 {lat["p99"]} ms,\
 max {lat["max"]} ms
            errors          {summary["errors"]} {dict(errors) or ""}
            wrong answers   {len(wrong)}
            verified        {result.sessions} sessions in Redis,\
 {result.checked_via_app} via the app
            acknowledged    {result.acked_updates} updates
            lost updates    {result.lost_updates}
            leaks           {result.leaks}
            corrupt         {result.corrupt}, stray sessions {result.stray_sessions},\
 app/Redis mismatches {result.app_mismatches}
            result          {summary["result"]}
            """
        ).rstrip()
    )
    for line in wrong[:10] + result.problems:
        print(f"  ! {line}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
