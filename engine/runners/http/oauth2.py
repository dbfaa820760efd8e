"""OAuth2 access tokens for ``auth: {type: oauth2, ...}``: fetched, cached in the vault, renewed.

The token request is built with Authlib's grant helpers (``client_credentials``, or
``refresh_token``; the client authenticates with HTTP basic, or sends its id alone without a
secret) and sent through the engine's ``Network`` like any request: the policy checks the token
endpoint, its host gets a slot, the body is read under the size limit. Its ``${vault.NAME}``
values are revealed for the token endpoint's host only.

The access token goes only to an API host that every ``${vault.NAME}`` the client
authenticates with (``client_id``, ``client_secret``, ``refresh_token``) is allowed for as well:
otherwise a document could have a token made with the person's credentials and send it to any
host it names. It is saved in the vault as ``oauth2.<token host>.<digest>`` (the digest of the
client id, token endpoint, grant and scope), allowed for the API's host only, so later tasks and
runs reuse it and no other host can receive it; a rotated refresh token is saved next to it as
``<that name>.refresh``, allowed for the token endpoint's host only. A token past its
``expires_in`` (as this process saw it) is renewed before use; a 401 from the API renews it once
(``exchange``). A token endpoint that refuses fails the attempt with class ``auth``, naming the
endpoint (as configured) and its status, never a value.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from urllib.parse import urlsplit

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749 import OAuth2Token
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.config import OAuth2Auth
from multi_task_orchestrator.engine.runners.http.receive import ResponseLimit, receive

EXPIRY_MARGIN = 30.0  # seconds before its expiry a token is renewed
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# This process's knowledge, per cache name: locks (one fetch at a time; one per event loop, as
# an asyncio lock belongs to one), expiry, when fetched.
_locks: dict[tuple[int, str], asyncio.Lock] = {}
_expires_at: dict[str, float] = {}
_obtained_at: dict[str, float] = {}


async def access_token(
    ctx: RunContext, auth: OAuth2Auth, host: str, *, may_fetch: bool, limit: ResponseLimit
) -> str:
    """The access token to send to ``host``: the vault's, or (when ``may_fetch``, on a
    request's first hop) a new one when there is none for ``host`` or it has expired."""
    token_host, name = await _cache_name(ctx, auth)
    if not may_fetch:
        return await ctx.secrets.resolve(name, host=host)
    async with _lock(name):
        if time.time() < _expires_at.get(name, float("inf")) - EXPIRY_MARGIN:
            try:
                return await ctx.secrets.resolve(name, host=host)
            except TaskError:
                pass  # none cached for this host yet
        return await _obtain(ctx, auth, name, token_host, host, limit)


async def renew(
    ctx: RunContext, auth: OAuth2Auth, host: str, *, since: float, limit: ResponseLimit
) -> None:
    """Fetch a new token for ``host`` after the API refused the one sent at ``since``
    (``time.monotonic()``), unless another task of this process renewed it meanwhile."""
    token_host, name = await _cache_name(ctx, auth)
    async with _lock(name):
        if _obtained_at.get(name, float("-inf")) > since:
            return
        await _obtain(ctx, auth, name, token_host, host, limit)


def _lock(name: str) -> asyncio.Lock:
    return _locks.setdefault((id(asyncio.get_running_loop()), name), asyncio.Lock())


async def _cache_name(ctx: RunContext, auth: OAuth2Auth) -> tuple[str, str]:
    """The token endpoint's host, and the vault name the access token is cached under."""
    token_host = await ctx.network.policy.check(auth.token_url)
    client_id = await ctx.reveal(auth.client_id, host=token_host)
    key = "\n".join((client_id, auth.token_url, auth.grant or "", auth.scope or ""))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return token_host, f"oauth2.{_NAME_UNSAFE.sub('_', token_host)[:80]}.{digest}"


