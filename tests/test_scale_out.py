"""Scale-out as a user reaches it: ``orchestrator run`` and ``orchestrator serve`` with
``--backend dask``, against a real ``dask scheduler`` process and ``orchestrator worker``
processes, all on loopback.

Each fan-out item GETs its own counter on a local HTTP server, so the counters show where and
how often each item ran. While no worker is connected, the attempts wait on the scheduler and
nothing reaches the counters; once a worker joins, the run finishes with every item counted
exactly once. An unreachable scheduler is exit code 2 naming the address and the fix. The
worker's runners run with the server's runner settings (a response limit set only where
``run`` starts holds on the worker), except a setting the worker's own environment sets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from cli_process import cli
from local_server import LocalServer
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

try:
    from distributed import Client as DaskClient
except ImportError as exc:  # the dask extra is not installed
    if os.environ.get("CI"):
        raise
    pytest.skip(f"needs the dask extra (pip install -e '.[dask]'): {exc}", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
ITEMS = 6
WAIT_SECONDS = 60  # bounds on waiting for processes; nothing is asserted about durations


def child_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONIOENCODING="utf-8")
    return env


@contextmanager
def spawned(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session, its stdout in ``log`` and its stderr in ``log`` with
    ``.err`` appended; killed (with anything it started) at the end."""
    with log.open("wb") as out, Path(f"{log}.err").open("wb") as err:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Any, what: str, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``condition`` for up to WAIT_SECONDS; fail naming ``what`` (or as soon as
    ``process`` exits)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A real ``dask scheduler`` process on loopback (one per test: each starts workerless)."""
    port = free_port()
    args = [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-dashboard"]
    with spawned(args, tmp_path / "scheduler.log", child_env(tmp_path)) as process:
        address = f"tcp://127.0.0.1:{port}"

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, f"the scheduler to listen at {address}", process)
        yield address


@pytest.fixture
def cluster(scheduler: str) -> Iterator[DaskClient]:
    """A client of the scheduler, for the test to look at what the cluster holds."""
    with DaskClient(scheduler, timeout=WAIT_SECONDS, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def counters() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def fan_out(counters: LocalServer, key: str) -> dict[str, Any]:
    """ITEMS http GETs, one counter each, then a task that counts the answers."""
    return {
        "name": "scale out",
        "vars": {"items": list(range(ITEMS))},
        "tasks": [
            {
                "id": "each",
                "type": "http",
                "for_each": "${vars.items}",
                "config": {"url": counters.url(f"/count/{key}-${{item}}?delay=0")},
            },
            {
                "id": "total",
                "type": "data_processing",
                "dependencies": ["each"],
                "config": {"action": "map", "input": "${each.output}", "expression": "data.n"},
            },
        ],
    }


def hits(counters: LocalServer, key: str) -> dict[int, int]:
    """How often each item's counter was hit."""
    return {item: counters.state.hits.get(f"{key}-{item}", 0) for item in range(ITEMS)}


def waiting_attempts(cluster: DaskClient) -> int:
    """How many orchestrator attempts the scheduler holds."""

    def count(dask_scheduler: Any) -> int:
        return sum(1 for key in dask_scheduler.tasks if str(key).startswith("orchestrator-"))

    return int(cluster.run_on_scheduler(count))


def connected_workers(cluster: DaskClient) -> int:
    """How many workers the scheduler has (its summary for clients lists none since 2025)."""

    def count(dask_scheduler: Any) -> int:
        return len(dask_scheduler.workers)

    return int(cluster.run_on_scheduler(count))


def worker(scheduler: str) -> list[str]:
    """``orchestrator worker`` for ``scheduler``."""
    return [
        sys.executable,
        "-m",
        "multi_task_orchestrator.server.cli",
        "worker",
        "--scheduler",
        scheduler,
    ]


def attempts_wait_without_a_worker(
    cluster: DaskClient, counters: LocalServer, key: str, owner: Any
) -> None:
    """Every item's attempt reaches the scheduler, and none runs while no worker is there."""
    wait_until(lambda: waiting_attempts(cluster) == ITEMS, "the attempts to reach the scheduler")
    assert connected_workers(cluster) == 0
    assert hits(counters, key) == dict.fromkeys(range(ITEMS), 0)
    assert owner()  # the run is still going, waiting for a worker


