"""What a run hands to the listeners of its end, and what such a listener is.

A run calls the engine's run-end listeners once its outcome is committed and before it
publishes its end (see ``engine.run.finish``), so whatever they write is there the moment any
tool says the run finished — except what a listener leaves for after it (``RunEnd.after``:
work nothing that says "finished" waits for, such as ``report.html``; ``Engine.settled`` waits
for it). ``engine.reports.run_end`` is the listener that writes the run's files; the run itself
knows nothing of reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.after_end import AfterEndWork
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.state import RunSnapshot
from multi_task_orchestrator.engine.store import Store


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run as it ends: its final snapshot (without outputs: the same object its waiters are
    handed, to be read, not changed), the outputs of its tasks by task id (as held: a large
    one's file reference stands in for it; a null output is left out), the store holding its
    events and attempts, its folder, each task's dependencies and the run's barriers (lists
    of task ids), its document (for the notifications it asks for), and what the listeners
    leave to do once the end is published (``after``)."""

    snapshot: RunSnapshot
    outputs: Mapping[str, Any]
    store: Store
    run_dir: Path
    dependencies: Mapping[str, Sequence[str]]
    stages: Sequence[Sequence[str]]
    spec: Orchestration | None = None
    # work to run once the end is published (the run's own bookkeeping is done by then)
    after: list[AfterEndWork] = field(default_factory=list)


# Awaited with the ending run. An OSError or ValueError it raises is logged and recorded as an
# event of the run (the listeners after it are not called); the run's outcome stands.
RunEndListener = Callable[[RunEnd], Awaitable[None]]
