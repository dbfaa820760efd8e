"""One running orchestration: readiness and dispatch, attempts, retries, fan-out, budgets,
records, snapshots, finishing — each a small module; ``Run`` (in ``scheduler``) wires them
together.

The engine imports ``Run``, ``RunServices`` (all a run needs from outside it), ``Node``,
``task_snapshot`` and ``make_run_id`` from here; no module of this package imports the engine,
nor the engine's reports (run files are written by a listener on the run's end).
"""

from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.scheduler import Run, make_run_id
from multi_task_orchestrator.engine.run.services import RunHandle, RunServices
from multi_task_orchestrator.engine.run.snapshots import task_snapshot

__all__ = ["Node", "Run", "RunHandle", "RunServices", "make_run_id", "task_snapshot"]
