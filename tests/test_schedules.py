"""Schedules in the engine, with an injected clock (time is moved, never waited for): next fire
times of cron (across daylight-saving changes) and intervals, the overlap and catch-up policies
with real ``delay`` runs, a restart between fires, two servers on one database, a document that
stops validating, pause and resume, the loop picking up a schedule added while it runs, and a
schema 6 database gaining the table."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from multi_task_orchestrator.engine import (
    SCHEMA_VERSION,
    Engine,
    ScheduleBook,
    ScheduleError,
    ScheduleFirer,
    ScheduleSpec,
    UnknownSchedule,
)
from multi_task_orchestrator.engine.registry import runner_classes
from multi_task_orchestrator.engine.schedules.timing import fire_times
from multi_task_orchestrator.engine.store import _SCHEMA
from multi_task_orchestrator.engine.store.schema import SCHEDULES_TABLE

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a fixed start for the injected clock
LONG = "name: long\ntasks:\n  - {id: wait, type: delay, config: {seconds: 60}}\n"
QUICK = (
    "name: quick\nvars: {word: hi}\n"
    "tasks:\n  - {id: say, type: delay, config: {value: '${vars.word}'}}\n"
)


class Clock:
    """``now`` and ``sleep`` for a firer: sleeping moves the time on at once."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0.01)


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
async def engine(home: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, shutdown_grace=0
    ) as opened:
        yield opened


async def _scheduled_runs(engine: Engine, schedule_id: str) -> list[str]:
    rows = await engine.list(limit=200)
    return [row.id for row in rows if row.source == f"schedule:{schedule_id}"]


async def _finish(engine: Engine, run_id: str) -> None:
    await engine.cancel(run_id)
    await engine.wait_until_finished(run_id, 30)


# --- when a schedule fires -------------------------------------------------------------------


def test_cron_fires_once_a_day_across_both_daylight_saving_changes() -> None:
    def next_three(expression: str, zone: str, after: str) -> list[str]:
        times = fire_times(
            cron=expression, every=None, zone=zone, created_at=0, after=_utc(after), count=3
        )
        return [_iso(t) for t in times]

    # Berlin springs forward at 02:00 on 29 March 2026: 02:30 does not exist, the job runs at
    # the first valid time after it (03:00 CEST = 01:00Z), once
    assert next_three("30 2 * * *", "Europe/Berlin", "2026-03-28 12:00") == [
        "2026-03-29 01:00",
        "2026-03-30 00:30",
        "2026-03-31 00:30",
    ]
    # ... and falls back at 03:00 on 25 October: 02:30 happens twice, the job runs once
    assert next_three("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00") == [
        "2026-10-25 00:30",
        "2026-10-26 01:30",
        "2026-10-27 01:30",
    ]
    # 09:00 on weekdays in New York: 14:00Z in winter, 13:00Z once DST began (8 March 2026)
    assert next_three("0 9 * * 1-5", "America/New_York", "2026-03-05 15:00") == [
        "2026-03-06 14:00",
        "2026-03-09 13:00",
        "2026-03-10 13:00",
    ]
    assert next_three("@hourly", "UTC", "2026-01-01 10:30") == [
        "2026-01-01 11:00",
        "2026-01-01 12:00",
        "2026-01-01 13:00",
    ]


def test_an_interval_is_anchored_at_the_schedules_creation() -> None:
    times = fire_times(cron=None, every=900, zone="UTC", created_at=T0, after=T0, count=2)
    assert times == [T0 + 900, T0 + 1800]
    # asked long after, it stays on the creation's grid (not "now + 15 min")
    (later,) = fire_times(cron=None, every=900, zone="UTC", created_at=T0, after=T0 + 10_000)
    assert later == T0 + 12 * 900
    # a fire time itself is not "after" itself
    (after_fire,) = fire_times(cron=None, every=900, zone="UTC", created_at=T0, after=T0 + 900)
    assert after_fire == T0 + 1800


