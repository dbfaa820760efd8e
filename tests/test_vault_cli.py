"""The vault's faces: the ``orchestrator vault`` commands and the MCP vault tools.

A canary value goes in through each face; every byte that comes back out (stdout, stderr, the
raw JSON of every MCP response) is searched for it. Most CLI tests call ``main`` in this process
with stdin replaced by the value; one runs the real command with the value on a pipe.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.cli import EXIT_OK, EXIT_USAGE, main
from multi_task_orchestrator.server.cli.parser import build_parser
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault import Vault
from multi_task_orchestrator.vault import keys as vault_keys

REPO = Path(__file__).resolve().parent.parent
CANARY = "canary-7c91e4b0-Qx"
Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ORCHESTRATOR_HOME with no vault key settings; scrypt made cheap."""
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.delenv("ORCHESTRATOR_VAULT_KEY", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_VAULT_PASSPHRASE", raising=False)
    monkeypatch.setattr(vault_keys, "SCRYPT_LOG2_N", 10)
    return home


def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str]:
    """Run the CLI in this process; the exit code and everything it printed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_set_reads_stdin_and_list_never_shows_the_value(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    code, output = run(
        monkeypatch,
        capsys,
        *("vault", "set", "API_TOKEN", "--hosts", "api.example.com,*.example.org"),
        *("--description", "the API token"),
        stdin=CANARY + "\n",
    )
    assert (code, output) == (
        EXIT_OK,
        "stored API_TOKEN (allowed hosts: api.example.com, *.example.org)\n",
    )
    assert Vault.open(cli_home / "vault.db").reveal("API_TOKEN", "api.example.com") == CANARY

    code, output = run(monkeypatch, capsys, "vault", "list")
    assert code == EXIT_OK
    assert output.startswith("API_TOKEN  hosts: api.example.com, *.example.org  updated ")
    assert output.endswith("never used\n    the API token\n")

    code, output = run(monkeypatch, capsys, "vault", "list", "--json")
    [listed] = json.loads(output)
    assert (listed["name"], listed["description"], listed["allowed_hosts"]) == (
        "API_TOKEN",
        "the API token",
        ["api.example.com", "*.example.org"],
    )
    assert set(listed) == {
        "name",
        "description",
        "allowed_hosts",
        "created_at",
        "updated_at",
        "last_used_at",
    }
    assert CANARY not in output


def test_the_real_command_reads_a_pipe(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env |= {"ORCHESTRATOR_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "vault"]
    stored = subprocess.run(
        [*command, "set", "TOKEN", "--hosts", "example.com"],
        input=CANARY.encode(),
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    listed = subprocess.run([*command, "list"], capture_output=True, env=env, cwd=REPO, timeout=60)
    assert (stored.returncode, listed.returncode) == (0, 0)
    assert stored.stdout == b"stored TOKEN (allowed hosts: example.com)\n"
    assert re.fullmatch(
        rb"TOKEN  hosts: example.com  updated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  never used\n",
        listed.stdout,
    )
    for output in (stored.stdout, stored.stderr, listed.stdout, listed.stderr):
        assert CANARY.encode() not in output


def test_set_has_no_way_to_take_the_value_from_argv(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(monkeypatch, capsys, "vault", "set", "TOKEN", CANARY, "--hosts", "example.com")
    assert exited.value.code == EXIT_USAGE
    assert not (cli_home / "vault.db").exists()

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices["vault"]
    vault_set = next(a for a in commands._actions if a.dest == "vault_command").choices["set"]
    assert {action.dest for action in vault_set._actions} == {
        "help",
        "name",
        "hosts",
        "description",
    }


def test_set_requires_hosts_with_an_example(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    code, output = run(monkeypatch, capsys, "vault", "set", "TOKEN", stdin=CANARY)
    assert (code, output) == (
        EXIT_USAGE,
        "error: --hosts is required: name the hosts the secret may be sent to, e.g. --hosts "
        "api.example.com,*.example.com (or --hosts '*' for any host)\n",
    )


def test_set_errors_are_clear(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    code, output = run(
        monkeypatch, capsys, "vault", "set", "TOKEN", "--hosts", "https://x.com", stdin=CANARY
    )
    assert code == EXIT_USAGE
    assert output == (
        "error: allowed host 'https://x.com' looks like a URL or path; give a host name only, "
        "e.g. api.example.com\n"
    )
    code, output = run(monkeypatch, capsys, "vault", "set", "TOKEN", "--hosts", "x.com", stdin="")
    assert (code, output) == (
        EXIT_USAGE,
        "error: secret 'TOKEN' has an empty value; give the value to store\n",
    )


def test_rm(cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    run(monkeypatch, capsys, "vault", "set", "API_TOKEN", "--hosts", "x.com", stdin=CANARY)
    code, output = run(monkeypatch, capsys, "vault", "rm", "API_TOKN")
    assert (code, output) == (
        EXIT_USAGE,
        "error: no secret named 'API_TOKN' in the vault; did you mean 'API_TOKEN'?\n",
    )
    code, output = run(monkeypatch, capsys, "vault", "rm", "API_TOKEN")
    assert (code, output) == (EXIT_OK, "deleted API_TOKEN\n")
    code, output = run(monkeypatch, capsys, "vault", "list")
    assert output == "no secrets yet; store one with 'orchestrator vault set NAME --hosts HOST'\n"


def test_rotate_the_key_file_then_to_a_passphrase(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    run(monkeypatch, capsys, "vault", "set", "TOKEN", "--hosts", "x.com", stdin=CANARY)
    old_key = (cli_home / "vault.key").read_bytes()
    code, output = run(monkeypatch, capsys, "vault", "rotate")
    assert (code, output) == (
        EXIT_OK,
        f"re-encrypted 1 secret(s) under a new key (the key file {cli_home / 'vault.key'})\n",
    )
    assert (cli_home / "vault.key").read_bytes() != old_key

    code, output = run(
        monkeypatch, capsys, "vault", "rotate", "--new-passphrase", stdin="correct horse\n"
    )
    assert (code, output) == (
        EXIT_OK,
        "re-encrypted 1 secret(s) under the new passphrase; from now on set "
        "ORCHESTRATOR_VAULT_PASSPHRASE to it\n",
    )
    code, output = run(monkeypatch, capsys, "vault", "list")
    assert code == EXIT_USAGE
    assert output == (
        f"error: cannot unlock {cli_home / 'vault.db'}: this vault is locked with a passphrase; "
        "set ORCHESTRATOR_VAULT_PASSPHRASE\n"
    )
    monkeypatch.setenv("ORCHESTRATOR_VAULT_PASSPHRASE", "correct horse")
    code, output = run(monkeypatch, capsys, "vault", "list")
    assert code == EXIT_OK
    assert output.startswith("TOKEN  hosts: x.com")
    monkeypatch.setenv("ORCHESTRATOR_VAULT_PASSPHRASE", "wrong horse")
    code, output = run(monkeypatch, capsys, "vault", "list")
    assert (code, output) == (
        EXIT_USAGE,
        f"error: cannot unlock {cli_home / 'vault.db'} with ORCHESTRATOR_VAULT_PASSPHRASE: wrong "
        "passphrase or a different vault. The vault file was left as it is.\n",
    )


ENV_FILE = f"""\
# credentials for the staging site
export API_TOKEN={CANARY}
PASSWORD="two words # not a comment"
QUOTED='$literal ${{NOT_EXPANDED}}'
MULTI="line one
line two"
"""


def test_import_a_env_file(
    cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    env_file = tmp_path / "staging.env"
    env_file.write_text(ENV_FILE)
    code, output = run(
        monkeypatch, capsys, "vault", "import", str(env_file), "--hosts", "staging.example.com"
    )
    assert (code, output) == (
        EXIT_OK,
        "imported 4 secret(s) for staging.example.com: API_TOKEN, PASSWORD, QUOTED, MULTI\n",
    )
    vault = Vault.open(cli_home / "vault.db")
    revealed = {name: vault.reveal(name, "staging.example.com") for name in sorted(vault.names())}
    assert revealed == {
        "API_TOKEN": CANARY,
        "MULTI": "line one\nline two",
        "PASSWORD": "two words # not a comment",
        "QUOTED": "$literal ${NOT_EXPANDED}",
    }


def test_import_reports_every_bad_line_and_stores_nothing(
    cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text(f"GOOD={CANARY}\nEMPTY=\nthis is {CANARY} not a binding\nBARE\n")
    code, output = run(monkeypatch, capsys, "vault", "import", str(env_file), "--hosts", "x.com")
    assert (code, output) == (
        EXIT_USAGE,
        f"error: cannot import {env_file}: line 2: EMPTY has an empty value; line 3: not a "
        "NAME=VALUE line; line 4: BARE has no '=' and no value; nothing was stored\n",
    )
    assert not (cli_home / "vault.db").exists()
    code, output = run(monkeypatch, capsys, "vault", "import", str(env_file))
    assert code == EXIT_USAGE
    assert output.startswith("error: --hosts is required")


class Endless(io.TextIOBase):
    """A stdin that never ends, as ``< /dev/zero`` or ``yes |`` give."""

    def read(self, size: int | None = -1) -> str:
        assert size is not None and size >= 0, "read to the end of an endless stdin"
        return "x" * size


def test_set_reads_no_more_of_stdin_than_a_value_may_hold(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    """stdin was read to its end: one that never ends filled the memory."""
    monkeypatch.setattr(sys, "stdin", Endless())
    code = main(["vault", "set", "TOKEN", "--hosts", "x.com"])

    assert (code, capsys.readouterr().err) == (
        EXIT_USAGE,
        "error: stdin holds more than 64 KiB; a value may be at most that; nothing was changed\n",
    )
    assert not Vault.open(cli_home / "vault.db").names()


def test_import_reads_no_further_than_a_env_file_can_be(
    cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    """/dev/zero (a file that never ends) was read until the memory ran out; a file with
    Windows line ends still gives values without a carriage return."""
    if not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    code, output = run(monkeypatch, capsys, "vault", "import", "/dev/zero", "--hosts", "x.com")
    assert (code, output) == (
        EXIT_USAGE,
        "error: /dev/zero is over 4 MB, more than a .env file of secrets holds; import a file "
        "of NAME=VALUE lines\n",
    )
    env_file = tmp_path / "windows.env"
    env_file.write_bytes(b"FIRST=one\r\nSECOND=two\r\n")
    code, output = run(monkeypatch, capsys, "vault", "import", str(env_file), "--hosts", "x.com")
    assert (code, output) == (EXIT_OK, "imported 2 secret(s) for x.com: FIRST, SECOND\n")
    vault = Vault.open(cli_home / "vault.db")
    assert [vault.reveal(name, "x.com") for name in ("FIRST", "SECOND")] == ["one", "two"]


# --- MCP tools ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_mcp_tools_never_return_the_value(cli_home: Path) -> None:
    responses: list[str] = []
    async with Client(create_server(Settings(home=cli_home))) as client:
        listed = await client.list_tools()
        responses.append(listed.model_dump_json())
        tools = {tool.name: tool for tool in listed.tools}
        assert tools["vault_set"].input_schema["required"] == ["name", "value", "allowed_hosts"]
        assert "never get the value back" in (tools["vault_set"].description or "")
        assert "only to the allowed hosts" in (tools["vault_set"].description or "")

        stored = await client.call_tool(
            "vault_set",
            {
                "name": "API_TOKEN",
                "value": CANARY,
                "allowed_hosts": ["api.example.com"],
                "description": "the API",
            },
        )
        responses.append(stored.model_dump_json())
        assert not stored.is_error
        assert stored.structured_content is not None
        assert stored.structured_content["secret"]["name"] == "API_TOKEN"
        assert stored.structured_content["secret"]["allowed_hosts"] == ["api.example.com"]

        too_long = CANARY * 5000
        failures = [
            {"name": "API_TOKEN", "value": CANARY, "allowed_hosts": []},
            {"name": "API_TOKEN", "value": CANARY, "allowed_hosts": ["https://api.example.com"]},
            {"name": "bad name", "value": CANARY, "allowed_hosts": ["*"]},
            {"name": "LONG", "value": too_long, "allowed_hosts": ["*"]},
        ]
        for arguments in failures:
            failed = await client.call_tool("vault_set", arguments)
            responses.append(failed.model_dump_json())
            assert failed.is_error
        blank_hosts = await client.call_tool(
            "vault_set", {"name": "B", "value": CANARY, "allowed_hosts": ["", " "]}
        )
        long_text = await client.call_tool(
            "vault_set",
            {"name": "D", "value": CANARY, "allowed_hosts": ["*"], "description": "x" * 1001},
        )
        responses += [blank_hosts.model_dump_json(), long_text.model_dump_json()]
        assert blank_hosts.content[0].text.endswith(": an allowed host cannot be empty")  # type: ignore[union-attr]
        assert "at most 1,000" in long_text.content[0].text  # type: ignore[union-attr]

        secrets = await client.call_tool("vault_list", {})
        responses.append(secrets.model_dump_json())
        assert secrets.structured_content is not None
        for field in ("created_at", "updated_at"):
            stamp = secrets.structured_content["secrets"][0][field]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
        assert secrets.structured_content == {
            "secrets": [
                {
                    "name": "API_TOKEN",
                    "description": "the API",
                    "allowed_hosts": ["api.example.com"],
                    "created_at": secrets.structured_content["secrets"][0]["created_at"],
                    "updated_at": secrets.structured_content["secrets"][0]["updated_at"],
                    "last_used_at": None,
                }
            ]
        }

        unknown = await client.call_tool("vault_delete", {"name": "API_TOKN"})
        responses.append(unknown.model_dump_json())
        assert unknown.is_error
        assert "did you mean 'API_TOKEN'" in unknown.content[0].text  # type: ignore[union-attr]

        deleted = await client.call_tool("vault_delete", {"name": "API_TOKEN"})
        responses.append(deleted.model_dump_json())
        assert deleted.structured_content == {"deleted": "API_TOKEN"}

        empty = await client.call_tool("vault_list", {})
        responses.append(empty.model_dump_json())
        assert empty.structured_content == {"secrets": []}

    assert len(responses) == 12
    for raw in responses:
        assert CANARY not in raw
    assert CANARY.encode() not in (cli_home / "vault.db").read_bytes()
