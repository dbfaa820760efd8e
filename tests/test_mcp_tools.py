"""Every MCP tool, resource and the prompt, through the SDK's in-memory client.

Each test runs a real server (``create_server``) on its own ``ORCHESTRATOR_HOME``; documents use
the offline ``delay`` and ``data_processing`` task types. Every successful tool call's
``structured_content`` is checked against the tool's ``outputSchema`` (``call`` below).
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client, MCPError
from mcp.types import BlobResourceContents, CallToolResult, TextContent, TextResourceContents
from mcp_contract import TOOL_NAMES as TOOLS

from multi_task_orchestrator.engine.document.validation import validate
from multi_task_orchestrator.engine.runners import discover
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.tools import resources

SEED = (Path(__file__).parent / "fixtures" / "seed_example.yaml").read_text(encoding="utf-8")

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

READ_ONLY = {
    "get_status",
    "get_results",
    "list_orchestrations",
    "validate_orchestration",
    "list_task_types",
    "list_mcp_tools",
    "wait_for_orchestration",
    "get_report",
    "vault_list",
    "list_schedules",
}
# what a run's tasks may do (PUT, DELETE, overwrite files) counts; vault_set replaces a secret
DESTRUCTIVE = {
    "submit_orchestration",
    "retry_orchestration",
    "cancel_orchestration",
    "vault_set",
    "vault_delete",
    "approve_task",
    "reject_task",
    "schedule_orchestration",
    "pause_schedule",  # a fire waiting to start is dropped
    "resume_schedule",
    "delete_schedule",
}
OPEN_WORLD = {
    "submit_orchestration",
    "retry_orchestration",
    "cancel_orchestration",  # a cancelled task's run_if: all_done dependents still run
    "list_mcp_tools",
    "approve_task",
    "reject_task",  # a rejected task's run_if: any_failed dependents run
    "schedule_orchestration",
    "resume_schedule",
}
VAULT_TOOLS = {"vault_set", "vault_list", "vault_delete"}
CONTENT_TOOLS = {"get_report"}  # answer with content blocks (text and a PNG), not a schema

# Two tasks in a row, 1.5 s in all: long enough for a progress notification mid-way.
CHAIN = """\
name: Chain
tasks:
  - {id: first, type: delay, config: {seconds: 0.5, value: 1}}
  - {id: second, type: delay, dependencies: [first], config: {seconds: 1, value: 2}}
"""

# One failure: its dependent and the dependent's dependent are skipped; `fine` succeeds.
FAILING = """\
name: Failing
tasks:
  - id: broken
    type: delay
    config: {fail: network, message: connection refused}
    retry: {max_attempts: 2, initial: 0.01, jitter: false}
  - {id: after, type: delay, dependencies: [broken]}
  - {id: last, type: delay, dependencies: [after]}
  - {id: fine, type: delay, config: {value: kept}}
"""

# Two problems in one document: a duplicate id (line 3) and an unknown dependency (line 3).
TWO_PROBLEMS = """\
tasks:
  - {id: a, type: delay}
  - {id: a, type: delay, dependencies: [zz]}
"""


def delay(task_id: str, seconds: float = 0, **config: Any) -> dict[str, Any]:
    """A ``delay`` task as a document entry; extra keys of ``config`` go into its config."""
    return {"id": task_id, "type": "delay", "config": {"seconds": seconds, **config}}


def document(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "Test", **fields, "tasks": list(tasks)}


def settings(home: Path, **fields: Any) -> Settings:
    """A server's settings for a test: tasks still running when the client leaves are stopped
    at once, not after the default 10 s shutdown grace."""
    return Settings(home=home, shutdown_grace=0, **fields)


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(settings(home))) as connected:
        yield connected


# --- calling tools -------------------------------------------------------------------------


async def call(
    client: Client, tool: str, arguments: dict[str, Any] | None = None, **options: Any
) -> CallToolResult:
    """Call a tool; a successful answer must match the tool's outputSchema."""
    result = await client.call_tool(tool, arguments or {}, **options)
    if not result.is_error:
        listing = await client.list_tools()
        schema = next(t.output_schema for t in listing.tools if t.name == tool)
        assert schema is not None, f"{tool} has no outputSchema"
        jsonschema.validate(result.structured_content, schema)
    return result


async def ok(
    client: Client, tool: str, arguments: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """The structured answer of a call that must succeed."""
    result = await call(client, tool, arguments, **options)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> str:
    """The message of a call that must fail, checked to carry no traceback."""
    result = await call(client, tool, arguments)
    assert result.is_error
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


async def run(client: Client, spec: Any, **arguments: Any) -> dict[str, Any]:
    """Submit a document and wait for it to finish; the submission, with `progress`."""
    submitted = await ok(
        client, "submit_orchestration", {"spec": spec, "wait_seconds": 20, **arguments}
    )
    assert submitted["progress"]["finished"] is True
    return submitted


async def status_when(
    client: Client, run_id: str, counts: dict[str, int], *, within: float = 10
) -> dict[str, Any]:
    """Poll get_status until the counts per state are exactly ``counts``."""
    with anyio.fail_after(within):
        while True:
            status = await ok(client, "get_status", {"id": run_id})
            if status["counts"] == counts:
                return status
            await anyio.sleep(0.05)


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri, cache_mode="bypass")
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text


