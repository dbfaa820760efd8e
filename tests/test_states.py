"""States that say what happened, through the doors a user uses: the ``orchestrator`` CLI as a
child process (skips, Ctrl-C on a fan-out, the critical path of a staged run) and an MCP client
(cancelling one task, retrying the moment a wait says the run finished).
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from cli_process import cli, kill_if_running, start_cli
from mcp import Client
from test_cli import run_id_of, wait_for_a_started_attempt
from test_mcp_tools import (  # noqa: F401 (fixtures)
    client,
    delay,
    document,
    ok,
    status_when,
)

# `root` fails; `middle` is skipped because of it, and `leaf` because `middle` was skipped.
SKIP_CHAIN = """\
name: Skip chain
tasks:
  - {id: root, type: delay, config: {fail: network, message: connection refused}}
  - {id: middle, type: delay, dependencies: [root]}
  - {id: leaf, type: delay, dependencies: [middle]}
"""

# 60 slow items, two at a time, then a task that needs them all.
SLOW_FAN_OUT = """\
name: Slow fan-out
tasks:
  - id: each
    type: delay
    for_each: "${vars.items}"
    max_concurrent: 2
    config: {seconds: 30}
  - {id: after, type: delay, dependencies: [each]}
vars:
  items: ITEMS
""".replace("ITEMS", str(list(range(60))))

# Two stages: `slow` holds the first one long after `quick`, on which `after` depends, is done.
STAGED = """\
name: Staged
mode: mixed
tasks:
  - {id: slow, type: delay, stage: 0, config: {seconds: 1.5}}
  - {id: quick, type: delay, stage: 0, config: {seconds: 0.1}}
  - {id: after, type: delay, stage: 1, dependencies: [quick], config: {seconds: 0.1}}
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


# --- Ctrl-C on a fan-out ----------------------------------------------------------------------


def test_ctrl_c_on_a_fan_out_counts_its_items_cancelled_and_only_real_tasks_running(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    process = start_cli(home, "run", "--json", write(tmp_path, "fan.yaml", SLOW_FAN_OUT))
    try:
        wait_for_a_started_attempt(home / "state.db", process)
        listing = cli(home, "list").stdout
        run_id = re.search(r"orch-[0-9a-f]+", listing).group(0)  # type: ignore[union-attr]
        for _ in range(40):  # until both items that may run are seen running
            status = cli(home, "status", run_id).stdout.splitlines()
            if "· 58 queued" in status[2]:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        kill_if_running(process)

    # 62 tasks: more rows than the display has, so `status` counts them in the database
    assert status[2].startswith("0/62 done · 2 running · 58 queued · 1 waiting"), status
    assert process.returncode == 130, stderr
    results = json.loads(stdout)
    assert results["status"] == "cancelled"
    assert results["error"] == "cancelled with Ctrl-C"
    assert (results["counts"]["failed"], results["counts"]["cancelled"]) == (0, 62)
    each = results["tasks"]["each"]
    assert (each["state"], each["error"]) == ("cancelled", None)
    assert each["reason"] == "60 of 60 item(s) cancelled (cancelled with Ctrl-C)"


# --- cancelling one task ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelling_one_task_answers_with_it_cancelled_and_the_run_says_so(
    client: Client,  # noqa: F811 (the fixture of test_mcp_tools)
) -> None:
    spec = document(
        delay("long", 30),
        {**delay("needs_long"), "dependencies": ["long"]},
        delay("other", 0.1, value="done"),
    )
    run_id = (await ok(client, "submit_orchestration", {"spec": spec}))["id"]
    await status_when(client, run_id, {"running": 1, "pending": 1, "succeeded": 1})

    answer = await ok(client, "cancel_orchestration", {"id": run_id, "task_id": "long"})
    rows = {row["id"]: row for row in answer["tasks"]}
    assert (rows["long"]["state"], rows["long"]["reason"]) == ("cancelled", "cancelled by request")
    assert "running" not in answer["counts"]

    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10})
    assert (status["status"], status["error"]) == (
        "failed",
        "task long was cancelled (cancelled by request)",
    )
    rows = {row["id"]: row for row in status["tasks"]}
    assert rows["needs_long"]["state"] == "skipped"
    assert rows["needs_long"]["reason"] == "dependency long was cancelled (cancelled by request)"
    assert rows["other"]["state"] == "succeeded"


@pytest.mark.anyio
async def test_cancelling_a_fan_out_cancels_its_items_and_the_fan_out(
    client: Client,  # noqa: F811 (the fixture of test_mcp_tools)
) -> None:
    spec = document(
        {**delay("each", 30), "for_each": [1, 2, 3]}, {**delay("after"), "dependencies": ["each"]}
    )
    run_id = (await ok(client, "submit_orchestration", {"spec": spec}))["id"]
    await status_when(client, run_id, {"running": 4, "pending": 1})

    answer = await ok(client, "cancel_orchestration", {"id": run_id, "task_id": "each"})
    assert answer["counts"] == {"cancelled": 4, "skipped": 1}
    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10})
    assert status["counts"] == {"cancelled": 4, "skipped": 1}
    assert (
        status["error"]
        == "3 tasks were cancelled: each[0], each[1], each[2] (cancelled by request)"
    )
    rows = {row["id"]: row for row in status["tasks"]}
    assert rows["each"]["reason"] == "3 of 3 item(s) cancelled (cancelled by request)"
    assert rows["after"]["reason"] == (
        "dependency each was cancelled (3 of 3 item(s) cancelled (cancelled by request))"
    )


# --- the critical path of a staged run --------------------------------------------------------


def test_the_critical_path_of_a_staged_run_goes_through_the_task_that_held_the_stage(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    result = cli(home, "run", write(tmp_path, "staged.yaml", STAGED))
    assert result.code == 0, result.stderr
    run_id = run_id_of(result.stdout)
    written = (home / "runs" / run_id / "report.html").read_text(encoding="utf-8")
    again = cli(home, "report", run_id)  # rebuilt from what the database holds
    assert again.code == 0, again.stderr
    rebuilt = Path(again.stdout.strip()).read_text(encoding="utf-8")

    for page in (written, rebuilt):
        assert "<span class='chain'>slow → after</span> — 2 tasks" in page
        assert "1 task waited at a stage barrier for the stages before to finish: after (" in page
        assert ", for slow)" in page
        assert "No task waited for a slot, a rate limit or a stage barrier." not in page
