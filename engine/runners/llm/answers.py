"""Reading a model's answer as JSON: the instruction that asks for it, the parse (a ```json
fence around it is tolerated, with or without a line of prose before it), the schema check, and
the message that asks for a repair."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.limits import MAX_DATA_DEPTH, nests_deeper

if TYPE_CHECKING:
    import jsonschema

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?[ \t]*```", re.S)
MAX_ERRORS_SHOWN = 5


class InvalidAnswer(Exception):
    """An answer that is not the JSON asked for; the message says why, for the repair."""


def json_instruction(schema: dict[str, Any] | None) -> str:
    """What the system prompt adds when the answer must be JSON."""
    text = "Answer with one JSON value only: no prose before or after it, no Markdown fence."
    if schema is not None:
        text += " It must satisfy this JSON Schema:\n" + json.dumps(schema, ensure_ascii=False)
    return text


def repair_request(problem: str) -> str:
    """The follow-up message after an answer that failed the check."""
    return (
        f"Your answer could not be used: {problem}\n"
        "Answer again with only the corrected JSON value."
    )


def parse_answer(text: str, schema: dict[str, Any] | None) -> Any:
    """The JSON value in ``text``, checked against ``schema``; InvalidAnswer saying why not."""
    stripped = text.strip()
    # a fenced block, alone or after a line of prose ("Here is the JSON:"); a bare JSON value
    # is read as it is, even if a string in it holds a fence
    fenced = None if stripped.startswith(("{", "[")) else _FENCE.search(stripped)
    if fenced:
        stripped = fenced["body"].strip()
    if not stripped:
        raise InvalidAnswer("the answer is empty, not JSON")
    try:
        data = json.loads(stripped)
    except RecursionError:
        raise InvalidAnswer(f"the JSON is nested more than {MAX_DATA_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidAnswer(f"it is not valid JSON ({exc})") from None
    if nests_deeper(data, MAX_DATA_DEPTH):
        raise InvalidAnswer(f"the JSON is nested more than {MAX_DATA_DEPTH} levels")
    if schema is not None:
        problems = _schema_problems(data, schema)
        if problems:
            raise InvalidAnswer("it does not satisfy the JSON Schema: " + "; ".join(problems))
    return data


def _schema_problems(data: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema  # only an answer with a schema needs it (~50 ms to import)

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda error: list(error.absolute_path))
    shown = [_describe(error) for error in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return shown


def _describe(error: jsonschema.ValidationError) -> str:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path)
    message = error.message if len(error.message) <= 200 else error.message[:199] + "…"
    return f"{where.lstrip('.') or 'the answer'}: {message}"