# --- the tool list -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_tool_is_listed_with_description_annotations_and_output_schema(
    client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert tool.description and len(tool.description) > 20, name
        assert tool.description == inspect.cleandoc(tool.description), f"{name} not dedented"
        assert tool.annotations is not None, name
        assert tool.annotations.title, name
        assert tool.title == tool.annotations.title, name
        hints = tool.annotations.model_dump(exclude={"title"}, exclude_none=False)
        assert None not in hints.values(), f"{name} leaves a hint to the default: {hints}"
        assert (tool.annotations.read_only_hint is True) == (name in READ_ONLY), name
        assert (tool.annotations.destructive_hint is True) == (name in DESTRUCTIVE), name
        assert (tool.annotations.open_world_hint is True) == (name in OPEN_WORLD), name
        if name not in VAULT_TOOLS | CONTENT_TOOLS:
            assert tool.output_schema is not None, name
            assert tool.output_schema["type"] == "object", name


# --- submit_orchestration ------------------------------------------------------------------


@pytest.mark.anyio
async def test_submit_yaml_returns_id_status_count_and_plan_at_once(client: Client) -> None:
    submitted = await ok(client, "submit_orchestration", {"spec": CHAIN})
    assert submitted["id"].startswith("orch-")
    assert submitted["status"] in ("running", "succeeded")
    assert submitted["task_count"] == 2
    assert submitted["existing"] is False
    assert submitted["progress"] is None
    assert submitted["plan"]["stages"] == [["first"], ["second"]]
    assert submitted["plan"]["critical_path"] == ["first", "second"]
    assert submitted["id"] in submitted["next_step"]


@pytest.mark.anyio
async def test_submit_object_with_vars_override(client: Client) -> None:
    spec = document(
        delay("greet", value="${vars.greeting} ${vars.name}"),
        vars={"greeting": "hello", "name": "document"},
    )
    submitted = await run(client, spec, vars={"name": "caller"})
    progress = submitted["progress"]
    assert (progress["status"], progress["done"], progress["total"]) == ("succeeded", 1, 1)
    assert progress["percent"] == 100.0
    outputs = await ok(client, "get_results", {"id": submitted["id"]})
    assert outputs["outputs"] == {"greet": "hello caller"}


@pytest.mark.anyio
async def test_vars_are_held_to_the_documents_limits(home: Path) -> None:
    """The size and nesting limits of a document hold for the vars given beside it."""
    spec = document(delay("greet", value="${vars.big}"))
    async with Client(create_server(settings(home, max_document_bytes=10_000))) as client:
        text = await refused(
            client, "submit_orchestration", {"spec": spec, "vars": {"big": "x" * 20_000}}
        )
        assert "the vars' JSON is 20,011 bytes, over the limit of 10,000 bytes" in text, text
        deep: dict[str, Any] = {}
        for _ in range(70):
            deep = {"a": deep}
        checked = await ok(client, "validate_orchestration", {"spec": spec, "vars": {"big": deep}})
        assert checked["ok"] is False and "64 levels deep" in checked["errors"][0]["message"]
        listed = await ok(client, "list_orchestrations")
        assert listed["orchestrations"] == []


@pytest.mark.anyio
async def test_an_escaped_reference_is_a_literal_one_also_in_a_config_without_references(
    client: Client,
) -> None:
    spec = document(
        delay("alone", value="$${x} and $${vault.NOT_A_SECRET}"),
        delay("beside", value=["$${x}", "${vars.y}"]),
        vars={"y": "y"},
    )
    submitted = await run(client, spec)
    outputs = await ok(client, "get_results", {"id": submitted["id"]})
    assert outputs["outputs"] == {
        "alone": "${x} and ${vault.NOT_A_SECRET}",
        "beside": ["${x}", "y"],
    }


@pytest.mark.anyio
async def test_submit_with_wait_sends_rising_progress_notifications(client: Client) -> None:
    notifications: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notifications.append((progress, total, message))

    submitted = await ok(
        client,
        "submit_orchestration",
        {"spec": CHAIN, "wait_seconds": 20},
        progress_callback=on_progress,
    )
    assert submitted["status"] == "succeeded"
    assert submitted["progress"]["finished"] is True
    assert submitted["progress"]["counts"] == {"succeeded": 2}
    assert len(notifications) >= 2
    values = [progress for progress, _, _ in notifications]
    assert values == sorted(values)
    assert {total for _, total, _ in notifications} == {2}
    assert notifications[-1][:2] == (2, 2)
    assert notifications[-1][2] == "2/2 done, 0 running"


