"""The runners' settings as settings: each documented variable reaches its runner's settings
object (``http`` and ``multi_publish`` share theirs), a bad value is an error naming the
variable, the configuration table lists each once, and a plug-in cannot take a variable another
setting already has."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.runners.browser import BrowserSettings
from multi_task_orchestrator.engine.runners.files import FileSettings
from multi_task_orchestrator.engine.runners.http import HttpSettings
from multi_task_orchestrator.engine.runners.llm.config import LlmSettings
from multi_task_orchestrator.engine.runners.shell import ShellSettings
from multi_task_orchestrator.server import runner_settings
from multi_task_orchestrator.server.settings import (
    CoreSettings,
    Settings,
    SettingsError,
    load_settings,
)
from multi_task_orchestrator.server.settings_doc import settings_table

PRICES = '{"my-model": {"input": 1, "output": 2}}'
DOCUMENTED = {
    "ORCHESTRATOR_MAX_RESPONSE_BYTES": ("http", "max_response_bytes", "1MiB", 1024 * 1024),
    "ORCHESTRATOR_MAX_WRITE_BYTES": ("file_processing", "max_write_bytes", "4KiB", 4096),
    "ORCHESTRATOR_BROWSER_PATH": ("browser_automation", "path", "/opt/chrome", Path("/opt/chrome")),
    "ORCHESTRATOR_BROWSER_LIMIT": ("browser_automation", "limit", "7", 7),
    "ORCHESTRATOR_ALLOW_SHELL": ("shell", "allow", "1", True),
    "ORCHESTRATOR_LLM_PRICES": ("llm", "prices", PRICES, PRICES),
    "ORCHESTRATOR_MCP_CONCURRENCY": ("mcp", "concurrency", "7", 7),
    "ORCHESTRATOR_MCP_CONNECT_TIMEOUT": ("mcp", "connect_timeout", "2.5", 2.5),
}
BAD = {
    "ORCHESTRATOR_MAX_RESPONSE_BYTES": "lots",
    "ORCHESTRATOR_MAX_WRITE_BYTES": "0",
    "ORCHESTRATOR_BROWSER_LIMIT": "0",
    "ORCHESTRATOR_ALLOW_SHELL": "perhaps",
    "ORCHESTRATOR_LLM_PRICES": '{"my-model": {"input": "cheap"}}',
    "ORCHESTRATOR_MCP_CONCURRENCY": "0",
    "ORCHESTRATOR_MCP_SERVERS": "/nonexistent/servers.json",
}


@pytest.mark.parametrize("variable", sorted(DOCUMENTED))
def test_each_documented_variable_reaches_its_runner(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    type_name, field, text, value = DOCUMENTED[variable]
    monkeypatch.setenv(variable, text)

    settings = Settings()
    by_type = settings.runner_settings()

    assert getattr(by_type[type_name], field) == value
    assert settings.explicit_runner_settings()[type_name] == {field: value}
    assert getattr(settings, variable.removeprefix("ORCHESTRATOR_").lower()) == value


def test_defaults_and_the_shared_http_settings() -> None:
    by_type = Settings().runner_settings()

    assert by_type["http"] == by_type["multi_publish"] == HttpSettings()
    assert by_type["file_processing"] == FileSettings()
    assert by_type["browser_automation"] == BrowserSettings()
    assert by_type["shell"] == ShellSettings(allow=False)
    assert by_type["llm"] == LlmSettings(prices=None)
    assert Settings().explicit_runner_settings() == {}
    assert Settings(max_response_bytes=2048).runner_setting(HttpSettings).max_response_bytes == 2048


@pytest.mark.parametrize("variable", sorted(BAD))
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, BAD[variable])

    with pytest.raises(SettingsError, match=f"invalid setting: {variable}: "):
        load_settings()


def test_without_a_runner_variable_no_runner_is_imported_for_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runners' settings are then all at their defaults: the core settings serve, and the
    full model (which imports every runner) is built once a runner's variable is set."""
    for name in [name for name in os.environ if name.upper().startswith("ORCHESTRATOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORCHESTRATOR_MAX_TASKS", "7")

    core = load_settings()
    assert type(core) is CoreSettings and core.max_tasks == 7
    assert core.runner_settings() == {} == core.explicit_runner_settings()
    assert core.runner_setting(BrowserSettings) == BrowserSettings()

    monkeypatch.setenv("orchestrator_browser_limit", "3")  # read whatever its case
    full = load_settings()
    assert type(full) is Settings and full.max_tasks == 7
    assert full.runner_setting(BrowserSettings).limit == 3


def test_the_table_lists_each_runner_variable_once() -> None:
    variables = [row.split("`")[1] for row in settings_table().splitlines()[2:]]

    assert len(variables) == len(set(variables))
    assert set(DOCUMENTED) <= set(variables)
    runner_variables = [  # after the orchestrator's own, in type order
        "ORCHESTRATOR_MAX_RESPONSE_BYTES",
        "ORCHESTRATOR_BROWSER_PATH",
        "ORCHESTRATOR_BROWSER_LIMIT",
        "ORCHESTRATOR_LLM_PRICES",
        "ORCHESTRATOR_MAX_WRITE_BYTES",
        "ORCHESTRATOR_EMAIL_MAX_ATTACHMENT_BYTES",
        "ORCHESTRATOR_EMAIL_MAX_BODY_CHARS",
        "ORCHESTRATOR_MCP_SERVERS",
        "ORCHESTRATOR_MCP_CONCURRENCY",
        "ORCHESTRATOR_MCP_CONNECT_TIMEOUT",
        "ORCHESTRATOR_ALLOW_SHELL",
    ]
    assert variables[-len(runner_variables) :] == runner_variables


# --- names and conflicts ------------------------------------------------------------------


class GreedySettings(BaseModel):
    tasks: int = Field(5, description="would be ORCHESTRATOR_MAX_TASKS")
    limit: int = Field(
        2,
        description="would be ORCHESTRATOR_BROWSER_LIMIT",
        json_schema_extra={"env": "ORCHESTRATOR_BROWSER_LIMIT"},
    )
    level: int = Field(1, description="a setting of its own")
    hidden: int = Field(0, exclude=True)


class GreedyRunner(Runner[RunnerConfig]):
    type_name: ClassVar[str] = "max"
    config_model = RunnerConfig
    settings_model = GreedySettings
    summary = "takes names"
    example: ClassVar[dict[str, Any]] = {}

    async def run(self, config: RunnerConfig, ctx: RunContext) -> Any:
        return None


@pytest.fixture
def greedy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    classes = {**registry.runner_classes(), "max": GreedyRunner}
    monkeypatch.setattr(registry, "runner_classes", lambda: classes)
    derived = (runner_settings.declared, registry.type_names, registry.aliases)
    for cached in derived:  # what the registry derives from its classes, cached
        cached.cache_clear()
    yield
    for cached in derived:
        cached.cache_clear()


def test_a_plugin_cannot_take_a_variable_another_setting_has(
    greedy: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        found = runner_settings.declared(frozenset(CoreSettings.model_fields))

    mine = [(s.variable, s.field) for s in found if s.model is GreedySettings]
    assert mine == [("ORCHESTRATOR_MAX_LEVEL", "level")]
    assert "the max runner's setting tasks is ignored: ORCHESTRATOR_MAX_TASKS" in caplog.text
    assert "the max runner's setting limit is ignored: ORCHESTRATOR_BROWSER_LIMIT" in caplog.text


def test_derived_names() -> None:
    info = GreedySettings.model_fields["level"]
    assert runner_settings.variable_of("echo-upper.v2", "level", info) == (
        "ORCHESTRATOR_ECHO_UPPER_V2_LEVEL"
    )
    assert runner_settings.variable_of("x", "limit", GreedySettings.model_fields["limit"]) == (
        "ORCHESTRATOR_BROWSER_LIMIT"
    )
