"""Resume right after a crash: a dead owner on this machine is taken over at once.

Every process here runs with a lease of 600 s, so a run is taken over within the test only if
its owner is seen to be dead (its pid gone) — never because a lease ran out. ``orchestrator
run`` and ``orchestrator serve`` are real subprocesses killed with SIGKILL; ``http`` tasks hit
``tests.local_server``'s ``/count/KEY``, whose counters tell a task kept from a task run again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.local_server import LocalServer
from tests.test_durability import REPO, _alive, _child_env, _db, serve

LEASE = 600  # far longer than any test: only dead-owner detection can hand a run over
SLOW = 2.0  # how long the slow task's request is held: the run is killed inside it


def _document(web: LocalServer, prefix: str) -> dict[str, Any]:
    """first -> slow -> after, each an http request counted under ``prefix``-name."""
    return {
        "name": "crash and resume",
        "tasks": [
            {"id": "first", "type": "http", "config": {"url": web.url(f"/count/{prefix}-first")}},
            {
                "id": "slow",
                "type": "http",
                "dependencies": ["first"],
                "config": {"url": web.url(f"/count/{prefix}-slow?delay={SLOW}")},
            },
            {
                "id": "after",
                "type": "http",
                "dependencies": ["slow"],
                "config": {"url": web.url(f"/count/{prefix}-after")},
            },
        ],
    }


def _hits(web: LocalServer, prefix: str) -> dict[str, int]:
    return {name: web.state.hits[f"{prefix}-{name}"] for name in ("first", "slow", "after")}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=_child_env(home, lease_seconds=LEASE),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def _orchestrator_run(home: Path, document: Path) -> Iterator[subprocess.Popen[str]]:
    """``orchestrator run DOCUMENT`` in the background; killed, whatever happens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", "run", str(document)],
        cwd=REPO,
        env=_child_env(home, lease_seconds=LEASE),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _the_run(home: Path) -> tuple[str, str, dict[str, Any]]:
    """(id, status, owner process) of the only orchestration in ``home``."""
    with _db(home) as db:
        (row,) = db.execute("SELECT id, status, owner_process FROM orchestrations").fetchall()
    return row[0], row[1], json.loads(row[2]) if row[2] else {}


