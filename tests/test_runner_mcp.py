"""The ``mcp`` task type against MCP servers nobody here wrote, and ``list_mcp_tools``.

``scripts/test`` installs ``@modelcontextprotocol/server-everything`` and
``@modelcontextprotocol/server-filesystem`` from npm into ``.ci/node``; the runs go through the
``orchestrator`` command in a child process, over stdio to those servers, and over streamable
HTTP to this project's own ``orchestrator serve --http`` in another child. Each local server is
started through a small script that appends its process id to a file, so the tests count the
server processes a run started.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cli_process import REPO, cli, home_with_secrets
from mcp import Client

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.runners.mcp import McpRunner, McpSettings
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault import Vault

NODE_MODULES = REPO / ".ci" / "node" / "node_modules" / "@modelcontextprotocol"
EVERYTHING = NODE_MODULES / "server-everything" / "dist" / "index.js"
FILESYSTEM = NODE_MODULES / "server-filesystem" / "dist" / "index.js"
INSTALL_HINT = (
    "the npm MCP servers are not installed in .ci/node; scripts/test installs them (with npm, "
    "Node.js 20 or newer)"
)
CANARY = "canary-9f2d7c41e0b3"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (EVERYTHING.exists() and FILESYSTEM.exists()):
        if "CI" not in os.environ:
            pytest.skip(INSTALL_HINT)
        pytest.fail(INSTALL_HINT)
    return found


def counted(folder: Path, node: str, script: Path, *args: str) -> dict[str, Any]:
    """A stdio server entry that starts ``script`` through a wrapper appending its pid to
    ``folder/starts`` (``starts`` below reads them)."""
    wrapper = folder / f"start-{script.parent.parent.name}.sh"
    quoted = " ".join(f"'{arg}'" for arg in (node, str(script), *args))
    wrapper.write_text(f'#!/bin/sh\necho "$$" >> "$STARTS_FILE"\nexec {quoted}\n')
    wrapper.chmod(0o755)
    return {"command": str(wrapper), "env": {"STARTS_FILE": str(folder / "starts")}}


def starts(folder: Path) -> list[int]:
    path = folder / "starts"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def servers_file(folder: Path, **servers: dict[str, Any]) -> Path:
    path = folder / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def mcp_task(task_id: str, server: str, tool: str, **fields: Any) -> dict[str, Any]:
    arguments = fields.pop("arguments", {})
    return {
        "id": task_id,
        "type": "mcp",
        "config": {"server": server, "tool": tool, "arguments": arguments},
        **fields,
    }


def run(home: Path, folder: Path, servers: Path, *tasks: dict[str, Any], **settings: str) -> Any:
    """``orchestrator run --json`` of a document of ``tasks``; its answer, by task id."""
    document = folder / "document.yaml"
    document.write_text(yaml.safe_dump({"name": "mcp test", "tasks": list(tasks)}))
    result = cli(
        home,
        "run",
        document,
        "--json",
        timeout=120,
        ORCHESTRATOR_MCP_SERVERS=str(servers),
        **settings,
    )
    assert result.stdout, result.stderr
    return json.loads(result.stdout)["tasks"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- stdio: server-everything ---------------------------------------------------------------


def test_echo_sum_and_structured_content_over_stdio(tmp_path: Path, node: str) -> None:
    servers = servers_file(tmp_path, everything=counted(tmp_path, node, EVERYTHING, "stdio"))

    tasks = run(
        tmp_path / "home",
        tmp_path,
        servers,
        mcp_task("echo", "everything", "echo", arguments={"message": "hello"}),
        mcp_task("sum", "everything", "get-sum", arguments={"a": 2, "b": 3}),
        mcp_task(
            "weather", "everything", "get-structured-content", arguments={"location": "Chicago"}
        ),
        mcp_task(
            "again",
            "everything",
            "echo",
            arguments={"message": "${echo.output} again"},
            dependencies=["echo"],
        ),
    )

    assert tasks["echo"]["output"] == "Echo: hello"
    assert tasks["sum"]["output"] == "The sum of 2 and 3 is 5."
    assert set(tasks["weather"]["output"]) == {"temperature", "conditions", "humidity"}
    assert tasks["again"]["output"] == "Echo: Echo: hello again"
    assert len(starts(tmp_path)) == 1


def test_a_fan_out_of_100_calls_uses_one_server_process(tmp_path: Path, node: str) -> None:
    servers = servers_file(tmp_path, everything=counted(tmp_path, node, EVERYTHING, "stdio"))
    fan_out = mcp_task("each", "everything", "echo", arguments={"message": "n${item}"})
    fan_out["for_each"] = "${numbers.output}"
    fan_out["dependencies"] = ["numbers"]
    numbers = {"id": "numbers", "type": "delay", "config": {"value": list(range(100))}}

    began = time.monotonic()
    tasks = run(tmp_path / "home", tmp_path, servers, numbers, fan_out)

    assert tasks["each"]["state"] == "succeeded"
    assert tasks["each"]["output"] == [f"Echo: n{n}" for n in range(100)]
    (pid,) = starts(tmp_path)  # one process served every call
    assert not alive(pid)  # and it was stopped when the engine closed
    assert time.monotonic() - began < 60


def test_an_erroring_tool_and_unknown_names_fail_with_clear_messages(
    tmp_path: Path, node: str
) -> None:
    servers = servers_file(
        tmp_path,
        everything=counted(tmp_path, node, EVERYTHING, "stdio"),
        exits={"command": node, "args": ["-e", "console.error('needs API_KEY'); process.exit(3)"]},
        missing={"command": str(tmp_path / "no-such-server")},
    )

    tasks = run(
        tmp_path / "home",
        tmp_path,
        servers,
        mcp_task("bad_sum", "everything", "get-sum", arguments={"a": "x"}),
        mcp_task("typo_tool", "everything", "ecko"),
        mcp_task("typo_server", "everythin", "echo"),
        mcp_task("exits", "exits", "echo"),
        mcp_task("missing", "missing", "echo"),
    )

    bad = tasks["bad_sum"]
    assert (bad["state"], bad["error_class"]) == ("failed", "tool_error")
    assert "everything/get-sum" in bad["error"]
    assert "Invalid arguments for tool get-sum" in bad["error"]
    assert tasks["typo_tool"]["error_class"] == "config"
    assert "has no tool 'ecko'; did you mean 'echo'?" in tasks["typo_tool"]["error"]
    assert "get-structured-content" in tasks["typo_tool"]["error"]  # the tools it has
    assert "did you mean 'everything'?" in tasks["typo_server"]["error"]
    assert "could not start" in tasks["exits"]["error"]
    assert "it said: needs API_KEY" in tasks["exits"]["error"]
    assert tasks["missing"]["error_class"] == "config"
    assert "not found" in tasks["missing"]["error"]


def test_a_secret_a_server_prints_is_masked_before_its_line_is_cut(tmp_path: Path) -> None:
    # a server that prints its env token across the 400-character cut of a stderr line, then
    # exits: the line is masked before it is cut, so no piece of the token is in the error
    home = tmp_path / "home"
    vault = Vault.open(home / "vault.db")
    vault.set("ANY_TOKEN", CANARY, allowed_hosts=["*"])
    vault.close()
    code = "import os, sys; sys.stderr.write('x' * 390 + os.environ['TOKEN'] + '\\n'); sys.exit(3)"
    servers = servers_file(
        tmp_path,
        talks={
            "command": sys.executable,
            "args": ["-c", code],
            "env": {"TOKEN": "${vault.ANY_TOKEN}"},
        },
    )
    tasks = run(home, tmp_path, servers, mcp_task("talks", "talks", "echo"))
    error = tasks["talks"]["error"]
    assert "could not start" in error and "it said: " + "x" * 390 + "***" in error, error
    pieces = [CANARY[start : start + 6] for start in range(len(CANARY) - 5)]
    assert not any(piece in json.dumps(tasks) for piece in pieces), error
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert not any(piece.encode() in path.read_bytes() for piece in pieces), path


def test_a_server_that_died_is_started_again_on_the_next_use(tmp_path: Path, node: str) -> None:
    settings = McpSettings(
        servers=servers_file(tmp_path, everything=counted(tmp_path, node, EVERYTHING, "stdio"))
    )
    document = {"tasks": [mcp_task("echo", "everything", "echo", arguments={"message": "hi"})]}

    async def scenario() -> tuple[list[str], list[int]]:
        home = tmp_path / "home"
        states = []
        async with await Engine.open(
            home / "state.db", home / "runs", resume=False, runner_settings={"mcp": settings}
        ) as engine:
            runner = engine.runner("mcp")
            assert isinstance(runner, McpRunner)
            for _ in range(2):
                run_id = await engine.submit(document)
                snapshot = await engine.wait(run_id, 30)
                states.append(f"{snapshot.status.value}/{snapshot.tasks[0].attempts}")
                if len(states) == 1:
                    os.kill(starts(tmp_path)[0], signal.SIGKILL)
                    session = runner.session("everything")
                    deadline = time.monotonic() + 10
                    while session.is_open and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
            return states, starts(tmp_path)

    states, pids = asyncio.run(scenario())
    assert states == ["succeeded/1", "succeeded/1"]
    assert len(pids) == 2


# --- stdio: server-filesystem ---------------------------------------------------------------


def test_a_fan_out_of_reads_over_a_folder(tmp_path: Path, node: str) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    names = [f"note-{n:02}.txt" for n in range(30)]
    for name in names:
        (folder / name).write_text(f"text of {name}\n")
    servers = servers_file(tmp_path, files=counted(tmp_path, node, FILESYSTEM, str(folder)))
    listing = mcp_task("listing", "files", "list_directory", arguments={"path": str(folder)})
    reads = mcp_task("reads", "files", "read_text_file", arguments={"path": f"{folder}/${{item}}"})
    reads["for_each"] = "${names.output}"
    reads["dependencies"] = ["names"]
    outside = mcp_task("outside", "files", "read_text_file", arguments={"path": "/etc/hostname"})

    tasks = run(
        tmp_path / "home",
        tmp_path,
        servers,
        {"id": "names", "type": "delay", "config": {"value": names}},
        listing,
        reads,
        outside,
    )

    assert tasks["reads"]["output"] == [{"content": f"text of {name}\n"} for name in names]
    assert all(name in tasks["listing"]["output"]["content"] for name in names)
    assert tasks["outside"]["error_class"] == "tool_error"
    assert "outside allowed directories" in tasks["outside"]["error"]
    assert len(starts(tmp_path)) == 1


# --- streamable HTTP: this project's own server ---------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``orchestrator serve --http`` on a free loopback port, requiring the canary as token."""
    folder = tmp_path_factory.mktemp("remote")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(folder / "home"), ORCHESTRATOR_HTTP_TOKEN=CANARY)
    command = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve", "--http"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("orchestrator serve --http did not start")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_remote_server_with_a_header_secret_bound_to_its_host(
    tmp_path: Path, remote: int
) -> None:
    home = home_with_secrets(tmp_path / "home", TOKEN=CANARY)  # allowed for 127.0.0.1 only
    header = {"Authorization": "Bearer ${vault.TOKEN}"}
    servers = servers_file(
        tmp_path,
        own={"type": "http", "url": f"http://127.0.0.1:{remote}/mcp", "headers": header},
        by_name={"url": f"http://localhost:{remote}/mcp", "headers": header},
        no_token={"type": "streamable-http", "url": f"http://127.0.0.1:{remote}/mcp"},
    )

    tasks = run(
        home,
        tmp_path,
        servers,
        mcp_task("types", "own", "list_task_types"),
        mcp_task("by_name", "by_name", "list_task_types"),
        mcp_task("no_token", "no_token", "list_task_types"),
    )

    listed = {entry["type"] for entry in tasks["types"]["output"]["task_types"]}
    assert {"http", "mcp", "delay"} <= listed
    refused = tasks["by_name"]
    assert (refused["state"], refused["error_class"]) == ("failed", "config")
    assert "TOKEN" in refused["error"] and "localhost" in refused["error"]
    assert "401" in tasks["no_token"]["error"]
    assert CANARY not in json.dumps(tasks)
    for path in home.rglob("*"):  # never at rest, in the state, the logs or the run files
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_remote_url_the_policy_refuses_is_never_connected(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        servers = servers_file(tmp_path, refused={"url": f"http://127.0.0.1:{port}/mcp"})

        tasks = run(
            tmp_path / "home",
            tmp_path,
            servers,
            mcp_task("call", "refused", "anything"),
            ORCHESTRATOR_NET_DENY='["127.0.0.0/8"]',
        )

        with pytest.raises(BlockingIOError):
            listener.accept()
    assert (tasks["call"]["state"], tasks["call"]["error_class"]) == ("failed", "policy")
    assert "denied network 127.0.0.0/8" in tasks["call"]["error"]


# --- the servers file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"servers": {}}', 'expected an object with "mcpServers"'),
        ('{"mcpServers": {"a": {"comand": "x"}}}', "unknown key 'comand'; did you mean 'command'?"),
        ('{"mcpServers": {"a": {"type": "sse", "url": "http://h/sse"}}}', "SSE transport"),
        ('{"mcpServers": {"a": {"url": "ftp://h/x"}}}', "is not an http or https URL"),
        (
            '{"mcpServers": {"a": {"command": "x", "args": ["${vault.K}"]}}}',
            "mcpServers.a.args cannot hold a secret",
        ),
    ],
)
def test_a_bad_servers_file_stops_the_start_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "servers.json"
    path.write_text(content)
    document = tmp_path / "document.yaml"
    document.write_text(yaml.safe_dump({"tasks": [{"id": "a", "type": "delay"}]}))

    result = cli(tmp_path / "home", "run", document, ORCHESTRATOR_MCP_SERVERS=str(path))

    assert result.code == 2
    assert "ORCHESTRATOR_MCP_SERVERS" in result.stderr
    assert str(path) in result.stderr
    assert problem in result.stderr


