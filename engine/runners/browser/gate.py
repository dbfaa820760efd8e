"""What one browser context may reach: the network policy, narrowed to a secret's allowed hosts
once the context has received that secret.

A secret typed into a page (``fill``, ``type``, ``select``) or loaded as a session's storage
state is in the context from then on: a script of any page there can read it. So from the
moment a context receives a secret until it is wiped (the pool wipes anonymous contexts between
tasks; a session's context is never wiped), every connection it makes - navigations,
subresources, redirect hops, fetches, WebSockets - must go to a host that secret is allowed
for. The secret's resolver is asked (``resolve(name, host=...)``), so the vault's own host
rules decide; answers are cached per host. The secrets are checked before the name is
resolved: a host name built from a secret must not reach a DNS server either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Address, NetworkPolicy, PolicyError
from multi_task_orchestrator.engine.secrets import SecretResolver


class SecretBound(PolicyError):
    """A connection refused because the context holds a secret not allowed for its host."""


@dataclass(eq=False, slots=True)
class Gate:
    """The judge of one context's connections (its proxy and its Playwright routing)."""

    policy: Callable[[], NetworkPolicy]
    secrets: dict[str, SecretResolver] = field(default_factory=dict)
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)

    def bind(self, names: Iterable[str], resolver: SecretResolver) -> None:
        """The context is about to receive these secrets."""
        for name in names:
            self.secrets.setdefault(name, resolver)

    def wipe(self) -> None:
        """The context was wiped: nothing in it holds a secret any more."""
        self.secrets.clear()
        self._verdicts.clear()

    async def check(self, url: str) -> str:
        """The URL's host if this context may request it; PolicyError if not."""
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        if host:
            await self._within_secrets(host, url)
        host, _ = await self.policy().admit(url)
        return host

    async def admit(self, host: str, port: int, shown: str) -> list[Address]:
        """The checked addresses to connect to; PolicyError if refused (the proxy's judge)."""
        await self._within_secrets(host.lower().rstrip(".").strip("[]"), shown)
        return await self.policy().addresses(host, port, shown=shown)

    async def _within_secrets(self, host: str, shown: str) -> None:
        for name, resolver in list(self.secrets.items()):
            verdict = self._verdicts.get((name, host))
            if verdict is None:
                try:
                    await resolver.resolve(name, host=host)
                    verdict = True
                except TaskError:
                    verdict = False
                self._verdicts[(name, host)] = verdict
            if not verdict:
                raise SecretBound(
                    f"refused {shown}: this browser context has received secret '{name}', "
                    f"which is not allowed for {host}; until the context is wiped it may only "
                    "reach the hosts that secret is allowed for"
                )
