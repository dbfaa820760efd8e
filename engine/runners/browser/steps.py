"""Browser steps: their models (one per kind) and how each is carried out on a page.

A step is written as a one-key mapping, ``{kind: options}``. Steps with one main argument take
it directly, and options may sit beside the kind::

    - goto: https://example.org/login            # url
    - click: "button.more"                       # selector
    - fill: {selector: "#user", value: "${vault.portal_user}"}
    - press: Enter                               # key (to the focused element)
    - wait_for: ".results"                       # selector; or {text | url | load_state | time}
    - extract: {selector: ".item", fields: {title: h2, link: "a@href"}, as: items}
    - screenshot                                 # a step without options is just its name
    - {click: "#slow", timeout: 30s}             # any step: its own timeout

Main arguments: goto ``url``, click / check / hover / wait_for / extract ``selector``, press
``key``, scroll ``to``, screenshot / pdf ``name``, evaluate ``script``. ``fill``, ``type``,
``select`` and ``assert`` take a mapping. ``{kind: click, selector: ...}`` is accepted too.
A step's ``timeout`` defaults to the task's ``step_timeout`` (``navigation_timeout`` for goto).
A goto answered with HTTP 429 or 5xx fails with ``http_429`` / ``http_5xx`` (retried by the
default policy); any other status is a page like any other.
An ``extract`` first waits (up to its timeout) for a match, so content that scripts add after
the page has loaded is found; ``href``, ``src`` and ``action`` attributes are read as absolute
URLs.

Actions work on the first element matching a selector. Values may hold ``${vault.NAME}``: it is
revealed at the moment of use, for the host of the page it is typed into (for ``goto``, the
host of the URL), so a secret never reaches a page its ``allowed_hosts`` do not name. From then
on the page's context may reach only the secret's allowed hosts (``gate``). An ``evaluate``
script may never hold a secret, and a task that types one may have no ``evaluate`` step (both
refused at validation; an evaluate after a typed secret is refused at run time too): a script
could read the value back. What ``extract`` and ``evaluate`` read is redacted as it is read.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import secret_names
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.runners.base import RunContext, RunnerConfig
from multi_task_orchestrator.engine.secrets import redact_data

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from multi_task_orchestrator.engine.runners.browser.pool import Slot

# href and src are read as absolute URLs: a relative link means nothing once it leaves the page
URL_ATTRIBUTES = ("href", "src", "action")
VAULT_REFERENCE = re.compile(r"\$\{\s*vault\s*\.")
MAX_LOGGED_RESULT = 300

# --- the step models ------------------------------------------------------------------------


class StepFailed(TaskError):
    """A step failed; the message names the step, its selector and the page."""


class BaseStep(RunnerConfig):
    """Options every step has."""

    main: ClassVar[str | None] = None  # the option a shorthand value sets
    kind: str
    timeout: Duration | None = Field(
        None, description="how long this step may take; default: the task's step_timeout"
    )

    def describe(self) -> str:
        """The step as a person would name it in an error message."""
        kind = self.kind
        argument = getattr(self, self.main or "selector", None)
        if isinstance(argument, str) and argument:
            shown = argument if kind == "goto" else repr(argument)
            return f"{kind} {shown}"
        return kind


class GotoStep(BaseStep):
    """Open a URL."""

    main: ClassVar[str | None] = "url"
    kind: Literal["goto"] = "goto"
    url: str
    wait_until: Literal["load", "domcontentloaded", "networkidle", "commit"] = Field(
        "load", description="when the navigation counts as done"
    )


class ClickStep(BaseStep):
    """Click an element."""

    main: ClassVar[str | None] = "selector"
    kind: Literal["click"] = "click"
    selector: str


class FillStep(BaseStep):
    """Set an input's value at once."""

    kind: Literal["fill"] = "fill"
    selector: str
    value: str


class TypeStep(BaseStep):
    """Type text into an element key by key (for inputs that react to each key)."""

    kind: Literal["type"] = "type"
    selector: str
    text: str


class PressStep(BaseStep):
    """Press a key (``Enter``, ``Control+A``) on an element, or on the focused one."""

    main: ClassVar[str | None] = "key"
    kind: Literal["press"] = "press"
    key: str
    selector: str | None = None


