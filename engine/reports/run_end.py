"""The run-end listener that writes a finished run's files into its folder: the results, the
execution log, the summary and ``report.html``. The engine registers it by default
(``Engine(run_end_listeners=...)``)."""

from __future__ import annotations

import functools

from multi_task_orchestrator.engine.approvals import with_approvals
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.reports.files import write_run_files
from multi_task_orchestrator.engine.reports.html import write_report
from multi_task_orchestrator.engine.reports.log import log_lines_of_rows
from multi_task_orchestrator.engine.run_end import RunEnd


async def write_files_on_run_end(end: RunEnd) -> None:
    """Write the result files and the report of the run as it ends."""
    snapshot = await with_approvals(end.store, end.snapshot)  # who decided its approvals
    log: list[str] = []
    async for rows in end.store.event_row_pages(end.snapshot.id):  # one page in memory at once
        log.extend(log_lines_of_rows(rows))
    # One snapshot for both: the report shows no outputs, so it may hold them.
    await cpu_bound(functools.partial(write_run_files, snapshot, log, end.run_dir))
    await write_report(end.store, snapshot, dependencies=end.dependencies, stages=end.stages)
