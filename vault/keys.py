"""Where the vault's encryption key comes from: a given key, a passphrase, or a key file.

Three sources, tried in this order (``vault.unlock.KeySource``):

- an explicit Fernet key (``ORCHESTRATOR_VAULT_KEY``, handed in as an argument);
- a passphrase (``ORCHESTRATOR_VAULT_PASSPHRASE``) stretched with scrypt, whose salt and cost
  parameters live in the vault's header;
- otherwise a key file, ``vault.key`` beside the vault, created with mode 0600 on first use so the
  vault works with no setup. It holds one key per line, newest first; more than one line only
  during a key rotation, when the older keys still open a vault written before it.

This module never reads the environment: the names above are labels for messages.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.fileformat import write_atomic

KEY_ENV = "ORCHESTRATOR_VAULT_KEY"
PASSPHRASE_ENV = "ORCHESTRATOR_VAULT_PASSPHRASE"
KEY_FILE_NAME = "vault.key"

# scrypt cost: n = 2**17, r = 8 takes 128 MiB and about 0.33 s on the 2-core machine this was
# measured on (2**16: 0.16 s, 2**15: 0.08 s). Tests lower it through ``kdf_cost``.
SCRYPT_LOG2_N = 17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
MAX_SCRYPT_LOG2_N = 22

MAKE_KEY_HINT = (
    'make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """The salt and cost of one passphrase derivation; stored in the vault's header."""

    salt: bytes
    n: int
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def new(cls, log2_n: int | None = None) -> ScryptParams:
        """Fresh salt at the default cost (or ``2**log2_n``)."""
        return cls(salt=secrets.token_bytes(SALT_BYTES), n=2 ** (log2_n or SCRYPT_LOG2_N))

    def to_header(self) -> dict[str, Any]:
        return {
            "name": "scrypt",
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "n": self.n,
            "r": self.r,
            "p": self.p,
        }

    @classmethod
    def from_header(cls, kdf: dict[str, Any]) -> ScryptParams:
        """Read the header's ``kdf``; a malformed one raises ValueError."""
        salt = base64.b64decode(kdf["salt"], validate=True)
        n, r, p = (kdf[field] for field in ("n", "r", "p"))
        if not all(isinstance(each, int) and each > 0 for each in (n, r, p)) or n & (n - 1):
            raise ValueError("bad scrypt parameters")
        if (
            n > 2**MAX_SCRYPT_LOG2_N or r > 64 or p > 16
        ):  # a tampered header must not exhaust memory
            raise ValueError("scrypt parameters out of range")
        return cls(salt=salt, n=n, r=r, p=p)

    def derive(self, passphrase: str) -> bytes:
        """The Fernet key for ``passphrase`` (slow on purpose)."""
        kdf = Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p)
        return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


def parse_key(text: str, source: str) -> bytes:
    """``text`` as a Fernet key, or a VaultError naming ``source`` and how to make a key."""
    key = text.strip().encode("ascii", errors="replace")
    try:
        Fernet(key)
    except ValueError:
        raise VaultError(
            f"{source} is not a Fernet key (44 characters of url-safe base64); {MAKE_KEY_HINT}"
        ) from None
    return key


def new_key() -> bytes:
    return Fernet.generate_key()


class KeyFile:
    """The key file beside the vault: one Fernet key per line, newest first, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return f"the key file {self.path}"

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[bytes]:
        """The keys, newest first; a VaultError when the file is missing or unreadable."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise VaultError(
                f"{self.label} is missing, and it holds the key that opens the vault; restore it "
                f"from a backup (or set {KEY_ENV} to that key)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VaultError(f"cannot read {self.label}: {exc}") from None
        keys = [parse_key(line, self.label) for line in text.split() if line]
        if not keys:
            raise VaultError(f"{self.label} is empty; restore it from a backup")
        return keys

    def create(self) -> list[bytes]:
        """Make the file with one new key; if another process just made it, read that one."""
        key = new_key()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.read()
        except OSError as exc:
            raise VaultError(f"cannot create {self.label}: {exc.strerror}") from None
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            raise VaultError(f"cannot write {self.label}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return [key]

    def write(self, keys: list[bytes]) -> None:
        """Replace the file's keys atomically (mode 0600)."""
        write_atomic(self.path, b"".join(key + b"\n" for key in keys))
