"""The ``agent`` task type through the door: documents run by the ``orchestrator`` CLI (a child
process), the model being the local stand-in (``server/standin_model/``) and the tools those of
npm's ``@modelcontextprotocol/server-filesystem`` over stdio (installed into ``.ci/node`` by
``scripts/test``); and one document submitted through the MCP tools.

The stand-in drives the loop: offered tools, it calls the ones the prompt names, in order, with
the ``prop=value`` arguments written after each, then answers quoting the last result. The API
key is a canary in the vault, bound to 127.0.0.1, and the file the agent reads holds it too: it
must reach the stand-in's auth header and nothing else — not the results fed to the model, the
outputs, the transcript, the events, the data folder.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from cli_process import REPO, cli, home_with_secrets
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.server.standin_model import NOTICE, StandinModel

KEY = "sk-canary-agent-3b8e1f0c94d2a776"
NODE_MODULES = REPO / ".ci" / "node" / "node_modules" / "@modelcontextprotocol"
FILESYSTEM = NODE_MODULES / "server-filesystem" / "dist" / "index.js"
EVERYTHING = NODE_MODULES / "server-everything" / "dist" / "index.js"
NOTES = "The launch moves to Thursday. Ask Dana about the venue."
INSTALL_HINT = (
    "the npm MCP servers are not installed in .ci/node; scripts/test installs them (with npm, "
    "Node.js 20 or newer)"
)


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (FILESYSTEM.exists() and EVERYTHING.exists()):
        if "CI" not in os.environ:
            pytest.skip(INSTALL_HINT)
        pytest.fail(INSTALL_HINT)
    return found


@pytest.fixture
def model() -> Iterator[StandinModel]:
    with StandinModel(keys=frozenset({KEY})) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The folder the filesystem server may read: notes.txt (holding the key too) and todo.txt."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text(f"{NOTES}\nkey: {KEY}\n")
    (notes / "todo.txt").write_text("- book the room\n")
    return notes


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", LLM_KEY=KEY)


@pytest.fixture
def servers(tmp_path: Path, node: str, folder: Path) -> Path:
    path = tmp_path / "servers.json"
    files = {"command": node, "args": [str(FILESYSTEM), str(folder)]}
    everything = {"command": node, "args": [str(EVERYTHING), "stdio"]}
    path.write_text(json.dumps({"mcpServers": {"files": files, "everything": everything}}))
    return path


def agent(task_id: str, server: StandinModel, provider: str = "anthropic", **config: Any) -> Any:
    extra = {
        name: config.pop(name) for name in ("retry", "dependencies", "budget") if name in config
    }
    settings = {
        "provider": provider,
        "model": "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o-mini",
        "base_url": server.url if provider == "anthropic" else server.url + "/v1",
        "api_key": "${vault.LLM_KEY}",
        "tools": ["files"],
        **config,
    }
    return {"id": task_id, "type": "agent", "config": settings, **extra}


def run(home: Path, servers: Path, *tasks: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``orchestrator run --json`` of ``tasks``: the tasks by id, and everything printed."""
    path = home.parent / "agents.yaml"
    path.write_text(yaml.safe_dump({"name": "agents", "tasks": list(tasks)}))
    done = cli(home, "run", path, "--json", timeout=180, ORCHESTRATOR_MCP_SERVERS=str(servers))
    assert done.stdout, done.stderr
    return json.loads(done.stdout)["tasks"], done.stdout + done.stderr


def transcript(home: Path, name: str) -> dict[str, Any]:
    (path,) = home.glob(f"runs/*/artifacts/{name}")
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def log_lines(home: Path) -> list[str]:
    (log,) = home.glob("runs/*/execution_log.txt")
    return log.read_text().splitlines()


def assert_key_nowhere(home: Path, model: StandinModel, shown: str) -> None:
    """The canary went to the stand-in's auth header only: not in a request body (the tool
    results fed to the model are redacted), what the CLI printed, or any file of the data
    folder (the vault holds it encrypted)."""
    assert KEY not in shown
    for call in model.state.calls():
        assert KEY not in json.dumps(call["body"])
        headers = call["headers"]
        given = headers.get("x-api-key") or headers.get("authorization", "").split(" ")[-1]
        assert given == KEY
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes(), f"the key is in {path}"


# --- the loop ---------------------------------------------------------------------------------