class SelectStep(BaseStep):
    """Choose an option (by value or label) in a ``<select>``."""

    kind: Literal["select"] = "select"
    selector: str
    value: str | list[str]


class CheckStep(BaseStep):
    """Tick a checkbox or radio button."""

    main: ClassVar[str | None] = "selector"
    kind: Literal["check"] = "check"
    selector: str


class HoverStep(BaseStep):
    """Move the mouse over an element."""

    main: ClassVar[str | None] = "selector"
    kind: Literal["hover"] = "hover"
    selector: str


class ScrollStep(BaseStep):
    """Scroll to the ``bottom`` or ``top`` of the page, or until an element is in view."""

    main: ClassVar[str | None] = "to"
    kind: Literal["scroll"] = "scroll"
    to: str = Field("bottom", description="bottom, top, or a selector")


class WaitForStep(BaseStep):
    """Wait for exactly one thing: an element, a text, a URL, a load state, or some time."""

    main: ClassVar[str | None] = "selector"
    kind: Literal["wait_for"] = "wait_for"
    selector: str | None = None
    state: Literal["attached", "visible", "hidden", "detached"] = Field(
        "visible", description="for a selector: the state to wait for"
    )
    text: str | None = None
    url: str | None = Field(None, description="a glob over the whole URL: ** any text, * no /")
    load_state: Literal["load", "domcontentloaded", "networkidle"] | None = None
    time: Duration | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> WaitForStep:
        given = [n for n in ("selector", "text", "url", "load_state", "time") if getattr(self, n)]
        if len(given) != 1:
            raise PydanticCustomError(
                "browser_step",
                "wait_for waits for exactly one thing; it was given {given}",
                {
                    "given": ", ".join(given) or "none",
                    "hint": "give one of selector, text, url, load_state, time",
                },
            )
        return self

    def describe(self) -> str:
        for name in ("selector", "text", "url", "load_state", "time"):
            value = getattr(self, name)
            if value:
                return f"wait_for {name} {value!r}"
        return "wait_for"


class Paginate(RunnerConfig):
    """Follow a "next" link and extract again, up to ``max_pages`` pages in all."""

    next: str = Field(description="the selector of the link or button to the next page")
    max_pages: int = Field(5, ge=1, le=1000, description="pages to read at most, the first too")


class ExtractStep(BaseStep):
    """Read text, an attribute, or named fields from every element matching ``selector``."""

    main: ClassVar[str | None] = "selector"
    kind: Literal["extract"] = "extract"
    selector: str
    fields: dict[str, str] | None = Field(
        None,
        description='per matched element: name -> "css" (its text) or "css@attr" (an '
        'attribute); "@attr" reads the element itself',
    )
    attribute: str | None = Field(None, description="read this attribute instead of the text")
    all: bool = Field(True, description="every match (a list); false: the first match only")
    paginate: Paginate | None = None
    as_: str | None = Field(
        None, alias="as", description="name the result; data is then an object of named results"
    )

    @model_validator(mode="after")
    def _fields_or_attribute(self) -> ExtractStep:
        if self.fields is not None and self.attribute is not None:
            raise PydanticCustomError(
                "browser_step",
                "extract reads either fields or an attribute, not both",
                {"hint": 'use a field such as link: "a@href" to read attributes with fields'},
            )
        return self


class ScreenshotStep(BaseStep):
    """Save a PNG of the page (or of one element) as an artifact."""

    main: ClassVar[str | None] = "name"
    kind: Literal["screenshot"] = "screenshot"
    name: str | None = Field(None, description="the file's name (made unique), without .png")
    full_page: bool = False
    selector: str | None = Field(None, description="only this element")


class PdfStep(BaseStep):
    """Save the page as a PDF artifact."""

    main: ClassVar[str | None] = "name"
    kind: Literal["pdf"] = "pdf"
    name: str | None = None


class EvaluateStep(BaseStep):
    """Run a JavaScript expression in the page; its (JSON) value is a result like an extract's.

    A script may not hold a secret: it could send it to any host or return it in a form the
    redactor does not know (one character at a time)."""

    main: ClassVar[str | None] = "script"
    kind: Literal["evaluate"] = "evaluate"
    script: str
    as_: str | None = Field(None, alias="as", description="name the result")

    @model_validator(mode="after")
    def _no_secret(self) -> EvaluateStep:
        if VAULT_REFERENCE.search(self.script):
            raise PydanticCustomError(
                "secret_refused",
                "an evaluate step's script may not use a secret (${vault.NAME}): a script can "
                "send it to any host or return it to the agent",
                {
                    "hint": "use secrets only in fill, type or select steps, which type them into "
                    "a page of a host the secret allows, in a goto URL, in login steps, or in "
                    "an http task's headers"
                },
            )
        return self