def test_a_bad_spec_is_refused_with_every_problem_and_a_hint() -> None:
    with pytest.raises(ScheduleError) as caught:
        ScheduleSpec.parse(
            {"cron": "61 * * * *", "timezone": "Europe/Berln", "overlap": "never", "catchup": 1}
        )
    text = str(caught.value)
    assert "4 problems" in text
    assert "bad cron expression '61 * * * *'" in text and "five fields" in text
    assert "did you mean 'Europe/Berlin'?" in text
    assert "overlap: must be 'skip', 'queue' or 'allow'" in text
    assert "catchup: unknown field" in text and "did you mean 'catch_up'?" in text
    for values, expected in [
        ({}, "give cron or every"),
        ({"cron": "@daily", "every": "1h"}, "not both"),
        ({"every": "500ms"}, "at least 1 s"),
        ({"every": "soon"}, "'soon' is not a duration"),
        ({"every": "1m", "timezone": "europe/berlin"}, "did you mean 'Europe/Berlin'?"),
    ]:
        with pytest.raises(ScheduleError, match=expected):
            ScheduleSpec.parse(values)
    assert ScheduleSpec.parse({"every": "15m"}).every == 900


# --- overlap ---------------------------------------------------------------------------------


async def test_overlap_skip_skips_a_fire_while_the_last_run_is_unfinished(engine: Engine) -> None:
    clock = Clock()
    book = ScheduleBook(engine, now=clock.now)
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    schedule = await book.add(ScheduleSpec.parse({"every": "1m"}), LONG)
    assert schedule.next_fires == [T0 + 60, T0 + 120, T0 + 180]

    assert await firer.tick() == []  # nothing due yet
    clock.t = T0 + 60
    (first,) = await firer.tick()
    assert first.outcome == "started" and first.due == T0 + 60
    clock.t = T0 + 120
    (second,) = await firer.tick()
    assert (second.outcome, second.run_id) == ("skipped", first.run_id)
    listed = await book.get(schedule.id)
    assert (listed.row.fires, listed.row.skips, listed.last_run_status) == (1, 1, "running")
    await _finish(engine, first.run_id or "")
    clock.t = T0 + 180
    (third,) = await firer.tick()
    assert third.outcome == "started"
    assert len(await _scheduled_runs(engine, schedule.id)) == 2
    await _finish(engine, third.run_id or "")


async def test_overlap_queue_keeps_one_fire_waiting_and_starts_it_when_the_run_ends(
    engine: Engine,
) -> None:
    clock = Clock()
    book = ScheduleBook(engine, now=clock.now)
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    schedule = await book.add(ScheduleSpec.parse({"every": "1m", "overlap": "queue"}), LONG)
    clock.t = T0 + 60
    (first,) = await firer.tick()
    clock.t = T0 + 120
    assert [fire.outcome for fire in await firer.tick()] == ["queued"]
    clock.t = T0 + 180
    assert [fire.outcome for fire in await firer.tick()] == ["skipped"]  # one waits at most
    assert await firer.tick() == []  # still running: the queued fire keeps waiting
    await _finish(engine, first.run_id or "")
    (queued,) = await firer.tick()
    assert (queued.outcome, queued.due) == ("started", T0 + 120)
    listed = await book.get(schedule.id)
    assert (listed.row.fires, listed.row.skips, listed.row.queued_at) == (2, 1, None)
    assert len(await _scheduled_runs(engine, schedule.id)) == 2
    await _finish(engine, queued.run_id or "")


async def test_overlap_allow_starts_a_run_beside_the_unfinished_one(engine: Engine) -> None:
    clock = Clock()
    book = ScheduleBook(engine, now=clock.now)
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    schedule = await book.add(ScheduleSpec.parse({"every": "1m", "overlap": "allow"}), LONG)
    started = []
    for minute in (1, 2):
        clock.t = T0 + 60 * minute
        (fire,) = await firer.tick()
        assert fire.outcome == "started"
        started.append(fire.run_id or "")
    assert [(await engine.run_status(run)).value for run in started] == ["running", "running"]
    assert sorted(await _scheduled_runs(engine, schedule.id)) == sorted(started)
    for run_id in started:
        await _finish(engine, run_id)


# --- catch-up, restarts, several servers ------------------------------------------------------


