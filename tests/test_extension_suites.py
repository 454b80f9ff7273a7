"""Flask-Login's and Flask-WTF's own test suites, run with our sessions.

Each suite is the project's published sdist, pinned by version and SHA-256,
downloaded once with pip into ``${XDG_CACHE_HOME:-~/.cache}/flask-connect-
session/extension-suites`` and run unchanged, twice, in a pytest
subprocess: with Flask's cookie session, then with
``tests/extension_suites/connect_everywhere.py``, which sets up
``ConnectSession`` (memory store, cookie name ``session``) in every Flask app
the suite creates. The project's own code is the sdist's (its ``src`` first
on ``PYTHONPATH``), so the tests run against the release they were written
for. A test that passes with the cookie session must pass with ours, unless
it is listed in :data:`DIFFERENCES` with the reason (none is today).

What the suites need (semantic-version, asgiref, Flask-Babel,
Flask-Reuploaded) is in the ``test`` extra. Without network the download
fails: the tests are skipped then, and fail under ``CI=true``.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from server_fixtures import express_cache_dir

pytestmark = pytest.mark.slow

#: The plugin that installs our sessions, and where it lives.
PLUGIN = "connect_everywhere"
PLUGIN_DIR = Path(__file__).resolve().parent / "extension_suites"
#: Bounds on one ``pip download`` and on one run of a suite.
DOWNLOAD_TIMEOUT = 300.0
SUITE_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class Suite:
    """A project's test suite, from its sdist on PyPI."""

    #: The project's name on PyPI.
    project: str
    #: The release, and the SHA-256 of its sdist (pip checks it).
    version: str
    sha256: str
    #: How many tests the suite runs, all passing with Flask's cookie session.
    tests: int

    def __str__(self) -> str:
        return f"{self.project}-{self.version}"


SUITES = (
    Suite(
        "Flask-Login",
        "0.6.3",
        "5e23d14a607ef12806c699590b89d0f0e0d67baeec599d75947bf9c147330333",
        114,
    ),
    # The release constraints/lock.txt installs, and the one before.
    Suite(
        "Flask-WTF",
        "1.3.0",
        "61d5dabc50c3df885c297dcbd80810443a5d632106c8a69cab8ce740f0cdd7cc",
        85,
    ),
    Suite(
        "Flask-WTF",
        "1.2.2",
        "79d2ee1e436cf570bccb7d916533fa18757a2f18c290accffab1b9a0b684666b",
        61,
    ),
)

#: Tests that pass with Flask's cookie session and, deliberately, not with
#: ours: ``"<suite>::<test id>"`` -> why. Empty: every one passes.
DIFFERENCES: dict[str, str] = {}


def test_the_locked_releases_are_the_ones_tested() -> None:
    """The Flask-Login and Flask-WTF that constraints/lock.txt installs have
    their suites here: after a re-lock that moves one, add its sdist.
    """
    lock = Path(__file__).resolve().parent.parent / "constraints" / "lock.txt"
    pins = dict(line.lower().split("==") for line in lock.read_text().splitlines() if "==" in line)
    tested = {(suite.project.lower(), suite.version) for suite in SUITES}
    for project in ("flask-login", "flask-wtf"):
        assert (project, pins[project]) in tested


# -- the sdists ----------------------------------------------------------------