def test_run_waits_for_a_worker_then_runs_every_item_once(
    tmp_path: Path, scheduler: str, cluster: DaskClient, counters: LocalServer
) -> None:
    document = tmp_path / "fan_out.json"
    document.write_text(json.dumps(fan_out(counters, "run")))
    home = tmp_path / "home"
    run_args = [
        sys.executable,
        "-m",
        "multi_task_orchestrator.server.cli",
        "run",
        str(document),
        "--json",
    ]
    run_args += ["--backend", "dask", "--scheduler", scheduler]
    run_log = tmp_path / "run.log"
    with spawned(run_args, run_log, child_env(home)) as run:
        attempts_wait_without_a_worker(cluster, counters, "run", lambda: run.poll() is None)
        assert "no Dask worker is connected to " + scheduler in Path(f"{run_log}.err").read_text()

        with spawned(worker(scheduler), tmp_path / "worker.log", child_env(home)):
            code = run.wait(WAIT_SECONDS)

    errors = Path(f"{run_log}.err").read_text()
    assert code == 0, errors
    assert hits(counters, "run") == dict.fromkeys(range(ITEMS), 1)
    results = json.loads(run_log.read_text())
    assert results["status"] == "succeeded"
    tasks = results["tasks"]
    assert [tasks[f"each[{item}]"]["attempts"] for item in range(ITEMS)] == [1] * ITEMS
    assert tasks["total"]["output"] == [1] * ITEMS  # each counter answered its first hit
    assert "Traceback" not in errors


