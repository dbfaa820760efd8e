"""The ``llm`` runner: one model call, its answer as text or schema-checked JSON, its usage
and cost."""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.llm.answers import (
    InvalidAnswer,
    json_instruction,
    parse_answer,
    repair_request,
)
from multi_task_orchestrator.engine.runners.llm.config import LlmConfig, LlmSettings
from multi_task_orchestrator.engine.runners.llm.prices import Price, price_of, price_table

MAX_WARNED = 10_000  # (run, model) pairs remembered for the "no price" warning


class LlmRunner(Runner[LlmConfig]):
    """Calls a model once (twice when a JSON answer needs its one repair)."""

    type_name: ClassVar[str] = "llm"
    listing_rank: ClassVar[int] = 25
    config_model: ClassVar[type[LlmConfig]] = LlmConfig
    settings_model: ClassVar[type[LlmSettings]] = LlmSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key"})
    error_classes: ClassVar[frozenset[str]] = frozenset({"invalid_output", "overloaded", "auth"})
    retried_by_default: ClassVar[frozenset[str]] = frozenset({"overloaded"})
    spends_budget: ClassVar[bool] = True
    summary: ClassVar[str] = (
        "Calls a model once: Anthropic or any OpenAI-compatible endpoint (Ollama, vLLM, "
        "OpenRouter...), key from the vault; prompt fed by other tasks' outputs; text or JSON "
        "checked against a schema (one repair); output with usage and cost."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "summarise",
        "type": "llm",
        "dependencies": ["fetch_page"],
        # a model served by Ollama on this machine, which needs no key; for Anthropic:
        # provider: anthropic, model: claude-sonnet-4-5, api_key: ${vault.ANTHROPIC_API_KEY}
        "config": {
            "provider": "openai",
            "base_url": "http://127.0.0.1:11434/v1",
            "model": "llama3.2",
            "system": "You write short, factual summaries.",
            "prompt": "Summarise this page in three sentences:\n${fetch_page.output.data}",
            "schema": {
                "type": "object",
                "properties": {"summary": {"type": "string"}, "topics": {"type": "array"}},
                "required": ["summary", "topics"],
            },
        },
        "retry": {"max_attempts": 3, "on": ["timeout", "network", "http_429", "overloaded"]},
    }

    def __init__(self, settings: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self._warned: set[tuple[str, str]] = set()  # (run, model) told it has no price

    @functools.cached_property
    def prices(self) -> dict[str, Price]:
        """The shipped price table with the settings' entries over it."""
        return price_table(self.settings_as(LlmSettings).prices)

    async def run(self, config: LlmConfig, ctx: RunContext) -> Any:
        providers = await asyncio.to_thread(
            importlib.import_module, "multi_task_orchestrator.engine.runners.llm.providers"
        )
        schema = config.json_schema
        system = config.system
        if config.wants_json:
            system = "\n\n".join(filter(None, [system, json_instruction(schema)]))
        messages = [{"role": "user", "content": config.prompt}]
        answers = [await providers.ask(config, messages, system, ctx)]
        self._note(ctx, config, answers[-1])
        output: dict[str, Any]
        if not config.wants_json:
            output = {"text": answers[-1].text}
        else:
            try:
                data = parse_answer(answers[-1].text, schema)
            except InvalidAnswer as problem:
                left = ctx.budget_left()
                if left is not None and left.spent:
                    raise TaskError(
                        f"the answer is not the JSON asked for ({problem}), and the repair "
                        f"call was not made: {left.stop_message()}",
                        "budget",
                    ) from None
                ctx.log(f"the answer is not the JSON asked for: {problem}; asking once more")
                messages += [
                    {"role": "assistant", "content": answers[-1].text or "(no answer)"},
                    {"role": "user", "content": repair_request(str(problem))},
                ]
                answers.append(await providers.ask(config, messages, system, ctx))
                self._note(ctx, config, answers[-1])
                try:
                    data = parse_answer(answers[-1].text, schema)
                except InvalidAnswer as again:
                    raise TaskError(
                        f"the answer is not the JSON asked for, even after one repair: {again}",
                        "invalid_output",
                    ) from None
            output = {"data": data}
        return {
            **output,
            "model": answers[-1].model,
            "usage": {
                "input_tokens": sum(answer.input_tokens for answer in answers),
                "output_tokens": sum(answer.output_tokens for answer in answers),
            },
            "cost_usd": self._cost(ctx, answers),
            "stop_reason": answers[-1].stop_reason,
        }

    def _note(self, ctx: RunContext, config: LlmConfig, answer: Any) -> None:
        """Log the call and count it against the attempt, the task, the run and budgets."""
        ctx.log(
            f"{config.provider} answered ({answer.stop_reason or 'no stop reason'})",
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
        )
        price = price_of(self.prices, answer.model)
        ctx.record_usage(
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            cost_usd=price.cost(answer.input_tokens, answer.output_tokens) if price else None,
            model=answer.model,
        )

    def _cost(self, ctx: RunContext, answers: list[Any]) -> float | None:
        """The calls' cost in US dollars; None (and a warning, once per run and model) when a
        model has no price."""
        total = 0.0
        for answer in answers:
            price = price_of(self.prices, answer.model)
            if price is None:
                self._warn_unpriced(ctx, answer.model)
                return None
            total += price.cost(answer.input_tokens, answer.output_tokens)
        return round(total, 6)

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
