"""Validation of orchestration documents: every check with its line and column, and the plan."""

from __future__ import annotations

import gc
import itertools
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from multi_task_orchestrator.engine.document.loader import load_text
from multi_task_orchestrator.engine.document.models import TaskSpec, parse_task
from multi_task_orchestrator.engine.document.plan import (
    Plan,
    ancestors,
    dag_levels,
    execution_stages,
)
from multi_task_orchestrator.engine.document.validation import Validation, validate
from multi_task_orchestrator.engine.issues import DocumentError

# The seed's "Task Definition Format" example, verbatim (multi-task-orchestrator.md).
SEED = (Path(__file__).parent / "fixtures" / "seed_example.yaml").read_text(encoding="utf-8")

SEED_FIXED = SEED.replace("${merged_content}", "${merge_content.output}")


def where(issues: list) -> list[tuple[int | None, int | None, str]]:
    return [(issue.line, issue.column, issue.message) for issue in issues]


# --- the acceptance case ------------------------------------------------------------------


def test_seed_example_reports_its_one_mistake_at_each_place() -> None:
    result = validate(SEED)

    message = "unknown reference '${merged_content}': no task 'merged_content'"
    assert where(result.issues) == [(33, 21, message), (34, 21, message), (35, 21, message)]
    assert [issue.loc for issue in result.issues] == [
        ("tasks", 3, "config", "destinations", 0, "site_a"),
        ("tasks", 3, "config", "destinations", 1, "site_b"),
        ("tasks", 3, "config", "destinations", 2, "site_c"),
    ]
    hint = "did you mean 'merge_content'? write ${merge_content.output}"
    assert {issue.hint for issue in result.issues} == {hint}
    assert {issue.severity for issue in result.issues} == {"error"}
    assert not result.ok
    assert result.orchestration is None
    assert result.plan is None


def test_seed_example_corrected_is_valid_with_missing_runners_as_warnings() -> None:
    result = validate(SEED_FIXED, available_types={"data_processing", "delay"})

    assert result.ok
    assert result.errors == []
    browser = (
        "task type 'browser_automation' is not available in this version yet "
        "(its runner arrives later)"
    )
    publish = (
        "task type 'multi_publish' is not available in this version yet (its runner arrives later)"
    )
    assert where(result.warnings) == [(7, 13, browser), (15, 13, browser), (30, 13, publish)]
    assert {issue.hint for issue in result.warnings} == {"available types: data_processing, delay"}
    assert result.orchestration is not None
    assert result.orchestration.name == "Multi-Site Content Sync"
    assert result.plan is not None
    assert result.plan.stages == [
        ["extract_site_a", "extract_site_b"],
        ["merge_content"],
        ["publish_all"],
    ]
    assert result.plan.critical_path == ["extract_site_a", "merge_content", "publish_all"]


def test_seed_example_corrected_fails_when_runners_are_required() -> None:
    result = validate(
        SEED_FIXED, available_types={"data_processing", "delay"}, require_runners=True
    )

    assert [(issue.line, issue.severity) for issue in result.issues] == [
        (7, "error"),
        (15, "error"),
        (30, "error"),
    ]
    assert result.orchestration is None
    assert result.plan is None


def test_seed_example_corrected_without_type_information_has_no_issue() -> None:
    result = validate(SEED_FIXED)

    assert result.issues == []
    assert result.ok


# --- each check -----------------------------------------------------------------------------


def test_duplicate_id_is_reported_at_the_second_one() -> None:
    doc = """\
tasks:
  - id: fetch
    type: delay
  - id: fetch
    type: delay
"""
    result = validate(doc)

    assert where(result.issues) == [
        (4, 9, "duplicate task id 'fetch': tasks[0] on line 2 already uses it")
    ]
    assert result.issues[0].loc == ("tasks", 1, "id")
    assert result.issues[0].hint == "rename it; every task needs its own id"


