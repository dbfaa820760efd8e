"""Which hosts a secret may be sent to, as the engine checks it at the moment of use.

A pattern is an exact host name (``api.example.com``), a subdomain wildcard (``*.example.com``,
which matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com`` itself), or ``*``
for any host, which must be written explicitly. Matching ignores case and a trailing dot. The
vault validates patterns when a secret is stored (``vault/hosts.py``); the engine and its
workers only match and explain (``host_allowed``, ``refusal``).
"""

from __future__ import annotations

from collections.abc import Iterable

ANY_HOST = "*"


def normalize_host(host: str) -> str:
    """``host`` in the form patterns are compared in: lower case, no trailing dot or brackets."""
    return host.strip().rstrip(".").lower().removeprefix("[").removesuffix("]")


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches one of ``patterns`` (see the module docstring)."""
    wanted = normalize_host(host)
    if not wanted:
        return False
    for raw in patterns:
        pattern = normalize_host(raw)
        if pattern in (ANY_HOST, wanted):
            return True
        if pattern.startswith("*.") and wanted.endswith(pattern[1:]):
            return True
    return False


def describe_hosts(patterns: Iterable[str]) -> str:
    """The patterns for a message: ``api.example.com, *.example.com`` or ``any host``."""
    patterns = list(patterns)
    return "any host" if ANY_HOST in patterns else ", ".join(patterns)


def refusal(name: str, host: str | None, allowed_hosts: list[str]) -> str:
    """Why secret ``name`` may not be sent to ``host`` (never its value)."""
    allowed = describe_hosts(allowed_hosts)
    if not host:
        return (
            f"secret '{name}' is allowed only for {allowed}, and this use names no destination "
            "host; only a secret allowed for any host (*) can be used without one"
        )
    return (
        f"secret '{name}' may not be sent to host '{host}': it is allowed only for {allowed}. "
        "If that host should receive it, store the secret again with the host in its allowed "
        "hosts"
    )
