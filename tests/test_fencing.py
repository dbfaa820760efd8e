"""A run has one owner at a time, and a task that breaks the process or the engine ends.

Through the CLI, as real processes on one data folder:

- an ``orchestrator run`` whose process is stopped (SIGSTOP) longer than its lease is taken
  over by ``orchestrator resume``; when the stopped process continues, it starts nothing more
  and writes nothing more (its writes are fenced by the run's generation), so every item is
  requested about once, not twice;
- a task that kills its own process twice is failed by the next resume, not started a third
  time;
- an exception around an attempt (here the output file cannot be written) fails the attempt
  with the class ``internal`` instead of leaving the task running.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.local_server import LocalServer
from tests.test_durability import REPO, _child_env, _db

LEASE = 2  # seconds; a stop longer than this hands the run over
ITEMS = 160
CONCURRENCY = 8
DELAY = 0.2  # how long each /count request is held


_LOGS: dict[int, Path] = {}  # pid -> the file its stdout and stderr go to


def _popen(home: Path, *args: str, **settings: object) -> subprocess.Popen[str]:
    log = home.parent / f"{args[0]}-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=_child_env(home, **settings),
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    _LOGS[process.pid] = log
    return process


def _output(process: subprocess.Popen[str]) -> str:
    return _LOGS[process.pid].read_text()


def _cli(home: Path, *args: str, **settings: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=_child_env(home, **settings),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _wait(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _lease_until(home: Path) -> float | None:
    with _db(home) as db:
        rows = db.execute("SELECT lease_until FROM orchestrations").fetchall()
    return rows[0][0] if rows else None


def _write_lock_free(home: Path) -> bool:
    """Whether no process is inside a write transaction (a stopped one would keep it)."""
    db = sqlite3.connect(home / "state.db", timeout=0.2, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def test_a_stalled_owner_starts_nothing_once_another_process_took_its_run(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    keys = [f"item{i}" for i in range(ITEMS)]
    with LocalServer() as web:
        document = tmp_path / "fan.json"
        document.write_text(
            json.dumps(
                {
                    "name": "fan-out",
                    "max_concurrent": CONCURRENCY,
                    "tasks": [
                        {
                            "id": "each",
                            "type": "http",
                            "for_each": keys,
                            "config": {"url": web.url(f"/count/${{item}}?delay={DELAY}")},
                        }
                    ],
                }
            )
        )
        state = web.state

        def total() -> int:
            return sum(state.hits[key] for key in keys)

        first = _popen(home, "run", str(document), lease_seconds=LEASE)
        second: subprocess.Popen[str] | None = None
        try:
            _wait(lambda: total() >= ITEMS // 5, "the run never got going")
            while True:  # stop it outside a write transaction, or nobody else could write
                first.send_signal(signal.SIGSTOP)
                if _write_lock_free(home):
                    break
                first.send_signal(signal.SIGCONT)
                time.sleep(0.02)
            time.sleep(DELAY + 0.1)  # requests under way are answered (their hits counted)
            at_stop = total()
            assert at_stop < ITEMS
            _wait(
                lambda: (_lease_until(home) or 0) < time.time(),
                "the stopped owner's lease never expired",
            )
            second = _popen(home, "resume", lease_seconds=LEASE)
            _wait(lambda: total() > at_stop, "the resume never started anything")
            first.send_signal(signal.SIGCONT)
            assert second.wait(timeout=120) == 0, _output(second)
            assert first.wait(timeout=120) == 0, _output(first)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.kill()
                    process.wait(timeout=10)
        hits = {key: state.hits[key] for key in keys}
    assert all(hits.values()), [key for key, n in hits.items() if not n]
    # what was in flight when the owner stopped (at most CONCURRENCY) may run twice; nothing
    # else does
    assert sum(hits.values()) <= ITEMS + CONCURRENCY, sum(hits.values())
    assert "taken over by another process" in _output(first)
    with _db(home) as db:
        ((run_id, status, generation),) = db.execute(
            "SELECT id, status, generation FROM orchestrations"
        ).fetchall()
        states = db.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall()
        finished = db.execute("SELECT count(*) FROM events WHERE kind = 'finished'").fetchone()
    assert (status, generation) == ("succeeded", 1)
    assert states == [("succeeded", ITEMS + 1)]
    assert finished == (1,)  # the run ended once
    shown = _cli(home, "status", run_id)
    assert "succeeded" in shown.stdout, shown.stdout + shown.stderr


def test_a_task_that_kills_its_process_twice_is_failed_not_started_again(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    document = tmp_path / "boom.json"
    document.write_text(
        json.dumps(
            {
                "name": "boom",
                "tasks": [
                    {"id": "first", "type": "shell", "config": {"argv": ["echo", "kept"]}},
                    {
                        "id": "boom",
                        "type": "shell",
                        "dependencies": ["first"],
                        # runs a moment, then takes the orchestrator (its parent) down
                        "config": {"argv": ["sh", "-c", "sleep 0.5; kill -9 $PPID"]},
                    },
                    {
                        "id": "after",
                        "type": "shell",
                        "dependencies": ["boom"],
                        "config": {"argv": ["echo", "never"]},
                    },
                ],
            }
        )
    )
    crashed = _cli(home, "run", str(document), allow_shell=1)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    again = _cli(home, "resume", allow_shell=1)
    assert again.returncode == -signal.SIGKILL, again.stdout + again.stderr
    given_up = _cli(home, "resume", allow_shell=1)
    assert given_up.returncode == 1, given_up.stdout + given_up.stderr
    assert "died twice" in given_up.stdout, given_up.stdout
    assert "orchestrator retry" in given_up.stdout
    with _db(home) as db:
        ((run_id, status),) = db.execute("SELECT id, status FROM orchestrations").fetchall()
        tasks = {
            task: (state, attempts, error_class)
            for task, state, attempts, error_class in db.execute(
                "SELECT task_id, state, attempts, error_class FROM tasks"
            )
        }
        attempts = db.execute(
            "SELECT attempt, outcome, error_class FROM attempts WHERE task_id = 'boom' "
            "ORDER BY attempt"
        ).fetchall()
    assert status == "failed"
    assert tasks == {
        "first": ("succeeded", 1, None),
        "boom": ("failed", 2, "crashed"),
        "after": ("skipped", 0, None),
    }
    assert attempts == [(1, "interrupted", "process_died"), (2, "interrupted", "process_died")]
    shown = _cli(home, "status", run_id)
    assert "died twice" in shown.stdout, shown.stdout + shown.stderr


def test_an_exception_around_an_attempt_fails_it_with_a_class(tmp_path: Path) -> None:
    home = tmp_path / "home"
    workspace = home / "workspace"
    workspace.mkdir(parents=True)
    document = tmp_path / "big.json"
    document.write_text(
        json.dumps(
            {
                "name": "big output",
                "tasks": [
                    {
                        "id": "big",
                        "type": "shell",
                        "timeout": 60,
                        "config": {
                            "argv": [
                                "sh",
                                "-c",
                                "while [ ! -e go ]; do sleep 0.05; done; head -c 5000 /dev/zero",
                            ]
                        },
                    }
                ],
            }
        )
    )
    process = _popen(home, "run", str(document), allow_shell=1, output_file_bytes=1024)
    try:

        def run_id() -> str | None:
            if not (home / "state.db").exists():
                return None
            with _db(home) as db:
                try:
                    rows = db.execute("SELECT id FROM orchestrations").fetchall()
                except sqlite3.OperationalError:  # not created yet
                    return None
            return rows[0][0] if rows else None

        _wait(lambda: run_id() is not None, "the run was never stored")
        # the output (over 1 KB) goes to runs/ID/outputs/big.json: make that a folder
        blocker = home / "runs" / str(run_id()) / "outputs" / "big.json"
        (blocker / "inside").mkdir(parents=True)
        (workspace / "go").touch()
        assert process.wait(timeout=120) == 1, _output(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    with _db(home) as db:
        ((state, error_class, error),) = db.execute(
            "SELECT state, error_class, error FROM tasks"
        ).fetchall()
        (status,) = db.execute("SELECT status FROM orchestrations").fetchone()
    assert (state, error_class, status) == ("failed", "internal", "failed")
    assert error.startswith("internal error: IsADirectoryError"), error