def test_an_agent_lists_a_folder_reads_a_file_and_answers_with_it(
    home: Path, servers: Path, folder: Path, model: StandinModel
) -> None:
    prompt = (
        f"What do my notes say? Use list_directory path={folder} to find them, then "
        f"read_text_file path={folder}/notes.txt and tell me."
    )
    tasks, shown = run(home, servers, agent("reader", model, prompt=prompt, max_steps=5))

    reader = tasks["reader"]
    assert reader["state"] == "succeeded", reader
    output = reader["output"]
    assert output["text"].startswith(f"[{NOTICE}] After 2 tool call(s)")
    assert NOTES in output["text"] and "key: ***" in output["text"]
    assert (output["steps"], output["tool_calls"]) == (3, 2)
    assert output["model"] == "claude-sonnet-4-5" and output["stop_reason"] == "end_turn"
    assert output["usage"]["input_tokens"] > 0 and output["usage"]["output_tokens"] > 0
    assert output["cost_usd"] > 0
    assert output["transcript"] == "reader-transcript.json"

    # the model was offered the server's tools, and got each result back
    first, second, third = model.state.calls("/v1/messages")
    offered = {tool["name"] for tool in first["body"]["tools"]}
    assert {"files__list_directory", "files__read_text_file"} <= offered
    assert "notes.txt" in json.dumps(second["body"]["messages"][-1])
    last = third["body"]["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and NOTES in last["content"]

    saved = transcript(home, "reader-transcript.json")
    assert [turn["role"] for turn in saved["turns"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert saved["turns"][2]["tool"] == "files.list_directory"
    assert saved["tools"][:1] and "files.read_text_file" in saved["tools"]
    assert saved["stop_reason"] == "end_turn"

    lines = log_lines(home)
    assert any("step 1: claude-sonnet-4-5 calls files.list_directory" in line for line in lines)
    assert any("step 2: files.read_text_file answered" in line for line in lines)
    assert any("step 3: claude-sonnet-4-5 answers" in line for line in lines)
    assert_key_nowhere(home, model, shown)


def test_openai_tools_filtered_and_a_json_answer(
    home: Path, servers: Path, folder: Path, model: StandinModel
) -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string"}, "files": {"type": "array"}},
        "required": ["summary", "files"],
    }
    prompt = f"Summarise the todo list: read_text_file path={folder}/todo.txt"
    task = agent(
        "summary",
        model,
        "openai",
        prompt=prompt,
        instructions="You read files.",
        tools=[{"server": "files", "only": ["read_text_file"]}],
        schema=schema,
    )
    tasks, shown = run(home, servers, task)

    summary = tasks["summary"]
    assert summary["state"] == "succeeded", summary
    assert set(summary["output"]["data"]) == {"summary", "files"}
    assert summary["output"]["steps"] == 2 and summary["output"]["stop_reason"] == "stop"
    first, second = model.state.calls("/v1/chat/completions")
    assert [tool["function"]["name"] for tool in first["body"]["tools"]] == [
        "files__read_text_file"
    ]
    assert first["body"]["messages"][0]["role"] == "system"
    assert "You read files." in first["body"]["messages"][0]["content"]
    tool_turn = second["body"]["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["content"] == "- book the room"
    assert_key_nowhere(home, model, shown)


def test_a_tool_error_is_fed_back_to_the_model(
    home: Path, servers: Path, folder: Path, model: StandinModel
) -> None:
    model.state.script_tool_calls(
        [
            {"tool": "read_text_file", "arguments": {"path": f"{folder}/missing.txt"}},
            {"tool": "read_text_file", "arguments": {"path": "/etc/hostname"}},
            {"tool": "delete_everything"},
        ]
    )
    tasks, shown = run(home, servers, agent("careful", model, prompt="Read what you can."))

    careful = tasks["careful"]
    assert careful["state"] == "succeeded", careful
    assert careful["output"]["tool_calls"] == 3
    assert "there is no tool 'files__delete_everything'" not in careful["output"]["text"]
    assert "there is no tool 'delete_everything'" in careful["output"]["text"]
    turns = transcript(home, careful["output"]["transcript"])["turns"]
    errors = [turn for turn in turns if turn["role"] == "tool"]
    assert [turn["is_error"] for turn in errors] == [True, True, True]
    assert "ENOENT" in errors[0]["result"] or "not found" in errors[0]["result"].lower()
    assert "outside allowed directories" in errors[1]["result"]
    # the model read each error as an error result
    calls = model.state.calls("/v1/messages")
    fed_back = calls[1]["body"]["messages"][-1]["content"][0]
    assert fed_back["type"] == "tool_result" and fed_back["is_error"] is True
    warnings = [line for line in log_lines(home) if "files.read_text_file failed" in line]
    assert len(warnings) == 2 and all("WARN" in line for line in warnings)
    assert_key_nowhere(home, model, shown)


def test_max_steps_and_max_tokens_stop_the_loop_with_their_class(
    home: Path, servers: Path, folder: Path, model: StandinModel
) -> None:
    endless = f"list_directory path={folder} " * 5
    tasks, shown = run(
        home,
        servers,
        agent("steps", model, prompt=endless, max_steps=2),
        agent("tokens", model, "openai", prompt=endless, max_tokens=10),
    )

    steps = tasks["steps"]
    assert (steps["state"], steps["error_class"]) == ("failed", "max_steps"), steps
    assert "max_steps (2 model calls)" in steps["error"]
    assert "files.list_directory" in steps["error"]
    assert "transcript: steps-transcript.json" in steps["error"]
    saved = transcript(home, "steps-transcript.json")
    assert saved["stop_reason"] == "max_steps"
    assert [t["role"] for t in saved["turns"]].count("assistant") == 2

    tokens = tasks["tokens"]
    assert (tokens["state"], tokens["error_class"]) == ("failed", "max_tokens"), tokens
    assert "of 10 tokens used in 1 steps" in tokens["error"]
    assert len(model.state.calls("/v1/messages")) == 2
    assert len(model.state.calls("/v1/chat/completions")) == 1
    assert_key_nowhere(home, model, shown)


def test_a_spent_budget_stops_the_loop_before_its_next_step(
    home: Path, servers: Path, folder: Path, model: StandinModel
) -> None:
    endless = f"list_directory path={folder} " * 5
    tasks, shown = run(
        home,
        servers,
        agent("budgeted", model, prompt=endless, max_steps=5, budget={"tokens": 10}),
    )

    budgeted = tasks["budgeted"]
    assert (budgeted["state"], budgeted["error_class"]) == ("failed", "budget"), budgeted
    assert "the agent stopped before step 2: budget spent: " in budgeted["error"]
    assert "of 10 tokens used (task budgeted's budget)" in budgeted["error"]
    assert len(model.state.calls("/v1/messages")) == 1  # the first step's call, no more
    saved = transcript(home, "budgeted-transcript.json")
    assert saved["stop_reason"] == "budget"
    assert_key_nowhere(home, model, shown)


def test_an_unknown_server_or_tool_fails_with_config(
    home: Path, servers: Path, model: StandinModel
) -> None:
    tasks, _ = run(
        home,
        servers,
        agent("typo", model, prompt="Hi", tools=["filez"]),
        agent("only", model, prompt="Hi", tools=[{"server": "files", "only": ["read_fil"]}]),
    )

    assert tasks["typo"]["error_class"] == "config"
    assert "did you mean 'files'?" in tasks["typo"]["error"]
    assert tasks["only"]["error_class"] == "config"
    assert "has no tool 'read_fil'; did you mean 'read_file'?" in tasks["only"]["error"]
    assert model.state.calls() == []


# --- through the MCP tools --------------------------------------------------------------------


@pytest.fixture
async def client(home: Path, servers: Path) -> AsyncIterator[Client]:
    settings = Settings(home=home, mcp_servers=servers, shutdown_grace=0)
    async with Client(create_server(settings)) as connected:
        yield connected


@pytest.mark.anyio
async def test_an_agent_through_the_mcp_tools(
    client: Client, home: Path, folder: Path, model: StandinModel
) -> None:
    prompt = f"read_text_file path={folder}/notes.txt"
    spec = yaml.safe_dump({"tasks": [agent("reader", model, prompt=prompt)]})
    submitted = await client.call_tool("submit_orchestration", {"spec": spec, "wait_seconds": 60})
    assert not submitted.is_error, submitted.content
    answer = submitted.structured_content
    assert answer is not None and answer["progress"]["finished"] is True

    results = await client.call_tool("get_results", {"id": answer["id"]})
    assert not results.is_error, results.content
    shown = json.dumps(results.structured_content)
    assert answer["status"] == "succeeded", shown
    assert NOTES in shown and '"transcript": "reader-transcript.json"' in shown
    uri = f"orchestration://{answer['id']}/artifacts/reader-transcript.json"
    read = await client.read_resource(uri)
    (content,) = read.contents
    text = getattr(content, "text", None) or base64.b64decode(content.blob).decode()
    assert "files.read_text_file" in text and NOTES in text
    assert_key_nowhere(home, model, shown + text)


@pytest.mark.anyio
async def test_the_status_shows_what_a_running_agent_does(
    client: Client, home: Path, model: StandinModel
) -> None:
    prompt = "Run trigger-long-running-operation duration=3 steps=3 and report."
    task = agent("slow", model, prompt=prompt, tools=["everything"])
    spec = yaml.safe_dump({"tasks": [task]})
    submitted = await client.call_tool("submit_orchestration", {"spec": spec})
    assert submitted.structured_content is not None, submitted.content
    run_id = submitted.structured_content["id"]

    seen: set[str] = set()
    with anyio.fail_after(60):
        while True:
            status = await client.call_tool("get_status", {"id": run_id})
            answer = status.structured_content
            assert answer is not None, status.content
            seen |= {row["waiting_for"] for row in answer["tasks"] if row.get("waiting_for")}
            if answer["status"] not in ("pending", "running"):
                break
            await anyio.sleep(0.1)
    assert "step 1: calling everything.trigger-long-running-operation" in seen, seen
    results = await client.call_tool("get_results", {"id": run_id})
    assert "Long running operation completed" in json.dumps(results.structured_content)
