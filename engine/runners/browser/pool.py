"""The browser pool: one Chromium per engine, and pages reused across tasks.

A new page costs ~140 ms and a reused one almost nothing, so pages are kept:

- Anonymous tasks share reusable contexts with one page each. Between two tasks the page goes
  back to ``about:blank`` and everything the last task left is wiped: cookies, permissions and,
  for every origin it visited, local and session storage, IndexedDB, caches and service workers.
- Tasks with the same ``session`` share that session's context (its cookies are the point);
  each task gets a page of its own in it.
- ``isolated`` tasks get a fresh context that is closed after the task.

At most ``limit`` pages work at once, server-wide; a task waits for a page. Chromium is
launched on first use and launched again if it crashed or disconnected (the task that was
using it fails with ``browser_crashed``, which the default retry policy retries).

Every connection Chromium makes goes through a local policy proxy (``proxy``): one listener
per context, judged by the context's ``Gate`` (the engine's network policy, narrowed to a
secret's allowed hosts once the context has received it), and one for the browser itself. The
proxy connects to exactly the address it checked, so redirect hops and WebSockets to a refused
address are stopped before anything is sent. Playwright routing checks each request too, for a
clear error: a refused subresource is aborted and the page still works; a refused navigation,
redirect hop or WebSocket, or any request a received secret does not allow, fails the task
with the policy's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Network, NetworkPolicy
from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserFound,
    default_candidates,
    find_browser,
)
from multi_task_orchestrator.engine.runners.browser.gate import Gate, SecretBound
from multi_task_orchestrator.engine.runners.browser.proxy import PolicyProxy
from multi_task_orchestrator.engine.runners.browser.settings import BrowserSettings

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        CDPSession,
        Page,
        Playwright,
        Request,
        Route,
        WebSocket,
    )

MAX_IDLE_SESSIONS = 8  # session contexts kept while no task uses them (~70 MiB each)
RESET_SECONDS = 5.0  # a page that takes longer to wipe (a script that hangs it) is closed
# Quiet on a closed network: no update checks, component downloads, sync or QUIC probing.
# (Passing --disable-features would replace Playwright's own list, so it is left alone.)
LAUNCH_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--no-default-browser-check",
)
# The pool's browser, behind the policy proxy, also gets these.
PROXIED_ARGS = (
    # WebRTC would send UDP around the proxy (a STUN request to any address): only proxied
    # connections are allowed (the --force-... spelling of this switch has no effect here)
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    # every name is resolved by the policy proxy; Chromium itself resolves none (no DNS
    # prefetch of a name a script built from a secret)
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
PASSTHROUGH_SCHEMES = frozenset({"data", "blob", "about"})


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


class BrowserPool:
    """One engine's Chromium and its reusable pages; counters show the reuse."""

    def __init__(self, settings: BrowserSettings | None = None) -> None:
        self.settings = settings or BrowserSettings()
        self.launches = 0
        self.contexts_created = 0
        self.pages_created = 0
        self.in_use = 0
        self.max_in_use = 0
        self.found: BrowserFound | None = None
        self.network = Network()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._generation = 0
        self._launch_lock = asyncio.Lock()
        self._pages = asyncio.Semaphore(self.settings.limit)
        self._idle: list[Slot] = []  # anonymous slots, most recently used last
        self._sessions: dict[str, Session] = {}
        self._slots_by_page: dict[Page, Slot] = {}
        self._checks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._gates: dict[BrowserContext, tuple[Gate, PolicyProxy]] = {}
        self._browser_proxy: PolicyProxy | None = None

    # --- lending pages --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def page(
        self,
        network: Network,
        *,
        session: str | None = None,
        storage_state: str | None = None,
        isolated: bool = False,
        options: ContextOptions = ContextOptions(),
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
        browser = await self._ensure_browser()
        if isolated or session_name is None:
            if not isolated:
                for index in range(len(self._idle) - 1, -1, -1):
                    if self._idle[index].options == options:
                        return self._idle.pop(index)
            context = await self._new_context(browser, options, storage_state if isolated else None)
            try:
                slot = await self._new_slot(browser, context, options)
            except BaseException:
                await _quietly(context.close())
                raise
            slot.isolated = isolated
            return slot
        session = self._sessions.get(session_name)
        if session is not None and session.in_use == 0 and _newer(storage_state, session.state):
            del self._sessions[session_name]  # the vault holds a newer state than the context
            await _quietly(session.context.close())
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
        alive = reusable and not slot.broken() and slot.generation == self._generation
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
                    await _quietly(slot.page.close())
                return
        self._forget_pages(slot)
        if session is None or slot.isolated:
            await _quietly(slot.context.close())
        else:  # the session's context stays: other tasks may be using it
            await _quietly(slot.page.close())

    async def _reset(self, slot: Slot) -> None:
        slot.refusal = None
        slot.typed_secret = False
        for page in slot.context.pages:
            if page is not slot.page and (slot.session is None or self._opened_by(page, slot)):
                self._slots_by_page.pop(page, None)
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

    def _forget_pages(self, slot: Slot) -> None:
        """Drop the slot's page and the popups it opened from the request-to-slot map."""
        for page in [page for page, owner in self._slots_by_page.items() if owner is slot]:
            del self._slots_by_page[page]

    def _opened_by(self, page: Page, slot: Slot) -> bool:
        opener = self._slots_by_page.get(page)
        return opener is slot

    async def _trim_idle(self) -> None:
        while len(self._idle) > self.settings.limit:
            oldest = self._idle.pop(0)
            self._forget_pages(oldest)
            await _quietly(oldest.context.close())

    async def _trim_sessions(self) -> None:
        unused = [s for s in self._sessions.values() if s.in_use == 0]
        unused.sort(key=lambda s: s.last_used)
        for session in unused[: max(0, len(unused) - MAX_IDLE_SESSIONS)]:
            del self._sessions[session.name]
            for slot in session.idle:
                self._forget_pages(slot)
            await _quietly(session.context.close())

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
        gate = Gate(self._policy)
        proxy = PolicyProxy(gate.admit)
        try:
            context = await browser.new_context(
                proxy={"server": await proxy.start()},
                # a service worker would outlive the task in a session's context and could
                # rewrite the pages a later task types a secret into
                service_workers="block",
                **kwargs,
            )
        except BaseException:
            proxy.close()
            raise
        self._gates[context] = (gate, proxy)
        context.on("close", self._context_closed)
        self.contexts_created += 1
        await context.route("**/*", self._route)
        context.on("request", self._on_request)
        return context

    def _policy(self) -> NetworkPolicy:
        return self.network.policy

    def _context_closed(self, context: BrowserContext) -> None:
        entry = self._gates.pop(context, None)
        if entry is not None:
            entry[1].close()

    def gate_of(self, context: BrowserContext) -> Gate:
        """The gate judging ``context``'s connections."""
        return self._gates[context][0]

    async def _new_slot(
        self, browser: Browser, context: BrowserContext, options: ContextOptions
    ) -> Slot:
        page = await context.new_page()
        self.pages_created += 1
        slot = Slot(context, page, browser, self._generation, options)
        slot.gate = self.gate_of(context)
        self._slots_by_page[page] = slot

        def crashed(_: Page) -> None:
            slot.crashed = True

        def popup(opened: Page) -> None:
            self._slots_by_page.setdefault(opened, slot)
            opened.on("websocket", lambda socket: self._on_websocket(socket, slot))

        page.on("crash", crashed)
        page.on("popup", popup)
        page.on("websocket", lambda socket: self._on_websocket(socket, slot))
        return slot

    # --- the network policy inside the browser --------------------------------------------

    async def _route(self, route: Route, request: Request) -> None:
        from playwright.async_api import Error as PlaywrightError

        url = request.url
        scheme = urlsplit(url).scheme.lower()
        with contextlib.suppress(PlaywrightError):  # the page may close while we decide
            if scheme in PASSTHROUGH_SCHEMES:
                await route.continue_()
                return
            slot = self._slot_of(request)
            try:
                gate = slot.gate if slot is not None else None
                await (gate.check(url) if gate is not None else self.network.policy.check(url))
            except Exception as exc:
                refusal = exc if isinstance(exc, TaskError) else TaskError(f"refused {url}: {exc}")
                if slot is not None and (
                    _is_main_navigation(request) or isinstance(refusal, SecretBound)
                ):
                    slot.refusal = slot.refusal or refusal
                await route.abort("blockedbyclient")
                return
            await route.continue_()

    def _on_request(self, request: Request) -> None:
        """Note the origins of documents (their storage is wiped later); and check redirect
        hops, which bypass ``route``, as they happen."""
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            return
        if request.resource_type == "document":
            slot = self._slot_of(request)
            if slot is not None:
                slot.origins.add(f"{parts.scheme}://{parts.netloc}")
        if request.redirected_from is None:
            return
        check = asyncio.get_running_loop().create_task(self._check_hop(request))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    async def _check_hop(self, request: Request) -> None:
        slot = self._slot_of(request)
        try:
            gate = slot.gate if slot is not None else None
            await (gate.check(request.url) if gate else self.network.policy.check(request.url))
        except TaskError as refusal:
            if slot is None:
                return
            source = request.redirected_from.url if request.redirected_from else "a page"
            slot.refusal = TaskError(
                f"{refusal.message} (reached through a redirect from {source})",
                refusal.error_class,
            )
            if _is_main_navigation(request):  # stop the navigation rather than wait for it
                with contextlib.suppress(Exception):
                    await slot.page.evaluate("window.stop()")

    def _on_websocket(self, socket: WebSocket, slot: Slot) -> None:
        """Report a WebSocket to a refused address (the proxy has refused to connect it)."""
        check = asyncio.get_running_loop().create_task(self._check_socket(socket, slot))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    async def _check_socket(self, socket: WebSocket, slot: Slot) -> None:
        try:
            await (slot.gate or Gate(self._policy)).check(socket.url)
        except TaskError as refusal:
            slot.refusal = slot.refusal or TaskError(
                f"{refusal.message} (a WebSocket the page opened)", refusal.error_class
            )

    async def settle(self) -> None:
        """Wait for the checks still running (a refusal they find fails the task)."""
        if self._checks:
            await asyncio.gather(*list(self._checks), return_exceptions=True)

    def _slot_of(self, request: Request) -> Slot | None:
        from playwright.async_api import Error as PlaywrightError

        try:
            return self._slots_by_page.get(request.frame.page)
        except PlaywrightError:  # a service worker's request has no frame
            return None

    # --- the browser ----------------------------------------------------------------------

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                self._forget_browser()
            self._browser = await self._launch()
            return self._browser

    async def _launch(self) -> Browser:
        from playwright.async_api import Error as PlaywrightError

        settings = self.settings
        if settings.path is not None:  # fail before starting anything
            self.found = find_browser(settings.path, ())
        playwright = await self._start_playwright()
        if settings.path is None:
            candidates = settings.candidates
            if candidates is None:
                candidates = tuple(default_candidates(playwright.chromium.executable_path))
            self.found = find_browser(None, candidates)
        assert self.found is not None
        try:
            browser = await self._launch_with(playwright, self.found)
        except PlaywrightError:  # the driver itself may have died with the browser: restart it
            await _quietly(playwright.stop())
            self._playwright = None
            try:
                browser = await self._launch_with(await self._start_playwright(), self.found)
            except PlaywrightError as exc:
                raise TaskError(
                    f"could not start the browser {self.found.describe()}: "
                    f"{_first_line(exc.message)}",
                    "browser_crashed",
                ) from None
        self.launches += 1
        self._generation += 1
        browser.on("disconnected", self._on_disconnected)
        return browser

    async def _launch_with(self, playwright: Playwright, found: BrowserFound) -> Browser:
        if self._browser_proxy is None:  # for whatever Chromium fetches outside our contexts
            self._browser_proxy = PolicyProxy(Gate(self._policy).admit)
            await self._browser_proxy.start()
        return await playwright.chromium.launch(
            executable_path=str(found.path),
            args=[*LAUNCH_ARGS, *PROXIED_ARGS],
            headless=self.settings.headless,
            proxy={"server": self._browser_proxy.url},
        )

    async def _start_playwright(self) -> Playwright:
        if self._playwright is None:
            from playwright.async_api import async_playwright

            self._playwright = await async_playwright().start()
        return self._playwright

    def _on_disconnected(self, browser: Browser) -> None:
        if browser is self._browser:
            self._forget_browser()

    def _forget_browser(self) -> None:
        """The browser is gone: nothing of it can be reused."""
        self._browser = None
        self._generation += 1
        self._idle.clear()
        self._sessions.clear()
        self._slots_by_page.clear()
        for _, proxy in self._gates.values():
            proxy.close()
        self._gates.clear()

    async def aclose(self) -> None:
        """Close the browser and Playwright's driver; called when the engine stops."""
        self._closed = True
        for check in list(self._checks):
            check.cancel()
        browser, self._browser = self._browser, None
        if browser is not None:
            await _quietly(browser.close())
        self._forget_browser()
        if self._browser_proxy is not None:
            self._browser_proxy.close()
            self._browser_proxy = None
        if self._playwright is not None:
            await _quietly(self._playwright.stop())
            self._playwright = None


def _is_main_navigation(request: Request) -> bool:
    from playwright.async_api import Error as PlaywrightError

    try:
        return request.is_navigation_request() and request.frame.parent_frame is None
    except PlaywrightError:
        return False


def _newer(vault_state: str | None, held: str | None) -> bool:
    return vault_state is not None and vault_state != held


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


async def _quietly(closing: Any) -> None:
    """Await a close that may fail because the thing is already gone."""
    with contextlib.suppress(Exception):
        await closing