def test_unknown_dependency_is_found_under_each_spelling_of_the_key() -> None:
    doc = """\
tasks:
  - id: fetch
    type: delay
  - id: merge
    type: delay
    depends_on:
      - fetch
      - fetc
  - id: publish
    type: delay
    needs: mergee
  - id: last
    type: delay
    dependencies: [fetch, nothing_like_it]
"""
    result = validate(doc)

    assert where(result.issues) == [
        (8, 9, "unknown dependency 'fetc': no task has that id"),
        (11, 12, "unknown dependency 'mergee': no task has that id"),
        (14, 27, "unknown dependency 'nothing_like_it': no task has that id"),
    ]
    assert [issue.loc for issue in result.issues] == [
        ("tasks", 1, "depends_on", 1),
        ("tasks", 2, "needs"),
        ("tasks", 3, "dependencies", 1),
    ]
    assert [issue.hint for issue in result.issues] == [
        "did you mean 'fetch'?",
        "did you mean 'merge'?",
        "tasks: fetch, merge, publish, last",
    ]


def test_cycles_are_reported_with_their_path() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
    needs: [c]
  - id: b
    type: delay
    needs: [a]
  - id: c
    type: delay
    needs: [b]
  - id: solo
    type: delay
    needs: [solo]
"""
    result = validate(doc)

    assert where(result.issues) == [
        (4, 13, "dependency cycle: a -> c -> b -> a"),
        (13, 13, "dependency cycle: solo -> solo"),
    ]
    assert result.issues[0].hint == "remove one of these dependencies to break the cycle"
    assert result.issues[1].hint == (
        "a task cannot depend on itself: remove 'solo' from its dependencies"
    )


def test_two_cycles_through_one_task_are_each_reported_once() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
    needs: [b, c]
  - id: b
    type: delay
    needs: [a]
  - id: c
    type: delay
    needs: [a]
"""
    result = validate(doc)

    assert where(result.issues) == [
        (4, 13, "dependency cycle: a -> b -> a"),
        (4, 16, "dependency cycle: a -> c -> a"),
    ]


def test_parallel_reference_must_be_a_transitive_dependency() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
  - id: b
    type: delay
    needs: [a]
  - id: c
    type: delay
    needs: [b]
    config:
      x: "${a.output}"
      y: "${d.output.items}"
  - id: d
    type: delay
"""
    result = validate(doc)

    assert where(result.issues) == [
        (
            12,
            10,
            "'${d.output.items}' refers to 'd', which 'c' does not depend on: "
            "it may not have run yet",
        )
    ]
    assert result.issues[0].hint == "add 'd' to dependencies"
    assert result.issues[0].loc == ("tasks", 2, "config", "y")


def test_references_through_a_cycle_count_as_dependencies() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
    needs: [c]
  - id: b
    type: delay
    needs: [a]
    config: {x: "${c.output}", y: "${b.output}"}
  - id: c
    type: delay
    needs: [b]
  - id: d
    type: delay
    needs: [a]
    config: {x: "${b.output}", y: "${e.output}"}
  - id: e
    type: delay
"""
    result = validate(doc)

    assert [issue.message for issue in result.issues] == [
        "dependency cycle: a -> c -> b -> a",
        "'${b.output}' refers to the task's own output, which does not exist while it runs",
        "'${e.output}' refers to 'e', which 'd' does not depend on: it may not have run yet",
    ]


def test_reference_checks_agree_with_ancestors_on_any_graph() -> None:
    rng = random.Random(7)
    for _ in range(200):
        count = rng.randint(1, 12)
        tasks = [
            {
                "id": f"t{n}",
                "type": "delay",
                "needs": [f"t{rng.randrange(count)}" for _ in range(rng.randint(0, 3))],
                "config": {"x": f"${{t{rng.randrange(count)}.output}}"},
            }
            for n in range(count)
        ]
        result = validate({"tasks": tasks})
        specs = [parse_task(task) for task in tasks]
        seen = ancestors(specs)
        expected = [
            n
            for n, spec in enumerate(specs)
            if (root := spec.config["x"][2:-8]) != spec.id and root not in seen[spec.id]
        ]
        flagged = [issue.loc[1] for issue in result.issues if "does not depend on" in issue.message]
        assert flagged == expected