@pytest.mark.parametrize(("policy", "runs"), [("skip", 0), ("run_once", 1)])
async def test_after_downtime_catch_up_skips_or_runs_once_never_a_burst(
    engine: Engine, policy: str, runs: int
) -> None:
    clock = Clock()
    book = ScheduleBook(engine, now=clock.now)
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    schedule = await book.add(ScheduleSpec.parse({"every": "1m", "catch_up": policy}), QUICK)
    clock.t = T0 + 3600 + 5  # an hour with no server: 60 fires missed
    fires = await firer.tick()
    assert [fire.outcome for fire in fires] == ["missed" if policy == "skip" else "started"]
    assert await firer.tick() == []  # a second pass at the same time does nothing
    listed = await book.get(schedule.id)
    assert listed.row.next_fire_at == T0 + 3660  # the next fire after now, on the grid
    assert (listed.row.fires, listed.row.skips) == (runs, 1 - runs)
    scheduled = await _scheduled_runs(engine, schedule.id)
    assert len(scheduled) == runs
    for run_id in scheduled:
        await engine.wait_until_finished(run_id, 30)
    # a fire within the grace period is not missed: it runs whatever the policy
    clock.t = T0 + 3660 + 30
    (fire,) = await firer.tick()
    assert fire.outcome == "started"
    await engine.wait_until_finished(fire.run_id or "", 30)


async def test_a_restart_between_fires_neither_repeats_nor_loses_a_fire(home: Path) -> None:
    clock = Clock()
    paths = (home / "state.db", home / "runs")
    async with await Engine.open(*paths, resume=False) as first:
        book = ScheduleBook(first, now=clock.now)
        schedule = await book.add(ScheduleSpec.parse({"every": "1m"}), QUICK)
        clock.t = T0 + 60
        (fire,) = await ScheduleFirer(first, now=clock.now).tick()
        await first.wait_until_finished(fire.run_id or "", 30)
    async with await Engine.open(*paths, resume=False) as second:
        firer = ScheduleFirer(second, now=clock.now)
        assert await firer.tick() == []  # the same moment again: already fired
        clock.t = T0 + 119
        assert await firer.tick() == []
        clock.t = T0 + 120
        (next_fire,) = await firer.tick()
        assert next_fire.outcome == "started" and next_fire.due == T0 + 120
        await second.wait_until_finished(next_fire.run_id or "", 30)
        assert len(await _scheduled_runs(second, schedule.id)) == 2
        listed = await ScheduleBook(second, now=clock.now).get(schedule.id)
        assert (listed.row.fires, listed.last_run_status) == (2, "succeeded")


async def test_two_servers_on_one_database_fire_each_fire_once(home: Path) -> None:
    clock = Clock()
    paths = (home / "state.db", home / "runs")
    async with (
        await Engine.open(*paths, resume=False) as one,
        await Engine.open(*paths, resume=False) as two,
    ):
        book = ScheduleBook(one, now=clock.now)
        schedule = await book.add(ScheduleSpec.parse({"every": "1m", "overlap": "allow"}), QUICK)
        firers = [ScheduleFirer(engine, now=clock.now) for engine in (one, two)]
        started: list[str] = []
        for minute in (1, 2, 3):
            clock.t = T0 + 60 * minute
            passes = await asyncio.gather(*(firer.tick() for firer in firers))
            fires = [fire for fires in passes for fire in fires]
            assert [fire.outcome for fire in fires] == ["started"]
            started.append(fires[0].run_id or "")
        for run_id in started:
            await one.wait_until_finished(run_id, 30)
        assert sorted(await _scheduled_runs(one, schedule.id)) == sorted(started)


async def test_a_document_that_no_longer_validates_is_recorded_and_the_schedule_goes_on(
    home: Path,
) -> None:
    clock = Clock()
    paths = (home / "state.db", home / "runs")
    async with await Engine.open(*paths, resume=False) as full:
        schedule = await ScheduleBook(full, now=clock.now).add(
            ScheduleSpec.parse({"every": "1m"}), QUICK
        )
    without_delay = {name: cls for name, cls in runner_classes().items() if name != "delay"}
    async with await Engine.open(*paths, resume=False, runner_types=without_delay) as smaller:
        clock.t = T0 + 60
        (fire,) = await ScheduleFirer(smaller, now=clock.now).tick()
        assert fire.outcome == "error" and "delay" in fire.detail
        listed = await ScheduleBook(smaller, now=clock.now).get(schedule.id)
        assert listed.row.last_error is not None and "no longer validates" in listed.row.last_error
        assert listed.row.fires == 0 and listed.next_fires[0] == T0 + 120
        assert await smaller.list() == []


