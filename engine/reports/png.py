"""Turning an SVG into a PNG with the Chromium the browser runner already drives.

No plotting library: the page gets the SVG as its content (no network: every request is
refused), and the screenshot of the ``<svg>`` element is the picture. Raises
``BrowserNotFound`` (its message says how to get a browser) when there is none, and
``RasterizeError`` when the browser cannot draw it.
"""

from __future__ import annotations

import re

from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserNotFound,
    default_candidates,
    find_browser,
)
from multi_task_orchestrator.engine.runners.browser.pool import LAUNCH_ARGS, BrowserSettings

# Keep the picture sharp but bounded: twice the pixels for small pictures, fewer for tall ones.
MAX_PIXEL_HEIGHT = 4000

__all__ = ["BrowserNotFound", "RasterizeError", "svg_to_png"]


_SIZE = re.compile(r'<svg\b[^>]*?\swidth="(\d+(?:\.\d+)?)"[^>]*?\sheight="(\d+(?:\.\d+)?)"')


class RasterizeError(Exception):
    """The browser was found but could not draw the picture."""


def svg_size(svg: str) -> tuple[int, int]:
    """The ``width`` and ``height`` set on the ``<svg>`` root, in whole CSS pixels."""
    match = _SIZE.search(svg)
    if match is None:
        raise RasterizeError("the SVG has no width and height on its root element")
    return round(float(match[1])), round(float(match[2]))


async def svg_to_png(svg: str, settings: BrowserSettings | None = None) -> bytes:
    """The PNG of ``svg`` at the size its root sets, drawn by headless Chromium."""
    from playwright.async_api import Error, async_playwright  # imported on use: ~0.1 s

    width, height = svg_size(svg)
    settings = settings or BrowserSettings()
    scale = max(1.0, min(2.0, MAX_PIXEL_HEIGHT / max(height, 1)))
    # a configured path is checked before Playwright's driver starts (a second saved)
    found = find_browser(settings.path, ()) if settings.path is not None else None
    try:
        async with async_playwright() as playwright:
            if found is None:
                candidates = settings.candidates
                if candidates is None:
                    candidates = tuple(default_candidates(playwright.chromium.executable_path))
                found = find_browser(None, candidates)
            browser = await playwright.chromium.launch(
                executable_path=str(found.path), args=list(LAUNCH_ARGS), headless=True
            )
            try:
                page = await browser.new_page(
                    viewport={"width": width, "height": height}, device_scale_factor=scale
                )
                await page.route("**/*", lambda route: route.abort())
                await page.set_content(
                    "<!doctype html><html><body style='margin:0;background:#fff'>"
                    f"{svg}</body></html>"
                )
                return await page.locator("svg").first.screenshot(type="png")
            finally:
                await browser.close()
    except Error as exc:
        lines = (exc.message or str(exc)).strip().splitlines() or ["unknown error"]
        raise RasterizeError(f"the browser could not draw the timeline: {lines[0]}") from None