def test_references_to_distant_ancestors_in_a_long_chain() -> None:
    count = 3000
    tasks = [{"id": "t0", "type": "delay"}] + [
        {"id": f"t{n}", "type": "delay", "needs": [f"t{n - 1}"], "config": {"x": "${t0.output}"}}
        for n in range(1, count)
    ]
    tasks.append({"id": "side", "type": "delay", "config": {"x": f"${{t{count - 1}.output}}"}})
    result = validate({"tasks": tasks})

    assert [issue.message for issue in result.issues] == [
        f"'${{t{count - 1}.output}}' refers to 't{count - 1}', which 'side' does not depend on: "
        "it may not have run yet"
    ]


def test_seed_bare_input_form_is_checked_and_shown_as_written() -> None:
    doc = """\
tasks:
  - id: extract
    type: delay
  - id: merge
    type: data
    needs: [extract]
    config:
      inputs: ["extract.output", "extrct.output"]
"""
    result = validate(doc)

    assert where(result.issues) == [
        (8, 34, "unknown reference 'extrct.output': no task 'extrct'"),
    ]
    assert result.issues[0].hint == "did you mean 'extract'? write ${extract.output}"


def test_reference_to_own_output_and_a_var_written_as_a_task() -> None:
    doc = """\
vars:
  base: https://example.org
tasks:
  - id: a
    type: delay
    config:
      me: "${a.output}"
      url: "${base}/x"
"""
    result = validate(doc)

    assert where(result.issues) == [
        (
            7,
            11,
            "'${a.output}' refers to the task's own output, which does not exist while it runs",
        ),
        (8, 12, "unknown reference '${base}': no task 'base'"),
    ]
    assert result.issues[1].hint == "'base' is a variable: write ${vars.base}"


def test_sequential_mode_rejects_forward_references_and_dependencies() -> None:
    doc = """\
mode: sequential
tasks:
  - id: first
    type: delay
    config:
      value: "${second.output}"
  - id: second
    type: delay
    needs: [third]
  - id: third
    type: delay
    config:
      value: "${first.output}"
"""
    result = validate(doc)

    assert where(result.issues) == [
        (
            6,
            14,
            "forward reference: '${second.output}' refers to 'second', which runs after 'first' "
            "(mode: sequential runs tasks in document order)",
        ),
        (
            9,
            13,
            "forward reference: 'second' depends on 'third', which comes later; "
            "mode: sequential runs tasks in document order",
        ),
    ]
    assert [issue.hint for issue in result.issues] == [
        "move 'second' above 'first'",
        "move 'third' above 'second', or use mode: parallel",
    ]


def test_mixed_mode_sees_earlier_stages_and_rejects_waiting_on_later_ones() -> None:
    doc = """\
mode: mixed
tasks:
  - id: fetch
    type: delay
    stage: 1
  - id: merge
    type: delay
    stage: 2
    config:
      a: "${fetch.output}"
      b: "${late.output}"
  - id: peer
    type: delay
    stage: 2
    config:
      c: "${merge.output}"
  - id: waits
    type: delay
    stage: 2
    needs: [late]
  - id: late
    type: delay
    stage: 3
"""
    result = validate(doc)

    assert where(result.issues) == [
        (
            11,
            10,
            "'${late.output}' refers to 'late', which runs in the same or a later stage than "
            "'merge' and is not one of its dependencies",
        ),
        (
            16,
            10,
            "'${merge.output}' refers to 'merge', which runs in the same or a later stage than "
            "'peer' and is not one of its dependencies",
        ),
        (
            20,
            13,
            "'waits' (stage 2) depends on 'late' (stage 3), which runs in a later stage: "
            "it would wait forever",
        ),
    ]
    assert [issue.hint for issue in result.issues] == [
        "give 'late' an earlier stage than 'merge' (stage 2)",
        "add 'merge' to dependencies",
        "give 'late' stage 2 or lower, or 'waits' stage 3 or higher",
    ]