async def test_an_invalid_document_is_refused_at_add_time_with_every_problem(
    engine: Engine,
) -> None:
    from multi_task_orchestrator.engine import DocumentError

    bad = "tasks:\n  - {id: a, type: delay, config: {seconds: soon}}\n  - {id: b, type: nope}\n"
    with pytest.raises(DocumentError) as caught:
        await ScheduleBook(engine).add(ScheduleSpec.parse({"every": "1m"}), bad)
    assert len(caught.value.issues) >= 2
    assert await engine.store.list_schedules() == []


async def test_pause_resume_delete_and_ids_by_prefix(engine: Engine) -> None:
    clock = Clock()
    book = ScheduleBook(engine, now=clock.now)
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    schedule = await book.add(ScheduleSpec.parse({"cron": "*/5 * * * *", "name": "five"}), QUICK)
    assert schedule.row.name == "five" and schedule.id.startswith("sch-")
    paused = await book.pause(schedule.id[:7])
    assert paused.row.paused and paused.next_fires == []
    clock.t = T0 + 3600
    assert await firer.tick() == []  # paused: nothing fires, nothing is missed
    resumed = await book.resume(schedule.id)
    assert resumed.next_fires[0] == T0 + 3600 + 300  # from now on, no catch-up of the pause
    with pytest.raises(UnknownSchedule, match="no schedule 'sch-zzz'"):
        await book.get("sch-zzz")
    deleted = await book.delete(schedule.id)
    assert deleted.id == schedule.id and await book.list() == []


async def test_the_loop_fires_a_schedule_added_while_it_runs(engine: Engine) -> None:
    clock = Clock()
    firer = ScheduleFirer(engine, now=clock.now, sleep=clock.sleep)
    firer.start()
    try:
        await asyncio.sleep(0.05)  # the loop is idle: no schedule yet
        schedule = await ScheduleBook(engine, now=clock.now).add(
            ScheduleSpec.parse({"every": "30s", "overlap": "allow"}), QUICK
        )
        with anyio.fail_after(30):
            while len(await _scheduled_runs(engine, schedule.id)) < 3:
                await asyncio.sleep(0.02)
    finally:
        await firer.aclose()
    for run_id in await _scheduled_runs(engine, schedule.id):
        await engine.wait_until_finished(run_id, 30)
    row = await engine.store.get_schedule(schedule.id)
    assert row is not None and row.fires >= 3 and row.skips == 0


# --- the table --------------------------------------------------------------------------------


async def test_a_schema_6_database_gains_the_schedules_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema_6 = _SCHEMA.replace(SCHEDULES_TABLE + ";\n", "")
    assert "schedules" not in schema_6
    with sqlite3.connect(path) as db:
        db.executescript(schema_6)
        db.execute("INSERT INTO schema_version (version) VALUES (6)")
    db.close()
    async with await Engine.open(path, tmp_path / "runs", resume=False) as engine:
        schedule = await ScheduleBook(engine).add(ScheduleSpec.parse({"every": "1h"}), QUICK)
        assert [row.id for row in await engine.store.list_schedules()] == [schedule.id]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


async def test_a_fire_that_fails_before_its_claim_is_recorded_and_retried_later(
    engine: Engine,
) -> None:
    clock = Clock()
    schedule = await ScheduleBook(engine, now=clock.now).add(
        ScheduleSpec.parse({"cron": "0 * * * *"}), QUICK
    )
    with sqlite3.connect(engine.store.path) as db:  # a zone this machine no longer knows
        db.execute("UPDATE schedules SET timezone = 'Mars/Olympus' WHERE id = ?", (schedule.id,))
    db.close()
    firer = ScheduleFirer(engine, now=clock.now, poll_seconds=5)
    clock.t = schedule.next_fires[0] + 1
    (fire,) = await firer.tick()
    assert fire.outcome == "error" and "Mars/Olympus" in fire.detail
    assert await firer.tick() == []  # not again at once: the loop does not spin on it
    row = await engine.store.get_schedule(schedule.id)
    assert row is not None and row.next_fire_at == clock.t + 5
    assert row.last_error is not None and "Mars/Olympus" in row.last_error
    assert await engine.list() == []
