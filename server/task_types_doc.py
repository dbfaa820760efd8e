"""The task-type table of README.md, rendered from the runner registry.

Each row is one registered type: its name and aliases, its summary, the fields its config takes
(as documents write them) and whether it is available or off until enabled (with how to enable
it). ``python -m multi_task_orchestrator.server.task_types_doc`` prints the table; a test keeps
the README's copy equal to it, so a task type cannot go unlisted or be listed wrong.
"""

from __future__ import annotations

from multi_task_orchestrator.engine import registry

START = "<!-- task-types-table:start (python -m multi_task_orchestrator.server.task_types_doc) -->"
END = "<!-- task-types-table:end -->"


def task_types_table() -> str:
    """The Markdown table of every task type, in the registry's listing order."""
    rows = ["| type (aliases) | what it does | config | available |", "|---|---|---|---|"]
    classes = registry.runner_classes()
    for name in registry.type_names():
        runner = classes[name]
        shown = f"`{name}`"
        if runner.aliases:
            shown += " (" + ", ".join(f"`{alias}`" for alias in runner.aliases) + ")"
        fields = ", ".join(
            f"`{info.alias or field}`" for field, info in runner.config_model.model_fields.items()
        )
        available = f"when enabled: {runner.opt_in}" if runner.opt_in else "yes"
        rows.append(f"| {shown} | {_cell(runner.summary)} | {fields} | {_cell(available)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    print(task_types_table())
