"""What an agent gets back, through the SDK's in-memory client: lean, bounded answers that say
what they leave out and the exact call for the rest (issue 19, findings 4–6), and submissions
that cannot silently reuse a run of another document (finding 5).

Each test runs a real server (``create_server``) on its own home with the offline ``delay``
task type.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mcp import Client, MCPError
from mcp.types import ResourceLink, TextContent, TextResourceContents

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.tools.pages import page_outputs, size

pytestmark = pytest.mark.anyio


def delay(task_id: str, **config: Any) -> dict[str, Any]:
    return {"id": task_id, "type": "delay", "config": config}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(home=tmp_path, shutdown_grace=0))) as connected:
        yield connected


async def answer(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def finished_run(client: Client, *tasks: dict[str, Any]) -> str:
    spec = {"name": "answers", "tasks": list(tasks)}
    submitted = await answer(client, "submit_orchestration", {"spec": spec, "wait_seconds": 20})
    assert submitted["progress"]["finished"] is True
    return str(submitted["id"])


# --- finding 4: large outputs --------------------------------------------------------------


async def test_query_picks_part_of_the_outputs(client: Client) -> None:
    rows = [{"name": f"item{n}", "price": n} for n in range(50)]
    run_id = await finished_run(client, delay("fetch", value={"rows": rows}), delay("other"))
    picked = await answer(
        client, "get_results", {"id": run_id, "query": "fetch.rows[?price > `46`].name"}
    )
    assert picked["query_result"] == ["item47", "item48", "item49"]
    assert picked["outputs"] == {}
    assert picked["truncated"] is False

    message = await refusal(client, "get_results", {"id": run_id, "query": "fetch.rows[?"})
    assert "the query could not be run: the expression ends too early" in message
    assert "fetch.items[0:10].name" in message  # an example of the form that works


async def test_a_list_too_large_for_one_answer_comes_in_valid_parts(client: Client) -> None:
    items = [{"n": n, "text": "x" * 30} for n in range(40)]  # ~1,900 characters of JSON
    run_id = await finished_run(client, delay("big", value=items), delay("small", value=1))
    collected: list[Any] = []
    arguments: dict[str, Any] = {"id": run_id, "max_chars": 500}
    pages = 0
    while True:
        page = await answer(client, "get_results", arguments)
        pages += 1
        if "big" in page["outputs"]:
            part = page["part"]
            assert (part["task"], part["kind"], part["total"]) == ("big", "items", 40)
            assert part["start"] == len(collected)
            assert len(json.dumps(page["outputs"]["big"])) <= 500
            collected += page["outputs"]["big"]
        if page["next_offset"] is None:
            break
        assert page["note"].endswith(page["next_call"])
        arguments = {
            **arguments,
            "offset": page["next_offset"],
            "item_offset": page["next_item_offset"],
        }
    assert collected == items
    assert page["outputs"] == {"small": 1}
    assert pages >= 5


async def test_an_item_larger_than_an_answer_is_named_with_a_query_for_it(client: Client) -> None:
    items = ["a", "y" * 600, "b"]
    keys = {"small": 1, "huge text": "y" * 600}
    run_id = await finished_run(client, delay("big", value=items), delay("obj", value=keys))
    page = await answer(client, "get_results", {"id": run_id, "max_chars": 300})
    assert page["outputs"] == {"big": ["a", "b"]}
    assert page["part"]["too_large"] == [1]
    assert 'query="big[1]"' in page["note"]

    page = await answer(client, "get_results", {"id": run_id, "max_chars": 300, "offset": 1})
    assert page["outputs"] == {"obj": {"small": 1}}
    assert (page["part"]["kind"], page["part"]["too_large"]) == ("keys", [1])
    reach = json.dumps('obj."huge text"')
    assert f"query={reach}" in page["note"]
    picked = await answer(
        client, "get_results", {"id": run_id, "query": 'obj."huge text"', "max_chars": 300}
    )
    assert picked["query_result"] == "y" * 298  # a text too large is cut into valid parts too
    assert picked["part"]["task"] == "query"


async def test_results_link_their_bulk_data_as_resource_links(client: Client) -> None:
    run_id = await finished_run(client, delay("a", value=[1, None]))
    result = await client.call_tool("get_results", {"id": run_id})
    text, link = result.content
    assert isinstance(text, TextContent)
    assert json.loads(text.text)["outputs"] == {"a": [1, None]}  # an output's nulls are data
    assert isinstance(link, ResourceLink)
    assert str(link.uri) == f"orchestration://{run_id}/results"


async def test_a_2_mb_output_is_read_through_resources_in_bounded_pages(client: Client) -> None:
    run_id = await finished_run(
        client, delay("huge", value="z" * 2_000_000), delay("after", value="fine")
    )
    result = await client.read_resource(f"orchestration://{run_id}/results", cache_mode="bypass")
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    assert len(content.text) < 210_000
    page = json.loads(content.text)
    huge = page["tasks"]["huge"]
    assert huge["output"] is None
    assert f'get_results(id="{run_id}", task_ids=["huge"])' in huge["output_left_out"]
    assert "2,000,002 characters" in huge["output_left_out"]
    assert page["tasks"]["after"]["output"] == "fine"
    assert page["page"] == {"offset": 0, "tasks_shown": 2, "tasks_total": 2, "next": None}

    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"orchestration://{run_id}/results?offset=x")
    assert "offset must be a whole number" in raised.value.error.message


# --- finding 5: idempotency ----------------------------------------------------------------


async def test_an_idempotency_key_with_another_document_is_refused(client: Client) -> None:
    first = {"tasks": [delay("a", value=1)]}
    submitted = await answer(
        client, "submit_orchestration", {"spec": first, "idempotency_key": "nightly"}
    )
    again = await answer(
        client, "submit_orchestration", {"spec": first, "idempotency_key": "nightly"}
    )
    assert (again["id"], again["existing"]) == (submitted["id"], True)

    other = {"tasks": [delay("a", value=2)]}
    message = await refusal(
        client, "submit_orchestration", {"spec": other, "idempotency_key": "nightly"}
    )
    assert f"already started orchestration {submitted['id']}" in message
    assert "with a different document (they differ in: tasks)" in message
    listed = await answer(client, "list_orchestrations", {})
    assert len(listed["orchestrations"]) == 1


# --- finding 6: protocol details -----------------------------------------------------------


async def test_unknown_resources_are_not_found_errors(client: Client) -> None:
    """-32602 (Invalid params): the code SEP-2164 standardised for "resource not found", and
    the one the SDK gives a URI no template matches; the issue's -32002 was the older advice."""
    for uri in ("orchestration://orch-nothere", "orchestration://orch-nothere/log"):
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
        assert raised.value.error.code == -32602
        assert "no orchestration has the id 'orch-nothere'" in raised.value.error.message


