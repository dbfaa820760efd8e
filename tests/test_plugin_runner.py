"""A third-party task type: a small distribution declaring the entry point
``multi_task_orchestrator.runners``, installed by pip into a temporary folder, is found by the
``orchestrator`` CLI and the MCP server started with that folder on ``PYTHONPATH`` (so
``importlib.metadata`` sees its dist-info) — and is unknown without it. Its runner declares a
setting, read from ``ORCHESTRATOR_ECHO_UPPER_EXCLAIM`` like every other setting (a bad value is
exit 2 naming it) and listed in the configuration table. Nothing else is edited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import REPO, child_env, cli
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "mto-echo"
version = "0.1.0"

[tool.setuptools]
py-modules = ["mto_echo"]

[project.entry-points."multi_task_orchestrator.runners"]
echo_upper = "mto_echo:RUNNER"
"""

MODULE = '''\
"""A plug-in task type: echoes its text in upper case."""

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig


class EchoUpperConfig(RunnerConfig):
    text: str


class EchoUpperSettings(BaseModel):
    exclaim: int = Field(0, ge=0, le=5, description="exclamation marks added to every echo")


class EchoUpperRunner(Runner[EchoUpperConfig]):
    type_name: ClassVar[str] = "echo_upper"
    aliases: ClassVar[tuple[str, ...]] = ("shout",)
    config_model = EchoUpperConfig
    summary = "Echo a text in upper case."
    example: ClassVar[dict[str, Any]] = {
        "id": "loud", "type": "echo_upper", "config": {"text": "hello"}
    }
    error_classes: ClassVar[frozenset[str]] = frozenset({"echo_refused"})
    settings_model = EchoUpperSettings

    async def run(self, config: EchoUpperConfig, ctx: RunContext) -> Any:
        if config.text == "refuse":
            raise ctx.fail("refused to echo", "echo_refused")
        marks = "!" * self.settings_as(EchoUpperSettings).exclaim
        return {"text": config.text.upper() + marks}


RUNNER = EchoUpperRunner
'''

