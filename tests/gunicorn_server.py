"""A real gunicorn on a free loopback port, for tests and benchmarks.

``tests/test_concurrency.py``, ``tests/stores/test_store_multiprocess.py``
and the load benchmarks all start gunicorn the same way through
:class:`GunicornServer`::

    server = GunicornServer("app:app", workers=2, log_path=tmp / "gunicorn.log")
    server.start()
    try:
        requests.get(server.url + "/")
    finally:
        server.stop()

The benchmarks import it as the tests do, with ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from server_fixtures import HOST
from server_fixtures import STOP_TIMEOUT
from server_fixtures import ServerStartError
from server_fixtures import _http_ok
from server_fixtures import _Process

#: Bound on gunicorn's start: the master listening and every worker booted
#: (and the health check answering, if asked for). Generous for a loaded
#: 2-core box.
START_TIMEOUT = 30.0

#: Log lines shown when start() fails.
_FAILURE_TAIL_LINES = 80

_LISTENING = re.compile(rf"Listening at: http://{re.escape(HOST)}:(\d+)")
_READY_MODULE = "_gunicorn_server_hooks"
_READY = re.compile(r"gunicorn_server: worker \d+ ready")

# Run in place of ``python -m gunicorn``, with gunicorn's arguments:
# - os.setsid(): gunicorn leads a process group of its own, so stop() can
#   SIGKILL the master and its workers at once. (_Process has no
#   start_new_session; the pid stays the master's, so the parent-death
#   signal _Process sets still reaches gunicorn.)
# - a post_worker_init hook, loaded by --config=python:<module>, logs a line
#   once a worker has imported the app: "Booting worker" comes before that,
#   so an app that fails to import would otherwise look ready.
_BOOTSTRAP = f"""\
import os, runpy, sys, types
os.setsid()
hooks = types.ModuleType({_READY_MODULE!r})
def post_worker_init(worker):
    worker.log.info("gunicorn_server: worker %s ready", worker.pid)
hooks.post_worker_init = post_worker_init
sys.modules[hooks.__name__] = hooks
sys.argv[0] = "gunicorn"
runpy.run_module("gunicorn", run_name="__main__")
"""


@functools.cache
def gunicorn_has(setting: str) -> bool:
    """Whether the installed gunicorn knows the setting named ``setting``."""
    from gunicorn.config import KNOWN_SETTINGS

    return any(s.name == setting for s in KNOWN_SETTINGS)


class GunicornServer:
    """One gunicorn serving ``app_spec`` (``module:variable``) on ``127.0.0.1``.

    It binds port 0 and reads the port gunicorn reports, so no other process
    can take the port between choosing and binding it. The control socket is
    always off where gunicorn has one (>= 24): it defaults to one path,
    ``~/.gunicorn/gunicorn.ctl``, that concurrent runs would fight over.

    ``workers``: worker processes. ``threads``: if given, the gthread worker
    with that many threads per worker; else gunicorn's sync worker.
    ``log_path``: gunicorn's stdout and stderr (appended to; :meth:`tail`
    shows only this run). ``env``: the server's environment (default: this
    process's). ``pythonpath``: directories put first on the server's
    ``PYTHONPATH``, followed by this interpreter's ``sys.path`` so the
    server imports the same packages. ``cwd``: the server's working
    directory. ``extra_args``: more gunicorn options, placed before the app
    (not ``--config``: start() passes its own, for the readiness hook; nor a
    ``--log-level`` above ``info``, which would hide the line it waits for).
    ``health_path``: if given, start() also waits until a GET of it answers
    200 with the body ``ok``. ``start_timeout``: bound on start().
    """

    def __init__(
        self,
        app_spec: str,
        *,
        workers: int,
        log_path: Path,
        threads: int | None = None,
        env: dict[str, str] | None = None,
        pythonpath: Sequence[Path] = (),
        cwd: Path | None = None,
        extra_args: Sequence[str] = (),
        health_path: str | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.app_spec = app_spec
        self.workers = workers
        self.threads = threads
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        if pythonpath:
            self.env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *sys.path])
        self.cwd = cwd
        self.extra_args = list(extra_args)
        self.health_path = health_path
        self.start_timeout = start_timeout
        self._proc: _Process | None = None
        self._port: int | None = None

    def argv(self) -> list[str]:
        """The command line that start() runs."""
        argv = [
            sys.executable,
            "-c",
            _BOOTSTRAP,
            f"--bind={HOST}:0",
            f"--workers={self.workers}",
            f"--config=python:{_READY_MODULE}",
        ]
        if self.threads is not None:
            argv += ["--worker-class=gthread", f"--threads={self.threads}"]
        if gunicorn_has("control_socket_disable"):
            argv.append("--no-control-socket")
        return [*argv, *self.extra_args, self.app_spec]

    @property
    def port(self) -> int:
        """The port gunicorn listens on (only once started)."""
        if self._port is None:
            raise RuntimeError("gunicorn is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The master's pid (``None`` before start())."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> Self:
        """Start gunicorn and wait until every worker has imported the app.

        Raises :class:`server_fixtures.ServerStartError`, with the tail of
        the log, if gunicorn exits or is not ready within ``start_timeout``;
        nothing is left running then. Returns ``self``.
        """
        if self._proc is not None:
            raise RuntimeError("gunicorn is already started")
        proc = _Process(self.argv(), self.log_path, env=self.env, cwd=self.cwd)
        self._proc = proc
        proc.start()
        try:
            proc.wait_until(self._booted, f"gunicorn {self.app_spec}", self.start_timeout)
            if self.health_path is not None:
                proc.wait_until(
                    lambda: _http_ok(self.url + str(self.health_path)),
                    f"gunicorn {self.app_spec}: GET {self.health_path}",
                    self.start_timeout,
                )
        except ServerStartError as exc:
            # A longer tail than _Process gives: a worker's import error is
            # followed by gunicorn's own ~30-line HaltServer traceback.
            reason = str(exc).split("\n", 1)[0]
            output = self.tail(_FAILURE_TAIL_LINES)
            self.stop()
            raise ServerStartError(f"{reason} (whole log: {self.log_path})", output) from None
        except BaseException:
            self.stop()
            raise
        return self

    def _booted(self) -> bool:
        assert self._proc is not None
        output = self._proc.output()
        match = _LISTENING.search(output)
        if match is None or len(_READY.findall(output)) < self.workers:
            return False
        self._port = int(match.group(1))
        return True

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers gracefully); SIGKILL the
        whole process group if it is still there after ``STOP_TIMEOUT``.

        Safe to call more than once, and on a server that failed to start.
        """
        proc = self._proc
        if proc is None or proc.popen is None:
            return
        popen = proc.popen
        try:
            if popen.poll() is None:
                popen.terminate()
                try:
                    popen.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            # Also when the master is gone: a worker it left behind (a master
            # that crashed or hung) is still in the group, and while it is,
            # no other process can be given the group's id.
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is empty: nothing left behind
            proc.stop()  # reaps the master, closes the log

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines gunicorn printed in this run."""
        return "" if self._proc is None else self._proc.tail(lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.stop()
