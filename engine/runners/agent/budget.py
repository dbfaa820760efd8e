"""Where the agent meets the engine's usage records and budgets (``ctx.record_usage``,
``ctx.budget_left()``): each model call is counted as it is made, and no step starts once a
budget over the task is spent. Without a budget the loop's own limits (``max_steps``,
``max_tokens``, ``timeout``) still hold."""

from __future__ import annotations

from multi_task_orchestrator.engine.runners.base import RunContext


def record_call(
    ctx: RunContext, *, input_tokens: int, output_tokens: int, cost_usd: float | None, model: str
) -> None:
    """Count one model call against the attempt, the task, the run and their budgets."""
    ctx.record_usage(
        input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd, model=model
    )


def budget_spent(ctx: RunContext) -> str | None:
    """Why no further model call may start (e.g. "budget: 48,210 of 50,000 tokens used"), or
    None while the budgets over the task leave room."""
    left = ctx.budget_left()
    if left is None or not left.spent:
        return None
    return left.stop_message()
