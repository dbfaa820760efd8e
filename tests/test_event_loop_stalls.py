"""Hostile input does not stall the MCP server: ``get_status`` keeps being answered.

Each test runs a real server (``create_server``) with the SDK's in-memory client, which shares
the server's event loop: while one call carries a hostile document (1.5 MB of YAML, 20,000 tasks,
a reference that multiplies its input), a second client loop calls ``get_status`` on a small run.
Were the server's loop blocked, no answer could arrive until the hostile call returned; the
tests count the answers that arrive while it is in flight, and check how the input is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from test_mcp_tools import (
    ok,
    refused,
    run,
    settings,
)

from multi_task_orchestrator.server.app import create_server

# More answers than could arrive if the loop were blocked for the whole hostile call (at most
# the one already in flight), few enough to arrive in well under a second of free loop time.
ANSWERS = 5


@pytest.fixture
async def mcp(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(settings(home))) as connected:
        yield connected


def chain_document(count: int, task_type: str = "delay") -> str:
    """YAML text of ``count`` tasks in a chain, each reading the one before (~110 bytes a
    task); written out directly, as PyYAML would take seconds to dump it."""
    lines = ["name: large", "tasks:", f"  - {{id: t0, type: {task_type}, config: {{value: 0}}}}"]
    for i in range(1, count):
        lines += [
            f"  - id: t{i}",
            f"    type: {task_type}",
            f"    description: task number {i}",
            f"    dependencies: [t{i - 1}]",
            f"    config: {{value: '${{t{i - 1}.output}}'}}",
        ]
    return "\n".join(lines) + "\n"


async def answered_during(client: Client, hostile: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """Await ``hostile()`` while calling get_status on a small finished run; return its
    result and how many get_status answers arrived while it was in flight."""
    small = await run(client, {"tasks": [{"id": "a", "type": "delay"}]})
    answers = 0
    result: Any = None
    done = anyio.Event()

    async def poll() -> None:
        nonlocal answers
        while not done.is_set():
            status = await ok(client, "get_status", {"id": small["id"]})
            assert status["status"] == "succeeded"
            if not done.is_set():
                answers += 1

    async def carry() -> None:
        nonlocal result
        try:
            result = await hostile()
        finally:
            done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        group.start_soon(carry)
    return result, answers


@pytest.mark.anyio
async def test_validating_a_large_yaml_document_leaves_get_status_answering(
    mcp: Client,
) -> None:
    text = chain_document(10_000)
    assert len(text) > 1_000_000

    report, answers = await answered_during(
        mcp, lambda: ok(mcp, "validate_orchestration", {"spec": text})
    )

    assert report["ok"] is True, report["errors"][:3]
    assert report["plan"]["task_count"] == 10_000
    assert answers >= ANSWERS


@pytest.mark.anyio
async def test_the_plan_of_a_large_document_is_shown_in_part_saying_what_is_left_out(
    mcp: Client,
) -> None:
    # In full, the plan of a 10,000-task chain is ~0.5 MB of ids: no use to a model, and a
    # moment of serialising on the server's loop.
    result = await mcp.call_tool("validate_orchestration", {"spec": chain_document(10_000)})

    assert not result.is_error
    assert len(result.content[0].text) < 40_000
    plan = result.structured_content["plan"]
    assert (plan["task_count"], plan["stage_count"], plan["critical_path_length"]) == (
        10_000,
        10_000,
        10_000,
    )
    assert plan["stages"] == [[f"t{i}"] for i in range(20)]
    path = plan["critical_path"]
    assert path == [f"t{i}" for i in range(25)] + [f"t{i}" for i in range(9_975, 10_000)]
    assert plan["left_out"] == (
        "this plan is large: stages 21–10,000; the middle 9,950 tasks of the critical path "
        "are left out of this answer; `orchestrator validate FILE` prints the whole plan"
    )
    description = plan["description"].splitlines()
    assert description[0].startswith("10000 tasks in 10000 stages (parallel, ")
    assert description[20:22] == ["  stage 20: t19", "  … 9,980 more stages"]
    assert "t24 -> … 9,950 more … -> t9975" in description[22]


@pytest.mark.anyio
async def test_submitting_a_large_document_with_a_late_mistake_leaves_get_status_answering(
    mcp: Client,
) -> None:
    # the mistake is in the last task: the whole document is read and checked before the refusal
    text = chain_document(9_999) + "  - {id: last, type: delay, dependencies: [nowhere]}\n"

    message, answers = await answered_during(
        mcp, lambda: refused(mcp, "submit_orchestration", {"spec": text})
    )

    assert "nowhere" in message
    assert answers >= ANSWERS


@pytest.mark.anyio
async def test_submitting_a_large_document_leaves_get_status_answering(mcp: Client) -> None:
    text = chain_document(5_000)

    submitted, answers = await answered_during(
        mcp, lambda: ok(mcp, "submit_orchestration", {"spec": text})
    )

    assert submitted["task_count"] == 5_000
    assert answers >= ANSWERS


@pytest.mark.anyio
async def test_too_many_tasks_are_refused_by_count_before_any_task_is_checked(
    mcp: Client,
) -> None:
    # 20,000 tasks, each with a mistake: were they checked, the answer would list those
    text = chain_document(20_000, task_type="not_a_type")

    message, answers = await answered_during(
        mcp, lambda: refused(mcp, "submit_orchestration", {"spec": text})
    )

    assert "20,000 tasks" in message
    assert "ORCHESTRATOR_MAX_TASKS" in message
    assert "10,000" in message
    assert "not_a_type" not in message
    assert answers >= 1


@pytest.mark.anyio
async def test_too_many_tasks_in_a_json_object_are_refused_by_count(mcp: Client) -> None:
    document = {"tasks": [{"id": f"t{i}", "type": "no_such_type"} for i in range(10_001)]}
    report = await ok(mcp, "validate_orchestration", {"spec": document})
    assert report["ok"] is False
    (error,) = report["errors"]
    assert "10,001 tasks" in error["message"] and "ORCHESTRATOR_MAX_TASKS" in error["message"]


def doubling(times: int) -> str:
    return " | ".join(["[@, @]"] * times)


@pytest.mark.anyio
async def test_a_reference_that_multiplies_its_input_is_refused_at_validation(
    mcp: Client,
) -> None:
    reference = f"${{a.output | {doubling(30)} | length(to_string(@))}}"
    spec = {
        "tasks": [
            {"id": "a", "type": "delay", "config": {"value": [1, 2, 3]}},
            {"id": "b", "type": "delay", "dependencies": ["a"], "config": {"value": reference}},
        ]
    }

    message = await refused(mcp, "submit_orchestration", {"spec": spec})

    assert "can repeat its input more than 10,000 times" in message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tail", "what"),
    [
        ("", "its value has more than 200,000 values"),
        (" | length(to_string(@))", "walks more than 200,000 values"),
        (" | [*][*][*][*][*][*][*][*][*][*]", "its value has more than 200,000 values"),
        (" | [][][][][][][][][][]", "walks more than 200,000 values"),
    ],
)
async def test_a_reference_too_large_at_run_time_fails_its_task_naming_the_limit(
    mcp: Client, tail: str, what: str
) -> None:
    # 1,000 items repeated 2^10 times: within the static bound, a million values at run time
    reference = f"${{a.output | {doubling(10)}{tail}}}"
    spec = {
        "tasks": [
            {"id": "a", "type": "delay", "config": {"value": list(range(1_000))}},
            {"id": "b", "type": "delay", "dependencies": ["a"], "config": {"value": reference}},
            {"id": "c", "type": "delay", "config": {"seconds": 0.3, "value": "fine"}},
        ]
    }

    submitted, answers = await answered_during(mcp, lambda: run(mcp, spec))

    rows = {row["id"]: row for row in submitted["progress"]["tasks"]}
    assert rows["a"]["state"] == "succeeded"
    assert rows["c"]["state"] == "succeeded"
    assert rows["b"]["state"] == "failed"
    assert what in rows["b"]["error"]
    assert rows["b"]["error_class"] == "config"
    assert "over the limit of 200,000 values per reference" in rows["b"]["error"]
    assert answers >= 1


@pytest.mark.anyio
async def test_a_large_but_honest_reference_still_works(mcp: Client) -> None:
    spec = {
        "tasks": [
            {
                "id": "a",
                "type": "delay",
                "config": {"value": [{"x": i, "y": f"v{i}"} for i in range(20_000)]},
            },
            {
                "id": "b",
                "type": "delay",
                "dependencies": ["a"],
                "config": {"value": "${length(a.output[?x >= `10000`].y)}"},
            },
        ]
    }
    submitted = await run(mcp, spec)
    rows = {row["id"]: row for row in submitted["progress"]["tasks"]}
    assert rows["b"]["state"] == "succeeded"
    results = await ok(mcp, "get_results", {"id": submitted["id"], "task_ids": ["b"]})
    assert "10000" in str(results)
