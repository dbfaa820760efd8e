"""Tool arguments through the MCP client: a mistake in a call never sends a value back to the
model (``vault_set``'s secret above all), unknown arguments are refused, not ignored, and every
problem is listed the way document problems are (issue 19, findings 1 and 2), and half of a
UTF-16 surrogate pair, which no UTF-8 text can hold, is refused or replaced wherever it comes in."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ToolAnnotations

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.tools.strict import strict_tool

pytestmark = pytest.mark.anyio
SECRET = "hunter2pw-canary-51c0"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(home=tmp_path, shutdown_grace=1))) as connected:
        yield connected


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    return "\n".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "TOKEN", "value": SECRET},  # allowed_hosts missing
        {"name": "TOKEN", "value": SECRET, "allowed_hosts": "api.example.com"},  # not a list
        {"name": "TOKEN", "value": SECRET, "allowed_hosts": []},
        {"name": ["TOKEN", SECRET], "value": SECRET, "allowed_hosts": ["api.example.com"]},
        {"name": "TOKEN", "value": SECRET, "allowed_hosts": ["x"], "hosts": [SECRET]},
    ],
)
async def test_a_vault_set_mistake_never_echoes_the_value(
    client: Client, arguments: dict[str, Any]
) -> None:
    message = await refusal(client, "vault_set", arguments)
    assert SECRET not in message, message
    assert "input_value" not in message
    listed = await client.call_tool("vault_list", {})
    assert "TOKEN" not in str(listed.structured_content)


async def test_an_unknown_argument_is_refused_with_the_closest_name(client: Client) -> None:
    message = await refusal(client, "wait_for_orchestration", {"id": "orch-1", "timeout": 600})
    assert "unknown argument 'timeout'" in message
    assert "timeout_seconds" in message
    listing = await client.list_tools()
    assert all(tool.input_schema.get("additionalProperties") is False for tool in listing.tools)


async def test_an_unknown_argument_starts_nothing(client: Client) -> None:
    """``dry_run`` is no argument of submit: the call is refused, and no run starts."""
    spec = "tasks: [{id: a, type: delay}]"
    message = await refusal(client, "submit_orchestration", {"spec": spec, "dry_run": True})
    assert message.startswith("The arguments of submit_orchestration have 1 problem:\n")
    assert "- dry_run: unknown argument 'dry_run'" in message
    assert message.endswith(
        "Fix them and call submit_orchestration again (tools/list shows its input schema)."
    )
    listed = await client.call_tool("list_orchestrations", {})
    assert listed.structured_content == {"orchestrations": []}


async def test_a_tool_without_parameters_refuses_any(client: Client) -> None:
    message = await refusal(client, "vault_list", {"verbose": True})
    assert "unknown argument 'verbose' (this tool takes: no arguments)" in message
    (vault_list,) = [
        tool for tool in (await client.list_tools()).tools if tool.name == "vault_list"
    ]
    assert vault_list.input_schema == {
        "type": "object",
        "properties": {},
        "title": "vault_listArguments",
        "additionalProperties": False,
    }


async def test_every_problem_is_listed_without_pydantic_noise(client: Client) -> None:
    message = await refusal(
        client, "get_results", {"id": SECRET + "x" * 10, "max_chars": SECRET, "task_id": SECRET}
    )
    assert "have 2 problems" in message
    assert "- max_chars: Input should be a valid integer" in message
    assert "- task_id: unknown argument 'task_id'" in message
    assert "did you mean 'task_ids'?" in message
    for noise in (SECRET, "input_value", "errors.pydantic.dev", "[type="):
        assert noise not in message


async def test_a_spec_that_is_json_but_no_mapping_says_what_a_document_is(
    client: Client,
) -> None:
    """The SDK reads the text 'null' or '[]' as JSON before validation: that was an argument
    error ("Input should be a valid string"), not what a document must be."""
    for spec in ("null", "[]"):
        text = await refusal(client, "submit_orchestration", {"spec": spec})
        assert "the document must be a mapping" in text and "start with 'tasks:'" in text
        checked = await client.call_tool("validate_orchestration", {"spec": spec})
        assert checked.structured_content is not None
        assert checked.structured_content["ok"] is False
        [error] = checked.structured_content["errors"]
        assert error["message"].startswith("the document must be a mapping, not ")


def test_a_tool_that_leaves_a_hint_unset_cannot_be_built() -> None:
    """What every tool must declare (other modules' tools too): a title and all four hints."""

    async def peek() -> None:
        """Looks."""

    with pytest.raises(ValueError, match="must set idempotent_hint, open_world_hint explicitly"):
        strict_tool(
            peek,
            annotations=ToolAnnotations(title="Peek", read_only_hint=True, destructive_hint=False),
        )
    with pytest.raises(ValueError, match="must set title explicitly"):
        strict_tool(
            peek,
            annotations=ToolAnnotations(
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        )


async def test_tools_are_listed_in_the_same_order_by_every_server(
    client: Client, tmp_path: Path
) -> None:
    first = [tool.name for tool in (await client.list_tools()).tools]
    assert first == [tool.name for tool in (await client.list_tools()).tools]
    async with Client(create_server(Settings(home=tmp_path / "other", shutdown_grace=1))) as other:
        assert first == [tool.name for tool in (await other.list_tools()).tools]
    assert first[:3] == ["submit_orchestration", "validate_orchestration", "get_status"]


@pytest.mark.parametrize(
    ("tool", "problem"), [("get_status", "no orchestration has"), ("pause_schedule", "no schedule")]
)
async def test_an_id_far_too_long_is_unknown_and_not_sent_back(
    client: Client, tool: str, problem: str
) -> None:
    """200,000 characters is past SQLite's longest LIKE pattern (50,000 bytes): still the
    answer for an id nothing has, quoting only its start; a prefix still finds its id."""
    spec = "tasks: [{id: a, type: delay}]"
    made = await client.call_tool("schedule_orchestration", {"spec": spec, "every": "1h"})
    ran = await client.call_tool("submit_orchestration", {"spec": spec})
    assert made.structured_content is not None and ran.structured_content is not None
    full = (
        made.structured_content["schedule"]["id"]
        if tool == "pause_schedule"
        else ran.structured_content["id"]
    )
    message = await refusal(client, tool, {"id": full[:6] + "x" * 200_000})
    assert problem in message, message
    assert "internal error" not in message
    assert len(message) < 600
    found = await client.call_tool(tool, {"id": full[:-2].upper()})
    assert found.structured_content is not None and found.structured_content["id"] == full


@pytest.mark.parametrize(
    ("tool", "argument"), [("list_task_types", "type"), ("list_mcp_tools", "server")]
)
async def test_a_name_far_too_long_is_refused_without_being_sent_back(
    client: Client, tool: str, argument: str
) -> None:
    message = await refusal(client, tool, {argument: "q" * 100_000})
    assert f"{argument}: " in message
    assert "qqqqqqqqqq" not in message
    assert len(message) < 600


class HalfPair(BaseHTTPRequestHandler):
    """Answers JSON whose string is half of a UTF-16 surrogate pair (json.loads keeps it)."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"name": "ab\\ud800cd"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def test_half_a_surrogate_pair_never_breaks_the_store_or_an_answer(client: Client) -> None:
    # no UTF-8 text can hold one: sent in a document or an argument it is refused, naming it;
    # from a server it is kept as U+FFFD; and the state database stays writable throughout
    half = "x\ud800"
    document = {"tasks": [{"id": "a", "type": "delay", "config": {"value": half}}]}
    text = await refusal(client, "submit_orchestration", {"spec": json.dumps(document)})
    assert "half of a UTF-16 surrogate pair (U+D800)" in text
    for tool, arguments in [
        ("get_status", {"id": half}),
        ("vault_set", {"name": "K", "value": half, "allowed_hosts": ["example.com"]}),
        ("submit_orchestration", {"spec": {"tasks": []}, "idempotency_key": half}),
    ]:
        text = await refusal(client, tool, arguments)
        assert "holds half of a UTF-16 surrogate pair" in text, text
        assert "internal error" not in text
    server = ThreadingHTTPServer(("127.0.0.1", 0), HalfPair)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        spec = {"tasks": [{"id": "get", "type": "http", "config": {"url": url}}]}
        arguments = {"spec": spec, "wait_seconds": 20}
        submitted = await client.call_tool("submit_orchestration", arguments)
    finally:
        server.shutdown()
        server.server_close()
    assert not submitted.is_error, submitted.content
    assert submitted.structured_content["status"] == "succeeded"
    results = await client.call_tool("get_results", {"id": submitted.structured_content["id"]})
    assert not results.is_error, results.content
    assert results.structured_content["outputs"]["get"]["data"] == {"name": "ab\ufffdcd"}
