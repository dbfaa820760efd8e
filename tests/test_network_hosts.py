"""The network policy for runners that connect by host and port (SMTP, IMAP, an MCP server):
``NetworkPolicy.admit_host`` applies the rules a URL's host gets — metadata addresses in every
IPv6 spelling, deny and allow lists, private addresses — and hands back the addresses it
checked; ``Destination.connect`` connects to one of exactly those (a name that resolves
elsewhere a moment later is not followed); ``Network.reach`` holds the host's per-host slot.
Everything runs on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import HostLimits, Network, NetworkPolicy, PolicyError

pytestmark = pytest.mark.anyio

METADATA_FORMS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "[::ffff:a9fe:a9fe]",
    "::169.254.169.254",
    "64:ff9b::169.254.169.254",
]


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers each line with the line in upper case."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ehlo\n")
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    return answer


async def test_a_loopback_host_is_admitted_and_connected_to(echo_port: int) -> None:
    destination = await NetworkPolicy().admit_host("127.0.0.1", echo_port)

    assert (destination.host, destination.port) == ("127.0.0.1", echo_port)
    assert destination.addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert await talk(*await destination.connect(timeout=5)) == b"EHLO\n"


async def test_the_checked_address_is_used_not_a_second_resolution(
    echo_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = await NetworkPolicy().admit_host("localhost", echo_port)
    assert ipaddress.ip_address("127.0.0.1") in destination.addresses
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def rebound(host: Any, *args: Any, **kwargs: Any) -> Any:
        # from now on the name points at the metadata service (DNS rebinding)
        if host == "localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", args[0]))]
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebound)
    assert await talk(*await destination.connect(timeout=5)) == b"EHLO\n"
    with pytest.raises(PolicyError, match="metadata"):  # checked again, it is refused
        await NetworkPolicy().admit_host("localhost", echo_port)


@pytest.mark.parametrize("host", METADATA_FORMS)
async def test_metadata_addresses_are_refused_in_every_form(host: str) -> None:
    with pytest.raises(PolicyError) as refused:
        await NetworkPolicy().admit_host(host, 25)

    assert "169.254.169.254" in refused.value.message
    assert "metadata" in refused.value.message
    assert refused.value.error_class == "policy"


@pytest.mark.parametrize("host", ["fe80::1", "fd00:ec2::254"])
async def test_ipv6_link_local_and_metadata_are_refused(host: str) -> None:
    with pytest.raises(PolicyError, match="link-local or cloud metadata"):
        await NetworkPolicy().admit_host(host, 993)


async def test_link_local_can_be_allowed_explicitly() -> None:
    admitted = await NetworkPolicy(allow_link_local=True).admit_host("169.254.169.254", 80)
    assert admitted.addresses == (ipaddress.ip_address("169.254.169.254"),)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::ffff:127.0.0.1", "10.1.2.3"])
async def test_private_addresses_are_refused_when_blocked(host: str) -> None:
    with pytest.raises(PolicyError, match="ORCHESTRATOR_NET_BLOCK_PRIVATE"):
        await NetworkPolicy(block_private=True).admit_host(host, 587)


async def test_a_denied_host_pattern_is_refused_before_it_is_resolved() -> None:
    policy = NetworkPolicy(deny=["*.example.org"])
    with pytest.raises(PolicyError, match=r"smtp\.example\.org is on the deny list"):
        await policy.admit_host("SMTP.Example.org.", 25)


@pytest.mark.parametrize("host", ["127.0.0.1", "::ffff:127.0.0.1", "[::ffff:7f00:1]"])
async def test_a_denied_network_is_refused_in_every_form(host: str) -> None:
    with pytest.raises(PolicyError, match=r"denied network 127\.0\.0\.0/8"):
        await NetworkPolicy(deny=["127.0.0.0/8"]).admit_host(host, 143)


async def test_the_allow_list_admits_only_what_it_names(echo_port: int) -> None:
    policy = NetworkPolicy(allow=["127.0.0.1/32"])
    assert (await policy.admit_host("::ffff:127.0.0.1", echo_port)).addresses
    with pytest.raises(PolicyError, match="not on the allow list"):
        await policy.admit_host("127.0.0.2", echo_port)


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("", 25),
        ("mail.example.org:25", 25),
        ("user@mail.example.org", 25),
        ("http://mail.example.org", 25),
        ("mail example", 25),
        ("127.0.0.1/8", 25),
        ("127.0.0.1", 0),
        ("127.0.0.1", 65536),
        ("127.0.0.1", True),
    ],
)
async def test_what_is_not_a_host_and_port_is_refused(host: str, port: Any) -> None:
    with pytest.raises(PolicyError):
        await NetworkPolicy().admit_host(host, port)


async def test_a_closed_port_fails_with_class_network() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before anything connects
    destination = await NetworkPolicy().admit_host("127.0.0.1", port)
    with pytest.raises(TaskError) as failed:
        await destination.connect(timeout=5)
    assert failed.value.error_class == "network"
    assert f"127.0.0.1:{port}" in failed.value.message


async def test_reach_holds_one_of_the_hosts_slots(echo_port: int) -> None:
    network = Network(NetworkPolicy(), HostLimits(per_host=1))
    waits: list[str | None] = []
    order: list[str] = []

    async def second() -> None:
        async with network.reach("127.0.0.1", echo_port, on_wait=waits.append) as destination:
            order.append("second")
            assert await talk(*await destination.connect(timeout=5)) == b"EHLO\n"

    async with network.reach("127.0.0.1", echo_port) as destination:
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        assert order == [] and waits and "host 127.0.0.1" in str(waits[0])
        order.append("first")
        assert await talk(*await destination.connect(timeout=5)) == b"EHLO\n"
    await asyncio.wait_for(waiting, 5)
    assert order == ["first", "second"]
    assert waits[-1] is None
    await network.aclose()


async def test_reach_refuses_like_the_policy() -> None:
    network = Network(NetworkPolicy(block_private=True))
    with pytest.raises(PolicyError):
        async with network.reach("localhost", 25):
            raise AssertionError("a refused host must not be reached")
