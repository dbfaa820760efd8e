"""Which hosts a secret may be sent to: validating patterns and matching a host against them.

A pattern is an exact host name (``api.example.com``), a subdomain wildcard (``*.example.com``,
which matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com`` itself), or ``*``
for any host, which must be written explicitly. Matching ignores case and a trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from multi_task_orchestrator.vault.errors import VaultError

ANY_HOST = "*"

# One DNS label: letters, digits, '-' and '_' (seen in real service names), not at either end.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


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


def validate_host_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns normalised and without duplicates; a VaultError lists every bad one."""
    cleaned: list[str] = []
    problems: list[str] = []
    for raw in patterns:
        pattern = normalize_host(raw) if isinstance(raw, str) else ""
        problem = _pattern_problem(raw, pattern)
        if problem:
            problems.append(problem)
        elif pattern not in cleaned:
            cleaned.append(pattern)
    if problems:
        raise VaultError("; ".join(problems))
    if not cleaned:
        raise VaultError(
            "allowed hosts are required: name the hosts this secret may be sent to, e.g. "
            "api.example.com or *.example.com (or * for any host, said explicitly)"
        )
    return cleaned


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


def _pattern_problem(raw: object, pattern: str) -> str | None:
    if not isinstance(raw, str) or not pattern:
        return "an allowed host cannot be empty"
    shown = repr(raw.strip())
    if "://" in pattern or "/" in pattern:
        return (
            f"allowed host {shown} looks like a URL or path; give a host name only, "
            "e.g. api.example.com"
        )
    if pattern == ANY_HOST:
        return None
    if _is_ip_address(pattern):
        return None
    if ":" in pattern:
        return (
            f"allowed host {shown} has a port; give a host name only (a secret allowed for a "
            "host may be sent to any of its ports), e.g. api.example.com"
        )
    name = pattern.removeprefix("*.")
    if "*" in name:
        return (
            f"allowed host {shown}: a wildcard is only allowed as a whole first label, "
            "as in *.example.com, or alone as * for any host"
        )
    if not _HOST_NAME.fullmatch(name) or len(name) > 253:
        return (
            f"allowed host {shown} is not a host name; give a host name such as "
            "api.example.com, a pattern such as *.example.com, or * for any host"
        )
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