async def test_resources_list_shows_recent_runs(client: Client) -> None:
    def runs(resources: list[Any]) -> list[Any]:  # the live view's ui:// page is listed too
        return [resource for resource in resources if str(resource.uri).startswith("orch")]

    assert runs((await client.list_resources()).resources) == []
    run_id = await finished_run(client, delay("a"))
    (listed,) = runs((await client.list_resources()).resources)
    assert str(listed.uri) == f"orchestration://{run_id}"
    assert listed.title == "answers (succeeded)"
    read = await client.read_resource(str(listed.uri))
    assert json.loads(read.contents[0].text)["id"] == run_id  # type: ignore[union-attr]


async def test_text_content_is_compact_json_without_null_fields(client: Client) -> None:
    run_id = await finished_run(client, delay("a"))
    for tool, arguments in [
        ("validate_orchestration", {"spec": {"tasks": [delay("a")]}}),
        ("list_orchestrations", {}),
        ("list_task_types", {}),
        ("vault_list", {}),
        ("get_results", {"id": run_id}),
    ]:
        result = await client.call_tool(tool, arguments)
        text = result.content[0]
        assert isinstance(text, TextContent), tool
        assert "\n" not in text.text and ":null" not in text.text, tool
        assert json.loads(text.text), tool
    result = await client.call_tool("get_status", {"id": run_id})
    (text,) = result.content
    assert isinstance(text, TextContent)
    assert "\n  " not in text.text and ": null" not in text.text and ":null" not in text.text
    shown = json.loads(text.text)
    full = result.structured_content
    assert full is not None
    assert full["tasks"][0]["error"] is None and "error" not in shown["tasks"][0]
    assert {key: value for key, value in full.items() if value is not None} == {
        **shown,
        "tasks": full["tasks"],
    }


async def test_a_capped_wait_says_so_and_descriptions_state_the_cap(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, shutdown_grace=0, max_wait_seconds=0.2)
    async with Client(create_server(settings)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        for name in ("wait_for_orchestration", "submit_orchestration"):
            assert "waits at most 0.2 s per call" in (tools[name].description or ""), name
        spec = {"tasks": [delay("long", seconds=30)]}
        run_id = (await answer(client, "submit_orchestration", {"spec": spec}))["id"]
        waited = await answer(
            client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 600}
        )
        assert waited["finished"] is False
        assert waited["wait_note"].startswith("waited 0.2 s, not the 600 s asked for")
        assert "ORCHESTRATOR_MAX_WAIT_SECONDS" in waited["wait_note"]
        short = await answer(
            client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 0.1}
        )
        assert "wait_note" not in short


# --- finding 3: list_task_types --------------------------------------------------------------


