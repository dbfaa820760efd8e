"""A client nobody here wrote: the MCP Inspector CLI drives ``orchestrator serve`` over stdio.

``scripts/test`` installs ``@modelcontextprotocol/inspector`` into ``.ci/node`` before the tests,
so no network is needed here. Each inspector call starts its own server on the same home, as a
user's successive tool calls would: the run submitted by one server is resumed by the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp_contract import TOOL_NAMES

REPO = Path(__file__).resolve().parent.parent
INSPECTOR = REPO / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
INSTALL_HINT = (
    f"the MCP Inspector CLI is not installed at {INSPECTOR.relative_to(REPO)}; scripts/test "
    "installs it (with npm, Node.js 20 or newer)"
)

# A fan-out feeding a merge; under two seconds of work.
DOCUMENT = {
    "name": "inspector run",
    "tasks": [
        {"id": "numbers", "type": "delay", "config": {"seconds": 0.3, "value": [1, 2, 3]}},
        {
            "id": "labels",
            "type": "delay",
            "dependencies": ["numbers"],
            "for_each": "${numbers.output}",
            "config": {"seconds": 0.2, "value": "n${item}"},
        },
        {
            "id": "merged",
            "type": "data_processing",
            "dependencies": ["labels", "numbers"],
            "config": {"action": "merge", "inputs": ["labels.output", "numbers.output"]},
        },
    ],
}


@pytest.fixture(scope="module")
def inspector() -> Path:
    if not INSPECTOR.exists():
        if "CI" not in os.environ:
            pytest.skip(INSTALL_HINT)
        pytest.fail(INSTALL_HINT)
    return INSPECTOR


def run_inspector(inspector: Path, home: Path, *args: str) -> dict[str, Any]:
    """One inspector call against a fresh ``orchestrator serve``; its printed JSON answer."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    command = [
        str(inspector),
        "--cli",
        sys.executable,
        "-m",
        "multi_task_orchestrator.server.cli",
        "serve",
        *args,
    ]
    finished = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert finished.returncode == 0, f"{args}: {finished.stderr}\n{finished.stdout}"
    return json.loads(finished.stdout)


def call_tool(inspector: Path, home: Path, name: str, **arguments: str) -> dict[str, Any]:
    """tools/call; every argument is passed as text, as ``--tool-arg key=value``."""
    pairs = [f"{key}={value}" for key, value in arguments.items()]
    answer = run_inspector(
        inspector, home, "--method", "tools/call", "--tool-name", name, "--tool-arg", *pairs
    )
    assert answer.get("isError") is not True, answer
    return answer["structuredContent"]


def test_inspector_lists_every_tool(inspector: Path, tmp_path: Path) -> None:
    answer = run_inspector(inspector, tmp_path / "home", "--method", "tools/list")
    tools = {tool["name"]: tool for tool in answer["tools"]}
    assert set(tools) == TOOL_NAMES
    submit = tools["submit_orchestration"]
    assert submit["inputSchema"]["required"] == ["spec"]
    assert set(submit["outputSchema"]["required"]) >= {"id", "status", "task_count", "plan"}
    assert tools["get_results"]["annotations"]["readOnlyHint"] is True
    assert tools["cancel_orchestration"]["annotations"]["destructiveHint"] is True
    # issue 19: strict schemas, a title and every hint explicit, on every tool
    for name, tool in tools.items():
        assert tool["inputSchema"]["additionalProperties"] is False, name
        assert tool["title"] == tool["annotations"]["title"], name
        hints = {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
        assert hints <= set(tool["annotations"]), name
    assert submit["annotations"]["destructiveHint"] is True
    assert submit["annotations"]["openWorldHint"] is True


def test_inspector_sees_an_unknown_argument_refused(inspector: Path, tmp_path: Path) -> None:
    answer = run_inspector(
        inspector,
        tmp_path / "home",
        *("--method", "tools/call", "--tool-name", "list_task_types"),
        *("--tool-arg", "types=delay"),
    )
    assert answer["isError"] is True
    (text,) = answer["content"]
    assert "unknown argument 'types'" in text["text"]
    assert "did you mean 'type'?" in text["text"]


def test_inspector_submits_waits_and_fetches_results(inspector: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # `spec` accepts text or an object; the inspector passes such an argument as text.
    submitted = call_tool(inspector, home, "submit_orchestration", spec=json.dumps(DOCUMENT))
    assert submitted["status"] == "running"
    assert submitted["task_count"] == 3
    assert submitted["plan"]["stages"] == [["numbers"], ["labels"], ["merged"]]
    run_id = submitted["id"]

    waited = call_tool(inspector, home, "wait_for_orchestration", id=run_id, timeout_seconds="40")
    assert (waited["id"], waited["status"], waited["finished"]) == (run_id, "succeeded", True)
    assert waited["counts"] == {"succeeded": 6}  # 3 tasks, 3 of them fan-out children

    results = call_tool(inspector, home, "get_results", id=run_id)
    assert results["status"] == "succeeded"
    assert results["outputs"] == {
        "numbers": [1, 2, 3],
        "labels": ["n1", "n2", "n3"],
        "merged": ["n1", "n2", "n3", 1, 2, 3],
    }
    assert results["failures"] == []
    assert results["summary"].startswith("ORCHESTRATION COMPLETE")
