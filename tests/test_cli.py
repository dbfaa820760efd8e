"""The ``orchestrator`` command end to end: each test runs the real CLI in a child process.

Every child gets its own ``ORCHESTRATOR_HOME`` (a temporary folder) and runs from the repository
root, so ``examples/quickstart.yaml`` resolves. Runs whose results several tests read are made
once per module; each child process costs about half a second.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cli_process import Result, child_env, cli, home_with_secrets, kill_if_running, start_cli

from multi_task_orchestrator.engine.document.building import build
from multi_task_orchestrator.engine.document.loader import load_file, load_mapping
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.display import render_status
from multi_task_orchestrator.engine.state import RunSnapshot

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = "examples/quickstart.yaml"
OUTPUT_FILES = ("aggregated_results.json", "execution_log.txt", "summary.txt")
NO_RUNS = "no orchestrations yet"

# The seed's "Task Definition Format" example, verbatim (multi-task-orchestrator.md).
SEED = (Path(__file__).parent / "fixtures" / "seed_example.yaml").read_text(encoding="utf-8")

SEED_FIXED = SEED.replace("${merged_content}", "${merge_content.output}")

# Three tasks that can all run at once, each echoing the document's vars.
PARALLEL = """\
orchestration:
  name: Parallel
  max_concurrent: 3
  vars: {count: 1, label: default}
  tasks:
    - id: one
      type: delay
      config: {seconds: 0.3, value: {count: "${vars.count}", label: "${vars.label}"}}
    - id: two
      type: delay
      config: {seconds: 0.3}
    - id: three
      type: delay
      config: {seconds: 0.3}
"""

FAILING = """\
orchestration:
  name: Failing
  tasks:
    - id: fine
      type: delay
      config: {seconds: 0}
    - id: boom
      type: delay
      config: {seconds: 0, fail: error, message: "the disk is full"}
"""

SLOW = """\
orchestration:
  name: Slow
  tasks:
    - id: wait
      type: delay
      config: {seconds: 10}
