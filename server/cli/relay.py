"""``serve`` over stdio, and the stdin relay that lets a signal end it: the MCP SDK reads stdin
in a thread that only the end of input stops, so the relay puts a pipe this process controls on
fd 0 and closes it on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from typing import Any

import anyio


async def serve_stdio(mcp: Any) -> None:
    """Serve stdio until the client closes it, or until SIGTERM/SIGINT: then the engine gives
    running tasks their grace period and releases the rest for the next start."""
    relay = await _relay_stdin()
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    if relay is not None:
                        relay.close()  # the transport's stdin ends, so the server can exit
                    return

        group.start_soon(stop_on_signal)
        await mcp.run_stdio_async()
        group.cancel_scope.cancel()


class _Relay(asyncio.Protocol):
    """Copies what arrives on stdin into the pipe the MCP transport reads."""

    def __init__(self, sink: asyncio.WriteTransport) -> None:
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.sink.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.close()


async def _relay_stdin() -> asyncio.WriteTransport | None:
    """Put a pipe this process controls on fd 0 and copy stdin into it; closing the returned
    end gives the MCP transport an end of input. The SDK reads stdin in a thread that only
    the end of input stops, so without this a signal could not end a server whose client
    keeps stdin open. None (nothing changed) when stdin is not a pipe, socket or terminal."""
    mode = os.fstat(0).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
        return None  # a file, or a device the loop cannot watch (/dev/null): read directly
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    sink, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(write_end, "wb", buffering=0)
    )
    source = os.fdopen(os.dup(0), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: _Relay(sink), source)
    os.dup2(read_end, 0)
    os.close(read_end)
    return sink
