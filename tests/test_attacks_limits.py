"""A hostile document or server must not crash or exhaust the process, through ``orchestrator``
run as a subprocess (and the MCP client): deeply nested expressions are refused at validation,
an oversized or endless body is cut off while it streams (the child's peak memory stays
bounded), deeply nested JSON fails its attempt with a class, and ``file_processing`` writes
cannot be steered out of the workspace by a folder swapped for a symbolic link.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_server import LocalServer
from mcp import Client

from server.app import create_server
from server.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEEP = "(" * 1000 + "a" + ")" * 1000


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def orchestrator(
    home: Path, command: str, document: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "doc.yaml"
    path.write_text(document, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    env.update({f"ORCHESTRATOR_{key.upper()}": value for key, value in settings.items()})
    extra = ["--json"] if command == "run" else []
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", command, str(path), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run(home: Path, document: str, **settings: str) -> dict[str, Any]:
    return json.loads(orchestrator(home, "run", document, **settings).stdout)


# --- 14: deeply nested expressions ----------------------------------------------------------

NESTED_EXPRESSIONS = {
    "extract": f"""
tasks:
  - id: t
    type: http
    config: {{url: "http://127.0.0.1:9/x", extract: "{DEEP}"}}
""",
    "paginate.next": f"""
tasks:
  - id: t
    type: http
    config: {{url: "http://127.0.0.1:9/x", paginate: {{next: "{DEEP}"}}}}
""",
    "where": f"""
tasks:
  - id: t
    type: data_processing
    config: {{action: filter, input: [1, 2], where: "{DEEP}"}}
""",
    "reference": f"""
tasks:
  - id: a
    type: delay
    config: {{seconds: 0}}
  - id: t
    type: delay
    dependencies: [a]
    config: {{seconds: "${{{"(" * 900}a.output{")" * 900}}}"}}
""",
    "pipes": """
tasks:
  - id: t
    type: data_processing
    config: {action: filter, input: [1, 2], where: "@ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @"}
""",  # noqa: E501
}


@pytest.mark.parametrize("field", NESTED_EXPRESSIONS)
def test_deeply_nested_expressions_are_refused_at_validation(tmp_path: Path, field: str) -> None:
    done = orchestrator(tmp_path / "home", "validate", NESTED_EXPRESSIONS[field])
    assert done.returncode == 2, done.stdout + done.stderr
    shown = done.stdout + done.stderr
    assert "levels deep" in shown or "operations deep" in shown, shown
    assert "RecursionError" not in shown


@pytest.mark.anyio
async def test_a_deeply_nested_expression_is_a_tool_error_not_an_internal_error(
    tmp_path: Path,
) -> None:
    async with Client(create_server(Settings(home=tmp_path, shutdown_grace=1))) as client:
        result = await client.call_tool(
            "validate_orchestration", {"spec": NESTED_EXPRESSIONS["extract"]}
        )
    text = "\n".join(getattr(block, "text", "") for block in result.content) + str(
        result.structured_content
    )
    assert "levels deep" in text, text
    assert "internal error" not in text.lower()
