"""Secrets at rest and in logs, through ``orchestrator serve`` and ``orchestrator run``: a secret
sent in a query string never reaches the server's log or its stderr (httpx logs request URLs at
INFO), and everything the CLI writes under its home folder is private (files 0600, folders
0700)."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import REPO, cli, home_with_secrets
from local_server import LocalServer
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

SECRET = "qs-canary-8e2b6f19d04c7a35"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", TOKEN=SECRET)


def document(server: LocalServer) -> str:
    return f"""
tasks:
  - id: call
    type: http
    config:
      url: "{server.url()}/echo/${{vault.TOKEN}}"
      params: {{key: "${{vault.TOKEN}}"}}
"""


@pytest.mark.anyio
async def test_serve_logs_no_secret_sent_in_a_url(
    home: Path, tmp_path: Path, server: LocalServer
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", "serve"],
        env={"ORCHESTRATOR_HOME": str(home)},
        cwd=str(REPO),
    )
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            submitted = await client.call_tool(
                "submit_orchestration", {"spec": document(server), "wait_seconds": 20}
            )
            assert not submitted.is_error, submitted.content
            assert submitted.structured_content["status"] == "succeeded"
    assert any(SECRET in r["query"] for r in server.state.received("/echo/"))  # it was sent
    log = (home / "server.log").read_text()
    assert "resumed" in log or "engine closed" in log  # the log is written
    for where, text in (("server.log", log), ("stderr", stderr_path.read_text())):
        assert SECRET not in text, f"the secret is in {where}"
    assert stat.S_IMODE((home / "server.log").stat().st_mode) == 0o600


def test_everything_under_the_home_folder_is_private(
    home: Path, tmp_path: Path, server: LocalServer
) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(document(server) + "      response: bytes\n", encoding="utf-8")
    done = cli(home, "run", path, timeout=120)
    assert done.code == 0, done.stderr
    entries = list(home.rglob("*"))
    assert any(p.name == "state.db" for p in entries)
    assert any(p.parent.name == "artifacts" for p in entries)
    loose = {
        str(p.relative_to(home)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in entries
        if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)
    }
    assert loose == {}