@pytest.mark.anyio
async def test_idempotency_key_returns_the_first_run_and_starts_nothing(client: Client) -> None:
    first = await ok(
        client, "submit_orchestration", {"spec": CHAIN, "idempotency_key": "nightly-1"}
    )
    again = await ok(
        client, "submit_orchestration", {"spec": CHAIN, "idempotency_key": "nightly-1"}
    )
    assert first["existing"] is False
    assert again["existing"] is True
    assert again["id"] == first["id"]
    assert again["task_count"] == 2
    listed = await ok(client, "list_orchestrations")
    assert [row["id"] for row in listed["orchestrations"]] == [first["id"]]
    for key in ("", "k" * 201):  # a key is 1-200 characters: nothing starts
        message = await refused(
            client, "submit_orchestration", {"spec": CHAIN, "idempotency_key": key}
        )
        assert "idempotency_key" in message
    listed = await ok(client, "list_orchestrations")
    assert [row["id"] for row in listed["orchestrations"]] == [first["id"]]


@pytest.mark.anyio
async def test_a_submission_carries_the_documents_warnings(client: Client) -> None:
    submitted = await ok(client, "submit_orchestration", {"spec": CHAIN, "vars": {"unused_var": 1}})
    assert submitted["id"].startswith("orch-")
    (warning,) = [w for w in submitted["warnings"] if "unused_var" in w["message"]]
    assert warning["message"].startswith("var 'unused_var' was given, but the document")
    plain = await ok(client, "submit_orchestration", {"spec": CHAIN})
    assert plain["warnings"] == []


@pytest.mark.anyio
async def test_a_tool_the_server_lacks_is_refused_with_the_closest_name(client: Client) -> None:
    message = await refused(client, "submit_orchestrationn", {"spec": CHAIN})
    assert message.startswith(
        "no tool 'submit_orchestrationn' (did you mean 'submit_orchestration'?); "
        "this server's tools: submit_orchestration, validate_orchestration, "
    )
    assert (await ok(client, "list_orchestrations"))["orchestrations"] == []
    long = await refused(client, "x" * 100_000)
    assert long.startswith(f"no tool '{'x' * 60}'; ")  # quoted, cut short


@pytest.mark.anyio
async def test_submit_invalid_document_lists_every_problem_with_position(client: Client) -> None:
    message = await refused(client, "submit_orchestration", {"spec": TWO_PROBLEMS})
    assert "2 problems" in message
    problems = [line for line in message.splitlines() if line.startswith("- ")]
    assert problems == [
        "- line 3, column 10: tasks[1].id: duplicate task id 'a': tasks[0] on line 2 already "
        "uses it (rename it; every task needs its own id)",
        "- line 3, column 41: tasks[1].dependencies[0]: unknown dependency 'zz': no task has "
        "that id (tasks: a)",
    ]
    assert (await ok(client, "list_orchestrations"))["orchestrations"] == []


@pytest.mark.anyio
async def test_submit_unavailable_type_is_refused(client: Client) -> None:
    spec = document({"id": "call", "type": "shell", "config": {"argv": ["true"]}})
    message = await refused(client, "submit_orchestration", {"spec": spec})
    assert "task type 'shell' is disabled: set ORCHESTRATOR_ALLOW_SHELL=1 to allow it" in message


# --- validate_orchestration ----------------------------------------------------------------


@pytest.mark.anyio
async def test_validate_valid_document_gives_the_plan(client: Client) -> None:
    report = await ok(client, "validate_orchestration", {"spec": CHAIN})
    assert report["ok"] is True
    assert report["errors"] == []
    plan = report["plan"]
    assert (plan["mode"], plan["task_count"]) == ("parallel", 2)
    assert plan["stages"] == [["first"], ["second"]]
    assert (plan["stage_count"], plan["critical_path_length"]) == (2, 2)
    assert plan["critical_path"] == ["first", "second"]
    assert plan["description"]
    assert "left_out" not in plan or plan["left_out"] is None
    assert (await ok(client, "list_orchestrations"))["orchestrations"] == []


@pytest.mark.anyio
async def test_validate_reports_errors_with_line_column_and_hint(client: Client) -> None:
    report = await ok(client, "validate_orchestration", {"spec": TWO_PROBLEMS})
    assert report["ok"] is False
    assert report["plan"] is None
    assert [(e["path"], e["line"], e["column"], e["hint"]) for e in report["errors"]] == [
        ("tasks[1].id", 3, 10, "rename it; every task needs its own id"),
        ("tasks[1].dependencies[0]", 3, 41, "tasks: a"),
    ]


