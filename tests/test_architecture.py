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
