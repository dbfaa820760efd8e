"""The orchestration document's pydantic models: Orchestration, TaskSpec, RetryPolicy,
LimitSpec, FailurePolicy, Budget, the error classes and modes, and the task type names they
accept.

The seed's format is accepted as written: the aliases ``depends_on`` / ``needs``, ``api_call``,
``browser`` and ``data`` are understood.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.document.notify_models import NotifyChannel, notify_setting
from multi_task_orchestrator.engine.document.units import Duration, RateValue, TimeLimit
from multi_task_orchestrator.engine.issues import did_you_mean

# --- task types ---------------------------------------------------------------------------


def canonical_type(name: str) -> str:
    """The canonical task type for a name or alias (the registry's); raises a pydantic error
    naming the known types for an unknown one."""
    key = registry.canonical(name)
    if key is None:
        names = registry.type_names()
        hint = did_you_mean(name, [*names, *registry.aliases()])
        raise PydanticCustomError(
            "unknown_task_type",
            "unknown task type '{name}'; known types: {known}",
            {
                "name": name,
                "known": ", ".join(names),
                "hint": hint or "pick one of the known types",
            },
        )
    return sys.intern(str(key))  # one string per type, not one per task


# --- the models ---------------------------------------------------------------------------


# the built-in classes; runners add their own (``Runner.error_classes``), see error_class_names
class ErrorClass(StrEnum):
    """What kind of failure an attempt ended with; retry policies choose by these."""

    timeout = "timeout"
    network = "network"
    http_429 = "http_429"
    http_5xx = "http_5xx"
    http_4xx = "http_4xx"
    session_expired = "session_expired"
    browser_crashed = "browser_crashed"
    error = "error"
    internal = "internal"  # the engine failed around the attempt (redaction, output, ...)
    crashed = "crashed"  # the task was running when the process died twice
    too_large = "too_large"  # a response or a write over its size limit
    too_deep = "too_deep"  # JSON nested deeper than the limit
    any = "any"


class Mode(StrEnum):
    parallel = "parallel"
    sequential = "sequential"
    mixed = "mixed"


class RunIf(StrEnum):
    all_success = "all_success"
    all_done = "all_done"
    any_failed = "any_failed"
    always = "always"


class Strategy(StrEnum):
    continue_ = "continue"
    abort = "abort"
    retry = "retry"


class Backoff(StrEnum):
    exponential = "exponential"
    linear = "linear"
    fixed = "fixed"


def error_class_names() -> tuple[str, ...]:
    """Every error class ``retry.on`` accepts: the built-in ones, then the runners'."""
    builtin = tuple(ErrorClass)
    return (*builtin, *(name for name in registry.error_classes() if name not in builtin))


def _known_error_class(value: Any) -> Any:
    if not isinstance(value, str) or value in error_class_names():
        return value
    known = error_class_names()
    raise PydanticCustomError(
        "unknown_error_class",
        "unknown error class '{name}'; known classes: {known}",
        {
            "name": value,
            "known": ", ".join(known),
            "hint": did_you_mean(value, known) or "pick one of the known classes",
        },
    )


# schema.py turns this into a reference to an ErrorClass enum that has the runners' too
ErrorClassName = Annotated[
    str,
    AfterValidator(_known_error_class),
    WithJsonSchema({"type": "string", "format": "error-class"}),
]

DEFAULT_RETRY_ON = (
    ErrorClass.timeout,
    ErrorClass.network,
    ErrorClass.http_429,
    ErrorClass.http_5xx,
    ErrorClass.session_expired,
    ErrorClass.browser_crashed,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicy(_Strict):
    """How often and how patiently to try a task again."""

    max_attempts: int = Field(3, ge=1, le=100, description="attempts in all, the first included")
    backoff: Backoff = Backoff.exponential
    initial: Duration = Field(1.0, description="delay before the second attempt")
    max_delay: Duration = Field(30.0, description="the longest delay between attempts")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="growth per exponential step")
    jitter: bool = Field(True, description="randomise delays by up to ±25% to spread retries")
    on: tuple[ErrorClassName, ...] = Field(
        DEFAULT_RETRY_ON, description="error classes that are retried; 'any' retries everything"
    )

    def retries(self, error_class: str) -> bool:
        if ErrorClass.any in self.on or error_class in self.on:
            return True
        # without ``on``, the default also holds what runners declare retryable (overloaded)
        return "on" not in self.model_fields_set and error_class in registry.retried_by_default()

    def delay(self, attempt: int) -> float:
        """The delay after failed attempt number ``attempt`` (1-based), before jitter."""
        match self.backoff:
            case Backoff.fixed:
                delay = self.initial
            case Backoff.linear:
                delay = self.initial * attempt
            case Backoff.exponential:
                delay = self.initial * self.multiplier ** (attempt - 1)
        return min(delay, self.max_delay)


class LimitSpec(_Strict):
    """A named pool: at most ``concurrency`` tasks at once, at most ``rate`` starts."""

    concurrency: int | None = Field(None, ge=1, le=10_000)
    rate: RateValue | None = None

    @model_validator(mode="after")
    def _needs_something(self) -> LimitSpec:
        if self.concurrency is None and self.rate is None:
            raise PydanticCustomError(
                "empty_limit",
                "a limit needs a concurrency, a rate, or both",
                {"hint": "e.g. {concurrency: 2, rate: '10/s'}"},
            )
        return self


class FailurePolicy(_Strict):
    """What the orchestration does when a task fails for good."""

    strategy: Strategy = Strategy.continue_
    max_retries: int = Field(
        3, ge=0, le=100, description="with strategy 'retry': retries for tasks without their own"
    )
    notify: bool = Field(False, description="record a notification event when a task fails")


class Budget(_Strict):
    """What model steps may use: once a limit is reached, no more model steps start (a task
    stopped so fails with class ``budget``). Every attempt's calls count, retries included."""

    tokens: int | None = Field(
        None, ge=1, description="input and output tokens of every model call, added up"
    )
    cost_usd: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,  # .inf is no limit, and no JSON answer can hold it
        description="US dollars, from the model price table (a model without a price counts "
        "against a token budget only)",
    )

    @model_validator(mode="after")
    def _needs_something(self) -> Budget:
        if self.tokens is None and self.cost_usd is None:
            raise PydanticCustomError(
                "empty_budget",
                "a budget needs tokens, cost_usd, or both",
                {"hint": "e.g. budget: {tokens: 50000, cost_usd: 1.50}"},
            )
        return self

    def limits(self) -> dict[str, float]:
        """The limits set, e.g. ``{"tokens": 50000}``."""
        return self.model_dump(exclude_none=True)


