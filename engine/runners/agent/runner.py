"""The ``agent`` runner: the loop of one attempt (``loop``), its tools from the ``mcp`` runner's
sessions (``toolbox``), its transcript saved whatever the outcome (``transcript``), and its
output ``{text | data, model, steps, tool_calls, usage, cost_usd, stop_reason, transcript}``."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.agent.config import AgentConfig
from multi_task_orchestrator.engine.runners.agent.loop import AgentLoop
from multi_task_orchestrator.engine.runners.agent.toolbox import Toolbox
from multi_task_orchestrator.engine.runners.agent.transcript import Transcript
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.llm import LlmRunner
from multi_task_orchestrator.engine.runners.llm.answers import json_instruction
from multi_task_orchestrator.engine.runners.llm.prices import Price, price_table
from multi_task_orchestrator.engine.runners.mcp import McpRunner

MAX_WARNED = 10_000  # (run, model) pairs remembered for the "no price" warning


class AgentRunner(Runner[AgentConfig]):
    """A model with tools from named MCP servers, in a bounded loop; see the package docstring."""

    type_name: ClassVar[str] = "agent"
    listing_rank: ClassVar[int] = 30
    config_model: ClassVar[type[AgentConfig]] = AgentConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key"})
    error_classes: ClassVar[frozenset[str]] = frozenset(
        {"max_steps", "max_tokens", "budget", "invalid_output", "overloaded", "auth"}
    )
    retried_by_default: ClassVar[frozenset[str]] = frozenset({"overloaded"})
    # its attempts call models: budgets keep them from starting once spent
    spends_budget: ClassVar[bool] = True
    runs_in_engine: ClassVar[bool] = True  # its tools are the server's MCP sessions
    summary: ClassVar[str] = (
        "A model in a bounded tool-use loop with tools from named MCP servers (the servers "
        "file): max_steps, max_tokens, timeout and budgets stop it; each step an event; the "
        "transcript saved as an artifact; the answer as text or schema-checked JSON."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "triage",
        "type": "agent",
        # a model served by Ollama on this machine, which needs no key; for Anthropic:
        # provider: anthropic, model: claude-sonnet-4-5, api_key: ${vault.ANTHROPIC_API_KEY}
        "config": {
            "provider": "openai",
            "base_url": "http://127.0.0.1:11434/v1",
            "model": "llama3.2",
            "instructions": "You read files to answer questions. Quote what you found.",
            "prompt": "Which of the notes in /data/notes mention a deadline?",
            "tools": [{"server": "files", "only": ["list_directory", "read_text_file"]}],
            "max_steps": 8,
            "max_tokens": 50000,
            "timeout": "5m",
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string"}}},
                "required": ["files"],
            },
        },
        "retry": {"max_attempts": 2, "on": ["network", "http_429", "overloaded"]},
    }

    def __init__(self, settings: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self._mcp: McpRunner | None = None
        self._llm: LlmRunner | None = None
        self._warned: set[tuple[str, str]] = set()  # (run, model) told it has no price

    def use_runners(self, runners: Mapping[str, Runner[Any]]) -> None:
        mcp, llm = runners.get("mcp"), runners.get("llm")
        self._mcp = mcp if isinstance(mcp, McpRunner) else None
        self._llm = llm if isinstance(llm, LlmRunner) else None

    @property
    def prices(self) -> dict[str, Price]:
        """The llm runner's price table (ORCHESTRATOR_LLM_PRICES over the shipped one)."""
        return self._llm.prices if self._llm is not None else price_table(None)

    async def run(self, config: AgentConfig, ctx: RunContext) -> Any:
        providers = await asyncio.to_thread(
            importlib.import_module, "multi_task_orchestrator.engine.runners.llm.providers"
        )
        system = config.instructions
        if config.wants_json:
            system = "\n\n".join(filter(None, [system, json_instruction(config.json_schema)]))
        scope: asyncio.Timeout | None = None
        transcript = Transcript(config.provider, config.model, system, [])
        loop: AgentLoop | None = None
        try:
            async with asyncio.timeout(config.timeout) as scope:
                toolbox = await Toolbox.open(config.tools, self._mcp, ctx)
                transcript.tools = toolbox.labels()
                loop = AgentLoop(
                    config,
                    ctx,
                    toolbox,
                    transcript,
                    providers,
                    self.prices,
                    system,
                    lambda model: self._warn_unpriced(ctx, model),
                )
                answer = await loop.run()
        except TimeoutError:
            if scope is None or not scope.expired():
                raise
            steps = loop.tally.steps if loop is not None else 0
            failure = TaskError(
                f"the agent did not finish within its timeout ({config.timeout:g} s, "
                f"{steps} steps)",
                "timeout",
            )
            raise await self._stopped(ctx, transcript, failure) from None
        except TaskError as exc:
            raise await self._stopped(ctx, transcript, exc) from None
        ctx.waiting(None)
        name = await transcript.save(ctx)
        tally = loop.tally
        return {
            **{key: value for key, value in answer.items() if key != "stop_reason"},
            "model": tally.model or config.model,
            "steps": tally.steps,
            "tool_calls": tally.tool_calls,
            "usage": {"input_tokens": tally.input_tokens, "output_tokens": tally.output_tokens},
            "cost_usd": tally.cost_usd,
            "stop_reason": answer["stop_reason"],
            "transcript": name,
        }

    async def _stopped(self, ctx: RunContext, transcript: Transcript, exc: TaskError) -> TaskError:
        """``exc`` once the transcript is saved, naming it when it holds a turn."""
        ctx.waiting(None)
        if not transcript.turns:
            return exc
        transcript.stop_reason, transcript.error = exc.error_class, exc.message
        name = await transcript.save(ctx)
        return TaskError(
            f"{exc.message} (transcript: {name})", exc.error_class, retry_after=exc.retry_after
        )

    def _warn_unpriced(self, ctx: RunContext, model: str) -> None:
        if (ctx.orchestration_id, model) in self._warned:
            return
        if len(self._warned) >= MAX_WARNED:
            self._warned.clear()
        self._warned.add((ctx.orchestration_id, model))
        ctx.log(
            f"no price for model {model}: its cost is shown as null; add it to "
            "ORCHESTRATOR_LLM_PRICES to count it",
            level="warning",
        )
