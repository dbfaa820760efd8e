"""The ``browser_automation`` runner: one task's run from page to output (the config is in
``engine.runners.browser.config``).

The seed's shorthand, ``{url, action: extract, selector}``, opens the URL and returns the text
of every element matching the selector. The full form lists ``steps`` (see
``engine.runners.browser.steps``); ``url``, when given, is opened before them.

Output: ``{url, title, data, artifacts}`` - the page's final URL and title, the last result of
an ``extract`` or ``evaluate`` step (or an object of the results named with ``as``), and the
names of the screenshots and PDFs saved in the run's ``artifacts`` folder.

Sessions and logins: ``session: NAME`` keeps the task's cookies and storage in a browser
context shared by every task naming that session, first loaded from the vault's secret ``NAME``
(a Playwright storage state, revealed for the host of the task's first URL). With
``logged_in_when`` (a selector that is on the page, and/or a URL glob the page is at) the runner
checks, after the first navigation, that the session is still logged in. If it is not - an
expired session - it runs the ``login`` steps on the same page, saves the new storage state to
the vault as ``NAME`` (allowed for that host) and runs the task's steps again, once, within the
same attempt: the log says "session expired: logged in again". So a task succeeds after one
re-login without needing a ``retry:`` policy. If the check still fails after logging in, the
attempt fails with ``session_expired`` (retried if the task's ``retry.on`` lists it, as the
default policy does), naming the check, so wrong login steps do not loop.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.browser.config import BrowserConfig, LoggedInWhen
from multi_task_orchestrator.engine.runners.browser.discovery import (
    BrowserNotFound,
    default_candidates,
    find_browser,
    locate_browser,
)
from multi_task_orchestrator.engine.runners.browser.pool import BrowserPool
from multi_task_orchestrator.engine.runners.browser.settings import BrowserSettings
from multi_task_orchestrator.engine.runners.browser.slots import ContextOptions, Slot
from multi_task_orchestrator.engine.runners.browser.steps import (
    Outcome,
    StepRunner,
    host_of,
    url_matches,
)


class BrowserRunner(Runner[BrowserConfig]):
    """Runs browser tasks on this engine's pooled Chromium."""

    type_name: ClassVar[str] = "browser_automation"
    aliases: ClassVar[tuple[str, ...]] = ("browser",)
    listing_rank: ClassVar[int] = 20
    config_model: ClassVar[type[BrowserConfig]] = BrowserConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "steps", "login"})
    summary: ClassVar[str] = (
        "Drives a headless Chromium: opens pages, clicks, fills forms (secrets from the vault, "
        "typed only into hosts they allow), extracts text, attributes or fields (with "
        "pagination), takes screenshots and PDFs; sessions are kept in the vault and refreshed "
        "by login steps when they expire. Shorthand: {url, action: extract, selector}."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "extract_news",
        "type": "browser_automation",
        "config": {
            "url": "https://news.example.org/latest",
            "steps": [
                {
                    "extract": {
                        "selector": "article",
                        "fields": {"title": "h2", "link": "a@href"},
                        "paginate": {"next": "a.next", "max_pages": 3},
                    }
                },
                "screenshot",
            ],
        },
        "retry": {"max_attempts": 2},
        "dependencies": [],
    }

    settings_model: ClassVar[type[BrowserSettings]] = BrowserSettings

    def __init__(self, settings: BrowserSettings | Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self._pool: BrowserPool | None = None

    @property
    def browser(self) -> BrowserSettings:
        """Which Chromium this runner launches, and how many pages it lends at once."""
        return self.settings_as(BrowserSettings)

    @property
    def pool(self) -> BrowserPool | None:
        """The engine's browser pool, once a task has used it (its counters show the reuse)."""
        return self._pool

    def _pool_for(self, ctx: RunContext) -> BrowserPool:
        if self._pool is None:
            self._pool = BrowserPool(self.browser)
        return self._pool

    async def run(self, config: BrowserConfig, ctx: RunContext) -> Any:
        pool = self._pool_for(ctx)
        first_host = host_of(config.first_url())
        state = await self._stored_session(config, ctx, first_host) if config.session else None
        options = ContextOptions(
            viewport=(config.viewport.width, config.viewport.height) if config.viewport else None,
            user_agent=config.user_agent,
        )
        async with pool.page(
            ctx.network,
            session=config.session,
            storage_state=state,
            isolated=config.isolated,
            options=options,
            on_wait=ctx.waiting,
        ) as slot:
            if state is not None and config.session and slot.gate is not None:
                slot.gate.bind([config.session], ctx.secrets)  # the context holds the session
            output = await self._drive(config, ctx, pool, slot, first_host)
            await pool.settle()
            slot.raise_refusal()
            return output

    async def _drive(
        self,
        config: BrowserConfig,
        ctx: RunContext,
        pool: BrowserPool,
        slot: Slot,
        first_host: str | None,
    ) -> dict[str, Any]:
        outcome = Outcome()
        runner = StepRunner(
            slot,
            ctx,
            step_timeout=config.step_timeout,
            navigation_timeout=config.navigation_timeout,
            outcome=outcome,
        )
        plan = config.plan()
        logged_in_again = False
        while True:  # the plan runs once, or twice when the first pass had to log in
            outcome.results.clear()
            outcome.artifacts.clear()
            for position, (label, number, step) in enumerate(plan):
                await runner.run(step, label, number)
                if position > 0 or config.logged_in_when is None:
                    continue
                if await _logged_in(runner, config.logged_in_when):
                    continue
                if logged_in_again:
                    raise TaskError(
                        f"still not logged in on {slot.page.url} after the login steps "
                        f"(logged_in_when: {config.logged_in_when.describe()}); check the login "
                        "steps and the credentials they use",
                        "session_expired",
                    )
                await self._log_in(config, ctx, pool, slot, runner, first_host)
                logged_in_again = True
                break
            else:
                break
        return {
            "url": ctx.secrets.redact(slot.page.url),
            "title": ctx.secrets.redact(await _title(runner)),
            "data": outcome.data(),
            "artifacts": list(outcome.artifacts),
        }

    async def _log_in(
        self,
        config: BrowserConfig,
        ctx: RunContext,
        pool: BrowserPool,
        slot: Slot,
        runner: StepRunner,
        first_host: str | None,
    ) -> None:
        """Run the login steps and save the new session; the caller runs the steps again."""
        check = config.logged_in_when
        assert check is not None
        page_url = slot.page.url
        if not config.login:
            fix = (
                f"store a fresh session '{config.session}' in the vault, or add login steps"
                if config.session
                else "add login steps"
            )
            raise TaskError(
                f"not logged in on {page_url} (logged_in_when: {check.describe()}); {fix}",
                "session_expired",
            )
        session = slot.session
        seen = session.logins if session is not None else 0
        lock = session.login_lock if session is not None else contextlib.nullcontext()
        async with lock:
            if session is not None and session.logins != seen:
                ctx.log("session expired: another task of the session logged in again")
                return
            for number, step in enumerate(config.login, 1):
                await runner.run(step, f"login step {number}", number)
            if config.session is not None and first_host is not None:
                state = json.dumps(await slot.context.storage_state())
                await ctx.secrets.store(
                    config.session,
                    state,
                    allowed_hosts=[first_host],
                    description=f"browser session for {first_host}, saved after logging in",
                )
                pool.session_saved(slot, state)
                if slot.gate is not None:
                    slot.gate.bind([config.session], ctx.secrets)
        what = "session expired" if config.session else "not logged in"
        ctx.log(f"{what}: logged in again", level="warning")

    async def _stored_session(
        self, config: BrowserConfig, ctx: RunContext, first_host: str | None
    ) -> str | None:
        """The session's storage state from the vault, revealed for the task's first host;
        None when there is none yet and login steps can make one."""
        name = config.session
        assert name is not None
        if first_host is None:
            raise TaskError(
                f"session '{name}' needs an http(s) first URL: its storage state is revealed "
                f"only for the host it belongs to, and {config.first_url()} has no host",
                "config",
            )
        names = ctx.secrets.names()
        if names is not None and name not in names:
            if config.login:
                ctx.log(f"no stored session '{name}' yet: the login steps will make one")
                return None
            raise TaskError(
                f"session '{name}' is not in the vault; store a Playwright storage state under "
                f"that name (allowed for {first_host}), or give login steps and logged_in_when",
                "config",
            )
        # named by the task's own config (session:), so revealed directly; the vault still
        # refuses it unless the secret allows the host
        return await ctx.secrets.resolve(name, host=first_host)

    async def machine_problem(self, resources: Mapping[str, Any]) -> str | None:
        """No browser to drive: the reason and the fix, looked up as a launch would look."""
        settings = self.browser
        try:
            if settings.path is not None or settings.candidates is not None:
                find_browser(settings.path, settings.candidates or ())
                return None
            with contextlib.suppress(BrowserNotFound):  # found without starting Playwright
                find_browser(None, default_candidates(None))
                return None
            await locate_browser(None)
        except BrowserNotFound as exc:
            return exc.message
        return None

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


async def _logged_in(runner: StepRunner, check: LoggedInWhen) -> bool:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    page = runner.page
    if check.url and not url_matches(page.url, check.url):
        return False
    if check.selector:
        try:
            await page.locator(check.selector).first.wait_for(
                state="attached", timeout=check.timeout * 1000
            )
        except PlaywrightTimeout:
            return False
        except PlaywrightError as exc:
            if runner.slot.broken():
                raise TaskError(
                    f"the browser crashed while checking the login on {page.url}",
                    "browser_crashed",
                ) from None
            raise TaskError(
                f"cannot check the login on {page.url}: {exc.message}", "error"
            ) from None
    return True


async def _title(runner: StepRunner) -> str:
    from playwright.async_api import Error as PlaywrightError

    try:
        return await runner.page.title()
    except PlaywrightError as exc:
        error_class = "browser_crashed" if runner.slot.broken() else "error"
        message = f"cannot read the title of {runner.page.url}: {exc.message}"
        raise TaskError(message, error_class) from None
