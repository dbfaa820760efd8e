"""The browser's policy proxy and httpx's pinned connections, spoken to directly on loopback.

The browser attacks (tests/test_attacks_browser.py) go through the CLI; these check what the
browser tests cannot reach on a closed machine: a CONNECT tunnel that works (no TLS server
here, so plain HTTP goes through it), forwarding keeps judging each request on a reused
connection, and the shared httpx client refuses at the socket a host its caller never checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from local_server import LocalServer

from multi_task_orchestrator.engine.network import Network, NetworkPolicy, PolicyError
from multi_task_orchestrator.engine.runners.browser.gate import Gate
from multi_task_orchestrator.engine.runners.browser.proxy import PolicyProxy

pytestmark = pytest.mark.anyio
DENIED = NetworkPolicy(deny=["127.0.0.2/32"])


@pytest.fixture(scope="module")
def allowed() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture(scope="module")
def denied() -> Iterator[LocalServer]:
    with LocalServer(host="127.0.0.2") as running:
        yield running


@pytest.fixture
async def proxy() -> AsyncIterator[PolicyProxy]:
    running = PolicyProxy(Gate(lambda: DENIED).admit)
    await running.start()
    yield running
    running.close()


async def exchange(proxy: PolicyProxy, *messages: bytes) -> bytes:
    """Send each message on one connection to the proxy, reading what comes back after each."""
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = b""
    try:
        for message in messages:
            writer.write(message)
            await writer.drain()
            answers += await _one_response(reader)
    finally:
        writer.close()
    return answers


async def _one_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")


async def test_a_connect_tunnel_reaches_an_allowed_host(
    proxy: PolicyProxy, allowed: LocalServer
) -> None:
    target = f"127.0.0.1:{allowed.port}".encode()
    answer = await exchange(
        proxy,
        b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n",
        b"GET /echo/tunnel HTTP/1.1\r\nHost: " + target + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"path":"/echo/tunnel"' in answer
    assert len(allowed.state.received("/echo/tunnel")) == 1


async def test_a_connect_to_a_denied_host_is_refused_and_sends_nothing(
    proxy: PolicyProxy, denied: LocalServer
) -> None:
    target = f"127.0.0.2:{denied.port}".encode()
    answer = await exchange(proxy, b"CONNECT " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"127.0.0.2 is in the denied network 127.0.0.2/32" in answer
    assert proxy.refused == 1
    assert denied.state.requests == []


async def test_each_forwarded_request_is_judged_on_a_reused_connection(
    proxy: PolicyProxy, allowed: LocalServer, denied: LocalServer
) -> None:
    answer = await exchange(
        proxy,
        f"GET {allowed.url('/echo/first')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        f"GET {denied.url('/echo/second')} HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n".encode(),
    )
    first, _, second = answer.partition(b"HTTP/1.1 403")
    assert first.startswith(b"HTTP/1.1 200") and b'"/echo/first"' in first, answer
    assert b"denied network" in second
    assert len(allowed.state.received("/echo/first")) == 1
    assert denied.state.requests == []


async def test_the_shared_http_client_checks_at_the_socket(denied: LocalServer) -> None:
    # a caller that skips the policy check still cannot connect to a refused address
    network = Network(DENIED)
    try:
        with pytest.raises(PolicyError, match=r"denied network 127\.0\.0\.2/32"):
            await network.client().get(denied.url("/echo/unchecked"))
    finally:
        await network.aclose()
    assert denied.state.requests == []
