"""The configuration table of README.md, rendered from the ``Settings`` model.

Each row is one field: its environment variable, its default and its meaning (the field's
description after the variable's name); the task types' settings come last (``Settings`` adds
them from the runner registry). ``python -m multi_task_orchestrator.server.settings_doc``
prints the table; a test keeps the README's copy equal to it, so a new setting cannot go
undocumented.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.fields import FieldInfo

from multi_task_orchestrator.server.settings import Settings

START = "<!-- settings-table:start (python -m multi_task_orchestrator.server.settings_doc) -->"
END = "<!-- settings-table:end -->"


def settings_table() -> str:
    """The Markdown table of every setting, in the model's order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        variable = f"ORCHESTRATOR_{name.upper()}"
        prefix, _, meaning = (info.description or "").partition(": ")
        if prefix != variable or not meaning:
            raise ValueError(f"the description of {name} must start with '{variable}: '")
        rows.append(f"| `{variable}` | {_shown_default(info)} | {meaning} |")
    return "\n".join(rows)


def _shown_default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    shown = extra.get("shown_default") if isinstance(extra, dict) else None
    if isinstance(shown, str):
        return shown
    value: Any = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, int | float):
        return f"`{value}`"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


def readme_table(readme: str, start: str = START, end: str = END) -> str:
    """The table between the markers (by default the settings table's) in the README's text;
    empty when the markers are gone."""
    _, found, rest = readme.partition(start)
    return rest.partition(end)[0].strip() if found else ""


if __name__ == "__main__":
    print(settings_table())
