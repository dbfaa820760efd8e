"""``report.html``: one self-contained page that shows what a run did and where the time went.

The summary, the timeline picture (inline SVG), where the waiting and retrying happened, the
failures with their chains, every task in a table and links to the run's files and artifacts
(relative, so the folder can be moved or zipped). Inline CSS only: no scripts, nothing fetched.

Everything comes from the store and the run's snapshot, which hold redacted text only; task
outputs are not shown (``aggregated_results.json`` has them).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from multi_task_orchestrator.engine.atomic import AtomicFiles
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.plan import execution_stages
from multi_task_orchestrator.engine.reports.files import REPORT_FILE, run_files
from multi_task_orchestrator.engine.reports.spans import wait_kind
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.reports.svg import render_svg
from multi_task_orchestrator.engine.reports.text import format_duration
from multi_task_orchestrator.engine.reports.timeline import (
    Timeline,
    build_timeline,
    dependencies_of,
)
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow, Store
from multi_task_orchestrator.engine.usage import usage_line

ARTIFACTS_DIR = "artifacts"

_STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
  margin: 0; background: #f6f8fa; }
main { max-width: 1160px; margin: 0 auto; padding: 24px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 20px;
  margin: 0 0 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 10px; }
.id { color: #57606a; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
.usage { margin-top: 6px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: 12.5px;
  font-weight: 600; color: #fff; vertical-align: middle; margin-left: 8px; }
.b-succeeded { background: #35a063; } .b-failed { background: #d64545; }
.b-cancelled { background: #6e7781; } .b-running, .b-pending { background: #4a86e8; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 92px; }
.card b { display: block; font-size: 20px; }
.card span { color: #57606a; font-size: 12px; }
.picture { overflow-x: auto; }
.picture svg { display: block; max-width: none; }
ul.facts { margin: 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2;
  vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.num { text-align: right; white-space: nowrap; }
td.err { color: #9a2222; max-width: 460px; overflow-wrap: anywhere; }
tr.child td:first-child { padding-left: 24px; }
.state { font-weight: 600; }
.state.succeeded { color: #1f7f47; } .state.failed { color: #c22d2d; }
.state.skipped, .state.cancelled { color: #6e7781; }
.chain { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px;
  color: #57606a; }
pre { background: #f6f8fa; padding: 12px; border-radius: 6px; overflow-x: auto;
  font-size: 12.5px; }
a { color: #0969da; }
"""

_FAILURE_STATES = (TaskState.failed, TaskState.skipped, TaskState.cancelled)
_STATE_TEXT = {state: state.value for state in TaskState}  # a member's .value is slow to get


@dataclass(frozen=True, slots=True)
class Report:
    """A run's report: the timeline data and its SVG, laid out; the HTML page that holds both
    is made when asked for, whole (``html``) or in pieces (``pieces``: a large run's page is
    written without ever being held whole)."""

    snapshot: RunSnapshot
    timeline: Timeline
    svg: str
    attempts: Sequence[AttemptRow]
    now: float
    files: Sequence[Path] | None  # the run's files it links to (default: those there now)

    def pieces(self) -> Iterator[str]:
        snapshot = self.snapshot
        run_dir = Path(snapshot.run_dir) if snapshot.run_dir else None
        return html_pieces(
            snapshot,
            self.timeline,
            self.svg,
            self.attempts,
            run_dir=run_dir,
            now=self.now,
            files=self.files,
        )

    @property
    def html(self) -> str:
        return "".join(self.pieces())