@pytest.mark.anyio
async def test_validate_seed_example_names_its_mistake(client: Client) -> None:
    report = await ok(client, "validate_orchestration", {"spec": SEED})
    assert report["ok"] is False
    references = [e for e in report["errors"] if "merged_content" in e["message"]]
    assert [(e["line"], e["column"]) for e in references] == [(33, 21), (34, 21), (35, 21)]
    for error in references:
        assert error["message"] == "unknown reference '${merged_content}': no task 'merged_content'"
        assert "did you mean 'merge_content'" in error["hint"]


# --- get_status ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_status_counts_display_and_task_rows(client: Client) -> None:
    run_id = (await run(client, FAILING))["id"]
    status = await ok(client, "get_status", {"id": run_id})
    assert (status["status"], status["finished"]) == ("failed", True)
    assert status["counts"] == {"succeeded": 1, "failed": 1, "skipped": 2}
    assert (status["done"], status["total"], status["percent"]) == (4, 4, 100.0)
    assert status["tasks_omitted"] == 0
    display = status["display"]
    assert "100% Complete" in display.splitlines()[0]
    for name in ("broken", "after", "last", "fine"):
        assert name in display
    rows = {row["id"]: row for row in status["tasks"]}
    assert list(rows) == ["broken", "after", "last", "fine"]
    broken = rows["broken"]
    assert (broken["state"], broken["attempts"], broken["max_attempts"]) == ("failed", 2, 2)
    assert (broken["error"], broken["error_class"]) == ("connection refused", "network")
    assert rows["after"]["state"] == "skipped"
    assert rows["after"]["attempts"] == 0
    assert rows["after"]["reason"] == "dependency broken failed (connection refused)"
    assert (rows["fine"]["state"], rows["fine"]["attempts"]) == ("succeeded", 1)
    assert "get_results" in status["next_step"]


@pytest.mark.anyio
async def test_get_status_unknown_id_lists_recent_ids(client: Client) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": CHAIN}))["id"]
    message = await refused(client, "get_status", {"id": "orch-nosuchrun"})
    assert "no orchestration has the id 'orch-nosuchrun'" in message
    assert f"recent ids: {run_id}" in message


@pytest.mark.anyio
async def test_get_status_of_a_large_run_keeps_running_and_failed_rows(client: Client) -> None:
    quick = [delay(f"t{n:03}") for n in range(248)]
    tail = [delay("slow", 30), delay("bad", fail="network")]
    run_id = (await ok(client, "submit_orchestration", {"spec": document(*quick, *tail)}))["id"]
    status = await status_when(client, run_id, {"succeeded": 248, "failed": 1, "running": 1})
    assert status["total"] == 250
    assert status["tasks_omitted"] == 220
    assert len(status["tasks"]) == 30
    states = {row["id"]: row["state"] for row in status["tasks"]}
    assert (states["slow"], states["bad"]) == ("running", "failed")
    assert [row["id"] for row in status["tasks"][-2:]] == ["slow", "bad"]
    await ok(client, "cancel_orchestration", {"id": run_id})


# --- wait_for_orchestration ----------------------------------------------------------------


@pytest.mark.anyio
async def test_wait_returns_finished_when_done(client: Client) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": document(delay("a", 0.2))}))["id"]
    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    assert (status["finished"], status["status"], status["done"]) == (True, "succeeded", 1)


@pytest.mark.anyio
async def test_wait_returns_unfinished_after_its_timeout(client: Client) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": document(delay("long", 30))}))["id"]
    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 0.5})
    assert (status["finished"], status["status"]) == (False, "running")
    assert status["counts"] == {"running": 1}
    assert "wait_for_orchestration" in status["next_step"]


@pytest.mark.anyio
async def test_wait_timeout_is_capped(tmp_path: Path) -> None:
    async with Client(create_server(settings(tmp_path / "home", max_wait_seconds=1))) as capped:
        run_id = (await ok(capped, "submit_orchestration", {"spec": document(delay("x", 10))}))[
            "id"
        ]
        with anyio.fail_after(8):
            status = await ok(
                capped, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 30}
            )
        assert (status["finished"], status["status"]) == (False, "running")


@pytest.mark.anyio
async def test_wait_unknown_id_is_refused(client: Client) -> None:
    message = await refused(client, "wait_for_orchestration", {"id": "orch-missing"})
    assert "no orchestration has the id 'orch-missing'; recent ids: none yet" in message


# --- get_results ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_results_outputs_filter_failures_and_summary(client: Client) -> None:
    run_id = (await run(client, FAILING))["id"]
    answer = await ok(client, "get_results", {"id": run_id})
    assert answer["status"] == "failed"
    assert answer["outputs"] == {"fine": "kept"}
    assert (answer["truncated"], answer["next_offset"], answer["note"]) == (False, None, None)
    assert answer["results_uri"] == f"orchestration://{run_id}/results"
    assert answer["summary"].startswith("ORCHESTRATION COMPLETE WITH FAILURES")
    assert "Failed:     1 (25%)" in answer["summary"]
    failures = {f["task"]: f for f in answer["failures"]}
    assert list(failures) == ["broken", "after", "last"]
    assert failures["broken"]["error"] == "connection refused"
    assert failures["after"]["chain"] == ["broken"]
    assert failures["last"]["chain"] == ["after", "broken"]
    assert failures["last"]["reason"] == (
        "dependency after was skipped (chain: after -> broken; broken failed: connection refused)"
    )

    only = await ok(client, "get_results", {"id": run_id, "task_ids": ["fine"]})
    assert only["outputs"] == {"fine": "kept"}
    none_yet = await ok(client, "get_results", {"id": run_id, "task_ids": ["broken"]})
    assert none_yet["outputs"] == {}


