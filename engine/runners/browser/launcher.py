"""Launching the pool's Chromium: found as the settings say, started behind the browser-wide
policy proxy with flags that keep it quiet and every connection proxied, and started again
(with Playwright's driver, if that died too) after a crash or a disconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import NetworkPolicy
from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserFound,
    default_candidates,
    find_browser,
)
from multi_task_orchestrator.engine.runners.browser.gate import Gate
from multi_task_orchestrator.engine.runners.browser.proxy import PolicyProxy
from multi_task_orchestrator.engine.runners.browser.settings import BrowserSettings

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

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


class Launcher:
    """Starts Playwright and Chromium on first use, and again when the browser is gone.

    ``generation`` changes whenever the browser does: a page of an older one is not reused.
    ``on_gone`` is called when the browser went away (a crash, a disconnect, closing).
    """

    def __init__(
        self,
        settings: BrowserSettings,
        policy: Callable[[], NetworkPolicy],
        on_gone: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.launches = 0
        self.generation = 0
        self.found: BrowserFound | None = None
        self._policy = policy
        self._on_gone = on_gone
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()
        self._browser_proxy: PolicyProxy | None = None

    async def browser(self) -> Browser:
        """The running browser, launched (again) when there is none."""
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                self._forget()
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
            await quietly(playwright.stop())
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
        self.generation += 1
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
            self._forget()

    def _forget(self) -> None:
        """The browser is gone: nothing of it can be reused."""
        self._browser = None
        self.generation += 1
        self._on_gone()

    async def aclose(self) -> None:
        """Close the browser, the browser-wide proxy and Playwright's driver."""
        browser, self._browser = self._browser, None
        if browser is not None:
            await quietly(browser.close())
        self._forget()
        if self._browser_proxy is not None:
            self._browser_proxy.close()
            self._browser_proxy = None
        if self._playwright is not None:
            await quietly(self._playwright.stop())
            self._playwright = None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


async def quietly(closing: Any) -> None:
    """Await a close that may fail because the thing is already gone."""
    with contextlib.suppress(Exception):
        await closing
