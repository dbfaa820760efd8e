"""One stored secret: its record in the file, what may be shown of it (``SecretInfo``), and the
checks a new name and value must pass."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from multi_task_orchestrator.engine import iso
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.vault.errors import VaultError

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
MAX_VALUE_BYTES = 64 * 1024
MAX_DESCRIPTION_CHARS = 1000


class SecretInfo(BaseModel):
    """What may be shown about a secret: everything but its value."""

    name: str = Field(description="used in documents as ${vault.NAME}")
    description: str | None = None
    allowed_hosts: list[str] = Field(description="the hosts it may be sent to; * means any host")
    created_at: str = Field(description="ISO 8601, UTC, e.g. 2026-11-24T09:15:02.000Z")
    updated_at: str = Field(description="ISO 8601, UTC, e.g. 2026-11-24T09:15:02.000Z")
    last_used_at: str | None = Field(None, description="when a task last used it (ISO 8601, UTC)")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret as the vault keeps it (its name is its key in the vault)."""

    value: str
    allowed_hosts: list[str]
    description: str | None
    created_at: str
    updated_at: str
    last_used_at: str | None = None

    def info(self, name: str) -> SecretInfo:
        return SecretInfo(
            name=name,
            description=self.description,
            allowed_hosts=list(self.allowed_hosts),
            created_at=shown(self.created_at),
            updated_at=shown(self.updated_at),
            last_used_at=shown(self.last_used_at) if self.last_used_at else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "allowed_hosts": self.allowed_hosts,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_used_at": self.last_used_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Secret:
        return cls(
            value=data["value"],
            allowed_hosts=list(data["allowed_hosts"]),
            description=data.get("description"),
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            last_used_at=data.get("last_used_at"),
        )


def problems(name: str, value: str) -> list[str]:
    """What is wrong with storing ``value`` as ``name``; empty when nothing is."""
    found: list[str] = []
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:60]
        found.append(
            f"secret name {shown} is not allowed: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_' (e.g. API_TOKEN)"
        )
    if not isinstance(value, str) or not value:
        found.append(f"secret {name!r} has an empty value; give the value to store")
    elif len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        size = len(value.encode("utf-8"))
        found.append(
            f"secret {name!r} is {size:,} bytes; a value may be at most 64 KiB "
            f"({MAX_VALUE_BYTES:,} bytes)"
        )
    return found


def description_problem(description: str | None) -> str | None:
    """What is wrong with a secret's description; None when nothing is."""
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        return (
            f"a secret's description is {len(description):,} characters; it may be at most "
            f"{MAX_DESCRIPTION_CHARS:,}: say in a sentence what the secret is for"
        )
    return None


def unknown(name: str, secrets: Iterable[str]) -> VaultError:
    """The error for a secret ``name`` that is not among ``secrets``, with a suggestion."""
    names = list(secrets)
    hint = did_you_mean(name, names)
    known = (
        f"; {hint}"
        if hint
        else ("; the vault is empty" if not names else f"; stored secrets: {_some(names)}")
    )
    return VaultError(f"no secret named '{name}' in the vault{known}")


def now() -> str:
    """The time now as the vault writes it (ISO 8601, UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def shown(stamp: str) -> str:
    """A time from the vault file in the form users see every time in (``iso``); the file keeps
    its own form, so files written before read the same."""
    try:
        return iso(datetime.fromisoformat(stamp).timestamp()) or stamp
    except ValueError:
        return stamp


def _some(names: Any, limit: int = 10) -> str:
    shown = sorted(names)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more
