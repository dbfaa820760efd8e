"""Units of the orchestration document: strict durations (``30s``, ``1h30m``) and rates
(``10/s``, ``100/m``), as pydantic types with their JSON schema."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

# --- durations and rates ------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
# Ten years: longer is never meant, and a deadline past the year 9999 cannot be shown or stored.
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``1h30m``, ``250ms`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "duration", "a duration must be a number of seconds or text such as '30s'", {}
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif re.fullmatch(DURATION_PATTERN, text):
            seconds = sum(
                float(num) * _DURATION_UNITS[unit] for num, unit in _DURATION_PART.findall(text)
            )
        else:
            raise PydanticCustomError(
                "duration",
                "'{value}' is not a duration",
                {
                    "value": value,
                    "hint": "write it like 30s, 5m, 1h30m, 250ms or a number of seconds",
                },
            )
    else:
        raise PydanticCustomError(
            "duration", "a duration must be a number of seconds or text such as '30s'", {}
        )
    if seconds < 0:
        raise PydanticCustomError("duration", "a duration cannot be negative", {})
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise PydanticCustomError("duration", "a duration must be at most 3650d (ten years)", {})
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_DURATION},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or text such as 30s, 5m, 1h30m, 250ms",
        }
    ),
]


def _above_zero(seconds: float) -> float:
    if seconds <= 0:
        raise PydanticCustomError(
            "duration",
            "a time limit must be above zero",
            {"hint": "give one such as 30s or 5m, or leave it out for no limit"},
        )
    return seconds


# A limit on how long something may take: zero would stop it before it starts.
TimeLimit = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_above_zero),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or text such as 30s, 5m, 1h30m, 250ms; above zero",
        }
    ),
]

_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|sec|m|min|h|hour)$")
_RATE_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}
RATE_PATTERN = r"^\d+(\.\d+)?\s*/\s*(\d+(\.\d+)?)?\s*(ms|s|sec|m|min|h|hour)$"


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts per ``per_seconds`` seconds."""

    count: float
    per_seconds: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.per_seconds)
        count = f"{self.count:g}"
        return f"{count}/{unit}" if unit else f"{count}/{self.per_seconds:g}s"


def parse_rate(value: Any) -> Rate:
    """A rate from ``10/s``, ``100/m``, ``5/h`` or ``3/10s``."""
    if isinstance(value, Rate):
        return value
    match = _RATE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise PydanticCustomError(
            "rate",
            "'{value}' is not a rate",
            {"value": value, "hint": "write it like 10/s, 100/m, 5/h or 3/10s"},
        )
    count, multiple, unit = match.groups()
    per = float(multiple or 1) * _RATE_UNITS[unit]
    if float(count) <= 0 or per <= 0:
        raise PydanticCustomError("rate", "a rate must be above zero", {})
    return Rate(float(count), per)


RateValue = Annotated[
    Rate,
    BeforeValidator(parse_rate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": RATE_PATTERN, "examples": ["10/s", "100/m"]}),
]
