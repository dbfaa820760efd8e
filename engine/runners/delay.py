"""The ``delay`` task type: sleep, then return a value or fail on purpose — for tests and demos.

``fail`` makes every attempt fail with that error class after sleeping; ``fail_attempts: N``
fails only the first N attempts (with ``fail``, or ``network`` when ``fail`` is not given) and
then succeeds, which shows retries at work. ``retry_after`` asks the scheduler for a specific
delay before the next attempt, as an HTTP ``Retry-After`` header would.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine.document.models import ErrorClass
from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig

FAILURE_CLASSES: tuple[str, ...] = (
    *(error_class.value for error_class in ErrorClass if error_class is not ErrorClass.any),
    "config",
)


class DelayConfig(RunnerConfig):
    """Config of a ``delay`` task."""

    seconds: Duration = Field(0.0, description="how long to sleep, e.g. 2s or 0.5")
    value: Any = Field(None, description='the output; {"slept": seconds} when not given')
    fail: str | None = Field(
        None, description="fail with this error class after sleeping, e.g. network, http_429"
    )
    message: str | None = Field(None, description="the failure message")
    fail_attempts: int | None = Field(
        None, ge=1, description="fail only the first N attempts, then succeed"
    )
    retry_after: Duration | None = Field(
        None, description="the delay to ask for before the next attempt"
    )

    @field_validator("fail")
    @classmethod
    def _known_class(cls, fail: str | None) -> str | None:
        if fail is not None and fail not in FAILURE_CLASSES:
            hint = did_you_mean(fail, FAILURE_CLASSES) or f"use one of {', '.join(FAILURE_CLASSES)}"
            raise PydanticCustomError(
                "error_class", "unknown error class '{fail}'", {"fail": fail, "hint": hint}
            )
        return fail

    @model_validator(mode="after")
    def _failure_options(self) -> DelayConfig:
        if self.fail is None and self.fail_attempts is not None:
            self.fail = "network"
        if self.fail is None:
            misplaced = [n for n in ("message", "retry_after") if getattr(self, n) is not None]
            if misplaced:
                raise ValidationError.from_exception_data(
                    type(self).__name__,
                    [
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "delay_config",
                                "'{name}' only applies to a failing delay",
                                {"name": name, "hint": "add 'fail: network' or 'fail_attempts: 1'"},
                            ),
                            loc=(name,),
                            input=getattr(self, name),
                        )
                        for name in misplaced
                    ],
                )
        return self

    @property
    def output(self) -> Any:
        return self.value if "value" in self.model_fields_set else {"slept": self.seconds}


class DelayRunner(Runner[DelayConfig]):
    """Sleeps (cancellably), then returns ``value`` or raises the configured failure."""

    type_name: ClassVar[str] = "delay"
    listing_rank: ClassVar[int] = 70
    config_model: ClassVar[type[DelayConfig]] = DelayConfig
    summary: ClassVar[str] = (
        "Sleeps for a while, then returns a given value or fails with a chosen error class "
        "(optionally only for the first attempts); for tests and demos."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "flaky_step",
        "type": "delay",
        "config": {"seconds": "1s", "fail_attempts": 1, "value": {"ok": True}},
        "retry": {"max_attempts": 3, "initial": "1s"},
        "dependencies": [],
    }

    async def run(self, config: DelayConfig, ctx: RunContext) -> Any:
        await asyncio.sleep(config.seconds)
        failing = config.fail is not None and (
            config.fail_attempts is None or ctx.attempt <= config.fail_attempts
        )
        if failing:
            error_class = config.fail or "network"
            message = config.message or f"simulated {error_class} failure (attempt {ctx.attempt})"
            ctx.log(
                f"slept {config.seconds:g}s, failing attempt {ctx.attempt} with {error_class}",
                level="warning",
            )
            raise TaskError(message, error_class, retry_after=config.retry_after)
        ctx.log(f"slept {config.seconds:g}s")
        return config.output


RUNNER = DelayRunner
