"""Which keys open a vault: the source chosen when it is opened (a given Fernet key, else a
passphrase, else the key file beside it), the keys a new vault gets, the keys a file's header
asks for, and the switch to new keys in a rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, MultiFernet

from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.fileformat import VaultFile, damaged
from multi_task_orchestrator.vault.keys import KEY_ENV, PASSPHRASE_ENV, KeyFile, ScryptParams

NO_KDF: dict[str, Any] = {"name": "none"}


@dataclass(slots=True)
class Unlocked:
    """The keys of an open vault (newest first) and the header's ``kdf`` they go with."""

    fernet: MultiFernet
    kdf: dict[str, Any]


def fernet_of(keys: list[bytes]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


class KeySource:
    """Where an open vault's key comes from; a rotation may change it."""

    def __init__(
        self,
        *,
        key: bytes | None,
        passphrase: str | None,
        key_file: KeyFile,
        kdf_cost: int | None,
    ) -> None:
        self._key = key
        self._passphrase = passphrase
        self._key_file = key_file
        self._kdf_cost = kdf_cost

    @property
    def label(self) -> str:
        """Which key source unlocks the vault, for messages."""
        if self._key is not None:
            return KEY_ENV
        if self._passphrase is not None:
            return PASSPHRASE_ENV
        return self._key_file.label

    def for_new_vault(self) -> Unlocked:
        """The keys a vault created now is written with (the key file is created if needed)."""
        if self._key is not None:
            return Unlocked(MultiFernet([Fernet(self._key)]), NO_KDF)
        if self._passphrase is not None:
            params = ScryptParams.new(self._kdf_cost)
            return Unlocked(fernet_of([params.derive(self._passphrase)]), params.to_header())
        existing = self._key_file.read() if self._key_file.exists() else None
        return Unlocked(fernet_of(existing or self._key_file.create()), NO_KDF)

    def unlock(self, parsed: VaultFile, current: Unlocked | None, path: Path) -> Unlocked:
        """The keys that open ``parsed`` (the file at ``path``), reusing ``current`` while the
        header is the same."""
        header = parsed.header
        if current and current.kdf == header.kdf and header.key_matches(current.fernet):
            return current
        kdf_name = header.kdf.get("name")
        if kdf_name == "scrypt":
            if self._passphrase is None:
                given = f" with {KEY_ENV}" if self._key is not None else ""
                unset = f" and unset {KEY_ENV}" if self._key is not None else ""
                raise VaultError(
                    f"cannot unlock {path}{given}: this vault is locked with a passphrase; "
                    f"set {PASSPHRASE_ENV}{unset}"
                )
            try:
                params = ScryptParams.from_header(header.kdf)
            except (KeyError, TypeError, ValueError):
                raise damaged(path) from None
            fernet = fernet_of([params.derive(self._passphrase)])
            problem = "wrong passphrase or a different vault"
        elif kdf_name == "none":
            if self._passphrase is not None:
                raise VaultError(
                    f"cannot unlock {path} with {PASSPHRASE_ENV}: this vault is locked with "
                    f"a key ({self._key_file.label} or {KEY_ENV}), not a passphrase; unset "
                    f"{PASSPHRASE_ENV}, then run 'orchestrator vault rotate --new-passphrase' "
                    "to protect it with a passphrase"
                )
            if self._key is not None:
                fernet = MultiFernet([Fernet(self._key)])
            else:
                fernet = fernet_of(self._key_file.read())
            problem = "wrong key or a different vault"
        else:
            raise damaged(path)
        if not header.key_matches(fernet):
            if parsed.opens_with(fernet):  # the key is right: the header itself was changed
                raise damaged(path)
            raise VaultError(
                f"cannot unlock {path} with {self.label}: {problem}. "
                "The vault file was left as it is."
            )
        return Unlocked(fernet, header.kdf)

    def rotate(
        self,
        write: Callable[[Unlocked], None],
        *,
        new_passphrase: str | None,
        new_key: bytes | None,
    ) -> None:
        """Switch to new keys, calling ``write`` once to write the vault with them, in an order
        that leaves a readable vault at every step (see ``Vault.rotate``)."""
        if new_key is not None:
            write(Unlocked(MultiFernet([Fernet(new_key)]), NO_KDF))
            self._key, self._passphrase = new_key, None
        elif new_passphrase is not None or self._passphrase is not None:
            passphrase = new_passphrase if new_passphrase is not None else self._passphrase
            assert passphrase is not None
            params = ScryptParams.new(self._kdf_cost)
            write(Unlocked(fernet_of([params.derive(passphrase)]), params.to_header()))
            was_key_file = self._key is None and self._passphrase is None
            self._key, self._passphrase = None, passphrase
            if was_key_file:  # the old key opens nothing now
                self._key_file.path.unlink(missing_ok=True)
        elif self._key is not None:
            raise VaultError(
                f"this vault is unlocked with {KEY_ENV}; rotating needs the new key "
                "('orchestrator vault rotate --new-key'), and then set the variable to it"
            )
        else:
            old_keys = self._key_file.read()
            fresh = Fernet.generate_key()
            self._key_file.write([fresh, *old_keys])
            write(Unlocked(fernet_of([fresh]), NO_KDF))
            self._key_file.write([fresh])
