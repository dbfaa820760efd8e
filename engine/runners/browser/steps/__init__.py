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

- ``models``: the step models, one per kind; ``shapes``: the shorthands and the ``Step`` type.
- ``page``: what every step needs of the page (reveal, redact, ...) and the ``Outcome``.
- ``actions``: the steps that act (goto, click, fill, ..., assert); ``reading``: those that
  read (extract, evaluate, screenshot, pdf); ``dispatch``: ``StepRunner``, which carries out
  any step and classes its failure.
"""

from multi_task_orchestrator.engine.runners.browser.steps.dispatch import StepRunner
from multi_task_orchestrator.engine.runners.browser.steps.models import (
    STEP_MODELS,
    VAULT_REFERENCE,
    AssertStep,
    BaseStep,
    CheckStep,
    ClickStep,
    EvaluateStep,
    ExtractStep,
    FillStep,
    GotoStep,
    HoverStep,
    Paginate,
    PdfStep,
    PressStep,
    ScreenshotStep,
    ScrollStep,
    SelectStep,
    StepFailed,
    TypeStep,
    WaitForStep,
)
from multi_task_orchestrator.engine.runners.browser.steps.page import (
    Outcome,
    host_of,
    url_matches,
)
from multi_task_orchestrator.engine.runners.browser.steps.reading import (
    MAX_LOGGED_RESULT,
    URL_ATTRIBUTES,
)
from multi_task_orchestrator.engine.runners.browser.steps.shapes import Step

__all__ = [
    "MAX_LOGGED_RESULT",
    "STEP_MODELS",
    "URL_ATTRIBUTES",
    "VAULT_REFERENCE",
    "AssertStep",
    "BaseStep",
    "CheckStep",
    "ClickStep",
    "EvaluateStep",
    "ExtractStep",
    "FillStep",
    "GotoStep",
    "HoverStep",
    "Outcome",
    "Paginate",
    "PdfStep",
    "PressStep",
    "ScreenshotStep",
    "ScrollStep",
    "SelectStep",
    "Step",
    "StepFailed",
    "StepRunner",
    "TypeStep",
    "WaitForStep",
    "host_of",
    "url_matches",
]