async def build_report(
    store: Store,
    snapshot: RunSnapshot,
    *,
    now: float | None = None,
    dependencies: Mapping[str, Sequence[str]] | None = None,
    stages: Sequence[Sequence[str]] | None = None,
) -> Report:
    """Read the run's attempts from ``store`` and lay out its report.

    ``dependencies`` maps each task id to its dependencies (``timeline.dependencies_of``) and
    ``stages`` are the run's barriers (``document.plan.execution_stages``); when not given, they are
    read from the document in the store, which means parsing all of it.
    """
    now = time.time() if now is None else now
    await store.flush()
    if dependencies is None or stages is None:
        row = await store.get_orchestration(snapshot.id)
        document = row.document if row is not None and row.document else {}
        if dependencies is None:
            dependencies = dependencies_of(document)
        if stages is None:
            stages = _stages_of(document)
    attempts = await store.load_attempts(snapshot.id)
    # CPU work: off the event loop, which keeps scheduling meanwhile
    return await cpu_bound(
        functools.partial(lay_out_report, snapshot, attempts, dependencies, stages, now=now)
    )


def lay_out_report(
    snapshot: RunSnapshot,
    attempts: Sequence[AttemptRow],
    dependencies: Mapping[str, Sequence[str]],
    stages: Sequence[Sequence[str]],
    *,
    now: float,
    files: Sequence[Path] | None = None,
) -> Report:
    """The report of ``snapshot`` from its attempts, as ``build_report`` lays it out; ``files``
    are the run's files it links to (by default those in its folder now, ``run_files``)."""
    timeline = build_timeline(snapshot, attempts, dependencies, now=now, stages=stages)
    return Report(snapshot, timeline, render_svg(timeline), attempts, now, files)


async def write_report(
    store: Store,
    snapshot: RunSnapshot,
    *,
    now: float | None = None,
    dependencies: Mapping[str, Sequence[str]] | None = None,
    stages: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Write ``report.html`` into the run's folder (atomically, owner-only) and return its path.

    ``dependencies`` and ``stages`` as for ``build_report``: pass them when at hand to spare
    reading them.
    """
    if not snapshot.run_dir:
        raise ValueError(f"orchestration {snapshot.id} has no run folder to write a report into")
    report = await build_report(store, snapshot, now=now, dependencies=dependencies, stages=stages)
    folder = Path(snapshot.run_dir).absolute()
    path = folder / REPORT_FILE

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with AtomicFiles() as files:
            files.write(path, report.pieces())

    await asyncio.to_thread(write)
    return path


def _stages_of(document: Mapping[str, Any]) -> list[list[str]]:
    """The barriers of a stored document's run (none when it no longer reads as one)."""
    try:
        return execution_stages(Orchestration.model_validate(document))
    except (ValidationError, ValueError, KeyError):
        return []


def html_pieces(
    snapshot: RunSnapshot,
    timeline: Timeline,
    svg: str,
    attempts: Sequence[AttemptRow],
    *,
    run_dir: Path | None,
    now: float,
    files: Sequence[Path] | None = None,
) -> Iterator[str]:
    """The whole page as text, in pieces to be joined (``Report.html``) or written one after
    the other, each made as it is asked for; ``files`` as for ``lay_out_report``."""
    status = snapshot.status.value
    if files is None:
        files = [Path(path) for path in run_files(run_dir)]
    # Pieces, never joined here: the picture and the table of a large run are hundreds of
    # kilobytes each, and copying them from string to string shows.
    yield (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(snapshot.name)} — {_e(status)}</title>\n"
        f"<style>{_STYLE}</style></head>\n<body><main>\n"
    )
    yield _header(snapshot, now)
    yield from _section("Timeline", '<div class="picture">', svg, "</div>")
    yield from _section("Where the time went", _facts(snapshot, timeline, attempts))
    failures = [task for task in _ordered(snapshot.tasks) if task.state in _FAILURE_STATES]
    if failures:
        yield from _section(f"Failures ({len(failures)})", _failures(failures))
    yield from _section(f"Tasks ({len(snapshot.tasks)})", *_task_table(snapshot))
    yield from _section("Files", _files(files, run_dir))
    summary = render_summary(snapshot, files, now=now)
    yield from _section("Summary (text)", f"<pre>{_e(summary)}</pre>")
    yield "\n</main></body></html>\n"


