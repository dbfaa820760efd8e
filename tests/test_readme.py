"""README.md tells the truth: its YAML examples validate, its tables match the code (the
configuration table the settings model, the task-type table the runner registry).

Every ```yaml block is run through ``orchestrator validate`` as a child process; a block that
is a list of tasks is validated as ``tasks:`` holding it. A block preceded by the comment
``<!-- fragment -->`` is deliberately incomplete and skipped. Secrets the examples name are put
in the test's vault first, as a user would with ``orchestrator vault set``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import child_env

from multi_task_orchestrator.server import task_types_doc
from multi_task_orchestrator.server.settings_doc import readme_table

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```yaml\n(?P<body>.*?)\n```", re.S)
FRAGMENT = "<!-- fragment -->"


def yaml_blocks() -> list[tuple[int, str]]:
    """(line, text) of every complete YAML block in the README."""
    blocks = []
    for found in BLOCK.finditer(README):
        if found["before"].strip() == FRAGMENT:
            continue
        line = README.count("\n", 0, found.start("body")) + 1
        blocks.append((line, found["body"]))
    return blocks


def as_document(body: str) -> str:
    """A block as a document: a list of tasks goes under ``tasks:``."""
    if body.lstrip().startswith("- "):
        return "tasks:\n" + "".join(f"  {line}\n" for line in body.splitlines())
    return body + "\n"


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=child_env(home),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose vault holds every secret the README's examples name."""
    folder = tmp_path_factory.mktemp("readme")
    names = sorted(set(re.findall(r"\$\{vault\.([A-Za-z_][A-Za-z0-9_]*)\}", README)))
    for name in names:
        stored = run(
            folder,
            "multi_task_orchestrator.server.cli",
            "vault",
            "set",
            name,
            "--hosts",
            "*",
            stdin="value",
        )
        assert stored.returncode == 0, stored.stderr
    return folder


def test_the_readme_has_yaml_examples() -> None:
    assert len(yaml_blocks()) >= 7  # the guide, the format, and one per task type with options


@pytest.mark.parametrize(
    "line, body", yaml_blocks(), ids=[f"line-{line}" for line, _ in yaml_blocks()]
)
def test_every_yaml_example_validates(home: Path, tmp_path: Path, line: int, body: str) -> None:
    path = tmp_path / f"readme_line_{line}.yaml"
    path.write_text(as_document(body), encoding="utf-8")

    checked = run(home, "multi_task_orchestrator.server.cli", "validate", str(path))

    assert checked.returncode == 0, f"README.md line {line}:\n{checked.stdout}{checked.stderr}"
    assert "is valid." in checked.stdout


def test_the_configuration_table_lists_every_setting(tmp_path: Path) -> None:
    printed = run(tmp_path, "multi_task_orchestrator.server.settings_doc")

    assert printed.returncode == 0, printed.stderr
    assert readme_table(README) == printed.stdout.strip(), (
        "README.md's configuration table differs from the settings model: paste the output "
        "of 'python -m multi_task_orchestrator.server.settings_doc' between the settings-table "
        "markers"
    )


def test_the_task_type_table_lists_every_type(tmp_path: Path) -> None:
    printed = run(tmp_path, "multi_task_orchestrator.server.task_types_doc")

    assert printed.returncode == 0, printed.stderr
    listed = readme_table(README, task_types_doc.START, task_types_doc.END)
    assert listed == printed.stdout.strip(), (
        "README.md's task-type table differs from the runner registry: paste the output of "
        "'python -m multi_task_orchestrator.server.task_types_doc' between the "
        "task-types-table markers"
    )
    assert "| `shell` |" in listed and "when enabled: set ORCHESTRATOR_ALLOW_SHELL=1" in listed


def test_every_command_is_in_the_cli_reference(tmp_path: Path) -> None:
    shown = run(tmp_path, "multi_task_orchestrator.server.cli", "--help")
    commands = re.findall(r"^    (\w+)\s", shown.stdout, re.M)
    reference = README[README.index("## CLI") : README.index("## Reports")]

    assert "retry" in commands and "worker" in commands
    missing = [name for name in commands if f"orchestrator {name}" not in reference]
    assert missing == []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_every_link_inside_the_readme_has_its_heading() -> None:
    outside_code = re.sub(r"```.*?```", "", README, flags=re.S)
    anchors = {slug(heading) for heading in re.findall(r"^#+ (.+)$", outside_code, re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", outside_code))

    assert links, "the README links its sections"
    assert sorted(links - anchors) == []
