"""The seam between the engine and a credential store.

The engine never holds secret values: a ``${vault.NAME}`` reference stays in a task's config as
text, and a runner reveals it at the moment of use, naming the host it will send it to. The vault
package implements ``SecretResolver``; without one, ``NoVault`` fails with a clear message.
"""

from __future__ import annotations

from typing import Protocol

from engine.errors import TaskError


class SecretResolver(Protocol):
    """Resolves secret names to values for one destination host."""

    async def resolve(self, name: str, *, host: str | None) -> str:
        """The value of secret ``name`` for use with ``host``; raise TaskError if refused."""
        ...

    def known(self, name: str) -> bool | None:
        """Whether a secret exists (None when that cannot be told without unlocking)."""
        ...


class NoVault:
    """The resolver used when no vault is configured."""

    async def resolve(self, name: str, *, host: str | None) -> str:
        raise TaskError(
            f"the task uses secret '{name}' but no vault is configured; "
            "store it with 'orchestrator vault set NAME' and run with the vault enabled",
            "config",
        )

    def known(self, name: str) -> bool | None:
        return None
