"""``orchestrator serve`` over stdio, driven by the MCP SDK's client from outside the process.

One test follows a multi-stage orchestration from submission to its resources, with progress
notifications on the way. The other kills the client in the middle of a run: the server must
notice its stdin closing, exit by itself without leaving processes behind, and the next server
on the same home must resume the run. Processes are inspected through ``/proc`` (Linux).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.types import TextResourceContents
from mcp_contract import TOOL_NAMES

REPO = Path(__file__).resolve().parent.parent
SERVE_ARGS = ["-m", "multi_task_orchestrator.server.cli", "serve"]


# Four levels with a fan-out in the middle; about two seconds end to end.
PIPELINE: dict[str, Any] = {
    "name": "stdio pipeline",
    "tasks": [
        {"id": "seed", "type": "delay", "config": {"seconds": 0.6, "value": [1, 2, 3]}},
        {
            "id": "each",
            "type": "delay",
            "dependencies": ["seed"],
            "for_each": "${seed.output}",
            "config": {"seconds": 0.7, "value": "item ${item}"},
        },
        {
            "id": "merged",
            "type": "data_processing",
            "dependencies": ["each"],
            "config": {"action": "merge", "inputs": ["each.output", "seed.output"]},
        },
        {
            "id": "report",
            "type": "delay",
            "dependencies": ["merged"],
            "config": {"seconds": 0.6, "value": "${merged.output}"},
        },
    ],
}
MERGED = ["item 1", "item 2", "item 3", 1, 2, 3]

# Long enough that the kill lands while `first` runs; short enough to finish once resumed.
INTERRUPTED = {
    "name": "interrupted",
    "tasks": [
        {"id": "first", "type": "delay", "config": {"seconds": 4, "value": "first done"}},
        {
            "id": "second",
            "type": "delay",
            "dependencies": ["first"],
            "config": {"seconds": 0.2, "value": "${first.output}"},
        },
    ],
}

# Run in a child process: connects to `orchestrator serve`, submits the document, waits until a
# task is running, prints the run id and the server's pid, then holds the session open.
CLIENT_SCRIPT = """\
import json, os, sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters


def children(parent):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


async def main():
    home, repo, spec = sys.argv[1:4]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", "serve"],
        # no grace: the task in flight is interrupted when the client dies, and runs again
        env={"ORCHESTRATOR_HOME": home, "ORCHESTRATOR_SHUTDOWN_GRACE": "0"},
        cwd=repo,
    )
    async with Client(params) as client:
        submitted = await client.call_tool("submit_orchestration", {"spec": spec})
        run_id = submitted.structured_content["id"]
        while True:
            status = await client.call_tool("get_status", {"id": run_id})
            if status.structured_content["counts"].get("running"):
                break
            await anyio.sleep(0.05)
        (server_pid,) = children(os.getpid())
        print(json.dumps({"id": run_id, "server_pid": server_pid}), flush=True)
        await anyio.sleep_forever()


anyio.run(main)
"""


class ProcessInfo(NamedTuple):
    pid: int
    parent: int
    session: int


def _process(pid: int) -> ProcessInfo | None:
    """A live process from ``/proc``; None when it is gone or only a zombie is left."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent, _group, session = text.rpartition(")")[2].split()[:4]
    return None if state in ("Z", "X") else ProcessInfo(pid, int(parent), int(session))


