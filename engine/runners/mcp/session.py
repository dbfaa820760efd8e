"""One configured server's client session: opened on first use, shared by every task, capped
in calls at once, reopened after the server went away, closed with the engine.

The SDK's ``Client`` is an async context manager whose transport runs in task groups, so it is
entered and left by one task of its own (the session's holder): tasks only send requests
through it. A local server's process is started by the holder and stopped when it leaves; a
server that exited (or a connection that closed) marks the session ended, and the next use
opens a new one. Secrets in the servers file are revealed when a session opens (see
``servers.py`` for which host each is revealed for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, Tool
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import reveal_secrets
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.runners.mcp.servers import RemoteServer, ServerSpec
from multi_task_orchestrator.engine.runners.mcp.transports import (
    PolicyTransport,
    StderrTail,
    watch_end,
)
from multi_task_orchestrator.engine.secrets import SecretResolver

log = logging.getLogger("orchestrator.mcp")

CLIENT_INFO = Implementation(name="multi-task-orchestrator", version="1")
MAX_TOOL_PAGES = 20
CLOSE_SECONDS = 10.0  # a local server gets this long to stop (the SDK escalates to a kill)
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


@dataclass(eq=False)
class _Connection:
    """One opened session; ``ended`` once its server or connection went away."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    client: Client | None = None
    holder: asyncio.Task[None] | None = None
    ended: bool = False
    tools: list[Tool] | None = None
    tail: StderrTail | None = None  # a local server's last words
    http: PolicyTransport | None = None  # a remote server's requests go through this

    def said(self) -> str:
        """What the server last said about a problem, for a message ('' when nothing)."""
        if self.tail is not None and self.tail.lines:
            return f"; it said: {self.tail.text()}"
        if self.http is not None and self.http.last_error:
            return f" ({self.http.last_error})"
        return ""

    @property
    def alive(self) -> bool:
        return self.client is not None and not self.ended and not self.stop.is_set()


