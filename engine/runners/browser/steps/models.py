"""The step models, one per kind: what each step's options are, checked at validation."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.base import RunnerConfig

VAULT_REFERENCE = re.compile(r"\$\{\s*vault\s*\.")


class StepFailed(TaskError):
    """A step failed; the message names the step, its selector and the page."""


class BaseStep(RunnerConfig):
    """Options every step has."""

    main: ClassVar[str | None] = None  # the option a shorthand value sets
    kind: str
    timeout: Duration | None = Field(
        None, gt=0, description="how long this step may take; default: the task's step_timeout"
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
