"""What the pool lends: a ``Slot`` (one page and its context, for one task at a time), a named
``Session``'s shared context, and the ``ContextOptions`` a context is made with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.browser.gate import Gate

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, CDPSession, Page


@dataclass(frozen=True, slots=True)
class ContextOptions:
    """Options fixed when a context is created; contexts are reused only for equal options."""

    viewport: tuple[int, int] | None = None
    user_agent: str | None = None

    def kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.viewport is not None:
            options["viewport"] = {"width": self.viewport[0], "height": self.viewport[1]}
        if self.user_agent is not None:
            options["user_agent"] = self.user_agent
        return options


@dataclass(eq=False, slots=True)
class Session:
    """A named session's context, shared by the tasks that name it."""

    name: str
    context: BrowserContext
    state: str | None  # the storage state (JSON) the context holds, as last loaded or saved
    idle: list[Slot] = field(default_factory=list)
    in_use: int = 0
    last_used: float = 0.0
    login_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    logins: int = 0


@dataclass(eq=False, slots=True)
class Slot:
    """One page (and its context) lent to one task at a time."""

    context: BrowserContext
    page: Page
    browser: Browser
    generation: int
    options: ContextOptions
    session: Session | None = None
    isolated: bool = False
    origins: set[str] = field(default_factory=set)  # visited, so their storage can be wiped
    refusal: TaskError | None = None  # a request the policy refused, to fail the task with
    crashed: bool = False
    cdp: CDPSession | None = None
    gate: Gate | None = None  # the context's
    typed_secret: bool = False  # a step typed a secret into this page since it was reset

    def broken(self) -> bool:
        """Whether the page can no longer be used (it or the whole browser went away)."""
        return self.crashed or self.page.is_closed() or not self.browser.is_connected()

    def raise_refusal(self) -> None:
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
