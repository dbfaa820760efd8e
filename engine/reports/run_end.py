"""The run-end listener that writes a finished run's files into its folder: the results, the
execution log and the summary before the end is published, then ``report.html`` just after it
(``RunEnd.after``: laying out the timeline of a large run takes longer than the rest, and
nothing that says "finished" needs it). The engine registers it by default
(``Engine(run_end_listeners=...)``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from multi_task_orchestrator.engine.approvals import with_approvals
from multi_task_orchestrator.engine.atomic import AtomicFiles
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.reports.files import REPORT_FILE, write_run_files_into
from multi_task_orchestrator.engine.reports.html import lay_out_report
from multi_task_orchestrator.engine.reports.log import log_lines_of_rows
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.state import RunSnapshot
from multi_task_orchestrator.engine.store import Store


async def write_files_on_run_end(end: RunEnd) -> None:
    """Write the result files of the run as it ends on a worker thread, the log as its events
    are read there, a page at a time; leave its report for after the end."""
    snapshot = await with_approvals(end.store, end.snapshot)  # who decided its approvals
    folder = Path(snapshot.run_dir or end.run_dir)
    write = functools.partial(_write_results, end, snapshot, folder)
    written = await cpu_bound(write)
    # the report needs none of the run's document: what it takes is all it holds on to
    end.after.append(
        functools.partial(_write_report, end.store, end.dependencies, end.stages, snapshot, written)
    )


def _write_results(end: RunEnd, snapshot: RunSnapshot, folder: Path) -> list[Path]:
    pages = end.store.event_row_pages_here(snapshot.id)
    log = (line for rows in pages for line in log_lines_of_rows(rows))
    with AtomicFiles() as files:
        return write_run_files_into(files, snapshot, log, folder, outputs=end.outputs)


async def _write_report(
    store: Store,
    dependencies: Mapping[str, Sequence[str]],
    stages: Sequence[Sequence[str]],
    snapshot: RunSnapshot,
    written: list[Path],
) -> None:
    page = functools.partial(_write_report_file, store, snapshot, dependencies, stages, written)
    try:
        await cpu_bound(page)
    except (OSError, ValueError) as exc:  # the run's log says so (``orchestrator logs``)
        message = f"could not write {REPORT_FILE}: {exc}"
        store.add_event(snapshot.id, None, "files", message, ts=time.time(), level="error")
        raise


def _write_report_file(
    store: Store,
    snapshot: RunSnapshot,
    dependencies: Mapping[str, Sequence[str]],
    stages: Sequence[Sequence[str]],
    written: list[Path],
) -> None:
    attempts = store.attempt_rows_here(snapshot.id)
    # the report links to the run's files by the names ``run_files`` lists: the three written
    # already, and itself
    folder = written[0].parent
    linked = [*written, folder / REPORT_FILE]
    report = lay_out_report(snapshot, attempts, dependencies, stages, now=time.time(), files=linked)
    with AtomicFiles() as files:
        files.write(folder / REPORT_FILE, report.pieces())  # the page made as it is written