class AssertStep(BaseStep):
    """Fail the task unless the page shows an element, a text (inside the element, if both are
    given) and/or has a URL matching a glob."""

    kind: Literal["assert"] = "assert"
    selector: str | None = None
    text: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _something(self) -> AssertStep:
        if not (self.selector or self.text or self.url):
            raise PydanticCustomError(
                "browser_step",
                "assert needs something to check",
                {"hint": "give selector, text and/or url"},
            )
        return self

    def describe(self) -> str:
        parts = [
            f"{n} {getattr(self, n)!r}" for n in ("selector", "text", "url") if getattr(self, n)
        ]
        return "assert " + ", ".join(parts)


STEP_MODELS: dict[str, type[BaseStep]] = {
    model.model_fields["kind"].default: model
    for model in (
        GotoStep,
        ClickStep,
        FillStep,
        TypeStep,
        PressStep,
        SelectStep,
        CheckStep,
        HoverStep,
        ScrollStep,
        WaitForStep,
        ExtractStep,
        ScreenshotStep,
        PdfStep,
        EvaluateStep,
        AssertStep,
    )
}


def _step_shape(value: Any) -> Any:
    """``{click: "#b"}``, ``{click: {selector: "#b"}}``, ``{click: "#b", timeout: 2s}`` or
    ``"screenshot"`` -> ``{"kind": "click", "selector": "#b", ...}``."""
    if isinstance(value, str):
        _model_for(value)
        return {"kind": value}
    if not isinstance(value, Mapping) or "kind" in value:
        return value
    kinds = [key for key in value if key in STEP_MODELS]
    if len(kinds) != 1:
        if kinds:
            problem = f"a step does one thing; this one names {', '.join(kinds)}"
            hint = "split it into one step per kind"
        else:
            unknown = next((str(key) for key in value if str(key) not in ("timeout",)), "")
            problem = f"unknown step '{unknown}'" if unknown else "the step has no kind"
            hint = did_you_mean(unknown, STEP_MODELS) or f"steps: {', '.join(STEP_MODELS)}"
        raise PydanticCustomError("browser_step", "{problem}", {"problem": problem, "hint": hint})
    kind = kinds[0]
    model = STEP_MODELS[kind]
    options = {key: option for key, option in value.items() if key != kind}
    argument = value[kind]
    if isinstance(argument, Mapping):
        return {"kind": kind, **argument, **options}
    if argument is None:
        return {"kind": kind, **options}
    if model.main is None:
        fields = [name for name in model.model_fields if name not in ("kind", "timeout")]
        raise PydanticCustomError(
            "browser_step",
            "'{kind}' takes a mapping of options",
            {"kind": kind, "hint": f"write {kind}: {{{', '.join(f'{n}: ...' for n in fields)}}}"},
        )
    return {"kind": kind, model.main: argument, **options}


def _model_for(kind: str) -> type[BaseStep]:
    model = STEP_MODELS.get(kind)
    if model is None:
        hint = did_you_mean(kind, STEP_MODELS) or f"steps: {', '.join(STEP_MODELS)}"
        raise PydanticCustomError(
            "browser_step", "unknown step '{kind}'", {"kind": kind, "hint": hint}
        )
    return model


