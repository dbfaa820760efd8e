"""``orchestrator serve --http`` end to end: the real server in a child process, on loopback.

Each server gets its own ``ORCHESTRATOR_HOME`` (a temporary folder) and a free port on
127.0.0.1. The tests cover several sessions sharing one engine, the bearer token, the DNS
rebinding checks, the refusal to serve a non-loopback address without a token, and a clean stop
on a signal.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_contract import TOOL_NAMES

from multi_task_orchestrator.server.http_transport import bind, build_http_app
from multi_task_orchestrator.server.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret"
STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0


# What a raw client sends first; the SDK answers it with 200 when the request gets through.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test_mcp_http", "version": "1"},
    },
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


def two_stage_document(label: str) -> dict[str, Any]:
    """Two chained delay tasks whose outputs name the session that submitted them."""
    return {
        "name": f"Session {label}",
        "tasks": [
            {"id": "first", "type": "delay", "config": {"seconds": 0.2, "value": label}},
            {
                "id": "second",
                "type": "delay",
                "dependencies": ["first"],
                "config": {"seconds": 0.2, "value": "${first.output}-done"},
            },
        ],
    }


SLOW_DOCUMENT = {
    "name": "Slow",
    "tasks": [{"id": "wait", "type": "delay", "config": {"seconds": 60}}],
}


# --- the server process -------------------------------------------------------------------


@dataclass
class HttpServer:
    """A running ``orchestrator serve --http`` child process."""

    process: subprocess.Popen[bytes]
    home: Path
    port: int
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log(self) -> str:
        return (self.home / "server.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "multi_task_orchestrator.server.cli",
        "serve",
        "--http",
        "--host",
        host,
        "--port",
        str(port),
    ]


def child_env(home: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONIOENCODING="utf-8", **settings)
    return env


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_server(folder: Path, **settings: str) -> HttpServer:
    """Start the server on a free loopback port; return once the port accepts connections."""
    home = folder / "home"
    home.mkdir(parents=True)
    stderr_path = folder / "stderr.txt"
    port = free_port()
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            serve_command("127.0.0.1", port),
            cwd=REPO,
            env=child_env(home, **settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = HttpServer(process, home, port, stderr_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not accepts_connections(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the HTTP server did not start on port {port}:\n{server.stderr()}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A server without a token; only test_two_sessions_share_one_engine submits work to it."""
    running = start_server(
        tmp_path_factory.mktemp("http"), ORCHESTRATOR_HTTP_ALLOWED_HOSTS='["orchestrator.lan"]'
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    running = start_server(tmp_path_factory.mktemp("http-token"), ORCHESTRATOR_HTTP_TOKEN=TOKEN)
    try:
        yield running
    finally:
        running.stop()


async def call(client: Client, tool: str, arguments: dict[str, Any], **options: Any) -> Any:
    """Call a tool and return its structured content, failing on a tool error."""
    result = await client.call_tool(tool, arguments, **options)
    assert not result.is_error, result.content
    return result.structured_content


# --- sessions -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_sessions_at_once_share_one_engine(server: HttpServer) -> None:
    labels = ("A", "B")
    ids: dict[str, str] = {}
    finished = {label: anyio.Event() for label in labels}
    seen: dict[str, dict[str, Any]] = {}

    async def session(label: str, other: str) -> None:
        async with Client(server.url) as client:
            started = await call(
                client, "submit_orchestration", {"spec": two_stage_document(label)}
            )
            ids[label] = started["id"]
            progress: list[tuple[float, float | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total))

            own = await call(
                client,
                "wait_for_orchestration",
                {"id": ids[label], "timeout_seconds": 20},
                progress_callback=on_progress,
            )
            outputs = (await call(client, "get_results", {"id": ids[label]}))["outputs"]
            finished[label].set()
            # Both sessions stay open until both runs are done: they are at once, not in turn.
            await finished[other].wait()
            seen[label] = {
                "started": started["status"],
                "own": own["status"],
                "last_progress": progress[-1],
                "outputs": outputs,
                "other": await call(client, "get_status", {"id": ids[other]}),
                "listed": await call(client, "list_orchestrations", {}),
            }

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(session, "A", "B")
            group.start_soon(session, "B", "A")

    assert ids["A"] != ids["B"]
    for label, other in (("A", "B"), ("B", "A")):
        mine = seen[label]
        assert mine["started"] == "running"
        assert mine["own"] == "succeeded"
        assert mine["last_progress"] == (2.0, 2.0)
        assert mine["outputs"] == {"first": label, "second": f"{label}-done"}
        theirs = mine["other"]
        assert (theirs["id"], theirs["name"], theirs["status"]) == (
            ids[other],
            f"Session {other}",
            "succeeded",
        )
        assert (theirs["done"], theirs["total"]) == (2, 2)
        listed = {row["id"]: row["status"] for row in mine["listed"]["orchestrations"]}
        assert listed == {ids["A"]: "succeeded", ids["B"]: "succeeded"}


@pytest.mark.anyio
async def test_a_request_over_the_body_limit_is_a_json_rpc_error_naming_the_setting(
    tmp_path: Path,
) -> None:
    """The SDK's 413 was the plain text "Request body too large". In this process (the HTTP
    app itself, no server): a refusal needs no session, and a real socket may be reset under a
    client still sending the body."""
    app = build_http_app(Settings(home=tmp_path, max_document_bytes=1024), "127.0.0.1")
    spec = "x" * 100_000
    call_tool = {"name": "validate_orchestration", "arguments": {"spec": spec}}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call_tool}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post("/mcp", json=request, headers=MCP_ACCEPT)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert (error["jsonrpc"], error["id"], error["error"]["code"]) == ("2.0", None, -32600)
    assert "ORCHESTRATOR_MAX_DOCUMENT_BYTES (1,024 bytes)" in error["error"]["message"]


