"""The browser pool: one Chromium per engine, and pages reused across tasks.

A new page costs ~140 ms and a reused one almost nothing, so pages are kept:

- Anonymous tasks share reusable contexts with one page each. Between two tasks the page goes
  back to ``about:blank`` and everything the last task left is wiped: cookies, permissions and,
  for every origin it visited, local and session storage, IndexedDB, caches and service workers.
- Tasks with the same ``session`` share that session's context (its cookies are the point);
  each task gets a page of its own in it.
- ``isolated`` tasks get a fresh context that is closed after the task.

At most ``limit`` pages work at once, server-wide; a task waits for a page. Chromium is
launched on first use and launched again if it crashed or disconnected (``launcher``; the task
that was using it fails with ``browser_crashed``, which the default retry policy retries).

Every connection Chromium makes goes through a local policy proxy (``proxy``): one listener
per context, judged by the context's ``Gate`` (the engine's network policy, narrowed to a
secret's allowed hosts once the context has received it), and one for the browser itself. The
proxy connects to exactly the address it checked, so redirect hops and WebSockets to a refused
address are stopped before anything is sent. Playwright routing checks each request too
(``policing``), for a clear error: a refused subresource is aborted and the page still works; a
refused navigation, redirect hop or WebSocket, or any request a received secret does not allow,
fails the task with the policy's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Network, NetworkPolicy
from multi_task_orchestrator.engine.runners.browser.discovery import BrowserFound
from multi_task_orchestrator.engine.runners.browser.gate import Gate
from multi_task_orchestrator.engine.runners.browser.launcher import LAUNCH_ARGS, Launcher, quietly
from multi_task_orchestrator.engine.runners.browser.policing import Policing
from multi_task_orchestrator.engine.runners.browser.settings import BrowserSettings
from multi_task_orchestrator.engine.runners.browser.slots import ContextOptions, Session, Slot

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = [
    "LAUNCH_ARGS",
    "MAX_IDLE_SESSIONS",
    "RESET_SECONDS",
    "BrowserPool",
    "BrowserSettings",
    "ContextOptions",
    "Session",
    "Slot",
]

MAX_IDLE_SESSIONS = 8  # session contexts kept while no task uses them (~70 MiB each)
RESET_SECONDS = 5.0  # a page that takes longer to wipe (a script that hangs it) is closed
_DEFAULT_OPTIONS = ContextOptions()


class BrowserPool:
    """One engine's Chromium and its reusable pages; counters show the reuse."""

    def __init__(self, settings: BrowserSettings | None = None) -> None:
        self.settings = settings or BrowserSettings()
        self.contexts_created = 0
        self.pages_created = 0
        self.in_use = 0
        self.max_in_use = 0
        self.network = Network()
        self._launcher = Launcher(self.settings, self._policy, self._browser_gone)
        self._policing = Policing(self._policy)
        self._pages = asyncio.Semaphore(self.settings.limit)
        self._idle: list[Slot] = []  # anonymous slots, most recently used last
        self._sessions: dict[str, Session] = {}
        self._closed = False

    @property
    def launches(self) -> int:
        """How many times Chromium was launched."""
        return self._launcher.launches

    @property
    def found(self) -> BrowserFound | None:
        """The browser the last launch found."""
        return self._launcher.found

    # --- lending pages --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def page(
        self,
        network: Network,
        *,
        session: str | None = None,
        storage_state: str | None = None,
        isolated: bool = False,
        options: ContextOptions = _DEFAULT_OPTIONS,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> AsyncIterator[Slot]:
        """Lend a page for one task: the session's, a fresh one (``isolated``) or a pooled one.

        ``storage_state`` (JSON text) fills a session's context when it is created, or when the
        vault holds a newer state and no task is using the old one.
        """
        if self._closed:
            raise TaskError("the browser pool is shut down", "cancelled")
        self.network = network
        if self._pages.locked() and on_wait is not None:
            on_wait(f"browser: all {self.settings.limit} pages busy (ORCHESTRATOR_BROWSER_LIMIT)")
        async with self._pages:
            if on_wait is not None:
                on_wait(None)
            slot = await self._take(session, storage_state, isolated, options)
            self.in_use += 1
            self.max_in_use = max(self.max_in_use, self.in_use)
            reusable = True
            try:
                yield slot
            except BaseException as exc:
                # a failed step leaves the page usable; a cancelled one may be mid-navigation
                reusable = isinstance(exc, Exception)
                raise
            finally:
                self.in_use -= 1
                await self._give_back(slot, reusable=reusable)

    def session_saved(self, slot: Slot, state: str) -> None:
        """The session's state was saved to the vault: the context holds exactly that."""
        if slot.session is not None:
            slot.session.state = state
            slot.session.logins += 1

    async def _take(
        self,
        session_name: str | None,
        storage_state: str | None,
        isolated: bool,
        options: ContextOptions,
    ) -> Slot:
        browser = await self._launcher.browser()
        if isolated or session_name is None:
            if not isolated:
                for index in range(len(self._idle) - 1, -1, -1):
                    if self._idle[index].options == options:
                        return self._idle.pop(index)
            context = await self._new_context(browser, options, storage_state if isolated else None)
            try:
                slot = await self._new_slot(browser, context, options)
            except BaseException:
                await quietly(context.close())
                raise
            slot.isolated = isolated
            return slot
        session = self._sessions.get(session_name)
        if session is not None and session.in_use == 0 and _newer(storage_state, session.state):
            del self._sessions[session_name]  # the vault holds a newer state than the context
            await quietly(session.context.close())
            session = None
        if session is None:
            context = await self._new_context(browser, options, storage_state)
            session = self._sessions[session_name] = Session(session_name, context, storage_state)
        session.in_use += 1
        session.last_used = time.monotonic()
        if session.idle:
            return session.idle.pop()
        try:
            slot = await self._new_slot(browser, session.context, options)
        except BaseException:
            session.in_use -= 1
            raise
        slot.session = session
        return slot

    async def _give_back(self, slot: Slot, *, reusable: bool) -> None:
        """Reset a page for the next task, or close what cannot be reused."""
        session = slot.session
        if session is not None:
            session.in_use -= 1
            session.last_used = time.monotonic()
        alive = reusable and not slot.broken() and slot.generation == self._launcher.generation
        if alive and not slot.isolated and not self._closed:
            try:
                async with asyncio.timeout(RESET_SECONDS):
                    await self._reset(slot)
            except Exception:  # a page that cannot be reset (in time) is not reused
                alive = False
            else:
                if session is None:
                    self._idle.append(slot)
                    await self._trim_idle()
                elif self._sessions.get(session.name) is session:
                    session.idle.append(slot)
                    await self._trim_sessions()
                else:
                    await quietly(slot.page.close())
                return
        self._policing.forget(slot)
        if session is None or slot.isolated:
            await quietly(slot.context.close())
        else:  # the session's context stays: other tasks may be using it
            await quietly(slot.page.close())

    async def _reset(self, slot: Slot) -> None:
        slot.refusal = None
        slot.typed_secret = False
        for page in slot.context.pages:
            if page is not slot.page and (
                slot.session is None or self._policing.opened_by(page, slot)
            ):
                self._policing.drop(page)
                await page.close()
        await slot.page.goto("about:blank")
        if slot.session is not None:
            return  # a session keeps its cookies and storage: that is what it is for
        if slot.origins:
            if slot.cdp is None:
                slot.cdp = await slot.context.new_cdp_session(slot.page)
            for origin in slot.origins:
                await slot.cdp.send(
                    "Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"}
                )
            slot.origins.clear()
        await slot.context.clear_cookies()
        await slot.context.clear_permissions()
        if slot.gate is not None:
            slot.gate.wipe()

    async def _trim_idle(self) -> None:
        while len(self._idle) > self.settings.limit:
            oldest = self._idle.pop(0)
            self._policing.forget(oldest)
            await quietly(oldest.context.close())

    async def _trim_sessions(self) -> None:
        unused = [s for s in self._sessions.values() if s.in_use == 0]
        unused.sort(key=lambda s: s.last_used)
        for session in unused[: max(0, len(unused) - MAX_IDLE_SESSIONS)]:
            del self._sessions[session.name]
            for slot in session.idle:
                self._policing.forget(slot)
            await quietly(session.context.close())

    # --- contexts and pages ---------------------------------------------------------------

    async def _new_context(
        self, browser: Browser, options: ContextOptions, storage_state: str | None
    ) -> BrowserContext:
        kwargs = options.kwargs()
        if storage_state:
            try:
                kwargs["storage_state"] = json.loads(storage_state)
            except json.JSONDecodeError:
                raise TaskError(
                    "the stored session is not a Playwright storage state (JSON with cookies "
                    "and origins); store the output of context.storage_state(), or delete it so "
                    "the login steps make a new one",
                    "config",
                ) from None
        context = await self._policing.new_context(browser, **kwargs)
        self.contexts_created += 1
        return context

    def _policy(self) -> NetworkPolicy:
        return self.network.policy

    def gate_of(self, context: BrowserContext) -> Gate:
        """The gate judging ``context``'s connections."""
        return self._policing.gate_of(context)

    async def _new_slot(
        self, browser: Browser, context: BrowserContext, options: ContextOptions
    ) -> Slot:
        page = await context.new_page()
        self.pages_created += 1
        slot = Slot(context, page, browser, self._launcher.generation, options)
        slot.gate = self.gate_of(context)
        self._policing.watch(slot)

        def crashed(_: Page) -> None:
            slot.crashed = True

        page.on("crash", crashed)
        return slot

    async def settle(self) -> None:
        """Wait for the checks still running (a refusal they find fails the task)."""
        await self._policing.settle()

    # --- the browser ----------------------------------------------------------------------

    def _browser_gone(self) -> None:
        """Nothing of the browser that went away can be reused."""
        self._idle.clear()
        self._sessions.clear()
        self._policing.clear()

    async def aclose(self) -> None:
        """Close the browser and Playwright's driver; called when the engine stops."""
        self._closed = True
        self._policing.cancel()
        await self._launcher.aclose()


def _newer(vault_state: str | None, held: str | None) -> bool:
    return vault_state is not None and vault_state != held
