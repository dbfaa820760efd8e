"""A ``SecretResolver`` that opens the vault only when something needs it.

A document that names no secret must run and validate even when the vault cannot be unlocked
(a wrong or missing passphrase): ``LazyVaultResolver`` opens the vault the first time a secret is
revealed, stored or listed, and reports a vault that cannot be opened then — to validation as
``SecretsUnavailable`` (``require_names``), to a task as a ``config`` error naming the fix. With
no vault file yet there are no secrets: nothing is created until one is stored.

Masking needs the values, so the first ``redact`` also opens the vault when it can (as opening it
at start did); when it cannot, nothing was revealed, so there is nothing of the vault to mask.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.secrets import SecretsUnavailable
from multi_task_orchestrator.vault.errors import VaultError

if TYPE_CHECKING:  # loaded with the vault, not before (cryptography takes a while)
    from multi_task_orchestrator.vault.resolver import VaultResolver
    from multi_task_orchestrator.vault.store import Vault

NO_VAULT_YET = (
    "there is no vault yet; store the secret with 'orchestrator vault set {name} --hosts HOST' "
    "(or the vault_set tool)"
)


class LazyVaultResolver:
    """Implements ``engine.secrets.SecretResolver``; ``open_vault`` unlocks (or creates) it."""

    def __init__(self, path: Path, open_vault: Callable[[], Vault]) -> None:
        self.path = path
        self._open_vault = open_vault
        self._mutex = threading.Lock()
        self._resolver: VaultResolver | None = None
        self._tried_for_redaction = False

    # --- opening ------------------------------------------------------------------------------

    def vault(self) -> Vault:
        """The open vault, unlocking (or creating) it now if need be; VaultError if it cannot."""
        return self._open(create=True).vault  # type: ignore[union-attr]

    def _open(self, *, create: bool) -> VaultResolver | None:
        """The resolver over the open vault; None when there is no vault file and ``create`` is
        false. Raises VaultError when the vault cannot be opened."""
        with self._mutex:
            if self._resolver is None:
                if not create and not self.path.exists():
                    return None
                from multi_task_orchestrator.vault.resolver import VaultResolver

                self._resolver = VaultResolver(self._open_vault())
            return self._resolver

    def _for_secret(self, name: str) -> VaultResolver:
        """The resolver, for a task that uses secret ``name``; a TaskError says why not."""
        try:
            resolver = self._open(create=False)
        except VaultError as exc:
            raise TaskError(f"secret '{name}' needs the vault: {exc}", "config") from None
        if resolver is None:
            raise TaskError(f"no secret named '{name}': {NO_VAULT_YET.format(name=name)}", "config")
        return resolver

    def warm(self) -> VaultError | None:
        """Open an existing vault now if it can be (a server does at start, off its event loop,
        so masking never waits for an unlock); the reason when it cannot, for a warning."""
        self._tried_for_redaction = True
        try:
            self._open(create=False)
        except VaultError as exc:
            return exc
        return None

    @property
    def is_open(self) -> bool:
        return self._resolver is not None

    def close(self) -> None:
        """Save the secrets' last-used times, if the vault was opened; VaultError if it cannot."""
        if self._resolver is not None:
            self._resolver.vault.close()

    # --- SecretResolver ----------------------------------------------------------------------

    async def resolve(self, name: str, *, host: str | None) -> str:
        resolver = await asyncio.to_thread(self._for_secret, name)
        return await resolver.resolve(name, host=host)

    async def export(self, name: str) -> tuple[str, list[str]]:
        """As ``VaultResolver.export``: a secret to send with an attempt to a cluster worker."""
        resolver = await asyncio.to_thread(self._for_secret, name)
        return await resolver.export(name)

    def names(self) -> set[str] | None:
        """The stored names (none without a vault file); None when the vault cannot be read."""
        try:
            return self.require_names()
        except SecretsUnavailable:
            return None

    def require_names(self) -> set[str]:
        """The stored names; SecretsUnavailable saying why when the vault cannot be opened."""
        try:
            resolver = self._open(create=False)
            return resolver.vault.names() if resolver is not None else set()
        except VaultError as exc:
            raise SecretsUnavailable(str(exc)) from None

    def redact(self, text: str) -> str:
        resolver = self._resolver
        if resolver is None:
            if self._tried_for_redaction:
                return text
            self._tried_for_redaction = True  # one attempt: a failed unlock is not cheap
            try:
                resolver = self._open(create=False)
            except VaultError:
                return text
            if resolver is None:
                return text
        return resolver.redact(text)

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        try:
            resolver = await asyncio.to_thread(self._open, create=True)
        except VaultError as exc:
            raise TaskError(f"cannot save secret '{name}': {exc}", "config") from None
        assert resolver is not None
        await resolver.store(name, value, allowed_hosts=allowed_hosts, description=description)
