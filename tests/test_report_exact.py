"""The fast paths that write a run's files give what the plain ones gave.

``aggregated_results.json`` holds what ``aggregated_results`` gives, indented; times are as
``datetime.isoformat`` writes them, the log as it was, a timeline band counted from attempt rows
as from spans, and the report laid out from the dependencies a run hands over as from the
document in the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.files import write_run_files
from multi_task_orchestrator.engine.reports.html import build_report
from multi_task_orchestrator.engine.reports.log import render_log
from multi_task_orchestrator.engine.reports.results import (
    aggregated_results,
    results_json,
    results_json_pieces,
)
from multi_task_orchestrator.engine.reports.spans import (
    attempts_band,
    concurrency_band,
    task_spans,
)
from multi_task_orchestrator.engine.reports.text import iso
from multi_task_orchestrator.engine.state import (
    EventRecord,
    RunSnapshot,
    RunStatus,
    TaskSnapshot,
    TaskState,
)
from multi_task_orchestrator.engine.store import AttemptRow

T0 = 1_795_511_700.0  # 2026-11-24T09:15:00Z


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "a b", 'say "hi"', "line\nnext", "cr\r\nlf", "\x1c", "nbsp\u00a0", "\u2028", "é"]
)


def snapshot_of(tasks: list[TaskSnapshot], **fields: Any) -> RunSnapshot:
    fields.setdefault("status", RunStatus.failed)
    fields.setdefault("started_at", T0)
    return RunSnapshot(id="run-1", name="Sync ü", created_at=T0, tasks=tasks, **fields)


TIMES = st.none() | st.floats(min_value=T0 - 10, max_value=T0 + 100_000)
TASKS = st.lists(
    st.builds(
        TaskSnapshot,
        task_id=TEXT,
        label=TEXT,
        type=TEXT,
        state=st.sampled_from(list(TaskState)),
        position=st.integers(min_value=0, max_value=50),
        parent_id=st.none() | TEXT,
        attempts=st.integers(min_value=0, max_value=5),
        started_at=TIMES,
        finished_at=TIMES,
        error=st.none() | TEXT,
        error_class=st.none() | TEXT,
        reason=st.none() | TEXT,
        chain=st.lists(TEXT, max_size=3),
        output=VALUES,
        has_output=st.booleans(),
    ),
    max_size=6,
)


@settings(max_examples=200)
@given(TASKS, TIMES, st.none() | TEXT)
def test_results_json_holds_the_aggregated_results(
    tasks: list[TaskSnapshot], finished_at: float | None, error: str | None
) -> None:
    snapshot = snapshot_of(tasks, finished_at=finished_at, error=error)
    assert json.loads(results_json(snapshot)) == json.loads(dumps(aggregated_results(snapshot)))


@settings(max_examples=100)
@given(TASKS, st.integers(min_value=1, max_value=7))
def test_results_json_in_pieces_is_the_text_of_the_whole(
    tasks: list[TaskSnapshot], per_piece: int
) -> None:
    """Written a piece at a time (a large run's results are never held whole), the text is
    the same, byte for byte, as orjson's for the whole dict, whatever the size of a piece."""
    snapshot = snapshot_of(list({task.task_id: task for task in tasks}.values()))  # ids unique
    whole = orjson.dumps(
        aggregated_results(snapshot),
        default=str,
        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
    ).decode()
    assert "".join(results_json_pieces(snapshot, per_piece)) == whole
    assert results_json(snapshot) == whole


def test_results_json_is_indented_and_keeps_what_orjson_cannot_write() -> None:
    huge = TaskSnapshot(
        task_id="huge",
        label="é",
        type="delay",
        state=TaskState.succeeded,
        position=0,
        output={"count": 2**80},
        has_output=True,
    )
    for tasks in ([huge], []):
        snapshot = snapshot_of(tasks)
        text = results_json(snapshot)
        assert text.startswith('{\n  "id": "run-1",\n  "name": "Sync ü",')
        assert json.loads(text) == json.loads(dumps(aggregated_results(snapshot)))
    assert '"count": 1208925819614629174706176' in results_json(snapshot_of([huge]))


def test_write_run_files_writes_results_json(tmp_path: Path) -> None:
    output = {"rows": [1, 2.5, None, True], "name": "héllo", "nested": {"empty": [], "e": {}}}
    task = TaskSnapshot(
        task_id="a",
        label="A",
        type="delay",
        state=TaskState.succeeded,
        position=0,
        attempts=1,
        started_at=T0,
        finished_at=T0 + 1.5,
        output=output,
        has_output=True,
    )
    snapshot = snapshot_of([task], status=RunStatus.succeeded, finished_at=T0 + 2)
    paths = write_run_files(snapshot, [], tmp_path)
    text = paths[0].read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == json.loads(dumps(aggregated_results(snapshot)))


# --- times and the log -----------------------------------------------------------------------


def datetime_iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@settings(max_examples=500)
@given(
    st.floats(min_value=-2e9, max_value=4e9) | st.integers(min_value=-2 * 10**9, max_value=10**10)
)
def test_iso_is_what_datetime_writes(timestamp: float) -> None:
    assert iso(timestamp) == datetime_iso(timestamp)


@pytest.mark.parametrize(
    "timestamp",
    [0.0, -0.0, 1e-7, -1e-7, -0.5, -0.9999996, 0.0000005, 0.0000015, 0.9999995, T0 + 0.9995,
     T0 + 0.9999996, T0 + 0.0004999, 253402300799.999],
)  # fmt: skip
def test_iso_rounds_microseconds_like_datetime(timestamp: float) -> None:
    assert iso(timestamp) == datetime_iso(timestamp)
    assert iso(None) is None


def reference_log(events: list[EventRecord]) -> str:
    """render_log as first written."""

    def value(item: Any) -> str:
        if (
            isinstance(item, str)
            and item
            and '"' not in item
            and not any(c.isspace() for c in item)
        ):
            return item
        return json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str)

    names = {"warning": "WARN"}
    lines = []
    for event in sorted(events, key=lambda event: event.seq):
        level = names.get(event.level.lower(), event.level.upper())
        message = event.message.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        line = f"{datetime_iso(event.ts)} {level:<5} [{event.task_id or 'orchestration'}] "
        line += f"{event.kind}: {message}"
        if event.data:
            line += "".join(f" {key}={value(item)}" for key, item in event.data.items())
        lines.append(line)
    return "\n".join(lines)


