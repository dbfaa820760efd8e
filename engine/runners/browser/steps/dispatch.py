"""``StepRunner``: carries out one step of any kind, turning a refusal or a Playwright error
into a TaskError with its class (``timeout``, ``network``, ``browser_crashed``, ...), and a
failed step into a ``StepFailed`` that names the step and the page."""

from __future__ import annotations

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.browser.steps.actions import ActionSteps
from multi_task_orchestrator.engine.runners.browser.steps.models import BaseStep, StepFailed
from multi_task_orchestrator.engine.runners.browser.steps.page import host_of
from multi_task_orchestrator.engine.runners.browser.steps.reading import ReadingSteps


class StepRunner(ActionSteps, ReadingSteps):
    """Carries out steps on one page for one task, turning failures into clear TaskErrors."""

    async def run(self, step: BaseStep, label: str, number: int) -> None:
        """Do one step; ``label`` names it in errors (``step 3``, ``login step 1``)."""
        default = self.navigation_timeout if step.kind == "goto" else self.step_timeout
        timeout = step.timeout if step.timeout is not None else default
        before = self.page.url
        try:
            await self._attempt(step, timeout, number)
        except TaskError as exc:
            raise StepFailed(
                f"{label} ({step.describe()}) failed{self._where(before)}: {exc.message}",
                exc.error_class,
                retry_after=exc.retry_after,
            ) from None

    async def _attempt(self, step: BaseStep, timeout: float, number: int) -> None:
        """Do the step; a refused request or a Playwright error becomes a TaskError."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await getattr(self, f"_{step.kind}")(step, timeout, number)
        except (PlaywrightTimeout, TimeoutError) as exc:
            self.slot.raise_refusal()
            raise TaskError(_reason(f"timed out after {timeout:g}s", exc), "timeout") from None
        except PlaywrightError as exc:
            self.slot.raise_refusal()
            if self.slot.broken() or _says_closed(exc.message):
                reason = _reason("the browser crashed or closed", exc)
                raise TaskError(reason, "browser_crashed") from None
            error_class = "network" if "net::ERR_" in exc.message else "error"
            raise TaskError(_reason(None, exc), error_class) from None
        self.slot.raise_refusal()

    def _where(self, before: str) -> str:
        """Where the step failed: the page's URL, or the one before the step if the page now
        shows an error page (or nothing)."""
        url = "" if self.page.is_closed() else self.page.url
        for candidate in (url, before):
            if host_of(candidate) is not None:
                return f" on {candidate}"
        return ""


def _reason(what: str | None, exc: Exception) -> str:
    detail = _first_line(getattr(exc, "message", None) or str(exc))
    return f"{what} ({detail})" if what and detail else what or detail


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else text


def _says_closed(message: str) -> bool:
    return any(
        phrase in message
        for phrase in ("has been closed", "Target crashed", "Browser closed", "Connection closed")
    )
