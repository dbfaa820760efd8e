"""A local forward proxy that every connection Chromium makes goes through.

Chromium does not let redirect hops or WebSockets be intercepted before they are sent, so the
browser is told to use this proxy (loopback included), and the proxy decides: for each
connection it asks its ``judge`` for the destination's checked addresses, then connects to
exactly one of those addresses - never to a second resolution of the name. A refused
destination gets ``403`` and nothing is sent to it.

- Plain HTTP (``GET http://host/path``, parsed with h11, which httpx already depends on) is
  forwarded one request per upstream connection, each request judged on its own, even when the
  browser sends several over one connection to the proxy.
- ``CONNECT host:port`` (https, ws, wss) is judged, then becomes a tunnel of bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import h11

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Address

Judge = Callable[[str, int, str], Awaitable[list[Address]]]
"""(host, port, what is being reached, for messages) -> the addresses to connect to."""

logger = logging.getLogger(__name__)
CHUNK = 65_536
CONNECT_SECONDS = 30.0
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class PolicyProxy:
    """One listener on 127.0.0.1; ``refused`` counts the connections it refused."""

    def __init__(self, judge: Judge) -> None:
        self._judge = judge
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.refused = 0
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port; return the proxy's URL for Chromium."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for handler in list(self._handlers):
            handler.cancel()  # its connections close as it ends
        self._handlers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        client = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _next_event(client, reader)
                if not isinstance(request, h11.Request):
                    return
                if request.method == b"CONNECT":
                    await self._tunnel(client, request, reader, writer)
                    return
                if not await self._forward(client, request, reader, writer):
                    return
                client.start_next_cycle()
        except asyncio.CancelledError:
            # closed by close(): end quietly (a handler that ends cancelled is reported by
            # asyncio's streams as an error in a callback)
            return
        except Exception as exc:  # a broken connection: the browser sees it closed
            logger.debug("policy proxy connection ended: %r", exc)
            return
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()

    async def _open(
        self, client: h11.Connection, writer: asyncio.StreamWriter, host: str, port: int, shown: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Judge the destination and connect to an address it was judged at; answer the
        browser with 403 (refused) or 502 (unreachable) and return None otherwise."""
        try:
            addresses = await self._judge(host, port, shown)
        except TaskError as refusal:
            self.refused += 1
            await _answer(client, writer, 403, refusal.message)
            return None
        failure = "no address"
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    return await asyncio.open_connection(str(address), port)
            except TimeoutError:
                failure = f"no answer from {address} within {CONNECT_SECONDS:g}s"
            except OSError as exc:
                failure = exc.strerror or str(exc)
        await _answer(client, writer, 502, f"cannot connect to {shown}: {failure}")
        return None

    async def _tunnel(
        self,
        client: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        target = request.target.decode("ascii", "replace")
        host, _, port_text = target.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port_text.isdigit():
            await _answer(client, writer, 400, f"CONNECT needs host:port, not {target}")
            return
        upstream = await self._open(client, writer, host, int(port_text), target)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        writer.write(
            client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
            or b""
        )
        early, _ = client.trailing_data
        if early:
            up_writer.write(early)
        await _splice(reader, writer, up_reader, up_writer)

    async def _forward(
        self,
        client: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Forward one plain HTTP request; True when the browser's connection can be reused."""
        target = request.target.decode("ascii", "replace")
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            await _answer(client, writer, 400, f"not a proxy request: {target}")
            return False
        try:
            port = parts.port or 80
        except ValueError:
            await _answer(client, writer, 400, f"bad port in {target}")
            return False
        upstream = await self._open(client, writer, parts.hostname, port, target)
        if upstream is None:
            return False
        up_reader, up_writer = upstream
        try:
            origin = h11.Connection(h11.CLIENT)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = [(n, v) for n, v in request.headers if n.lower() not in HOP_BY_HOP]
            headers.append((b"connection", b"close"))
            up_writer.write(
                origin.send(h11.Request(method=request.method, target=path, headers=headers)) or b""
            )
            while True:  # the request's body
                event = await _next_event(client, reader)
                if isinstance(event, h11.Data):
                    up_writer.write(origin.send(h11.Data(data=event.data)) or b"")
                elif isinstance(event, h11.EndOfMessage):
                    up_writer.write(origin.send(h11.EndOfMessage()) or b"")
                    break
                else:
                    return False
            await up_writer.drain()
            response = await _next_event(origin, up_reader)
            while isinstance(response, h11.InformationalResponse):
                response = await _next_event(origin, up_reader)
            if not isinstance(response, h11.Response):
                await _answer(client, writer, 502, f"{target} closed without answering")
                return False
            kept = [(n, v) for n, v in response.headers if n.lower() not in HOP_BY_HOP]
            writer.write(
                client.send(
                    h11.Response(
                        status_code=response.status_code, headers=kept, reason=response.reason
                    )
                )
                or b""
            )
            while True:
                event = await _next_event(origin, up_reader)
                if isinstance(event, h11.Data):
                    writer.write(client.send(h11.Data(data=event.data)) or b"")
                    await writer.drain()
                elif isinstance(event, h11.EndOfMessage):
                    writer.write(client.send(h11.EndOfMessage()) or b"")
                    await writer.drain()
                    break
                else:
                    return False
        finally:
            up_writer.close()
        return client.our_state is h11.DONE and client.their_state is h11.DONE


async def _next_event(connection: h11.Connection, reader: asyncio.StreamReader) -> object:
    """The next h11 event, reading as much as it needs."""
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(await reader.read(CHUNK))


async def _answer(
    client: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
) -> None:
    """Answer the browser ourselves (nothing was sent upstream) and close."""
    body = f"orchestrator network policy: {text}\n".encode()
    with contextlib.suppress(h11.LocalProtocolError, OSError):
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        writer.write(client.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(client.send(h11.Data(data=body)) or b"")
        writer.write(client.send(h11.EndOfMessage()) or b"")
        await writer.drain()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes, then close both."""

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()

    copies = [
        asyncio.ensure_future(copy(reader, up_writer)),
        asyncio.ensure_future(copy(up_reader, writer)),
    ]
    try:
        await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in copies:
            task.cancel()
        await asyncio.gather(*copies, return_exceptions=True)
        up_writer.close()
        writer.close()