"""

# Documents the CLI must refuse with exit code 2, and what the error message must say.
BAD_DOCUMENTS = {
    "malformed": (
        "orchestration:\n  tasks:\n    - id: a\n      type: delay\n      config: {seconds: 0\n"
        "    - id: b\n",
        ["line 6, column 9: invalid YAML"],
    ),
    "wrong_types": (
        "orchestration:\n  max_concurrent: lots\n  tasks:\n    - id: a\n      type: delay\n"
        "      priority: high\n",
        [
            "line 2, column 19: max_concurrent: Input should be a valid integer",
            "line 6, column 17: tasks[0].priority: Input should be a valid integer",
        ],
    ),
    "cycle": (
        "tasks:\n  - id: a\n    type: delay\n    dependencies: [b]\n"
        "  - id: b\n    type: delay\n    dependencies: [a]\n",
        ["dependency cycle: a -> b -> a"],
    ),
    "unknown_dependency": (
        "tasks:\n  - id: fetch_data\n    type: delay\n"
        "  - id: report\n    type: delay\n    dependencies: [fetch_dta]\n",
        [
            "line 6, column 20: tasks[1].dependencies[0]: unknown dependency 'fetch_dta'",
            "did you mean 'fetch_data'?",
        ],
    ),
    "several": (
        "tasks:\n  - id: a\n    type: delay\n    dependencies: [b]\n"
        "  - id: b\n    type: delay\n    dependencies: [a]\n"
        "  - id: c\n    type: delay\n    dependencies: [nothere]\n"
        "  - id: d\n    type: teleport\n",
        [
            "has 3 problem(s)",
            "dependency cycle: a -> b -> a",
            "unknown dependency 'nothere'",
            "line 12, column 11: tasks[3].type: unknown task type 'teleport'",
        ],
    ),
    "zero_time_limits": (  # would time out everything at once
        "timeout: 0\ntasks:\n  - {id: a, type: delay, timeout: 0s}\n",
        [
            "line 1, column 10: timeout: a time limit must be above zero (give one such as 30s",
            "line 3, column 35: tasks[0].timeout: a time limit must be above zero",
        ],
    ),
    "shapes": (  # each said in words, not as pydantic's union and pattern errors
        "tasks:\n  - {id: 1st, type: delay, for_each: 5}\n  - {id: b, type: delay, needs: [x y]}\n",
        [
            "line 2, column 10: tasks[0].id: '1st' is not a valid task id (use letters, digits",
            "line 2, column 38: tasks[0].for_each: for_each must be a list or a reference to "
            "one, not int (e.g. for_each: [a, b, c]",
            "line 3, column 34: tasks[1].needs[0]: 'x y' is not a valid task id",
        ],
    ),
    "tasks_not_a_list": (
        "tasks: {id: a, type: delay}\n",
        ["line 1, column 8: tasks: tasks must be a list of tasks, not a mapping (start each"],
    ),
    "no_tasks": (  # was pydantic's "List should have at least 1 item after validation, not 0"
        "name: nothing\ntasks: []\n",
        ["line 2, column 8: tasks: tasks is empty: an orchestration needs at least one task (e.g."],
    ),
    "outside_the_wrapper": (  # was: 'tasks' is required, unknown field 'orchestration'
        "orchestration:\n  tasks: [{id: a, type: delay}]\nmode: sequential\n",
        [
            "line 3, column 7: mode: 'mode' is outside orchestration: (move it into "
            "orchestration:, where the other fields are, or leave the wrapper out)",
            "has 1 problem(s)",
        ],
    ),
    "a_task_and_its_config": (  # the config's problem was listed only once the task's was fixed
        "tasks:\n  - id: a\n    type: delay\n    prority: 2\n    config: {seconds: 1, valeu: 3}\n",
        [
            "has 2 problem(s)",
            "line 4, column 14: tasks[0].prority: unknown field 'prority' (did you mean 'prio",
            "line 5, column 33: tasks[0].config.valeu: unknown field 'valeu' (did you mean 'val",
        ],
    ),
    "two_yaml_documents": (  # was "invalid YAML: but found another document expected a ..."
        "tasks: [{id: a, type: delay}]\n---\ntasks: [{id: b, type: delay}]\n",
        [
            "line 2, column 1: the text holds more than one YAML document; an orchestration is "
            "one (remove this '---' and what follows it, or put each document in its own file)"
        ],
    ),
    "missing_file": (None, ["no such file: "]),
}


def run_id_of(summary: str) -> str:
    match = re.search(r"/runs/(orch-[0-9a-f]+)/aggregated_results\.json", summary)
    assert match, summary
    return match.group(1)


# --- one quickstart run, read by several tests ----------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def quickstart(home: Path) -> Result:
    return cli(home, "run", QUICKSTART)


@pytest.fixture(scope="module")
def quickstart_id(quickstart: Result) -> str:
    return run_id_of(quickstart.stdout)


def test_run_quickstart_prints_the_summary_and_writes_three_files(
    home: Path, quickstart: Result, quickstart_id: str
) -> None:
    assert quickstart.code == 0, quickstart.stderr
    run_dir = home / "runs" / quickstart_id
    summary = quickstart.stdout.splitlines()
    assert summary[0] == "ORCHESTRATION COMPLETE"
    assert "Tasks:      10 total" in summary
    assert "Success:    10 (100%)" in summary
    assert "Failed:     0 (0%)" in summary
    outputs = summary[summary.index("OUTPUTS:") + 1 : summary.index("OUTPUTS:") + 4]
    assert outputs == [f"- {run_dir / name}" for name in OUTPUT_FILES]
    assert all((run_dir / name).is_file() for name in OUTPUT_FILES)

    results = json.loads((run_dir / "aggregated_results.json").read_text(encoding="utf-8"))
    assert results["status"] == "succeeded"
    assert {task["state"] for task in results["tasks"].values()} == {"succeeded"}
    assert len(results["tasks"]) == 10
    assert results["tasks"]["collect_beta"]["attempts"] == 2
    # it failed once and then succeeded: the earlier attempt's error is the log's, not its own
    assert results["tasks"]["collect_beta"]["error"] is None
    assert results["tasks"]["collect_beta"]["error_class"] is None
    checks = results["tasks"]["check_each"]["output"]
    assert [check["title"] for check in checks] == [
        "Orchestration 101",
        "Retries done right",
        "Fan-out patterns",
        "Rate limits",
    ]


def test_run_prints_the_progress_tree_on_stderr_when_not_a_terminal(quickstart: Result) -> None:
    progress = quickstart.stderr.splitlines()
    assert progress[0] == "[████████████████████] 100% Complete"
    assert progress[1].startswith("10/10 done · ")
    assert progress[2].startswith("├─ Source alpha: ✓ Complete (")
    assert "│  └─ Check article[3]: ✓ Complete (" in quickstart.stderr
    assert progress[-1].startswith("└─ Word statistics: ✓ Complete (")


def test_list_shows_the_run(home: Path, quickstart_id: str) -> None:
    listing = cli(home, "list")

    assert listing.code == 0
    assert re.fullmatch(
        rf"{quickstart_id}  succeeded  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  Quickstart\n",
        listing.stdout,
    )


def test_list_and_status_json_give_times_as_iso_utc(home: Path, quickstart_id: str) -> None:
    """One form of a timestamp for users, as ``results --json`` and the MCP tools give them
    (``list --json`` and ``status --json`` gave seconds since 1970)."""
    listed = json.loads(cli(home, "list", "--json").stdout)
    status = json.loads(cli(home, "status", quickstart_id, "--json").stdout)

    iso_utc = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    times = [listed[0]["created_at"], listed[0]["finished_at"]]
    times += [status[key] for key in ("created_at", "started_at", "finished_at")]
    times += [task[key] for task in status["tasks"] for key in ("started_at", "finished_at")]
    assert all(iso_utc.fullmatch(time) for time in times), times
    assert status["finished_at"] == listed[0]["finished_at"]


def test_status_by_id_prefix_shows_the_bar_and_the_tree(home: Path, quickstart_id: str) -> None:
    status = cli(home, "status", quickstart_id[:-3])

    assert status.code == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"{quickstart_id}  Quickstart  [succeeded]"
    assert lines[1] == "[████████████████████] 100% Complete"
    assert lines[2].startswith("10/10 done · ")
    assert lines[3].startswith("├─ Source alpha: ✓ Complete (")
    assert len(lines) == 13


def test_status_of_a_large_run_shows_what_the_whole_run_shows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tasks = [{"id": f"t{n:02}", "type": "delay"} for n in range(70)]
    tasks += [
        {"id": "bad", "type": "delay", "config": {"fail": "network"}},
        {"id": "after_bad", "type": "delay", "dependencies": ["bad"]},
        {
            "id": "fan",
            "type": "delay",
            "for_each": [None, "error", None, "error"],
            "allow_partial": True,
            "config": {"fail": "${item}"},
        },
    ]
    document = tmp_path / "large.yaml"
    document.write_text(yaml.safe_dump({"name": "Large", "tasks": tasks}), encoding="utf-8")
    run_id = run_id_of(cli(home, "run", document).stdout)

    status = cli(home, "status", run_id)
    listing = cli(home, "status", run_id, "--json")

    async def whole_run() -> RunSnapshot:
        async with await Engine.open(home / "state.db", home / "runs", resume=False) as engine:
            return await engine.snapshot(run_id)

    snapshot = asyncio.run(whole_run())
    assert status.code == 0, status.stderr
    display = render_status(snapshot, max_rows=50)
    assert status.stdout == f"{run_id}  Large  [failed]\n{display}\n"
    assert status.stdout.splitlines()[-1] == "└─ … and 28 more (28 done)"
    dumped = json.loads(listing.stdout)
    assert "task_counts" not in dumped
    assert len(dumped["tasks"]) == len(snapshot.tasks) == 77


def test_results_prints_every_output(home: Path, quickstart_id: str) -> None:
    results = cli(home, "results", quickstart_id)

    assert results.code == 0, results.stderr
    assert results.stdout.startswith("ORCHESTRATION COMPLETE\n")
    assert "stats [succeeded]\n" in results.stdout
    assert '"total_words": 3550' in results.stdout
    assert "check_each[3] [succeeded]\n" in results.stdout


def test_results_of_one_task(home: Path, quickstart_id: str) -> None:
    results = cli(home, "results", quickstart_id, "--task", "merge", "--json")

    assert results.code == 0, results.stderr
    tasks = json.loads(results.stdout)["tasks"]
    assert list(tasks) == ["merge"]
    assert [item["title"] for item in tasks["merge"]["output"]] == [
        "Orchestration 101",
        "Retries done right",
        "Fan-out patterns",
        "Rate limits",
    ]


def test_status_of_an_unknown_id_exits_2_listing_recent_ids(home: Path, quickstart_id: str) -> None:
    status = cli(home, "status", "orch-nothing")

    assert status.code == 2
    assert status.stdout == ""
    assert status.stderr == (
        f"error: no orchestration has the id 'orch-nothing'; recent ids: {quickstart_id}\n"
    )


# --- run: JSON, vars, concurrency, failures -----------------------------------------------


def test_run_json_with_vars_keeps_their_types(tmp_path: Path) -> None:
    document = tmp_path / "parallel.yaml"
    document.write_text(PARALLEL, encoding="utf-8")

    result = cli(
        tmp_path / "home", "run", document, "--json", "--var", "count=42", "--var", "label=hi"
    )

    assert result.code == 0, result.stderr
    assert result.stderr == ""  # no progress display with --json
    results = json.loads(result.stdout)
    assert results["status"] == "succeeded"
    assert list(results["tasks"]) == ["one", "two", "three"]
    assert results["tasks"]["one"]["output"] == {"count": 42, "label": "hi"}
    assert results["max_parallel"] == 3


def test_json_answers_are_json_any_reader_takes(tmp_path: Path) -> None:
    """An output holding NaN (YAML's .nan here) was printed as NaN, which is not JSON: a strict
    reader (jq, JavaScript) refused the whole answer. It is null, as in the run's files."""
    home = tmp_path / "home"
    document = tmp_path / "odd.yaml"
    document.write_text(
        "tasks:\n  - {id: odd, type: delay, config: {value: [.nan, -.inf, 1.5]}}\n",
        encoding="utf-8",
    )
    ran = cli(home, "run", document, "--json")
    answer = json.loads(ran.stdout, parse_constant=pytest.fail)
    results = cli(home, "results", answer["id"], "--json", "--task", "odd")

    assert ran.code == 0, ran.stderr
    assert answer["tasks"]["odd"]["output"] == [None, None, 1.5]
    assert json.loads(results.stdout, parse_constant=pytest.fail)["tasks"]["odd"]["output"] == [
        None,
        None,
        1.5,
    ]


def test_max_concurrent_override_runs_one_at_a_time(tmp_path: Path) -> None:
    document = tmp_path / "parallel.yaml"
    document.write_text(PARALLEL, encoding="utf-8")

    result = cli(tmp_path / "home", "run", document, "--max-concurrent", "1")

    assert result.code == 0, result.stderr
    assert "Parallel:   1 concurrent max" in result.stdout.splitlines()


def test_max_concurrent_past_the_documents_bound_is_refused(tmp_path: Path) -> None:
    """It replaced the document's max_concurrent unchecked (the document's is 1 to 10,000)."""
    result = cli(tmp_path / "home", "run", QUICKSTART, "--max-concurrent", "10001")

    assert result.code == 2
    assert result.stderr.endswith(
        "orchestrator run: error: argument --max-concurrent: must be at most 10,000, got 10,001\n"
    )
    assert not (tmp_path / "home").exists()


def test_a_var_without_a_value_exits_2(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "run", QUICKSTART, "--var", "novalue")

    assert result.code == 2
    assert result.stderr == "error: --var takes NAME=VALUE, got 'novalue'\n"


def test_run_with_a_failed_task_exits_1_and_lists_the_failure(tmp_path: Path) -> None:
    document = tmp_path / "failing.yaml"
    document.write_text(FAILING, encoding="utf-8")

    result = cli(tmp_path / "home", "run", document)

    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ORCHESTRATION COMPLETE WITH FAILURES"
    assert "Failed:     1 (50%)" in lines
    assert lines[lines.index("FAILURES:") + 1] == "- boom: the disk is full"
    assert "└─ boom: ✗ Failed (the disk is full)" in result.stderr


def test_control_characters_in_a_task_error_reach_the_terminal_as_escapes(tmp_path: Path) -> None:
    """A task's error comes from a web page or a program: an escape sequence in it would
    retitle (OSC 0), recolour or clear the terminal showing the display and the summary."""
    document = tmp_path / "escapes.yaml"
    message = "x\\e]0;pwned\\ay\\e[2J"
    document.write_text(
        f'tasks: [{{id: a, type: delay, config: {{fail: error, message: "{message}"}}}}]\n',
        encoding="utf-8",
    )

    result = cli(tmp_path / "home", "run", document)

    assert result.code == 1, result.stderr
    assert "- a: x\\x1b]0;pwned\\x07y\\x1b[2J" in result.stdout.splitlines()
    assert "Failed (x\\x1b]0;pwned\\x07y\\x1b[2J)" in result.stderr
    assert "\x1b" not in result.stdout + result.stderr


# Two "pages" that disagree on title and both carry items, merged like the seed merges its sites.
MERGE_CONFLICT = """\
orchestration:
  name: Merge conflict
  tasks:
    - id: page_a
      type: delay
      config: {seconds: 0, value: {title: Site A, data: [a1, a2]}}
    - id: page_b
      type: delay
      config: {seconds: 0, value: {title: Site B, data: [b1]}}
    - id: merged
      type: data_processing
      dependencies: [page_a, page_b]
      config: {action: merge, inputs: ["page_a.output", "page_b.output"], on_conflict: POLICY}
"""


def merge_run(tmp_path: Path, policy: str) -> tuple[Result, dict[str, Any], str]:
    """Run MERGE_CONFLICT under ``policy``: the CLI's result, its JSON, the execution log."""
    document = tmp_path / f"merge_{policy}.yaml"
    document.write_text(MERGE_CONFLICT.replace("POLICY", policy), encoding="utf-8")
    result = cli(tmp_path / "home", "run", document, "--json")
    results = json.loads(result.stdout)
    log = tmp_path / "home" / "runs" / results["id"] / "execution_log.txt"
    return result, results, log.read_text(encoding="utf-8")


def test_merge_keeps_both_inputs_values_and_says_which_keys_differed(tmp_path: Path) -> None:
    result, results, log = merge_run(tmp_path, "collect")

    assert result.code == 0, result.stderr
    merged = results["tasks"]["merged"]["output"]
    assert merged == {"title": ["Site A", "Site B"], "data": ["a1", "a2", "b1"]}
    assert "1 key(s) differed (title): kept every value in a list (on_conflict)" in log


def test_merge_that_keeps_one_value_names_the_keys_it_dropped(tmp_path: Path) -> None:
    result, results, log = merge_run(tmp_path, "last")

    assert result.code == 0, result.stderr
    assert results["tasks"]["merged"]["output"] == {"title": "Site B", "data": ["b1"]}
    assert "2 key(s) differed (title, data): kept the last input's value (on_conflict)" in log


def test_merge_on_conflict_error_fails_naming_the_key_and_the_inputs(tmp_path: Path) -> None:
    result, results, _ = merge_run(tmp_path, "error")

    assert result.code == 1, result.stderr
    task = results["tasks"]["merged"]
    assert (task["state"], task["error_class"], task["output"]) == ("failed", "config", None)
    assert task["error"].startswith(
        "merge would lose data: 'title' is 'Site A' in inputs[0] but 'Site B' in inputs[1]; "
        "set on_conflict: collect to keep both"
    )


# --- bad input: exit 2, every error, no traceback, nothing stored ----------------------------


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Result], Result]:
    """Each bad document run once against one home, then ``list`` on that home."""
    folder = tmp_path_factory.mktemp("bad")
    results = {}
    for name, (text, _) in BAD_DOCUMENTS.items():
        path = folder / f"{name}.yaml"
        if text is not None:
            path.write_text(text, encoding="utf-8")
        results[name] = cli(folder / "home", "run", path)
    return results, cli(folder / "home", "list")


