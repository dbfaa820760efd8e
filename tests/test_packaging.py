"""The distribution as pip builds it: one top-level import package, ``multi_task_orchestrator``,
holding every module of the repository's four folders (a subpackage missing from
``pyproject.toml``'s list would be left out of the wheel without a word)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("engine", "server", "tools", "vault")


def test_the_wheel_has_one_top_level_package_with_every_module(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("multi_task_orchestrator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"multi_task_orchestrator"}
    expected = {
        f"multi_task_orchestrator/{path.relative_to(REPO).as_posix()}"
        for folder in FOLDERS
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert expected - set(names) == set()
    shipped = {name for name in names if name.endswith(".py")} - {
        "multi_task_orchestrator/__init__.py"
    }
    # setuptools builds in the repository's build/ and keeps what an earlier build put there:
    # a module since turned into a package (runners/data.py -> runners/data/) would ship too
    assert shipped - expected == set(), "stale modules in the wheel: remove build/ and build again"
    assert "multi_task_orchestrator/py.typed" in names
    assert "multi_task_orchestrator/server/demo/pattern1_collect.yaml" in names
