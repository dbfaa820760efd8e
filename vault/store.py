"""The vault: named secrets, each bound to the hosts it may be sent to, in one encrypted file.

``Vault.open(path)`` unlocks (or creates) the file; every change re-reads the file under the
cross-process lock, applies itself and writes the whole file back atomically, so several
processes (the MCP server, the CLI) can share one vault. Reads come from memory and re-read the
file when another process changed it. Values leave only through ``reveal`` (for one host) and
``values`` (to build a redactor); nothing else returns them.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.secret_hosts import ANY_HOST, host_allowed, refusal
from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.fileformat import (
    Header,
    VaultFile,
    damaged,
    encode,
    locked,
    read_bytes,
    write_atomic,
)
from multi_task_orchestrator.vault.hosts import validate_host_patterns
from multi_task_orchestrator.vault.keys import (
    KEY_ENV,
    KEY_FILE_NAME,
    PASSPHRASE_ENV,
    KeyFile,
    parse_key,
)
from multi_task_orchestrator.vault.secret import (
    MAX_VALUE_BYTES,
    NAME_PATTERN,
    Secret,
    SecretInfo,
    description_problem,
    now,
    problems,
    unknown,
)
from multi_task_orchestrator.vault.unlock import KeySource, Unlocked

__all__ = ["MAX_VALUE_BYTES", "NAME_PATTERN", "USAGE_FLUSH_SECONDS", "SecretInfo", "Vault"]

logger = logging.getLogger("orchestrator.vault")

# last_used_at is kept in memory and written at most this often (and at close).
USAGE_FLUSH_SECONDS = 60.0


class Vault:
    """An open vault; see the module docstring. Thread-safe; safe across processes."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes | None,
        passphrase: str | None,
        key_file: KeyFile,
        kdf_cost: int | None,
    ) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._keys = KeySource(key=key, passphrase=passphrase, key_file=key_file, kdf_cost=kdf_cost)
        self._mutex = threading.RLock()
        self._secrets: dict[str, Secret] = {}
        self._unlocked: Unlocked | None = None
        self._file_id: tuple[int, int, int] | None = None
        self._pending_usage: dict[str, str] = {}
        self._usage_since: float | None = None
        self.revision = 0  # grows whenever the secrets in memory change

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: str | None = None,
        passphrase: str | None = None,
        kdf_cost: int | None = None,
    ) -> Vault:
        """Unlock the vault at ``path``, creating an empty one when there is none.

        The key comes from ``key`` (a Fernet key), else ``passphrase``, else the key file
        ``vault.key`` beside the vault (created on first use). ``kdf_cost`` is log2 of scrypt's
        ``n`` for a new passphrase (tests lower it); the default is the real cost.
        """
        path = Path(path).expanduser().absolute()
        if key is not None and not key.strip():
            raise VaultError(f"{KEY_ENV} is set but empty; unset it or give a Fernet key")
        if passphrase is not None and not passphrase:
            raise VaultError(f"{PASSPHRASE_ENV} is set but empty; unset it or give a passphrase")
        vault = cls(
            path,
            key=parse_key(key, KEY_ENV) if key is not None else None,
            passphrase=passphrase if key is None else None,
            key_file=KeyFile(path.with_name(KEY_FILE_NAME)),
            kdf_cost=kdf_cost,
        )
        with locked(vault._lock_path):
            if not vault._load():
                vault._create()
        return vault

    @property
    def key_source(self) -> str:
        """Which key source unlocks this vault, for messages."""
        return self._keys.label

    def _create(self) -> None:
        self._write(self._keys.for_new_vault(), {})

    def _load(self) -> bool:
        """Read the file into memory (False when there is none); VaultError when it cannot."""
        read = read_bytes(self.path)
        if read is None:
            return False
        data, stat = read
        parsed = VaultFile.parse(data, self.path)
        unlocked = self._keys.unlock(parsed, self._unlocked, self.path)
        try:
            secrets = {
                name: Secret.from_json(fields)
                for name, fields in parsed.decrypt(unlocked.fernet, self.path).items()
            }
        except (KeyError, TypeError, AttributeError):
            raise damaged(self.path) from None
        self._unlocked = unlocked
        self._secrets = secrets
        self._file_id = _file_id(stat)
        self.revision += 1
        return True

    # --- reading ------------------------------------------------------------------------------

    def reload_if_changed(self) -> None:
        """Re-read the file when another process replaced it since it was last read here."""
        with self._mutex:
            try:
                current = _file_id(self.path.stat())
            except FileNotFoundError:
                raise VaultError(
                    f"the vault file {self.path} was removed while in use; restore it from a "
                    "backup, or restart to begin with an empty vault"
                ) from None
            if current != self._file_id:
                # Under the lock: a rotation in another process changes the key file and the
                # vault in separate steps.
                with locked(self._lock_path):
                    self._load()

    def names(self) -> set[str]:
        with self._mutex:
            self.reload_if_changed()
            return set(self._secrets)

    def list(self) -> list[SecretInfo]:
        """Every secret's name, description, hosts and times, by name; never a value."""
        with self._mutex:
            self.reload_if_changed()
            return [
                self._with_usage(name, secret).info(name)
                for name, secret in sorted(self._secrets.items())
            ]

    def reveal(self, name: str, host: str | None) -> str:
        """The value of ``name`` for sending to ``host``; VaultError if it may not go there.

        ``host`` None means the use has no destination host (a local command, a file); only a
        secret allowed for any host (``*``) may be used so.
        """
        with self._mutex:
            self.reload_if_changed()
            secret = self._find(name)
            if host:
                allowed = host_allowed(host, secret.allowed_hosts)
            else:
                allowed = ANY_HOST in secret.allowed_hosts
            if not allowed:
                raise VaultError(refusal(name, host, secret.allowed_hosts))
            self._pending_usage[name] = now()
            if self._usage_since is None:
                self._usage_since = time.monotonic()
            elif time.monotonic() - self._usage_since >= USAGE_FLUSH_SECONDS:
                try:
                    self.flush_usage()
                except VaultError as exc:  # only bookkeeping failed; the use itself is fine
                    logger.warning("could not save the secrets' last-used times: %s", exc)
            return secret.value

    def export(self, name: str) -> tuple[str, builtins.list[str]]:
        """The value of ``name`` and the hosts it is allowed for, for a process that checks the
        hosts itself (a cluster worker running one attempt); VaultError if there is none."""
        with self._mutex:
            self.reload_if_changed()
            secret = self._find(name)
            self._pending_usage[name] = now()
            return secret.value, list(secret.allowed_hosts)

    def values(self) -> builtins.list[str]:
        """Every secret value, for building a redactor."""
        with self._mutex:
            return [secret.value for secret in self._secrets.values()]

    # --- changing -----------------------------------------------------------------------------

    def set(
        self,
        name: str,
        value: str,
        *,
        allowed_hosts: builtins.list[str],
        description: str | None = None,
    ) -> SecretInfo:
        """Store or replace secret ``name``; returns what may be shown of it."""
        return self.set_many({name: value}, allowed_hosts=allowed_hosts, description=description)[0]

    def set_many(
        self,
        values: dict[str, str],
        *,
        allowed_hosts: builtins.list[str],
        description: str | None = None,
    ) -> builtins.list[SecretInfo]:
        """Store several secrets with the same hosts in one write (all or none)."""
        if not values:
            raise VaultError("nothing to store: no secrets were given")
        found = [problem for name, value in values.items() for problem in problems(name, value)]
        try:
            hosts = validate_host_patterns(allowed_hosts)
        except VaultError as exc:
            found.append(str(exc))
        if description is not None:
            description = description.strip() or None
        if problem := description_problem(description):
            found.append(problem)
        if found:
            raise VaultError("; ".join(found))
        changed_at = now()

        def change(secrets: dict[str, Secret]) -> None:
            for name, value in values.items():
                previous = secrets.get(name)
                secrets[name] = Secret(
                    value=value,
                    allowed_hosts=hosts,
                    description=description,
                    created_at=previous.created_at if previous else changed_at,
                    updated_at=changed_at,
                    last_used_at=previous.last_used_at if previous else None,
                )

        self._modify(change)
        with self._mutex:
            return [self._secrets[name].info(name) for name in values]

    def delete(self, name: str) -> None:
        """Remove secret ``name``; VaultError (with a suggestion) when there is none."""

        def change(secrets: dict[str, Secret]) -> None:
            if name not in secrets:
                raise unknown(name, secrets)
            del secrets[name]

        self._modify(change)

    def flush_usage(self) -> None:
        """Write the last-used times gathered in memory."""
        with self._mutex:
            if self._pending_usage:
                self._modify(lambda secrets: None)

    def close(self) -> None:
        """Persist what is only in memory (last-used times)."""
        self.flush_usage()

    def rotate(self, *, new_passphrase: str | None = None, new_key: str | None = None) -> None:
        """Re-encrypt everything under a new key; an interruption leaves a readable vault.

        With the key file: the file becomes [new, old] first, then the vault is written with the
        new key, then the file becomes [new]. With a passphrase (``new_passphrase``, or the same
        one with a fresh salt): the header and the body change in one atomic replace. ``new_key``
        switches to a given Fernet key.
        """
        if new_passphrase is not None and new_key is not None:
            raise VaultError("give a new passphrase or a new key, not both")
        if new_passphrase is not None and not new_passphrase:
            raise VaultError("the new passphrase is empty; give a passphrase")
        parsed_key = parse_key(new_key, "the new key") if new_key is not None else None
        with self._mutex, locked(self._lock_path):
            self._reload_locked()
            assert self._unlocked is not None
            self._keys.rotate(
                lambda unlocked: self._write(unlocked, self._secrets),
                new_passphrase=new_passphrase,
                new_key=parsed_key,
            )
            self.revision += 1

    # --- internals ----------------------------------------------------------------------------

    def _modify(self, change: Callable[[dict[str, Secret]], None]) -> None:
        """Apply ``change`` to the secrets as they are on disk now, and write them back."""
        with self._mutex, locked(self._lock_path):
            self._reload_locked()
            assert self._unlocked is not None
            secrets = dict(self._secrets)
            change(secrets)
            for name, used in self._pending_usage.items():
                if name in secrets:
                    secret = secrets[name]
                    if secret.last_used_at is None or secret.last_used_at < used:
                        secrets[name] = replace(secret, last_used_at=used)
            self._write(self._unlocked, secrets)
            self._pending_usage.clear()
            self._usage_since = None

    def _reload_locked(self) -> None:
        """Under the lock: make memory match the file before changing it."""
        if not self._load():
            raise VaultError(
                f"the vault file {self.path} was removed while in use; restore it from a backup, "
                "or open the vault again to begin with an empty one"
            )

    def _write(self, unlocked: Unlocked, secrets: dict[str, Secret]) -> None:
        # A fresh key check under the newest key, so that key alone opens the file from now on.
        data = encode(
            Header.for_key(unlocked.kdf, unlocked.fernet),
            {name: secret.to_json() for name, secret in secrets.items()},
            unlocked.fernet,
        )
        stat = write_atomic(self.path, data)
        self._unlocked = unlocked
        self._secrets = dict(secrets)
        self._file_id = _file_id(stat)
        self.revision += 1

    def _find(self, name: str) -> Secret:
        secret = self._secrets.get(name)
        if secret is None:
            raise unknown(name, self._secrets)
        return secret

    def _with_usage(self, name: str, secret: Secret) -> Secret:
        used = self._pending_usage.get(name)
        if used and (secret.last_used_at is None or secret.last_used_at < used):
            return replace(secret, last_used_at=used)
        return secret


def _file_id(stat: Any) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