async def test_one_task_type_in_full_and_a_misspelt_one_refused(client: Client) -> None:
    (http,) = (await answer(client, "list_task_types", {"type": "api_call"}))["task_types"]
    assert http["type"] == "http"  # found by its alias
    assert http["config_schema"]["properties"]["url"]
    message = await refusal(client, "list_task_types", {"type": "htp"})
    assert "no task type 'htp'; did you mean 'http'?" in message


# --- a thousand failures: every answer and resource stays bounded ---------------------------


async def test_a_run_with_a_thousand_failures_answers_within_bounds(client: Client) -> None:
    root = {**delay("root", fail="network", message="refused"), "retry": {"max_attempts": 1}}
    dependents = [{**delay(f"t{n}"), "dependencies": ["root"]} for n in range(1000)]
    spec = {"name": "answers", "tasks": [*dependents, root]}  # the root cause listed last
    submitted = await answer(client, "submit_orchestration", {"spec": spec, "wait_seconds": 30})
    run_id = submitted["id"]

    result = await client.call_tool("get_results", {"id": run_id})
    assert result.structured_content is not None
    results = result.structured_content
    assert len(result.content[0].text) < 10_000  # type: ignore[union-attr]
    assert [failure["task"] for failure in results["failures"][:2]] == ["root", "t0"]
    assert (len(results["failures"]), results["failures_omitted"]) == (20, 981)
    assert results["truncated"] is True
    listed = results["summary"].split("FAILURES:\n")[1].split("\n\n")[0].splitlines()
    assert len(listed) == 21
    assert (listed[0], listed[-1]) == ("- root: refused [network]", "- … and 981 more")
    assert (
        f"20 of 1,001 failures shown (failed tasks first); every task's state is in "
        f"orchestration://{run_id}/results" in results["note"]
    )

    status = await client.read_resource(f"orchestration://{run_id}", cache_mode="bypass")
    assert len(json.loads(status.contents[0].text)["tasks"]) == 500  # type: ignore[union-attr]

    report = await client.read_resource(f"orchestration://{run_id}/report", cache_mode="bypass")
    page = report.contents[0].text  # type: ignore[union-attr]
    assert len(page) < 1_000
    assert f"Run <code>orchestrator report {run_id}</code>" in page

    seen: list[str] = []
    uri: str | None = f"orchestration://{run_id}/results"
    while uri is not None:
        read = await client.read_resource(uri, cache_mode="bypass")
        text = read.contents[0].text  # type: ignore[union-attr]
        assert len(text) <= 200_000
        part = json.loads(text)
        seen += list(part["tasks"])
        uri = part["page"]["next"]
    assert seen == [*(f"t{n}" for n in range(1000)), "root"]


# --- the paging itself: every page fits, and the pages put together are the outputs ---------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(
    outputs=st.lists(
        st.tuples(st.text(min_size=1, max_size=6), JSON), max_size=6, unique_by=lambda p: p[0]
    ),
    max_chars=st.integers(min_value=80, max_value=400),
)
def test_pages_fit_and_put_together_give_every_output(
    outputs: list[tuple[str, Any]], max_chars: int
) -> None:
    assume(all(size(piece) + 10 <= max_chars for _, value in outputs for piece in _pieces(value)))
    collected: dict[str, Any] = {}
    offset, item_offset = 0, 0
    for _ in range(10_000):
        page = page_outputs(outputs, offset=offset, item_offset=item_offset, max_chars=max_chars)
        assert sum(size(value) for value in page.outputs.values()) <= max_chars
        for task_id, value in page.outputs.items():
            if page.part is not None and page.part.task == task_id:
                assert not page.part.too_large  # no piece here is larger than a page
                collected[task_id] = _joined(collected.get(task_id), value, page.part.kind)
            else:
                collected[task_id] = value
        if page.next_offset is None:
            break
        assert (page.next_offset, page.next_item_offset) > (offset, item_offset)
        offset, item_offset = page.next_offset, page.next_item_offset
    assert collected == dict(outputs)


def _pieces(value: Any) -> list[Any]:
    """What a value too large for a page is cut into."""
    if isinstance(value, dict):
        return [{key: item} for key, item in value.items()]
    return value if isinstance(value, list) else []


def _joined(before: Any, part: Any, kind: str) -> Any:
    if before is None:
        return part
    if kind == "keys":
        return {**before, **part}
    return before + part


@settings(max_examples=200, deadline=None)
@given(value=JSON, limit=st.integers(min_value=0, max_value=300))
def test_a_bounded_size_is_exact_up_to_its_limit(value: Any, limit: int) -> None:
    """``size(value, limit)`` tells "more than ``limit``" without writing a large value's JSON,
    and is exact otherwise: paging decides the same either way."""
    exact = size(value)
    bounded = size(value, limit)
    assert bounded == exact if exact <= limit else bounded > limit
