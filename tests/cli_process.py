"""The ``orchestrator`` command in a child process, as a user runs it (``cli`` to wait for
it, ``start_cli`` to leave it running): its own
``ORCHESTRATOR_HOME``, no ``ORCHESTRATOR_*`` setting of the environment running the tests, the
repository as the working folder. Every answer is checked to carry no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def home_with_secrets(home: Path, **secrets: str) -> Path:
    """``home`` with a vault holding ``secrets`` (name=value), each allowed for 127.0.0.1 only;
    the tests of host-bound secrets use ``localhost`` or 127.0.0.2 as the host they must not
    reach."""
    from multi_task_orchestrator.vault.store import Vault

    vault = Vault.open(home / "vault.db")
    for name, value in secrets.items():
        vault.set(name, value, allowed_hosts=["127.0.0.1"])
    vault.close()
    return home


def child_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a child on ``home``; ``settings`` are ORCHESTRATOR_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONIOENCODING="utf-8", **settings)
    return env


def cli(home: Path, *args: str | Path, timeout: float = 60, **settings: str) -> Result:
    """Run ``orchestrator ARGS`` on ``home`` and wait for it."""
    done = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *map(str, args)],
        cwd=REPO,
        env=child_env(home, **settings),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def start_cli(home: Path, *args: str | Path, **settings: str) -> subprocess.Popen[str]:
    """Start ``orchestrator ARGS`` on ``home`` and leave it running: its output on text pipes
    (``communicate`` reads them), no standard input."""
    return subprocess.Popen(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *map(str, args)],
        cwd=REPO,
        env=child_env(home, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )


def kill_if_running(process: subprocess.Popen[str]) -> None:
    """Kill a started ``orchestrator`` that has not ended (a test that failed half-way)."""
    if process.poll() is None:
        process.kill()
        process.communicate()
