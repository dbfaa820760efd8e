"""The run-end listener that writes a finished run's files into its folder: the results, the
execution log, the summary and ``report.html``. The engine registers it by default
(``Engine(run_end_listeners=...)``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path

from multi_task_orchestrator.engine.approvals import with_approvals
from multi_task_orchestrator.engine.atomic import AtomicFiles
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.reports.files import REPORT_FILE, write_run_files_into
from multi_task_orchestrator.engine.reports.html import lay_out_report
from multi_task_orchestrator.engine.reports.log import log_lines_of_rows
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.state import RunSnapshot
from multi_task_orchestrator.engine.store import AttemptRow


async def write_files_on_run_end(end: RunEnd) -> None:
    """Write the result files and the report of the run as it ends: what they show is read
    first (its events, as log lines, and its attempts), then all four are laid out and written
    in one pass on a worker thread."""
    snapshot = await with_approvals(end.store, end.snapshot)  # who decided its approvals
    log: list[str] = []
    async for rows in end.store.event_row_pages(end.snapshot.id):  # one page in memory at once
        log.extend(log_lines_of_rows(rows))
    attempts = await end.store.load_attempts(end.snapshot.id)
    await cpu_bound(functools.partial(_write_all, end, snapshot, log, attempts))


def _write_all(
    end: RunEnd, snapshot: RunSnapshot, log: list[str], attempts: Sequence[AttemptRow]
) -> None:
    # One snapshot for all: the report shows no outputs, so it may hold them.
    with AtomicFiles() as files:
        written = write_run_files_into(files, snapshot, log, end.run_dir)
        log.clear()  # written: its lines need not wait for the report
        # the report links to the files its folder will hold once written, as ``run_files``
        # lists them: the three above, and itself when an earlier end of the run wrote it
        folder = Path(snapshot.run_dir or end.run_dir)
        linked = [folder / path.name for path in written]
        if (folder / REPORT_FILE).exists():
            linked.append(folder / REPORT_FILE)
        report = lay_out_report(
            snapshot, attempts, end.dependencies, end.stages, now=time.time(), files=linked
        )
        files.write(folder.absolute() / REPORT_FILE, report.pieces)