DOCUMENT = """\
orchestration:
  name: Plug-in
  tasks:
    - id: loud
      type: echo_upper
      config: {text: "${vars.word}"}
      retry: {max_attempts: 2, on: [echo_refused, timeout]}
    - id: louder
      type: SHOUT
      dependencies: [loud]
      config: {text: "${loud.output.text}!"}
  vars: {word: hello}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in distribution, installed by pip into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "mto-echo"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (source / "mto_echo.py").write_text(MODULE, encoding="utf-8")
    target = root / "site"
    subprocess.run(  # build isolation fetches setuptools from the configured index
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(target.glob("mto_echo-0.1.0.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "plugin.yaml"
    path.write_text(DOCUMENT, encoding="utf-8")
    return path


def test_validate_accepts_the_plugin_type_and_its_error_class(
    site: Path, document: Path, tmp_path: Path
) -> None:
    result = cli(tmp_path / "home", "validate", document, PYTHONPATH=str(site))

    assert result.code == 0, result.stdout + result.stderr
    assert "loud" in result.stdout and "louder" in result.stdout


def test_run_gives_the_plugin_output(site: Path, document: Path, tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "run", document, "--json", PYTHONPATH=str(site))

    assert result.code == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["status"] == "succeeded"
    assert results["tasks"]["loud"]["output"] == {"text": "HELLO"}
    assert results["tasks"]["louder"]["output"] == {"text": "HELLO!"}


def test_typos_of_plugin_names_get_a_did_you_mean(site: Path, tmp_path: Path) -> None:
    document = tmp_path / "typo.yaml"
    document.write_text(
        DOCUMENT.replace("type: echo_upper", "type: echo_uper").replace(
            "on: [echo_refused", "on: [echo_refusd"
        ),
        encoding="utf-8",
    )

    result = cli(tmp_path / "home", "validate", document, PYTHONPATH=str(site))

    assert result.code == 2
    assert "unknown task type 'echo_uper'" in result.stderr
    assert "did you mean 'echo_upper'?" in result.stderr
    assert "unknown error class 'echo_refusd'" in result.stderr
    assert "did you mean 'echo_refused'?" in result.stderr


def test_without_the_plugin_its_type_and_error_class_are_refused(
    document: Path, tmp_path: Path
) -> None:
    document.write_text(DOCUMENT.replace("type: echo_upper", "type: echo_uper"), encoding="utf-8")

    result = cli(tmp_path / "home", "validate", document)

    assert result.code == 2
    assert "unknown task type 'echo_uper'; known types: http," in result.stderr
    assert "unknown task type 'SHOUT'" in result.stderr
    assert "unknown error class 'echo_refused'" in result.stderr
    assert "echo_upper" not in result.stderr  # nothing suggests a type that is not installed


def test_the_schema_command_includes_the_plugin_type(site: Path, tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "schema", PYTHONPATH=str(site))

    assert result.code == 0, result.stderr
    schema = json.loads(result.stdout)
    task = schema["$defs"]["TaskSpec"]
    assert {"echo_upper", "shout"} <= set(task["properties"]["type"]["anyOf"][0]["enum"])
    config_of = {
        tuple(branch["if"]["properties"]["type"]["enum"]): branch["then"]["properties"]["config"]
        for branch in task["allOf"]
    }
    assert config_of[("echo_upper", "shout")] == {"$ref": "#/$defs/EchoUpperConfig"}
    assert "echo_refused" in schema["$defs"]["ErrorClass"]["enum"]


@pytest.mark.anyio
async def test_list_task_types_over_mcp_includes_the_plugin_type(
    site: Path, tmp_path: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", "serve"],
        env={"ORCHESTRATOR_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site)},
        cwd=str(REPO),
    )
    with (tmp_path / "server.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("list_task_types", {})
            detail = await client.call_tool("list_task_types", {"type": "shout"})

    listed = {entry["type"]: entry for entry in result.structured_content["task_types"]}
    assert list(listed)[:1] == ["http"]  # built-ins first, in their order
    echo = listed["echo_upper"]
    assert (echo["available"], echo["aliases"], echo["summary"]) == (
        True,
        ["shout"],
        "Echo a text in upper case.",
    )
    assert echo["required"] == ["text"]
    (described,) = detail.structured_content["task_types"]  # found by its alias
    assert described["type"] == "echo_upper"
    assert described["config_schema"]["required"] == ["text"]


@pytest.mark.parametrize(("retry_on", "attempts"), [("[echo_refused]", 2), ("[timeout]", 1)])
def test_a_runner_declared_error_class_is_retried_when_named(
    site: Path, tmp_path: Path, retry_on: str, attempts: int
) -> None:
    document = tmp_path / "refuse.yaml"
    document.write_text(
        "tasks:\n  - id: loud\n    type: echo_upper\n    config: {text: refuse}\n"
        f"    retry: {{max_attempts: 2, initial: 10ms, on: {retry_on}}}\n",
        encoding="utf-8",
    )

    result = cli(tmp_path / "home", "run", document, "--json", PYTHONPATH=str(site))

    assert result.code == 1, result.stderr
    task = json.loads(result.stdout)["tasks"]["loud"]
    assert (task["error_class"], task["attempts"]) == ("echo_refused", attempts)


# --- the plug-in's setting --------------------------------------------------------------------


def test_the_plugin_setting_comes_from_the_environment(
    site: Path, document: Path, tmp_path: Path
) -> None:
    result = cli(
        tmp_path / "home",
        "run",
        document,
        "--json",
        PYTHONPATH=str(site),
        ORCHESTRATOR_ECHO_UPPER_EXCLAIM="2",
    )

    assert result.code == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert tasks["loud"]["output"] == {"text": "HELLO!!"}
    assert tasks["louder"]["output"] == {"text": "HELLO!!!!!"}  # its "!" and two more


@pytest.mark.parametrize("value", ["many", "9"])
def test_a_bad_plugin_setting_is_exit_2_naming_it(
    site: Path, document: Path, tmp_path: Path, value: str
) -> None:
    result = cli(
        tmp_path / "home",
        "run",
        document,
        PYTHONPATH=str(site),
        ORCHESTRATOR_ECHO_UPPER_EXCLAIM=value,
    )

    assert result.code == 2, result.stdout + result.stderr
    assert "invalid setting: ORCHESTRATOR_ECHO_UPPER_EXCLAIM: " in result.stderr
    assert result.stdout == ""


def test_the_configuration_table_lists_the_plugin_setting(site: Path, tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.settings_doc"],
        cwd=REPO,
        env=child_env(tmp_path, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert printed.returncode == 0, printed.stderr
    row = "| `ORCHESTRATOR_ECHO_UPPER_EXCLAIM` | `0` | exclamation marks added to every echo |"
    assert row in printed.stdout.splitlines()
