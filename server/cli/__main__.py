"""``python -m multi_task_orchestrator.server.cli``: the ``orchestrator`` command."""

from multi_task_orchestrator.server.cli import run

run()