def _unavailable(message: str) -> t.NoReturn:
    # A missing server binary skips locally and fails in CI; so does this.
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch(suite: Suite, base: Path) -> Path:
    """Return the source tree of ``suite``'s sdist, downloading and
    unpacking it into ``base`` unless that was done before.
    """
    target = base / str(suite)
    tree = target / "tree"
    stamp = tree / ".sha256"
    if stamp.exists() and stamp.read_text().strip() == suite.sha256:
        return next(p for p in tree.iterdir() if p.is_dir())
    shutil.rmtree(target, ignore_errors=True)
    download = target / "download"
    download.mkdir(parents=True)
    # pip takes a hash from a requirements file only.
    requirements = target / "requirements.txt"
    requirements.write_text(f"{suite.project}=={suite.version} --hash=sha256:{suite.sha256}\n")
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-binary=:all:",
        "--require-hashes",
        f"--dest={download}",
        f"--requirement={requirements}",
    ]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"pip download of {suite} timed out after {DOWNLOAD_TIMEOUT:.0f}s")
    if done.returncode != 0:
        _unavailable(f"pip could not download {suite}:\n{done.stderr[-2000:]}")
    (sdist,) = download.glob("*.tar.gz")
    assert _digest(sdist) == suite.sha256, sdist  # pip checked it; so do we
    with tarfile.open(sdist) as archive:
        # The "data" filter (no absolute paths, links out or devices) came
        # in Python 3.11.4; the archive's hash is pinned anyway.
        if hasattr(tarfile, "data_filter"):
            archive.extractall(tree, filter="data")
        else:  # pragma: no cover
            archive.extractall(tree)
    stamp.write_text(suite.sha256 + "\n")
    return next(p for p in tree.iterdir() if p.is_dir())


@pytest.fixture(scope="session")
def sources() -> cabc.Callable[[Suite], Path]:
    """``sources(suite)``: the unpacked sdist of ``suite`` (cached)."""
    base = express_cache_dir("extension-suites")
    base.mkdir(parents=True, exist_ok=True)

    def get(suite: Suite) -> Path:
        # Concurrent pytest processes wait for each other's download.
        with open(base / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return _fetch(suite, base)

    return get


# -- running a suite -----------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One run of a suite: each test's outcome, and the apps the plugin set up."""

    outcomes: dict[str, str]
    apps: int
    output: str

    def passed(self) -> set[str]:
        return {test for test, outcome in self.outcomes.items() if outcome == "passed"}


def _outcomes(report: Path) -> dict[str, str]:
    """Each test's outcome in a JUnit XML report: passed, failed or skipped."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcomes[test] = "failed"
        elif "skipped" in kinds:
            outcomes[test] = "skipped"
        else:
            outcomes[test] = "passed"
    return outcomes


def run_suite(source: Path, work: Path, *, ours: bool) -> Run:
    """Run the tests of the sdist unpacked in ``source``, with our sessions
    in every app if ``ours``, else with Flask's cookie session.
    """
    work.mkdir()
    report, count = work / "junit.xml", work / "apps"
    path = [str(source / "src"), str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        f"--rootdir={source}",
        str(source / "tests"),
    ]
    if ours:
        argv[4:4] = ["-p", PLUGIN]
        env["CONNECT_EVERYWHERE_COUNT"] = str(count)
    done = subprocess.run(
        argv,
        cwd=source,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert report.exists(), output[-3000:]
    apps = int(count.read_text()) if count.exists() else 0
    return Run(_outcomes(report), apps, output)


@pytest.mark.parametrize("suite", SUITES, ids=str)
def test_suite_passes_with_our_sessions(
    suite: Suite, sources: cabc.Callable[[Suite], Path], tmp_path: Path
) -> None:
    """Every test of the suite that passes with Flask's cookie session
    passes with ours, but for :data:`DIFFERENCES`.
    """
    source = sources(suite)
    cookie = run_suite(source, tmp_path / "cookie", ours=False)
    assert len(cookie.passed()) == len(cookie.outcomes) == suite.tests, cookie.output[-3000:]
    ours = run_suite(source, tmp_path / "ours", ours=True)
    assert ours.apps > 0, ours.output[-3000:]  # the plugin was at work
    assert ours.outcomes.keys() == cookie.outcomes.keys()
    broken = {f"{suite}::{test}" for test in cookie.passed() - ours.passed()}
    expected = {name for name in DIFFERENCES if name.startswith(f"{suite}::")}
    summary = f"{len(broken - expected)} broken: {sorted(broken - expected)}"
    assert broken == expected, f"{summary}\n{ours.output[-5000:]}"
