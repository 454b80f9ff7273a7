"""Under load: gunicorn (4 workers) + Redis driven by wrk on loopback, this
extension against Flask-Session on the same setup.

    python benchmarks/wrk_compare.py [--seconds 10] [--connections 32] [--valkey]

Needs ``wrk`` (Debian package ``wrk``), gunicorn and Flask-Session. Starts its
own redis-server and gunicorn on free loopback ports and stops them.
"reads" and "increments" reuse one session cookie (taken from a first
request), so "increments" measures many overlapping writes to one session;
"increments, N sessions" spreads the requests over N sessions made first
(``--sessions``), as real traffic would be.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from bench import VALKEY_HELP  # noqa: E402 (after the path)
from bench import redis_binary  # noqa: E402

if t.TYPE_CHECKING:
    from gunicorn_server import GunicornServer


def gunicorn(variant: str, redis_url: str, log: Path) -> GunicornServer:
    """gunicorn -w 4 over ``wrk_app.py`` with one variant, not yet started."""
    from gunicorn_server import GunicornServer

    env = dict(os.environ, BENCH_VARIANT=variant, BENCH_REDIS_URL=redis_url)
    return GunicornServer(
        "wrk_app:app", workers=4, log_path=log, env=env, extra_args=["--chdir", str(HERE)]
    )


#: The apps compared (see wrk_app.py); the first is the baseline.
VARIANTS = ("flask-session", "connect", "connect-touch-60")
#: The anchors: Flask with no session (reads only: it cannot write one) and
#: Flask's signed-cookie session.
ANCHORS = ("flask-no-session", "flask-cookie")

#: wrk request script: each request carries the next of ``cookies``; the
#: threads start half the list apart.
WRK_SCRIPT = """
local cookies = {%s}
local threads, i = 0, 0
setup = function(thread)
  thread:set("first", threads * math.floor(#cookies / 2))
  threads = threads + 1
end
init = function(args) i = first end
request = function()
  i = i %% #cookies + 1
  return wrk.format(nil, nil, {["Cookie"] = cookies[i]})
end
"""


def wrk(
    url: str, cookies: list[str], seconds: int, connections: int, script: Path
) -> dict[str, float]:
    script.write_text(WRK_SCRIPT % ", ".join(f'"{cookie}"' for cookie in cookies))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if sockets else 0.0,
    }


def new_session(base: str) -> str:
    """Make a session with one request; return its ``name=value`` cookie."""
    response = requests.get(base + "/increments", timeout=5)
    response.raise_for_status()
    return response.headers["Set-Cookie"].split(";")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--valkey", action="store_true", help=VALKEY_HELP)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    from server_fixtures import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="fcs-wrk-"))
    server = RedisServer(redis_binary(args.valkey), tmp)
    server.start()
    results: dict[tuple[str, str], dict[str, float]] = {}
    try:
        for variant in VARIANTS + ANCHORS:
            server.client().flushall()
            with gunicorn(variant, server.url, tmp / f"{variant}.log") as app:
                base = app.url
                if variant == "flask-no-session":
                    runs: tuple[tuple[str, str, list[str]], ...] = (("reads", "reads", ["x=y"]),)
                else:
                    cookies = [new_session(base) for _ in range(args.sessions)]
                    runs = (
                        ("reads", "reads", cookies[:1]),
                        ("increments", "increments", cookies[:1]),
                        (f"increments, {args.sessions} sessions", "increments", cookies),
                    )
                for scenario, path, used in runs:
                    results[(variant, scenario)] = wrk(
                        f"{base}/{path}", used, args.seconds, args.connections, tmp / "run.lua"
                    )
    finally:
        server.stop()

    kind = "Valkey 9.1" if args.valkey else "Redis"
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, gunicorn -w 4, one {kind}")
    print(f"{'variant':18}{'scenario':28}{'req/s':>10}{'p99 ms':>10}{'errors':>8}")
    for (variant, scenario), r in results.items():
        errors = int(r["non2xx"] + r["socket_errors"])
        print(f"{variant:18}{scenario:28}{r['rps']:10.0f}{r['p99_ms']:10.2f}{errors:8d}")
    for variant in VARIANTS[1:] + ANCHORS:
        for scenario in dict.fromkeys(scenario for _, scenario in results):
            if (variant, scenario) not in results:
                continue
            ours, theirs = results[(variant, scenario)], results[(VARIANTS[0], scenario)]
            ratio = ours["rps"] / theirs["rps"]
            print(f"{variant} {scenario}: {ratio:.2f}x the requests/s of Flask-Session")


if __name__ == "__main__":
    main()
