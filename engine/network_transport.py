"""The shared HTTP client's transport: httpcore's connection pool over a network backend that
connects only to addresses the network policy has just checked (``PinnedBackend``). Loaded with
the first request (``Network.client``), not with the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from multi_task_orchestrator.engine.network import PolicyError

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.network import NetworkPolicy


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy at the socket: each TCP connection is made
    to an address the policy has just checked for that host, never to a fresh resolution."""

    def __init__(self, policy: Callable[[], NetworkPolicy]) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy().addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # a resolution gives at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PolicyError(f"refused a connection to the Unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(
    policy: Callable[[], NetworkPolicy], limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through ``PinnedBackend``.

    httpx takes no network backend, so the transport's httpcore pool is replaced by one built
    with the same settings and the backend (httpx 0.27/0.28 keep it in ``_pool``)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PinnedBackend(policy),
    )
    return transport