def test_other_clients_keys_are_ignored_and_a_disabled_server_left_out(tmp_path: Path) -> None:
    path = servers_file(
        tmp_path,
        used={"command": "x", "autoApprove": ["a"], "concurrency": 2},
        off={"command": "y", "disabled": True},
        remote={"url": "https://mcp.example.org/mcp", "headers": {"X-Key": "${vault.K}"}},
    )
    content = json.loads(path.read_text())
    path.write_text(json.dumps({"globalShortcut": "Ctrl+Space", **content}))

    servers = McpSettings(servers=path).configured()

    assert sorted(servers) == ["remote", "used"]
    assert servers["used"].concurrency == 2


def test_a_document_cannot_put_a_secret_in_an_mcp_tasks_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    vault = Vault.open(home / "vault.db")
    vault.set("W_TOK", "w-token-value", allowed_hosts=["*"])
    vault.close()
    document = tmp_path / "document.yaml"
    task = mcp_task("call", "files", "read_text_file", arguments={"path": "${vault.W_TOK}"})
    document.write_text(yaml.safe_dump({"tasks": [task]}))

    checked = cli(home, "validate", document, "--json")

    assert checked.code == 2
    (issue,) = json.loads(checked.stdout)["issues"]
    assert issue["path"] == "tasks[0].config.arguments.path"
    assert "cannot be used in a mcp task" in issue["message"]


