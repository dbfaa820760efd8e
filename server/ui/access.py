"""Who may use the ``/ui`` pages: the same bearer token as the MCP endpoint, and only this
server's own pages may change anything.

With ``ORCHESTRATOR_HTTP_TOKEN`` set, a request passes with ``Authorization: Bearer <token>``
(scripts, curl) or with the session cookie a browser gets by opening ``/ui/?token=<token>``
once: the server answers with the cookie and sends the browser on to the same page without the
token in its address. The cookie holds an HMAC of the token, not the token, so it opens the
pages and nothing else (the MCP endpoint still wants the token itself); it is ``HttpOnly``,
``SameSite=Strict`` and limited to ``/ui``.

Every request's Host (and Origin, when sent) must name this server, as on the MCP endpoint
(DNS rebinding). A request that changes something (POST) must come from a page of this very
origin: an ``Origin`` header equal to the server's own, ``Content-Type: application/json``
(which a cross-site form cannot send) and no cross-site ``Sec-Fetch-Site``.
"""

from __future__ import annotations

import hashlib
import hmac

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

COOKIE = "orchestrator_ui"
COOKIE_PATH = "/ui"


class Access:
    """The checks of one server: its token (or none, on loopback) and its allowed names."""

    def __init__(self, token: str | None, security: TransportSecuritySettings) -> None:
        self.token = token
        self.session = _session_value(token) if token else None
        self.names = TransportSecurityMiddleware(security)

    async def refuse(self, request: Request) -> Response | None:
        """Why ``request`` may not pass, as the response to send; None when it may."""
        changes = request.method not in ("GET", "HEAD")
        refused = await self.names.validate_request(request, is_post=changes)
        if refused is not None:
            return refused
        if changes and not _same_origin(request):
            return PlainTextResponse(
                "refused: a change must come from this server's own page (Origin header)",
                status_code=403,
            )
        if self.token is None or self.admits(request):
            return None
        return PlainTextResponse(
            "the live view needs the server's token: open /ui/?token=<ORCHESTRATOR_HTTP_TOKEN> "
            "once in this browser (orchestrator ui prints that address), or send "
            "'Authorization: Bearer <token>'",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'},
        )

    def admits(self, request: Request) -> bool:
        """True when the request carries the token or the session cookie."""
        assert self.token is not None and self.session is not None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() == "bearer" and _equal(given.strip(), self.token):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return _equal(cookie, self.session)

    def token_in_query(self, request: Request) -> bool | None:
        """True: the address carries the right token; False: a wrong one; None: none."""
        given = request.query_params.get("token")
        if given is None or self.token is None:
            return None
        return _equal(given, self.token)

    def set_session(self, response: Response, request: Request) -> None:
        assert self.session is not None
        response.set_cookie(
            COOKIE,
            self.session,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def _equal(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII text (``compare_digest`` on ``str``
    raises for it, which made a wrong token an internal error)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"orchestrator live view session", hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return bool(origin and host) and origin == f"{request.url.scheme}://{host}"
