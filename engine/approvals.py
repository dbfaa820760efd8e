"""The approval desk: where ``approval`` tasks wait for a person, and where decisions arrive.

A waiting task records its request in the store (once: a resumed attempt keeps the first
one's deadline), announces it (the ``approval_needed`` notification, only for a new request),
then waits for a decision. A decision made in this process (an MCP tool) wakes it at once; one
written by another process (``orchestrator approve`` while ``serve`` runs) is found by polling
the table every ``poll`` seconds. When the deadline passes, the desk decides as the task's
``on_timeout`` says, ``decided_by: timeout`` — unless a person decided first (the first
decision written wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.facade_errors import NotAllowedNow, RequestError, UnknownTask
from multi_task_orchestrator.engine.reports.text import iso
from multi_task_orchestrator.engine.state import ApprovalView, RunSnapshot, RunStatus, TaskState
from multi_task_orchestrator.engine.store import ApprovalRow, Store

POLL_SECONDS = 0.5  # how often a waiting task looks for a decision another process wrote
TIMED_OUT = "timeout"  # ``decided_by`` of a decision the deadline made
APPROVAL_TYPE = "approval"
NOTE_MAX_CHARS = 2000  # a decision's note, as approve_task and the live view take it

Decision = Literal["approved", "rejected"]
Announce = Callable[[ApprovalRow], Coroutine[Any, Any, None]]

logger = logging.getLogger("orchestrator.approvals")


class ApprovalDesk:
    """One engine's approvals: ``wait`` for the tasks, ``decide`` and ``waiting`` for people."""

    def __init__(
        self,
        store: Store,
        *,
        redact: Callable[[str], str],
        announce: Announce | None = None,
        poll: float = POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._redact = redact
        self._announce = announce
        self._poll = poll
        self._clock = clock
        self._wakers: dict[tuple[str, str], asyncio.Event] = {}  # tasks waiting here
        self._announcing: set[asyncio.Task[None]] = set()

    # --- the waiting side -----------------------------------------------------------------

    async def wait(
        self,
        orchestration_id: str,
        task_id: str,
        message: str,
        *,
        timeout: float | None,
        on_timeout: Decision,
    ) -> ApprovalRow:
        """Wait until the task is decided; return the decided request. Cancelling the caller
        stops the wait at once (the request stays, undecided, for a resumed attempt)."""
        now = self._clock()
        asked = ApprovalRow(
            orchestration_id,
            task_id,
            self._redact(message),
            now,
            None if timeout is None else now + timeout,
        )
        key = (orchestration_id, task_id)
        woken = self._wakers[key] = asyncio.Event()
        try:
            row, new = await self._store.request_approval(asked)
            if new and self._announce is not None:
                self._send(row)
            while row.decision is None:
                left = None if row.deadline is None else row.deadline - self._clock()
                if left is not None and left <= 0:
                    await self._store.decide_approval(
                        orchestration_id,
                        task_id,
                        decision=on_timeout,
                        note=None,
                        decided_by=TIMED_OUT,
                        decided_at=self._clock(),
                    )
                else:
                    pause = self._poll if left is None else min(self._poll, left)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await woken.wait()
                    woken.clear()
                found = await self._store.get_approval(orchestration_id, task_id)
                if found is None:  # dropped from under it (the run was retried elsewhere)
                    raise TaskError(f"the approval request of task {task_id} was withdrawn")
                row = found
            return row
        finally:
            if self._wakers.get(key) is woken:
                del self._wakers[key]

    def _send(self, row: ApprovalRow) -> None:
        assert self._announce is not None
        sending = asyncio.get_running_loop().create_task(self._announce(row))
        self._announcing.add(sending)
        sending.add_done_callback(self._announcing.discard)

    async def aclose(self, grace: float = 5.0) -> None:
        """Let notifications under way finish (for up to ``grace`` seconds)."""
        if self._announcing:
            await asyncio.wait(set(self._announcing), timeout=grace)
        for sending in set(self._announcing):
            sending.cancel()

    # --- the deciding side ----------------------------------------------------------------

    async def _waiting_items(self, orchestration_id: str, task_id: str) -> list[str]:
        """The items of fan-out ``task_id`` waiting for a decision."""
        waiting = await self.waiting(orchestration_id)
        return [row.task_id for row in waiting if row.task_id.startswith(f"{task_id}[")]

    async def decide(
        self,
        orchestration_id: str,
        task_id: str,
        decision: Decision,
        *,
        note: str | None,
        decided_by: str,
        live: TaskState | None = None,
    ) -> ApprovalRow:
        """Approve or reject a waiting task of the run ``orchestration_id`` (a full id);
        UnknownTask or NotAllowedNow, naming the state, when it is not waiting. ``live`` is
        the task's state in this process, when its run is here: it may be ahead of the store
        (a task cancelled a moment ago)."""
        if note is not None and len(note) > NOTE_MAX_CHARS:
            raise RequestError(
                f"the note is {len(note):,} characters; a note may have at most "
                f"{NOTE_MAX_CHARS:,}: shorten it"
            )
        store = self._store
        run = await store.get_orchestration(orchestration_id, with_document=False)
        if run is not None and RunStatus(run.status).terminal:
            raise NotAllowedNow(
                f"orchestration {orchestration_id} has finished ({run.status}); its tasks "
                "cannot be approved or rejected any more"
            )
        tasks = await store.load_tasks_by_id(orchestration_id, [task_id])
        if not tasks:
            waiting = [row.task_id for row in await self.waiting(orchestration_id)]
            hint = (
                f"tasks waiting for approval: {', '.join(waiting)}"
                if waiting
                else ("none of its tasks waits for approval now")
            )
            raise UnknownTask(f"orchestration {orchestration_id} has no task '{task_id}'; {hint}")
        task = tasks[0][0]
        if task.type != APPROVAL_TYPE:
            raise NotAllowedNow(
                f"task {task_id} is a {task.type} task, not an approval; only tasks of type "
                "'approval' are approved or rejected"
            )
        asked = await store.get_approval(orchestration_id, task_id)
        if asked is not None and asked.decision is not None:
            raise NotAllowedNow(_decided(asked))
        state = live or TaskState(task.state)
        if asked is None and (items := await self._waiting_items(orchestration_id, task_id)):
            raise NotAllowedNow(
                f"task {task_id} is a fan-out: decide each of its items; waiting for approval: "
                f"{', '.join(items)}"
            )
        if asked is None or state.terminal:
            what = "not waiting for approval yet" if asked is None else "not waiting for approval"
            raise NotAllowedNow(f"task {task_id} is {what} (it is {state.value})")
        done = await store.decide_approval(
            orchestration_id,
            task_id,
            decision=decision,
            note=self._redact(note) if note else None,
            decided_by=decided_by,
            decided_at=self._clock(),
        )
        row = await store.get_approval(orchestration_id, task_id)
        assert row is not None
        if not done:  # someone (or the deadline) decided between the read and the write
            raise NotAllowedNow(_decided(row))
        woken = self._wakers.get((orchestration_id, task_id))
        if woken is not None:
            woken.set()
        return row

    async def waiting(self, orchestration_id: str | None = None) -> list[ApprovalRow]:
        """What waits for a decision now (of one run, or of every run), oldest first."""
        rows = await self._store.waiting_approvals()
        if orchestration_id is None:
            return rows
        return [row for row in rows if row.orchestration_id == orchestration_id]


async def with_approvals(store: Store, snapshot: RunSnapshot) -> RunSnapshot:
    """``snapshot`` with each approval task's request and decision (``TaskSnapshot.approval``),
    read from the store; a run without approval tasks is returned as it is, unread."""
    if not any(task.type == APPROVAL_TYPE for task in snapshot.tasks):
        return snapshot
    rows = await store.approvals_of(snapshot.id)
    for task in snapshot.tasks:
        row = rows.get(task.task_id)
        if row is not None:
            task.approval = ApprovalView(
                message=row.message,
                requested_at=row.requested_at,
                deadline=row.deadline,
                decision=row.decision,
                note=row.note,
                decided_by=row.decided_by,
                decided_at=row.decided_at,
            )
    return snapshot


def _decided(row: ApprovalRow) -> str:
    by = "its timeout" if row.decided_by == TIMED_OUT else row.decided_by
    return f"task {row.task_id} was already {row.decision} by {by} at {iso(row.decided_at)}"