async def _obtain(
    ctx: RunContext, auth: OAuth2Auth, name: str, token_host: str, host: str, limit: ResponseLimit
) -> str:
    """Ask the token endpoint for a new access token; save it (and a rotated refresh token)."""
    await _check_api_host(ctx, auth, host)
    if auth.refresh_token is None:
        token = await _request(ctx, auth, token_host, None, limit)
    else:
        configured = await ctx.reveal(auth.refresh_token, host=token_host)
        rotated = await _saved(ctx, f"{name}.refresh", token_host)
        try:
            token = await _request(ctx, auth, token_host, rotated or configured, limit)
        except TaskError as exc:
            if exc.error_class != "auth" or rotated in (None, configured):
                raise
            # the configured refresh token may be newer than the one saved (re-authorised)
            token = await _request(ctx, auth, token_host, configured, limit)
    access = token.get("access_token")
    if not isinstance(access, str) or not access or not access.isascii():
        raise TaskError(f"the OAuth2 token endpoint {auth.token_url} sent no access_token", "auth")
    await ctx.secrets.store(
        name,
        access,
        allowed_hosts=[host],
        description=f"OAuth2 access token from {auth.token_url} for {host} (cached by http tasks)",
    )
    new_refresh = token.get("refresh_token")
    if auth.refresh_token is not None and isinstance(new_refresh, str) and new_refresh:
        await ctx.secrets.store(
            f"{name}.refresh",
            new_refresh,
            allowed_hosts=[token_host],
            description=f"OAuth2 refresh token from {auth.token_url} (rotated by the endpoint)",
        )
    expires_at = OAuth2Token.from_dict(token).get("expires_at")
    if isinstance(expires_at, int | float):
        _expires_at[name] = float(expires_at)
    else:
        _expires_at.pop(name, None)
    _obtained_at[name] = time.monotonic()
    ctx.log(f"OAuth2: new access token from {auth.token_url}")
    return access


async def _check_api_host(ctx: RunContext, auth: OAuth2Auth, host: str) -> None:
    """ConfigError unless each secret of the client's credentials is allowed for ``host``, the
    API host the access token is for (the value revealed here is not used)."""
    for field, text in (
        ("client_id", auth.client_id),
        ("client_secret", auth.client_secret),
        ("refresh_token", auth.refresh_token),
    ):
        if text is None or "${" not in text:
            continue
        try:
            await ctx.reveal(text, host=host)
        except TaskError as exc:
            raise ConfigError(
                f"the OAuth2 access token from {auth.token_url} would be sent to host '{host}', "
                f"which the {field} is not allowed for: {exc.message}"
            ) from None


async def _saved(ctx: RunContext, name: str, host: str) -> str | None:
    try:
        return await ctx.secrets.resolve(name, host=host)
    except TaskError:
        return None


async def _request(
    ctx: RunContext,
    auth: OAuth2Auth,
    token_host: str,
    refresh_token: str | None,
    limit: ResponseLimit,
) -> dict[str, object]:
    """POST the token request; the token endpoint's JSON answer, or TaskError (class auth)."""
    shown = auth.token_url

    async def reveal(text: str) -> str:
        return await ctx.reveal(text, host=token_host) if "${" in text else text

    url = await reveal(auth.token_url)
    if (urlsplit(url).hostname or "").lower().rstrip(".") != token_host:
        raise ConfigError(f"oauth2 token_url {shown}: a secret cannot be part of a URL's host")
    client_id = await reveal(auth.client_id)
    secret = await reveal(auth.client_secret) if auth.client_secret is not None else None
    if refresh_token is None:
        body = prepare_token_request("client_credentials", scope=auth.scope)
    else:
        body = prepare_token_request("refresh_token", refresh_token=refresh_token, scope=auth.scope)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    method = "client_secret_basic" if secret is not None else "none"
    url, headers, body = ClientAuth(client_id, secret, method).prepare("POST", url, headers, body)
    network = ctx.network
    client = network.client()
    label = f"the OAuth2 token endpoint {shown}"
    try:
        outgoing = client.build_request("POST", url, headers=headers, content=body.encode())
        async with network.host_limits.slot(token_host, on_wait=ctx.waiting):
            response = await receive(client, outgoing, limit, label)
    except httpx.TimeoutException:
        raise TaskError(f"{label} timed out", "timeout") from None
    except httpx.InvalidURL as exc:
        raise ConfigError(f"oauth2 token_url {shown}: invalid URL ({exc})") from None
    except httpx.RequestError as exc:
        raise TaskError(f"{label} failed: {type(exc).__name__}", "network") from None
    try:
        answer = json.loads(response.content)
    except ValueError:
        answer = None
    status = f"{response.status_code} {response.reason_phrase}".rstrip()
    if response.status_code // 100 != 2 or not isinstance(answer, dict) or "error" in answer:
        code = answer.get("error") if isinstance(answer, dict) else None
        detail = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
        what = "refreshing the access token" if refresh_token is not None else "a new token"
        raise TaskError(f"{label} refused {what}: {status}{detail}", "auth")
    return answer