def _processes() -> list[ProcessInfo]:
    found = (_process(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [info for info in found if info is not None]


@asynccontextmanager
async def connect(home: Path, errlog: TextIO) -> AsyncIterator[tuple[Client, list[Exception]]]:
    """An SDK client on a fresh ``orchestrator serve``; also yields the transport's faults
    (e.g. a stdout line that is not JSON-RPC), which the session reports but survives."""
    faults: list[Exception] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            faults.append(message)

    params = StdioServerParameters(
        command=sys.executable,
        args=SERVE_ARGS,
        env={"ORCHESTRATOR_HOME": str(home)},  # merged over the SDK's minimal environment
        cwd=str(REPO),
    )
    async with Client(stdio_client(params, errlog=errlog), message_handler=on_message) as client:
        yield client, faults


async def _read_text(client: Client, uri: str) -> tuple[str, str | None]:
    result = await client.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text, content.mime_type


@pytest.mark.anyio
async def test_stdio_session_runs_a_multi_stage_orchestration(tmp_path: Path) -> None:
    home = tmp_path / "home"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    with (tmp_path / "server.stderr").open("w") as errlog:
        async with connect(home, errlog) as (client, faults):
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == TOOL_NAMES

            submitted = await client.call_tool("submit_orchestration", {"spec": PIPELINE})
            assert not submitted.is_error, submitted.content
            run = submitted.structured_content
            assert run is not None
            assert run["status"] == "running"
            assert run["task_count"] == 4
            assert run["plan"]["stages"] == [["seed"], ["each"], ["merged"], ["report"]]
            assert run["plan"]["fan_outs"] == ["each"]
            run_id = run["id"]

            waited = await client.call_tool(
                "wait_for_orchestration",
                {"id": run_id, "timeout_seconds": 30},
                progress_callback=on_progress,
            )
            status = waited.structured_content
            assert status is not None
            assert (status["status"], status["finished"]) == ("succeeded", True)
            assert status["counts"] == {"succeeded": 7}  # 4 tasks, 3 of them fan-out children
            assert len(progress) >= 2
            assert progress[0][0] < 7
            assert progress[-1] == (7.0, 7.0, "7/7 done, 0 running")

            results = await client.call_tool("get_results", {"id": run_id})
            outputs = results.structured_content
            assert outputs is not None
            assert outputs["status"] == "succeeded"
            assert outputs["outputs"] == {
                "seed": [1, 2, 3],
                "each": ["item 1", "item 2", "item 3"],
                "merged": MERGED,
                "report": MERGED,
            }
            assert outputs["failures"] == []
            assert outputs["results_uri"] == f"orchestration://{run_id}/results"
            links = [block for block in results.content if block.type == "resource_link"]
            assert [str(link.uri) for link in links] == [outputs["results_uri"]]

            listed = [str(resource.uri) for resource in (await client.list_resources()).resources]
            assert listed == ["ui://orchestrator/live-view.html", f"orchestration://{run_id}"]
            with pytest.raises(MCPError) as missing:
                await client.read_resource("orchestration://orch-nothere/log")
            assert missing.value.error.code == -32602  # resource not found (SEP-2164)

            text, mime = await _read_text(client, f"orchestration://{run_id}")
            assert mime == "application/json"
            resource_status = json.loads(text)
            assert (resource_status["id"], resource_status["status"]) == (run_id, "succeeded")
            assert [task["id"] for task in resource_status["tasks"]] == [
                "seed",
                "each",
                "each[0]",
                "each[1]",
                "each[2]",
                "merged",
                "report",
            ]

            text, mime = await _read_text(client, f"orchestration://{run_id}/results")
            assert mime == "application/json"
            full = json.loads(text)
            assert full["status"] == "succeeded"
            assert full["counts"]["succeeded"] == 7
            assert full["tasks"]["report"]["output"] == MERGED
            assert full["tasks"]["each[1]"]["output"] == "item 2"

            log, mime = await _read_text(client, f"orchestration://{run_id}/log")
            assert mime == "text/plain"
            lines = log.splitlines()
            assert "[orchestration] submitted: stdio pipeline: 4 task(s)" in lines[0]
            assert "[each] fanned_out: 3 item(s)" in log
            assert "[orchestration] finished: succeeded" in lines[-1]

            summary, mime = await _read_text(client, f"orchestration://{run_id}/summary")
            assert mime == "text/plain"
            assert summary.startswith("ORCHESTRATION COMPLETE")
            assert "Success:    7 (100%)" in summary
            assert "Failed:     0 (0%)" in summary

            # The client got nothing on stdout that was not a protocol message.
            assert faults == []

    server_log = (home / "server.log").read_text()
    assert "orchestrator.server: engine closed" in server_log
    assert "engine closed" in (tmp_path / "server.stderr").read_text()


class KilledClient(NamedTuple):
    run_id: str
    server_pid: int
    server_children: list[int]


def _start_client_and_kill_it(tmp_path: Path, home: Path) -> KilledClient:
    """Run CLIENT_SCRIPT until its orchestration is running, then SIGKILL the script."""
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    client_stderr = tmp_path / "client.stderr"  # the server's stderr too
    with (
        client_stderr.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(script), str(home), str(REPO), json.dumps(INTERRUPTED)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
            text=True,
        ) as client,
    ):
        try:
            assert client.stdout is not None
            ready, _, _ = select.select([client.stdout], [], [], 30)
            assert ready, f"the client script printed nothing: {client_stderr.read_text()}"
            started = json.loads(client.stdout.readline() or "null")
            assert started is not None, f"the client script failed: {client_stderr.read_text()}"
            server = _process(started["server_pid"])
            assert server is not None
            assert server.parent == client.pid
            children = [info.pid for info in _processes() if info.parent == server.pid]
        finally:
            client.kill()
    return KilledClient(started["id"], server.pid, children)


def _wait_until_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _process(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.anyio
async def test_server_exits_when_its_client_dies_and_the_next_one_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    killed = _start_client_and_kill_it(tmp_path, home)
    try:
        assert _wait_until_gone(killed.server_pid, 10), "the server outlived its client"
    finally:
        if _process(killed.server_pid) is not None:
            os.kill(killed.server_pid, signal.SIGKILL)
    left_behind = [
        info
        for info in _processes()
        if info.pid in killed.server_children
        or killed.server_pid in (info.parent, info.session)  # the server leads its own session
    ]
    assert left_behind == []

    with (tmp_path / "server2.stderr").open("w") as errlog:
        async with connect(home, errlog) as (client, _):
            run_id = killed.run_id
            status = await client.call_tool("get_status", {"id": run_id})
            assert status.structured_content is not None
            assert status.structured_content["status"] in ("running", "succeeded")

            waited = await client.call_tool(
                "wait_for_orchestration", {"id": run_id, "timeout_seconds": 30}
            )
            final = waited.structured_content
            assert final is not None
            assert (final["status"], final["counts"]) == ("succeeded", {"succeeded": 2})

            results = await client.call_tool("get_results", {"id": run_id})
            assert results.structured_content is not None
            assert results.structured_content["outputs"] == {
                "first": "first done",
                "second": "first done",
            }

            log, _ = await _read_text(client, f"orchestration://{run_id}/log")
            resumed = [line for line in log.splitlines() if "[orchestration] resumed:" in line]
            assert len(resumed) == 1, log
            assert "0 finished task(s) kept, 1 interrupted task(s) will run again" in resumed[0]
            assert log.count("[second] started:") == 1

    assert f"resumed 1 orchestration(s): {run_id}" in (home / "server.log").read_text()


@pytest.mark.anyio
async def test_the_claude_desktop_entry_shares_the_clis_data_folder(tmp_path: Path) -> None:
    """Started as claude_config.example.json says (its args and env over the SDK's minimal
    environment, as Claude Desktop does), the server writes where ``orchestrator list`` reads
    by default, so the CLI shows the runs Claude started."""
    entry = json.loads((REPO / "claude_config.example.json").read_text(encoding="utf-8"))
    server = entry["mcpServers"]["multi-task-orchestrator"]
    user_home = tmp_path / "user"  # the same HOME for Claude Desktop and for the user's shell
    user_home.mkdir()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", *server["args"]],
        env={**server.get("env", {}), "HOME": str(user_home)},
        cwd=str(REPO),
    )
    document = {"name": "From Claude", "tasks": [{"id": "a", "type": "delay"}]}
    with (tmp_path / "server.stderr").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            submitted = await client.call_tool(
                "submit_orchestration", {"spec": document, "wait_seconds": 20}
            )
    assert not submitted.is_error, submitted.content
    assert submitted.structured_content is not None

    shell_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCHESTRATOR_", "XDG_"))
    }
    listed = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", "list", "--json"],
        cwd=REPO,
        env={**shell_env, "HOME": str(user_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(row["id"], row["name"]) for row in rows] == [
        (submitted.structured_content["id"], "From Claude")
    ]


def test_a_server_whose_stdin_is_dev_null_ends_at_once(tmp_path: Path) -> None:
    """/dev/null is a device the event loop cannot watch: the stdin relay's reader failed
    (asyncio logged a PermissionError traceback) and the server waited for input forever."""
    if not Path("/dev/null").exists():
        pytest.skip("needs /dev/null")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    with open(os.devnull, "rb") as nothing:
        done = subprocess.run(
            [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve"],
            cwd=REPO,
            env={**env, "ORCHESTRATOR_HOME": str(tmp_path / "home")},
            stdin=nothing,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
