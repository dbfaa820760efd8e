"""The ``browser_automation`` task's config: the seed's shorthand (``{url, action: extract,
selector}``) or ``steps``, a ``session`` with its ``login`` steps and ``logged_in_when`` check,
the page's options and the timeouts; checked for coherence at validation (a task that types a
secret may have no ``evaluate`` step), and turned into the plan of steps a run carries out."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.runners.base import RunnerConfig
from multi_task_orchestrator.engine.runners.browser.steps import (
    VAULT_REFERENCE,
    BaseStep,
    EvaluateStep,
    ExtractStep,
    GotoStep,
    Paginate,
    PdfStep,
    ScreenshotStep,
    Step,
)

SESSION_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
SHORTHAND_FIELDS = ("selector", "fields", "attribute", "all", "paginate")


class Viewport(RunnerConfig):
    width: int = Field(ge=100, le=10_000)
    height: int = Field(ge=100, le=10_000)


class LoggedInWhen(RunnerConfig):
    """How to tell that a session is logged in; every check given must hold."""

    selector: str | None = Field(None, description="an element only a logged-in page has")
    url: str | None = Field(
        None, description="a glob the page's URL matches when logged in, e.g. **/account*"
    )
    timeout: Duration = Field(3.0, gt=0, description="how long to wait for the selector")

    @model_validator(mode="after")
    def _something(self) -> LoggedInWhen:
        if not (self.selector or self.url):
            raise PydanticCustomError(
                "browser_config",
                "logged_in_when needs a selector or a url",
                {"hint": 'e.g. logged_in_when: {selector: "a.logout"}'},
            )
        return self

    def describe(self) -> str:
        checks = [f"{name} {getattr(self, name)!r}" for name in ("selector", "url")]
        return " and ".join(check for check in checks if "None" not in check)


class BrowserConfig(RunnerConfig):
    """Config of a ``browser_automation`` task."""

    url: str | None = Field(None, description="the page to open first")
    action: Literal["extract", "screenshot", "pdf"] | None = Field(
        None, description="the seed's shorthand: one action on url (instead of steps)"
    )
    selector: str | None = Field(None, description="action extract: what to read")
    fields: dict[str, str] | None = Field(
        None, description='action extract: name -> "css" or "css@attr" per matched element'
    )
    attribute: str | None = Field(None, description="action extract: read this attribute")
    all: bool | None = Field(None, description="action extract: every match (default) or first")
    paginate: Paginate | None = Field(None, description="action extract: follow next links")
    steps: list[Step] = Field(default_factory=list, description="what to do, in order")
    session: str | None = Field(
        None,
        pattern=SESSION_NAME,
        description="share cookies and storage with other tasks of this session; loaded from "
        "(and saved to) the vault secret of this name",
    )
    login: list[Step] = Field(
        default_factory=list, description="steps that log in, run when logged_in_when fails"
    )
    logged_in_when: LoggedInWhen | None = None
    isolated: bool = Field(False, description="a fresh browser context, closed after the task")
    viewport: Viewport | None = None
    user_agent: str | None = None
    # above zero: Playwright takes a timeout of 0 as none, so a step could wait for ever
    step_timeout: Duration = Field(10.0, gt=0, description="default time limit of each step")
    navigation_timeout: Duration = Field(30.0, gt=0, description="default time limit of a goto")

    @field_validator("session", mode="before")
    @classmethod
    def _secret_name(cls, session: object) -> object:
        if isinstance(session, str) and not re.fullmatch(SESSION_NAME, session):
            raise PydanticCustomError(
                "browser_config",
                "'{session}' is not a session name: it names the vault secret the session is "
                "kept in",
                {
                    "session": session,
                    "hint": "use letters, digits, _ . and - (at most 128), starting with a "
                    "letter or _, e.g. session: PORTAL_SESSION",
                },
            )
        return session

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, user_agent: str | None) -> str | None:
        if user_agent is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in user_agent):
            raise PydanticCustomError(
                "browser_config",
                "user_agent holds a line break or another control character",
                {"hint": "a user agent is one line of text, e.g. 'Mozilla/5.0 (X11; Linux)'"},
            )
        return user_agent

    @model_validator(mode="after")
    def _coherent(self) -> BrowserConfig:
        if self.action is not None and self.steps:
            raise _config_error(
                "give either action (the shorthand) or steps, not both",
                "add the action as a step, e.g. - extract: .article-list",
            )
        misplaced = [name for name in SHORTHAND_FIELDS if getattr(self, name) is not None]
        if misplaced and self.action != "extract":
            verb = "applies" if len(misplaced) == 1 else "apply"
            raise _config_error(
                f"{', '.join(misplaced)} only {verb} to action: extract",
                "add action: extract, or put them in an extract step",
            )
        if self.action == "extract" and not self.selector:
            raise _config_error("action: extract needs a selector", 'e.g. selector: ".item"')
        if self.url is None and not (self.steps and isinstance(self.steps[0], GotoStep)):
            raise _config_error(
                "the task opens no page: give url, or start the steps with a goto",
                "e.g. url: https://example.org/news",
            )
        if self._types_a_secret() and any(
            isinstance(step, EvaluateStep) for step in [*self.steps, *self.login]
        ):
            raise PydanticCustomError(
                "secret_refused",
                "a task that types a secret may not have evaluate steps, before or after it: "
                "a script can read the value back, or wait for it, and return it in pieces",
                {
                    "hint": "run the evaluate steps in another task, with the same session if "
                    "they need the login"
                },
            )
        if self.login and self.logged_in_when is None:
            raise _config_error(
                "login steps need logged_in_when, which tells when they must run",
                'e.g. logged_in_when: {selector: "a.logout"}',
            )
        return self

    def _types_a_secret(self) -> bool:
        """Whether a step or the URL names a secret (typed into a page or sent in a URL)."""
        shown = [self.url or ""] + [
            step.model_dump_json()
            for step in [*self.steps, *self.login]
            if not isinstance(step, EvaluateStep)
        ]
        return any(VAULT_REFERENCE.search(text) for text in shown)

    def plan(self) -> list[tuple[str, int, BaseStep]]:
        """Every step to run, as (label for errors, number, step)."""
        plan: list[tuple[str, int, BaseStep]] = []
        if self.url is not None:
            plan.append(("url", 0, GotoStep(url=self.url)))
        if self.action == "extract":
            extract = ExtractStep.model_validate(
                {
                    name: getattr(self, name)
                    for name in SHORTHAND_FIELDS
                    if getattr(self, name) is not None
                }
            )
            plan.append(("action", 1, extract))
        elif self.action == "screenshot":
            plan.append(("action", 1, ScreenshotStep()))
        elif self.action == "pdf":
            plan.append(("action", 1, PdfStep()))
        plan += [(f"step {number}", number, step) for number, step in enumerate(self.steps, 1)]
        return plan

    def first_url(self) -> str:
        if self.url is not None:
            return self.url
        first = self.steps[0]
        assert isinstance(first, GotoStep)
        return first.url


def _config_error(message: str, hint: str) -> PydanticCustomError:
    return PydanticCustomError("browser_config", message, {"hint": hint})
