"""The vault tools: values go in and never come out.

The encrypted vault arrives with its own release; until then these tools answer with a clear
error so a model learns at once that secrets cannot be stored here yet.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

NO_VAULT = (
    "the credential vault is not available in this version of the server yet, so secrets "
    "cannot be stored or listed; documents may still reference ${vault.NAME}, but such tasks "
    "fail until the vault arrives. Ask the user to provide the credential another way."
)


def register(mcp: MCPServer) -> None:
    mcp.add_tool(
        vault_set,
        annotations=ToolAnnotations(
            title="Store a secret", readOnlyHint=False, idempotentHint=True
        ),
    )
    mcp.add_tool(vault_list, annotations=ToolAnnotations(title="List secrets", readOnlyHint=True))
    mcp.add_tool(
        vault_delete,
        annotations=ToolAnnotations(
            title="Delete a secret", readOnlyHint=False, destructiveHint=True
        ),
    )


async def vault_set(
    name: Annotated[str, Field(description="the secret's name, used as ${vault.NAME}")],
    value: Annotated[str, Field(description="the secret value; it can never be read back")],
    allowed_hosts: Annotated[
        list[str],
        Field(description="hosts the secret may be sent to, e.g. api.example.com, *.example.com"),
    ],
    ctx: Context,
    description: str | None = None,
) -> str:
    """Store a credential for orchestrations to use as ${vault.NAME}; it is only ever sent to
    the allowed hosts and no tool returns it."""
    raise ToolError(NO_VAULT)


async def vault_list(ctx: Context) -> str:
    """The stored secrets' names, descriptions and allowed hosts — never their values."""
    raise ToolError(NO_VAULT)


async def vault_delete(
    name: Annotated[str, Field(description="the secret to delete")], ctx: Context
) -> str:
    """Delete a stored secret."""
    raise ToolError(NO_VAULT)
