"""The ``browser_automation`` runner's settings: which Chromium, and how many pages at once.

``path`` and ``limit`` are settings (``ORCHESTRATOR_BROWSER_PATH``, ``ORCHESTRATOR_BROWSER_LIMIT``);
``candidates`` and ``headless`` are set in code only (tests, the timeline picture): they are
not read from the environment and not sent to Dask workers.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from multi_task_orchestrator.engine.runners.browser.discovery import Candidate

DEFAULT_LIMIT = 4


class BrowserSettings(BaseModel):
    """What the browser runner (its pool) and the timeline picture launch, and how many pages.

    ``candidates`` replaces the places searched when no path is set (None: Playwright's
    Chromium, Debian's package, PATH).
    """

    model_config = ConfigDict(frozen=True)

    path: Path | None = Field(
        None,
        description="the Chromium executable to drive; by default Playwright's Chromium, else "
        "`/usr/lib/chromium/chromium`, else `chromium` on `PATH`",
        json_schema_extra={
            "env": "ORCHESTRATOR_BROWSER_PATH",
            "shown_default": "found automatically",
        },
    )
    limit: int = Field(
        DEFAULT_LIMIT,
        ge=1,
        le=256,
        description="browser pages working at once, server-wide",
        json_schema_extra={"env": "ORCHESTRATOR_BROWSER_LIMIT"},
    )
    candidates: tuple[Candidate, ...] | None = Field(None, exclude=True)
    headless: bool = Field(True, exclude=True)
