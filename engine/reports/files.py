"""A run's files: the names of those it writes into its folder, finding them, and writing the
results, the log and the summary atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from multi_task_orchestrator.engine.atomic import write_all_atomic
from multi_task_orchestrator.engine.reports.results import results_json
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
    a crash) never sees half a file (``write_all_atomic``). The files are readable by their
    owner only (mode 0600), as they may hold task outputs.
    """
    texts = run_file_texts(snapshot, log, run_dir, now=now)
    write_all_atomic(texts)
    return list(texts)


def run_file_texts(
    snapshot: RunSnapshot,
    log: Iterable[str],
    run_dir: Path,
    *,
    now: float | None = None,
) -> dict[Path, str]:
    """What ``write_run_files`` writes, by absolute path, in its order (the folder is created
    if missing): for a caller writing more files in the same pass."""
    folder = Path(run_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / RESULTS_FILE, folder / LOG_FILE, folder / SUMMARY_FILE]
    results_path, log_path, summary_path = paths
    # Joined once with their last newline: these texts can be megabytes.
    return {
        results_path: results_json(snapshot) + "\n",
        log_path: "\n".join([*log, ""]),  # no events: empty
        summary_path: render_summary(snapshot, paths, now=now) + "\n",
    }
