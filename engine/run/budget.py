"""One run's model usage and its budgets: what every attempt's calls used, in all and per task,
whether a model step may start, what is left for one running, and the run's usage as a
snapshot shows it.

Which tasks are model steps is what their runners declare (``Runner.spends_budget``); the
orchestration's ``budget`` covers every model step, a task's own ``budget`` that task (a
fan-out: all its items together). A retried attempt's calls count like any other.
"""

from __future__ import annotations

from collections.abc import Iterable

from multi_task_orchestrator.engine.run.core import RunCore, spends_budget
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.store import AttemptRow
from multi_task_orchestrator.engine.usage import (
    BudgetLeft,
    RunUsage,
    Totals,
    UsageRecord,
    budget_allowances,
    run_usage,
)

RUN_SCOPE = "the orchestration's budget"
MAX_WARNED = 100  # models told they have no price, per run


def spec_id(task_id: str) -> str:
    """The document task a task id belongs to (a fan-out item ``x[3]`` belongs to ``x``)."""
    return task_id.split("[", 1)[0]


class Budgets:
    """Usage and budgets of one run."""

    def __init__(self, core: RunCore, records: Records) -> None:
        self._core = core
        self._records = records
        self._spends: dict[str, bool] = {}  # by task type
        self._budget = core.spec.budget.limits() if core.spec.budget else None
        self.total = Totals()
        self._by_task: dict[str, Totals] = {}
        self._warned: set[str] = set()
        self._announced: set[str] = set()  # budgets whose stop is in the log

    def _spends_budget(self, task_type: str) -> bool:
        known = self._spends.get(task_type)
        if known is None:
            known = self._spends[task_type] = spends_budget(self._core.services, task_type)
        return known

    # --- counting -------------------------------------------------------------------------

    def add(self, node: Node, record: UsageRecord) -> None:
        """A model call of ``node``'s attempt: count it for the task and the run."""
        self.total.add(record)
        self._by_task.setdefault(node.spec.id, Totals()).add(record)
        if record.cost_usd is None:
            self._warn_unpriced(node, record.model)

    def restore(self, attempts: Iterable[AttemptRow]) -> None:
        """Count what the stored attempts used (a resumed or retried run)."""
        for row in attempts:
            if not row.model_calls:
                continue
            used = Totals(
                input_tokens=row.input_tokens or 0,
                output_tokens=row.output_tokens or 0,
                cost_usd=row.cost_usd or 0.0,
                calls=row.model_calls,
                unpriced_calls=row.unpriced_calls or 0,
                model=row.model,
            )
            self.total.add_totals(used)
            self._by_task.setdefault(spec_id(row.task_id), Totals()).add_totals(used)

    def _warn_unpriced(self, node: Node, model: str | None) -> None:
        limits = [self._budget, node.spec.budget.limits() if node.spec.budget else None]
        if not any(limit and "cost_usd" in limit for limit in limits):
            return
        name = model or "(unnamed)"
        if name in self._warned or len(self._warned) >= MAX_WARNED:
            return
        self._warned.add(name)
        self._records.event(
            node,
            "log",
            f"no price for model {name}: its calls do not count against the cost budget, only "
            "against a token budget; add its price to ORCHESTRATOR_LLM_PRICES to count them",
            "warning",
        )

    # --- what the budgets allow -----------------------------------------------------------

    def left(self, node: Node) -> BudgetLeft | None:
        """What the budgets over ``node`` leave it; None for a task that is no model step or
        that no budget covers."""
        spec = node.spec
        if not self._spends_budget(spec.type):
            return None
        allowances = budget_allowances(self._budget, self.total, RUN_SCOPE)
        if spec.budget is not None:
            used = self._by_task.get(spec.id, Totals())
            allowances += budget_allowances(spec.budget.limits(), used, f"task {spec.id}'s budget")
        return BudgetLeft(allowances) if allowances else None

    def stop_reason(self, node: Node) -> str | None:
        """Why ``node`` may not start (a budget over it is spent), or None. The first stop of
        each budget is also written to the run's log."""
        left = self.left(node)
        spent = left.first_spent() if left is not None else None
        if left is None or spent is None:
            return None
        message = left.stop_message()
        if spent.scope not in self._announced:
            self._announced.add(spent.scope)
            self._records.event(
                None, "budget", f"{message}: model steps under it no longer start", "warning"
            )
        return message

    def usage(self) -> RunUsage | None:
        """The run's usage for a snapshot; None for a run without model steps."""
        if not self._core.model_steps and not self.total.calls:
            return None
        return run_usage(self.total, self._budget)