@pytest.mark.anyio
async def test_get_results_unknown_task_id_is_refused(client: Client) -> None:
    run_id = (await run(client, FAILING))["id"]
    message = await refused(client, "get_results", {"id": run_id, "task_ids": ["fine", "nope"]})
    assert f"orchestration {run_id} has no task nope; tasks: after, broken, fine, last" in message


@pytest.mark.anyio
async def test_get_results_pages_through_outputs_exactly_once(client: Client) -> None:
    values = {f"part{n}": f"{n}" * 100 for n in range(7)}  # 102 characters of JSON each
    spec = document(*(delay(task_id, value=value) for task_id, value in values.items()))
    run_id = (await run(client, spec))["id"]

    seen: list[str] = []
    collected: dict[str, Any] = {}
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = await ok(client, "get_results", {"id": run_id, "max_chars": 250, "offset": offset})
        assert sum(len(json.dumps(value)) for value in page["outputs"].values()) <= 250
        seen += list(page["outputs"])
        collected.update(page["outputs"])
        if page["next_offset"] is not None:
            assert page["truncated"] is True
            assert f"offset={page['next_offset']}" in page["note"]
            assert page["next_offset"] == offset + len(page["outputs"])
        offset = page["next_offset"]
        pages += 1
    assert pages == 4
    assert seen == list(values)
    assert collected == values


@pytest.mark.anyio
async def test_get_results_pages_inside_one_oversized_text(client: Client) -> None:
    text = "".join(f"{n:04d}" for n in range(250))  # 1,000 characters
    run_id = (await run(client, document(delay("big", value=text))))["id"]
    answer = await ok(client, "get_results", {"id": run_id, "max_chars": 200})
    assert answer["truncated"] is True
    assert answer["outputs"]["big"] == text[:198]  # a whole JSON string, quotes included
    assert answer["part"] == {
        "task": "big",
        "kind": "characters",
        "start": 0,
        "end": 198,
        "total": 1000,
        "too_large": [],
    }
    assert (answer["next_offset"], answer["next_item_offset"]) == (0, 198)
    assert answer["next_call"] == f'get_results(id="{run_id}", max_chars=200, item_offset=198)'
    assert "1,000 characters" in answer["note"] and answer["next_call"] in answer["note"]
    collected = answer["outputs"]["big"]
    while answer["next_offset"] is not None:
        answer = await ok(
            client,
            "get_results",
            {
                "id": run_id,
                "max_chars": 200,
                "offset": answer["next_offset"],
                "item_offset": answer["next_item_offset"],
            },
        )
        collected += answer["outputs"]["big"]
    assert collected == text


# --- list, cancel, retry -------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_orchestrations_with_and_without_status(client: Client) -> None:
    good = (await run(client, document(delay("a"), name="Quick")))["id"]
    bad = (await run(client, FAILING))["id"]
    everything = await ok(client, "list_orchestrations")
    assert [(r["id"], r["name"], r["status"]) for r in everything["orchestrations"]] == [
        (bad, "Failing", "failed"),
        (good, "Quick", "succeeded"),
    ]
    for row in everything["orchestrations"]:
        assert row["source"] == "mcp"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["created_at"])
        assert row["finished_at"] is not None
    failed = await ok(client, "list_orchestrations", {"status": "failed"})
    assert [r["id"] for r in failed["orchestrations"]] == [bad]
    running = await ok(client, "list_orchestrations", {"status": "running"})
    assert running["orchestrations"] == []
    limited = await ok(client, "list_orchestrations", {"limit": 1})
    assert [r["id"] for r in limited["orchestrations"]] == [bad]


@pytest.mark.anyio
async def test_cancel_a_running_orchestration(client: Client) -> None:
    spec = document(delay("one", 30), delay("two", 30), delay("three", 30))
    run_id = (await ok(client, "submit_orchestration", {"spec": spec}))["id"]
    await status_when(client, run_id, {"running": 3})
    status = await ok(client, "cancel_orchestration", {"id": run_id})
    assert (status["status"], status["finished"]) == ("cancelled", True)
    assert status["counts"] == {"cancelled": 3}


