"""The steps that act on a page: navigation, input, scrolling, waiting, and ``assert``.

A value typed into a page (``fill``, ``type``, ``select``) or a ``goto`` URL may hold
``${vault.NAME}``: it is revealed at the moment of use, for the host of the page it goes to.
"""

from __future__ import annotations

import asyncio

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.browser.steps.models import (
    AssertStep,
    CheckStep,
    ClickStep,
    FillStep,
    GotoStep,
    HoverStep,
    PressStep,
    ScrollStep,
    SelectStep,
    TypeStep,
    WaitForStep,
)
from multi_task_orchestrator.engine.runners.browser.steps.page import StepPage, host_of


class ActionSteps(StepPage):
    """Carries out the steps that act on the page; ``StepRunner`` dispatches to them."""

    async def _goto(self, step: GotoStep, timeout: float, number: int) -> None:
        url = await self._reveal(step.url, host_of(step.url))
        if url != step.url:
            self._received(step.url)
        gate = self.slot.gate
        host = await (gate.check(url) if gate else self.ctx.network.policy.check(url))
        async with self.ctx.network.host_limits.slot(host, on_wait=self.ctx.waiting):
            response = await self.page.goto(
                url, wait_until=step.wait_until, timeout=self._ms(timeout)
            )
        status = response.status if response is not None else 200
        if status == 429 or status >= 500:  # worth retrying; other statuses are pages to read
            retry_after = (response.headers.get("retry-after") or "") if response else ""
            raise TaskError(
                f"the page answered HTTP {status}",
                "http_429" if status == 429 else "http_5xx",
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )

    async def _click(self, step: ClickStep, timeout: float, number: int) -> None:
        await self._first(step.selector).click(timeout=self._ms(timeout))

    async def _fill(self, step: FillStep, timeout: float, number: int) -> None:
        locator = self._first(step.selector)
        await locator.wait_for(state="visible", timeout=self._ms(timeout))
        await locator.fill(await self._typed_into_page(step.value), timeout=self._ms(timeout))

    async def _type(self, step: TypeStep, timeout: float, number: int) -> None:
        locator = self._first(step.selector)
        await locator.wait_for(state="visible", timeout=self._ms(timeout))
        text = await self._typed_into_page(step.text)
        await locator.press_sequentially(text, timeout=self._ms(timeout))

    async def _press(self, step: PressStep, timeout: float, number: int) -> None:
        if step.selector is None:
            await self.page.keyboard.press(step.key)
        else:
            await self._first(step.selector).press(step.key, timeout=self._ms(timeout))

    async def _select(self, step: SelectStep, timeout: float, number: int) -> None:
        values = [step.value] if isinstance(step.value, str) else step.value
        revealed = [await self._typed_into_page(value) for value in values]
        await self._first(step.selector).select_option(revealed, timeout=self._ms(timeout))

    async def _check(self, step: CheckStep, timeout: float, number: int) -> None:
        await self._first(step.selector).check(timeout=self._ms(timeout))

    async def _hover(self, step: HoverStep, timeout: float, number: int) -> None:
        await self._first(step.selector).hover(timeout=self._ms(timeout))

    async def _scroll(self, step: ScrollStep, timeout: float, number: int) -> None:
        if step.to == "bottom":
            await self.page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        elif step.to == "top":
            await self.page.evaluate("window.scrollTo(0, 0)")
        else:
            await self._first(step.to).scroll_into_view_if_needed(timeout=self._ms(timeout))

    async def _wait_for(self, step: WaitForStep, timeout: float, number: int) -> None:
        if step.selector:
            await self._first(step.selector).wait_for(state=step.state, timeout=self._ms(timeout))
        elif step.text:
            await self.page.get_by_text(step.text).first.wait_for(timeout=self._ms(timeout))
        elif step.url:
            await self.page.wait_for_url(step.url, timeout=self._ms(timeout))
        elif step.load_state:
            await self.page.wait_for_load_state(step.load_state, timeout=self._ms(timeout))
        elif step.time:
            await asyncio.sleep(step.time)

    async def _assert(self, step: AssertStep, timeout: float, number: int) -> None:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            if step.selector or step.text:
                if step.selector and step.text:
                    target = self.page.locator(step.selector).filter(has_text=step.text)
                elif step.selector:
                    target = self.page.locator(step.selector)
                else:
                    target = self.page.get_by_text(step.text or "")
                await target.first.wait_for(state="attached", timeout=self._ms(timeout))
            if step.url:
                await self.page.wait_for_url(step.url, timeout=self._ms(timeout))
        except PlaywrightTimeout:
            raise TaskError(f"it did not hold within {timeout:g}s", "error") from None
