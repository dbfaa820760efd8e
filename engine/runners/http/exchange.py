"""Sending one request through the engine's ``Network``, one hop at a time.

Redirects are followed here, never by the client: the network policy checks each hop's URL,
the per-host limits give each hop a slot, and the secrets are revealed for each hop's host (so
a redirect to a host a secret does not allow never carries it). With oauth2 ``auth`` each hop
carries the access token cached for its host (``oauth2``), and a 401 renews it once. Errors are
classed for ``retry.on``: ``timeout``, ``network``, ``policy``, ``auth`` (``oauth2``), and those
of the final status (``reply``).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urljoin

import httpx

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.network import PolicyError
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.config import MAX_REDIRECTS, OAuth2Auth
from multi_task_orchestrator.engine.runners.http.oauth2 import access_token, renew
from multi_task_orchestrator.engine.runners.http.receive import ResponseLimit, receive, redacted
from multi_task_orchestrator.engine.runners.http.reply import Reply, check_status
from multi_task_orchestrator.engine.runners.http.request import Request, build

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


async def exchange(ctx: RunContext, request: Request, max_response_bytes: int) -> Reply:
    """Send ``request``, following redirects hop by hop; raise TaskError unless the final
    status is one ``request.expect_status`` accepts. ``max_response_bytes`` is the server's
    limit on a body (``HttpSettings``); the request's own can only lower it. With oauth2
    ``auth``, a 401 renews the access token once and sends the request again."""
    limit = ResponseLimit.of(max_response_bytes, request)
    reply, host, sent_at = await _send(ctx, request, limit)
    if reply.status == 401 and isinstance(request.auth, OAuth2Auth):
        ctx.log(f"{reply.label} -> 401: renewing the OAuth2 access token, sending again")
        await renew(ctx, request.auth, host, since=sent_at, limit=limit)
        reply, host, _ = await _send(ctx, request, limit)
    check_status(reply, request.expect_status)
    return reply


async def _send(
    ctx: RunContext, request: Request, limit: ResponseLimit
) -> tuple[Reply, str, float]:
    """The final reply of ``request`` (redirects followed), the host it came from, and when
    (``time.monotonic()``) its last hop was sent: after any access token it carries was
    fetched, so a 401 to a token fetched for this very request renews it too."""
    network = ctx.network
    client = network.client()
    url = shown = request.url
    method = request.method
    first = not request.literal_url
    keep_body = True
    for hop in range(MAX_REDIRECTS + 1):
        try:
            host = await network.policy.check(url)
        except PolicyError as exc:
            if hop == 0:
                raise
            raise PolicyError(f"{request.method} {request.url} redirected: {exc.message}") from None
        bearer = None
        if isinstance(request.auth, OAuth2Auth):
            bearer = await access_token(ctx, request.auth, host, may_fetch=first, limit=limit)
        outgoing = await build(ctx, client, request, url, host, method, first, keep_body, bearer)
        sent_at = time.monotonic()
        try:
            async with network.host_limits.slot(host, on_wait=ctx.waiting):
                response = await _within(request.timeout, client, outgoing, limit, method, shown)
        except httpx.TimeoutException as exc:
            raise TaskError(f"{method} {shown} timed out ({_describe(exc)})", "timeout") from None
        except httpx.UnsupportedProtocol as exc:
            raise ConfigError(f"{method} {shown}: {_describe(exc)}") from None
        except httpx.DecodingError as exc:
            raise TaskError(f"{method} {shown}: cannot decode the response: {exc}") from None
        except httpx.RequestError as exc:
            raise TaskError(f"{method} {shown} failed: {_describe(exc)}", "network") from None
        response = redacted(ctx, response)
        location = response.headers.get("location")
        if not (
            request.follow_redirects and location and response.status_code in REDIRECT_STATUSES
        ):
            return Reply(method, shown, response), host, sent_at
        if hop == MAX_REDIRECTS:
            raise TaskError(
                f"{request.method} {request.url}: more than {MAX_REDIRECTS} redirects "
                f"(the last one to {location})"
            )
        url = urljoin(str(response.url), location)
        shown = urljoin(shown, location)
        ctx.log(f"{method} {response.status_code} redirect to {shown}")
        if (response.status_code == 303 and method != "HEAD") or (
            response.status_code in (301, 302) and method == "POST"
        ):
            method, keep_body = "GET", False
        first = False
    raise AssertionError("unreachable")


async def _within(
    timeout: float | None,
    client: httpx.AsyncClient,
    outgoing: httpx.Request,
    limit: ResponseLimit,
    method: str,
    shown: str,
) -> httpx.Response:
    """``receive``, with the config's timeout on the whole request, from sending it to its
    body's last byte: httpx's timeouts apply to each read, so a server trickling its body
    would otherwise hold the task for ever."""
    label = f"{method} {shown}"
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await receive(client, outgoing, limit, label)
    except TimeoutError:
        if timeout is None or not deadline.expired():
            raise
        raise TaskError(f"{label} timed out after {timeout:g}s", "timeout") from None


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
