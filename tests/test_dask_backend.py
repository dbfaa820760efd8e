"""The Dask backend against a real two-process ``LocalCluster`` started by each test.

A DAG of http and data tasks gives the same results as the local backend (secrets included: the
worker gets exactly the ones the task names, and enforces their hosts); a worker killed with
SIGKILL mid-run costs an attempt ("worker lost", class network) that the retry policy runs
again; cancelling a run stops the coroutine on the worker (the worker's plugin records it); a
browser task runs on a worker and its screenshot lands in the server's run folder; model
calls made on a worker come back counted (a failed attempt's too), and budgets hold there. A
scheduler that goes away costs each attempt a failure of class network naming it, the client
connecting afresh for the next one. Files coming back are written only into the run's
artifacts folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

try:
    from distributed import Client, LocalCluster, Scheduler

    from multi_task_orchestrator.engine.backends.dask import DaskBackend
    from multi_task_orchestrator.engine.backends.dask_worker import (
        OrchestratorPlugin,
        worker_status,
    )
    from multi_task_orchestrator.engine.backends.shipping import write_files
except ImportError as exc:  # the dask extra is not installed
    if os.environ.get("CI"):
        raise
    pytest.skip(f"needs the dask extra (pip install -e '.[dask]'): {exc}", allow_module_level=True)

from local_server import PNG_BYTES, LocalServer

from multi_task_orchestrator.engine.backends import Backend
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.state import RunStatus, TaskState
from multi_task_orchestrator.server.standin_model import StandinModel, answer_for, tokens
from multi_task_orchestrator.vault.resolver import VaultResolver
from multi_task_orchestrator.vault.store import Vault
from tests.browser_site import ARTICLES
from tests.browser_site import serve_site as _serve_site
from tests.test_runner_mcp import EVERYTHING

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/lib/chromium/chromium")
TOKEN = "tok-dask-5e1f0a9b"  # allowed for 127.0.0.1 only
ELSEWHERE = "other-4c2d"  # allowed for api.example.org only
LLM_KEY = "sk-dask-canary-3f81a0"  # allowed for 127.0.0.1 only


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer() as running:
        yield running


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[LocalCluster, Client]]:
    async with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            asynchronous=True,
            dashboard_address=":0",
        ) as local_cluster,
        Client(local_cluster, asynchronous=True) as client,
    ):
        browser = {"browser_automation": {"path": CHROMIUM}} if CHROMIUM.exists() else None
        await client.register_plugin(OrchestratorPlugin(runner_settings=browser))
        yield local_cluster, client


@pytest.fixture
def vault(tmp_path: Path) -> Any:
    opened = Vault.open(tmp_path / "vault.db", key=Fernet.generate_key().decode())
    opened.set("TOKEN", TOKEN, allowed_hosts=["127.0.0.1"])
    opened.set("ELSEWHERE", ELSEWHERE, allowed_hosts=["api.example.org"])
    yield opened
    opened.close()


async def _engine(home: Path, backend: Backend | None, **options: Any) -> Engine:
    return await Engine.open(
        home / "state.db", home / "runs", resume=False, backend=backend, **options
    )


async def _statuses(client: Client) -> dict[str, dict[str, Any]]:
    return await client.run(worker_status)


async def _wait_until_running(client: Client, count: int) -> dict[str, list[str]]:
    """Wait until ``count`` attempts run on the workers; {worker address: attempt keys}."""
    for _ in range(400):
        running = {addr: status["running"] for addr, status in (await _statuses(client)).items()}
        if sum(len(keys) for keys in running.values()) >= count:
            return running
        await asyncio.sleep(0.025)
    raise AssertionError("the attempts never started on the workers")


def _document(server: LocalServer) -> dict[str, Any]:
    return {
        "name": "dask parity",
        "vars": {"rows": [{"n": 1}, {"n": 2}, {"n": 3}]},
        "tasks": [
            {"id": "fetch", "type": "http", "config": {"url": server.url("/echo?city=paris")}},
            {
                "id": "rows",
                "type": "data_processing",
                "config": {"action": "filter", "input": "${vars.rows}", "where": "n > `1`"},
            },
            {
                "id": "each",
                "type": "http",
                "for_each": "${rows.output}",
                "config": {"url": server.url("/echo?n=${item.n}")},
                "dependencies": ["rows"],
            },
            {
                "id": "summary",
                "type": "data_processing",
                "config": {"action": "map", "input": "${each.output}", "expression": "data.query"},
                "dependencies": ["each"],
            },
            {
                "id": "picture",
                "type": "http",
                "config": {"url": server.url("/bytes"), "response": "bytes"},
            },
            {
                "id": "authorized",
                "type": "http",
                "config": {
                    "url": server.url("/echo/authorized"),
                    "headers": {"Authorization": "Bearer ${vault.TOKEN}"},
                },
            },
            {
                "id": "refused",
                "type": "http",
                "config": {
                    "url": server.url("/echo/refused"),
                    "headers": {"Authorization": "Bearer ${vault.ELSEWHERE}"},
                },
            },
        ],
    }


async def _outcome(engine: Engine, server: LocalServer) -> dict[str, Any]:
    run_id = await engine.submit(_document(server))
    snapshot = await engine.wait(run_id, timeout=60, include_outputs=True)
    tasks = {task.task_id: task for task in snapshot.tasks}
    picture = Path(snapshot.run_dir) / "artifacts" / tasks["picture"].output["data"]["artifact"]
    return {
        "status": snapshot.status,
        "states": {task_id: task.state for task_id, task in tasks.items()},
        "fetch": tasks["fetch"].output["data"]["query"],
        "summary": tasks["summary"].output,
        "picture": picture.read_bytes(),
        "refused": (tasks["refused"].error_class, tasks["refused"].error),
    }


async def test_a_dag_gives_the_same_results_as_the_local_backend(
    cluster: tuple[LocalCluster, Client], server: LocalServer, vault: Vault, tmp_path: Path
) -> None:
    local_cluster, client = cluster
    secrets = VaultResolver(vault)
    async with await _engine(tmp_path / "local", None, secrets=secrets) as engine:
        local = await _outcome(engine, server)
    sent_locally = server.state.received("/echo/authorized")
    backend = DaskBackend(local_cluster.scheduler_address)
    async with await _engine(tmp_path / "dask", backend, secrets=secrets) as engine:
        remote = await _outcome(engine, server)

    assert remote == local
    assert remote["status"] == RunStatus.failed  # only "refused" fails, on purpose
    assert remote["fetch"] == {"city": "paris"}
    assert remote["summary"] == [{"n": "2"}, {"n": "3"}]
    assert remote["picture"] == PNG_BYTES
    assert remote["refused"][0] == "config"
    assert "may not be sent to host '127.0.0.1'" in remote["refused"][1]
    assert [state for task, state in remote["states"].items() if task != "refused"] == [
        TaskState.succeeded
    ] * (len(remote["states"]) - 1)
    authorized = server.state.received("/echo/authorized")
    assert len(sent_locally) == 1
    assert [request["headers"]["authorization"] for request in authorized] == [
        f"Bearer {TOKEN}"
    ] * 2
    assert server.state.received("/echo/refused") == []
    # every attempt of the second run ran on a worker, none locally
    records = [r for s in (await _statuses(client)).values() for r in s["records"]]
    assert sorted({record["task_id"] for record in records}) == [
        "authorized",
        "each[0]",
        "each[1]",
        "fetch",
        "picture",
        "refused",
        "rows",
        "summary",
    ]


async def test_a_killed_worker_costs_an_attempt_that_is_retried(
    cluster: tuple[LocalCluster, Client], tmp_path: Path
) -> None:
    local_cluster, client = cluster
    document = {
        "name": "survives a killed worker",
        "tasks": [
            {
                "id": f"slow{number}",
                "type": "delay",
                "config": {"seconds": 2, "value": number},
                "retry": {"max_attempts": 3, "initial": 0.1, "on": ["network"]},
            }
            for number in range(4)
        ],
    }
    backend = DaskBackend(local_cluster.scheduler_address)
    async with await _engine(tmp_path, backend) as engine:
        run_id = await engine.submit(document)
        running = await _wait_until_running(client, 2)
        victim = next(addr for addr, keys in running.items() if keys)
        pids = await client.run(os.getpid, workers=[victim])
        os.kill(pids[victim], signal.SIGKILL)
        snapshot = await engine.wait(run_id, timeout=60, include_outputs=True)
        events = await engine.events(run_id)

    assert snapshot.status == RunStatus.succeeded
    assert {task.task_id: task.output for task in snapshot.tasks} == {
        f"slow{number}": number for number in range(4)
    }
    retried = [task.task_id for task in snapshot.tasks if task.attempts == 2]
    assert len(retried) == 1
    lost = [event for event in events if event.kind == "retrying"]
    assert [event.task_id for event in lost] == retried
    assert "(network): worker lost" in lost[0].message


async def test_cancelling_a_run_stops_the_attempt_on_the_worker(
    cluster: tuple[LocalCluster, Client], tmp_path: Path
) -> None:
    local_cluster, client = cluster
    document = {
        "name": "cancelled",
        "tasks": [{"id": "long", "type": "delay", "config": {"seconds": 10, "value": "done"}}],
    }
    backend = DaskBackend(local_cluster.scheduler_address)
    async with await _engine(tmp_path, backend) as engine:
        run_id = await engine.submit(document)
        running = await _wait_until_running(client, 1)
        await engine.cancel(run_id)
        snapshot = await engine.wait(run_id, timeout=30)
        statuses = await _statuses(client)

    assert snapshot.status == RunStatus.cancelled
    assert [task.state for task in snapshot.tasks] == [TaskState.cancelled]
    [key] = [key for keys in running.values() for key in keys]
    records = [r for status in statuses.values() for r in status["records"]]
    assert [(r["key"], r["task_id"], r["outcome"]) for r in records] == [(key, "long", "cancelled")]
    assert [status["running"] for status in statuses.values()] == [[], []]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM}")
async def test_a_browser_task_runs_on_a_worker(
    cluster: tuple[LocalCluster, Client], tmp_path: Path
) -> None:
    local_cluster, client = cluster
    with _serve_site() as (base, _state):
        document = {
            "name": "browser on a worker",
            "tasks": [
                {
                    "id": "articles",
                    "type": "browser_automation",
                    "config": {
                        "url": f"{base}/list",
                        "steps": [
                            {"extract": {"selector": "li.article", "fields": {"title": "h2"}}},
                            "screenshot",
                        ],
                    },
                }
            ],
        }
        backend = DaskBackend(local_cluster.scheduler_address)
        async with await _engine(tmp_path, backend) as engine:
            run_id = await engine.submit(document)
            snapshot = await engine.wait(run_id, timeout=60, include_outputs=True)
        statuses = await _statuses(client)

    [task] = snapshot.tasks
    assert task.state == TaskState.succeeded, task.error
    assert task.output["title"] == "Articles"
    assert task.output["data"] == [{"title": title} for title, _, _ in ARTICLES]
    [artifact] = task.output["artifacts"]
    assert (Path(snapshot.run_dir) / "artifacts" / artifact).read_bytes()[:8] == PNG_BYTES[:8]
    records = [r for status in statuses.values() for r in status["records"]]
    assert [(r["task_id"], r["outcome"]) for r in records] == [("articles", "succeeded")]


async def test_model_usage_comes_back_from_the_workers_and_budgets_hold_there(
    cluster: tuple[LocalCluster, Client], vault: Vault, tmp_path: Path
) -> None:
    local_cluster, client = cluster
    vault.set("LLM_KEY", LLM_KEY, allowed_hosts=["127.0.0.1"])
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    sent = "\nSummarise page-00"  # what one item sends (the empty system slot and the prompt)
    each = tokens(sent) + tokens(answer_for(sent, sent[1:], invalid=False))
    with StandinModel(keys=frozenset({LLM_KEY})) as model:
        # tagged: its first answer is not JSON, and its budget is spent by that call: the
        # worker does not make the repair call; meta: its first attempt gets two bad answers
        # (invalid_output, two calls), its second one good one
        model.state.answer_invalid_json_next(3)

        def llm(task_id: str, prompt: str, **fields: Any) -> dict[str, Any]:
            config = {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "base_url": model.url,
                "api_key": "${vault.LLM_KEY}",
                "prompt": prompt,
                **fields.pop("config", {}),
            }
            return {"id": task_id, "type": "llm", "config": config, **fields}

        document = {
            "name": "models on workers",
            "mode": "sequential",
            "tasks": [
                llm("tagged", "Tag it", budget={"tokens": 1}, config={"schema": schema}),
                llm(
                    "meta",
                    "Name it",
                    retry={"max_attempts": 2, "initial": 0.1, "on": ["invalid_output"]},
                    config={"schema": schema},
                ),
                llm(
                    "pages",
                    "Summarise ${item}",
                    for_each=[f"page-{index:02d}" for index in range(8)],
                    max_concurrent=1,
                    budget={"tokens": 3 * each - 1},
                ),
            ],
        }
        backend = DaskBackend(local_cluster.scheduler_address)
        async with await _engine(tmp_path, backend, secrets=VaultResolver(vault)) as engine:
            run_id = await engine.submit(document)
            snapshot = await engine.wait(run_id, timeout=90)
            stored = await engine.store.load_attempts(run_id)
        calls = model.state.calls()
        statuses = await _statuses(client)

    tasks = {task.task_id: task for task in snapshot.tasks}
    assert (tasks["tagged"].state, tasks["tagged"].error_class) == (TaskState.failed, "budget")
    assert "the repair call was not made" in (tasks["tagged"].error or "")
    assert (tasks["meta"].state, tasks["meta"].attempts) == (TaskState.succeeded, 2)
    items = [tasks[f"pages[{index}]"] for index in range(8)]
    assert [item.state for item in items] == [TaskState.succeeded] * 3 + [TaskState.failed] * 5
    assert {item.error_class for item in items[3:]} == {"budget"}
    assert len(calls) == 1 + 3 + 3
    by_attempt = {(row.task_id, row.attempt): row.model_calls for row in stored}
    assert by_attempt[("tagged", 1)] == 1
    assert (by_attempt[("meta", 1)], by_attempt[("meta", 2)]) == (2, 1)
    assert all(by_attempt[(f"pages[{index}]", 1)] == 1 for index in range(3))
    usage = snapshot.usage
    assert usage is not None and usage.calls == 7
    assert usage.input_tokens + usage.output_tokens == sum(
        (row.input_tokens or 0) + (row.output_tokens or 0) for row in stored
    )
    # the calls were made on the workers
    records = [r for status in statuses.values() for r in status["records"]]
    assert {record["task_id"] for record in records} >= {"tagged", "meta", "pages[0]"}


async def test_an_approval_waits_in_the_server_not_on_a_worker(
    cluster: tuple[LocalCluster, Client], tmp_path: Path
) -> None:
    local_cluster, client = cluster
    document = {
        "name": "gated",
        "tasks": [
            {"id": "gate", "type": "approval", "config": {"message": "go?"}},
            {"id": "after", "type": "delay", "dependencies": ["gate"], "config": {"value": 1}},
        ],
    }
    backend = DaskBackend(local_cluster.scheduler_address)
    async with await _engine(tmp_path, backend) as engine:
        run_id = await engine.submit(document)
        for _ in range(400):
            if await engine.pending_approvals():
                break
            await asyncio.sleep(0.05)
        waiting = await _statuses(client)
        await engine.approve(run_id, "gate", note="yes", by="test")
        snapshot = await engine.wait(run_id, timeout=30)
        statuses = await _statuses(client)

    assert [status["running"] for status in waiting.values()] == [[], []]
    assert snapshot.status == RunStatus.succeeded
    records = [r for status in statuses.values() for r in status["records"]]
    assert [(r["task_id"], r["outcome"]) for r in records] == [("after", "succeeded")]


async def test_an_mcp_call_runs_in_the_server_with_its_sessions(
    cluster: tuple[LocalCluster, Client], tmp_path: Path
) -> None:
    """The servers file and the sessions are the server's: an ``mcp`` task under the Dask
    backend calls the tool from the server, and no worker runs it."""
    node = shutil.which("node")
    if node is None or not EVERYTHING.exists():
        pytest.skip("the npm MCP servers are not installed in .ci/node (scripts/test does it)")
    local_cluster, client = cluster
    servers = tmp_path / "servers.json"
    servers.write_text(
        json.dumps({"mcpServers": {"everything": {"command": node, "args": [str(EVERYTHING)]}}})
    )
    document = {
        "name": "echo",
        "tasks": [
            {
                "id": "echo",
                "type": "mcp",
                "config": {"server": "everything", "tool": "echo", "arguments": {"message": "hi"}},
            },
            {"id": "after", "type": "delay", "dependencies": ["echo"], "config": {"value": 1}},
        ],
    }
    backend = DaskBackend(local_cluster.scheduler_address)
    options = {"runner_settings": {"mcp": {"servers": servers}}}
    async with await _engine(tmp_path, backend, **options) as engine:
        snapshot = await engine.wait(await engine.submit(document), timeout=60)
        statuses = await _statuses(client)

    assert snapshot.status == RunStatus.succeeded, [t.error for t in snapshot.tasks]
    records = [r for status in statuses.values() for r in status["records"]]
    assert [(r["task_id"], r["outcome"]) for r in records] == [("after", "succeeded")]


async def test_a_scheduler_that_goes_away_costs_attempts_of_class_network(tmp_path: Path) -> None:
    document = {
        "name": "scheduler gone",
        "tasks": [
            {
                "id": "waits",
                "type": "delay",
                "config": {"seconds": 1, "value": "done"},
                "retry": {"max_attempts": 3, "initial": 0.1, "on": ["network"]},
            }
        ],
    }
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
        backend = DaskBackend(scheduler.address, connect_timeout=1)
        async with await _engine(tmp_path, backend) as engine:
            run_id = await engine.submit(document)
            for _ in range(400):  # no worker: the attempt waits on the scheduler
                if any(str(key).startswith("orchestrator-") for key in scheduler.tasks):
                    break
                await asyncio.sleep(0.025)
            await scheduler.close()
            snapshot = await engine.wait(run_id, timeout=60)
            events = await engine.events(run_id)

    [task] = snapshot.tasks
    assert (snapshot.status, task.attempts, task.error_class) == (RunStatus.failed, 3, "network")
    failures = [event.message for event in events if event.kind in ("retrying", "failed")]
    assert len(failures) == 3
    assert all("Dask scheduler at " + scheduler.address in message for message in failures)


def test_a_worker_writes_only_into_the_runs_artifacts_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "aggregated_results.json").write_text("{}")
    hostile = [
        "aggregated_results.json",
        "../outside.txt",
        str(tmp_path / "absolute.txt"),
        "artifacts/../report.html",
        "artifacts",
        "artifacts/nul\0.png",
    ]
    for name in hostile:
        with pytest.raises(TaskError, match="not in the run's artifacts folder"):
            write_files(run, {"artifacts/fine.png": b"ok", name: b"evil"})
    with pytest.raises(TaskError, match="cannot write the artifact 'artifacts/aaa"):
        write_files(run, {"artifacts/" + "a" * 300 + ".png": b"long"})

    written = write_files(run, {"artifacts/sub/ü.png": b"ok"})

    assert written == [(run / "artifacts" / "sub" / "ü.png").resolve()]
    assert (run / "aggregated_results.json").read_text() == "{}"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "run",
        "run/aggregated_results.json",
        "run/artifacts",
        "run/artifacts/sub",
        "run/artifacts/sub/ü.png",
    ]