def _section(title: str, *body: str | Iterable[str]) -> Iterator[str]:
    """A section as pieces of text, after the one before it: its heading, then ``body`` (a
    part of it may be pieces to be made as they are read)."""
    yield f"\n<section><h2>{_e(title)}</h2>\n"
    for part in body:
        if isinstance(part, str):
            yield part
        else:
            yield from part
    yield "\n</section>"


def _header(snapshot: RunSnapshot, now: float) -> str:
    counts = snapshot.counts()
    counts["running"] = snapshot.running_tasks()  # a fan-out's items, not the fan-out
    status = snapshot.status.value
    cards = [
        (str(len(snapshot.tasks)), "tasks"),
        (str(counts["succeeded"]), "succeeded"),
        (str(counts["failed"]), "failed"),
    ]
    cards.extend(
        (str(counts[state]), state)
        for state in ("skipped", "cancelled", "running", "queued", "pending")
        if counts[state]
    )
    cards.append((format_duration(snapshot.elapsed(now)), "duration"))
    cards.append((str(snapshot.max_parallel), "most at once"))
    started = _clock(snapshot.started_at or snapshot.created_at)
    card_html = "".join(
        f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in cards
    )
    error = f"<p class='err'>{_e(snapshot.error)}</p>" if snapshot.error else ""
    usage = ""
    if snapshot.usage is not None:
        usage = f"<div class='usage'>{_e(usage_line(snapshot.usage))}</div>"
    return (
        f"<section><h1>{_e(snapshot.name)}<span class='badge b-{_e(status)}'>{_e(status)}</span>"
        f"</h1><div class='id'>{_e(snapshot.id)} · started {_e(started)}</div>{usage}{error}"
        f"<div class='cards'>{card_html}</div></section>"
    )


def _facts(snapshot: RunSnapshot, timeline: Timeline, attempts: Sequence[AttemptRow]) -> str:
    facts: list[str] = []
    top_path = [key for key in timeline.critical_path if "[" not in key]
    if timeline.critical_path:
        facts.append(
            "Critical path (the chain that decided the end time): "
            f"<span class='chain'>{_e(' → '.join(timeline.critical_path))}</span>"
            f" — {len(top_path)} task{'s' if len(top_path) != 1 else ''}"
        )
    waits: dict[str, list[float]] = {}
    for row in attempts:
        if row.queued_at is not None and row.waited_for and row.started_at > row.queued_at:
            waits.setdefault(row.waited_for, []).append(row.started_at - row.queued_at)
    for reason, spans in sorted(waits.items(), key=lambda item: -sum(item[1])):
        kind = "a rate limit" if wait_kind(reason) == "rate" else "a free slot"
        facts.append(
            f"{len(spans)} attempt{'s' if len(spans) != 1 else ''} waited for {kind}: "
            f"<b>{_e(reason)}</b> — {format_duration(sum(spans))} in total, longest "
            f"{format_duration(max(spans))}"
        )
    retried = [task for task in snapshot.tasks if task.attempts > 1]
    if retried:
        names = ", ".join(f"{task.task_id} ({task.attempts} attempts)" for task in retried[:8])
        more = f" and {len(retried) - 8} more" if len(retried) > 8 else ""
        facts.append(
            f"{len(retried)} task{'s' if len(retried) != 1 else ''} retried: {_e(names)}{more}"
        )
    held = timeline.barrier_waits
    if held:
        longest = sorted(held, key=lambda wait: -wait.seconds)
        named = ", ".join(
            f"{wait.task_id} ({format_duration(wait.seconds)}, for {wait.held_by})"
            for wait in longest[:8]
        )
        more = f" and {len(held) - 8} more" if len(held) > 8 else ""
        facts.append(
            f"{len(held)} task{'s' if len(held) != 1 else ''} waited at a stage barrier for "
            f"the stages before to finish: {_e(named)}{more}"
        )
    if not waits and not held:
        facts.append("No task waited for a slot, a rate limit or a stage barrier.")
    elif not waits:
        facts.append("No task waited for a slot or a rate limit.")
    return "<ul class='facts'>" + "".join(f"<li>{fact}</li>" for fact in facts) + "</ul>"


