"""Model usage and budgets as the rest of the engine sees them: what one model call used
(``UsageRecord``), what a run or an attempt used in all (``Totals``), what a budget leaves a task
(``BudgetLeft``, made of one ``Allowance`` per limit), the run's usage as snapshots show it
(``RunUsage``), and the words each is shown in ("Tokens: 182k in / 41k out · $1.37",
"budget: 48,210 of 50,000 tokens used").

Tokens count input and output together against a budget. A call whose model has no price
reports no cost: it counts against a token budget only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, Field

Unit = Literal["tokens", "cost_usd"]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one model call used, as ``ctx.record_usage`` gets it."""

    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None  # None: the model has no price
    model: str | None = None


@dataclass(slots=True)
class Totals:
    """Usage added up: of one attempt, one task, or a whole run."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # of the calls with a price
    calls: int = 0
    unpriced_calls: int = 0
    model: str | None = None  # the last model named

    def add(self, record: UsageRecord) -> None:
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        if record.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd = round(self.cost_usd + record.cost_usd, 9)
        self.calls += 1
        self.model = record.model or self.model

    def add_totals(self, other: Totals) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd = round(self.cost_usd + other.cost_usd, 9)
        self.calls += other.calls
        self.unpriced_calls += other.unpriced_calls
        self.model = other.model or self.model

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def columns(self) -> dict[str, Any]:
        """The attempt row's usage fields: all None when nothing was used."""
        if not self.calls:
            return {}
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "model_calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "model": self.model,
        }


# --- budgets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowance:
    """One limit of one budget (``scope``: whose) and how much of it is used."""

    scope: str  # e.g. "the orchestration's budget", "task summarise's budget"
    unit: Unit
    limit: float
    used: float

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.used)

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def text(self) -> str:
        """E.g. ``48,210 of 50,000 tokens used`` or ``$0.51 of $0.50 used``."""
        if self.unit == "tokens":
            return f"{int(self.used):,} of {int(self.limit):,} tokens used"
        return f"{money(self.used)} of {money(self.limit)} used"

    def after(self, tokens: int, cost_usd: float) -> Allowance:
        return replace(self, used=self.used + (tokens if self.unit == "tokens" else cost_usd))


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """What the budgets over one task leave it (``ctx.budget_left()``); plain data, so it
    travels to a cluster worker with the attempt."""

    allowances: tuple[Allowance, ...] = field(default_factory=tuple)

    @property
    def tokens(self) -> int | None:
        """Tokens (input and output) left under the tightest token budget; None: no limit."""
        left = [a.left for a in self.allowances if a.unit == "tokens"]
        return int(min(left)) if left else None

    @property
    def cost_usd(self) -> float | None:
        """US dollars left under the tightest cost budget; None: no limit."""
        left = [a.left for a in self.allowances if a.unit == "cost_usd"]
        return round(min(left), 6) if left else None

    @property
    def spent(self) -> bool:
        return any(a.spent for a in self.allowances)

    def first_spent(self) -> Allowance | None:
        """The first limit reached, or None."""
        return next((allowance for allowance in self.allowances if allowance.spent), None)

    def stop_message(self) -> str | None:
        """Why no more model calls may be made (the first budget spent), or None."""
        spent = self.first_spent()
        return None if spent is None else f"budget spent: {spent.text()} ({spent.scope})"

    def after(self, usage: Totals) -> BudgetLeft:
        """What is left once ``usage`` is used too."""
        return BudgetLeft(tuple(a.after(usage.tokens, usage.cost_usd) for a in self.allowances))


# --- as snapshots show it -----------------------------------------------------------------


class BudgetAmount(BaseModel):
    used: float
    limit: float


class BudgetState(BaseModel):
    """The orchestration's budget and what is used of it."""

    tokens: BudgetAmount | None = Field(None, description="input and output tokens")
    cost_usd: BudgetAmount | None = Field(None, description="US dollars, priced calls only")
    spent: bool = Field(description="true once a limit is reached: model steps stop starting")
    text: str = Field(description="e.g. 'budget: 48,210 of 50,000 tokens used'")


