"""A real, in-memory ``SecretResolver`` for tests: secrets bound to hosts, use recorded."""

from __future__ import annotations

from collections.abc import Collection

from multi_task_orchestrator.engine.errors import TaskError


class MemorySecrets:
    """Secrets held as ``{name: (value, allowed hosts)}``; masks every value in ``redact``.

    ``requested`` records every call to ``resolve``, ``resolved`` the ones it answered, and
    ``stored`` the names saved through ``store`` (e.g. refreshed browser sessions).
    """

    def __init__(self, secrets: dict[str, tuple[str, Collection[str]]] | None = None) -> None:
        self.secrets = {
            name: (value, list(hosts)) for name, (value, hosts) in (secrets or {}).items()
        }
        self.requested: list[tuple[str, str | None]] = []
        self.resolved: list[tuple[str, str | None]] = []
        self.stored: list[str] = []

    async def resolve(self, name: str, *, host: str | None) -> str:
        self.requested.append((name, host))
        if name not in self.secrets:
            raise TaskError(f"no secret '{name}'", "config")
        value, hosts = self.secrets[name]
        if host not in hosts:
            allowed = ", ".join(sorted(hosts))
            raise TaskError(
                f"secret '{name}' may not be sent to {host}; allowed hosts: {allowed}", "config"
            )
        self.resolved.append((name, host))
        return value

    def names(self) -> Collection[str]:
        return set(self.secrets)

    def redact(self, text: str) -> str:
        for value, _ in self.secrets.values():
            text = text.replace(value, "***")
        return text

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        self.secrets[name] = (value, list(allowed_hosts))
        self.stored.append(name)
