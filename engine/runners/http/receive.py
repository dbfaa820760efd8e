"""Where a response's data enters: read as it streams under the size limit, then redacted.

``receive`` stops reading as soon as a body passes its ``ResponseLimit`` (the server's
``ORCHESTRATOR_MAX_RESPONSE_BYTES``, or a task's lower ``max_response_bytes``); ``redacted``
masks every secret in the body and headers before anything the document controls reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.limits import show_bytes
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.request import Request
from multi_task_orchestrator.engine.secrets import NoVault, redact_bytes


@dataclass(frozen=True, slots=True)
class ResponseLimit:
    """The most bytes a response body may have, and which setting says so (for the message)."""

    size: int
    server: int
    by_task: bool

    @classmethod
    def of(cls, server: int, request: Request) -> ResponseLimit:
        task = request.max_response_bytes
        if task is not None and task < server:
            return cls(task, server, True)
        return cls(server, server, False)

    def exceeded(self, label: str, declared: int | None = None) -> TaskError:
        size = f" ({show_bytes(declared)} declared)" if declared is not None else ""
        if self.by_task:
            how = (
                f"the task's max_response_bytes is {show_bytes(self.size)}; raise it (up to "
                f"ORCHESTRATOR_MAX_RESPONSE_BYTES, {show_bytes(self.server)})"
            )
        else:
            how = (
                f"the limit is ORCHESTRATOR_MAX_RESPONSE_BYTES, {show_bytes(self.size)}; raise "
                "it where the orchestrator runs to allow larger responses"
            )
        return TaskError(
            f"{label}: the response body is larger than {show_bytes(self.size)}{size} and was "
            f"not read further; {how}",
            "too_large",
        )


async def receive(
    client: httpx.AsyncClient, outgoing: httpx.Request, limit: ResponseLimit, label: str
) -> httpx.Response:
    """Send ``outgoing`` and read the body as it streams, stopping as soon as it passes the
    limit (decoded bytes are counted, so a compressed body cannot expand past it either)."""
    response = await client.send(outgoing, stream=True)
    body = bytearray()
    try:
        declared = response.headers.get("content-length", "")
        encoded = "content-encoding" in response.headers
        if not encoded and declared.isdigit() and int(declared) > limit.size:
            raise limit.exceeded(label, int(declared))
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > limit.size:
                raise limit.exceeded(label)
            body += chunk
    finally:
        await response.aclose()
    dropped = ("content-encoding", "transfer-encoding") + (("content-length",) if encoded else ())
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped],
        content=bytes(body),
        request=response.request,
        extensions=response.extensions,
    )


def redacted(ctx: RunContext, response: httpx.Response) -> httpx.Response:
    """``response`` with every secret masked in its body and headers, before anything the
    document controls (``extract``, ``paginate``, a redirect's ``Location``, an artifact, an
    error excerpt) reads it: a server that echoes a secret cannot turn it into a form the
    redactor does not know, nor send it on to another host."""
    if isinstance(ctx.secrets, NoVault):
        return response
    content = response.content
    clean = redact_bytes(content, ctx.secrets.redact, response.encoding or "utf-8")
    headers = [(name, ctx.secrets.redact(value)) for name, value in response.headers.items()]
    if clean is content and headers == list(response.headers.items()):
        return response
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=kept,
        content=clean,
        request=response.request,
        extensions=response.extensions,
    )