def test_unknown_vars_and_extra_vars_that_define_them() -> None:
    doc = """\
vars:
  base: https://example.org
tasks:
  - id: get
    type: delay
    config:
      url: "${vars.bse}/a"
      token: "${vars.token}"
"""
    result = validate(doc)

    assert where(result.issues) == [
        (7, 12, "unknown variable 'bse' in '${vars.bse}'"),
        (8, 14, "unknown variable 'token' in '${vars.token}'"),
    ]
    assert [issue.hint for issue in result.issues] == [
        "did you mean 'base'? Otherwise define 'bse' under vars: or pass --var bse=VALUE",
        "define 'token' under vars: or pass --var token=VALUE",
    ]

    fixed = validate(doc, extra_vars={"bse": "https://b.example", "token": "t"})
    assert fixed.ok
    assert fixed.orchestration is not None
    assert fixed.orchestration.vars == {
        "base": "https://example.org",
        "bse": "https://b.example",
        "token": "t",
    }


def test_extra_vars_override_the_document() -> None:
    doc = "vars: {n: 1}\ntasks: [{id: a, type: delay, config: {v: '${vars.n}'}}]\n"
    result = validate(doc, extra_vars={"n": "2"})

    assert result.orchestration is not None
    assert result.orchestration.vars == {"n": "2"}


def test_item_and_index_only_inside_a_fan_out_task() -> None:
    doc = """\
tasks:
  - id: plain
    type: delay
    config:
      value: "${item}"
  - id: fan
    type: delay
    for_each: "${item.list}"
    config:
      value: "${index}: ${item.name}"
"""
    result = validate(doc)

    assert where(result.issues) == [
        (5, 14, "'${item}' only exists in a task with for_each"),
        (8, 15, "'${item.list}' cannot be used in for_each itself: it is what for_each produces"),
    ]
    assert result.issues[0].hint == "add for_each: to 'plain', or remove '${item}'"


def test_for_each_text_without_a_reference_is_an_error() -> None:
    result = validate("tasks:\n  - id: a\n    type: delay\n    for_each: sites\n")

    assert where(result.issues) == [(4, 15, "for_each must be a list or a ${...} reference to one")]


def test_malformed_reference_reports_the_expression_error() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
    config:
      value: "x ${a.output"
"""
    result = validate(doc)

    assert where(result.issues) == [(5, 14, "'${a.output' has no closing '}'")]
    assert result.issues[0].hint == "close it with '}', or write '$${' for a literal '${'"


def test_limit_must_name_a_pool() -> None:
    doc = """\
limits:
  api: {concurrency: 2}
  db: {rate: 5/s}
tasks:
  - id: a
    type: delay
    limit: apii
  - id: b
    type: delay
    limit: [api, cache]
"""
    result = validate(doc)

    assert where(result.issues) == [
        (7, 12, "unknown limit 'apii': no such pool in limits"),
        (10, 18, "unknown limit 'cache': no such pool in limits"),
    ]
    assert [issue.hint for issue in result.issues] == [
        "did you mean 'api'? pools: api, db",
        "pools: api, db",
    ]


def test_limit_without_any_pool_says_how_to_define_one() -> None:
    result = validate("tasks:\n  - id: a\n    type: delay\n    limit: api\n")

    assert where(result.issues) == [(4, 12, "unknown limit 'api': no such pool in limits")]
    assert result.issues[0].hint == "define it, e.g. limits: {api: {concurrency: 2}}"


def test_stage_outside_mixed_and_fan_out_options_without_for_each_are_warnings() -> None:
    doc = """\
tasks:
  - id: a
    type: delay
    stage: 1
    max_concurrent: 2
    allow_partial: true
"""
    result = validate(doc)

    assert where(result.issues) == [
        (4, 12, "stage only applies in mode: mixed; it is ignored here"),
        (5, 21, "max_concurrent only applies to a task with for_each; it is ignored here"),
        (6, 20, "allow_partial only applies to a task with for_each; it is ignored here"),
    ]
    assert {issue.severity for issue in result.issues} == {"warning"}
    assert result.ok
    assert result.orchestration is not None
    assert result.plan is not None

    # A document dumped from its model spells out the defaults; they are not warnings.
    dumped = result.orchestration.model_dump(mode="json", exclude_none=True)
    del dumped["tasks"][0]["stage"], dumped["tasks"][0]["max_concurrent"]
    assert dumped["tasks"][0]["allow_partial"] is True
    dumped["tasks"][0]["allow_partial"] = False
    assert validate(dumped).issues == []


def test_every_problem_is_reported_in_one_pass_without_cascades() -> None:
    doc = """\
