"""A run's end is heard by listeners: the reports' file writer by default, others added to the
engine; each is awaited before the run's end is published (what a listener leaves in
``RunEnd.after`` — the report — runs just after it), and the running of a run never imports
the reports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from multi_task_orchestrator.engine.atomic import AtomicFiles
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.files import (
    LOG_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
)
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.state import RunStatus

pytestmark = pytest.mark.anyio

RESULT_FILES = [RESULTS_FILE, LOG_FILE, SUMMARY_FILE]  # written before the end is published
RUN_FILES = [*RESULT_FILES, REPORT_FILE]

DOCUMENT = {
    "name": "heard at the end",
    "tasks": [
        {"id": "first", "type": "delay", "config": {"seconds": 0.01}},
        {"id": "second", "type": "delay", "config": {"seconds": 0.01}, "depends_on": ["first"]},
    ],
}


async def test_an_added_listener_hears_the_end_after_the_files_and_before_it_is_published(
    engine: Engine,
) -> None:
    heard: list[tuple[RunEnd, str, list[str]]] = []

    async def listener(end: RunEnd) -> None:
        status = await engine.snapshot(end.snapshot.id)
        stored = await end.store.get_orchestration(end.snapshot.id, with_document=False)
        assert stored is not None
        written = sorted(path.name for path in end.run_dir.iterdir() if not path.is_dir())
        heard.append((end, f"{status.status.value} {stored.status}", written))

    engine.add_run_end_listener(listener)
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    snapshot = await engine.wait(run_id, timeout=20)

    assert snapshot.status is RunStatus.succeeded
    assert len(heard) == 1
    end, status_then, written = heard[0]
    assert status_then == "running running"  # in memory and stored: not published yet
    assert set(RESULT_FILES) <= set(written)  # the default listener, registered first, wrote them
    assert not [name for name in written if name.endswith(".tmp")]  # all renamed into place
    assert end.snapshot.status is RunStatus.succeeded
    assert end.snapshot.finished_at is not None
    assert {key: list(value) for key, value in end.dependencies.items()} == {
        "first": [],
        "second": ["first"],
    }
    assert [list(stage) for stage in end.stages] == [["first", "second"]]
    assert end.run_dir == Path(snapshot.run_dir or "")


async def test_the_report_is_written_once_the_end_is_published(engine: Engine) -> None:
    """Work a listener leaves for after the end (the default one leaves ``report.html``) runs
    once every reader sees the run finished; ``settled`` waits for it."""
    seen_then: list[str] = []

    async def listener(end: RunEnd) -> None:
        async def after() -> None:
            seen_then.append((await engine.run_status(end.snapshot.id)).value)

        end.after.append(after)

    engine.add_run_end_listener(listener)
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    snapshot = await engine.wait(run_id, timeout=20)
    await engine.settled(run_id)
    assert seen_then == ["succeeded"]
    folder = Path(snapshot.run_dir or "")
    assert all((folder / name).exists() for name in RUN_FILES)
    report = (folder / REPORT_FILE).read_text(encoding="utf-8")
    assert all(f"{folder / name}" in report for name in RUN_FILES)  # it links each file


async def test_closing_waits_for_the_report(home: Path) -> None:
    """Closing the engine finishes what the runs' ends left: the report, and here a slower
    piece of after-end work whose file appears only once it is done."""
    marker = home / "after-end-done"

    async def slow_listener(end: RunEnd) -> None:
        async def after() -> None:
            await asyncio.sleep(0.3)
            marker.write_text("done", encoding="utf-8")

        end.after.append(after)

    async with await Engine.open(home / "state.db", home / "runs", resume=False) as engine:
        engine.add_run_end_listener(slow_listener)
        run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
        snapshot = await engine.wait(run_id, timeout=20)
        assert not marker.exists()  # the end is published before its after-work is done
    assert marker.exists()
    assert (Path(snapshot.run_dir or "") / REPORT_FILE).exists()


async def test_a_report_that_cannot_be_written_is_said_in_the_log(home: Path) -> None:
    async def unwritable(end: RunEnd) -> None:
        (end.run_dir / REPORT_FILE).mkdir(parents=True)  # a folder where the file goes

    async with await Engine.open(home / "state.db", home / "runs", resume=False) as engine:
        engine.run_end_listeners.insert(0, unwritable)
        run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
        snapshot = await engine.wait(run_id, timeout=20)
        await engine.settled(run_id)
        events = await engine.events(run_id)
    assert snapshot.status is RunStatus.succeeded
    [said] = [event.message for event in events if event.kind == "files"]
    assert said.startswith(f"could not write {REPORT_FILE}: ")


async def test_an_engine_without_listeners_writes_no_run_files(home: Path) -> None:
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, run_end_listeners=()
    ) as engine:
        run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
        snapshot = await engine.wait(run_id, timeout=20)
    assert snapshot.status is RunStatus.succeeded
    folder = Path(snapshot.run_dir or "")
    assert not any((folder / name).exists() for name in RUN_FILES)


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (OSError("disk full"), "could not write the run's files: disk full"),
        (RuntimeError("listener bug"), "a run-end listener failed: RuntimeError: listener bug"),
    ],
    ids=["cannot-write", "a-bug"],
)
async def test_a_failing_listener_leaves_the_outcome_committed_and_says_so(
    home: Path, failure: Exception, said: str
) -> None:
    async def failing(end: RunEnd) -> None:
        raise failure

    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, run_end_listeners=[failing]
    ) as engine:
        run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
        snapshot = await engine.wait(run_id, timeout=20)
        events = [event async for page in engine.store.event_pages(run_id) for event in page]
    assert snapshot.status is RunStatus.succeeded
    assert [event.message for event in events if event.kind == "files"] == [said]
    async with await Engine.open(home / "state.db", home / "runs", resume=False) as reopened:
        assert await reopened.run_status(run_id) is RunStatus.succeeded  # committed, not running


async def test_the_log_is_read_in_pages_of_plain_rows(engine: Engine) -> None:
    """The run's end reads its events a page at a time, as plain rows: every event once, in
    order, whatever the page size (a page that comes back full asks for the next)."""
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    await engine.wait(run_id, timeout=20)
    events = await engine.store.load_events(run_id)
    expected = [(e.seq, e.ts, e.task_id, e.kind, e.level, e.message) for e in events]
    assert len(expected) >= 6  # submitted, started, ..., finished
    for size in (1, 2, len(expected), len(expected) + 1):
        pages = list(engine.store.event_row_pages_here(run_id, size))
        assert [row[:6] for page in pages for row in page] == expected
        assert all(0 < len(page) <= size for page in pages)


async def test_the_report_reads_the_attempts_the_store_has(engine: Engine) -> None:
    """The report, laid out on a worker thread, reads the run's attempts there (a read-only
    connection of its own): the same rows ``load_attempts`` gives."""
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    await engine.wait(run_id, timeout=20)
    expected = await engine.store.load_attempts(run_id)
    assert len(expected) == 2
    assert engine.store.attempt_rows_here(run_id) == expected


def test_the_scheduler_does_not_import_the_reports() -> None:
    """Not even through another module: a fresh interpreter that imports the scheduler has
    loaded no module of ``engine.reports``."""
    probe = (
        "import sys, multi_task_orchestrator.engine.run\n"
        "print(sorted(name for name in sys.modules if name.startswith('multi_task_orchestrator')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert "multi_task_orchestrator.engine.run.scheduler" in loaded  # the probe saw the modules
    assert "multi_task_orchestrator.engine.run_end" in loaded
    assert "multi_task_orchestrator.engine.reports" not in loaded


async def test_closing_at_once_waits_for_an_end_that_a_last_commit_begins(home: Path) -> None:
    """Closing with no grace right as a run's last task ends: the end that its commit begins
    (writing the run's files) finishes before the store closes, instead of failing on a closed
    database in the background. Timing decides where the close lands, so it is tried often."""
    failures: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: failures.append(str(context.get("exception") or context["message"]))
    )
    for attempt in range(30):
        folder = home / str(attempt)
        engine = await Engine.open(folder / "state.db", folder / "runs", shutdown_grace=0)
        await engine.submit({"tasks": [{"id": "a", "type": "delay", "config": {"seconds": 0}}]})
        await asyncio.sleep(0.002 * (attempt % 10))
        await engine.aclose()
    assert failures == []


def test_files_written_in_one_pass_are_whole_or_not_written(tmp_path: Path) -> None:
    """The run's files are written together (one fsync pass): when one cannot be written, no
    temporary file is left and no file is renamed into place; the error comes through."""
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(FileNotFoundError), AtomicFiles() as files:
        files.write(tmp_path / "kept.txt", "new")
        files.write(tmp_path / "missing" / "other.txt", b"x")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.txt"]
    assert (tmp_path / "kept.txt").read_text() == "old"

    with AtomicFiles() as files:
        files.write(tmp_path / "kept.txt", ["n", b"e", "w"])  # written a piece at a time
        files.write(tmp_path / "other.txt", b"\x00\x01")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.txt", "other.txt"]
    assert (tmp_path / "kept.txt").read_text() == "new"
    assert (tmp_path / "other.txt").read_bytes() == b"\x00\x01"
    assert (tmp_path / "other.txt").stat().st_mode & 0o777 == 0o600
