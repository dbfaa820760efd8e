"""Secrets end to end: a run logs in to a local site and calls a local API with vault secrets,
and a canary secret that the server echoes back appears nowhere we store or show anything.

The raw bytes of every file in the data folder (state database and its WAL, run folders, the
server log), the CLI's output and the MCP tools' answers are searched for the canary and for its
base64 and URL-encoded forms.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from local_server import LocalServer
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault.store import Vault

REPO = Path(__file__).resolve().parent.parent
CANARY = "canary-7f3e9a1c5b2d4e6f"
PASSWORD = "pw-canary-0d9c8b7a6e5f"

DOCUMENT = """
name: Secrets at work
vars: {base: "http://127.0.0.1:1"}
tasks:
  - id: login
    type: http
    config:
      method: POST
      url: "${vars.base}/login"
      json: {username: alice, password: "${vault.SITE_PASSWORD}"}
      extract: token
  - id: profile
    type: http
    dependencies: [login]
    config:
      url: "${vars.base}/api/me"
      headers: {Authorization: "Bearer ${login.output.data}"}
      extract: user
  - id: echo
    type: http
    config:
      url: "${vars.base}/echo"
      auth: {type: bearer, token: "${vault.API_TOKEN}"}
  - id: echo_fails
    type: http
    config:
      url: "${vars.base}/echo/missing"
      params: {key: "${vault.API_TOKEN}"}
      expect_status: [201]
