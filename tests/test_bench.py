"""The benchmark suite still runs: ``python -m bench --quick`` prints every row and its JSON.

Tiny sizes and no timing assertions; this only keeps the suite working. W6 (Chromium) is shown
as skipped to keep the test fast; the full run measures it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    finished = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--quick", "--markdown"),
            *("--skip", "W6", "--json", str(output)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["quick"] is True
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10"]
    assert rows.pop("W6")["details"] == {"skipped": True}
    assert all(row["passed"] in (True, False) for row in rows.values())
    for row_id in ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10"):
        assert f"│ {row_id} " in finished.stdout
        assert f"\n| {row_id} | " in finished.stdout  # the Markdown table (--markdown)
    assert "| W6 | skipped (--skip) |  |  |  |  | — |" in finished.stdout


def test_unknown_workload_is_named() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "W11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert (
        "unknown workload(s) W11; choose from W1, W2, W3, W4, W5, W6, W7, W8, W9, W10"
        in finished.stderr
    )
