"""A command starts with what it needs, not with what every command needs.

Counted, not timed: each command runs as a real ``orchestrator`` process under
``python -X importtime``, which names every module the process imports, and the heavy stacks a
command has no use for must not be among them (how long start-up takes: ``python -m bench
--only W10``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from multi_task_orchestrator.engine import DocumentChecker, RunStatus
from multi_task_orchestrator.engine.runners import BUILTIN, builtin
from multi_task_orchestrator.server.cli.parser import RUN_STATUSES

# what runs tasks or talks to the world: loaded by the task or the call that needs it
TASK_STACKS = {
    "anthropic",
    "openai",
    "playwright",
    "dask",
    "distributed",
    "apprise",
    "httpx",
    "httpcore",
    "jsonschema",
    "imap_tools",
    "aiosmtplib",
    "authlib",
}
RUNNERS = "multi_task_orchestrator.engine.runners"
UNUSED = ("browser_automation", "llm", "agent", "data_processing", "email", "mcp", "approval")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-X", "importtime", "-m", "multi_task_orchestrator.server.cli", *args]


def _imported(stderr: str) -> set[str]:
    """The top-level packages ``-X importtime`` reports, and ours by subpackage and by the
    module or package below it (``...engine.runners.http``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            for depth in (1, 3, 4):
                names.add(".".join(module.split(".")[:depth]))
    return names


def test_help_imports_nothing_but_the_parser(tmp_path: Path) -> None:
    done = subprocess.run(
        _command("--help"), env=_environment(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validate" in done.stdout and "schedule" in done.stdout
    imported = _imported(done.stderr)
    assert "multi_task_orchestrator.server.cli" in imported  # the report is the real one
    heavy = {"pydantic", "rich", "yaml", "mcp", "multi_task_orchestrator.engine", *TASK_STACKS}
    assert imported & heavy == set()


def test_validate_imports_no_task_stack_and_no_mcp(tmp_path: Path) -> None:
    document = tmp_path / "doc.yaml"
    document.write_text(
        "tasks:\n  - {id: a, type: http, config: {url: 'https://example.com'}}\n"
        "  - {id: b, type: delay, dependencies: [a, c]}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        _command("validate", str(document)),
        env=_environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "line 3, column 44: tasks[1].dependencies[1]: unknown dependency 'c'" in done.stderr
    imported = _imported(done.stderr)
    assert "multi_task_orchestrator.engine" in imported
    assert imported & {"mcp", "mcp_types", "cryptography", *TASK_STACKS} == set()
    # the runners of the types the document uses (and of the opt-in shell, which its settings
    # may leave off), not the others
    # checking a file opens no state database: no store, no run machinery
    engine = "multi_task_orchestrator.engine"
    assert imported & {f"{engine}.store", f"{engine}.run", f"{engine}.engine"} == set()
    assert not (tmp_path / "home" / "state.db").exists()
    runners = {name for name in imported if name.startswith(f"{RUNNERS}.")}
    assert {f"{RUNNERS}.http", f"{RUNNERS}.delay"} <= runners
    assert runners & {f"{RUNNERS}.{BUILTIN[name].module}" for name in UNUSED} == set()


def test_serve_answers_initialize_without_any_task_stack(tmp_path: Path) -> None:
    errors = tmp_path / "stderr.txt"  # a file: the import report would fill a pipe's buffer
    with errors.open("w") as stderr:
        server = subprocess.Popen(
            _command("serve"),
            env=_environment(tmp_path / "home"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(json.dumps(INITIALIZE) + "\n")
        server.stdin.flush()
        answer = json.loads(server.stdout.readline())
        server.stdin.close()  # the end of input ends the server
        assert server.wait(timeout=60) == 0
    assert answer["result"]["serverInfo"]["name"] == "multi-task-orchestrator"
    imported = _imported(errors.read_text())
    assert "mcp" in imported
    # the MCP SDK brings its own HTTP client (httpx) for the HTTP transports; the task stacks
    # that only tasks use stay out
    assert imported & (TASK_STACKS - {"httpx", "httpcore"}) == set()
    # and no runner: each is imported when a task of its type is checked or run; nor PyYAML,
    # which the first document brings
    assert imported & {f"{RUNNERS}.{BUILTIN[name].module}" for name in UNUSED} == set()
    assert "yaml" not in imported


def test_the_parsers_statuses_are_the_engines() -> None:
    assert [status.value for status in RunStatus] == RUN_STATUSES


def test_the_registrys_table_of_builtin_types_is_the_runners() -> None:
    """What the registry knows of a built-in type before importing it is what its runner
    class declares, and every runner module has its line."""
    found = builtin()
    assert list(BUILTIN) == sorted(found, key=lambda name: (found[name].listing_rank, name))
    for name, runner in found.items():
        declared = BUILTIN[name]
        assert runner.__module__.split(".")[3] == declared.module
        assert declared.load() is runner
        assert (declared.listing_rank, declared.aliases, declared.opt_in) == (
            runner.listing_rank,
            runner.aliases,
            runner.opt_in is not None,
        )


def test_runner_settings_that_do_not_fit_are_refused_at_once() -> None:
    """A runner is made when its type is first used, except one given settings: those are
    checked when the engine (or a checker) is made, not at the first task of the type."""
    with pytest.raises(ValidationError, match="limit"):
        DocumentChecker.open(runner_settings={"browser_automation": {"limit": 0}}, max_tasks=10)
