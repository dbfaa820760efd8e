"""The vault tools: values go in and never come out.

``vault_set`` stores a secret bound to the hosts it may be sent to; ``vault_list`` shows names,
descriptions, hosts and times; ``vault_delete`` removes one. No tool returns a value, and a
refusal or a validation error names the secret, never its value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import Field

from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import DeletedSecret, SecretList, StoredSecret
from multi_task_orchestrator.tools.strict import read_only, strict_tool
from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.store import Vault

P = ParamSpec("P")
R = TypeVar("R")


def tools() -> list[Tool]:
    """The vault tools."""
    return [
        strict_tool(
            vault_set,
            annotations=ToolAnnotations(
                title="Store a secret",
                read_only_hint=False,
                destructive_hint=True,  # replaces a secret of the same name, and its hosts
                idempotent_hint=True,
                open_world_hint=False,
            ),
        ),
        strict_tool(
            vault_list,
            annotations=read_only("List secrets"),
        ),
        strict_tool(
            vault_delete,
            annotations=ToolAnnotations(
                title="Delete a secret",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                open_world_hint=False,
            ),
        ),
    ]


@friendly_errors
async def vault_set(
    name: Annotated[
        str,
        Field(description="the secret's name, e.g. API_TOKEN; documents use it as ${vault.NAME}"),
    ],
    value: Annotated[
        str, Field(description="the secret value (at most 64 KiB); it can never be read back")
    ],
    allowed_hosts: Annotated[
        list[str],
        Field(
            min_length=1,
            description="the only hosts the secret may be sent to: host names "
            "(api.example.com), subdomain patterns (*.example.com, which does not match "
            "example.com itself), or ['*'] for any host. Host names only: no scheme, port or path.",
        ),
    ],
    ctx: Context,
    description: Annotated[
        str | None,
        Field(description="what the secret is for (at most 1,000 characters), shown by vault_list"),
    ] = None,
) -> StoredSecret:
    """Store a credential (password, API token, browser session) in the encrypted vault, for
    orchestrations to use as ${vault.NAME} in a task's config. A secret with the same name is
    replaced.

    You never get the value back: no tool returns it, and it shows as *** wherever it would
    appear in results, logs or errors. It is sent only to the allowed hosts; a task that tries
    to send it anywhere else fails. Where you can, ask the user to store secrets themselves with
    `orchestrator vault set NAME --hosts HOST`, so the value never passes through the
    conversation.
    """
    vault = await _vault(ctx)
    info = await _call(vault.set, name, value, allowed_hosts=allowed_hosts, description=description)
    return StoredSecret(
        secret=info,
        usage=f"write ${{vault.{info.name}}} in a task's config; it is revealed only to "
        f"{', '.join(info.allowed_hosts)}",
    )


@friendly_errors
async def vault_list(ctx: Context) -> SecretList:
    """The stored secrets: names, descriptions, allowed hosts, and when each was created,
    updated and last used. Never their values."""
    vault = await _vault(ctx)
    return SecretList(secrets=await _call(vault.list))


@friendly_errors
async def vault_delete(
    name: Annotated[str, Field(description="the name of the secret to delete")], ctx: Context
) -> DeletedSecret:
    """Delete a stored secret. Orchestrations that use it fail until it is stored again."""
    vault = await _vault(ctx)
    await _call(vault.delete, name)
    return DeletedSecret(deleted=name)


async def _vault(ctx: Context) -> Vault:
    """The server's vault, unlocked (or created) now if need be; a ToolError says why not."""
    secrets = tool_context(ctx).vault
    if secrets is None:
        raise ToolError("this server was started without a vault, so secrets cannot be stored")
    return await _call(secrets.vault)


async def _call(function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a (briefly blocking) vault method off the event loop; its errors become ToolErrors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except VaultError as exc:
        raise ToolError(str(exc)) from None