@pytest.mark.anyio
async def test_cancel_one_task_skips_its_dependents(client: Client) -> None:
    spec = document(
        delay("long", 30),
        {**delay("needs_long"), "dependencies": ["long"]},
        delay("other", 0.1, value="done"),
    )
    run_id = (await ok(client, "submit_orchestration", {"spec": spec}))["id"]
    await status_when(client, run_id, {"running": 1, "pending": 1, "succeeded": 1})
    await ok(client, "cancel_orchestration", {"id": run_id, "task_id": "long"})
    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10})
    assert status["finished"] is True
    rows = {row["id"]: row for row in status["tasks"]}
    assert rows["long"]["state"] == "cancelled"
    assert rows["needs_long"]["state"] == "skipped"
    assert rows["other"]["state"] == "succeeded"


@pytest.mark.anyio
async def test_cancel_unknown_task_is_refused(client: Client) -> None:
    run_id = (await ok(client, "submit_orchestration", {"spec": document(delay("long", 30))}))["id"]
    message = await refused(client, "cancel_orchestration", {"id": run_id, "task_id": "lnog"})
    assert f"orchestration {run_id} has no task 'lnog'; tasks: long" in message


@pytest.mark.anyio
async def test_cancel_a_finished_run_says_it_finished(client: Client) -> None:
    run_id = (await run(client, document(delay("a"))))["id"]
    message = await refused(client, "cancel_orchestration", {"id": run_id})
    assert f"orchestration {run_id} already finished (succeeded); nothing to cancel" in message


@pytest.mark.anyio
async def test_retry_reruns_failures_and_keeps_successes(client: Client) -> None:
    spec = document(
        delay("flaky", fail_attempts=1, value="second time lucky"),
        {**delay("uses_flaky", value="${flaky.output}"), "dependencies": ["flaky"]},
        delay("steady", value="once"),
    )
    first = await run(client, spec)
    run_id = first["id"]
    assert first["progress"]["counts"] == {"failed": 1, "skipped": 1, "succeeded": 1}
    before = {row["id"]: row for row in first["progress"]["tasks"]}
    steady_duration = before["steady"]["duration_seconds"]

    retried = await ok(client, "retry_orchestration", {"id": run_id})
    assert retried["id"] == run_id
    status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10})
    assert (status["status"], status["counts"]) == ("succeeded", {"succeeded": 3})
    rows = {row["id"]: row for row in status["tasks"]}
    assert rows["flaky"]["attempts"] == 2
    assert rows["uses_flaky"]["attempts"] == 1
    assert rows["steady"]["attempts"] == 1
    assert rows["steady"]["duration_seconds"] == steady_duration
    answer = await ok(client, "get_results", {"id": run_id})
    assert answer["outputs"] == {
        "flaky": "second time lucky",
        "uses_flaky": "second time lucky",
        "steady": "once",
    }


@pytest.mark.anyio
async def test_retry_a_succeeded_run_has_nothing_to_retry(client: Client) -> None:
    run_id = (await run(client, document(delay("a"))))["id"]
    message = await refused(client, "retry_orchestration", {"id": run_id})
    assert f"every task of orchestration {run_id} succeeded; nothing to retry" in message


# --- list_task_types and the vault --------------------------------------------------------


@pytest.mark.anyio
async def test_list_task_types_and_each_example_validates(client: Client) -> None:
    result = await call(client, "list_task_types")
    (text,) = result.content
    assert isinstance(text, TextContent)
    assert len(text.text) < 8_000  # ~2k tokens: the summary an agent reads first
    answer = result.structured_content
    assert answer is not None
    assert "list_task_types(type=" in answer["detail"]
    types = {info["type"]: info for info in answer["task_types"]}
    available = {name for name, info in types.items() if info["available"]}
    assert available == set(discover()) - {"shell"}  # off unless ORCHESTRATOR_ALLOW_SHELL=1
    assert types["shell"]["available"] is False
    assert types["shell"]["summary"] == (
        "disabled on this server: set ORCHESTRATOR_ALLOW_SHELL=1 to allow it"
    )
    assert types["shell"]["config_schema"] is None
    assert "api_call" in types["http"]["aliases"]
    assert "data" in types["data_processing"]["aliases"]

    assert types["http"]["required"] == ["url"]
    assert "method" in types["http"]["optional"]
    for name in sorted(available):
        info = types[name]
        assert info["config_schema"] is None
        (detail,) = (await ok(client, "list_task_types", {"type": name}))["task_types"]
        assert detail["config_schema"]["type"] == "object"
        assert set(detail["config_schema"]["properties"]) == {
            *info["required"],
            *info["optional"],
        }
        assert info["summary"]
        example = info["example"]
        assert example["type"] == name
        stand_ins = [{"id": dep, "type": "delay"} for dep in example.get("dependencies", [])]
        report = await ok(client, "validate_orchestration", {"spec": document(*stand_ins, example)})
        assert report["errors"] == [], name
        assert report["ok"] is True, name


