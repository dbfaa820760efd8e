"""The demo's web for pattern 3: an OAuth2 token endpoint, a social API behind its tokens, a
profile API behind an API key, and a receiver for notifications.

- ``POST /oauth/token`` — RFC 6749's token endpoint: the client authenticates with HTTP Basic
  (``SOCIAL_CLIENT_ID`` and ``SOCIAL_CLIENT_SECRET``) and asks with ``grant_type=refresh_token``
  (``SOCIAL_REFRESH_TOKEN``) or ``client_credentials``; the access tokens it hands out live
  ``TOKEN_LIFETIME`` seconds;
- ``POST /social/api/posts`` — a post (``{text}``, at most 280 characters) sent with
  ``Authorization: Bearer <access token>``; 201 with ``{id, text, url, created_at}``. The first
  token it sees has expired already (401 ``invalid_token``), as when a session ends early, so a
  client must refresh and retry: the seed's "session expires → refresh and retry".
  ``GET /social/api/posts`` lists the posts received;
- ``GET|PATCH /profile/api/me`` — a profile (``headline``, ``status``, ``location``) read and
  updated with ``X-API-Key: PROFILE_API_KEY``;
- ``POST /notifications`` — keeps the JSON bodies it receives (``GET`` lists them): a local
  receiver for ``ORCHESTRATOR_NOTIFY_URL=webhook+http://...``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SOCIAL_CLIENT_ID = "demo-social-app"
SOCIAL_CLIENT_SECRET = "demo-client-secret-5d1c8a2e"
SOCIAL_REFRESH_TOKEN = "demo-refresh-token-93b7f04c"
PROFILE_API_KEY = "demo-profile-key-6e2a91d3"
TOKEN_LIFETIME = 300  # seconds: short-lived, as social APIs' access tokens are
PROFILE_FIELDS = ("headline", "status", "location")
MAX_POST_CHARS = 280


@dataclass
class AccountsState:
    """What the token endpoint, the social and profile APIs and the receiver saw and hold."""

    grants: list[str] = field(default_factory=list)  # the grant of each token request answered
    issued: list[str] = field(default_factory=list)  # every access token handed out, in order
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (monotonic)
    early_expiries: int = 1  # tokens still to refuse once, as expired, when first presented
    refused: int = 0  # posts answered 401
    posts: list[dict[str, Any]] = field(default_factory=list)
    posted_with: list[str] = field(default_factory=list)  # the bearer token of each post
    profile: dict[str, Any] = field(
        default_factory=lambda: {"headline": "Automation enthusiast", "status": "", "location": ""}
    )
    profile_updates: int = 0
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def issue(self, grant: str) -> str:
        token = "demo-at-" + secrets.token_hex(12)
        self.tokens[token] = time.monotonic() + TOKEN_LIFETIME
        self.grants.append(grant)
        self.issued.append(token)
        return token

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is a live access token; the first one presented has expired."""
        if self.tokens.get(token, 0.0) < time.monotonic():
            return False
        if self.early_expiries > 0:
            self.early_expiries -= 1
            del self.tokens[token]
            return False
        return True


def _basic_client(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret


def _oauth_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status)


def account_routes(state: AccountsState) -> list[Route]:
    """The routes over ``state``."""

    async def token(request: Request) -> Response:
        if _basic_client(request) != (SOCIAL_CLIENT_ID, SOCIAL_CLIENT_SECRET):
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        form = await request.form()
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if form.get("refresh_token") != SOCIAL_REFRESH_TOKEN:
                return _oauth_error(400, "invalid_grant", "the refresh token is not valid")
        elif grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "use refresh_token")
        access = state.issue(str(grant))
        return JSONResponse(
            {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME},
            headers={"Cache-Control": "no-store"},
        )

    async def posts(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(state.posts)
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not state.accepts(presented):
            state.refused += 1
            return JSONResponse(
                {"error": "invalid_token", "error_description": "the access token expired"},
                401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        body = await request.json()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_POST_CHARS:
            return JSONResponse({"error": f"text: 1 to {MAX_POST_CHARS} characters"}, 400)
        post = {
            "id": str(len(state.posts) + 1),
            "text": text,
            "url": f"{request.base_url}social/posts/{len(state.posts) + 1}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        state.posts.append(post)
        state.posted_with.append(presented)
        return JSONResponse(post, status_code=201)

    async def profile(request: Request) -> Response:
        if request.headers.get("x-api-key") != PROFILE_API_KEY:
            return JSONResponse({"error": "a valid X-API-Key header is needed"}, 401)
        if request.method == "PATCH":
            changes = await request.json()
            if not isinstance(changes, dict) or not changes:
                return JSONResponse({"error": "send an object of fields to change"}, 400)
            unknown = sorted(set(changes) - set(PROFILE_FIELDS))
            if unknown:
                return JSONResponse({"error": f"unknown field(s): {', '.join(unknown)}"}, 400)
            state.profile.update(changes)
            state.profile["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            state.profile_updates += 1
        return JSONResponse(state.profile)

    async def notifications(request: Request) -> Response:
        if request.method == "POST":
            state.notifications.append(await request.json())
            return JSONResponse({"received": len(state.notifications)})
        return JSONResponse(state.notifications)

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/social/api/posts", posts, methods=["GET", "POST"]),
        Route("/profile/api/me", profile, methods=["GET", "PATCH"]),
        Route("/notifications", notifications, methods=["GET", "POST"]),
    ]
