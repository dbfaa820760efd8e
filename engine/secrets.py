"""The seam between the engine and a credential store.

The engine never holds secret values: a ``${vault.NAME}`` reference stays in a task's config as
text, and a runner reveals it at the moment of use, naming the host it will send it to. The
vault package implements ``SecretResolver``; without one, ``NoVault`` fails with a clear
message. A resolver whose store may fail to open (the vault, unlocked on first need) offers
``require_names``, which raises ``SecretsUnavailable`` saying why; validation uses it only for a
document that names a secret. The resolver also redacts: every string that leaves the engine
(outputs, errors, log lines, status, files) passes ``redact`` so no secret value is ever stored
or shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any, Protocol

from multi_task_orchestrator.engine.errors import TaskError


class SecretResolver(Protocol):
    """Resolves secret names to values for one destination host, and masks values in text."""

    async def resolve(self, name: str, *, host: str | None) -> str:
        """The value of secret ``name`` for use with ``host``; raise TaskError if refused."""
        ...

    def names(self) -> Collection[str] | None:
        """The names of the stored secrets (None when they cannot be told)."""
        ...

    def redact(self, text: str) -> str:
        """``text`` with every secret value (and its encoded forms) replaced by ``***``."""
        ...

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        """Save or replace a secret (e.g. a refreshed browser session)."""
        ...


class SecretsUnavailable(TaskError):
    """The secret store cannot be opened now; the message says why and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "config")


def names_to_check(resolver: SecretResolver) -> Collection[str] | None:
    """The names a document's ``${vault.NAME}`` must be among (None: any name goes).

    Raises SecretsUnavailable when the store exists but cannot be opened, where the resolver
    can tell (``require_names``); otherwise the same as ``resolver.names()``.
    """
    require: Callable[[], Collection[str] | None] | None = getattr(resolver, "require_names", None)
    return require() if require is not None else resolver.names()


class NoVault:
    """The resolver used when no vault is configured."""

    async def resolve(self, name: str, *, host: str | None) -> str:
        raise TaskError(
            f"the task uses secret '{name}' but no vault is configured; "
            "store it with 'orchestrator vault set NAME' and run with the vault enabled",
            "config",
        )

    def names(self) -> Collection[str] | None:
        return None

    def redact(self, text: str) -> str:
        return text

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        raise TaskError(f"cannot save secret '{name}': no vault is configured", "config")


_SURROGATE = re.compile("[\ud800-\udfff]")


def mend_surrogates(text: str) -> str:
    """``text`` with each half of a UTF-16 surrogate pair replaced by U+FFFD: JSON's
    ``"\\ud800"`` makes one, and no UTF-8 text (the state database, an answer) can hold it."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def redact_bytes(content: bytes, redact: Callable[[str], str], encoding: str = "utf-8") -> bytes:
    """``content`` with ``redact`` applied to its text: read as ``encoding`` when it is text,
    else byte for byte (Latin-1), which finds a secret's ASCII forms inside binary data."""
    try:
        text, codec = content.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        text, codec = content.decode("latin-1"), "latin-1"
    clean = redact(text)
    return content if clean == text else clean.encode(codec, errors="replace")


def redact_data(value: Any, redact: Callable[[str], str]) -> Any:
    """A copy of JSON-able ``value`` with ``redact`` applied to every string in it, keys
    included (tuples become lists). Walked with a stack, not recursion, so data of any depth
    (a hostile server's deeply nested JSON) is redacted instead of raising RecursionError."""
    top: list[Any] = [value]
    pending: list[tuple[Any, list[Any] | dict[Any, Any], Any]] = [(value, top, 0)]
    while pending:
        item, holder, slot = pending.pop()
        if isinstance(item, str):
            holder[slot] = redact(item)
        elif isinstance(item, dict):
            copy: dict[Any, Any] = {}
            holder[slot] = copy
            for key, child in item.items():
                key = redact(key) if isinstance(key, str) else key
                copy[key] = child
                if isinstance(child, str | dict | list | tuple):
                    pending.append((child, copy, key))
        elif isinstance(item, list | tuple):
            listed = list(item)
            holder[slot] = listed
            pending.extend(
                (child, listed, index)
                for index, child in enumerate(listed)
                if isinstance(child, str | dict | list | tuple)
            )
    return top[0]
