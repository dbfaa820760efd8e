"""The ``browser_automation`` task type: Playwright driving one pooled Chromium per engine.

- ``discovery`` finds the browser (the configured path, Playwright's Chromium, Debian's
  package, PATH) and says how to get one when none is found.
- ``pool`` lends reusable pages (``slots``) under a server-wide limit; ``launcher`` starts the
  browser lazily and again after a crash; ``policing`` applies the network policy to every
  request, with each context's ``gate`` and policy ``proxy``.
- ``steps`` models the steps (goto, click, fill, extract, screenshot, ...) and carries them out.
- ``config`` is the task's config (the seed's shorthand, steps, sessions and logins);
  ``runner`` is one task's run: sessions, logging in again, the output.
- ``settings`` is the runner's settings model (``BrowserSettings``: the browser's path, the
  page limit), which the engine hands the runner
  (``Engine(runner_settings={"browser_automation": BrowserSettings(...)})``).
"""

from multi_task_orchestrator.engine.runners.browser.config import BrowserConfig
from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserFound,
    BrowserNotFound,
    locate_browser,
)
from multi_task_orchestrator.engine.runners.browser.pool import BrowserPool
from multi_task_orchestrator.engine.runners.browser.runner import BrowserRunner
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
