"""Tool arguments through the MCP client: a mistake in a call never sends a value back to the
model (``vault_set``'s secret above all), and unknown arguments are refused, not ignored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings

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