name: broken
tasks:
  - id: fetch
    type: browsr
    timeout: 30 sec
  - id: merge
    type: data
    needs: [fetch, fetsh]
    config:
      inputs: ["fetch.output", "${merged.output}"]
  - id: loop
    type: delay
    needs: [loop]
    limit: pool
"""
    result = validate(doc)

    # `fetch` is invalid, but its id is known: depending on it or reading it is not an error.
    assert [(issue.line, issue.column) for issue in result.issues] == [
        (4, 11),
        (5, 14),
        (8, 20),
        (10, 32),
        (13, 13),
        (14, 12),
    ]
    messages = [issue.message for issue in result.issues]
    assert messages[0].startswith("unknown task type 'browsr'; known types: http,")
    assert messages[1:] == [
        "'30 sec' is not a duration",
        "unknown dependency 'fetsh': no task has that id",
        "unknown reference '${merged.output}': no task 'merged'",
        "dependency cycle: loop -> loop",
        "unknown limit 'pool': no such pool in limits",
    ]
    assert result.issues[3].hint == "did you mean 'merge'? write ${merge.output}"
    assert result.orchestration is None


def test_issues_without_a_position_come_last() -> None:
    raw = load_text(
        "tasks:\n  - id: a\n    type: delay\n    needs: [x]\n  - id: b\n    type: dela\n"
    )
    raw.positions = {loc: pos for loc, pos in raw.positions.items() if loc[:2] != ("tasks", 0)}
    del raw.positions[("tasks",)]
    del raw.positions[()]
    result = validate(raw)

    assert [(issue.line, issue.path) for issue in result.issues] == [
        (6, "tasks[1].type"),
        (None, "tasks[0].needs[0]"),
    ]


# --- runner configs -----------------------------------------------------------------------


class FetchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    count: int = 1


def test_runner_configs_are_checked_except_values_that_hold_references() -> None:
    doc = """\
vars:
  n: 3
tasks:
  - id: fetch
    type: http
    config:
      url: https://example.org
      count: many
      colour: red
  - id: later
    type: http
    config:
      url: https://example.org
      count: "${vars.n}"
  - id: missing
    type: http
    config: {count: 2}
  - id: other
    type: delay
    config: {anything: goes}
