"""Large outputs are kept as files in the run folder, not in the database row or in memory;
very large ones are serialised off the event loop; a value that only looks like the reference
to such a file is never read as one."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from cli_process import cli

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.outputs import LARGE_VALUES, looks_large
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


def test_an_output_that_looks_like_a_file_reference_is_only_a_value(tmp_path: Path) -> None:
    """A task's output (a web page's JSON, say) shaped like the reference to an output file
    names no file to read: it stays the value it is, outside the run folder or inside it."""
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    (home / "runs" / "secret.json").write_text('{"stolen": true}')
    outside = {"$output_file": "../secret.json", "bytes": 5}
    absolute = {"$output_file": str(home / "runs" / "secret.json"), "bytes": 5}
    inside = {"$output_file": "outputs/b.json", "bytes": 5}
    document = {
        "name": "look-alikes",
        "tasks": [
            {"id": "a", "type": "delay", "config": {"value": outside}},
            {"id": "b", "type": "delay", "config": {"value": absolute}},
            {"id": "c", "type": "delay", "config": {"value": inside}},
            {
                "id": "d",
                "type": "delay",
                "dependencies": ["a", "b", "c"],
                "config": {"value": ["${a.output}", "${b.output}", "${c.output}"]},
            },
        ],
    }
    path = tmp_path / "look-alikes.json"
    path.write_text(json.dumps(document))
    result = cli(home, "run", path, "--json")
    assert result.code == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert [tasks[task]["output"] for task in "abc"] == [outside, absolute, inside]
    assert tasks["d"]["output"] == [outside, absolute, inside]
    assert "stolen" not in result.stdout


def test_an_output_too_large_for_the_event_loop_is_kept_off_it(tmp_path: Path) -> None:
    """An output past ``LARGE_VALUES`` values is masked, serialised and kept on a worker
    thread (``outputs.looks_large``); it comes back whole and flows to the next task (its file
    read on a worker thread), a ``data_processing`` one, which works on such an input on a
    worker thread too."""
    count = LARGE_VALUES + 5_000
    assert looks_large(list(range(count))) and not looks_large(list(range(100)))
    document = {
        "name": "large",
        "tasks": [
            {"id": "big", "type": "delay", "config": {"value": list(range(count))}},
            {
                "id": "sum",
                "type": "data_processing",
                "dependencies": ["big"],
                "config": {"action": "aggregate", "input": "${big.output}", "ops": {"n": "count"}},
            },
        ],
    }
    path = tmp_path / "large.json"
    path.write_text(json.dumps(document))
    home = tmp_path / "home"
    result = cli(home, "run", path, "--json", ORCHESTRATOR_OUTPUT_FILE_BYTES="10000")
    assert result.code == 0, result.stderr
    run_dir = home / "runs" / json.loads(result.stdout)["id"]
    assert (run_dir / "outputs" / "big.json").exists()  # kept as a file, read back for "sum"
    tasks = json.loads(result.stdout)["tasks"]
    assert tasks["big"]["output"] == list(range(count))
    assert tasks["sum"]["output"] == {"n": count}


def test_a_fan_out_over_an_output_kept_as_a_file_reads_it_off_the_event_loop(
    tmp_path: Path,
) -> None:
    """``for_each`` over an output kept as a file (its file read on a worker thread before the
    items are made) gives one item per element; a fan-out over an output whose file is gone
    fails with class ``config``, naming the file, and nothing is left running."""
    items = [{"n": i, "text": "x" * 40} for i in range(60)]
    document = {
        "name": "fan-out over a file",
        "tasks": [
            {"id": "big", "type": "delay", "config": {"value": items}},
            {
                "id": "each",
                "type": "delay",
                "dependencies": ["big"],
                "for_each": "${big.output}",
                "config": {"value": "${item.n}"},
            },
        ],
    }
    path = tmp_path / "fan.json"
    path.write_text(json.dumps(document))
    home = tmp_path / "home"
    result = cli(home, "run", path, "--json", ORCHESTRATOR_OUTPUT_FILE_BYTES="1024")
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (home / "runs" / answer["id"] / "outputs" / "big.json").exists()
    assert answer["tasks"]["each"]["output"] == list(range(60))

    remove = "import glob, os, sys; [os.remove(p) for p in glob.glob(sys.argv[1])]"
    pattern = str(home / "runs" / "*" / "outputs" / "big.json")
    document["tasks"].insert(
        1,
        {
            "id": "rm",
            "type": "shell",
            "dependencies": ["big"],
            "config": {"argv": [sys.executable, "-c", remove, pattern]},
        },
    )
    document["tasks"][2]["dependencies"] = ["rm"]
    path.write_text(json.dumps(document))
    result = cli(
        home,
        "run",
        path,
        "--json",
        ORCHESTRATOR_OUTPUT_FILE_BYTES="1024",
        ORCHESTRATOR_ALLOW_SHELL="1",
    )
    assert result.code == 1, result.stderr
    each = json.loads(result.stdout)["tasks"]["each"]
    assert (each["state"], each["error_class"]) == ("failed", "config")
    assert each["error"].startswith("an output this task uses is gone: its file ")
    assert "big.json" in each["error"]


def test_a_fan_out_whose_item_output_file_is_gone_fails_and_the_run_ends(tmp_path: Path) -> None:
    """The fan-out's own output lists its items' outputs: an item's output kept as a file and
    gone by then (removed by the next item here) fails the fan-out, and the run ends."""
    work = (
        "import glob, os, sys\n"
        "if sys.argv[1] == 'item 0': print('x' * 3000)\n"
        "else: [os.remove(p) for p in glob.glob(sys.argv[2])]\n"
    )
    home = tmp_path / "home"
    gone = str(home / "runs" / "*" / "outputs" / "each_0_.json")
    document = {
        "name": "an item's output gone",
        "tasks": [
            {
                "id": "each",
                "type": "shell",
                "for_each": [0, 1],
                "max_concurrent": 1,
                "config": {"argv": [sys.executable, "-c", work, "item ${item}", gone]},
            },
            {"id": "after", "type": "delay", "dependencies": ["each"], "run_if": "all_done"},
        ],
    }
    path = tmp_path / "gone.json"
    path.write_text(json.dumps(document))
    result = cli(
        home,
        "run",
        path,
        "--json",
        ORCHESTRATOR_OUTPUT_FILE_BYTES="1024",
        ORCHESTRATOR_ALLOW_SHELL="1",
    )
    assert result.code == 1, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert (tasks["each"]["state"], tasks["each"]["error_class"]) == ("failed", "internal")
    assert tasks["each"]["error"].startswith("the outputs of its items cannot be gathered: ")
    assert tasks["after"]["state"] == "succeeded"
