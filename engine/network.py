"""Outbound network access for runners: the network policy, per-host limits, one HTTP client.

Every runner that talks to the network (http, multi_publish, the browser) goes through one
``Network`` per engine, so the policy and the per-host politeness hold across every
orchestration:

- ``NetworkPolicy.check(url)`` refuses link-local and cloud metadata addresses unless explicitly
  allowed, applies optional allow and deny lists of hosts and networks, and can refuse private
  networks. It checks the resolved addresses, so a name pointing at a refused address is
  refused too; runners call it again for every redirect.
- ``NetworkPolicy.admit_host(host, port)`` is the same check for a runner that connects by host
  and port, not by URL (SMTP, IMAP, an MCP server): it returns a ``Destination`` holding the
  addresses it checked, and ``Destination.connect`` connects to one of exactly those.
  ``Network.reach(host, port)`` adds the host's per-host slot for as long as the caller uses it.
- ``HostLimits.slot(host)`` caps concurrent requests per host (server-wide) and spaces them by
  an optional per-host rate.
- ``client()`` is the shared ``httpx.AsyncClient`` (connection pooling), created on first use.
  Its transport (``network_transport.PinnedBackend``) checks every connection with the policy
  again and connects to exactly an address it checked, so a name that resolves differently a
  moment later (DNS rebinding) cannot reach an address the policy refuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from multi_task_orchestrator.engine.document.units import Rate
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.pools import Pool

if TYPE_CHECKING:  # loaded with the first request (httpx takes ~0.1 s to import)
    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata (169.254.169.254)
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
DEFAULT_PER_HOST = 6
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the low bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d form (:: and ::1 aside)
# a host name or an IP address (IPv6 with its zone), and nothing a URL or a resolver would read
# as more than that (a port, a user, a path)
_HOST = re.compile(r"[^\s/\\@?#\[\]]+")


class PolicyError(TaskError):
    """A request the network policy refuses; never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "policy")


def _as_network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


_HOST_PATTERN = re.compile(r"\*|(?:\*\.)?[\w-]+(?:\.[\w-]+)*\.?")


def policy_entry(entry: str) -> str:
    """``entry`` of an allow or deny list as it is, or ValueError saying why it can never match:
    an entry that is no network, address or host name would be ignored without a word."""
    numeric = re.fullmatch(r"[\d.]+|[\da-fA-F:.]*:[\da-fA-F:.]*", entry)
    named = not ("/" in entry or numeric) and _HOST_PATTERN.fullmatch(entry)
    if _as_network(entry) is None and not named:
        raise ValueError(
            f"'{entry}' is not a host name, a *.domain pattern, an IP address or a network "
            "(e.g. api.example.com, *.example.com, 10.1.0.0/16)"
        )
    return entry


PolicyEntry = Annotated[str, AfterValidator(policy_entry)]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


