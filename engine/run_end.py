"""What a run hands to the listeners of its end, and what such a listener is.

A run calls the engine's run-end listeners once its outcome is committed and before it
publishes its end (see ``engine.run.finish``), so whatever they write is there the moment any
tool says the run finished. ``engine.reports.run_end`` is the listener that writes the run's files;
the run itself knows nothing of reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.state import RunSnapshot
from multi_task_orchestrator.engine.store import Store


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run as it ends: its final snapshot (with outputs, not loaded from their files), the
    store holding its events and attempts, its folder, each task's dependencies and the run's
    barriers (lists of task ids), and its document (for the notifications it asks for)."""

    snapshot: RunSnapshot
    store: Store
    run_dir: Path
    dependencies: Mapping[str, Sequence[str]]
    stages: Sequence[Sequence[str]]
    spec: Orchestration | None = None


# Awaited with the ending run. An OSError or ValueError it raises is logged and recorded as an
# event of the run (the listeners after it are not called); the run's outcome stands.
RunEndListener = Callable[[RunEnd], Awaitable[None]]
