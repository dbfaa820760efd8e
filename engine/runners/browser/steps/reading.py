"""The steps that read a page: ``extract`` (with pagination), ``evaluate``, and the
``screenshot`` and ``pdf`` artifacts. What they read is redacted as it is read; an
``evaluate`` never runs on a page this task typed a secret into."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.browser.steps.models import (
    EvaluateStep,
    ExtractStep,
    Paginate,
    PdfStep,
    ScreenshotStep,
)
from multi_task_orchestrator.engine.runners.browser.steps.page import StepPage

# href and src are read as absolute URLs: a relative link means nothing once it leaves the page
URL_ATTRIBUTES = ("href", "src", "action")
MAX_LOGGED_RESULT = 300


class ReadingSteps(StepPage):
    """Carries out the steps that read the page; ``StepRunner`` dispatches to them."""

    async def _extract(self, step: ExtractStep, timeout: float, number: int) -> None:
        value = await self._read(step, timeout)
        pages = 1
        while step.paginate is not None and pages < step.paginate.max_pages:
            if not await self._next_page(step, step.paginate, timeout):
                break
            pages += 1
            more = await self._read(step, timeout)
            value = [*value, *more] if step.all else more
        value = self._redacted(value)
        self.outcome.results.append((step.as_, number, value))
        count = len(value) if isinstance(value, list) else 1
        pages_read = f" from {pages} pages" if pages > 1 else ""
        self.ctx.log(f"extracted {count} item(s){pages_read} with {step.selector!r}")

    async def _read(self, step: ExtractStep, timeout: float) -> Any:
        locator = self.page.locator(step.selector)
        fields = None
        if step.fields is not None:
            fields = {name: list(_split_field(spec)) for name, spec in step.fields.items()}
        options = {
            "fields": fields,
            "attribute": step.attribute,
            "urlAttributes": list(URL_ATTRIBUTES),
            "first": not step.all,
        }
        values = await locator.evaluate_all(_READ_ELEMENTS, options)
        if not values:
            # content may appear after load (scripts, lazy lists): wait for the first match
            await locator.first.wait_for(state="attached", timeout=self._ms(timeout))
            values = await locator.evaluate_all(_READ_ELEMENTS, options)
        return values if step.all else (values[0] if values else None)

    async def _next_page(self, step: ExtractStep, paginate: Paginate, timeout: float) -> bool:
        """Click "next" and wait until the matched content is not what was just read."""
        next_link = self._first(paginate.next)
        if await next_link.count() == 0 or not await next_link.is_enabled():
            return False
        token = secrets.token_hex(8)
        await self._first(step.selector).evaluate(
            "(element, token) => element.setAttribute('data-orchestrator-read', token)", token
        )
        await next_link.click(timeout=self._ms(timeout))
        await self.page.wait_for_function(
            _CONTENT_CHANGED, arg=[step.selector, token], timeout=self._ms(timeout)
        )
        return True

    async def _screenshot(self, step: ScreenshotStep, timeout: float, number: int) -> None:
        if step.selector:
            image = await self._first(step.selector).screenshot(timeout=self._ms(timeout))
        else:
            image = await self.page.screenshot(full_page=step.full_page, timeout=self._ms(timeout))
        self._save(step.name or "screenshot", ".png", image)

    async def _pdf(self, step: PdfStep, timeout: float, number: int) -> None:
        document = await asyncio.wait_for(self.page.pdf(), timeout)
        self._save(step.name or "page", ".pdf", document)

    async def _evaluate(self, step: EvaluateStep, timeout: float, number: int) -> None:
        if self.slot.typed_secret:
            raise TaskError(
                "an evaluate step cannot run after this task typed a secret into the page (a "
                "script could read it back, one character at a time); run the script in "
                "another task (with the same session if it needs the login), whose page does "
                "not hold the secret",
                "config",
            )
        # never revealed: a ${vault.NAME} that reached the script stays text
        value = self._redacted(await asyncio.wait_for(self.page.evaluate(step.script), timeout))
        try:
            shown = json.dumps(value, default=str)
        except (TypeError, ValueError):
            shown = repr(value)
        if len(shown) > MAX_LOGGED_RESULT:
            shown = shown[:MAX_LOGGED_RESULT] + "..."
        self.ctx.log(f"evaluate gave {shown}")
        self.outcome.results.append((step.as_, number, value))

    def _save(self, name: str, suffix: str, content: bytes) -> None:
        """Write an artifact under a name no other file has (task id, name, a number)."""
        folder = self.ctx.artifacts_dir
        stem = _safe_name(f"{self.ctx.task_id}-{name}")
        for attempt in range(1, 10_000):
            path = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
            try:
                with path.open("xb") as file:
                    file.write(content)
            except FileExistsError:
                continue
            self.outcome.artifacts.append(path.name)
            self.ctx.log(f"saved {path.name} ({len(content)} bytes)")
            return
        raise TaskError(f"too many artifacts named {stem}{suffix} in {folder}", "error")


def _split_field(spec: str) -> tuple[str, str | None]:
    """A field spec as (selector, attribute): ``"a@href"`` -> ``("a", "href")``,
    ``"h2"`` -> ``("h2", None)``, ``"@id"`` -> ``("", "id")``."""
    selector, at, attribute = spec.rpartition("@")
    if at and re.fullmatch(r"[A-Za-z_:][-A-Za-z0-9_:.]*", attribute):
        return selector.strip(), attribute
    return spec.strip(), None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "artifact"


_READ_ELEMENTS = """
(elements, {fields, attribute, urlAttributes, first}) => {
  const read = (element, name) => {
    if (!element) return null;
    if (!name) return (element.innerText ?? element.textContent ?? '').trim();
    const value = element.getAttribute(name);
    if (value === null || !urlAttributes.includes(name)) return value;
    try { return new URL(value, document.baseURI).href; } catch { return value; }
  };
  return (first ? elements.slice(0, 1) : elements).map((element) => {
    if (!fields) return read(element, attribute);
    const record = {};
    for (const [name, [selector, attr]] of Object.entries(fields)) {
      record[name] = read(selector ? element.querySelector(selector) : element, attr);
    }
    return record;
  });
}
"""

_CONTENT_CHANGED = """
([selector, token]) => {
  const element = document.querySelector(selector);
  return element !== null && element.getAttribute('data-orchestrator-read') !== token;
}
"""
