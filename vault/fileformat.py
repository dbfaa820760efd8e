"""The vault file on disk: its layout, atomic replacement and the cross-process lock.

Layout of ``vault.db``::

    {"format": "mto-vault", "version": 1, "kdf": {...}, "key_check": "<Fernet token>"}\\n
    <one Fernet token>

The first line is a plaintext JSON header: which key unlocks the file (``kdf``: ``scrypt`` with
its salt and cost for a passphrase, ``none`` for a raw key) and ``key_check``, a token of a known
constant that tells a wrong key from a damaged file. The rest is one Fernet token encrypting the
JSON of every secret (names included) together with the SHA-256 of the header line, so a changed
header is detected too. Fernet's HMAC catches a flipped byte or a truncated file.

Every change is a read-modify-write under an exclusive ``flock`` on ``vault.db.lock``; the new
content goes to a temporary file in the same folder which is flushed, fsynced and renamed over
the old one, and then the folder is fsynced. A reader therefore sees the old file or the new one,
never a mix.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet

from multi_task_orchestrator.engine.atomic import write_atomic as engine_write_atomic
from multi_task_orchestrator.vault.errors import VaultError

FORMAT = "mto-vault"
VERSION = 1
KEY_CHECK = b"mto-vault key check"


@dataclass(frozen=True, slots=True)
class Header:
    """The plaintext first line of the vault file."""

    kdf: dict[str, Any]
    key_check: str

    def to_line(self) -> bytes:
        fields = {
            "format": FORMAT,
            "version": VERSION,
            "kdf": self.kdf,
            "key_check": self.key_check,
        }
        return json.dumps(fields, separators=(",", ":")).encode("ascii") + b"\n"

    @classmethod
    def for_key(cls, kdf: dict[str, Any], fernet: MultiFernet) -> Header:
        return cls(kdf=kdf, key_check=fernet.encrypt(KEY_CHECK).decode("ascii"))

    def key_matches(self, fernet: MultiFernet) -> bool:
        """Whether ``fernet`` holds the key this file was written with."""
        try:
            return fernet.decrypt(self.key_check.encode("ascii")) == KEY_CHECK
        except (InvalidToken, UnicodeEncodeError):
            return False


@dataclass(frozen=True, slots=True)
class VaultFile:
    """A vault file's bytes, split into its header and its encrypted body."""

    header: Header
    header_line: bytes
    body: bytes

    @classmethod
    def parse(cls, data: bytes, path: Path) -> VaultFile:
        """Split ``data``; anything that is not a whole vault file raises a VaultError."""
        if not data.strip():  # never written so: the file was emptied
            raise damaged(path)
        header_line, newline, body = data.partition(b"\n")
        try:
            fields = json.loads(header_line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            fields = None
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            if FORMAT.encode() in header_line:
                raise damaged(path)
            raise VaultError(
                f"{path} is not a vault file, or its header is damaged; restore it from a backup "
                "or move it away. It was left as it is."
            )
        version = fields.get("version")
        if isinstance(version, int) and version > VERSION:
            raise VaultError(
                f"{path} was written by a newer version of the orchestrator (vault format "
                f"{version}); upgrade to read it"
            )
        kdf, key_check = fields.get("kdf"), fields.get("key_check")
        if version != VERSION or not isinstance(kdf, dict) or not isinstance(key_check, str):
            raise damaged(path)
        if not newline or not body.strip():
            raise damaged(path)
        return cls(Header(kdf=kdf, key_check=key_check), header_line + b"\n", body.strip())

    def opens_with(self, fernet: MultiFernet) -> bool:
        """Whether the body's HMAC checks out with ``fernet``."""
        try:
            fernet.decrypt(self.body)
        except InvalidToken:
            return False
        return True

    def decrypt(self, fernet: MultiFernet, path: Path) -> dict[str, Any]:
        """The secrets, after checking the body's HMAC and the header's hash."""
        try:
            content = json.loads(fernet.decrypt(self.body))
        except (InvalidToken, UnicodeDecodeError, json.JSONDecodeError):
            raise damaged(path) from None
        if not isinstance(content, dict) or content.get("header_sha256") != _sha256(
            self.header_line
        ):
            raise damaged(path)
        secrets = content.get("secrets")
        if not isinstance(secrets, dict):
            raise damaged(path)
        return secrets


def encode(header: Header, secrets: dict[str, Any], fernet: MultiFernet) -> bytes:
    """The bytes of a vault file holding ``secrets``, encrypted with ``fernet``'s first key."""
    header_line = header.to_line()
    content = {"header_sha256": _sha256(header_line), "secrets": secrets}
    body = fernet.encrypt(json.dumps(content, separators=(",", ":")).encode("utf-8"))
    return header_line + body + b"\n"


def damaged(path: Path) -> VaultError:
    return VaultError(
        f"the vault file {path} is damaged or was modified (its integrity check failed); "
        "restore it from a backup. It was left as it is."
    )


def read_bytes(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The file's bytes and the stat of what was read, or None when there is no file."""
    try:
        with path.open("rb") as file:
            return file.read(), os.fstat(file.fileno())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VaultError(f"cannot read the vault file {path}: {exc.strerror}") from None


def write_atomic(path: Path, data: bytes) -> os.stat_result:
    """Replace ``path`` with ``data`` (mode 0600) so a crash leaves the old or the new file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise VaultError(f"cannot write {path}: {exc.strerror}") from None
    try:
        written = engine_write_atomic(path, data)
        _fsync_folder(path.parent)
    except OSError as exc:
        raise VaultError(f"cannot write {path}: {exc.strerror}; it was left as it was") from None
    return written


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600) across processes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise VaultError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