class ServerSession:
    """The session of one configured server (see the module docstring)."""

    def __init__(self, spec: ServerSpec, *, concurrency: int, connect_timeout: float) -> None:
        self.spec = spec
        self.name = spec.name
        self.limit = spec.concurrency or concurrency
        self.connect_timeout = connect_timeout
        self.starts = 0  # sessions started so far (opened, or tried and failed)
        self._slots: asyncio.Semaphore | None = None
        self._opening: asyncio.Lock | None = None
        self._connection: _Connection | None = None
        self._leaving: set[asyncio.Task[None]] = set()

    @property
    def is_open(self) -> bool:
        """Whether a session is open and its server still there."""
        return self._connection is not None and self._connection.alive

    # --- using it ------------------------------------------------------------------------------

    async def tools(
        self, network: Network, secrets: SecretResolver, *, refresh: bool = False
    ) -> list[Tool]:
        """The server's tools (listed once per session unless ``refresh``)."""
        connection = await self._connected(network, secrets)
        if connection.tools is None or refresh:
            client = _client(connection)
            listed: list[Tool] = []
            cursor: str | None = None
            for _ in range(MAX_TOOL_PAGES):
                page = await self._request(connection, client.list_tools(cursor=cursor))
                listed.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            connection.tools = listed
        return connection.tools

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        network: Network,
        secrets: SecretResolver,
        *,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> CallToolResult:
        """Call ``tool`` holding one of the server's slots."""
        slots = self._slots or asyncio.Semaphore(self.limit)
        self._slots = slots
        if slots.locked() and on_wait is not None:
            on_wait(f"MCP server {self.name}: {self.limit} call(s) in flight")
        async with slots:
            if on_wait is not None:
                on_wait(None)
            connection = await self._connected(network, secrets)
            return await self._request(connection, _client(connection).call_tool(tool, arguments))

    async def _request(self, connection: _Connection, request: Any) -> Any:
        """Await one request; a closed connection ends the session (reopened on next use)."""
        try:
            return await request
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                connection.ended = True
                raise TaskError(
                    f"the connection to MCP server '{self.name}' closed{connection.said()}; "
                    "it is opened again on the next use",
                    "network",
                ) from None
            if exc.code == REQUEST_TIMEOUT:
                raise TaskError(f"MCP server '{self.name}': {exc.message}", "timeout") from None
            raise TaskError(f"MCP server '{self.name}' answered: {exc.message}") from None

    # --- opening and closing -------------------------------------------------------------------

    async def _connected(self, network: Network, secrets: SecretResolver) -> _Connection:
        connection = self._connection
        if connection is not None and connection.alive:
            return connection
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            connection = self._connection
            if connection is not None and connection.alive:
                return connection
            if connection is not None:
                self._leave(connection)
            self._connection = await self._open(network, secrets)
            return self._connection

    async def _open(self, network: Network, secrets: SecretResolver) -> _Connection:
        connection = _Connection()
        if isinstance(self.spec, RemoteServer):
            connection.http = PolicyTransport(network)
            transport = await _remote(self.spec, connection.http, network, secrets)
        else:
            env = {
                name: await reveal_secrets(value, secrets, host=None)
                for name, value in self.spec.env.items()
            }
            tail = connection.tail = StderrTail(self.name, secrets.redact)
            parameters = StdioServerParameters(
                command=self.spec.command, args=list(self.spec.args), env=env, cwd=self.spec.cwd
            )
            transport = watch_end(
                stdio_client(parameters, errlog=tail.file),
                lambda: setattr(connection, "ended", True),
            )
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        holder = asyncio.create_task(
            self._hold(connection, transport, ready), name=f"mcp-{self.name}"
        )
        connection.holder = holder
        self.starts += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection.client = await asyncio.shield(ready)
        except BaseException as exc:
            await self._not_opened(connection, ready, exc)
            raise  # _not_opened raises the TaskError for an Exception; this is a cancellation
        log.info(
            "MCP server %s: session opened (%s)", self.name, connection.client.protocol_version
        )
        return connection

    async def _not_opened(
        self, connection: _Connection, ready: asyncio.Future[Client], exc: BaseException
    ) -> None:
        """Stop a session that did not open, and raise why as a TaskError (a cancellation is
        left to propagate: the holder then finishes on its own, and ``aclose`` waits for it)."""
        timed_out = not ready.done()
        self._leave(connection)
        holder = connection.holder
        if timed_out and holder is not None:
            holder.cancel()
        if not isinstance(exc, Exception):
            return
        if holder is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(holder), CLOSE_SECONDS)
        if ready.done() and not ready.cancelled():
            ready.exception()  # retrieved: the failure is reported below, not as a warning
        said = connection.said()
        where = f"MCP server '{self.name}' ({self.spec.shown})"
        if timed_out:
            raise TaskError(
                f"{where} did not complete its start within {self.connect_timeout:g} s "
                f"(ORCHESTRATOR_MCP_CONNECT_TIMEOUT){said}",
                "timeout",
            ) from None
        if isinstance(exc, TaskError):
            raise exc
        # a command that is not there or cannot be run: retrying cannot help
        error_class = "config" if isinstance(leaf(exc), OSError) else "network"
        raise TaskError(f"{where} could not start: {describe(exc)}{said}", error_class) from None

    async def _hold(
        self,
        connection: _Connection,
        transport: AbstractAsyncContextManager[Any],
        ready: asyncio.Future[Client],
    ) -> None:
        """Enter the client, hand it over, and leave it when told to (in this one task)."""
        tail = connection.tail
        try:
            async with Client(
                transport, mode="auto", cache=None, client_info=CLIENT_INFO
            ) as client:
                if tail is not None:
                    tail.started()
                ready.set_result(client)
                await connection.stop.wait()
        except (Exception, asyncio.CancelledError) as exc:
            if not ready.done():
                failure = exc if isinstance(exc, Exception) else ConnectionError("stopped")
                ready.set_exception(failure)
            elif not connection.stop.is_set():
                log.warning("MCP server %s: the session ended: %s", self.name, describe(exc))
        finally:
            connection.ended = True
            if tail is not None:
                await tail.aclose()

    def _leave(self, connection: _Connection) -> None:
        """Tell an ended session's holder to leave; ``aclose`` waits for it."""
        connection.stop.set()
        if connection.holder is not None and not connection.holder.done():
            self._leaving.add(connection.holder)
            connection.holder.add_done_callback(self._leaving.discard)

    async def aclose(self) -> None:
        """Close the session (a local server's process is stopped)."""
        if self._connection is not None:
            self._leave(self._connection)
            self._connection = None
        if self._leaving:
            _, pending = await asyncio.wait(set(self._leaving), timeout=CLOSE_SECONDS)
            for holder in pending:
                holder.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _client(connection: _Connection) -> Client:
    assert connection.client is not None  # a connection is handed out only once opened
    return connection.client


async def _remote(
    spec: RemoteServer, transport: PolicyTransport, network: Network, secrets: SecretResolver
) -> AbstractAsyncContextManager[Any]:
    """The transport to a remote server, its URL admitted by the network policy first (a
    refused URL fails here, with nothing sent) and its headers' secrets revealed for its host."""
    await network.policy.check(spec.url)
    headers = {
        name: await reveal_secrets(value, secrets, host=spec.host)
        for name, value in spec.headers.items()
    }
    client = httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT, transport=transport)
    return _streamable_http(spec.url, client)


@asynccontextmanager
async def _streamable_http(url: str, client: httpx2.AsyncClient) -> AsyncIterator[Any]:
    async with client, streamable_http_client(url, http_client=client) as streams:
        yield streams


def leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups; ``exc`` itself when none."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    """An exception in a few words: the first leaf of an exception group, its type and text."""
    exc = leaf(exc)
    if isinstance(exc, MCPError):
        return exc.message
    if isinstance(exc, TaskError):
        return exc.message
    text = str(exc).strip()
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"command '{exc.filename}' not found"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
