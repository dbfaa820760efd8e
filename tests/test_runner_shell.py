"""The ``shell`` runner through a real engine: off by default, argv, cwd, a scrubbed environment,
bounded output, timeouts that leave no process behind, exit codes and secrets in env.

Commands are the test's own Python interpreter, so they behave the same on every machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli
from cryptography.fernet import Fernet

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.runners.shell import ShellSettings, scrubbed_environment
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.server.build import build_engine
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault.resolver import VaultResolver
from multi_task_orchestrator.vault.store import Vault

pytestmark = pytest.mark.anyio

PYTHON = sys.executable


@pytest.fixture
async def shell_engine(home: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, runner_settings={"shell": {"allow": True}}
    ) as opened:
        opened.workspace.mkdir(parents=True, exist_ok=True)
        yield opened


def shell(task_id: str, *code: str, **config: Any) -> dict[str, Any]:
    """A task running ``python -c CODE`` (or the argv given in config)."""
    config.setdefault("argv", [PYTHON, "-c", "\n".join(code)])
    return {"id": task_id, "type": "shell", "config": config, "retry": {"max_attempts": 1}}


async def run_one(engine: Engine, task: dict[str, Any]) -> TaskSnapshot:
    snapshot = await run(engine, task)
    (only,) = snapshot.tasks
    return only


async def run(engine: Engine, *tasks: dict[str, Any]) -> RunSnapshot:
    run_id = await engine.submit({"tasks": list(tasks)})
    snapshot = await engine.wait(run_id, 30, include_outputs=True)
    assert snapshot.status.terminal
    return snapshot


# --- on and off -------------------------------------------------------------------------------


async def test_off_by_default_the_document_is_refused_naming_the_setting(engine: Engine) -> None:
    validation = engine.validate({"tasks": [shell("hello", "print(1)")]}, require_runners=True)
    assert [(issue.message, issue.loc) for issue in validation.errors] == [
        (
            "task type 'shell' is disabled: set ORCHESTRATOR_ALLOW_SHELL=1 to allow it",
            ("tasks", 0, "type"),
        )
    ]
    assert "shell" not in engine.available_types


async def test_the_setting_reaches_the_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ALLOW_SHELL", "1")
    monkeypatch.setenv("ORCHESTRATOR_MAX_DOCUMENT_BYTES", "2048")
    options = Settings().engine_options()
    assert (options["runner_settings"]["shell"], options["max_document_bytes"]) == (
        ShellSettings(allow=True),
        2048,
    )
    async with build_engine(Settings(home=tmp_path / "on"), vault="none") as built:
        assert "shell" in built.engine.available_types
        assert built.engine.disabled_types == {}
    monkeypatch.delenv("ORCHESTRATOR_ALLOW_SHELL")
    assert Settings().engine_options()["runner_settings"]["shell"] == ShellSettings(allow=False)
    async with build_engine(Settings(home=tmp_path / "off"), vault="none") as built:
        assert "shell" not in built.engine.available_types
        assert built.engine.disabled_types == {
            "shell": "set ORCHESTRATOR_ALLOW_SHELL=1 to allow it"
        }


async def test_argv_runs_and_gets_stdin(shell_engine: Engine) -> None:
    code = "import sys; print(sys.stdin.read().upper())"
    task = await run_one(shell_engine, shell("upper", code, stdin="hello"))
    assert task.state == TaskState.succeeded
    assert task.output == {"exit_code": 0, "stdout": "HELLO\n", "stderr": "", "truncated": False}


async def test_arguments_are_not_interpreted_by_a_shell(shell_engine: Engine) -> None:
    code = "import sys; print(sys.argv[1:])"
    task = await run_one(
        shell_engine, shell("args", argv=[PYTHON, "-c", code, "$HOME", "a b", "; rm -rf /"])
    )
    assert task.output["stdout"] == "['$HOME', 'a b', '; rm -rf /']\n"


async def test_config_is_checked_at_validation(shell_engine: Engine) -> None:
    bad = [
        shell("empty", argv=[]),
        shell("bad_env", "pass", env={"1X": "y"}),
        shell("shell_string", "pass", command="ls | wc"),
    ]
    validation = shell_engine.validate({"tasks": bad})
    messages = [(issue.loc[:2], issue.message) for issue in validation.errors]
    assert [loc for loc, _ in messages] == [("tasks", 0), ("tasks", 1), ("tasks", 2)]
    assert "at least 1 item" in messages[0][1]
    assert "'1X' is not an environment variable name" in messages[1][1]
    assert messages[2][1] == "unknown field 'command'"


async def test_a_secret_in_argv_is_refused_before_anything_runs(shell_engine: Engine) -> None:
    # the runner reveals secrets only in env and stdin, so validation refuses one in argv
    result = shell_engine.validate({"tasks": [shell("leaky", argv=["echo", "${vault.TOKEN}"])]})
    (issue,) = result.errors
    assert issue.path == "tasks[0].config.argv[1]"
    assert issue.message == (
        "'${vault.TOKEN}' cannot be used in config.argv of a shell task: shell reveals secrets "
        "only in env, stdin"
    )
    assert issue.hint == "use it in env or stdin instead"


# --- the working folder --------------------------------------------------------------------------


async def test_cwd_inside_the_workspace(shell_engine: Engine) -> None:
    (shell_engine.workspace / "sub" / "dir").mkdir(parents=True)
    task = await run_one(
        shell_engine, shell("where", "import os; print(os.getcwd())", cwd="sub/dir")
    )
    assert task.output["stdout"].strip() == str((shell_engine.workspace / "sub/dir").resolve())
    default = await run_one(shell_engine, shell("root", "import os; print(os.getcwd())"))
    assert default.output["stdout"].strip() == str(shell_engine.workspace.resolve())


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        ("../", "refused cwd '../': '..' is not allowed"),
        ("/etc", "refused cwd '/etc': an absolute path outside the workspace"),
        ("missing", "cwd 'missing' is not a folder in the workspace"),
    ],
)
async def test_cwd_escapes_are_refused(shell_engine: Engine, cwd: str, expected: str) -> None:
    task = await run_one(shell_engine, shell("escape", "print('ran')", cwd=cwd))
    assert task.state == TaskState.failed
    assert task.error_class == "config"
    assert task.error is not None and task.error.startswith(expected)


async def test_cwd_through_a_symbolic_link_out_is_refused(
    shell_engine: Engine, tmp_path: Path
) -> None:
    (shell_engine.workspace / "out").symlink_to(tmp_path)
    task = await run_one(shell_engine, shell("escape", "print('ran')", cwd="out"))
    assert task.error_class == "config"
    assert "a symbolic link leads out of the workspace" in (task.error or "")


# --- the environment -----------------------------------------------------------------------------


async def test_the_environment_is_scrubbed(
    shell_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_FAKE_TOKEN", "canary-7f3a9")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-aws")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    task = await run_one(
        shell_engine,
        shell("env", "import json, os; print(json.dumps(dict(os.environ)))", env={"EXTRA": "x"}),
    )
    seen = json.loads(task.output["stdout"])
    assert "canary" not in task.output["stdout"]
    assert seen["EXTRA"] == "x"
    assert seen["LC_ALL"] == "C.UTF-8"
    assert seen["PATH"] == os.environ["PATH"]
    # whatever Python itself sets at start-up (e.g. LC_CTYPE coercion) aside, nothing else
    assert set(seen) - {"LC_CTYPE"} <= {"PATH", "HOME", "LANG", "TMPDIR", "LC_ALL", "EXTRA"}


def test_scrubbed_environment_keeps_only_the_listed_variables() -> None:
    given = {
        "PATH": "/bin",
        "HOME": "/home/me",
        "LANG": "C",
        "LC_TIME": "C",
        "TMPDIR": "/tmp",
        "ORCHESTRATOR_VAULT_KEY": "k",
        "SSH_AUTH_SOCK": "/s",
        "PYTHONPATH": "/p",
    }
    assert scrubbed_environment(given) == {
        "PATH": "/bin",
        "HOME": "/home/me",
        "LANG": "C",
        "LC_TIME": "C",
        "TMPDIR": "/tmp",
    }
    assert scrubbed_environment({}) == {"PATH": os.defpath}


async def test_secrets_in_env_need_a_secret_allowed_for_any_host(home: Path) -> None:
    vault = Vault.open(home / "vault.db", key=Fernet.generate_key().decode())
    vault.set("ANY_TOKEN", "s3cret-any", allowed_hosts=["*"])
    vault.set("API_TOKEN", "s3cret-api", allowed_hosts=["api.example.com"])
    async with await Engine.open(
        home / "state.db",
        home / "runs",
        resume=False,
        runner_settings={"shell": {"allow": True}},
        secrets=VaultResolver(vault),
    ) as engine:
        engine.workspace.mkdir(parents=True, exist_ok=True)
        code = "import os; print(os.environ['TOKEN'] == 's3cret-any', os.environ['TOKEN'])"
        snapshot = await run(
            engine,
            shell("allowed", code, env={"TOKEN": "${vault.ANY_TOKEN}"}),
            shell("bound", "print(1)", env={"TOKEN": "${vault.API_TOKEN}"}),
        )
    tasks = {task.task_id: task for task in snapshot.tasks}
    assert tasks["allowed"].output["stdout"] == "True ***\n"  # and redacted in the output
    assert tasks["bound"].state == TaskState.failed
    assert tasks["bound"].error_class == "config"
    assert "API_TOKEN" in (tasks["bound"].error or "")
    assert "s3cret" not in json.dumps(snapshot.model_dump(mode="json"))


def test_no_part_of_a_secret_survives_the_cut_of_the_output_or_of_an_error(
    tmp_path: Path,
) -> None:
    # the secret straddles max_output's cut of stdout, and the start of the 500-character
    # excerpt of stderr in the error: each text is masked before it is cut
    secret = "sh-canary-5e0b7d2c9a41f386"
    home = tmp_path / "home"
    vault = Vault.open(home / "vault.db")
    vault.set("ANY_TOKEN", secret, allowed_hosts=["*"])
    vault.close()
    cut = "import os, sys; sys.stdout.write(os.environ['T'])"
    excerpt = "import os, sys; sys.stderr.write(os.environ['T'] + '0' * 490); sys.exit(3)"
    document = tmp_path / "shell.yaml"
    document.write_text(
        json.dumps(
            {
                "tasks": [
                    shell("cut", cut, env={"T": "${vault.ANY_TOKEN}"}, max_output=20),
                    shell("excerpt", excerpt, env={"T": "${vault.ANY_TOKEN}"}),
                ]
            }
        ),
        encoding="utf-8",
    )
    ran = cli(home, "run", document, "--json", ORCHESTRATOR_ALLOW_SHELL="1")
    tasks = json.loads(ran.stdout)["tasks"]
    assert tasks["cut"]["output"]["stdout"] == "***", tasks["cut"]
    assert tasks["cut"]["output"]["truncated"] is True
    assert tasks["excerpt"]["error"].endswith("(expected 0): ***" + "0" * 490), tasks["excerpt"]
    pieces = [secret[start : start + 8] for start in range(len(secret) - 7)]
    files = [path.read_bytes() for path in home.rglob("*") if path.is_file()]
    for piece in pieces:
        assert piece not in ran.stdout + ran.stderr, piece
        assert not any(piece.encode() in data for data in files), piece


# --- output, exit codes, timeouts ----------------------------------------------------------------


async def test_output_is_bounded(shell_engine: Engine) -> None:
    code = "import sys; sys.stdout.write('x' * 300_000); sys.stderr.write('e' * 10)"
    snapshot = await run(shell_engine, shell("loud", code, max_output=1000))
    (task,) = snapshot.tasks
    assert task.state == TaskState.succeeded
    assert task.output == {
        "exit_code": 0,
        "stdout": "x" * 1000,
        "stderr": "e" * 10,
        "truncated": True,
    }
    events = await shell_engine.events(snapshot.id)
    assert any("299,000 bytes of stdout" in event.message for event in events)


async def test_an_unexpected_exit_code_fails_with_an_excerpt(shell_engine: Engine) -> None:
    code = "import sys; print('partial'); sys.stderr.write('boom: disk full'); sys.exit(3)"
    snapshot = await run(
        shell_engine,
        shell("fails", code),
        shell("expected", code, expect_exit=[0, 3]),
        shell("missing", argv=["no-such-command-anywhere"]),
    )
    tasks = {task.task_id: task for task in snapshot.tasks}
    assert snapshot.status == RunStatus.failed
    assert tasks["fails"].error_class == "error"
    assert tasks["fails"].error == f"{PYTHON} exited with code 3 (expected 0): boom: disk full"
    assert tasks["expected"].state == TaskState.succeeded
    assert tasks["expected"].output["exit_code"] == 3
    assert tasks["missing"].error_class == "config"
    assert (tasks["missing"].error or "").startswith("command 'no-such-command-anywhere' not found")


async def test_a_timeout_kills_the_whole_process_group(shell_engine: Engine) -> None:
    pids = shell_engine.workspace / "pids.txt"
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    task = await run_one(shell_engine, shell("sleepy", code, timeout="1s"))
    assert task.state == TaskState.failed
    assert task.error_class == "timeout"
    assert task.error == (f"{PYTHON} timed out after 1s; it and its child processes were stopped")
    assert [alive(int(pid)) for pid in pids.read_text().split()] == [False, False]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    for _ in range(100):  # the kernel needs a moment to tear a killed process down
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True
