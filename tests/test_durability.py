"""Durability end to end: crashes, two servers on one data folder, shutdown, broken storage.

Real ``orchestrator serve`` processes over stdio, driven by the MCP SDK's client, run ``http``
tasks against ``tests.local_server``, whose ``/count/KEY`` counts the requests each task made:
that count is how the tests tell a task that ran once from one that ran again. Processes are
found and checked through ``/proc`` (Linux); the state database is read with ``sqlite3``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.store import _MIGRATIONS, _SCHEMA, SCHEMA_VERSION, Store
from tests.local_server import LocalServer

REPO = Path(__file__).resolve().parent.parent
DELAY = 0.7  # how long /count holds each request: long enough to kill a server mid-request


# --- processes -------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, from /proc; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = text.rpartition(")")[2].split()[:2]
    return state, int(parent)


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _children(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == parent and stat[0] not in ("Z", "X"):
                found.add(int(entry.name))
    return found


def _child_env(home: Path, **settings: object) -> dict[str, str]:
    """The environment for a CLI subprocess: this one minus every ORCHESTRATOR_* variable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    env.update({f"ORCHESTRATOR_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class Served:
    """A running ``orchestrator serve`` over stdio and the SDK client connected to it."""

    client: Client
    pid: int
    killed: bool = False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.killed = True
        os.kill(self.pid, sig)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content


@asynccontextmanager
async def serve(home: Path, errlog_path: Path, **settings: object) -> AsyncIterator[Served]:
    """``orchestrator serve`` (stdio) with these ORCHESTRATOR_* settings (lease 1 s unless
    given). The client lives in a task of its own, so that a server the test kills breaks only
    that task, not the test; whatever happens, the process is gone when this exits."""
    env = {"ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_LEASE_SECONDS": "1"}
    env.update({f"ORCHESTRATOR_{name.upper()}": str(value) for name, value in settings.items()})
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", "serve"],
        env=env,
        cwd=str(REPO),
    )
    before = _children(os.getpid())
    connected: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def hold(errlog: TextIO) -> None:
        try:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                connected.set_result(client)
                await stop.wait()
        except Exception as exc:  # a killed server breaks the session; the test checks that
            failures.append(exc)
            if not connected.done():
                connected.set_exception(exc)

    served: Served | None = None
    with errlog_path.open("a") as errlog:
        holder = asyncio.create_task(hold(errlog))
        try:
            client = await asyncio.wait_for(asyncio.shield(connected), 30)
            (pid,) = _children(os.getpid()) - before
            served = Served(client, pid)
            yield served
            stop.set()
            await asyncio.wait_for(holder, 15)
            if not served.killed:
                assert failures == []
        finally:
            stop.set()
            leftover = {served.pid} if served else _children(os.getpid()) - before
            for pid in leftover:
                if _alive(pid):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with suppress(BaseException):
                await asyncio.wait_for(holder, 5)


@contextmanager
def _db(home: Path) -> Iterator[sqlite3.Connection]:
    """The state database, read only."""
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


def _task_states(home: Path, run_id: str) -> dict[str, str]:
    with _db(home) as db:
        rows = db.execute(
            "SELECT task_id, state FROM tasks WHERE orchestration_id = ?", (run_id,)
        ).fetchall()
    return dict(rows)


def _events(home: Path, run_id: str) -> list[tuple[str | None, str, str]]:
    with _db(home) as db:
        return db.execute(
            "SELECT task_id, kind, message FROM events WHERE orchestration_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()


def _counting_document(
    name: str, server: LocalServer, keys: list[str], delay: float = DELAY
) -> dict[str, Any]:
    """One http task per key; each holds its /count/KEY request for ``delay`` seconds."""
    return {
        "name": name,
        "max_concurrent": 3,
        "tasks": [
            {
                "id": key,
                "type": "http",
                "config": {"url": server.url(f"/count/{key}?delay={delay}")},
            }
            for key in keys
        ],
    }


async def _kill_mid_wave(
    served: Served, server: LocalServer, keys: list[str], done: int
) -> set[str]:
    """Wait until ``done`` tasks finished and a wave of requests is well under way (none just
    starting, none about to end), SIGKILL the server there, and return the keys in flight."""
    state = server.state
    with anyio.fail_after(30):
        while True:
            now = time.monotonic()
            flying = [key for key in keys if state.in_flight[key]]
            finished = [key for key in keys if state.hits[key] and not state.in_flight[key]]
            started = [state.hit_times[key][-1] for key in flying]
            quiet = bool(flying) and now - max(started) > 0.15 and now - min(started) < DELAY - 0.25
            if len(finished) >= done and quiet:
                served.kill()
                return set(flying)
            await anyio.sleep(0.01)


# --- 1. SIGKILL in the middle of a run -------------------------------------------------------


@pytest.mark.anyio
async def test_a_killed_server_s_run_is_finished_by_the_next_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keys = [f"t{n:02}" for n in range(12)]
    with LocalServer() as web:
        async with serve(home, tmp_path / "server1.stderr") as first:
            submitted = await first.call(
                "submit_orchestration", spec=_counting_document("crash", web, keys)
            )
            run_id = submitted["id"]
            with anyio.fail_after(30):
                while True:
                    counts = (await first.call("get_status", id=run_id))["counts"]
                    if counts.get("succeeded", 0) >= 3 and counts.get("running"):
                        break
                    await anyio.sleep(0.05)
            in_flight = await _kill_mid_wave(first, web, keys, done=3)
            with anyio.fail_after(5):
                while _alive(first.pid):
                    await anyio.sleep(0.02)
        hits_at_kill = {key: web.state.hits[key] for key in keys}

        states = _task_states(home, run_id)
        finished = {key for key, state in states.items() if state == "succeeded"}
        running = {key for key, state in states.items() if state == "running"}
        assert running == in_flight
        assert len(finished) >= 3
        assert finished == {key for key in keys if hits_at_kill[key]} - in_flight
        assert set(states.values()) <= {"succeeded", "running", "pending", "queued"}
        events_at_kill = _events(home, run_id)
        assert sorted(row[0] for row in events_at_kill if row[1] == "started") == sorted(
            finished | in_flight
        )

        async with serve(home, tmp_path / "server2.stderr") as second:
            with anyio.fail_after(30):
                while True:
                    status = await second.call(
                        "wait_for_orchestration", id=run_id, timeout_seconds=10
                    )
                    if status["finished"]:
                        break
            assert (status["status"], status["counts"]) == ("succeeded", {"succeeded": 12})
            results = await second.call("get_results", id=run_id)

    assert results["status"] == "succeeded"
    assert sorted(results["outputs"]) == keys
    for key in keys:
        assert results["outputs"][key]["data"]["key"] == key
    expected = {key: 2 if key in in_flight else 1 for key in keys}
    assert dict(web.state.hits) == expected

    events = _events(home, run_id)
    assert events[: len(events_at_kill)] == events_at_kill  # nothing lost, nothing rewritten
    resumed = [message for task, kind, message in events if kind == "resumed" and task is None]
    assert resumed == [
        f"resumed after an interruption: {len(finished)} finished task(s) kept, "
        f"{len(in_flight)} interrupted task(s) will run again"
    ]
    started = {key: sum(1 for row in events if row[:2] == (key, "started")) for key in keys}
    assert started == expected
    assert [kind for task, kind, _ in events if task is None][-1] == "finished"


async def _wait_until_finished(served: Served, run_id: str) -> dict[str, Any]:
    with anyio.fail_after(40):
        while True:
            status = await served.call("wait_for_orchestration", id=run_id, timeout_seconds=10)
            if status["finished"]:
                return status


# --- 2. two server processes on one data folder ----------------------------------------------


@pytest.mark.anyio
async def test_two_servers_share_a_folder_and_one_takes_over_the_other_s_run(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    own = {"a": [f"a{n}" for n in range(4)], "b": [f"b{n}" for n in range(4)]}
    taken = [f"c{n:02}" for n in range(12)]
    with LocalServer() as web:
        async with (
            serve(home, tmp_path / "server1.stderr") as one,
            serve(home, tmp_path / "server2.stderr") as two,
        ):
            a_id = (
                await one.call(
                    "submit_orchestration", spec=_counting_document("a", web, own["a"], 0.2)
                )
            )["id"]
            b_id = (
                await two.call(
                    "submit_orchestration", spec=_counting_document("b", web, own["b"], 0.2)
                )
            )["id"]
            # each reads the other's run while it runs, and waits for it to finish
            assert (await one.call("get_status", id=b_id))["id"] == b_id
            assert (await two.call("get_status", id=a_id))["id"] == a_id
            assert (await _wait_until_finished(one, b_id))["status"] == "succeeded"
            assert (await _wait_until_finished(two, a_id))["status"] == "succeeded"
            for reader, run_id, keys in ((one, b_id, own["b"]), (two, a_id, own["a"])):
                outputs = (await reader.call("get_results", id=run_id))["outputs"]
                assert {key: output["data"]["key"] for key, output in outputs.items()} == {
                    key: key for key in keys
                }
            assert dict(web.state.hits) == {key: 1 for key in own["a"] + own["b"]}

            c_id = (
                await one.call("submit_orchestration", spec=_counting_document("c", web, taken))
            )["id"]
            in_flight = await _kill_mid_wave(one, web, taken, done=3)
            finished = {
                key for key, state in _task_states(home, c_id).items() if state == "succeeded"
            }
            status = await _wait_until_finished(two, c_id)
            assert (status["status"], status["counts"]) == ("succeeded", {"succeeded": 12})
            listed = (await two.call("list_orchestrations"))["orchestrations"]

    assert {row["id"]: row["status"] for row in listed} == {
        a_id: "succeeded",
        b_id: "succeeded",
        c_id: "succeeded",
    }
    hits = {key: web.state.hits[key] for key in taken}
    assert hits == {key: 2 if key in in_flight else 1 for key in taken}
    resumed = [message for _, kind, message in _events(home, c_id) if kind == "resumed"]
    assert resumed == [
        f"resumed after an interruption: {len(finished)} finished task(s) kept, "
        f"{len(in_flight)} interrupted task(s) will run again"
    ]


# --- 3. SIGTERM with tasks running -----------------------------------------------------------


class RawStdioServer:
    """``orchestrator serve`` spoken to in JSON-RPC lines directly: unlike the SDK's client,
    this keeps the process's exit status, which the SIGTERM test checks."""

    def __init__(self, home: Path, stderr: TextIO, **settings: object) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve"],
            cwd=REPO,
            env=_child_env(home, **settings),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # its session id finds every process it started
        )
        self._buffer = b""
        self._ids = iter(range(1, 1_000_000))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def _receive(self, deadline: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no answer from the server"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, "the server closed its stdout"
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + 30
        while True:
            message = self._receive(deadline)
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message["result"]

    def initialize(self) -> None:
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test_durability", "version": "0"},
            },
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert not result.get("isError"), result
        return result["structuredContent"]


def _in_session(session: int) -> list[int]:
    """Live processes of that session (a server started with start_new_session leads one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text.rpartition(")")[2].split()
            if fields[0] not in ("Z", "X") and int(fields[4]) == session:
                found.append(int(entry.name))
    return found


@pytest.mark.anyio
async def test_sigterm_lets_running_tasks_finish_in_the_grace_then_releases_the_run(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    document = {
        "name": "shutdown",
        "tasks": [
            {"id": "short", "type": "http", "config": {"url": "URL/count/short?delay=1"}},
            {"id": "long", "type": "http", "config": {"url": "URL/count/long?delay=30"}},
        ],
    }
    with LocalServer() as web:
        for task in document["tasks"]:
            task["config"]["url"] = task["config"]["url"].replace("URL", web.url())
        with (tmp_path / "server1.stderr").open("w") as stderr:
            # a long lease: were the run not released, no other process could take it for 60 s
            server = RawStdioServer(home, stderr, shutdown_grace=2, lease_seconds=60)
            try:
                server.initialize()
                run_id = server.call("submit_orchestration", spec=document)["id"]
                with anyio.fail_after(20):
                    while not (web.state.in_flight["short"] and web.state.in_flight["long"]):
                        await anyio.sleep(0.02)
                children = _children(server.process.pid)
                server.process.send_signal(signal.SIGTERM)
                # the grace is 2 s; the bound is only there to turn a hang into a failure
                returncode = server.process.wait(timeout=15)
            finally:
                if server.process.poll() is None:
                    server.process.kill()
                    server.process.wait()
        # SIGTERM is handled: the engine shuts down and `serve` returns normally, so the exit
        # status is 0, not the -15 (128 + 15 in a shell) of a process the signal killed.
        assert returncode == 0
        assert [pid for pid in children if _alive(pid)] == []
        assert _in_session(server.process.pid) == []

        assert _task_states(home, run_id) == {"short": "succeeded", "long": "running"}
        with _db(home) as db:
            row = db.execute(
                "SELECT status, owner, lease_until FROM orchestrations WHERE id = ?", (run_id,)
            ).fetchone()
        assert row == ("running", None, None)
        kinds = [(task, kind) for task, kind, _ in _events(home, run_id)]
        assert (None, "interrupted") in kinds
        assert web.state.hits["short"] == 1
        assert web.state.hits["long"] == 1

        async with serve(
            home, tmp_path / "server2.stderr", shutdown_grace=0, lease_seconds=60
        ) as again:
            # resumed at start-up, not after a lease expired
            with _db(home) as db:
                (owner,) = db.execute(
                    "SELECT owner FROM orchestrations WHERE id = ?", (run_id,)
                ).fetchone()
            assert owner is not None
            resumed = [message for _, kind, message in _events(home, run_id) if kind == "resumed"]
            assert resumed == [
                "resumed after an interruption: 1 finished task(s) kept, "
                "1 interrupted task(s) will run again"
            ]
            with anyio.fail_after(20):
                while web.state.hits["long"] < 2:
                    await anyio.sleep(0.05)
            status = await again.call("cancel_orchestration", id=run_id)
            assert status["status"] in ("running", "cancelled")
            final = await _wait_until_finished(again, run_id)
        assert final["status"] == "cancelled"
        assert _task_states(home, run_id) == {"short": "succeeded", "long": "cancelled"}
        assert dict(web.state.hits) == {"short": 1, "long": 2}


# --- 4. SQLite contention --------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_engines_on_one_database_absorb_contention(tmp_path: Path) -> None:
    home = tmp_path / "home"

    def document(name: str) -> dict[str, Any]:
        tasks = [{"id": f"t{n}", "type": "delay", "config": {"value": n}} for n in range(100)]
        return {"name": name, "tasks": tasks}

    async with (
        await Engine.open(home / "state.db", home / "runs", resume=False) as first,
        await Engine.open(home / "state.db", home / "runs", resume=False) as second,
    ):
        assert first.owner != second.owner
        ids = await asyncio.gather(first.submit(document("one")), second.submit(document("two")))
        snapshots = await asyncio.gather(
            first.wait(ids[0], 60, include_outputs=True),
            second.wait(ids[1], 60, include_outputs=True),
        )
        for snapshot in snapshots:
            assert snapshot.status == "succeeded"
            assert [task.output for task in snapshot.tasks] == list(range(100))
        # each reads the other's run from the database
        assert (await first.snapshot(ids[1])).status == "succeeded"
        assert (await second.snapshot(ids[0])).status == "succeeded"


# --- 5. broken storage -----------------------------------------------------------------------


def _cli(
    home: Path, *args: str, timeout: float = 30, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=_child_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        stdin=subprocess.DEVNULL,
    )


def _damaged_database(home: Path, how: str) -> bytes:
    """Write a damaged state.db into ``home``; return its bytes."""
    home.mkdir(parents=True)
    path = home / "state.db"
    if how == "random bytes":
        path.write_bytes(os.urandom(64 * 1024))
    else:  # the first half of a real database: the header survives, the pages it lists do not
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE filler (n INTEGER, text TEXT)")
            db.executemany("INSERT INTO filler VALUES (?, ?)", [(n, "x" * 500) for n in range(400)])
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path.read_bytes()


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_a_damaged_database_is_reported_and_left_alone(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    before = _damaged_database(home, how)
    path = home / "state.db"
    for args in (["list"], ["run", "examples/quickstart.yaml"]):
        result = _cli(home, *args)
        assert result.returncode == 2, result.stderr
        assert f"the state database {path} is damaged or not a database" in result.stderr
        assert "move it aside to start afresh, or restore it from a backup" in result.stderr
        assert "Traceback" not in result.stderr
        assert path.read_bytes() == before

    # serve, with its stdin open as a client would keep it: it must exit, not wait for input
    with subprocess.Popen(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve"],
        cwd=REPO,
        env=_child_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            _, stderr = server.communicate(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
    assert server.returncode == 2, stderr
    assert f"error: the state database {path} is damaged or not a database" in stderr
    assert "Traceback" not in stderr
    assert path.read_bytes() == before


FILLS_THE_DISK = {
    "name": "fills the disk",
    "vars": {"blob": "0123456789abcdef" * 64},
    "tasks": [
        {"id": "seed", "type": "delay", "config": {"value": list(range(200))}},
        {
            "id": "grow",
            "type": "delay",
            "dependencies": ["seed"],
            "for_each": "${seed.output}",
            "config": {"value": ["${vars.blob}", "${item}"]},
        },
    ],
}


def test_a_full_disk_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = tmp_path / "big.json"
    document.write_text(json.dumps(FILLS_THE_DISK))
    limit = 96 * 1024  # every file the process writes stays below this: the disk is "full"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = _cli(home, "run", str(document), preexec_fn=small_disk)
    assert result.returncode == 2, result.stderr
    assert f"error: the state database {home / 'state.db'} cannot be written" in result.stderr
    assert "Traceback" not in result.stderr
    assert "never retrieved" not in result.stderr


# --- 6. retry ---------------------------------------------------------------------------------


def test_retry_runs_the_failed_task_again_and_keeps_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = tmp_path / "half.json"
    document.write_text(
        json.dumps(
            {
                "name": "half fails",
                "tasks": [
                    {"id": "good", "type": "delay", "config": {"value": "kept"}},
                    {"id": "bad", "type": "delay", "config": {"fail": "error"}},
                ],
            }
        )
    )
    assert _cli(home, "run", str(document)).returncode == 1
    (listed,) = json.loads(_cli(home, "list", "--json").stdout)
    run_id = listed["id"]

    def attempts() -> dict[str, int]:
        with _db(home) as db:
            return dict(
                db.execute(
                    "SELECT task_id, attempts FROM tasks WHERE orchestration_id = ?", (run_id,)
                ).fetchall()
            )

    assert attempts() == {"good": 1, "bad": 1}
    retried = _cli(home, "retry", run_id)
    assert retried.returncode == 1, retried.stderr
    assert attempts() == {"good": 1, "bad": 2}
    assert _task_states(home, run_id) == {"good": "succeeded", "bad": "failed"}
    with _db(home) as db:
        (output,) = db.execute(
            "SELECT output FROM tasks WHERE orchestration_id = ? AND task_id = 'good'", (run_id,)
        ).fetchone()
        tried = db.execute(
            "SELECT task_id, attempt FROM attempts WHERE orchestration_id = ? "
            "ORDER BY task_id, attempt",
            (run_id,),
        ).fetchall()
    assert json.loads(output) == "kept"
    assert tried == [("bad", 1), ("bad", 2), ("good", 1)]
    kinds = [kind for task, kind, _ in _events(home, run_id) if task is None]
    assert kinds.count("retried") == 1
    assert kinds.count("finished") == 2


# --- 7. schema migration ----------------------------------------------------------------------


def _schema_1() -> str:
    """The CREATE statements of schema 1: today's minus the columns added since."""
    added = [
        statement.split("ADD COLUMN ")[1]
        for step in range(1, SCHEMA_VERSION)
        for statement in _MIGRATIONS[step]
        if "ADD COLUMN " in statement  # a step that creates a table keeps it (IF NOT EXISTS)
    ]
    lines = [
        line
        for line in _SCHEMA.splitlines()
        if not any(line.strip().rstrip(",") == column for column in added)
    ]
    text = "\n".join(lines)
    # lease_until was the last column of orchestrations: the one before it keeps no comma
    return text.replace("owner TEXT,\n);", "owner TEXT\n);")


@pytest.mark.anyio
async def test_a_schema_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema = _schema_1()
    assert "lease_until" not in schema and "queued_at" not in schema and "waited_for" not in schema
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO orchestrations (id, name, status, document, created_at, finished_at) "
            "VALUES ('old', 'old run', 'succeeded', ?, 1.0, 2.0)",
            (json.dumps({"name": "old run", "tasks": [{"id": "t", "type": "delay"}]}),),
        )
        db.execute(
            "INSERT INTO tasks (orchestration_id, task_id, position, type, label, state, "
            "attempts, output) VALUES ('old', 't', 0, 'delay', 't', 'succeeded', 1, '42')"
        )
        db.execute(
            "INSERT INTO attempts (orchestration_id, task_id, attempt, started_at, finished_at, "
            "outcome) VALUES ('old', 't', 1, 1.0, 2.0, 'succeeded')"
        )
        db.execute(
            "INSERT INTO events (orchestration_id, ts, kind, level, message) "
            "VALUES ('old', 1.0, 'submitted', 'info', 'old run: 1 task(s)')"
        )
    db.close()

    store = await Store.open(path)
    try:
        (row,) = await store.list_orchestrations()
        assert (row.id, row.status, row.owner, row.lease_until) == ("old", "succeeded", None, None)
        (task,) = await store.load_tasks("old")
        assert (task.task_id, task.state, task.output) == ("t", "succeeded", 42)
        (attempt,) = await store.load_attempts("old")
        assert (attempt.outcome, attempt.queued_at, attempt.waited_for) == ("succeeded", None, None)
        assert [event.message for event in await store.load_events("old")] == ["old run: 1 task(s)"]
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {row[1] for row in db.execute("PRAGMA table_info(orchestrations)")}
    db.close()
    assert {"owner", "lease_until", "owner_process"} <= columns


def _schema_5() -> str:
    """The CREATE statements of schema 5: today's minus the usage columns schema 6 added."""
    added = [statement.split("ADD COLUMN ")[1] for statement in _MIGRATIONS[5]]
    lines = [
        line
        for line in _SCHEMA.splitlines()
        if not any(line.strip().rstrip(",") == column for column in added)
    ]
    # budget was the last column of orchestrations: the one before it keeps no comma
    return "\n".join(lines).replace("DEFAULT 0,\n);", "DEFAULT 0\n);")


@pytest.mark.anyio
async def test_a_schema_5_database_gains_usage_columns_and_its_runs_show_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    schema = _schema_5()
    assert "input_tokens" not in schema and "budget" not in schema
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute("INSERT INTO schema_version (version) VALUES (5)")
        db.execute(
            "INSERT INTO orchestrations (id, name, status, document, created_at, finished_at) "
            "VALUES ('old', 'old run', 'succeeded', ?, 1.0, 2.0)",
            (json.dumps({"name": "old run", "tasks": [{"id": "t", "type": "delay"}]}),),
        )
        db.execute(
            "INSERT INTO tasks (orchestration_id, task_id, position, type, label, state, "
            "attempts, output) VALUES ('old', 't', 0, 'delay', 't', 'succeeded', 1, '42')"
        )
        db.execute(
            "INSERT INTO attempts (orchestration_id, task_id, attempt, started_at, finished_at, "
            "outcome, queued_at) VALUES ('old', 't', 1, 1.0, 2.0, 'succeeded', 0.5)"
        )
    db.close()

    async with await Engine.open(path, tmp_path / "runs", resume=False) as engine:
        (attempt,) = await engine.store.load_attempts("old")
        assert (attempt.outcome, attempt.queued_at) == ("succeeded", 0.5)
        assert (attempt.input_tokens, attempt.model_calls, attempt.cost_usd) == (None, None, None)
        (row,) = await engine.store.list_orchestrations()
        assert row.budget is None
        snapshot = await engine.snapshot("old", include_outputs=True)
        assert snapshot.usage is None and snapshot.tasks[0].output == 42
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    db.close()
    assert {"input_tokens", "output_tokens", "cost_usd", "model_calls", "model"} <= columns


# --- a run's start ----------------------------------------------------------------------------

_PROBE = """
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(json.dumps({
    "runs": db.execute("SELECT status FROM orchestrations").fetchall(),
    "tasks": dict(db.execute("SELECT task_id, state FROM tasks")),
}))
"""


def test_a_task_runs_only_once_its_run_and_every_ready_task_are_committed(
    tmp_path: Path,
) -> None:
    """``orchestrator run``: the first task to run reads the state database (a process of its
    own) and finds its run committed, its ready siblings committed as queued (not pending: the
    rows of a new run are written once, as it starts) and its dependent still pending."""
    from cli_process import cli

    home = tmp_path / "home"
    probe = [sys.executable, "-c", _PROBE, str(home / "state.db")]
    document = {
        "name": "durable start",
        "max_concurrent": 1,
        "tasks": [
            {"id": "probe", "type": "shell", "priority": 9, "config": {"argv": probe}},
            {"id": "sibling", "type": "delay", "config": {"seconds": 0}},
            {"id": "after", "type": "delay", "dependencies": ["probe"], "config": {}},
        ],
    }
    path = tmp_path / "start.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    done = cli(home, "run", path, "--json", ORCHESTRATOR_ALLOW_SHELL="1")

    assert done.code == 0, done.stderr
    (run_dir,) = (home / "runs").iterdir()
    results = json.loads((run_dir / "aggregated_results.json").read_text(encoding="utf-8"))
    seen = json.loads(results["tasks"]["probe"]["output"]["stdout"])
    assert seen["runs"] == [["running"]]
    assert seen["tasks"] == {"probe": "queued", "sibling": "queued", "after": "pending"}


@pytest.mark.anyio
async def test_a_submission_cancelled_during_its_first_commit_leaves_its_run_cancelled(
    tmp_path: Path,
) -> None:
    """The caller of ``submit`` (an MCP request, say) is cancelled while the run's first commit
    is under way: that commit still lands, so the run is then cancelled — on disk too, none of
    its tasks run — rather than left ``running`` with nothing working on it."""
    document = {"name": "abandoned", "tasks": [{"id": "a", "type": "delay", "config": {}}]}
    async with await Engine.open(tmp_path / "state.db", tmp_path / "runs", resume=False) as engine:
        submitting = asyncio.create_task(engine.submit(document))
        with anyio.fail_after(10):
            while not engine.runs:  # registered just before the first commit is awaited
                await asyncio.sleep(0)
        (run_id,) = engine.runs
        submitting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submitting
        snapshot = await engine.wait(run_id, timeout=10)
        attempts = await engine.store.load_attempts(run_id)
    assert snapshot.status.value == "cancelled"
    assert [task.state.value for task in snapshot.tasks] == ["cancelled"]
    assert attempts == []
    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = db.execute("SELECT status FROM orchestrations").fetchall()
        tasks = db.execute("SELECT state FROM tasks").fetchall()
    db.close()
    assert stored == [("cancelled",)] and tasks == [("cancelled",)]
