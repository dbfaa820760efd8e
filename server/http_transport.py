"""Streamable HTTP transport: loopback by default, a bearer token required anywhere else.

Bound to a non-loopback address the server refuses to start without ``ORCHESTRATOR_HTTP_TOKEN``;
with a token set, every request must carry ``Authorization: Bearer <token>``. Host and Origin
headers are checked against DNS rebinding.
"""

from __future__ import annotations

import hmac

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import create_server
from server.settings import Settings

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
    mcp = create_server(settings)
    app: ASGIApp = mcp.streamable_http_app(
        transport_security=security_for(host, settings.http_allowed_hosts), host=host
    )
    return BearerToken(app, token) if token else app


def serve_http(settings: Settings, host: str, port: int) -> None:
    app = build_http_app(settings, host)
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")