"""
    result = validate(doc, runner_configs={"http": FetchConfig})

    assert where(result.issues) == [
        (8, 14, "Input should be a valid integer, unable to parse string as an integer"),
        (9, 15, "unknown field 'colour'"),
        (17, 13, "'url' is required"),
    ]
    assert [issue.path for issue in result.issues] == [
        "tasks[0].config.count",
        "tasks[0].config.colour",
        "tasks[2].config.url",
    ]
    assert result.issues[1].hint == "allowed fields: url, count"


class PauseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = 0


def test_runner_configs_of_several_types_are_reported_in_document_order() -> None:
    tasks = [
        {"id": "a", "type": "http", "config": {"url": "https://example.org", "count": "x"}},
        {"id": "b", "type": "delay", "config": {"seconds": "soon"}},
        {"id": "c", "type": "http", "config": {}},
        {"id": "d", "type": "delay", "config": {"secs": 1}},
        {"id": "e", "type": "http", "config": {"url": "https://example.org"}},
    ]
    result = validate({"tasks": tasks}, runner_configs={"http": FetchConfig, "delay": PauseConfig})

    assert [(issue.path, issue.message) for issue in result.issues] == [
        (
            "tasks[0].config.count",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "tasks[1].config.seconds",
            "Input should be a valid number, unable to parse string as a number",
        ),
        ("tasks[2].config.url", "'url' is required"),
        ("tasks[3].config.secs", "unknown field 'secs'"),
    ]
    assert result.issues[3].hint == "did you mean 'seconds'?"


# --- sources --------------------------------------------------------------------------------


def test_yaml_syntax_error_becomes_an_issue_with_its_position() -> None:
    result = validate("tasks:\n  - id: a\n    type: [delay\n")

    assert len(result.issues) == 1
    issue = result.issues[0]
    assert issue.message.startswith("invalid YAML: ")
    assert (issue.line, issue.column) == (4, 1)
    assert result.orchestration is None
    assert result.plan is None


def test_json_document_positions() -> None:
    doc = """\
{
  "tasks": [
    {"id": "a", "type": "delay", "needs": ["b"]}
  ]
}
"""
    result = validate(doc)

    assert where(result.issues) == [(3, 44, "unknown dependency 'b': no task has that id")]
    assert result.issues[0].hint == "tasks: a"


def test_mapping_and_file_sources(tmp_path: Path) -> None:
    mapping = {"tasks": [{"id": "a", "type": "delay", "needs": ["b"]}]}
    assert where(validate(mapping).issues) == [
        (None, None, "unknown dependency 'b': no task has that id")
    ]

    path = tmp_path / "doc.yaml"
    path.write_text(SEED_FIXED, encoding="utf-8")
    assert validate(path).ok
    missing = validate(tmp_path / "nope.yaml")
    assert where(missing.issues) == [(None, None, f"no such file: {tmp_path / 'nope.yaml'}")]


def test_raise_for_errors() -> None:
    with pytest.raises(DocumentError) as caught:
        validate(SEED).raise_for_errors()
    assert len(caught.value.issues) == 3

    orchestration = validate(SEED_FIXED).raise_for_errors()
    assert [task.id for task in orchestration.tasks] == [
        "extract_site_a",
        "extract_site_b",
        "merge_content",
        "publish_all",
    ]


def test_a_validated_task_holds_little_memory() -> None:
    """A run holds every task's TaskSpec until it ends (100,000 of them in a large run): a task
    is its fields, its config and its id, without a model's ``__dict__`` and fields-set (a
    BaseModel measured 1,060 bytes a task here, the slotted dataclass 406)."""
    document = {
        "tasks": [{"id": f"t{n}", "type": "delay", "config": {"seconds": 0}} for n in range(2000)]
    }
    validate(document)  # what is built once (schemas, caches) is not counted
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        orchestration = validate(document).raise_for_errors()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(orchestration.tasks) == 2000
    assert held / 2000 < 600


# --- the plan -------------------------------------------------------------------------------

PLAN_DOC = """\
mode: {mode}
max_concurrent: 3
limits:
  api: {{concurrency: 2, rate: 10/s}}
  spare: {{rate: 1/m}}
tasks:
  - id: a
    type: delay
    limit: api
  - id: b
    type: delay
    limit: api
  - id: c
    type: delay
    needs: [a]
  - id: d
    type: delay
    needs: [b, c]
    for_each: [1, 2]
"""


def plan_of(doc: str) -> Plan:
    result = validate(doc)
    assert result.issues == []
    assert result.plan is not None
    return result.plan


def test_plan_of_a_parallel_document() -> None:
    plan = plan_of(PLAN_DOC.format(mode="parallel"))

    assert plan.to_dict() == {
        "mode": "parallel",
        "task_count": 4,
        "max_concurrent": 3,
        "stages": [["a", "b"], ["c"], ["d"]],
        "critical_path": ["a", "c", "d"],
        "limits": {
            "api": {"concurrency": 2, "rate": "10/s", "tasks": ["a", "b"]},
            "spare": {"concurrency": None, "rate": "1/m", "tasks": []},
        },
        "fan_outs": ["d"],
    }
    assert json.loads(json.dumps(plan.to_dict())) == plan.to_dict()
    assert plan.describe() == (
        "4 tasks in 3 stages (parallel, 3 at once)\n"
        "  stage 1: a, b\n"
        "  stage 2: c\n"
        "  stage 3: d\n"
        "critical path: a -> c -> d (3 tasks)\n"
        "limits:\n"
        "  api (2 at once, 10/s): a, b\n"
        "  spare (1/m): no task uses it\n"
        "fan-out (one child per item): d"
    )


def test_plan_stages_per_mode() -> None:
    sequential = plan_of(PLAN_DOC.format(mode="sequential"))
    assert sequential.stages == [["a"], ["b"], ["c"], ["d"]]
    assert (
        sequential.describe().splitlines()[0] == "4 tasks in 4 stages (sequential, one at a time)"
    )
    assert plan_of(PLAN_DOC.format(mode="mixed")).stages == [["a", "b"], ["c"], ["d"]]


def test_execution_stages_per_mode() -> None:
    def stages(mode: str) -> list[list[str]]:
        return execution_stages(validate(PLAN_DOC.format(mode=mode)).raise_for_errors())

    assert stages("parallel") == [["a", "b", "c", "d"]]
    assert stages("sequential") == [["a"], ["b"], ["c"], ["d"]]
    assert stages("mixed") == [["a", "b"], ["c"], ["d"]]


def test_explicit_stages_are_inherited_from_dependencies_or_take_the_lowest() -> None:
    doc = """\