"""


def encodings(value: str) -> list[bytes]:
    raw = value.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        quote(value, safe="").encode(),
    ]


def assert_absent(haystack: bytes, where: str) -> None:
    for secret in (CANARY, PASSWORD):
        for form in encodings(secret):
            assert form not in haystack, f"{secret!r} (as {form!r}) found in {where}"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer() as running:
        running.state.accounts["alice"] = PASSWORD
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    vault = Vault.open(home / "vault.db")
    vault.set("API_TOKEN", CANARY, allowed_hosts=["127.0.0.1"], description="the canary")
    vault.set("SITE_PASSWORD", PASSWORD, allowed_hosts=["127.0.0.1"])
    vault.close()
    return home


def test_a_run_uses_secrets_and_stores_none_of_them(
    home: Path, tmp_path: Path, server: LocalServer
) -> None:
    document = tmp_path / "secrets.yaml"
    document.write_text(DOCUMENT, encoding="utf-8")

    ran = cli(home, "run", str(document), "--var", f"base={server.url()}", "--json")

    assert ran.returncode == 1, ran.stderr  # echo_fails fails on purpose
    results = json.loads(ran.stdout)
    tasks = results["tasks"]
    assert tasks["login"]["state"] == "succeeded"
    assert tasks["profile"]["output"]["data"] == "alice"  # logged in with the vault password
    echoed = tasks["echo"]["output"]["data"]["headers"]["authorization"]
    assert echoed == "Bearer ***"  # the server reflected the canary; we stored a mask
    assert tasks["echo_fails"]["state"] == "failed"
    assert "(expected 201)" in tasks["echo_fails"]["error"]
    assert '"query":{"key":"***"}' in tasks["echo_fails"]["error"]  # the reflected canary

    # the servers really received the secrets
    authorizations = [r["headers"].get("authorization") for r in server.state.received("/echo")]
    assert f"Bearer {CANARY}" in authorizations
    assert any(CANARY in r["query"] for r in server.state.received("/echo/"))
    assert any(PASSWORD in r["body"] for r in server.state.received("/login"))

    run_id = results["id"]
    shown = [
        ran.stdout + ran.stderr,
        cli(home, "status", run_id).stdout,
        cli(home, "status", run_id, "--json").stdout,
        cli(home, "results", run_id).stdout,
        cli(home, "results", run_id, "--json").stdout,
        cli(home, "list").stdout,
        cli(home, "vault", "list").stdout,
        cli(home, "vault", "list", "--json").stdout,
    ]
    for index, text in enumerate(shown):
        assert_absent(text.encode(), f"CLI output #{index}")

    files = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.name == "state.db" for path in files)
    assert any(path.name == "execution_log.txt" for path in files)
    for path in files:
        assert_absent(path.read_bytes(), str(path.relative_to(home)))


@pytest.mark.anyio
async def test_mcp_answers_never_carry_a_secret(home: Path, server: LocalServer) -> None:
    settings = Settings(home=home)
    async with Client(create_server(settings)) as client:
        submitted = await client.call_tool(
            "submit_orchestration",
            {"spec": DOCUMENT, "vars": {"base": server.url()}, "wait_seconds": 20},
        )
        assert not submitted.is_error, submitted.content
        run_id = submitted.structured_content["id"]
        answers = [submitted]
        for tool, arguments in [
            ("get_status", {"id": run_id}),
            ("get_results", {"id": run_id}),
            ("list_orchestrations", {}),
            ("vault_list", {}),
        ]:
            answers.append(await client.call_tool(tool, arguments))
        assert not any(answer.is_error for answer in answers)
        echo = answers[2].structured_content["outputs"]["echo"]
        assert echo["data"]["headers"]["authorization"] == "Bearer ***"
        texts = [answer.model_dump_json() for answer in answers]
        for uri in ("", "/results", "/log", "/summary"):
            read = await client.read_resource(f"orchestration://{run_id}{uri}")
            texts.append(read.model_dump_json())
    for index, text in enumerate(texts):
        assert_absent(text.encode(), f"MCP answer #{index}")
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert_absent(path.read_bytes(), str(path.relative_to(home)))


def test_an_unknown_secret_is_refused_before_anything_runs(home: Path, tmp_path: Path) -> None:
    document = tmp_path / "typo.yaml"
    document.write_text(
        "tasks:\n  - {id: a, type: http, config: {url: 'http://127.0.0.1:1/',"
        " headers: {X-Key: '${vault.API_TOKN}'}}}\n",
        encoding="utf-8",
    )
    ran = cli(home, "run", str(document))
    assert ran.returncode == 2
    assert "unknown secret 'API_TOKN'" in ran.stderr
    assert "did you mean 'API_TOKEN'?" in ran.stderr
    assert "no orchestrations yet" in cli(home, "list").stdout


def test_a_secret_in_a_var_is_refused_before_anything_runs(home: Path, tmp_path: Path) -> None:
    # a var is put in as text: ${vault.NAME} there would be the literal text in a delay's
    # output (or refused when sent), so it is a validation error, in the document's vars and
    # in a var given with the run; nor in a name or description, which are shown as written
    document = tmp_path / "var.yaml"
    document.write_text(
        "vars: {key: '${vault.API_TOKEN}', other: x}\n"
        "tasks:\n  - {id: a, type: delay, config: {value: '${vars.key} ${vars.other}'},\n"
        "      name: 'a ${vault.API_TOKEN}'}\n"
        "name: 'report for ${vault.API_TOKEN}'\n"
        "description: '${vault.SITE_PASSWORD}'\n",
        encoding="utf-8",
    )
    ran = cli(home, "run", str(document), "--var", "other=${vault.SITE_PASSWORD}")
    assert ran.returncode == 2, ran.stdout
    assert "line 1, column 13: vars.key: '${vault.API_TOKEN}' cannot be used in vars" in ran.stderr
    assert "'${vault.SITE_PASSWORD}' cannot be used in the var 'other' given with" in ran.stderr
    assert "line 5, column 7: name: '${vault.API_TOKEN}' cannot be used in a name" in ran.stderr
    assert "description: '${vault.SITE_PASSWORD}' cannot be used in a description" in ran.stderr
    assert "tasks[0].name: '${vault.API_TOKEN}' cannot be used in a name" in ran.stderr
    assert "no orchestrations yet" in cli(home, "list").stdout
