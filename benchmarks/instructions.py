"""CPU instructions per request of the Flask path, counted by valgrind.

Wall-clock timings on the project's shared 2-core machine move by 2x
between runs; callgrind counts instructions, which repeat exactly for the
same code and inputs whatever else the machine does. This script runs one
Python process per scenario and source tree under ``valgrind
--tool=callgrind``, once with K requests and once with none, so the
difference is the cost of K requests alone (startup and imports cancel).

Scenarios (MemoryStore, raw WSGI requests, no network): the view ignores the
session, reads one key, increments a counter, creates a session.

Compare two checkouts of the package (e.g. before and after a change)::

    apt-get install valgrind
    python3 benchmarks/instructions.py --requests 2000 . ../other-checkout

Each path is a source tree whose ``flask_connect_session`` package is put
first on ``sys.path``; the rest (Flask...) comes from the running Python.
``--config JSON`` adds app config to every run, e.g. the cost of protection
at rest::

    python3 benchmarks/instructions.py --requests 300 \
        --config '{"CONNECT_SESSION_HASH_IDS": true}' .
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

SCENARIOS = ("ignores", "reads", "increments", "creates")

#: The program each measured process runs: ``argv`` = scenario, requests,
#: extra config (JSON).
_PROGRAM = r"""
import gc
import itertools
import json
import sys

from flask import Flask, session
from flask_connect_session import ConnectSession

scenario, requests = sys.argv[1], int(sys.argv[2])
ids = itertools.count()


def genid(request):
    # The same ids on every run: a random id's signature has a varying
    # number of characters to escape, which varies the count.
    return f"benchmark-session-{next(ids):014d}"


app = Flask(__name__)
app.config.update(SECRET_KEY="benchmark secret", TESTING=True, CONNECT_SESSION_GENID=genid)
app.config.update(json.loads(sys.argv[3]))
ConnectSession(app)


@app.get("/ignores")
def ignores():
    return "ok"


@app.get("/reads")
def reads():
    return str(session.get("n"))


@app.get("/increments")
def increments():
    session["n"] = session.get("n", 0) + 1
    return "ok"


@app.get("/creates")
def creates():
    session["n"] = 1
    return "ok"


def start_response(status, headers, exc_info=None):
    return None


def call(path, cookie):
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": None,
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    body = app(environ, start_response)
    for _ in body:
        pass
    body.close()


# A session to read and increment, and a warm-up of every code path.
client = app.test_client()
client.get("/increments")
cookie = "connect.sid=" + client.get_cookie("connect.sid").value
for _ in range(50):
    call("/" + scenario, None if scenario == "creates" else cookie)
# What was loaded before the first request (modules, the app) is left out of
# garbage collection, as gunicorn's preload with gc.freeze() does: otherwise
# every full collection walks it, and the count per request would depend on
# how many objects the imported modules hold.
gc.collect()
gc.freeze()
for _ in range(requests):
    call("/" + scenario, None if scenario == "creates" else cookie)
"""


def count(tree: pathlib.Path, scenario: str, requests: int, config: str = "{}") -> int:
    """Return the instructions one process executes for ``requests``.

    :param config: extra app config, as JSON.
    """
    with tempfile.TemporaryDirectory() as tmp:
        script = pathlib.Path(tmp) / "run.py"
        script.write_text(_PROGRAM)
        out = pathlib.Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(script),
            scenario,
            str(requests),
            config,
        ]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if match is None:
            raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
        return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("trees", nargs="+", type=pathlib.Path, help="source trees to compare")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--config",
        default="{}",
        help="extra app config as JSON, e.g. '{\"CONNECT_SESSION_HASH_IDS\": true}'",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    trees = [tree.resolve() for tree in args.trees]
    results: dict[pathlib.Path, dict[str, float]] = {}
    for tree in trees:
        results[tree] = {}
        for scenario in SCENARIOS:
            base = count(tree, scenario, 0, args.config)
            total = count(tree, scenario, args.requests, args.config)
            results[tree][scenario] = (total - base) / args.requests
    print(f"instructions per request ({args.requests} requests, MemoryStore)")
    print(f"{'tree':<40}" + "".join(f"{s:>12}" for s in SCENARIOS))
    for tree in trees:
        row = "".join(f"{results[tree][s]:>12,.0f}" for s in SCENARIOS)
        print(f"{str(tree)[-40:]:<40}{row}")
    first = trees[0]
    for tree in trees[1:]:
        ratios = "".join(f"{results[tree][s] / results[first][s]:>12.3f}" for s in SCENARIOS)
        print(f"{'ratio to the first':<40}{ratios}")


if __name__ == "__main__":
    main()
