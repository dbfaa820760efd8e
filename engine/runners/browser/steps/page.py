"""What every step needs of its task's page: the timeouts, the first match of a selector,
secrets revealed for the page's host (and the page then bound to their hosts), what is read
redacted; and where the results of the steps go (``Outcome``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import secret_names
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.secrets import redact_data

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from multi_task_orchestrator.engine.runners.browser.slots import Slot


@dataclass(slots=True)
class Outcome:
    """What a task's steps produced."""

    results: list[tuple[str | None, int, Any]] = field(default_factory=list)  # (as, step, value)
    artifacts: list[str] = field(default_factory=list)

    def data(self) -> Any:
        """The last result; or, when any result is named, an object of all of them (unnamed
        ones keyed ``step_N``)."""
        if not self.results:
            return None
        if all(name is None for name, _, _ in self.results):
            return self.results[-1][2]
        return {name or f"step_{number}": value for name, number, value in self.results}


class StepPage:
    """One task's page, and the helpers the families of steps share."""

    def __init__(
        self,
        slot: Slot,
        ctx: RunContext,
        *,
        step_timeout: float,
        navigation_timeout: float,
        outcome: Outcome,
    ) -> None:
        self.slot = slot
        self.page: Page = slot.page
        self.ctx = ctx
        self.step_timeout = step_timeout
        self.navigation_timeout = navigation_timeout
        self.outcome = outcome

    def _ms(self, seconds: float) -> float:
        return seconds * 1000

    def _first(self, selector: str) -> Locator:
        return self.page.locator(selector).first

    async def _reveal(self, value: str, host: str | None = None) -> str:
        """``value`` with its secrets revealed for ``host`` (default: the current page's)."""
        if "${" not in value:
            return value
        return await self.ctx.reveal(value, host=host if host else host_of(self.page.url))

    async def _typed_into_page(self, value: str) -> str:
        """Reveal a value about to be typed into the current page, and make sure the page is
        still the one it was revealed for when the value goes in."""
        host = host_of(self.page.url)
        revealed = await self._reveal(value, host)
        if revealed != value:
            self._received(value)
        if revealed != value and host_of(self.page.url) != host:
            raise TaskError(
                f"the page moved from {host} to {self.page.url} while a secret was being "
                "prepared for it; the secret was not typed",
                "error",
            )
        return revealed

    def _received(self, value: str) -> None:
        """The page is about to receive the secrets named in ``value``: from now on the context
        may reach only their allowed hosts, and this task's evaluate steps are refused."""
        self.slot.typed_secret = True
        if self.slot.gate is not None:
            self.slot.gate.bind(secret_names(value), self.ctx.secrets)

    def _redacted(self, value: Any) -> Any:
        """Data read from the page with every secret masked, before anything names or
        transforms it."""
        return redact_data(value, self.ctx.secrets.redact)


def url_matches(url: str, pattern: str) -> bool:
    """Whether ``url`` matches a glob over the whole URL (``**`` any text, ``*`` any text but
    ``/``), as Playwright's ``wait_for_url`` reads it."""
    parts = re.split(r"(\*\*|\*)", pattern)
    translated = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.fullmatch(translated, url) is not None


def host_of(url: str) -> str | None:
    """The host of an http(s) URL, or None (about:blank, data:...)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    return (parts.hostname or "").lower() or None