class _StepShorthands:
    """Adds the shapes ``_step_shape`` accepts to the JSON Schema of a step, so an editor
    accepts ``- click: "#b"``, ``- extract: {selector: ...}`` and ``- screenshot``."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union = handler(core_schema)
        mapping = union.get("discriminator", {}).get("mapping", {})
        shorthands: list[JsonSchemaValue] = [{"enum": list(STEP_MODELS)}]
        for kind, model in STEP_MODELS.items():
            options = {"$ref": mapping[kind]} if kind in mapping else {"type": "object"}
            argument: list[JsonSchemaValue] = [options, {"type": "null"}]
            if model.main is not None and kind in mapping:
                resolved = handler.resolve_ref_schema({"$ref": mapping[kind]})
                argument.append(resolved["properties"][model.main])
            shorthands.append(
                {
                    "type": "object",
                    "properties": {kind: {"anyOf": argument}, "timeout": {}},
                    "required": [kind],
                    "additionalProperties": False,
                }
            )
        return {"anyOf": [union, *shorthands]}


Step = Annotated[
    GotoStep
    | ClickStep
    | FillStep
    | TypeStep
    | PressStep
    | SelectStep
    | CheckStep
    | HoverStep
    | ScrollStep
    | WaitForStep
    | ExtractStep
    | ScreenshotStep
    | PdfStep
    | EvaluateStep
    | AssertStep,
    Field(discriminator="kind"),
    BeforeValidator(_step_shape),
    _StepShorthands(),
]


# --- carrying steps out -----------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What a task's steps produced."""

    results: list[tuple[str | None, int, Any]] = field(default_factory=list)  # (as, step, value)
    artifacts: list[str] = field(default_factory=list)

    def data(self) -> Any:
        """The last result; or, when any result is named, an object of all of them (unnamed
        ones keyed ``step_N``)."""
        if not self.results:
            return None
        if all(name is None for name, _, _ in self.results):
            return self.results[-1][2]
        return {name or f"step_{number}": value for name, number, value in self.results}


class StepRunner:
    """Carries out steps on one page for one task, turning failures into clear TaskErrors."""

    def __init__(
        self,
        slot: Slot,
        ctx: RunContext,
        *,
        step_timeout: float,
        navigation_timeout: float,
        outcome: Outcome,
    ) -> None:
        self.slot = slot
        self.page: Page = slot.page
        self.ctx = ctx
        self.step_timeout = step_timeout
        self.navigation_timeout = navigation_timeout
        self.outcome = outcome

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

    # --- helpers ---

    def _ms(self, seconds: float) -> float:
        return seconds * 1000

    def _first(self, selector: str) -> Locator:
        return self.page.locator(selector).first

    async def _reveal(self, value: str, host: str | None = None) -> str:
        """``value`` with its secrets revealed for ``host`` (default: the current page's)."""
        if "${" not in value:
            return value
        return await self.ctx.reveal(value, host=host if host else host_of(self.page.url))

    async def _typed_into_page(self, value: str) -> str:
        """Reveal a value about to be typed into the current page, and make sure the page is
        still the one it was revealed for when the value goes in."""
        host = host_of(self.page.url)
        revealed = await self._reveal(value, host)
        if revealed != value:
            self._received(value)
        if revealed != value and host_of(self.page.url) != host:
            raise TaskError(
                f"the page moved from {host} to {self.page.url} while a secret was being "
                "prepared for it; the secret was not typed",
                "error",
            )
        return revealed

    def _received(self, value: str) -> None:
        """The page is about to receive the secrets named in ``value``: from now on the context
        may reach only their allowed hosts, and this task's evaluate steps are refused."""
        self.slot.typed_secret = True
        if self.slot.gate is not None:
            self.slot.gate.bind(secret_names(value), self.ctx.secrets)

    def _redacted(self, value: Any) -> Any:
        """Data read from the page with every secret masked, before anything names or
        transforms it."""
        return redact_data(value, self.ctx.secrets.redact)

    # --- the steps ---

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


def url_matches(url: str, pattern: str) -> bool:
    """Whether ``url`` matches a glob over the whole URL (``**`` any text, ``*`` any text but
    ``/``), as Playwright's ``wait_for_url`` reads it."""
    parts = re.split(r"(\*\*|\*)", pattern)
    translated = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.fullmatch(translated, url) is not None


def host_of(url: str) -> str | None:
    """The host of an http(s) URL, or None (about:blank, data:...)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    return (parts.hostname or "").lower() or None


def _split_field(spec: str) -> tuple[str, str | None]:
    """A field spec as (selector, attribute): ``"a@href"`` -> ``("a", "href")``,
    ``"h2"`` -> ``("h2", None)``, ``"@id"`` -> ``("", "id")``."""
    selector, at, attribute = spec.rpartition("@")
    if at and re.fullmatch(r"[A-Za-z_:][-A-Za-z0-9_:.]*", attribute):
        return selector.strip(), attribute
    return spec.strip(), None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "artifact"


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