@dataclass(slots=True)
class NetworkPolicy:
    """Which destinations runners may reach.

    ``allow`` (when not empty) and ``deny`` hold host names, ``*.example.com`` patterns, IP
    addresses or networks (``10.0.0.0/8``). Link-local and metadata addresses are refused unless
    ``allow_link_local`` is set; ``block_private`` also refuses private and loopback networks.
    """

    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    block_private: bool = False
    allow_link_local: bool = False

    async def check(self, url: str) -> str:
        """Return the URL's host if the policy allows the request; raise PolicyError if not."""
        host, _ = await self.admit(url)
        return host

    async def admit(self, url: str) -> tuple[str, list[Address]]:
        """The URL's host and the addresses it was checked at; PolicyError if refused."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss"):
            raise PolicyError(f"refused {url}: only http and https URLs can be requested")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise PolicyError(f"refused {url}: the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        except ValueError:
            raise PolicyError(f"refused {url}: the URL's port is not a number") from None
        return host, await self.addresses(host, port, shown=url)

    async def admit_host(self, host: str, port: int) -> Destination:
        """``host:port`` checked for a connection made without a URL (SMTP, IMAP, an MCP
        server): the same rules as a URL's host; PolicyError if refused."""
        name = host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
        shown = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        if not _HOST.fullmatch(name) or (":" in name and not _is_address(name)):
            raise PolicyError(f"refused {host!r}: not a host name or an IP address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise PolicyError(f"refused {shown}: the port must be a number from 1 to 65535")
        return Destination(name, port, tuple(await self.addresses(name, port, shown=shown)))

    async def addresses(self, host: str, port: int, *, shown: str | None = None) -> list[Address]:
        """The addresses ``host`` resolves to, each checked; PolicyError if any is refused.

        A connection must be made to one of exactly these addresses: resolving the name again
        could give another answer (DNS rebinding) that nothing checked."""
        host = host.lower().rstrip(".").removeprefix("[").removesuffix("]")
        url = shown or f"{host}:{port}"
        for pattern in self.deny:
            if _as_network(pattern) is None and _host_matches(host, pattern):
                raise PolicyError(f"refused {url}: host {host} is on the deny list ({pattern})")
        addresses = await _resolve(host, port)
        for address in addresses:
            self._check_address(url, host, address)
        if self.allow and not self._allowed(host, addresses):
            listed = ", ".join(self.allow)
            raise PolicyError(f"refused {url}: {host} is not on the allow list ({listed})")
        return addresses

    def _check_address(self, url: str, host: str, address: Address) -> None:
        shown = host if host == str(address) else f"{host} ({address})"
        self._judge(url, shown, address)
        carried = embedded_ipv4(address)
        if carried is not None:
            # an IPv6 form that reaches an IPv4 address is judged as that address too: an IPv6
            # address is never "in" an IPv4 network, so checking it alone would let it through
            self._judge(url, f"{shown}, which reaches {carried},", carried)

    def _judge(self, url: str, shown: str, address: Address) -> None:
        if not self.allow_link_local and any(address in net for net in ALWAYS_REFUSED):
            raise PolicyError(
                f"refused {url}: {shown} is a link-local or cloud metadata address; these are "
                "always refused unless ORCHESTRATOR_NET_ALLOW_LINK_LOCAL=1"
            )
        if self.block_private and (address.is_private or address.is_loopback):
            raise PolicyError(
                f"refused {url}: {shown} is a private address and "
                "ORCHESTRATOR_NET_BLOCK_PRIVATE is on"
            )
        for pattern in self.deny:
            network = _as_network(pattern)
            if network is not None and address in network:
                raise PolicyError(f"refused {url}: {shown} is in the denied network {pattern}")

    def _allowed(self, host: str, addresses: Iterable[Address]) -> bool:
        for pattern in self.allow:
            network = _as_network(pattern)
            if network is None and _host_matches(host, pattern):
                return True
            if network is not None and all(
                (embedded_ipv4(address) or address) in network for address in addresses
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Destination:
    """A host and port the policy admitted, with the addresses it checked them at.

    Connect to one of ``addresses`` (``connect`` does), never to ``host`` by name: resolving it
    again could give an address nothing checked (DNS rebinding)."""

    host: str
    port: int
    addresses: tuple[Address, ...]

    async def connect(
        self, *, ssl: SSLContext | None = None, timeout: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to the first checked address that answers; with ``ssl``, TLS whose
        certificate is checked for ``host``. TaskError (``network``, ``timeout``) if none does."""
        failure: Exception | None = None
        for address in self.addresses:
            opening = asyncio.open_connection(
                str(address), self.port, ssl=ssl, server_hostname=self.host if ssl else None
            )
            try:
                return await asyncio.wait_for(opening, timeout)
            except (OSError, TimeoutError) as exc:
                failure = exc
        where = f"{self.host}:{self.port}"
        if isinstance(failure, TimeoutError):
            raise TaskError(f"connecting to {where} timed out after {timeout} s", "timeout")
        raise TaskError(f"cannot connect to {where}: {failure}", "network")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``) or NAT64 (``64:ff9b::a.b.c.d``); None for any other."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64_PREFIX:
        return low
    if address in IPV4_COMPATIBLE and int(address) > 1:
        return low
    return None


async def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TaskError(f"cannot resolve host {host}: {exc.strerror}", "network") from None
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )


class HostLimits:
    """Server-wide politeness: at most ``per_host`` requests at once to one host, and an optional
    rate per host. Shared by every orchestration and by the browser's navigations."""

    def __init__(self, per_host: int = DEFAULT_PER_HOST, rates: dict[str, Rate] | None = None):
        self.per_host = per_host
        self.rates = {host.lower(): rate for host, rate in (rates or {}).items()}
        self._pools: dict[str, Pool] = {}
        self._changed = asyncio.Condition()

    def _pool(self, host: str) -> Pool:
        pool = self._pools.get(host)
        if pool is None:
            pool = self._pools[host] = Pool(host, self.per_host, self.rates.get(host), kind="host")
        return pool

    @asynccontextmanager
    async def slot(
        self, host: str, on_wait: Callable[[str | None], None] | None = None
    ) -> AsyncIterator[None]:
        """Hold one of ``host``'s slots; ``on_wait`` hears what is being waited for."""
        pool = self._pool(host.lower())
        loop = asyncio.get_running_loop()
        async with self._changed:
            while (blocked := pool.blocked_until(loop.time())) is not None:
                if on_wait:
                    on_wait(f"host {host}: {pool.describe(blocked)}")
                timeout = None if blocked == float("inf") else max(0.0, blocked - loop.time())
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
            pool.acquire(loop.time())
        if on_wait:
            on_wait(None)
        try:
            yield
        finally:
            async with self._changed:
                pool.release()
                self._changed.notify_all()


class Network:
    """The engine's outbound network: policy, host limits and the shared HTTP client."""

    def __init__(
        self,
        policy: NetworkPolicy | None = None,
        host_limits: HostLimits | None = None,
        *,
        user_agent: str = "multi-task-orchestrator",
    ) -> None:
        self.policy = policy or NetworkPolicy()
        self._host_limits = host_limits
        self.user_agent = user_agent
        self._client: httpx.AsyncClient | None = None

    @property
    def host_limits(self) -> HostLimits:
        if self._host_limits is None:  # created inside the running loop
            self._host_limits = HostLimits()
        return self._host_limits

    @asynccontextmanager
    async def reach(
        self, host: str, port: int, *, on_wait: Callable[[str | None], None] | None = None
    ) -> AsyncIterator[Destination]:
        """``host:port`` admitted by the policy (``NetworkPolicy.admit_host``), holding one of
        the host's slots (per-host limit and rate) while the caller uses it."""
        destination = await self.policy.admit_host(host, port)
        async with self.host_limits.slot(destination.host, on_wait=on_wait):
            yield destination

    def client(self) -> httpx.AsyncClient:
        """The shared client; redirects are not followed, so each hop is checked by the caller."""
        if self._client is None:
            from http.cookiejar import CookieJar, DefaultCookiePolicy  # ~10 ms, as httpx

            import httpx

            from multi_task_orchestrator.engine.network_transport import pinned_transport

            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                # one client serves every orchestration: it must not carry one's cookies to another
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                headers={"user-agent": self.user_agent},
                limits=limits,
                timeout=httpx.Timeout(30.0),
                transport=pinned_transport(lambda: self.policy, limits),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