@pytest.mark.parametrize("name", list(BAD_DOCUMENTS))
def test_a_bad_document_exits_2_with_every_error(
    name: str, refused: tuple[dict[str, Result], Result]
) -> None:
    result = refused[0][name]

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: the orchestration document has ")
    for expected in BAD_DOCUMENTS[name][1]:
        assert expected in result.stderr


def test_refused_documents_store_nothing(refused: tuple[dict[str, Result], Result]) -> None:
    listing = refused[1]

    assert listing.code == 0
    assert NO_RUNS in listing.stdout


def test_a_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "list", ORCHESTRATOR_MAX_CONCURRENT="abc")

    assert result.code == 2
    assert result.stderr.startswith("error: invalid setting: ORCHESTRATOR_MAX_CONCURRENT: ")


def test_a_setting_that_is_not_json_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """pydantic-settings' own error for it went out as a traceback (exit 1)."""
    result = cli(tmp_path / "home", "run", QUICKSTART, ORCHESTRATOR_HOST_RATES="{api: 10/s}")

    assert result.code == 2
    assert result.stderr.startswith(
        "error: invalid setting: ORCHESTRATOR_HOST_RATES is not JSON (Expecting property name "
    )
    assert result.stderr.endswith('e.g. `{"api.example.org": "10/s"}`\n')


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ORCHESTRATOR_NET_ALLOW", "api.example.com", "ORCHESTRATOR_NET_ALLOW is not JSON ("),
        ("ORCHESTRATOR_HOST_RATES", "10/s", "ORCHESTRATOR_HOST_RATES is not JSON ("),
        # never a match: a rule that would be ignored without a word
        ("ORCHESTRATOR_NET_DENY", '["10.0.0.0/33"]', "'10.0.0.0/33' is not a host name"),
        ("ORCHESTRATOR_NET_ALLOW", '["https://api.example.com"]', "is not a host name, a *."),
        # a misspelt setting would be ignored
        ("ORCHESTRATOR_NET_DENIED", "[]", "did you mean 'ORCHESTRATOR_NET_DENY'?"),
    ],
)
def test_a_setting_that_is_not_json_no_host_or_none_exits_2(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = cli(tmp_path / "home", "list", **{variable: value})

    assert result.code == 2, result.stderr
    assert result.stderr.startswith(f"error: invalid setting: {variable}"), result.stderr
    assert expected in result.stderr


# --- validate ------------------------------------------------------------------------------


def test_validate_prints_the_plan(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "validate", QUICKSTART)

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{QUICKSTART} is valid.",
        "6 tasks in 3 stages (parallel, 4 at once)",
        "  stage 1: collect_alpha, collect_beta, collect_gamma",
        "  stage 2: merge",
        "  stage 3: check_each, stats",
        "critical path: collect_alpha -> merge -> check_each (3 tasks)",
        "fan-out (one child per item): check_each",
    ]


