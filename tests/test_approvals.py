"""Approval tasks: a run waits for a person, who decides over MCP (``approve_task`` /
``reject_task``) or the CLI (``orchestrator approve|reject``), from this process or another;
the request survives a restart with its deadline; a timeout decides when nobody does; a
waiting approval holds no concurrency slot; ``approval_needed`` is sent once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from cli_process import cli, start_cli
from mcp import Client
from test_mcp_tools import ok, refused, status_when
from webhook_receiver import Receiver

from multi_task_orchestrator.engine import ApprovalRow, Engine, RunStatus, TaskState
from multi_task_orchestrator.engine.store import SCHEMA_VERSION, Store
from multi_task_orchestrator.engine.store.schema import APPROVALS_TABLE, SCHEMA
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings

# A draft, a gate on it (max_concurrent 1: `other` must run while the gate waits), then the
# step the gate guards. The gate's message is built from the draft's output.
GATED = {
    "name": "Gated",
    "max_concurrent": 1,
    "tasks": [
        {"id": "draft", "type": "delay", "config": {"value": {"title": "Hello"}}},
        {
            "id": "gate",
            "type": "approval",
            "dependencies": ["draft"],
            "config": {"message": "Publish ${draft.output.title}?"},
            "retry": {"max_attempts": 3, "initial": 0.01},
        },
        {"id": "other", "type": "delay", "dependencies": ["draft"], "config": {"value": 1}},
        {"id": "publish", "type": "delay", "dependencies": ["gate"], "config": {"value": "out"}},
    ],
}


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(home=home, shutdown_grace=0))) as connected:
        yield connected


def gated(**changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(GATED))
    document.update(changes)
    return document


async def waiting_gate(client: Client, run_id: str) -> dict[str, Any]:
    """Poll get_status until the gate waits for a person and `other` has finished."""
    with anyio.fail_after(15):
        while True:
            status = await ok(client, "get_status", {"id": run_id})
            rows = {row["id"]: row for row in status["tasks"]}
            gate = rows["gate"].get("approval")
            if gate and gate["waiting"] and rows["other"]["state"] == "succeeded":
                return status
            await anyio.sleep(0.05)


async def pending(engine: Engine, count: int = 1) -> list[ApprovalRow]:
    """Poll the engine until ``count`` approvals wait."""
    with anyio.fail_after(15):
        while len(rows := await engine.pending_approvals()) < count:
            await anyio.sleep(0.05)
    return rows


# --- over MCP ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_approve_over_mcp_releases_the_run_without_the_gate_holding_a_slot(
    client: Client,
) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": GATED}))["id"]

    # max_concurrent is 1, yet `other` ran while the gate waited: the wait holds no slot
    status = await waiting_gate(client, run_id)
    rows = {row["id"]: row for row in status["tasks"]}
    assert rows["gate"]["state"] == "running"
    assert rows["gate"]["approval"]["message"] == "Publish Hello?"
    assert rows["gate"]["approval"]["deadline"] is None
    assert rows["publish"]["state"] == "pending"
    assert "🙋 Waiting for approval — Publish Hello? (since " in status["display"]
    assert "approve_task" in status["next_step"] and "task_id='gate'" in status["next_step"]
    assert "approval" not in rows["draft"]  # left out for other tasks

    # what cannot be decided is refused, naming why
    assert "has no task 'nope'; tasks waiting for approval: gate" in await refused(
        client, "approve_task", {"id": run_id, "task_id": "nope"}
    )
    assert "task draft is a delay task, not an approval" in await refused(
        client, "reject_task", {"id": run_id, "task_id": "draft"}
    )
    assert "'by'" in await refused(
        client, "approve_task", {"id": run_id, "task_id": "gate", "by": "me"}
    )

    decided = await ok(
        client, "approve_task", {"id": run_id, "task_id": "gate", "note": "looks good"}
    )
    assert decided["decision"] == "approved" and decided["decided_by"] == "mcp"
    assert decided["decided_at"].endswith("Z")

    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    assert status["status"] == "succeeded"
    again = await refused(client, "approve_task", {"id": run_id, "task_id": "gate"})
    assert f"orchestration {run_id} has finished (succeeded)" in again

    results = await ok(client, "get_results", {"id": run_id})
    assert results["outputs"]["gate"] == {
        "approved": True,
        "note": "looks good",
        "decided_by": "mcp",
        "decided_at": decided["decided_at"],
    }
    assert "APPROVALS:" in results["summary"]
    assert f"- gate: approved by mcp at {decided['decided_at']}: looks good" in results["summary"]


@pytest.mark.anyio
async def test_reject_over_mcp_fails_the_gate_once_and_skips_what_it_guards(
    client: Client,
) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": GATED}))["id"]
    await waiting_gate(client, run_id)

    decided = await ok(client, "reject_task", {"id": run_id, "task_id": "gate", "note": "typo"})
    assert decided["decision"] == "rejected"
    # decided already: a second decision is refused (the run may still be ending)
    second = await refused(client, "approve_task", {"id": run_id, "task_id": "gate"})
    assert "was already rejected by mcp at" in second or "has finished (failed)" in second

    status = await status_when(
        client, run_id, {"succeeded": 2, "failed": 1, "skipped": 1}, within=20
    )
    rows = {row["id"]: row for row in status["tasks"]}
    gate = rows["gate"]
    assert (gate["error_class"], gate["attempts"]) == ("rejected", 1)  # retry never applies
    assert gate["error"] == "rejected by mcp: typo"
    assert gate["approval"]["decision"] == "rejected" and not gate["approval"]["waiting"]
    assert rows["publish"]["state"] == "skipped"
    finished = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    assert finished["status"] == "failed"
    results = await ok(client, "get_results", {"id": run_id})
    assert "- gate: rejected by mcp: typo" in results["summary"]


# --- timeouts, cancel, the notification ------------------------------------------------------


@pytest.mark.anyio
async def test_timeouts_decide_as_told_and_a_cancel_stops_a_wait(
    engine: Engine, receiver: Receiver
) -> None:
    document = {
        "name": "Timeouts",
        "notify": [{"url": receiver.url("webhook+http", "/hook"), "events": ["approval_needed"]}],
        "tasks": [
            {
                "id": "yes",
                "type": "approval",
                "config": {"message": "ok?", "timeout": 0.3, "on_timeout": "approve"},
            },
            {"id": "no", "type": "approval", "config": {"message": "sure?", "timeout": 0.3}},
            {"id": "forever", "type": "approval", "config": {"message": "never answered"}},
            {"id": "after_no", "type": "delay", "dependencies": ["no"]},
        ],
    }
    run_id = await engine.submit(document)
    asked = await pending(engine, 3)
    assert {row.task_id for row in asked} == {"yes", "no", "forever"}
    deadline = {row.task_id: row.deadline for row in asked}
    assert deadline["forever"] is None and deadline["yes"] is not None

    with anyio.fail_after(15):  # the two timeouts decide; `forever` still waits
        while [row.task_id for row in await engine.pending_approvals()] != ["forever"]:
            await anyio.sleep(0.05)
    await engine.cancel(run_id, "forever")
    snapshot = await engine.wait(run_id, 20, include_outputs=True)

    tasks = {task.task_id: task for task in snapshot.tasks}
    assert tasks["yes"].state is TaskState.succeeded
    assert tasks["yes"].output["decided_by"] == "timeout"
    assert tasks["no"].state is TaskState.failed and tasks["no"].error_class == "rejected"
    assert tasks["no"].error == "timed out: nobody decided within 0.3s"
    assert tasks["after_no"].state is TaskState.skipped
    assert tasks["forever"].state is TaskState.cancelled
    assert snapshot.status is RunStatus.failed
    summary = (Path(snapshot.run_dir or "") / "summary.txt").read_text(encoding="utf-8")
    assert "- yes: approved by its timeout at " in summary
    assert "- no: rejected by its timeout at " in summary
    assert "- forever: waiting since " in summary

    # one approval_needed per request, each naming its task, message and deadline
    sent = sorted([posted.json() for posted in receiver.received], key=lambda body: body["task_id"])
    assert [(body["event"], body["task_id"]) for body in sent] == [
        ("approval_needed", "forever"),
        ("approval_needed", "no"),
        ("approval_needed", "yes"),
    ]
    assert sent[0]["message"] == "never answered" and sent[0]["deadline"] is None
    assert sent[2]["deadline"].endswith("Z")
    assert sent[1]["reject"] == f"orchestrator reject {run_id} no"


@pytest.mark.anyio
async def test_a_cancelled_approval_cannot_be_decided_even_at_once(client: Client) -> None:
    """The cancel's answer shows the task cancelled before the store has it: a decision right
    after is refused by what the run knows, not recorded for a task that never waits again.
    (``other`` keeps the run going.)"""
    tasks = [
        {"id": gate, "type": "approval", "config": {"message": "ok?"}} for gate in ("gate", "other")
    ]
    run_id = (await ok(client, "submit_orchestration", {"spec": {"tasks": tasks}}))["id"]
    with anyio.fail_after(15):
        while await waiting_gates(client, run_id) != {"gate", "other"}:
            await anyio.sleep(0.05)
    status = await ok(client, "get_status", {"id": run_id})
    assert status["next_step"].startswith("2 tasks wait (gate, other) for a person"), status
    await ok(client, "cancel_orchestration", {"id": run_id, "task_id": "gate"})
    text = await refused(client, "approve_task", {"id": run_id, "task_id": "gate"})
    assert "not waiting for approval (it is cancelled)" in text, text
    await ok(client, "reject_task", {"id": run_id, "task_id": "other"})
    await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    summary = (await ok(client, "get_results", {"id": run_id}))["summary"]
    assert "gate: approved" not in summary and "other: rejected by mcp" in summary


@pytest.mark.anyio
async def test_a_fan_out_of_approvals_is_decided_item_by_item(client: Client) -> None:
    """Deciding the fan-out itself said "not waiting for approval yet (it is running)"."""
    ask = {"id": "ask", "type": "approval", "for_each": ["a", "b"], "config": {"message": "ok?"}}
    run_id = (await ok(client, "submit_orchestration", {"spec": {"tasks": [ask]}}))["id"]
    with anyio.fail_after(15):
        while await waiting_gates(client, run_id) != {"ask[0]", "ask[1]"}:
            await anyio.sleep(0.05)
    text = await refused(client, "approve_task", {"id": run_id, "task_id": "ask"})
    assert "task ask is a fan-out: decide each of its items; waiting for approval: " in text
    assert "ask[0]" in text and "ask[1]" in text
    for item in ("ask[0]", "ask[1]"):
        await ok(client, "approve_task", {"id": run_id, "task_id": item})
    done = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    assert done["status"] == "succeeded"


async def waiting_gates(client: Client, run_id: str) -> set[str]:
    rows = (await ok(client, "get_status", {"id": run_id}))["tasks"]
    return {row["id"] for row in rows if (row.get("approval") or {}).get("waiting")}


@pytest.mark.anyio
@pytest.mark.parametrize("timeout", ["99999999999d", 1e300])
async def test_a_timeout_past_any_date_is_a_document_error(client: Client, timeout: Any) -> None:
    """Its deadline could never be shown: refused when submitted, not a run whose status
    answers an internal error."""
    gate = {"id": "gate", "type": "approval", "config": {"message": "ok?", "timeout": timeout}}
    text = await refused(client, "submit_orchestration", {"spec": {"tasks": [gate]}})
    assert "tasks[0].config.timeout" in text and "at most 3650d (ten years)" in text, text
    assert (await ok(client, "list_orchestrations"))["orchestrations"] == []


# --- across a restart, decided from another process ------------------------------------------


@pytest.mark.anyio
async def test_a_restart_keeps_the_request_and_the_cli_approves_it(
    home: Path, receiver: Receiver
) -> None:
    document = {
        "name": "Restarted",
        "notify": [{"url": receiver.url("webhook+http", "/hook"), "events": ["approval_needed"]}],
        "tasks": [
            {"id": "gate", "type": "approval", "config": {"message": "go?", "timeout": "1h"}},
            {"id": "after", "type": "delay", "dependencies": ["gate"], "config": {"value": 2}},
        ],
    }
    async with await Engine.open(home / "state.db", home / "runs", shutdown_grace=0) as first:
        run_id = await first.submit(document)
        (before,) = await pending(first)
        with anyio.fail_after(10):
            while not receiver.received:
                await anyio.sleep(0.05)
    # the first process stopped while the gate waited; the next one resumes the run
    async with await Engine.open(home / "state.db", home / "runs", shutdown_grace=0) as second:
        assert run_id in second.runs
        with anyio.fail_after(15):  # the resumed attempt has started waiting again
            while (await second.snapshot(run_id)).tasks[0].attempts < 2:
                await anyio.sleep(0.05)
        (after,) = await pending(second)
        assert (after.requested_at, after.deadline) == (before.requested_at, before.deadline)

        approved = await anyio.to_thread.run_sync(
            lambda: cli(home, "approve", run_id[:10], "gate", "--note", "fine by me")
        )
        assert approved.code == 0, approved.stderr
        assert f"{run_id} gate: approved at " in approved.stdout
        snapshot = await second.wait(run_id, 20, include_outputs=True)
    assert snapshot.status is RunStatus.succeeded
    gate = snapshot.tasks[0]
    assert gate.output["decided_by"] == "cli" and gate.output["note"] == "fine by me"
    assert [posted.json()["event"] for posted in receiver.received] == [
        "approval_needed"
    ]  # not again


def waited_for_gate(db: Path, running: subprocess.Popen[str]) -> None:
    """Read the state database until the foreground run's gate has asked (or the run ended)."""
    for _ in range(3000):
        if running.poll() is not None:
            pytest.fail(f"the run ended: {running.communicate()}")
        if db.exists():
            with sqlite3.connect(db) as connection:
                try:
                    if connection.execute("SELECT 1 FROM approvals").fetchall():
                        return
                except sqlite3.OperationalError:  # not created yet
                    pass
            connection.close()
        threading.Event().wait(0.02)
    pytest.fail("the gate never asked")


