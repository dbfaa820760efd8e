"""One agent attempt's loop: ask the model (offering the tools), run the calls it asks for,
feed their results back, until it answers without calling a tool — or a limit stops it.

A step is one model call. The limits, each a classed failure naming itself: ``max_steps`` (the
model still calls tools at the last step), ``max_tokens`` (the steps' tokens, input and output,
reached the limit before the answer), ``budget`` (a budget over the task is spent), and the
runner's ``timeout``. Each model call and each tool call is an event (``ctx.log`` with the step,
the tool, the tokens; arguments and results redacted and cut), and the status's
``waiting_for`` shows the step ("step 3: calling files.read_text_file").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.agent.budget import budget_spent, record_call
from multi_task_orchestrator.engine.runners.agent.config import AgentConfig
from multi_task_orchestrator.engine.runners.agent.toolbox import Toolbox
from multi_task_orchestrator.engine.runners.agent.transcript import Transcript
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.llm.answers import (
    InvalidAnswer,
    parse_answer,
    repair_request,
)
from multi_task_orchestrator.engine.runners.llm.prices import Price, price_of
from multi_task_orchestrator.engine.runners.llm.tool_use import (
    Message,
    ToolResult,
    assistant_turn,
    result_turns,
)

SHOWN_CHARS = 300  # of a tool's arguments or result, in an event


@dataclass(slots=True)
class Tally:
    """What the loop has used so far."""

    steps: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0  # None once a model without a price answered
    model: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class AgentLoop:
    """The loop of one attempt; ``run`` gives the final answer's output fields."""

    config: AgentConfig
    ctx: RunContext
    toolbox: Toolbox
    transcript: Transcript
    providers: Any  # the llm runner's providers module, imported in a thread
    prices: dict[str, Price]
    system: str | None
    on_unpriced: Callable[[str], None]
    tally: Tally = field(default_factory=Tally)
    messages: list[Message] = field(default_factory=list)

    async def run(self) -> dict[str, Any]:
        config = self.config
        self.messages = [{"role": "user", "content": config.prompt}]
        self.transcript.add("user", 1, text=config.prompt)
        while True:
            answer = await self._ask()
            if not answer.tool_calls:
                break
            if self.tally.steps >= config.max_steps:
                raise TaskError(
                    f"the agent reached max_steps ({config.max_steps} model calls) and still "
                    f"calls tools ({self._names(answer.tool_calls)})",
                    "max_steps",
                )
            self._check_tokens(answer)
            self.messages.append(assistant_turn(config.provider, answer.text, answer.tool_calls))
            results = [await self._call(call) for call in answer.tool_calls]
            self.messages += result_turns(config.provider, results)
        self.ctx.waiting(None)
        self.transcript.stop_reason = answer.stop_reason
        if not config.wants_json:
            return {"text": answer.text, "stop_reason": answer.stop_reason}
        try:
            data = parse_answer(answer.text, config.json_schema)
        except InvalidAnswer as problem:
            data, answer = await self._repair(answer, problem)
        return {"data": data, "stop_reason": answer.stop_reason}

    async def _ask(self) -> Any:
        """One step: the model's answer, logged, counted and written down."""
        config, ctx, tally = self.config, self.ctx, self.tally
        spent = budget_spent(ctx)
        if spent is not None:
            raise TaskError(f"the agent stopped before step {tally.steps + 1}: {spent}", "budget")
        step_tokens = config.step_max_tokens
        if config.max_tokens is not None:
            step_tokens = min(step_tokens, max(1, config.max_tokens - tally.tokens))
        tally.steps += 1
        step = tally.steps
        answer = await self.providers.ask(
            config.step_config(step_tokens, config.timeout),
            self.messages,
            self.system,
            dataclasses.replace(ctx, on_wait=self._noting(f"step {step}: asking {config.model}")),
            tools=self.toolbox.specs() or None,
        )
        cost = self._count(answer)
        calls = [self.toolbox.label(call.name) for call in answer.tool_calls]
        said = f"calls {', '.join(calls)}" if calls else "answers"
        ctx.log(
            f"step {step}: {config.model} {said}",
            step=step,
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            tool_calls=calls,
            stop_reason=answer.stop_reason,
        )
        self.transcript.add(
            "assistant",
            step,
            text=answer.text,
            tool_calls=[
                {"id": c.id, "tool": self.toolbox.label(c.name), "arguments": c.arguments}
                for c in answer.tool_calls
            ],
            usage={"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
            cost_usd=cost,
            stop_reason=answer.stop_reason,
        )
        return answer

    async def _call(self, call: Any) -> ToolResult:
        """One tool call the model asked for; its result (an error result when it failed)."""
        ctx, step = self.ctx, self.tally.steps
        label = self.toolbox.label(call.name)
        self.tally.tool_calls += 1
        result = await self.toolbox.call(call, ctx, self._noting(f"step {step}: calling {label}"))
        arguments = _shown(ctx.secrets.redact(json.dumps(call.arguments, ensure_ascii=False)))
        ctx.log(
            f"step {step}: {label} " + ("failed" if result.is_error else "answered"),
            level="warning" if result.is_error else "info",
            step=step,
            tool=label,
            arguments=arguments,
            result=_shown(result.text),
            is_error=result.is_error,
        )
        self.transcript.add(
            "tool", step, id=call.id, tool=label, result=result.text, is_error=result.is_error
        )
        return result

    async def _repair(self, answer: Any, problem: InvalidAnswer) -> tuple[Any, Any]:
        """The one repair of a final answer that is not the JSON asked for."""
        self.ctx.log(f"the answer is not the JSON asked for: {problem}; asking once more")
        self.messages += [
            assistant_turn(self.config.provider, answer.text, ()),
            {"role": "user", "content": repair_request(str(problem))},
        ]
        self.transcript.add("user", self.tally.steps + 1, text=repair_request(str(problem)))
        answer = await self._ask()
        self.transcript.stop_reason = answer.stop_reason
        try:
            if answer.tool_calls:
                raise InvalidAnswer("it called a tool instead of answering")
            return parse_answer(answer.text, self.config.json_schema), answer
        except InvalidAnswer as again:
            raise TaskError(
                f"the answer is not the JSON asked for, even after one repair: {again}",
                "invalid_output",
            ) from None

    def _check_tokens(self, answer: Any) -> None:
        limit = self.config.max_tokens
        if limit is not None and self.tally.tokens >= limit:
            raise TaskError(
                f"the agent reached max_tokens ({self.tally.tokens:,} of {limit:,} tokens used "
                f"in {self.tally.steps} steps) and still calls tools "
                f"({self._names(answer.tool_calls)})",
                "max_tokens",
            )

    def _count(self, answer: Any) -> float | None:
        """Add the call to the tally and the engine's usage records; the call's cost."""
        tally = self.tally
        tally.input_tokens += answer.input_tokens
        tally.output_tokens += answer.output_tokens
        tally.model = answer.model
        price = price_of(self.prices, answer.model)
        cost = price.cost(answer.input_tokens, answer.output_tokens) if price else None
        if cost is None:
            self.on_unpriced(answer.model)
            tally.cost_usd = None
        elif tally.cost_usd is not None:
            tally.cost_usd = round(tally.cost_usd + cost, 6)
        record_call(
            self.ctx,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            cost_usd=cost,
            model=answer.model,
        )
        return cost

    def _noting(self, note: str) -> Callable[[str | None], None]:
        """Show ``note`` as what the task waits for; the ``on_wait`` that shows whatever it
        waits for inside (a host's slot, a server's) after it."""
        ctx = self.ctx
        ctx.waiting(note)

        def on_wait(what: str | None) -> None:
            ctx.waiting(f"{note} ({what})" if what else note)

        return on_wait

    def _names(self, calls: Any) -> str:
        return ", ".join(self.toolbox.label(call.name) for call in calls)


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