def _failures(tasks: Iterable[TaskSnapshot]) -> str:
    items = []
    for task in tasks:
        what = task.error or task.reason or task.state.value
        extra = []
        if task.error_class and task.state is TaskState.failed:
            extra.append(task.error_class)
        if task.attempts > 1:
            extra.append(f"{task.attempts} attempts")
        note = f" [{', '.join(extra)}]" if extra else ""
        links = list(task.chain)
        if not links or links[0] != task.task_id:
            links.insert(0, task.task_id)  # the chain leads from this task to the root cause
        chain = f"<div class='chain'>chain: {_e(' → '.join(links))}</div>" if len(links) > 1 else ""
        items.append(
            f"<li><b>{_e(task.task_id)}</b> <span class='state {task.state.value}'>"
            f"{task.state.value}</span>: {_e(what)}{_e(note)}{chain}</li>"
        )
    return "<ul class='facts'>" + "".join(items) + "</ul>"


def _task_table(snapshot: RunSnapshot) -> tuple[str, Iterator[str], str]:
    """The table of every task, as pieces of text: its head, its rows (made as they are
    read, a few hundred to a piece) and its end."""
    head = (
        "<tr><th>task</th><th>label</th><th>type</th><th>state</th><th>attempts</th>"
        "<th>started</th><th>duration</th><th>error / reason</th></tr>"
    )
    return (
        f"<table><thead>{head}</thead><tbody>",
        _task_rows(snapshot),
        "</tbody></table>",
    )


def _task_rows(snapshot: RunSnapshot, per_piece: int = 500) -> Iterator[str]:
    origin = snapshot.started_at or snapshot.created_at
    rows: list[str] = []
    for task in _ordered(snapshot.tasks):
        started = "" if task.started_at is None else f"+{task.started_at - origin:.2f}s"
        seconds = task.duration
        duration = "" if seconds is None else format_duration(seconds)
        problem = task.error or task.reason or ""
        if task.state is TaskState.succeeded and task.error:
            problem = f"an earlier attempt failed: {task.error}"
        css = " class='child'" if task.parent_id else ""
        state = _STATE_TEXT[task.state]
        rows.append(
            f"<tr{css}><td>{_e(task.task_id)}</td><td>{_e(task.label)}</td>"
            f"<td>{_e(task.type)}</td>"
            f"<td class='state {state}'>{state}</td>"
            f"<td class='num'>{task.attempts}/{task.max_attempts}</td>"
            f"<td class='num'>{started}</td><td class='num'>{duration}</td>"
            f"<td class='err'>{_e(problem)}</td></tr>"
        )
        if len(rows) == per_piece:
            yield "".join(rows)
            rows.clear()
    yield "".join(rows)


def _files(files: Sequence[Path], run_dir: Path | None) -> str:
    links = [f"<li><a href='{quote(path.name)}'>{_e(path.name)}</a></li>" for path in files]
    artifacts = _artifacts(run_dir)
    if artifacts:
        links.extend(
            f"<li><a href='{ARTIFACTS_DIR}/{quote(name)}'>{ARTIFACTS_DIR}/{_e(name)}</a></li>"
            for name in artifacts
        )
    else:
        links.append("<li>No artifacts (files tasks saved, such as screenshots).</li>")
    return "<ul class='facts'>" + "".join(links) + "</ul>"


def _artifacts(run_dir: Path | None) -> list[str]:
    if run_dir is None:
        return []
    folder = run_dir / ARTIFACTS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        path.name for path in folder.iterdir() if path.is_file() and not path.is_symlink()
    )


def _ordered(tasks: Iterable[TaskSnapshot]) -> list[TaskSnapshot]:
    return sorted(tasks, key=lambda task: task.position)


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: str) -> str:
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return escape(text, quote=True)
    return text  # most text has nothing to escape: spare escape's five replaces