# --- resources -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resource_templates_are_listed(client: Client) -> None:
    listing = await client.list_resource_templates()
    templates = {t.uri_template: t.mime_type for t in listing.resource_templates}
    assert templates == {
        "orchestration://{id}": "application/json",
        "orchestration://{id}/results{?offset}": "application/json",
        "orchestration://{id}/log": "text/plain",
        "orchestration://{id}/summary": "text/plain",
        "orchestration://{id}/report": "text/html",
        "orchestration://{id}/artifacts/{name}": "application/octet-stream",
        "orchestration://{id}/live": "application/json",
    }


@pytest.mark.anyio
async def test_resources_status_results_log_and_summary(client: Client) -> None:
    run_id = (await run(client, FAILING))["id"]

    status = json.loads(await read_text(client, f"orchestration://{run_id}"))
    assert status["id"] == run_id
    assert [row["id"] for row in status["tasks"]] == ["broken", "after", "last", "fine"]
    assert status["tasks_omitted"] == 0

    results = json.loads(await read_text(client, f"orchestration://{run_id}/results"))
    assert (results["id"], results["status"]) == (run_id, "failed")
    tasks = results["tasks"]
    assert list(tasks) == ["broken", "after", "last", "fine"]
    assert [tasks[t]["state"] for t in tasks] == ["failed", "skipped", "skipped", "succeeded"]
    assert tasks["fine"]["output"] == "kept"
    assert tasks["broken"]["attempts"] == 2
    assert tasks["last"]["chain"] == ["after", "broken"]

    log = await read_text(client, f"orchestration://{run_id}/log")
    assert "submitted" in log
    assert "finished" in log
    assert "connection refused" in log

    summary = await read_text(client, f"orchestration://{run_id}/summary")
    assert summary.startswith("ORCHESTRATION COMPLETE")
    assert "Tasks:      4 total" in summary