def test_a_var_the_document_never_uses_is_a_warning_with_a_hint(tmp_path: Path) -> None:
    """A misspelt --var changed nothing, silently; the vars the document defines or uses are
    given without one."""
    document = tmp_path / "parallel.yaml"
    document.write_text(PARALLEL, encoding="utf-8")
    result = cli(tmp_path / "home", "validate", document, "--var", "cuont=2", "--var", "label=x")

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"{document}: warning: var 'cuont' was given, but the document neither defines nor "
        "uses it (did you mean 'count'?)",
        f"{document} is valid.",
    ]


def test_validate_names_the_seed_examples_mistake_where_it_is(tmp_path: Path) -> None:
    document = tmp_path / "seed.yaml"
    document.write_text(SEED, encoding="utf-8")

    result = cli(tmp_path / "home", "validate", document)

    assert result.code == 2
    errors = result.stderr.splitlines()
    assert errors[-1] == "3 error(s); the document was not run"
    for line, site in ((33, "site_a"), (34, "site_b"), (35, "site_c")):
        assert errors[line - 33] == (
            f"{document}: line {line}, column 21: tasks[3].config.destinations[{line - 33}]."
            f"{site}: unknown reference '${{merged_content}}': no task 'merged_content' "
            "(did you mean 'merge_content'? write ${merge_content.output})"
        )