mode: mixed
tasks:
  - id: gen
    type: delay
    stage: 5
  - id: early
    type: delay
  - id: pub
    type: delay
    stage: 7
    needs: [gen]
  - id: after_pub
    type: delay
    needs: [pub]
  - id: after_gen
    type: delay
    needs: [gen]
"""
    result = validate(doc)

    assert result.issues == []
    assert result.orchestration is not None
    expected = [["gen", "early", "after_gen"], ["pub", "after_pub"]]
    assert execution_stages(result.orchestration) == expected
    assert result.plan is not None
    assert result.plan.stages == expected
    assert result.plan.describe().splitlines()[0] == "5 tasks in 2 stages (mixed, 10 at once)"


def test_critical_path_ties_go_to_the_earliest_task_in_the_document() -> None:
    doc = """\
tasks:
  - id: x
    type: delay
  - id: y
    type: delay
  - id: z
    type: delay
    needs: [y, x]
  - id: w
    type: delay
    needs: [y]
"""
    assert plan_of(doc).critical_path == ["x", "z"]
    assert plan_of("tasks: [{id: only, type: delay}]").describe() == (
        "1 task in 1 stage (parallel, 10 at once)\n  stage 1: only\ncritical path: only (1 task)"
    )


def test_the_plan_does_not_depend_on_the_order_tasks_are_listed_in() -> None:
    tasks = [
        {"id": "a", "type": "delay"},
        {"id": "b", "type": "delay"},
        {"id": "c", "type": "delay", "needs": ["a"]},
        {"id": "d", "type": "delay", "needs": ["b", "c"]},
        {"id": "e", "type": "delay", "needs": ["d"]},
    ]
    for listed in itertools.permutations(tasks):
        plan = validate({"tasks": list(listed)}).plan

        assert plan is not None
        assert [set(stage) for stage in plan.stages] == [{"a", "b"}, {"c"}, {"d"}, {"e"}]
        assert plan.critical_path == ["a", "c", "d", "e"]


def test_dag_levels_and_ancestors() -> None:
    tasks = [
        TaskSpec(id="a", type="delay"),
        TaskSpec(id="b", type="delay"),
        TaskSpec(id="c", type="delay", dependencies=("a",)),
        TaskSpec(id="d", type="delay", dependencies=("b", "c")),
    ]

    assert dag_levels(tasks) == {"a": 0, "b": 0, "c": 1, "d": 2}
    assert ancestors(tasks) == {"a": set(), "b": set(), "c": {"a"}, "d": {"a", "b", "c"}}


def test_a_long_chain_validates_without_recursion_limits() -> None:
    count = 3000
    tasks = [{"id": "t0", "type": "delay"}] + [
        {"id": f"t{n}", "type": "delay", "needs": [f"t{n - 1}"]} for n in range(1, count)
    ]
    result = validate({"tasks": tasks})

    assert isinstance(result, Validation)
    assert result.ok
    assert result.plan is not None
    assert len(result.plan.stages) == count
    assert result.plan.critical_path[-1] == f"t{count - 1}"
    assert len(result.plan.critical_path) == count
