"""States that say what happened, through the doors a user uses: the ``orchestrator`` CLI as a
child process (skips, Ctrl-C on a fan-out, the critical path of a staged run) and an MCP client
(cancelling one task, retrying the moment a wait says the run finished).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from test_cli import cli, run_id_of
from test_mcp_tools import client, delay, document, no_orchestrator_env, ok  # noqa: F401

# `root` fails; `middle` is skipped because of it, and `leaf` because `middle` was skipped.
SKIP_CHAIN = """\
name: Skip chain
tasks:
  - {id: root, type: delay, config: {fail: network, message: connection refused}}
  - {id: middle, type: delay, dependencies: [root]}
  - {id: leaf, type: delay, dependencies: [middle]}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_task_skipped_after_a_skipped_dependency_says_so_and_names_the_root(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    result = cli(home, "run", write(tmp_path, "skips.yaml", SKIP_CHAIN))

    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "- middle: skipped: dependency root failed (connection refused)" in lines
    assert (
        "- leaf: skipped: dependency middle was skipped "
        "(chain: middle -> root; root failed: connection refused)"
    ) in lines
    results = json.loads(cli(home, "results", run_id_of(result.stdout), "--json").stdout)
    assert results["tasks"]["leaf"]["chain"] == ["middle", "root"]


# --- finished means finished ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("timeout_seconds", [0, 30], ids=["polling", "blocking"])
async def test_a_retry_is_accepted_the_moment_a_wait_says_the_run_finished(
    client: Client,  # noqa: F811 (the fixture of test_mcp_tools)
    timeout_seconds: float,
) -> None:
    # the end of a run with a 200-item fan-out (its files, its report) takes a while: a wait
    # that answers "finished" during it used to be followed by a refused retry
    many = {**delay("many"), "for_each": list(range(200))}
    spec = document(delay("broken", fail="network", message="still down"), many)
    run_id = (await ok(client, "submit_orchestration", {"spec": spec}))["id"]
    accepted = 0
    for _ in range(10):
        while True:  # straight from one call to the next, as a client acting on answers would
            waited = await client.call_tool(
                "wait_for_orchestration", {"id": run_id, "timeout_seconds": timeout_seconds}
            )
            status = waited.structured_content or {}
            if status.get("finished"):
                break
        retried = await client.call_tool("retry_orchestration", {"id": run_id})
        assert status["status"] == "failed"
        accepted += retried.is_error is False
    assert accepted == 10
