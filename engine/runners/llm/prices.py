"""What a model call costs: a price table per model, in US dollars per million tokens.

The shipped table (``DEFAULT_PRICES``) holds the providers' list prices for common models, as
checked on the date in ``PRICES_CHECKED``; the runner's setting ``ORCHESTRATOR_LLM_PRICES`` (a
JSON file's path, or inline JSON: ``{"model": {"input": 3, "output": 15}}``) replaces entries
and adds models. A model is looked up by its name, then by its name without a date suffix
(``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``, ``gpt-4o-2024-08-06`` -> ``gpt-4o``);
a model found neither way has no price (the cost is ``null``), never a guessed one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICES_CHECKED = "2026-12-02"


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 6)


def _family(price: tuple[float, float], *names: str) -> dict[str, Price]:
    return dict.fromkeys(names, Price(*price))


DEFAULT_PRICES: dict[str, Price] = {
    # Anthropic (https://platform.claude.com/docs/en/about-claude/pricing)
    **_family((5.0, 25.0), "claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5"),
    **_family((15.0, 75.0), "claude-opus-4-1", "claude-opus-4", "claude-opus-4-0"),
    **_family((3.0, 15.0), "claude-sonnet-4-5", "claude-sonnet-4", "claude-sonnet-4-0"),
    **_family((3.0, 15.0), "claude-3-7-sonnet"),
    **_family((1.0, 5.0), "claude-haiku-4-5"),
    **_family((0.8, 4.0), "claude-3-5-haiku"),
    # OpenAI (https://openai.com/api/pricing; the 4.x and o-series list prices)
    **_family((2.5, 10.0), "gpt-4o"),
    **_family((0.15, 0.6), "gpt-4o-mini"),
    **_family((2.0, 8.0), "gpt-4.1"),
    **_family((0.4, 1.6), "gpt-4.1-mini"),
    **_family((0.1, 0.4), "gpt-4.1-nano"),
    **_family((2.0, 8.0), "o3"),
    **_family((1.1, 4.4), "o3-mini", "o4-mini"),
}

_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


class PriceError(Exception):
    """A price table that cannot be read; the message says what is wrong."""


def read_prices(text: str) -> dict[str, Price]:
    """The table a setting gives: inline JSON (it starts with ``{``) or a JSON file's path."""
    source = "ORCHESTRATOR_LLM_PRICES"
    stripped = text.strip()
    if not stripped.startswith("{"):
        path = Path(stripped).expanduser()
        source = str(path)
        try:
            stripped = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceError(
                f"cannot read the price table {path}: {exc.strerror or exc}; give a JSON "
                'file\'s path or inline JSON such as {"my-model": {"input": 1, "output": 2}}'
            ) from None
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        raise PriceError(f"the price table in {source} is not JSON: {exc}") from None
    return _table(data, source)


def _table(data: Any, source: str) -> dict[str, Price]:
    if not isinstance(data, dict):
        raise PriceError(f"the price table in {source} must map model names to prices")
    table: dict[str, Price] = {}
    for model, entry in data.items():
        if not (
            isinstance(entry, dict)
            and set(entry) == {"input", "output"}
            and all(_amount(entry[side]) for side in ("input", "output"))
        ):
            raise PriceError(
                f"the price of '{model}' in {source} must be "
                '{"input": USD, "output": USD} per million tokens (numbers, 0 or more)'
            )
        table[model] = Price(float(entry["input"]), float(entry["output"]))
    return table


def _amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def price_table(override: str | None) -> dict[str, Price]:
    """The shipped table with the setting's entries over it."""
    return {**DEFAULT_PRICES, **(read_prices(override) if override else {})}


def price_of(table: dict[str, Price], model: str) -> Price | None:
    """The price of ``model``: by its name, else by its name without a date suffix."""
    found = table.get(model)
    if found is None:
        undated = _DATE_SUFFIX.sub("", model)
        found = table.get(undated) if undated != model else None
    return found
