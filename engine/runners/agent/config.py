"""The ``agent`` task's config: the model (as an ``llm`` task names it, checked the same way),
the task, the tools it may call, and the limits of its loop."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.runners.llm.config import (
    DEFAULT_TIMEOUT,
    LlmConfig,
    ModelCallConfig,
    PromptText,
    Provider,
)

DEFAULT_MAX_STEPS = 10
DEFAULT_STEP_TOKENS = 4096


def _described_as_in_llm(name: str) -> str | None:
    return LlmConfig.model_fields[name].description


class ToolSource(BaseModel):
    """One MCP server whose tools the agent may call, optionally only some of them."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(
        min_length=1,
        description="an MCP server, by its name in the servers file (ORCHESTRATOR_MCP_SERVERS)",
    )
    only: list[str] | None = Field(
        None, min_length=1, description="the server's tools the agent may call (default: all)"
    )


def _short_form(value: Any) -> Any:
    return {"server": value} if isinstance(value, str) else value


class AgentConfig(ModelCallConfig):
    """Config of an ``agent`` task: a bounded tool-use loop."""

    provider: Provider = Field(description=_described_as_in_llm("provider"))
    model: str = Field(min_length=1, description=_described_as_in_llm("model"))
    instructions: PromptText | None = Field(None, description="the system prompt")
    prompt: PromptText = Field(
        description="the task, as the first user message; references feed it other tasks' outputs"
    )
    tools: list[ToolSource] = Field(
        default_factory=list,
        description="the MCP servers (names in the servers file) whose tools the model may "
        "call: a name, or {server: NAME, only: [tool, ...]}",
    )
    max_steps: int = Field(
        DEFAULT_MAX_STEPS,
        ge=1,
        le=200,
        description="the most model calls; a model still calling tools at the last one fails "
        "the task with class max_steps",
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=100_000_000,
        description="the most tokens (input and output, every step added up); once reached, "
        "the task fails with class max_tokens",
    )
    step_max_tokens: int = Field(
        DEFAULT_STEP_TOKENS, ge=1, le=1_000_000, description="the most tokens one step generates"
    )
    timeout: Duration | None = Field(
        None,
        gt=0,
        description="limit on the whole loop, e.g. 5m; once passed, the task fails with class "
        "timeout",
    )
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    output: Literal["text", "json"] | None = Field(
        None,
        description="text (the default) or json: the final answer parsed as JSON; schema "
        "implies json",
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="a JSON Schema the final answer must satisfy; one repair attempt, then the "
        "task fails with invalid_output",
    )
    api_key: str | None = Field(None, description=_described_as_in_llm("api_key"))
    base_url: str | None = Field(None, description=_described_as_in_llm("base_url"))

    @field_validator("tools", mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        return [_short_form(item) for item in value] if isinstance(value, list) else value

    def step_config(self, max_tokens: int, timeout: float | None) -> LlmConfig:
        """One step's model call, as the ``llm`` providers take it."""
        return LlmConfig.model_construct(
            provider=self.provider,
            model=self.model,
            system=None,
            prompt="",
            max_tokens=max_tokens,
            temperature=self.temperature,
            output=None,
            json_schema=None,
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=min(timeout, DEFAULT_TIMEOUT) if timeout is not None else DEFAULT_TIMEOUT,
        )
