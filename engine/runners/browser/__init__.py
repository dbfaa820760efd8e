"""The ``browser_automation`` task type: Playwright driving one pooled Chromium per engine.

- ``discovery`` finds the browser (the configured path, Playwright's Chromium, Debian's
  package, PATH) and says how to get one when none is found.
- ``pool`` launches it lazily, lends reusable pages under a server-wide limit, relaunches it
  after a crash and applies the network policy to every request.
- ``steps`` models the steps (goto, click, fill, extract, screenshot, ...) and carries them out.
- ``runner`` is the task's config and run: the seed's shorthand, sessions and logins, output.
- ``settings`` is the runner's settings model (``BrowserSettings``: the browser's path, the
  page limit), which the engine hands the runner
  (``Engine(runner_settings={"browser_automation": BrowserSettings(...)})``).
"""

from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserFound,
    BrowserNotFound,
    locate_browser,
)
from multi_task_orchestrator.engine.runners.browser.pool import BrowserPool
from multi_task_orchestrator.engine.runners.browser.runner import BrowserConfig, BrowserRunner
from multi_task_orchestrator.engine.runners.browser.settings import BrowserSettings

RUNNER = BrowserRunner

__all__ = [
    "RUNNER",
    "BrowserConfig",
    "BrowserFound",
    "BrowserNotFound",
    "BrowserPool",
    "BrowserRunner",
    "BrowserSettings",
    "locate_browser",
]
