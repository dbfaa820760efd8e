"""Large outputs are kept as files in the run folder, not in the database row or in memory."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.state import RunStatus

pytestmark = pytest.mark.anyio

BIG = [{"n": n, "text": "x" * 100} for n in range(100)]  # about 12 KB of JSON


async def test_a_large_output_goes_to_a_file_and_still_flows(home: Path) -> None:
    document = {
        "tasks": [
            {"id": "big", "type": "delay", "config": {"value": BIG}},
            {"id": "small", "type": "delay", "config": {"value": {"ok": True}}},
            {
                "id": "count",
                "type": "data_processing",
                "dependencies": ["big"],
                "config": {"action": "aggregate", "input": "${big.output}", "ops": {"n": "count"}},
            },
        ]
    }
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, output_threshold=1000
    ) as engine:
        run_id = await engine.submit(document)
        snapshot = await engine.wait(run_id, 30, include_outputs=True)
        run_node_output = {t.task_id: t.output for t in snapshot.tasks}
    assert snapshot.status == RunStatus.succeeded
    assert run_node_output["big"] == BIG  # read back from its file
    assert run_node_output["count"] == {"n": 100}  # the reference resolved from the file

    run_dir = Path(snapshot.run_dir or "")
    assert json.loads((run_dir / "outputs" / "big.json").read_text()) == BIG
    with sqlite3.connect(home / "state.db") as db:
        rows = dict(
            db.execute("SELECT task_id, output FROM tasks WHERE orchestration_id = ?", (run_id,))
        )
    assert json.loads(rows["big"]) == {
        "$output_file": "outputs/big.json",
        "bytes": len(json.dumps(BIG)),
    }
    assert json.loads(rows["small"]) == {"ok": True}
    aggregated = json.loads((run_dir / "aggregated_results.json").read_text())
    assert aggregated["tasks"]["big"]["output"]["$output_file"] == "outputs/big.json"

    async with await Engine.open(home / "state.db", home / "runs", resume=False) as reopened:
        again = await reopened.snapshot(run_id, include_outputs=True)
    assert {t.task_id: t.output for t in again.tasks}["big"] == BIG
