"""mypy over the installed package: the package's layout exists only once installed (the
repository's folders are mapped under ``multi_task_orchestrator``), so the tree is installed
into a temporary folder first and checked there: the engine, the vault, the tools and the
server, with pydantic's plugin (pyproject's ``[tool.mypy]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKED = ("engine", "vault", "tools", "server")


def test_mypy_finds_no_error(tmp_path: Path) -> None:
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp_path]
    done = subprocess.run([*install, REPO], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    packages = [arg for name in CHECKED for arg in ("-p", f"multi_task_orchestrator.{name}")]
    mypy = [sys.executable, "-m", "mypy", "--config-file", REPO / "pyproject.toml", *packages]
    done = subprocess.run(mypy, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