def test_validate_accepts_the_corrected_seed(tmp_path: Path) -> None:
    document = tmp_path / "seed.yaml"
    document.write_text(SEED_FIXED, encoding="utf-8")

    result = cli(tmp_path / "home", "validate", document)

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{document} is valid." in lines
    assert "critical path: extract_site_a -> merge_content -> publish_all (3 tasks)" in lines
    assert "error" not in result.stderr


def test_validate_json_reports_issues_with_positions(tmp_path: Path) -> None:
    document = tmp_path / "seed.yaml"
    document.write_text(SEED, encoding="utf-8")

    result = cli(tmp_path / "home", "validate", document, "--json")

    assert result.code == 2
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "issues", "plan"}
    assert report["ok"] is False
    assert report["plan"] is None
    errors = [issue for issue in report["issues"] if issue["severity"] == "error"]
    assert [(issue["line"], issue["column"]) for issue in errors] == [(33, 21), (34, 21), (35, 21)]
    assert errors[0]["path"] == "tasks[3].config.destinations[0].site_a"
    assert errors[0]["hint"].startswith("did you mean 'merge_content'?")


def test_validate_json_reports_malformed_yaml_as_json(tmp_path: Path) -> None:
    document = tmp_path / "malformed.yaml"
    document.write_text(BAD_DOCUMENTS["malformed"][0] or "", encoding="utf-8")

    result = cli(tmp_path / "home", "validate", document, "--json")

    assert result.code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["plan"] is None
    assert [(issue["line"], issue["column"]) for issue in report["issues"]] == [(6, 9)]
    assert report["issues"][0]["message"].startswith("invalid YAML: ")