@pytest.mark.anyio
async def test_serve_waits_for_a_worker_then_runs_every_item_once(
    tmp_path: Path, scheduler: str, cluster: DaskClient, counters: LocalServer
) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "multi_task_orchestrator.server.cli",
            "serve",
            "--backend",
            "dask",
            "--scheduler",
            scheduler,
        ],
        env={"ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_SHUTDOWN_GRACE": "0"},
        cwd=str(REPO),
    )
    errlog: IO[str]
    with (tmp_path / "serve.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            submitted = await client.call_tool(
                "submit_orchestration", {"spec": fan_out(counters, "serve")}
            )
            assert not submitted.is_error, submitted.content
            run_id = submitted.structured_content["id"]

            async def unfinished() -> bool:
                status = await client.call_tool("get_status", {"id": run_id})
                return not status.structured_content["finished"]

            await anyio.to_thread.run_sync(
                attempts_wait_without_a_worker, cluster, counters, "serve", lambda: True
            )
            assert await unfinished()

            with spawned(worker(scheduler), tmp_path / "worker.log", child_env(home)):
                status: dict[str, Any] = {"finished": False}
                for _ in range(WAIT_SECONDS // 10):
                    waited = await client.call_tool(
                        "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10}
                    )
                    status = waited.structured_content
                    if status["finished"]:
                        break
    assert (status["status"], status["finished"]) == ("succeeded", True), status
    assert status["counts"] == {"succeeded": ITEMS + 2}  # the fan-out, its items, the total
    assert hits(counters, "serve") == dict.fromkeys(range(ITEMS), 1)
    assert "no Dask worker is connected to " + scheduler in (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize("command", ["run", "serve"])
def test_an_unreachable_scheduler_is_exit_2_naming_it(tmp_path: Path, command: str) -> None:
    document = tmp_path / "one.json"
    document.write_text(json.dumps({"tasks": [{"id": "a", "type": "delay"}]}))
    nobody = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    env = child_env(tmp_path / "home") | {"ORCHESTRATOR_DASK_CONNECT_TIMEOUT": "2"}
    if command == "run":
        args = ["run", str(document), "--backend", "dask", "--scheduler", nobody]
    else:  # the settings' way, as in a Claude Desktop configuration
        args = ["serve"]
        env |= {"ORCHESTRATOR_BACKEND": "dask", "ORCHESTRATOR_DASK_SCHEDULER": nobody}
    done = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: cannot reach the Dask scheduler at {nobody}" in done.stderr
    assert "dask scheduler" in done.stderr and "--scheduler" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing ran, not even locally; no protocol message either


def test_a_worker_with_an_address_dask_cannot_read_exits_2_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Dask's worker failed to start with a traceback (its log's and ours), exit 1."""
    done = cli(tmp_path / "home", "worker", "--scheduler", "tcp://scheduler-host")

    assert done.code == 2
    assert done.stderr.endswith(
        "error: cannot use the Dask scheduler address 'tcp://scheduler-host': missing port "
        "number in address 'scheduler-host'; write it like tcp://HOST:8786 (--scheduler or "
        "ORCHESTRATOR_DASK_SCHEDULER)\n"
    )


def big_body(counters: LocalServer) -> dict[str, Any]:
    """One GET of a 1 MiB body."""
    url = counters.url("/big/settings?mb=1")
    return {"tasks": [{"id": "get", "type": "http", "config": {"url": url, "response": "text"}}]}


def run_on_the_cluster(
    tmp_path: Path, scheduler: str, document: dict[str, Any], **worker_settings: str
) -> dict[str, Any]:
    """``orchestrator run --backend dask`` with a 1 KiB response limit in its environment only,
    while a worker runs with ``worker_settings`` (ORCHESTRATOR_* variables) in its own."""
    path = tmp_path / "document.json"
    path.write_text(json.dumps(document))
    home = tmp_path / "home"
    worker_env = child_env(home) | worker_settings
    run_env = child_env(home) | {"ORCHESTRATOR_MAX_RESPONSE_BYTES": "1KiB"}
    args = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "run", str(path)]
    args += ["--json", "--backend", "dask", "--scheduler", scheduler]
    with (
        spawned(worker(scheduler), tmp_path / "worker.log", worker_env),
        DaskClient(scheduler, timeout=WAIT_SECONDS, set_as_default=False) as cluster,
    ):
        wait_until(lambda: connected_workers(cluster) == 1, "the worker to join")
        done = subprocess.run(
            args,
            cwd=REPO,
            env=run_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert "no Dask worker is connected" not in done.stderr  # one is
    task: dict[str, Any] = json.loads(done.stdout)["tasks"]["get"]
    return task


def test_the_worker_runs_with_the_servers_runner_settings(
    tmp_path: Path, scheduler: str, counters: LocalServer
) -> None:
    task = run_on_the_cluster(tmp_path, scheduler, big_body(counters))

    assert (task["state"], task["error_class"]) == ("failed", "too_large"), task
    assert "larger than 1024 bytes" in task["error"], task["error"]
    assert "ORCHESTRATOR_MAX_RESPONSE_BYTES" in task["error"]


def test_a_setting_of_the_workers_own_environment_wins_there(
    tmp_path: Path, scheduler: str, counters: LocalServer
) -> None:
    task = run_on_the_cluster(
        tmp_path, scheduler, big_body(counters), ORCHESTRATOR_MAX_RESPONSE_BYTES="2MiB"
    )

    assert task["state"] == "succeeded", task
    assert len(task["output"]["data"]) == 1024 * 1024


def test_a_scheduler_that_goes_away_fails_the_attempt_naming_it(tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    args = [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-dashboard"]
    document = tmp_path / "waits.json"
    document.write_text(json.dumps({"tasks": [{"id": "waits", "type": "delay"}]}))
    run_args = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "run", str(document)]
    run_args += ["--json", "--backend", "dask", "--scheduler", address]
    run_log = tmp_path / "run.log"
    env = child_env(tmp_path / "home")
    with (
        spawned(args, tmp_path / "scheduler.log", env) as scheduler,
        spawned(run_args, run_log, env) as run,
    ):
        with DaskClient(address, timeout=WAIT_SECONDS, set_as_default=False) as cluster:
            wait_until(lambda: waiting_attempts(cluster) == 1, "the attempt to wait", run)
        os.killpg(scheduler.pid, signal.SIGTERM)
        code = run.wait(WAIT_SECONDS)

    errors = Path(f"{run_log}.err").read_text()
    assert code == 1, errors
    task = json.loads(run_log.read_text())["tasks"]["waits"]
    assert (task["state"], task["error_class"]) == ("failed", "network")
    assert task["error"].startswith(f"lost the connection to the Dask scheduler at {address}")
    assert "Traceback" not in errors
