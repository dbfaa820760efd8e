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
"""

from multi_task_orchestrator.engine.redaction import Redactor
from multi_task_orchestrator.engine.secret_hosts import host_allowed
from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.resolver import VaultResolver
from multi_task_orchestrator.vault.store import SecretInfo, Vault

__all__ = ["Redactor", "SecretInfo", "Vault", "VaultError", "VaultResolver", "host_allowed"]