def _wait_until_slow_is_in_flight(
    web: LocalServer, prefix: str, process: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 60
    while not web.state.in_flight[f"{prefix}-slow"]:
        assert process.poll() is None, f"orchestrator run exited with {process.returncode}"
        assert time.monotonic() < deadline, "the slow task never started"
        time.sleep(0.01)


def _start_and_kill_a_run(tmp_path: Path, web: LocalServer, prefix: str) -> tuple[Path, str]:
    """Start ``orchestrator run``, SIGKILL it while ``slow`` runs; return (home, run id) once
    ``orchestrator status`` shows the dead process's run as running."""
    home = tmp_path / "home"
    document = tmp_path / "flow.json"
    document.write_text(json.dumps(_document(web, prefix)))
    with _orchestrator_run(home, document) as process:
        _wait_until_slow_is_in_flight(web, prefix, process)
        run_id, status, owner = _the_run(home)
        assert (status, owner["pid"]) == ("running", process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    status_shown = _cli(home, "status", run_id)
    assert status_shown.returncode == 0, status_shown.stderr
    assert "running" in status_shown.stdout
    return home, run_id


@pytest.mark.parametrize("with_id", [True, False], ids=["resume ID", "resume"])
def test_resume_right_after_kill_9_of_orchestrator_run_finishes_the_run(
    tmp_path: Path, with_id: bool
) -> None:
    with LocalServer() as web:
        home, run_id = _start_and_kill_a_run(tmp_path, web, "r")
        assert _hits(web, "r") == {"first": 1, "slow": 1, "after": 0}

        resumed = _cli(home, "resume", *([run_id[:12]] if with_id else []))

        assert resumed.returncode == 0, resumed.stderr
        assert "nothing to resume" not in resumed.stdout
        assert "ORCHESTRATION COMPLETE" in resumed.stdout
        # first kept its output; slow was interrupted and ran again; after ran once
        assert _hits(web, "r") == {"first": 1, "slow": 2, "after": 1}
    _, status, owner = _the_run(home)
    assert status == "succeeded"
    assert owner["command"].startswith("orchestrator resume")  # it took the run over
    results = _cli(home, "results", run_id, "--json")
    tasks = json.loads(results.stdout)["tasks"]
    assert {task: row["output"]["data"]["key"] for task, row in tasks.items()} == {
        "first": "r-first",
        "slow": "r-slow",
        "after": "r-after",
    }
    again = _cli(home, "resume", run_id)
    assert (again.returncode, again.stdout) == (
        0,
        f"nothing to resume: {run_id} is already finished: succeeded\n",
    )


def test_resume_while_orchestrator_run_is_alive_explains_and_takes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    document = tmp_path / "flow.json"
    with LocalServer() as web:
        flow = _document(web, "live")
        flow["tasks"][1]["config"]["url"] = web.url("/count/live-slow?delay=600")
        document.write_text(json.dumps(flow))
        with _orchestrator_run(home, document) as process:
            _wait_until_slow_is_in_flight(web, "live", process)
            run_id, _, _ = _the_run(home)

            everything = _cli(home, "resume")
            one = _cli(home, "resume", run_id)

            assert process.poll() is None  # still running its run
            run_id_after, status, owner = _the_run(home)
            assert (run_id_after, status, owner["pid"]) == (run_id, "running", process.pid)
            assert _hits(web, "live") == {"first": 1, "slow": 1, "after": 0}
            process.kill()

    for result in (everything, one):
        text = result.stdout + result.stderr
        assert "nothing to resume: no unfinished orchestrations" not in text
        assert f"orchestration {run_id} is running in process {process.pid} on this machine" in (
            text
        )
        assert f"run {document}" in text  # the command that holds it
        assert f"`orchestrator status {run_id}`" in text
    assert everything.returncode == 0
    assert everything.stdout.startswith("not resumed: ")
    # asking for that very run is refused, as retrying a running run is
    assert one.returncode == 2
    assert one.stderr.startswith(f"error: orchestration {run_id} is running")
    assert "Traceback" not in one.stderr


@pytest.mark.anyio
async def test_a_new_serve_takes_over_a_killed_serve_s_run_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with LocalServer() as web:
        async with serve(home, tmp_path / "first.stderr", lease_seconds=LEASE) as first:
            submitted = await first.call("submit_orchestration", spec=_document(web, "s"))
            run_id = submitted["id"]
            with anyio.fail_after(60):
                while not web.state.in_flight["s-slow"]:
                    await anyio.sleep(0.01)
            first.kill()
            with anyio.fail_after(10):
                while _alive(first.pid):
                    await anyio.sleep(0.02)
        _, status, owner = _the_run(home)
        assert (status, owner["pid"]) == ("running", first.pid)

        async with serve(home, tmp_path / "second.stderr", lease_seconds=LEASE) as second:
            with anyio.fail_after(60):
                while True:
                    done = await second.call("wait_for_orchestration", id=run_id, timeout_seconds=5)
                    if done["finished"]:
                        break
            _, _, owner = _the_run(home)
            assert owner["pid"] == second.pid
        assert (done["status"], done["counts"]) == ("succeeded", {"succeeded": 3})
        assert _hits(web, "s") == {"first": 1, "slow": 2, "after": 1}


def test_an_owner_on_this_machine_whose_pid_was_reused_is_dead(tmp_path: Path) -> None:
    """A pid that now belongs to another process (started at another time) is no owner: the
    run it held is resumed at once. Here the pid is this test's own, with another start time."""
    with LocalServer() as web:
        home, run_id = _start_and_kill_a_run(tmp_path, web, "p")
        with _db(home) as db:
            (text,) = db.execute("SELECT owner_process FROM orchestrations").fetchone()
        owner = json.loads(text)
        owner.update(pid=os.getpid(), start_ticks=owner["start_ticks"] - 1)
        writer = sqlite3.connect(home / "state.db")
        with writer:
            writer.execute("UPDATE orchestrations SET owner_process = ?", (json.dumps(owner),))
        writer.close()

        resumed = _cli(home, "resume", run_id)

        assert resumed.returncode == 0, resumed.stderr
        assert _hits(web, "p") == {"first": 1, "slow": 2, "after": 1}
    assert _the_run(home)[1] == "succeeded"


def test_retry_owns_the_run_it_runs_again_and_finishes_it(tmp_path: Path) -> None:
    """``retry`` takes the finished run as its own: its heartbeat (every third of a 1 s lease,
    several times during the 2 s task) must not drop the run as taken by another process."""
    home = tmp_path / "home"
    document = tmp_path / "flaky.json"
    task = {"seconds": 2, "fail_attempts": 1, "fail": "network", "value": "second try"}
    flow = {"name": "flaky", "tasks": [{"id": "flaky", "type": "delay", "config": task}]}
    document.write_text(json.dumps(flow))
    env = _child_env(home, lease_seconds=1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    assert cli("run", str(document)).returncode == 1
    run_id, status, _ = _the_run(home)
    assert status == "failed"

    retried = cli("retry", run_id)

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "taken over" not in retried.stderr
    assert _the_run(home)[1] == "succeeded"
    with _db(home) as db:
        (attempts,) = db.execute("SELECT attempts FROM tasks").fetchone()
    assert attempts == 2


def test_an_owner_on_another_machine_keeps_its_run_until_its_lease_expires(
    tmp_path: Path,
) -> None:
    """A pid on another host cannot be checked from here: ``resume`` leaves the run to its
    lease and says so (the owner here is a killed local run, recorded as another host's)."""
    with LocalServer() as web:
        home, run_id = _start_and_kill_a_run(tmp_path, web, "h")
        with _db(home) as db:
            (text,) = db.execute("SELECT owner_process FROM orchestrations").fetchone()
        owner = json.loads(text)
        owner["host"] = "elsewhere.example"
        writer = sqlite3.connect(home / "state.db")
        with writer:
            writer.execute("UPDATE orchestrations SET owner_process = ?", (json.dumps(owner),))
        writer.close()

        resumed = _cli(home, "resume")

        assert resumed.returncode == 0, resumed.stderr
        assert _hits(web, "h") == {"first": 1, "slow": 1, "after": 0}
    assert resumed.stdout.startswith(
        f"not resumed: orchestration {run_id} is running in process {owner['pid']} on host "
        "elsewhere.example"
    )
    assert "takes the run over once its lease expires at" in resumed.stdout
    # both times in the one form every time is shown in: ISO UTC with milliseconds
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(rf", started {stamp}\)", resumed.stdout), resumed.stdout
    assert re.search(rf"lease expires at {stamp}\)", resumed.stdout), resumed.stdout
    assert _the_run(home)[1:] == ("running", owner)