# --- list_mcp_tools -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_mcp_tools_shows_each_servers_tools_and_why_one_cannot_start(
    tmp_path: Path, node: str
) -> None:
    path = servers_file(
        tmp_path,
        everything={"command": node, "args": [str(EVERYTHING), "stdio"]},
        exits={"command": node, "args": ["-e", "console.error('needs API_KEY'); process.exit(3)"]},
    )
    server = create_server(Settings(home=tmp_path / "home", mcp_servers=path, shutdown_grace=0))

    async with Client(server) as client:
        listing = await client.list_tools()
        tool = next(t for t in listing.tools if t.name == "list_mcp_tools")
        result = await client.call_tool("list_mcp_tools", {})
        one = await client.call_tool("list_mcp_tools", {"server": "everything"})
        typo = await client.call_tool("list_mcp_tools", {"server": "everythin"})

    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True
    assert tool.annotations.open_world_hint is True
    assert not result.is_error, result.content
    jsonschema.validate(result.structured_content, tool.output_schema or {})
    answer = result.structured_content
    assert answer["servers_file"] == str(path)
    servers = {entry["name"]: entry for entry in answer["servers"]}
    echo = next(t for t in servers["everything"]["tools"] if t["name"] == "echo")
    assert echo == {
        "name": "echo",
        "description": "Echoes back the input string",
        "arguments": ["message"],
        "required": ["message"],
    }
    assert servers["everything"]["transport"] == "stdio"
    assert servers["everything"]["error"] is None
    assert servers["exits"]["tools"] == []
    assert "needs API_KEY" in servers["exits"]["error"]
    assert [entry["name"] for entry in (one.structured_content or {})["servers"]] == ["everything"]
    assert typo.is_error
    assert "did you mean 'everything'?" in typo.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_list_mcp_tools_without_servers_says_how_to_configure_them(tmp_path: Path) -> None:
    server = create_server(Settings(home=tmp_path / "home", shutdown_grace=0))

    async with Client(server) as client:
        result = await client.call_tool("list_mcp_tools", {})

    answer = result.structured_content or {}
    assert answer["servers"] == []
    assert "ORCHESTRATOR_MCP_SERVERS" in answer["note"]
