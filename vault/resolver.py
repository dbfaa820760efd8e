"""The engine's ``SecretResolver`` over a ``Vault``: reveal for a host, list names, redact.

Refusals become ``TaskError(..., "config")`` so the task fails at once (retrying cannot help)
with a message naming the secret, the host and the allowed hosts. The redactor masks every value
in the vault and every value this process revealed, even one since deleted or replaced, and is
rebuilt when the vault changes.
"""

from __future__ import annotations

import asyncio
import threading

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.redaction import Redactor
from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.store import Vault


class VaultResolver:
    """Implements ``engine.secrets.SecretResolver``."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._revealed: set[str] = set()
        self._mutex = threading.Lock()
        self._redactor = Redactor(())
        self._built_for: tuple[int, int] | None = None

    async def resolve(self, name: str, *, host: str | None) -> str:
        try:
            value = await asyncio.to_thread(self.vault.reveal, name, host)
        except VaultError as exc:
            raise TaskError(str(exc), "config") from None
        self._remember(value)
        return value

    async def export(self, name: str) -> tuple[str, list[str]]:
        """The value and allowed hosts of ``name``, to send with one attempt to a cluster
        worker, which checks the hosts itself."""
        try:
            value, allowed_hosts = await asyncio.to_thread(self.vault.export, name)
        except VaultError as exc:
            raise TaskError(str(exc), "config") from None
        self._remember(value)
        return value, allowed_hosts

    def _remember(self, value: str) -> None:
        """Redact ``value`` from now on (the redactor is rebuilt when next asked for)."""
        with self._mutex:
            if value not in self._revealed:
                self._revealed.add(value)
                self._built_for = None

    def names(self) -> set[str] | None:
        """The stored names; None when the vault cannot be read now (using one then fails
        with the reason)."""
        try:
            return self.vault.names()
        except VaultError:
            return None

    def redact(self, text: str) -> str:
        return self.redactor().redact(text)

    def redactor(self) -> Redactor:
        """A redactor over the current values; rebuilt only when they changed."""
        with self._mutex:
            version = (self.vault.revision, len(self._revealed))
            if self._built_for != version:
                self._redactor = Redactor([*self.vault.values(), *self._revealed])
                self._built_for = version
            return self._redactor

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        try:
            await asyncio.to_thread(
                self.vault.set, name, value, allowed_hosts=allowed_hosts, description=description
            )
        except VaultError as exc:
            raise TaskError(f"cannot save secret '{name}': {exc}", "config") from None
