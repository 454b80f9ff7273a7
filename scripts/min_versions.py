"""Print pip constraints pinning each runtime dependency to its declared floor.

Reads ``install_requires`` and the runtime extras of setup.cfg (every extra
but the tool ones: test, dev, docs), so raising a floor there is all it takes.
``scripts/test`` installs the package with these constraints in a separate
virtualenv and runs the core tests against them, as the pallets projects test
their minimum versions.
"""

from __future__ import annotations

import configparser
import pathlib
import re
import sys

TOOL_EXTRAS = {"test", "dev", "docs"}
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def floors(setup_cfg: pathlib.Path) -> dict[str, str]:
    """Return ``{distribution: floor}`` for the runtime requirements."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    lines = config["options"]["install_requires"].splitlines()
    extras = config["options.extras_require"]
    for extra in extras:
        if extra not in TOOL_EXTRAS:
            lines += extras[extra].splitlines()
    result: dict[str, str] = {}
    for line in lines:
        match = _FLOOR.match(line)
        if match:
            result[match[1].lower()] = match[3]
    return result


def main() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    for name, version in sorted(floors(root / "setup.cfg").items()):
        sys.stdout.write(f"{name}=={version}\n")


if __name__ == "__main__":
    main()