@pytest.mark.anyio
async def test_a_long_log_is_its_last_part_naming_the_file_with_the_whole(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the resource's size (made small here) the log says where the whole of it is: a
    running run's once it ends, a finished run's now, as execution_log.txt."""
    monkeypatch.setattr(resources, "RESOURCE_MAX_CHARS", 100)
    slow = (await ok(client, "submit_orchestration", {"spec": CHAIN}))["id"]
    log = await read_text(client, f"orchestration://{slow}/log")
    assert log.startswith("[the first ") and "once the run ends, the whole log is the" in log
    await ok(client, "wait_for_orchestration", {"id": slow, "timeout_seconds": 20})
    log = await read_text(client, f"orchestration://{slow}/log")
    (where,) = re.findall(
        r"the whole log is the file execution_log.txt in the run's folder, (\S+)\]", log
    )
    whole = (Path(where) / "execution_log.txt").read_text(encoding="utf-8")
    assert len(whole) > 100 and whole.rstrip().endswith(log.rstrip().splitlines()[-1])


@pytest.mark.anyio
async def test_an_output_file_gone_with_its_folder_is_a_note_not_an_error(home: Path) -> None:
    """A large output lives in the run's folder; moved or deleted, the other outputs are still
    shown and that one says where it was."""
    spec = document(delay("big", value="q" * 3000), delay("small", value=1))
    async with Client(create_server(settings(home, output_file_bytes=1024))) as client:
        run_id = (await run(client, spec))["id"]
        for kept in (home / "runs" / run_id / "outputs").iterdir():
            kept.unlink()
        results = await ok(client, "get_results", {"id": run_id})
        assert results["outputs"]["small"] == 1
        assert (
            "big.json, which held this output, is gone"
            in results["outputs"]["big"]["output_missing"]
        )
        page = json.loads(await read_text(client, f"orchestration://{run_id}/results"))
        assert "output_missing" in page["tasks"]["big"]["output"]


@pytest.mark.anyio
async def test_a_retry_needing_an_output_file_gone_fails_that_task_saying_so(home: Path) -> None:
    """Was "internal error: FileNotFoundError: ..." with a traceback in the log."""
    spec = document(
        delay("big", value="q" * 3000),
        {**delay("gate", fail_attempts=1), "dependencies": ["big"]},
        {**delay("uses_big", value="${big.output}"), "dependencies": ["gate"]},
    )
    async with Client(create_server(settings(home, output_file_bytes=1024))) as client:
        run_id = (await run(client, spec))["id"]
        for kept in (home / "runs" / run_id / "outputs").iterdir():
            kept.unlink()
        await ok(client, "retry_orchestration", {"id": run_id})
        status = await ok(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10})
        rows = {row["id"]: row for row in status["tasks"]}
        assert (rows["gate"]["state"], rows["uses_big"]["state"]) == ("succeeded", "failed")
        error = rows["uses_big"]["error"]
        assert error.startswith("an output this task uses is gone: its file ")
        assert "big.json was moved or deleted" in error and "run the document again" in error
        assert "internal error" not in error


@pytest.mark.anyio
async def test_artifact_resource_serves_bytes_with_mime_type(client: Client, home: Path) -> None:
    run_id = (await run(client, document(delay("shot"))))["id"]
    artifacts = home / "runs" / run_id / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "shot.png").write_bytes(PNG)

    result = await client.read_resource(
        f"orchestration://{run_id}/artifacts/shot.png", cache_mode="bypass"
    )
    (content,) = result.contents
    assert isinstance(content, BlobResourceContents)
    assert content.mime_type == "image/png"
    assert base64.b64decode(content.blob) == PNG

    listed = await ok(client, "get_results", {"id": run_id})
    assert listed["artifacts"] == [
        {
            "name": "shot.png",
            "uri": f"orchestration://{run_id}/artifacts/shot.png",
            "mime_type": "image/png",
            "size": len(PNG),
        }
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("missing.png", "has no artifact 'missing.png'; it has: none"),
        # A link inside the folder that points outside it is not followed.
        ("escape.db", "has no artifact 'escape.db'; it has: none"),
        ("..%2Fstate.db", "Unknown resource"),
        ("..%2F..%2Fhome%2Fstate.db", "Unknown resource"),
        ("%2E%2E%2Fstate.db", "Unknown resource"),
        ("..", "Unknown resource"),
    ],
)
async def test_artifact_resource_refuses_missing_and_escaping_names(
    client: Client, home: Path, name: str, refusal: str
) -> None:
    run_id = (await run(client, document(delay("a"))))["id"]
    artifacts = home / "runs" / run_id / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "escape.db").symlink_to(home / "state.db")
    with pytest.raises(MCPError) as raised:
        await client.read_resource(
            f"orchestration://{run_id}/artifacts/{name}", cache_mode="bypass"
        )
    message = str(raised.value)
    assert refusal in message
    assert "SQLite format" not in message
    assert len(message) < 300


@pytest.mark.anyio
async def test_missing_artifact_names_what_exists(client: Client, home: Path) -> None:
    run_id = (await run(client, document(delay("a"))))["id"]
    artifacts = home / "runs" / run_id / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "shot.png").write_bytes(PNG)
    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"orchestration://{run_id}/artifacts/other.png")
    assert str(raised.value) == (
        f"orchestration {run_id} has no artifact 'other.png'; it has: shot.png"
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "suffix", ["", "/results", "/log", "/summary", "/report", "/live", "/artifacts/shot.png"]
)
async def test_resources_of_an_unknown_id_are_errors(client: Client, suffix: str) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"orchestration://orch-nothere{suffix}")
    assert "no orchestration has the id 'orch-nothere'" in str(raised.value)
    assert raised.value.code == -32602  # resource not found (SEP-2164), not an internal error


# --- the prompt ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_plan_orchestration_prompt_has_goal_and_a_valid_example(client: Client) -> None:
    goal = "fetch 12 price lists, merge them, flag the outliers"
    prompt = await client.get_prompt("plan_orchestration", {"goal": goal})
    (message,) = prompt.messages
    text = message.content.text  # type: ignore[union-attr]
    assert f"Goal: {goal}" in text
    example = re.search(
        r"^Worked example[^\n]*\n\n(?P<yaml>.*?)\n\nWrite the document", text, re.S | re.M
    )
    assert example is not None
    runners = discover()
    result = validate(
        example["yaml"],
        available_types=set(runners),
        require_runners=True,
        runner_configs={name: runner.config_model for name, runner in runners.items()},
    )
    assert [str(issue) for issue in result.issues] == []
    assert result.plan is not None
    assert result.plan.to_dict()["task_count"] == 5


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("plan_orchestration", {}, "missing argument 'goal'; it takes: goal"),
        ("plan_orchestration", {"goal": "x", "goals": "y"}, "unknown argument 'goals'"),
        ("plan_orchestrations", {"goal": "x"}, "did you mean 'plan_orchestration'?"),
    ],
)
async def test_a_prompt_request_it_cannot_answer_is_invalid_params_saying_why(
    client: Client, name: str, arguments: dict[str, str], expected: str
) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt(name, arguments)
    assert caught.value.code == -32602  # Invalid params, as the spec asks; not -32603
    assert expected in caught.value.message, caught.value.message


# --- internal failures ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_internal_failure_is_a_short_message_without_traceback(
    client: Client, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = (await run(client, document(delay("a"))))["id"]
    await read_text(client, f"orchestration://{run_id}/log")  # every write is committed now
    # Someone damages the database under the running server.
    with sqlite3.connect(home / "state.db") as outside:
        outside.execute("DROP TABLE orchestrations")
    caplog.set_level(logging.ERROR, logger="orchestrator.tools")
    message = await refused(client, "get_status", {"id": run_id})
    assert message.endswith(
        "internal error in get_status (OperationalError); the server log has the details. "
        "Try again; if it keeps failing, report it."
    )
    assert "no such table" not in message
    (record,) = [r for r in caplog.records if r.name == "orchestrator.tools"]
    assert record.exc_info is not None