EVENTS = st.lists(
    st.builds(
        EventRecord,
        seq=st.integers(min_value=0, max_value=10**6),
        ts=st.floats(min_value=T0, max_value=T0 + 10_000),
        task_id=st.none() | TEXT,
        kind=TEXT,
        level=st.sampled_from(["info", "warning", "error", "debug", "Warning", "ünusual"]),
        message=TEXT,
        data=st.none() | st.dictionaries(TEXT, VALUES | TEXT, max_size=4),
    ),
    max_size=8,
    unique_by=lambda event: event.seq,
)


@settings(max_examples=300)
@given(EVENTS)
def test_render_log_is_what_it_was(events: list[EventRecord]) -> None:
    assert render_log(events) == reference_log(events)


# --- the timeline and the report -------------------------------------------------------------

ATTEMPTS = st.lists(
    st.builds(
        AttemptRow,
        orchestration_id=st.just("run-1"),
        task_id=st.sampled_from(["a", "b", "c"]),
        attempt=st.integers(min_value=1, max_value=3),
        started_at=st.floats(min_value=T0, max_value=T0 + 5),
        finished_at=st.none() | st.floats(min_value=T0, max_value=T0 + 6),
        outcome=st.sampled_from([None, "succeeded", "failed"]),
        queued_at=st.none() | st.floats(min_value=T0 - 1, max_value=T0 + 5),
        waited_for=st.none() | st.sampled_from(["rate limit api (5/s)", "limit db (2)"]),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(ATTEMPTS, st.floats(min_value=T0 + 5, max_value=T0 + 7))
def test_band_from_attempts_is_the_band_of_their_spans(rows: list[AttemptRow], end: float) -> None:
    origin = T0 - 1
    task = TaskSnapshot(task_id="a", label="a", type="delay", state="running", position=0)
    spans = task_spans(task, rows, origin, end)
    assert attempts_band(rows, origin, end) == concurrency_band(spans)


DOCUMENT: dict[str, Any] = {
    "name": "dependencies",
    "tasks": [
        {"id": "first", "type": "delay", "config": {"seconds": 0.01, "value": [1, 2]}},
        {"id": "quick", "type": "delay"},
        {"id": "each", "type": "delay", "dependencies": ["first"], "for_each": "${first.output}"},
        {"id": "slow", "type": "delay", "dependencies": ["first"], "config": {"seconds": 0.05}},
        {"id": "last", "type": "delay", "dependencies": ["quick", "slow", "each"]},
    ],
}


@pytest.mark.anyio
async def test_report_from_given_dependencies_is_the_report_from_the_store(
    engine: Engine,
) -> None:
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    snapshot = await engine.wait(run_id, timeout=10)
    assert snapshot.status is RunStatus.succeeded
    await engine.settled(run_id)
    # written at the end of the run, from the dependencies the run handed over
    written = (Path(snapshot.run_dir or "") / "report.html").read_text(encoding="utf-8")
    assert "<span class='chain'>first → slow → last</span>" in written

    now = (snapshot.finished_at or 0) + 1
    from_store = await build_report(engine.store, snapshot, now=now)
    dependencies = {
        task["id"]: task.get("dependencies", []) for task in DOCUMENT["tasks"]
    }  # as the run has them
    given_ = await build_report(engine.store, snapshot, now=now, dependencies=dependencies)
    assert given_.timeline == from_store.timeline
    assert given_.html == from_store.html
    assert from_store.timeline.critical_path == ("first", "slow", "last")