def test_validate_refuses_a_json_key_given_twice(tmp_path: Path) -> None:
    """YAML's loader refuses a key given twice; JSON's parsers keep the last one silently."""
    document = tmp_path / "twice.json"
    document.write_text(
        '{"name": "first", "tasks": [{"id": "a", "type": "delay"}], "name": "second"}',
        encoding="utf-8",
    )

    result = cli(tmp_path / "home", "validate", document)

    assert result.code == 2
    assert "the key 'name' appears twice in one JSON object (remove one of them" in result.stderr


# --- schema --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = cli(tmp_path_factory.mktemp("schema"), "schema")
    assert result.code == 0
    return json.loads(result.stdout)


def test_schema_has_the_orchestration_definition(schema: dict) -> None:
    assert "Orchestration" in schema["$defs"]
    assert "TaskSpec" in schema["$defs"]
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(yaml.safe_load(SEED), id="seed"),
        pytest.param(yaml.safe_load(SEED_FIXED)["orchestration"], id="seed-unwrapped"),
        # YAML 1.2 reading, as editors do: `on:` in a retry policy is a key, not `true`.
        pytest.param(load_file(REPO / QUICKSTART).data, id="quickstart"),
        pytest.param(
            {
                "tasks": [
                    {"id": "a", "type": "http", "timeout": "30s", "limit": "api"},
                    {
                        "id": "b",
                        "type": "data",
                        "depends_on": ["a"],
                        "config": {"action": "flatten", "input": "${a.output}"},
                    },
                    {"id": "c", "type": "delay", "needs": "b", "retry": {"initial": "1m"}},
                ],
                "limits": {"api": {"rate": "10/s"}},
            },
            id="aliases-and-single-strings",
        ),
    ],
)
def test_documents_the_models_accept_pass_the_schema(schema: dict, document: dict) -> None:
    assert build(load_mapping(document))[2] == []
    jsonschema.validate(document, schema)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"orchestration": {"tasks": [{"id": "a", "type": "delay", "dependancies": []}]}},
            "'dependancies' was unexpected",
        ),
        ({"tasks": [{"id": "a", "type": "delay"}], "max_concurrent": "lots"}, "'lots'"),
        ({"tasks": [{"id": "a", "type": "delay", "timeout": "soon"}]}, "'soon'"),
    ],
)
def test_documents_the_models_refuse_fail_the_schema(
    schema: dict, document: dict, message: str
) -> None:
    assert build(load_mapping(document))[2] != []
    with pytest.raises(jsonschema.ValidationError) as failure:
        jsonschema.validate(document, schema)

    errors = [failure.value, *(failure.value.context or [])]
    assert any(message in error.message for error in errors)


EXAMPLE_DOCUMENTS = sorted(
    [*REPO.glob("examples/*.yaml"), *REPO.glob("server/demo/*.yaml")], key=lambda path: path.name
)


@pytest.mark.parametrize("path", EXAMPLE_DOCUMENTS, ids=lambda path: path.name)
def test_every_example_document_passes_the_schema_with_its_configs(
    schema: dict, path: Path
) -> None:
    jsonschema.validate(load_file(path).data, schema)


