"""Validating the host patterns a secret is stored with (matching them is
``engine/secret_hosts.py``, shared with the engine).

A pattern is an exact host name (``api.example.com``), a subdomain wildcard (``*.example.com``,
which matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com`` itself), or ``*``
for any host, which must be written explicitly. Matching ignores case and a trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from multi_task_orchestrator.engine.secret_hosts import ANY_HOST, normalize_host
from multi_task_orchestrator.vault.errors import VaultError

# One DNS label: letters, digits, '-' and '_' (seen in real service names), not at either end.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def validate_host_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns normalised and without duplicates; a VaultError lists every bad one."""
    cleaned: list[str] = []
    problems: list[str] = []
    for raw in patterns:
        pattern = normalize_host(raw) if isinstance(raw, str) else ""
        problem = _pattern_problem(raw, pattern)
        if problem:
            if problem not in problems:
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
