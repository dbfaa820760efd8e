"""The delay runner: sleeping, returning a value, and failing on purpose with an error class."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners import discover
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.delay import RUNNER, DelayRunner

pytestmark = pytest.mark.anyio

LogLine = tuple[str, str, dict[str, Any] | None]


async def run(config: dict[str, Any], ctx: RunContext) -> Any:
    runner = RUNNER()
    return await runner.run(runner.parse_config(config), ctx)


async def failure(config: dict[str, Any], ctx: RunContext) -> TaskError:
    with pytest.raises(TaskError) as caught:
        await run(config, ctx)
    return caught.value


def invalid(config: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        RUNNER().parse_config(config)
    return caught.value.errors(include_url=False)


def test_discovery_finds_delay() -> None:
    assert discover()["delay"] is DelayRunner


def test_example_is_a_valid_task() -> None:
    assert RUNNER.example["type"] == RUNNER.type_name == "delay"
    config = RUNNER().parse_config(RUNNER.example["config"])
    assert (config.seconds, config.fail, config.fail_attempts) == (1.0, "network", 1)


def test_seconds_take_durations() -> None:
    assert RUNNER().parse_config({"seconds": "250ms"}).seconds == 0.25
    assert RUNNER().parse_config({"seconds": "1m30s"}).seconds == 90.0
    assert RUNNER().parse_config({}).seconds == 0.0
    (error,) = invalid({"seconds": "soon"})
    assert (error["loc"], error["msg"]) == (("seconds",), "'soon' is not a duration")


async def test_default_output_reports_the_sleep(ctx: RunContext, log_lines: list[LogLine]) -> None:
    assert await run({"seconds": 0.01}, ctx) == {"slept": 0.01}
    assert log_lines == [("info", "slept 0.01s", None)]


async def test_returns_the_given_value_even_null(ctx: RunContext) -> None:
    assert await run({"value": {"rows": [1, 2]}}, ctx) == {"rows": [1, 2]}
    assert await run({"value": None}, ctx) is None


async def test_fails_with_the_given_class_message_and_retry_after(
    ctx: RunContext, log_lines: list[LogLine]
) -> None:
    config = {"fail": "http_429", "message": "slow down", "retry_after": "2s"}
    error = await failure(config, ctx)
    assert (error.message, error.error_class, error.retry_after) == ("slow down", "http_429", 2.0)
    assert log_lines == [("warning", "slept 0s, failing attempt 1 with http_429", None)]


async def test_default_failure_message_names_class_and_attempt(ctx: RunContext) -> None:
    error = await failure({"fail": "timeout"}, dataclasses.replace(ctx, attempt=4))
    assert (error.message, error.error_class, error.retry_after) == (
        "simulated timeout failure (attempt 4)",
        "timeout",
        None,
    )


async def test_fail_attempts_fails_the_first_attempts_then_succeeds(ctx: RunContext) -> None:
    config = {"fail_attempts": 2, "value": "done"}
    outcomes = []
    for attempt in (1, 2, 3, 4):
        try:
            outcomes.append(await run(config, dataclasses.replace(ctx, attempt=attempt)))
        except TaskError as error:
            outcomes.append(error.error_class)
    assert outcomes == ["network", "network", "done", "done"]


async def test_fail_attempts_uses_the_given_class(ctx: RunContext) -> None:
    config = {"fail_attempts": 1, "fail": "http_5xx"}
    assert (await failure(config, ctx)).error_class == "http_5xx"
    assert await run(config, dataclasses.replace(ctx, attempt=2)) == {"slept": 0.0}


async def test_sleep_is_cancellable(ctx: RunContext) -> None:
    task = asyncio.create_task(run({"seconds": 3600}, ctx))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_unknown_error_class_suggests_the_near_one() -> None:
    (error,) = invalid({"fail": "netwrok"})
    assert (error["loc"], error["msg"]) == (("fail",), "unknown error class 'netwrok'")
    assert error["ctx"]["hint"] == "did you mean 'network'?"


def test_failure_options_need_a_failure() -> None:
    errors = invalid({"message": "boom", "retry_after": 0})
    assert [(error["loc"], error["msg"]) for error in errors] == [
        (("message",), "'message' only applies to a failing delay"),
        (("retry_after",), "'retry_after' only applies to a failing delay"),
    ]


def test_unknown_keys_and_bad_counts_are_errors() -> None:
    (error,) = invalid({"second": 1})
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("second",))
    (error,) = invalid({"fail_attempts": 0})
    assert error["loc"] == ("fail_attempts",)
