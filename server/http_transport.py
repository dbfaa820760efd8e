"""Streamable HTTP transport: loopback by default, a bearer token required anywhere else.

Bound to a non-loopback address the server refuses to start without ``ORCHESTRATOR_HTTP_TOKEN``;
with a token set, every request must carry ``Authorization: Bearer <token>``. Host and Origin
headers are checked against DNS rebinding. Beside ``/mcp``, ``/ui`` serves the live view in a
browser (``server.ui``), behind the same token. The port is bound before anything else starts, so a
port in use is one clear error; once the server accepts connections its URL is printed on stderr.
"""

from __future__ import annotations

import errno
import hmac
import json
import socket
import sys
from typing import TYPE_CHECKING

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from multi_task_orchestrator.server.app import Running, create_server
from multi_task_orchestrator.server.ui import build_ui_app
from multi_task_orchestrator.server.ui.access import Access

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HttpConfigError(Exception):
    """The HTTP transport cannot start with these settings; the message says what to set."""


class BearerToken:
    """ASGI middleware: 401 unless the request carries exactly one ``Authorization`` header with
    the right bearer token (the scheme is case-insensitive, as RFC 7235 says)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = [value for name, value in scope["headers"] if name == b"authorization"]
            if len(given) != 1 or not self._accepts(given[0]):
                why = b"more than one Authorization header" if len(given) > 1 else b""
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b'Bearer realm="orchestrator"'),
                        ],
                    }
                )
                body = why or b"missing or wrong bearer token"
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _accepts(self, header: bytes) -> bool:
        scheme, _, token = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.expected)


def security_for(host: str, extra_hosts: list[str]) -> TransportSecuritySettings:
    """Accept Host and Origin headers naming this server only (DNS rebinding protection)."""
    names = {f"[{host}]" if ":" in host else host, *extra_hosts, "127.0.0.1", "localhost", "[::1]"}
    names.discard("0.0.0.0")
    names.discard("[::]")
    # with and without a port: behind a proxy on 443 (or 80) clients send the bare name
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[form for name in sorted(names) for form in (name, f"{name}:*")],
        allowed_origins=[
            form
            for name in sorted(names)
            for scheme in ("http", "https")
            for form in (f"{scheme}://{name}", f"{scheme}://{name}:*")
        ],
    )


def build_http_app(settings: Settings, host: str) -> ASGIApp:
    """The ASGI app for ``host``; raises HttpConfigError when it would be unsafe to serve."""
    token = settings.http_token.get_secret_value() if settings.http_token else None
    if host not in LOOPBACK and not token:
        raise HttpConfigError(
            f"refusing to serve MCP over HTTP on {host} without a bearer token: set "
            "ORCHESTRATOR_HTTP_TOKEN (clients then send 'Authorization: Bearer <token>'), "
            "or bind to 127.0.0.1"
        )
    running = Running()
    mcp = create_server(settings, running)
    security = security_for(host, settings.http_allowed_hosts)
    limit = request_body_limit(settings.max_document_bytes)
    app: ASGIApp = TooLargeSaysWhy(
        mcp.streamable_http_app(
            transport_security=security, host=host, max_request_body_size=limit
        ),
        too_large_message(limit, settings.max_document_bytes),
    )
    ui = build_ui_app(running, Access(token, security))
    return UiBeside(BearerToken(app, token) if token else app, ui)


def request_body_limit(max_document_bytes: int) -> int:
    """The largest request the MCP endpoint reads: room for a document as large as the server
    accepts, sent as a JSON string (escaping can make the text up to twice as long), and the
    message around it. A larger request is refused (413) before it is parsed; a document within
    it but over the limit gets the validator's error, which names the setting."""
    return 2 * max_document_bytes + 64 * 1024


def too_large_message(limit: int, max_document_bytes: int) -> bytes:
    """The JSON-RPC error answering a request over ``limit`` (the request's id is unread)."""
    message = (
        f"the request is larger than this server reads ({limit:,} bytes): a document may be at "
        f"most ORCHESTRATOR_MAX_DOCUMENT_BYTES ({max_document_bytes:,} bytes); send a smaller "
        "document, or raise that setting where the server runs"
    )
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    return json.dumps(error).encode()


class TooLargeSaysWhy:
    """ASGI: the MCP SDK's 413 for a request over its body limit is the plain text "Request body
    too large"; it goes out as a JSON-RPC error naming the setting instead, status kept."""

    def __init__(self, app: ASGIApp, body: bytes) -> None:
        self.app = app
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def send_why(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                replacing = True
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
            elif not replacing:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send({"type": "http.response.body", "body": self.body})

        await self.app(scope, receive, send_why)


class UiBeside:
    """ASGI: ``/ui`` and below to the live view (which checks the token itself: a browser
    brings it as a cookie), everything else — the lifespan too — to the MCP app."""

    def __init__(self, mcp: ASGIApp, ui: ASGIApp) -> None:
        self.mcp = mcp
        self.ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/ui" or path.startswith("/ui/"):
            await self.ui(scope, receive, send)
        else:
            await self.mcp(scope, receive, send)


def url_for(host: str, port: int, path: str = "/mcp") -> str:
    """The URL of ``path`` (the MCP endpoint by default) for a bind address (IPv6 addresses in
    brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; HttpConfigError naming the fix when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without
    # it, the end of every answer on a kept-alive connection waited ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise HttpConfigError(
                f"port {port} on {host} is already in use (another server is listening "
                f"there); choose a free one with --port, e.g. --port {port + 1}"
            ) from None
        raise HttpConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
            "address with --host or port with --port"
        ) from None
    return sock


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its URL on stderr once it accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            print(f"serving MCP (streamable HTTP) on {self.url}", file=sys.stderr, flush=True)
            live = self.url.removesuffix("/mcp") + "/ui/"
            print(f"live view: {live}", file=sys.stderr, flush=True)


def serve_http(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; HttpConfigError when unsafe or the port cannot be bound."""
    sock = bind(host, port)
    try:
        app = build_http_app(settings, host)
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        _AnnouncingServer(config, url_for(host, port)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again after a clean stop, as uvicorn.run
        pass
    finally:
        sock.close()
