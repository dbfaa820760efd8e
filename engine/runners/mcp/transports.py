"""How a session reaches its server: a local process's pipes, or the engine's HTTP client.

- ``PolicyTransport`` is an ``httpx2`` transport (the MCP SDK's HTTP client library) that sends
  each request with the engine's shared ``httpx`` client, so a remote server is reached through
  the network policy: every connection is checked and made to an address the policy admitted
  (``engine.network.PinnedBackend``), exactly as ``http`` tasks' requests are.
- ``StderrTail`` gives a local server a pipe for its standard error and keeps the last lines,
  so a server that cannot start is named with what it said; the lines are logged at debug
  level. (A server's stderr never goes to the orchestrator's own, where it would mix into
  ``serve``'s log and ``run``'s live display.)
- ``watch_end`` passes a transport's streams through and calls back when the server's side
  ends (the process exited), so the session is reopened on its next use rather than failing it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TextIO

import anyio
import httpx
import httpx2

from multi_task_orchestrator.engine.network import Network

log = logging.getLogger("orchestrator.mcp")

TAIL_LINES = 20
LINE_LENGTH = 400


class PolicyTransport(httpx2.AsyncBaseTransport):
    """Sends the SDK's requests with the engine's policy-checked ``httpx`` client."""

    def __init__(self, network: Network) -> None:
        self._network = network
        self.last_error: str | None = None  # the last error status, for messages

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        timeout = request.extensions.get("timeout")
        outgoing = httpx.Request(
            request.method,
            str(request.url),
            headers=list(request.headers.raw),
            content=body,
            extensions={"timeout": timeout} if timeout else {},
        )
        try:
            response = await self._network.client().send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except httpx.RequestError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        if response.status_code >= 400:
            self.last_error = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        return httpx2.Response(
            response.status_code,
            headers=list(response.headers.raw),
            stream=_Body(response),
            request=request,
        )


class _Body(httpx2.AsyncByteStream):
    """A streamed ``httpx`` response body as an ``httpx2`` one (bytes as they arrive, still
    encoded: the ``httpx2`` response decodes them by its headers)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out") from exc
        except httpx.RequestError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class StderrTail:
    """A pipe for a local server's standard error; the last lines are kept for messages,
    each masked by ``redact`` and then cut.

    A thread of its own reads it (blocking reads work on every platform's pipes), ending when
    the server and every child holding the pipe are gone."""

    def __init__(self, server: str, redact: Callable[[str], str]) -> None:
        self.server = server
        self._redact = redact  # before a line is cut, so a secret across the cut is masked
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        read_end, write_end = os.pipe()
        self._file: TextIO | None = open(write_end, "w", encoding="utf-8")  # noqa: SIM115
        self._reader = threading.Thread(
            target=self._read, args=(read_end,), name=f"mcp-{server}-stderr", daemon=True
        )
        self._reader.start()

    def _read(self, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for line in pipe:
                text = self._redact(line.decode("utf-8", errors="replace").rstrip())
                if text:
                    self.lines.append(text[:LINE_LENGTH])
                    log.debug("MCP server %s: %s", self.server, text)

    @property
    def file(self) -> TextIO:
        """The pipe's end the process writes to, until it is started."""
        if self._file is None:
            raise RuntimeError("the process was started: this process's end is closed")
        return self._file

    def started(self) -> None:
        """The process has its own copy of the pipe now: close this process's, so the reader
        sees the end when the server (and every child holding it) is gone."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def text(self) -> str:
        """The last lines the server wrote, on one line."""
        return " | ".join(self.lines)

    async def aclose(self) -> None:
        """Close this process's end and give the reader a moment to take the last lines."""
        self.started()
        await asyncio.to_thread(self._reader.join, 2.0)


@asynccontextmanager
async def watch_end(
    transport: AbstractAsyncContextManager[tuple[Any, Any]], on_end: Callable[[], None]
) -> AsyncIterator[tuple[Any, Any]]:
    """``transport``'s streams, with ``on_end`` called once its read side ends."""
    async with transport as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[Any](0)

        async def forward() -> None:
            try:
                async with send, read_stream:
                    async for message in read_stream:
                        await send.send(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                on_end()

        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            try:
                async with receive:
                    yield receive, write_stream
            finally:
                group.cancel_scope.cancel()
