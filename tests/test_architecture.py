"""The dependency direction of DESIGN's layout, read from the source: ``server → tools →
engine, vault``, and ``vault`` may use the engine's interfaces but the engine never imports the
vault (nor the tools or the server)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "multi_task_orchestrator"
FORBIDDEN = {
    "engine": ("vault", "tools", "server"),
    "vault": ("tools", "server"),
    "tools": ("server",),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_one_way(folder: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / folder).rglob("*.py")
        for name in imported_modules(path)
        for other in FORBIDDEN[folder]
        if name == f"{PACKAGE}.{other}" or name.startswith(f"{PACKAGE}.{other}.")
    }
    assert wrong == set()


def test_the_graph_algorithms_know_nothing_of_documents() -> None:
    """``engine/dag.py`` works on plain mappings of node -> dependencies; the document's modules
    adapt tasks to it, never the other way round."""
    assert {
        name for name in imported_modules(REPO / "engine" / "dag.py") if name.startswith(PACKAGE)
    } == set()


@pytest.mark.parametrize("folder", ["server", "tools"])
def test_the_server_and_the_tools_use_only_the_engines_public_api(folder: str) -> None:
    """``engine/__init__.py`` is the engine's API: callers outside never import its modules, so
    the inside can move without breaking them."""
    inside = f"{PACKAGE}.engine."
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / folder).rglob("*.py")
        for name in every_import(path)
        if name.startswith(inside) and name != f"{PACKAGE}.engine.registry"
    }
    assert wrong == set()


# The engine's interfaces the vault implements or uses (errors, redaction, host rules).
VAULT_MAY_USE = {"atomic", "errors", "issues", "redaction", "secret_hosts", "secrets"}


def test_the_vault_uses_only_the_engines_interfaces() -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / "vault").rglob("*.py")
        for name in every_import(path)
        if name.startswith(f"{PACKAGE}.engine.")
        and name.removeprefix(f"{PACKAGE}.engine.") not in VAULT_MAY_USE
    }
    assert wrong == set()


def test_no_import_circle_among_the_modules() -> None:
    """Module-level imports (those run when a module loads; not the ones inside functions or
    under TYPE_CHECKING) form no circle."""
    modules = package_modules()
    graph = {
        module: {name for name in loading_imports(path) if name in modules and name != module}
        for module, path in modules.items()
    }
    assert [" <-> ".join(group) for group in import_circles(graph)] == []


def every_import(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever; ``from X import name`` counts ``X.name`` too
    (it may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def package_modules() -> dict[str, Path]:
    """Each module of the package (``multi_task_orchestrator.engine.store``, ...) and its file."""
    found = {}
    for folder in ("engine", "server", "tools", "vault"):
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((PACKAGE, *parts))] = path
    return found


def loading_imports(path: Path) -> set[str]:
    """The modules imported when ``path`` loads: top-level statements (and those in top-level
    ``try``/``if`` blocks), not ``if TYPE_CHECKING:``; ``from X import y`` counts X and X.y.
    (A package loads before its modules; that implicit step is not counted: a package that
    re-exports its modules is no circle.)"""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly
    connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups
