"""A run's files: the names of those it writes into its folder, finding them, and writing the
results, the log and the summary atomically."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.atomic import AtomicFiles
from multi_task_orchestrator.engine.reports.results import results_json_pieces
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.state import RunSnapshot

RESULTS_FILE = "aggregated_results.json"
LOG_FILE = "execution_log.txt"
SUMMARY_FILE = "summary.txt"
REPORT_FILE = "report.html"  # written by engine.reports.html


def run_files(run_dir: str | Path | None) -> list[str]:
    """The result files a finished run wrote into ``run_dir`` (those that exist), as paths."""
    if not run_dir:
        return []
    folder = Path(run_dir)
    return [
        str(folder / name)
        for name in (RESULTS_FILE, LOG_FILE, SUMMARY_FILE, REPORT_FILE)
        if (folder / name).exists()
    ]


def write_run_files(
    snapshot: RunSnapshot,
    log: Iterable[str],
    run_dir: Path,
    *,
    now: float | None = None,
) -> list[Path]:
    """Write ``aggregated_results.json``, ``execution_log.txt`` (``log``: its lines, as
    ``log_lines`` renders events) and ``summary.txt`` into ``run_dir`` (created if missing) and
    return their absolute paths in that order.

    The summary lists the three paths under ``OUTPUTS``. Each file is written to a temporary
    file in the same folder, flushed and fsynced, then renamed over the target, so a reader (or
    a crash) never sees half a file (``AtomicFiles``). The files are readable by their owner
    only (mode 0600), as they may hold task outputs.
    """
    with AtomicFiles() as files:
        return write_run_files_into(files, snapshot, log, run_dir, now=now)


def write_run_files_into(
    files: AtomicFiles,
    snapshot: RunSnapshot,
    log: Iterable[str],
    run_dir: Path,
    *,
    outputs: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> list[Path]:
    """``write_run_files`` into ``files``, which a caller writing more files in the same pass
    commits (the folder is created if missing); the results take the tasks' outputs from
    ``outputs`` when given (``aggregated_results``). The results and the log are written a
    piece at a time, never held whole."""
    folder = Path(run_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / RESULTS_FILE, folder / LOG_FILE, folder / SUMMARY_FILE]
    results_path, log_path, summary_path = paths
    results = results_json_pieces(snapshot, outputs=outputs)
    files.write(results_path, itertools.chain(results, ("\n",)))
    files.write(log_path, _lines(log))  # no events: empty
    files.write(summary_path, render_summary(snapshot, paths, now=now) + "\n")
    return paths


def _lines(lines: Iterable[str], per_piece: int = 2_000) -> Iterator[str]:
    """Each line followed by a newline, a few thousand lines to a piece."""
    remaining = iter(lines)
    while piece := list(itertools.islice(remaining, per_piece)):
        yield "\n".join(piece) + "\n"
