"""Reaching a mail server: the policy's admitted addresses, a socket to exactly one of them,
TLS checked for the host's name, plain text only to loopback, and messages that never carry
the password."""

from __future__ import annotations

import asyncio
import socket
import ssl

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Destination, PolicyError, embedded_ipv4


def refuse_plain_off_loopback(destination: Destination) -> None:
    """``security: plain`` sends the password in clear: only to this machine."""
    for address in destination.addresses:
        if not (embedded_ipv4(address) or address).is_loopback:
            raise PolicyError(
                f"refused {destination.host}:{destination.port} with security: plain: it "
                f"resolves to {address}, not a loopback address; plain text (no TLS) is only "
                "allowed to this machine, use security: tls or starttls"
            )


async def pinned_socket(destination: Destination, timeout: float) -> socket.socket:
    """A connected, non-blocking TCP socket to the first admitted address that answers."""
    loop = asyncio.get_running_loop()
    failure: OSError | None = None
    for address in destination.addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                loop.sock_connect(sock, (str(address), destination.port)), timeout
            )
            return sock
        except TimeoutError:
            sock.close()
            raise TaskError(
                f"connecting to {destination.host}:{destination.port} timed out after "
                f"{timeout:g} s",
                "timeout",
            ) from None
        except OSError as exc:
            sock.close()
            failure = exc
    raise TaskError(
        f"cannot connect to {destination.host}:{destination.port}: "
        f"{failure.strerror if failure else 'no address'}",
        "network",
    )


def blocking_socket(destination: Destination, timeout: float) -> socket.socket:
    """``pinned_socket`` for code that runs in a thread (blocking, with a timeout)."""
    failure: OSError | None = None
    for address in destination.addresses:
        try:
            return socket.create_connection((str(address), destination.port), timeout)
        except TimeoutError:
            raise TaskError(
                f"connecting to {destination.host}:{destination.port} timed out after "
                f"{timeout:g} s",
                "timeout",
            ) from None
        except OSError as exc:
            failure = exc
    raise TaskError(
        f"cannot connect to {destination.host}:{destination.port}: "
        f"{failure.strerror if failure else 'no address'}",
        "network",
    )


def tls_context() -> ssl.SSLContext:
    """The system's trusted certificates, the host's name checked."""
    return ssl.create_default_context()


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret given replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
