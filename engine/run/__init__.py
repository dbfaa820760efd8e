"""One running orchestration: readiness and dispatch, attempts, retries, fan-out, finishing.

The engine imports ``Run``, ``Node`` and ``make_run_id`` from here; the modules of this package
never import the engine's reports (run files are written by a listener on the run's end).
"""

from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.scheduler import Run, make_run_id

__all__ = ["Node", "Run", "make_run_id"]
