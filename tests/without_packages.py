"""Run Python code in a fresh interpreter in which some packages cannot be
imported, as if they were not installed (for the tests of what happens
without an optional dependency, or without pytest).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: Put first on ``sys.meta_path``: any import of a blocked top-level
#: package fails as it does when the package is not installed.
_BLOCKER = """
import sys


class _NotInstalled:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled(set(sys.argv[1].split(","))))
del sys.argv[1]
"""


def run_without(packages: str, code: str, *args: str) -> str:
    """Run ``code`` (its ``sys.argv[1:]`` is ``args``) with the comma-separated
    top-level ``packages`` not importable; return what it printed.

    :raises AssertionError: the code failed; the message holds its stderr.
    """
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKER + textwrap.dedent(code), packages, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
