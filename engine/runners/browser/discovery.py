"""Finding the Chromium executable the browser runner drives.

In order: the configured path (``ORCHESTRATOR_BROWSER_PATH``, handed in by the server), then a
Chromium installed by ``playwright install chromium``, then Debian's package
(``/usr/lib/chromium/chromium``; ``/usr/bin/chromium`` is a shell wrapper), then ``chromium`` or
``chromium-browser`` on PATH. A configured path that does not exist is an error rather than a
reason to look elsewhere, so a typo in the setting never goes unnoticed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from multi_task_orchestrator.engine.errors import TaskError

CONFIGURED = "ORCHESTRATOR_BROWSER_PATH"
PLAYWRIGHT = "Playwright's Chromium"
SYSTEM_PACKAGE = "the system package"
ON_PATH = "PATH"

DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")
PATH_NAMES = ("chromium", "chromium-browser")
INSTALL = (
    "run 'playwright install chromium' (downloads it) or install the system package "
    "('apt-get install chromium' on Debian and Ubuntu)"
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A place a browser may be: where the path came from, and the path."""

    source: str
    path: Path


@dataclass(frozen=True, slots=True)
class BrowserFound:
    """The browser to launch, how it was found, and every place that was looked at."""

    path: Path
    source: str
    looked_at: tuple[Candidate, ...] = field(default=())

    def describe(self) -> str:
        return f"{self.path} (from {self.source})"


class BrowserNotFound(TaskError):
    """No usable browser; the message names what was tried and both ways to get one."""

    def __init__(self, message: str, looked_at: Sequence[Candidate] = ()) -> None:
        super().__init__(message, "config")
        self.looked_at = tuple(looked_at)


def default_candidates(playwright_chromium: str | Path | None) -> list[Candidate]:
    """Where to look when no path is configured, in order of preference.

    ``playwright_chromium`` is the path Playwright would use (``playwright.chromium
    .executable_path``); it counts only if the file exists.
    """
    candidates = []
    if playwright_chromium:
        candidates.append(Candidate(PLAYWRIGHT, Path(playwright_chromium)))
    candidates.append(Candidate(SYSTEM_PACKAGE, DEBIAN_CHROMIUM))
    for name in PATH_NAMES:
        found = shutil.which(name)
        candidates.append(Candidate(ON_PATH, Path(found) if found else Path(name)))
    return candidates


def find_browser(configured: Path | None, candidates: Sequence[Candidate]) -> BrowserFound:
    """The browser to use: ``configured`` if given (it must exist), else the first candidate
    that is an executable file. Raises BrowserNotFound naming the fixes."""
    if configured is not None:
        configured = configured.expanduser().absolute()
        if _executable(configured):
            return BrowserFound(configured, CONFIGURED, (Candidate(CONFIGURED, configured),))
        problem = "does not exist" if not configured.exists() else "is not an executable file"
        # the fix first and the path last, so a display that shortens it keeps the fix
        raise BrowserNotFound(
            f"the browser set in {CONFIGURED} {problem}: correct the setting, or unset it to use "
            f"a browser found automatically (to get one, {INSTALL}); it is set to {configured}",
            [Candidate(CONFIGURED, configured)],
        )
    for candidate in candidates:
        if _executable(candidate.path):
            return BrowserFound(candidate.path, candidate.source, tuple(candidates))
    looked = ", ".join(str(candidate.path) for candidate in candidates) or "nowhere"
    raise BrowserNotFound(
        f"no Chromium browser found: {INSTALL}, or set {CONFIGURED} to a Chromium executable "
        f"(looked at: {looked})",
        list(candidates),
    )


async def locate_browser(configured: Path | None) -> BrowserFound:
    """Like ``find_browser`` with the default candidates, asking Playwright where its own
    Chromium would be (for ``orchestrator doctor``; starts Playwright's driver briefly)."""
    if configured is not None:
        return find_browser(configured, ())
    return find_browser(None, default_candidates(await playwright_chromium_path()))


async def playwright_chromium_path() -> str | None:
    """Where ``playwright install chromium`` puts Chromium, or None if Playwright cannot say."""
    from playwright.async_api import Error, async_playwright  # ~0.1 s to import: on use only

    try:
        async with async_playwright() as playwright:
            return playwright.chromium.executable_path
    except Error:
        return None


def _executable(path: Path) -> bool:
    # a relative path is a PATH name that was not found, never a file in the current folder
    return path.is_absolute() and path.is_file() and os.access(path, os.X_OK)