def test_a_foreground_run_is_released_by_another_process(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "gated.yaml"
    path.write_text(yaml.safe_dump(gated()), encoding="utf-8")
    running = start_cli(home, "run", path)
    try:
        waited_for_gate(home / "state.db", running)
        listed = cli(home, "approvals", "--json")
        assert listed.code == 0, listed.stderr
        (entry,) = json.loads(listed.stdout)
        run_id = entry["id"]
        assert (entry["task_id"], entry["message"]) == ("gate", "Publish Hello?")

        status = cli(home, "status", run_id)
        assert "🙋 Waiting for approval — Publish Hello?" in status.stdout

        long = cli(home, "approve", run_id, "gate", "--note", "n" * 2001)  # as approve_task
        assert long.code == 2 and "a note may have at most 2,000" in long.stderr, long.stderr
        approved = cli(home, "approve", run_id, "gate", "--note", "ship it")
        assert approved.code == 0, approved.stderr
        stdout, stderr = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 0, stderr
    assert "APPROVALS:" in stdout and "- gate: approved by cli at " in stdout
    late = cli(home, "reject", run_id, "gate")
    assert late.code == 2 and "has finished (succeeded)" in late.stderr
    report = (home / "runs" / run_id / "report.html").read_text(encoding="utf-8")
    assert "gate: approved by cli at " in report and "ship it" in report


# --- the table -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_schema_6_database_gains_the_approvals_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema_6 = SCHEMA.replace(f"{APPROVALS_TABLE};", "")
    assert "approvals" not in schema_6
    with sqlite3.connect(path) as db:
        db.executescript(schema_6)
        db.execute("INSERT INTO schema_version (version) VALUES (6)")
    db.close()

    store = await Store.open(path)
    try:
        asked = ApprovalRow("run", "gate", "go?", 1.0, 2.0)
        assert await store.request_approval(asked) == (asked, True)
        assert await store.request_approval(ApprovalRow("run", "gate", "x", 5.0)) == (asked, False)
        decide = {"decision": "approved", "note": None, "decided_by": "cli", "decided_at": 3.0}
        assert await store.decide_approval("run", "gate", **decide) is True
        assert await store.decide_approval("run", "gate", **decide) is False  # first one wins
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()