def all_messages(error: jsonschema.ValidationError) -> list[str]:
    """The messages of an error and of every error below it (anyOf, if/then branches)."""
    return [error.message, *(m for child in error.context or [] for m in all_messages(child))]


@pytest.mark.parametrize(
    ("task", "unexpected"),
    [
        ({"type": "delay", "config": {"secconds": 1}}, "'secconds' was unexpected"),
        (
            {"type": "api_call", "config": {"url": "https://x.example", "methd": "GET"}},
            "'methd' was unexpected",
        ),
        ({"type": "file", "config": {"action": "read", "pth": "a.json"}}, "'pth' was unexpected"),
    ],
    ids=["delay", "http-by-alias", "file-by-alias"],
)
def test_the_schema_refuses_a_config_field_its_type_does_not_have(
    tmp_path: Path, schema: dict, task: dict, unexpected: str
) -> None:
    document = {"tasks": [{"id": "a", **task}]}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    validated = cli(tmp_path, "validate", path)
    with pytest.raises(jsonschema.ValidationError) as failure:
        jsonschema.validate(document, schema)

    assert validated.code == 2  # the engine refuses it too: the schema says what it does
    assert any(unexpected in message for message in all_messages(failure.value))


def test_the_schema_takes_a_reference_in_place_of_any_config_value(schema: dict) -> None:
    document = {
        "vars": {"pause": 1},
        "tasks": [
            {"id": "a", "type": "delay", "config": {"seconds": "${vars.pause}"}},
            {
                "id": "b",
                "type": "http",
                "dependencies": ["a"],
                "config": {"url": "https://x.example", "params": "${a.output}", "timeout": "30s"},
            },
        ],
    }
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"tasks": [{"id": "a", "type": "delay", "config": {"seconds": [1]}}]}, schema
        )


# --- Ctrl-C ----------------------------------------------------------------------------------


