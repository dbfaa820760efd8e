"""States that say what happened, through the doors a user uses: the ``orchestrator`` CLI as a
child process (skips, Ctrl-C on a fan-out, the critical path of a staged run) and an MCP client
(cancelling one task, retrying the moment a wait says the run finished).
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import cli, run_id_of

# `root` fails; `middle` is skipped because of it, and `leaf` because `middle` was skipped.
SKIP_CHAIN = """\
name: Skip chain
tasks:
  - {id: root, type: delay, config: {fail: network, message: connection refused}}
  - {id: middle, type: delay, dependencies: [root]}
  - {id: leaf, type: delay, dependencies: [middle]}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_task_skipped_after_a_skipped_dependency_says_so_and_names_the_root(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    result = cli(home, "run", write(tmp_path, "skips.yaml", SKIP_CHAIN))

    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "- middle: skipped: dependency root failed (connection refused)" in lines
    assert (
        "- leaf: skipped: dependency middle was skipped "
        "(chain: middle -> root; root failed: connection refused)"
    ) in lines
    results = json.loads(cli(home, "results", run_id_of(result.stdout), "--json").stdout)
    assert results["tasks"]["leaf"]["chain"] == ["middle", "root"]
