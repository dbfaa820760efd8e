"""Who hears what, and how hard we try: the ``Notifier`` picks a document's channels for an
event, sends to each with retries and backoff, and records every try in the run's event log
(redacted). Nothing it does can fail a run: every error ends as a log line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.notify_models import NotifyChannel
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.notify.payload import (
    approval_body,
    run_body,
    run_event,
    task_body,
)
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.secrets import SecretResolver
from multi_task_orchestrator.engine.store import ApprovalRow, Store

logger = logging.getLogger("orchestrator.notify")

TRIES = 3
BACKOFF = (0.5, 1.5)  # seconds before the second and the third try


@dataclass(slots=True)
class Notifier:
    """Sends a run's notifications. ``default_url`` is the channel ``notify: true`` means
    (the ``notify_url`` setting); without it, ``notify: true`` only writes a log event."""

    store: Store
    network: Network
    secrets: SecretResolver
    redact: Callable[[str], str]
    default_url: str | None = None
    backoff: Sequence[float] = BACKOFF
    # task_failed deliveries under way, by run: the run's end waits for them, so its log
    # (written after) holds their tries and receivers hear of a task before of its run
    _pending: dict[str, set[asyncio.Task[Any]]] = field(default_factory=dict)

    def channels(self, spec: Orchestration, event: str) -> list[NotifyChannel]:
        """The channels of ``spec`` that hear ``event``."""
        if isinstance(spec.notify, list):
            return [channel for channel in spec.notify if event in channel.events]
        wanted = spec.notify or (event == "task_failed" and spec.on_failure.notify)
        if wanted and self.default_url:
            try:
                return [NotifyChannel(url=self.default_url, events=(event,))]
            except ValueError as exc:  # raised here, it would leave the run unfinished
                logger.error("the default notification channel is not usable: %s", exc)
        return []

    async def on_run_end(self, end: RunEnd) -> None:
        """The run-end listener: the run's ``finished`` or ``failed`` event."""
        if end.spec is None:
            return
        pending = self._pending.pop(end.snapshot.id, set())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        event = run_event(end.snapshot)
        channels = self.channels(end.spec, event)
        if not channels:
            if end.spec.notify is True:  # the seed's form without a default channel
                self._record(end.snapshot.id, "notify", f"run {event}: {end.snapshot.status}")
                await self.store.flush()
            return
        body = run_body(event, end.snapshot)
        await self._deliver_all(end.snapshot.id, None, channels, body)
        await self.store.flush()  # the tries are in the log the next listener writes

    def wants_task_failed(self, spec: Orchestration) -> bool:
        return bool(self.channels(spec, "task_failed"))

    async def task_failed(
        self,
        spec: Orchestration,
        run_id: str,
        task_id: str,
        error_class: str | None,
        error: str | None,
    ) -> None:
        """A task failed for good: its ``task_failed`` event."""
        channels = self.channels(spec, "task_failed")
        current = asyncio.current_task()
        if not channels or current is None:
            return
        pending = self._pending.setdefault(run_id, set())
        pending.add(current)
        try:
            body = task_body(run_id, spec.name, task_id, error_class, error)
            await self._deliver_all(run_id, task_id, channels, body)
        finally:
            pending.discard(current)

    async def approval_needed(self, spec: Orchestration, row: ApprovalRow) -> None:
        """An approval task of the run started waiting: its ``approval_needed`` event."""
        channels = self.channels(spec, "approval_needed")
        if not channels:
            return
        body = approval_body(spec.name, row)
        await self._deliver_all(row.orchestration_id, row.task_id, channels, body)

    async def _deliver_all(
        self,
        run_id: str,
        task_id: str | None,
        channels: list[NotifyChannel],
        body: dict[str, Any],
    ) -> None:
        # the snapshot's messages are masked already; this holds for anything added to them
        body = json.loads(self.redact(json.dumps(body)))
        await asyncio.gather(
            *(self._deliver(run_id, task_id, channel, body) for channel in channels)
        )

    async def _deliver(
        self, run_id: str, task_id: str | None, channel: NotifyChannel, body: dict[str, Any]
    ) -> None:
        # the channels (and httpx) load with the first delivery, not with every engine
        from multi_task_orchestrator.engine.notify.channels import DeliveryError, send

        shown = _shown(channel.url)
        event = body["event"]
        for attempt in range(1, TRIES + 1):
            try:
                answer = await send(channel, body, network=self.network, secrets=self.secrets)
            except (DeliveryError, OSError, ValueError) as exc:
                last = attempt == TRIES or (isinstance(exc, DeliveryError) and not exc.retry)
                outcome = "gave up" if last else "will retry"
                self._record(
                    run_id,
                    "notify",
                    f"{event} to {shown}: try {attempt} of {TRIES} failed: {exc}; {outcome}",
                    "error" if last else "warning",
                    task_id,
                )
                if last:
                    return
                await asyncio.sleep(self.backoff[min(attempt, len(self.backoff)) - 1])
            except Exception as exc:  # a notification never fails the run
                logger.exception("notification to %s failed", shown)
                self._record(run_id, "notify", f"{event} to {shown}: {exc}", "error", task_id)
                return
            else:
                self._record(
                    run_id,
                    "notify",
                    f"{event} sent to {shown} (try {attempt}): {answer}",
                    task_id=task_id,
                )
                return

    def _record(
        self,
        run_id: str,
        kind: str,
        message: str,
        level: str = "info",
        task_id: str | None = None,
    ) -> None:
        self.store.add_event(
            run_id, task_id, kind, self.redact(message), ts=time.time(), level=level
        )


def _shown(url: str) -> str:
    """The channel as the log names it: scheme and host, never its path or credentials."""
    scheme, _, rest = url.partition("://")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{host}"