@pytest.mark.anyio
async def test_a_document_near_the_size_limit_gets_through_http(server: HttpServer) -> None:
    """The HTTP endpoint reads a request as large as the largest document the server accepts
    (5 MiB by default; the MCP SDK's own default, 4 MiB, refused it with a bare 413)."""
    padding = "x" * 9_000
    lines = ["name: near the limit", "tasks:"]
    lines += [f"  - {{id: t{i}, type: delay, config: {{value: '{padding}'}}}}" for i in range(540)]
    text = "\n".join(lines) + "\n"
    assert 4.8e6 < len(text.encode()) < 5 * 1024 * 1024
    async with Client(server.url) as client:
        answer = await call(client, "validate_orchestration", {"spec": text})
        too_large = await call(client, "validate_orchestration", {"spec": text * 2})
    assert answer["ok"] is True and answer["plan"]["task_count"] == 540
    assert too_large["ok"] is False  # read, and refused by the validator, which says why
    assert "ORCHESTRATOR_MAX_DOCUMENT_BYTES" in too_large["errors"][0]["hint"]


# --- what the user sees at start --------------------------------------------------------


def announced_url(server: HttpServer) -> str:
    """The URL the server printed on stderr once it accepted connections."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"serving MCP \(streamable HTTP\) on (\S+)", server.stderr())
        if found:
            return found.group(1)
        time.sleep(0.05)
    pytest.fail(f"the server printed no URL on stderr:\n{server.stderr()}")


@pytest.mark.anyio
async def test_serve_http_prints_the_url_a_client_connects_to(server: HttpServer) -> None:
    url = announced_url(server)

    with anyio.fail_after(30):
        async with Client(url) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}

    assert url == f"http://127.0.0.1:{server.port}/mcp"
    assert names == TOOL_NAMES


def test_a_port_in_use_exits_2_naming_the_port_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_command("127.0.0.1", port),
            cwd=REPO,
            env=child_env(tmp_path / "home"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
        )

    assert result.returncode == 2, result.stderr
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_listening_socket_says_it_is_tcp_so_answers_are_not_held_back() -> None:
    # asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose protocol is
    # IPPROTO_TCP; a socket made with protocol 0 kept it on, and the last piece of every answer
    # on a kept-alive connection waited ~40 ms for the client's delayed ACK
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_the_default_port_is_not_the_local_test_servers() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )

    default = re.search(r"HTTP port \(default (\d+)\)", shown.stdout)
    assert default, shown.stdout
    # 8765 is where `python -m tests.local_server` listens, which the examples' URLs use
    assert default.group(1) == "7450"


# --- refusing a non-loopback bind ---------------------------------------------------------


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command("0.0.0.0", free_port()),
        cwd=REPO,
        env=child_env(tmp_path / "home"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: refusing to serve MCP over HTTP on 0.0.0.0 without a bearer token: "
        "set ORCHESTRATOR_HTTP_TOKEN"
    )
    assert "Traceback" not in result.stderr


def test_an_empty_host_is_refused_as_such(tmp_path: Path) -> None:
    """Was "refusing to serve MCP over HTTP on  without a bearer token"."""
    result = subprocess.run(
        serve_command("", free_port()),
        cwd=REPO,
        env=child_env(tmp_path / "home"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "error: argument --host: is empty: give an address, e.g. 127.0.0.1" in result.stderr


# --- the bearer token ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"],
    ids=["missing", "wrong", "longer", "no-scheme", "basic"],
)
def test_requests_without_the_right_token_get_401(
    token_server: HttpServer, authorization: str | None
) -> None:
    headers = dict(MCP_ACCEPT)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.post(token_server.url, headers=headers, json=INITIALIZE, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="orchestrator"'
    assert response.text == "missing or wrong bearer token"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_raw_request_with_the_right_token_gets_through(
    token_server: HttpServer, scheme: str
) -> None:
    headers = {**MCP_ACCEPT, "Authorization": f"{scheme} {TOKEN}"}
    response = httpx.post(token_server.url, headers=headers, json=INITIALIZE, timeout=10)
    assert response.status_code == 200
    assert response.headers["mcp-session-id"]


@pytest.mark.parametrize("first_right", [True, False])
def test_two_authorization_headers_are_refused(token_server: HttpServer, first_right: bool) -> None:
    both = [f"Bearer {TOKEN}", "Bearer wrong"]
    headers = [
        *MCP_ACCEPT.items(),
        *(("Authorization", v) for v in both[:: 1 if first_right else -1]),
    ]
    response = httpx.post(token_server.url, headers=headers, json=INITIALIZE, timeout=10)
    assert response.status_code == 401
    assert response.text == "more than one Authorization header"


@pytest.mark.anyio
async def test_the_sdk_client_with_the_token_lists_and_runs_tools(
    token_server: HttpServer,
) -> None:
    authorized = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=60)
    )
    with anyio.fail_after(30):
        async with (
            authorized,
            Client(streamable_http_client(token_server.url, http_client=authorized)) as client,
        ):
            names = {tool.name for tool in (await client.list_tools()).tools}
            submitted = await call(
                client,
                "submit_orchestration",
                {"spec": two_stage_document("T"), "wait_seconds": 20},
            )
            outputs = (await call(client, "get_results", {"id": submitted["id"]}))["outputs"]

    assert names == TOOL_NAMES
    assert submitted["status"] == "succeeded"
    assert submitted["progress"]["done"] == 2
    assert outputs == {"first": "T", "second": "T-done"}
    assert "StreamableHTTP session manager started" in token_server.log()
    assert TOKEN not in token_server.log()
    assert TOKEN not in token_server.stderr()


# --- DNS rebinding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status", "body"),
    [
        ({"Host": "evil.example"}, 421, "Invalid Host header"),
        ({"Host": "evil.example:80"}, 421, "Invalid Host header"),
        ({"Origin": "http://evil.example"}, 403, "Invalid Origin header"),
        ({"Origin": "http://127.0.0.1.evil.example"}, 403, "Invalid Origin header"),
    ],
    ids=["host", "host-with-port", "origin", "origin-lookalike"],
)
def test_foreign_host_or_origin_is_rejected(
    server: HttpServer, extra: dict[str, str], status: int, body: str
) -> None:
    response = httpx.post(server.url, headers={**MCP_ACCEPT, **extra}, json=INITIALIZE, timeout=10)
    assert response.status_code == status
    assert response.text == body


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "https://orchestrator.lan",
        "https://orchestrator.lan:8443",
    ],
)
def test_own_origin_is_accepted(server: HttpServer, origin: str) -> None:
    headers = {**MCP_ACCEPT, "Origin": origin.format(port=server.port)}
    response = httpx.post(server.url, headers=headers, json=INITIALIZE, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["orchestrator.lan", "orchestrator.lan:443", "localhost"])
def test_a_listed_host_is_accepted_with_or_without_a_port(server: HttpServer, host: str) -> None:
    # behind a reverse proxy on 443 the Host header has no port
    headers = {**MCP_ACCEPT, "Host": host}
    response = httpx.post(server.url, headers=headers, json=INITIALIZE, timeout=10)
    assert response.status_code == 200


# --- shutdown -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_signal", "exit_code"),
    [
        # uvicorn shuts down cleanly, then raises the signal again: SIGTERM ends the process as
        # the signal would; asyncio.run absorbs the second SIGINT, so Ctrl-C exits with 0.
        (signal.SIGTERM, -signal.SIGTERM),
        (signal.SIGINT, 0),
    ],
    ids=["SIGTERM", "SIGINT"],
)
@pytest.mark.anyio
async def test_a_signal_stops_the_server_and_releases_the_database(
    tmp_path: Path, stop_signal: signal.Signals, exit_code: int
) -> None:
    running = start_server(tmp_path, ORCHESTRATOR_SHUTDOWN_GRACE="1")  # the 60 s task is cut short
    try:
        with anyio.fail_after(20):
            async with Client(running.url) as client:
                started = await call(client, "submit_orchestration", {"spec": SLOW_DOCUMENT})
        running.process.send_signal(stop_signal)
        returncode = running.process.wait(STOP_SECONDS)
    finally:
        running.stop()

    assert returncode == exit_code
    assert "Traceback" not in running.stderr()
    assert "engine closed" in running.log()
    database = running.home / "state.db"
    # SQLite removes the write-ahead log when the last connection closes cleanly.
    assert not database.with_name("state.db-wal").exists()
    connection = sqlite3.connect(database, timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")  # fails at once if anything still holds a lock
        row = connection.execute(
            "SELECT status, owner FROM orchestrations WHERE id = ?", (started["id"],)
        ).fetchone()
        connection.rollback()
    finally:
        connection.close()
    # Interrupted, not failed: released so that the next start resumes it.
    assert row == ("running", None)