class RunUsage(BaseModel):
    """What a run's model calls used, every attempt counted (retried ones too)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = Field(None, description="None when no call had a price")
    calls: int = 0
    unpriced_calls: int = Field(0, description="calls whose model has no price")
    budget: BudgetState | None = None


def run_usage(totals: Totals, budget: dict[str, Any] | None) -> RunUsage:
    """A run's usage for a snapshot; ``budget`` is the document's ``{tokens, cost_usd}``."""
    priced = totals.calls - totals.unpriced_calls
    return RunUsage(
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cost_usd=round(totals.cost_usd, 6) if priced else None,
        calls=totals.calls,
        unpriced_calls=totals.unpriced_calls,
        budget=budget_state(budget_allowances(budget, totals, "the orchestration's budget")),
    )


def budget_allowances(
    budget: dict[str, Any] | None, used: Totals, scope: str
) -> tuple[Allowance, ...]:
    """One allowance per limit ``budget`` (``{tokens, cost_usd}``) sets."""
    if not budget:
        return ()
    found = []
    if budget.get("tokens") is not None:
        found.append(Allowance(scope, "tokens", float(budget["tokens"]), float(used.tokens)))
    if budget.get("cost_usd") is not None:
        found.append(Allowance(scope, "cost_usd", float(budget["cost_usd"]), used.cost_usd))
    return tuple(found)


def budget_state(allowances: tuple[Allowance, ...]) -> BudgetState | None:
    if not allowances:
        return None
    by_unit = {a.unit: BudgetAmount(used=round(a.used, 6), limit=a.limit) for a in allowances}
    return BudgetState(
        tokens=by_unit.get("tokens"),
        cost_usd=by_unit.get("cost_usd"),
        spent=any(a.spent for a in allowances),
        text="budget: " + " · ".join(a.text() for a in allowances),
    )


# --- words ----------------------------------------------------------------------------------


def money(amount: float) -> str:
    """US dollars, e.g. ``$1.37``; an amount under a cent keeps four decimals (``$0.0042``)."""
    if amount == 0:
        return "$0.00"
    if amount < 0.0001:
        return "<$0.0001"
    if amount < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def compact(count: int) -> str:
    """A count as people say it: ``950``, ``1.2k``, ``182k``, ``3.4M``."""
    if count < 1000:
        return str(count)
    units = ((1000, "k"), (1_000_000, "M"), (1_000_000_000, "G"))
    for index, (size, suffix) in enumerate(units):
        value = count / size
        text = (f"{value:.1f}" if value < 10 else f"{value:.0f}").removesuffix(".0")
        if float(text) < 1000 or index == len(units) - 1:
            return text + suffix
    raise AssertionError("unreachable")


def usage_text(usage: RunUsage) -> str:
    """E.g. ``182k in / 41k out · $1.37`` (and the calls without a price, when there are)."""
    text = f"{compact(usage.input_tokens)} in / {compact(usage.output_tokens)} out"
    if usage.cost_usd is not None:
        text += f" · {money(usage.cost_usd)}"
    if usage.unpriced_calls:
        calls = "call" if usage.unpriced_calls == 1 else "calls"
        text += f" · {usage.unpriced_calls} {calls} without a price"
    return text


def budget_text(state: BudgetState) -> str:
    """E.g. ``budget: 48,210 of 50,000 tokens used``, ``— spent`` once a limit is reached."""
    return state.text + (" — spent: model steps stopped" if state.spent else "")


def usage_line(usage: RunUsage) -> str:
    """The status display's line: ``Tokens: 48k in / 3.1k out · $0.19`` and the budget."""
    line = f"Tokens: {usage_text(usage)}"
    return line + (f" · {budget_text(usage.budget)}" if usage.budget is not None else "")