def wait_for_a_started_attempt(database: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        if database.exists():
            with sqlite3.connect(database, timeout=1) as db:
                try:
                    if db.execute("SELECT count(*) FROM attempts").fetchone()[0]:
                        return
                except sqlite3.OperationalError:  # the tables are not made yet
                    pass
        time.sleep(0.05)
    raise AssertionError("the run never started its task")


def test_ctrl_c_cancels_the_run_and_still_prints_the_summary(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = tmp_path / "slow.yaml"
    document.write_text(SLOW, encoding="utf-8")
    process = start_cli(home, "run", document)
    try:
        wait_for_a_started_attempt(home / "state.db", process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=8)
    finally:
        kill_if_running(process)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    assert lines[0] == "ORCHESTRATION CANCELLED"
    assert "Cancelled:  1 (100%)" in lines
    assert "Error:      cancelled with Ctrl-C" in lines

    status = cli(home, "status", run_id_of(stdout), "--json")
    snapshot = json.loads(status.stdout)
    assert snapshot["status"] == "cancelled"
    assert [(task["task_id"], task["state"]) for task in snapshot["tasks"]] == [
        ("wait", "cancelled")
    ]


def test_retry_of_a_run_whose_process_died_says_resume_finishes_it(tmp_path: Path) -> None:
    """It said "wait for it to finish (or cancel it)", of a run nobody runs."""
    home = tmp_path / "home"
    document = tmp_path / "slow.yaml"
    document.write_text(SLOW, encoding="utf-8")
    process = start_cli(home, "run", document)
    try:
        wait_for_a_started_attempt(home / "state.db", process)
    finally:
        process.kill()
        process.wait()
    (run,) = json.loads(cli(home, "list", "--json").stdout)

    retried = cli(home, "retry", run["id"])
    assert retried.code == 2
    assert retried.stderr == (
        f"error: orchestration {run['id']} is still running, but no process runs it (the one "
        f"that did has stopped): `orchestrator resume {run['id']}` finishes it (an "
        "`orchestrator serve` does too); retry what fails after that\n"
    )


def test_ctrl_c_before_the_run_is_saved_leaves_no_run_running(tmp_path: Path) -> None:
    """Ctrl-C that comes while ``run`` still checks its document (here it waits for the vault's
    lock to look a secret's name up) stops it without a traceback, and no run stays
    ``running``: either none was saved or it ended cancelled (it was left ``running``, for a
    later ``resume``, when the Ctrl-C was seen only as the run was being saved)."""
    if not Path("/proc/locks").exists():
        pytest.skip("needs Linux's /proc/locks to see the child wait for the lock")
    home = home_with_secrets(tmp_path / "home", TOKEN="not-a-real-token")
    document = tmp_path / "secret.yaml"
    document.write_text(
        SLOW + "    - id: call\n      type: http\n      dependencies: [wait]\n"
        "      config: {url: 'http://127.0.0.1:9/', headers: {X-Key: '${vault.TOKEN}'}}\n",
        encoding="utf-8",
    )
    lock = os.open(home / "vault.db.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        process = start_cli(home, "run", document)
        deadline = time.monotonic() + 20
        while f" {process.pid} " not in "".join(
            line for line in Path("/proc/locks").read_text().splitlines(True) if "->" in line
        ):
            assert process.poll() is None and time.monotonic() < deadline, "it never waited"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    try:
        stdout, stderr = process.communicate(timeout=20)
    finally:
        kill_if_running(process)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    runs = json.loads(cli(home, "list", "--json").stdout)
    assert [run["status"] for run in runs] in ([], ["cancelled"]), (runs, stdout, stderr)


def test_ctrl_c_during_retry_cancels_the_run_as_during_run(tmp_path: Path) -> None:
    """``retry`` follows its run like ``run``: Ctrl-C cancels it and prints its summary (it was
    left ``running``, with "interrupted")."""
    home = tmp_path / "home"
    document = tmp_path / "again.yaml"
    document.write_text(
        "name: Again\ntasks:\n  - {id: boom, type: delay, config: {fail_attempts: 1}}\n"
        "  - {id: wait, type: delay, dependencies: [boom], config: {seconds: 10}}\n",
        encoding="utf-8",
    )
    failed = cli(home, "run", document)
    assert failed.code == 1, failed.stderr
    run_id = run_id_of(failed.stdout)
    process = start_cli(home, "retry", run_id[:9])
    try:
        deadline = time.monotonic() + 20
        query = "SELECT count(*) FROM attempts WHERE task_id = 'wait'"
        while not sqlite3.connect(home / "state.db", timeout=5).execute(query).fetchone()[0]:
            assert process.poll() is None and time.monotonic() < deadline, "wait never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        kill_if_running(process)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("ORCHESTRATION CANCELLED\n"), stderr
    snapshot = json.loads(cli(home, "status", run_id, "--json").stdout)
    assert snapshot["status"] == "cancelled"
    assert [(task["task_id"], task["state"]) for task in snapshot["tasks"]] == [
        ("boom", "succeeded"),
        ("wait", "cancelled"),
    ]


# --- small things --------------------------------------------------------------------------


def test_a_reader_that_goes_away_is_no_traceback(tmp_path: Path) -> None:
    reading, writing = os.pipe()
    os.close(reading)  # as `orchestrator schema | head -0` would
    try:
        done = subprocess.run(
            [sys.executable, "-m", "multi_task_orchestrator.server.cli", "schema"],
            cwd=REPO,
            env=child_env(tmp_path / "home"),
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writing)

    assert done.returncode == 1
    assert done.stderr == ""


def test_list_limit_must_be_positive(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "list", "--limit", "0")

    assert result.code == 2
    assert "argument --limit: must be at least 1, got 0" in result.stderr


def test_an_unknown_option_is_refused_with_its_commands_usage(tmp_path: Path) -> None:
    """The command's own usage lists the options it has (argparse answered with the top
    parser's usage, which lists only the commands), with a hint for a typo."""
    result = cli(tmp_path / "home", "schedule", "list", "--jsno")

    assert result.code == 2
    assert result.stderr == (
        "usage: orchestrator schedule list [-h] [--json]\n"
        "orchestrator schedule list: error: unrecognized arguments: --jsno "
        "(did you mean --json?)\n"
    )
    assert not (tmp_path / "home").exists()


def test_a_file_that_never_ends_is_refused_at_the_size_limit(tmp_path: Path) -> None:
    """A file whose size the system does not say was read to its end first: /dev/zero filled
    the memory."""
    if not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    result = cli(tmp_path / "home", "validate", "/dev/zero", ORCHESTRATOR_MAX_DOCUMENT_BYTES="2000")

    assert result.code == 2
    assert result.stderr.startswith(
        "/dev/zero: /dev/zero is over the limit of 2,000 bytes (split it into smaller "
    )


def test_an_argument_or_a_document_that_is_not_unicode_text_exits_2(tmp_path: Path) -> None:
    # bytes that are not UTF-8 reach Python as surrogates, as does YAML's "\ud800": no state
    # database write or printed line could hold them
    not_text = cli(tmp_path / "home", "status", "orch-\udcff")
    assert not_text.code == 2, not_text.stderr
    assert "error: the argument 'orch-\\udcff' is not UTF-8 text" in not_text.stderr
    document = tmp_path / "half.yaml"
    document.write_text('tasks:\n  - {id: a, type: delay, config: {value: "x\\ud800"}}\n')
    half = cli(tmp_path / "home", "run", document)
    assert half.code == 2, half.stderr
    assert "half of a UTF-16 surrogate pair (U+D800)" in half.stderr


def test_every_json_option_says_what_it_does() -> None:
    """``approvals --help`` and the schedule and vault commands showed a bare ``--json``."""
    import argparse

    from multi_task_orchestrator.server.cli.parser import build_parser

    found: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif "--json" in action.option_strings:
                found.append(parser.prog)
                assert action.help, parser.prog

    walk(build_parser())
    assert "orchestrator approvals" in found and "orchestrator schedule list" in found
