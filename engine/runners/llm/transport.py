"""The model SDKs' HTTP transport: every call goes out through the engine's ``Network``.

The ``anthropic`` and ``openai`` SDKs speak ``httpx2``; the engine's client is ``httpx``. This
transport is the ``httpx2`` side of an SDK client and hands each request to the engine's shared,
policy-checked client (``Network.client()``: its pinned transport connects only to addresses the
network policy has checked), holding one of the host's slots (``HostLimits``) meanwhile.

The SDK never holds the key: it is given a placeholder, and the transport removes every
credential header the SDK set and adds the real one, revealed from the vault for the host this
request goes to, after the network policy has admitted that host. A host the secret is not
allowed for is refused before anything is sent. The answer's body and headers have every secret
masked as they arrive (``redacted``), before the SDK, an error message or an output reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.limits import show_bytes
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http import redacted

# A chat answer is text of at most max_tokens tokens; anything this large is not one.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"}
)
# Set by the engine's client for the body it sends and the encodings it can decode.
TRANSPORT_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)

AuthHeader = Callable[[str], tuple[str, str]]


class EngineTransport(httpx2.AsyncBaseTransport):
    """Sends an SDK's requests through the engine's network for one attempt of one task."""

    def __init__(
        self,
        ctx: RunContext,
        *,
        api_key: str | None,
        auth_header: AuthHeader,
        timeout: float,
        dropped: frozenset[str] = frozenset(),
    ) -> None:
        self._ctx = ctx
        self._timeout = timeout  # when the SDK gives the request none of its own
        self._api_key = api_key  # the config's ``${vault.NAME}``, revealed per request
        self._auth_header = auth_header
        self._dropped = CREDENTIAL_HEADERS | TRANSPORT_HEADERS | dropped

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        ctx, network = self._ctx, self._ctx.network
        url = str(request.url)
        label = f"{request.method} {url}"
        host = await network.policy.check(url)
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in self._dropped
        ]
        if self._api_key is not None:
            headers.append(self._auth_header(await ctx.reveal(self._api_key, host=host)))
        client = network.client()
        outgoing = client.build_request(
            request.method,
            url,
            headers=headers,
            content=await request.aread(),
            timeout=_timeout(request.extensions.get("timeout"), self._timeout),
        )
        try:
            async with network.host_limits.slot(host, on_wait=ctx.waiting):
                response = await _within(self._timeout, _receive(client, outgoing, label), label)
        except httpx.TimeoutException as exc:
            raise TaskError(f"{label} timed out ({type(exc).__name__})", "timeout") from None
        except httpx.RequestError as exc:
            detail = str(exc).strip()
            what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            raise TaskError(f"{label} failed: {ctx.secrets.redact(what)}", "network") from None
        response = redacted(ctx, response)
        return httpx2.Response(
            response.status_code,
            headers=response.headers.multi_items(),
            content=response.content,
            request=request,
        )


async def _within(
    timeout: float, receiving: Awaitable[httpx.Response], label: str
) -> httpx.Response:
    """``receiving`` within the call's timeout, from sending it to its answer's last byte:
    httpx's timeouts apply to each read, so a server trickling its answer would otherwise
    hold the task for ever."""
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await receiving
    except TimeoutError:
        if not deadline.expired():
            raise
        raise TaskError(f"{label} timed out after {timeout:g}s", "timeout") from None


def _timeout(given: Any, fallback: float) -> httpx.Timeout:
    """httpx's form of the timeouts the SDK put on the request (a dict of four)."""
    if isinstance(given, dict):
        return httpx.Timeout(
            given.get("connect", fallback),
            read=given.get("read", fallback),
            write=given.get("write", fallback),
            pool=given.get("pool", fallback),
        )
    return httpx.Timeout(fallback)


async def _receive(
    client: httpx.AsyncClient, outgoing: httpx.Request, label: str
) -> httpx.Response:
    """The response with its body read, stopping once it passes ``MAX_ANSWER_BYTES``."""
    response = await client.send(outgoing, stream=True)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise TaskError(
                    f"{label}: the answer is larger than {show_bytes(MAX_ANSWER_BYTES)}; it was "
                    "not read further",
                    "too_large",
                )
    finally:
        await response.aclose()
    dropped = ("content-encoding", "transfer-encoding", "content-length")
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped],
        content=bytes(body),
        request=response.request,
    )
