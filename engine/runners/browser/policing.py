"""The network policy inside the browser: each context's ``Gate`` and policy proxy, and the
checks that turn a refused request into a clear error for the task of its page.

Every connection a context makes goes through its own policy proxy, judged by its gate (the
engine's network policy, narrowed to a secret's allowed hosts once the context has received
it). Playwright routing checks each request too, for a clear error: a refused subresource is
aborted and the page still works; a refused navigation, redirect hop or WebSocket, or any
request a received secret does not allow, is noted on the page's ``Slot`` (``refusal``), which
fails the task with the policy's message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import NetworkPolicy
from multi_task_orchestrator.engine.runners.browser.gate import Gate, SecretBound
from multi_task_orchestrator.engine.runners.browser.proxy import PolicyProxy
from multi_task_orchestrator.engine.runners.browser.slots import Slot

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Request, Route, WebSocket

PASSTHROUGH_SCHEMES = frozenset({"data", "blob", "about"})


class Policing:
    """The gates and proxies of one pool's contexts, and which task's page sent a request."""

    def __init__(self, policy: Callable[[], NetworkPolicy]) -> None:
        self._policy = policy
        self._slots_by_page: dict[Page, Slot] = {}
        self._checks: set[asyncio.Task[None]] = set()
        self._gates: dict[BrowserContext, tuple[Gate, PolicyProxy]] = {}

    # --- contexts and pages ---------------------------------------------------------------

    async def new_context(self, browser: Browser, **kwargs: Any) -> BrowserContext:
        """A context whose every connection its own gate judges, behind its own proxy."""
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
        await context.route("**/*", self._route)
        context.on("request", self._on_request)
        return context

    def _context_closed(self, context: BrowserContext) -> None:
        entry = self._gates.pop(context, None)
        if entry is not None:
            entry[1].close()

    def gate_of(self, context: BrowserContext) -> Gate:
        """The gate judging ``context``'s connections."""
        return self._gates[context][0]

    def watch(self, slot: Slot) -> None:
        """Judge the requests of the slot's page, of the popups it opens and of their
        WebSockets as the slot's."""
        self._slots_by_page[slot.page] = slot

        def popup(opened: Page) -> None:
            self._slots_by_page.setdefault(opened, slot)
            opened.on("websocket", lambda socket: self._on_websocket(socket, slot))

        slot.page.on("popup", popup)
        slot.page.on("websocket", lambda socket: self._on_websocket(socket, slot))

    def opened_by(self, page: Page, slot: Slot) -> bool:
        """Whether ``page`` is a popup the slot's page opened."""
        opener = self._slots_by_page.get(page)
        return opener is slot

    def drop(self, page: Page) -> None:
        """Forget a page (a popup that is being closed)."""
        self._slots_by_page.pop(page, None)

    def forget(self, slot: Slot) -> None:
        """Drop the slot's page and the popups it opened from the request-to-slot map."""
        for page in [page for page, owner in self._slots_by_page.items() if owner is slot]:
            del self._slots_by_page[page]

    def clear(self) -> None:
        """The browser is gone: forget every page, close every context's proxy."""
        self._slots_by_page.clear()
        for _, proxy in self._gates.values():
            proxy.close()
        self._gates.clear()

    # --- the checks -----------------------------------------------------------------------

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
                await (gate.check(url) if gate is not None else self._policy().check(url))
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
            await (gate.check(request.url) if gate else self._policy().check(request.url))
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

    def cancel(self) -> None:
        """Stop the checks still running (the pool is closing)."""
        for check in list(self._checks):
            check.cancel()


def _is_main_navigation(request: Request) -> bool:
    from playwright.async_api import Error as PlaywrightError

    try:
        return request.is_navigation_request() and request.frame.parent_frame is None
    except PlaywrightError:
        return False
