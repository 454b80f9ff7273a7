"""The package's layering, read from its import statements: no import cycle,
a session core that knows no web framework, stores that know no request.

Imports under ``if t.TYPE_CHECKING:`` are left out (they never run);
imports inside functions count.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "flask_connect_session"

#: Modules of the session core: they decide, the drivers do the I/O.
CORE = ("core", "calls", "document", "cookie", "serialization", "signing", "provenance", "users")
#: Third-party packages tied to a web framework or to the request.
FRAMEWORKS = ("flask", "werkzeug", "quart")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Imports(ast.NodeVisitor):
    """The modules a module imports when it runs."""

    def __init__(self, package: str, modules: set[str]) -> None:
        self.package = package
        self.modules = modules
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            # "from . import document" imports a module, not the package.
            name = f"{target}.{alias.name}"
            self.names.add(name if name in self.modules else target)
            self.names.add(name)


def imports() -> dict[str, set[str]]:
    """Module name -> the names its import statements bring in."""
    found = {}
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    for path in paths:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        visitor = _Imports(package, modules)
        visitor.visit(ast.parse(path.read_text()))
        found[name] = visitor.names
    return found


def test_no_import_cycle() -> None:
    graph = imports()
    edges = {
        name: {dep for dep in deps if dep in graph and dep != name} for name, deps in graph.items()
    }

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in edges[node]:
                if dep == start:
                    return [*path, start]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [cycle for name in sorted(edges) if (cycle := cycle_from(name))]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", CORE)
def test_the_core_knows_no_web_framework(module: str) -> None:
    """The lifecycle, the document and their helpers are shared by the
    Flask and Quart drivers: none of them imports either framework.
    """
    names = imports()[f"flask_connect_session.{module}"]
    bad = sorted(n for n in names if n.split(".")[0] in FRAMEWORKS and not _format_only(n))
    assert not bad, f"{module} imports {bad}"


def _format_only(name: str) -> bool:
    # Flask's tagged JSON is a format (the one Flask's cookie session
    # stores) and werkzeug.http the Set-Cookie syntax: both pure functions,
    # shared by Flask and Quart, not the framework.
    return name.startswith(("flask.json.tag", "werkzeug.http"))


def test_stores_know_no_request() -> None:
    """Stores move documents by id: no Flask, no Werkzeug, no session core."""
    graph = imports()
    for name, names in graph.items():
        if not name.startswith("flask_connect_session.stores"):
            continue
        bad = sorted(
            n
            for n in names
            if n.split(".")[0] in FRAMEWORKS
            or n.startswith(("flask_connect_session.core", "flask_connect_session.interface"))
        )
        assert not bad, f"{name} imports {bad}"
