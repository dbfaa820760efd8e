"""The encrypted credential vault: secrets an agent can use but never read.

- ``store.Vault``: named secrets in one Fernet-encrypted file, each bound to the hosts it may be
  sent to, shared safely between processes;
- ``secret``: one secret's record, what may be shown of it (``SecretInfo``), name and value checks;
- ``unlock``: which keys open a vault (the key source, a new vault's keys, a rotation's);
- ``keys``: where the key comes from (a given key, a passphrase through scrypt, a key file);
- ``fileformat``: the file's layout, atomic writes and the cross-process lock;
- ``hosts``: validating host patterns (``api.example.com``, ``*.example.com``, ``*``); matching
  them (``host_allowed``) and masking values (``Redactor``) are the engine's, shared with it;
- ``resolver.VaultResolver``: the engine's ``SecretResolver`` over a vault;
- ``envfile``: reading a ``.env`` file for ``orchestrator vault import``.

The names below load on first use (``vault.errors`` or ``vault.lazy`` alone do not load the
store and its cryptography), as in the engine's ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.redaction import Redactor
    from multi_task_orchestrator.engine.secret_hosts import host_allowed
    from multi_task_orchestrator.vault.errors import VaultError
    from multi_task_orchestrator.vault.resolver import VaultResolver
    from multi_task_orchestrator.vault.store import SecretInfo, Vault

# each public name, and the module that defines it
_EXPORTS = {
    "Redactor": "multi_task_orchestrator.engine.redaction",
    "SecretInfo": "multi_task_orchestrator.vault.store",
    "Vault": "multi_task_orchestrator.vault.store",
    "VaultError": "multi_task_orchestrator.vault.errors",
    "VaultResolver": "multi_task_orchestrator.vault.resolver",
    "host_allowed": "multi_task_orchestrator.engine.secret_hosts",
}

__all__ = ["Redactor", "SecretInfo", "Vault", "VaultError", "VaultResolver", "host_allowed"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