DEPENDENCY_SPELLINGS = ("dependencies", "depends_on", "needs")
RESERVED_IDS = frozenset({"vars", "item", "index", "vault"})
TASK_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$"
TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN)]


# Slotted: a run holds one per task (100,000 in a large run), and a model's ``__dict__`` and
# fields-set would triple its size. Validated with ``parse_task`` or as part of Orchestration.
@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid", populate_by_name=True))
class TaskSpec:
    """One task of the DAG."""

    id: TaskId
    type: Annotated[str, BeforeValidator(lambda v: canonical_type(v) if isinstance(v, str) else v)]
    name: str | None = Field(default=None, description="a display name; defaults to the id")
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    dependencies: tuple[TaskId, ...] = Field(
        default=(), validation_alias=AliasChoices(*DEPENDENCY_SPELLINGS)
    )
    priority: int = Field(default=0, description="higher runs first when slots are scarce")
    timeout: TimeLimit | None = Field(default=None, description="limit on each attempt")
    retry: RetryPolicy | None = None
    run_if: RunIf = RunIf.all_success
    for_each: str | list[Any] | None = Field(
        default=None, description="fan out: one child task per item; ${item} and ${index} inside"
    )
    max_concurrent: int | None = Field(
        default=None, ge=1, description="cap on this task's fan-out children"
    )
    allow_partial: bool = Field(
        default=False, description="a fan-out succeeds even if children fail"
    )
    limit: tuple[str, ...] = Field(default=(), description="named limits this task counts against")
    stage: int | None = Field(default=None, ge=0, description="the stage in mixed mode")
    budget: Budget | None = Field(
        default=None,
        description="this task's own budget for its model calls (a fan-out: all its items')",
    )

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise PydanticCustomError(
                "reserved_id",
                "'{id}' cannot be a task id: it is a reserved name in references",
                {"id": value, "hint": f"rename the task, e.g. '{value}_task'"},
            )
        return value

    @field_validator("for_each", mode="before")
    @classmethod
    def _list_or_reference(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | list):
            return value
        raise PydanticCustomError(
            "for_each",
            "for_each must be a list or a reference to one, not {kind}",
            {
                "kind": type(value).__name__,
                "hint": 'e.g. for_each: [a, b, c] or for_each: "${fetch.output.items}"',
            },
        )

    @field_validator("dependencies", "limit", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else value

    @property
    def label(self) -> str:
        return self.name or self.id


@functools.cache
def _task_adapter() -> TypeAdapter[TaskSpec]:
    return TypeAdapter(TaskSpec)


def parse_task(data: Any) -> TaskSpec:
    """One task from its document form; raises pydantic's ValidationError."""
    return _task_adapter().validate_python(data)


def task_field_names() -> list[str]:
    """TaskSpec's fields, in the document's order."""
    return [item.name for item in dataclasses.fields(TaskSpec)]


class Orchestration(_Strict):
    """A whole document: tasks, how they run together, and what happens on failure."""

    name: str = "orchestration"
    description: str | None = None
    mode: Mode = Mode.parallel
    max_concurrent: int = Field(10, ge=1, le=10_000, description="tasks running at once")
    vars: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, LimitSpec] = Field(default_factory=dict)
    timeout: TimeLimit | None = Field(None, description="limit on the whole run")
    tasks: list[TaskSpec] = Field(min_length=1)
    on_failure: FailurePolicy = Field(default_factory=FailurePolicy)
    budget: Budget | None = Field(
        None, description="what the run's model steps may use in all: a hard stop"
    )
    notify: Annotated[bool | list[NotifyChannel], WrapValidator(notify_setting)] = Field(
        False,
        description="true: the settings' default channel; or channels {url, events, secret}",
    )

    def task(self, task_id: str) -> TaskSpec:
        return next(task for task in self.tasks if task.id == task_id)
