"""The data_processing runner: every action's output, its errors, and config validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli
from pydantic import ValidationError

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners import discover
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.data import RUNNER, DataProcessingRunner

pytestmark = pytest.mark.anyio

LogLine = tuple[str, str, dict[str, Any] | None]

PRODUCTS = [
    {"name": "atlas", "category": "books", "price": 12},
    {"name": "chess", "category": "games", "price": 30},
    {"name": "poems", "category": "books", "price": 5},
    {"name": "cards", "category": "games", "price": None},
]


async def run(config: dict[str, Any], ctx: RunContext) -> Any:
    runner = RUNNER()
    output = await runner.run(runner.parse_config(config), ctx)
    json.dumps(output)  # outputs must be JSON-able
    return output


async def fails(config: dict[str, Any], ctx: RunContext) -> TaskError:
    with pytest.raises(TaskError) as caught:
        await run(config, ctx)
    assert caught.value.error_class == "config"
    return caught.value


def invalid(config: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        RUNNER().parse_config(config)
    return caught.value.errors(include_url=False)


# --- discovery and metadata -----------------------------------------------------------------


def test_discovery_finds_data_processing() -> None:
    assert discover()["data_processing"] is DataProcessingRunner


def test_example_is_a_valid_task() -> None:
    assert RUNNER.example["type"] == RUNNER.type_name == "data_processing"
    config = RUNNER().parse_config(RUNNER.example["config"])
    assert config.action == "merge"
    assert RUNNER.summary.endswith(".")


# --- merge ------------------------------------------------------------------------------------


async def test_merge_concatenates_lists_in_order_skipping_nulls(
    ctx: RunContext, log_lines: list[LogLine]
) -> None:
    config = {"action": "merge", "inputs": [[1, 2], None, [3], [], [{"a": 1}]]}
    assert await run(config, ctx) == [1, 2, 3, {"a": 1}]
    assert log_lines == [("info", "merged 4 input(s) into 4 items", None)]


async def test_merge_of_objects_keeps_every_value(
    ctx: RunContext, log_lines: list[LogLine]
) -> None:
    first = {"a": 1, "same": "x", "nested": {"x": 1, "deeper": {"p": 1}}, "tags": [1]}
    second = {"b": 2, "same": "x", "nested": {"deeper": {"q": 2}, "x": 9}, "tags": [2]}
    inputs = [first, None, second, {"a": 3}]
    before = copy.deepcopy(inputs)
    result = await run({"action": "merge", "inputs": inputs}, ctx)
    assert result == {
        "a": [1, 3],
        "same": "x",
        "nested": {"x": [1, 9], "deeper": {"p": 1, "q": 2}},
        "tags": [1, 2],
        "b": 2,
    }
    assert inputs == before  # the inputs are not modified
    assert log_lines == [
        (
            "info",
            "merged 3 input(s) into an object with 5 keys; 2 key(s) differed (nested.x, a): "
            "kept every value in a list (on_conflict)",
            None,
        )
    ]


async def test_merge_of_two_browser_outputs_keeps_both_sites_items(ctx: RunContext) -> None:
    site_a = {"url": "http://a/", "title": "A", "data": ["a1", "a2"], "artifacts": []}
    site_b = {"url": "http://b/", "title": "B", "data": ["b1"], "artifacts": ["b.png"]}
    assert await run({"action": "merge", "inputs": [site_a, site_b]}, ctx) == {
        "url": ["http://a/", "http://b/"],
        "title": ["A", "B"],
        "data": ["a1", "a2", "b1"],
        "artifacts": ["b.png"],
    }


@pytest.mark.parametrize(
    ("policy", "expected", "kept"),
    [
        ("last", {"a": 3, "n": {"x": 9, "y": 2}, "tags": [2]}, "the last input's value"),
        ("first", {"a": 1, "n": {"x": 1, "y": 2}, "tags": [1]}, "the first input's value"),
    ],
)
async def test_merge_first_or_last_keeps_one_value_and_names_the_keys(
    ctx: RunContext,
    log_lines: list[LogLine],
    policy: str,
    expected: dict[str, Any],
    kept: str,
) -> None:
    inputs = [{"a": 1, "n": {"x": 1}, "tags": [1]}, {"n": {"x": 9, "y": 2}}, {"a": 3, "tags": [2]}]
    config = {"action": "merge", "inputs": inputs, "on_conflict": policy}
    assert await run(config, ctx) == expected
    assert log_lines[-1][1] == (
        f"merged 3 input(s) into an object with 3 keys; 3 key(s) differed (n.x, a, tags): "
        f"kept {kept} (on_conflict)"
    )


async def test_merge_on_conflict_error_names_the_key_and_both_inputs(ctx: RunContext) -> None:
    inputs = [{"page": {"title": "Site A"}}, {"other": 1}, {"page": {"title": "Site B"}}]
    error = await fails({"action": "merge", "inputs": inputs, "on_conflict": "error"}, ctx)
    assert error.message == (
        "merge would lose data: 'page.title' is 'Site A' in inputs[0] but 'Site B' in "
        "inputs[2]; set on_conflict: collect to keep both, first or last to keep one, or point "
        "the inputs at the parts to merge"
    )
    agreeing = [{"a": 1, "l": [1]}, {"a": 1, "l": [2]}]
    config = {"action": "merge", "inputs": agreeing, "on_conflict": "error"}
    assert await run(config, ctx) == {"a": 1, "l": [1, 2]}


async def test_merge_of_nothing_is_an_empty_list(ctx: RunContext) -> None:
    assert await run({"action": "merge", "inputs": [None, None]}, ctx) == []
    assert await run({"action": "merge", "inputs": []}, ctx) == []


async def test_merge_single_input_returns_it(ctx: RunContext) -> None:
    assert await run({"action": "merge", "input": {"a": {"b": 1}}}, ctx) == {"a": {"b": 1}}


async def test_merge_mixing_lists_and_objects_names_the_odd_input(ctx: RunContext) -> None:
    error = await fails({"action": "merge", "inputs": [None, [1], [2], {"a": 1}]}, ctx)
    assert error.message == (
        "merge cannot mix lists and objects: inputs[3] is an object but inputs[1] is a list"
    )


async def test_merge_rejects_scalars(ctx: RunContext) -> None:
    error = await fails({"action": "merge", "inputs": [[1], "abc"]}, ctx)
    assert error.message == "merge takes lists or objects, but inputs[1] is a string 'abc'"


# --- filter, map, select --------------------------------------------------------------------


async def test_filter_keeps_items_matching_the_predicate(
    ctx: RunContext, log_lines: list[LogLine]
) -> None:
    result = await run({"action": "filter", "input": PRODUCTS, "where": "price > `10`"}, ctx)
    assert [item["name"] for item in result] == ["atlas", "chess"]
    assert log_lines[-1][1] == "filter kept 2 of 4 items"


async def test_filter_uses_jmespath_truthiness(ctx: RunContext) -> None:
    items = [{"tags": []}, {"tags": ["x"]}, {"tags": 0}, {}, {"tags": ""}, {"tags": False}]
    result = await run({"action": "filter", "input": items, "where": "tags"}, ctx)
    assert result == [{"tags": ["x"]}, {"tags": 0}]


async def test_filter_concatenates_several_inputs_first(ctx: RunContext) -> None:
    config = {"action": "filter", "inputs": [[1, 5], None, [7, 2]], "where": "@ > `3`"}
    assert await run(config, ctx) == [5, 7]


async def test_filter_names_the_item_an_expression_fails_on(ctx: RunContext) -> None:
    items = [{"price": 1}, {"price": "cheap"}]
    error = await fails({"action": "filter", "input": items, "where": "price > `10`"}, ctx)
    assert error.message.startswith(
        "JMESPath 'price > `10`' failed on item 1 (an object {'price': 'cheap'})"
    )


async def test_map_with_an_expression_gives_one_value_per_item(ctx: RunContext) -> None:
    result = await run({"action": "map", "input": PRODUCTS, "expression": "name"}, ctx)
    assert result == ["atlas", "chess", "poems", "cards"]


async def test_map_with_fields_builds_objects_like_select(ctx: RunContext) -> None:
    config = {"action": "map", "input": PRODUCTS[:2], "fields": {"title": "name", "cost": "price"}}
    assert await run(config, ctx) == [
        {"title": "atlas", "cost": 12},
        {"title": "chess", "cost": 30},
    ]


async def test_select_with_a_list_keys_by_the_expression_text(ctx: RunContext) -> None:
    items = [{"name": "a", "meta": {"id": 7}, "first-name": "Ann"}]
    config = {"action": "select", "input": items, "fields": ["name", "meta.id", '"first-name"']}
    assert await run(config, ctx) == [{"name": "a", "meta.id": 7, "first-name": "Ann"}]


async def test_select_with_a_mapping_names_the_fields(ctx: RunContext) -> None:
    config = {
        "action": "select",
        "input": PRODUCTS[:2],
        "fields": {"title": "name", "expensive": "price > `20`", "missing": "nope"},
    }
    assert await run(config, ctx) == [
        {"title": "atlas", "expensive": False, "missing": None},
        {"title": "chess", "expensive": True, "missing": None},
    ]


# --- dedupe, sort, group_by -----------------------------------------------------------------


async def test_dedupe_by_key_keeps_the_first(ctx: RunContext) -> None:
    items = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 1, "v": "c"}, {"v": "d"}, {"v": "e"}]
    result = await run({"action": "dedupe", "input": items, "key": "id"}, ctx)
    assert result == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"v": "d"}]


async def test_dedupe_without_key_compares_whole_items(ctx: RunContext) -> None:
    items = [1, 2, 1, {"a": 1, "b": 2}, {"b": 2, "a": 1}, [1], [1], "1"]
    assert await run({"action": "dedupe", "input": items}, ctx) == [
        1,
        2,
        {"a": 1, "b": 2},
        [1],
        "1",
    ]


async def test_sort_by_key_ascending_with_null_keys_last(ctx: RunContext) -> None:
    result = await run({"action": "sort", "input": PRODUCTS, "key": "price"}, ctx)
    assert [item["name"] for item in result] == ["poems", "atlas", "chess", "cards"]


async def test_sort_descending_keeps_null_keys_last_and_ties_in_order(ctx: RunContext) -> None:
    items = [
        {"n": "a", "p": 1},
        {"n": "b"},
        {"n": "c", "p": 3},
        {"n": "d", "p": 1},
    ]
    result = await run({"action": "sort", "input": items, "key": "p", "order": "desc"}, ctx)
    assert [item["n"] for item in result] == ["c", "a", "d", "b"]


async def test_sort_orders_one_kind_of_value_with_nulls_last(ctx: RunContext) -> None:
    assert await run({"action": "sort", "input": [3, None, 1, 2.5]}, ctx) == [1, 2.5, 3, None]
    assert await run({"action": "sort", "input": ["b", "a", "B"]}, ctx) == ["B", "a", "b"]
    assert await run({"action": "sort", "input": [True, False]}, ctx) == [False, True]


async def test_sort_refuses_values_it_cannot_order(ctx: RunContext) -> None:
    with pytest.raises(TaskError) as mixed:
        await run({"action": "sort", "input": [{"p": 3}, {"p": "10"}], "key": "p"}, ctx)
    assert mixed.value.error_class == "config"
    assert str(mixed.value) == (
        "sort cannot order a number 3 (item 0) and a string '10' (item 1): the values must be "
        "all numbers, all strings or all booleans; make them one kind with the key, e.g. "
        "key: 'to_number(p)'"
    )
    with pytest.raises(TaskError, match=r"^sort cannot order an object \{'k': 1\} \(item 1\)"):
        await run({"action": "sort", "input": [None, {"k": 1}]}, ctx)
    with pytest.raises(TaskError, match=r"^aggregate 'top' \(max:p\) cannot order a number 1"):
        await run(
            {"action": "aggregate", "input": [{"p": 1}, {"p": "x"}], "ops": {"top": "max:p"}}, ctx
        )


def test_a_sort_of_mixed_values_fails_saying_why_through_the_cli(tmp_path: Path) -> None:
    document = tmp_path / "sort.yaml"
    document.write_text(
        "tasks:\n"
        "  - {id: prices, type: delay, config: {value: [{p: 9}, {p: '10'}, {p: 2}]}}\n"
        "  - {id: ranked, type: data, needs: prices, config: "
        "{action: sort, input: '${prices.output}', key: p}}\n"
    )
    ran = cli(tmp_path / "home", "run", document, "--json")
    assert ran.code == 1, ran.stderr
    task = json.loads(ran.stdout)["tasks"]["ranked"]
    assert (task["state"], task["error_class"]) == ("failed", "config")
    assert task["error"].startswith("sort cannot order a number 9 (item 0) and a string '10'")


async def test_sort_by_a_key_no_item_has_says_so(ctx: RunContext, log_lines: list[LogLine]) -> None:
    items = [{"price": 2}, {"price": 1}]
    assert await run({"action": "sort", "input": items, "key": "prce"}, ctx) == items
    assert (
        log_lines[-1][1]
        == "sorted nothing: the key 'prce' is null for all 2 items (is its name right?)"
    )


async def test_sort_concatenates_inputs(ctx: RunContext, log_lines: list[LogLine]) -> None:
    assert await run({"action": "sort", "inputs": [[3, 1], None, [2]]}, ctx) == [1, 2, 3]
    assert log_lines[-1][1] == "sorted 3 items (asc)"


async def test_group_by_keys_by_text_in_first_seen_order(ctx: RunContext) -> None:
    result = await run({"action": "group_by", "input": PRODUCTS, "key": "category"}, ctx)
    assert list(result) == ["books", "games"]
    assert result == {
        "books": [PRODUCTS[0], PRODUCTS[2]],
        "games": [PRODUCTS[1], PRODUCTS[3]],
    }


async def test_group_by_non_string_keys_uses_their_json(ctx: RunContext) -> None:
    items = [{"k": 1}, {"k": True}, {}, {"k": 1}, {"k": "1"}]
    result = await run({"action": "group_by", "input": items, "key": "k"}, ctx)
    assert result == {
        "1": [{"k": 1}, {"k": 1}, {"k": "1"}],
        "true": [{"k": True}],
        "null": [{}],
    }


# --- join ------------------------------------------------------------------------------------

USERS = [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}]
ORDERS = [{"id": 1, "total": 10}, {"id": 2, "total": 7}, {"id": 1, "total": 5}]


async def test_join_inner_gives_a_row_per_matching_pair(
    ctx: RunContext, log_lines: list[LogLine]
) -> None:
    result = await run({"action": "join", "inputs": [USERS, ORDERS], "on": "id"}, ctx)
    assert result == [
        {"id": 1, "name": "ann", "total": 10},
        {"id": 1, "name": "ann", "total": 5},
        {"id": 2, "name": "bob", "total": 7},
    ]
    assert log_lines[-1][1] == "joined 3 left and 3 right items into 3 rows (inner)"


async def test_join_left_keeps_unmatched_left_rows(ctx: RunContext) -> None:
    config = {"action": "join", "inputs": [USERS, ORDERS[:2]], "on": "id", "how": "left"}
    assert await run(config, ctx) == [
        {"id": 1, "name": "ann", "total": 10},
        {"id": 2, "name": "bob", "total": 7},
        {"id": 3, "name": "cy"},
    ]


async def test_join_right_keys_win_except_the_left_key(ctx: RunContext) -> None:
    left = [{"id": 1, "city": "Oslo", "name": "ann"}]
    right = [{"user_id": 1, "id": 99, "city": "Rome"}]
    config = {"action": "join", "inputs": [left, right], "left_on": "id", "right_on": "user_id"}
    assert await run(config, ctx) == [{"id": 1, "city": "Rome", "name": "ann", "user_id": 1}]


async def test_join_on_a_jmespath_key_and_null_keys_never_match(ctx: RunContext) -> None:
    left = [{"user": {"id": 1}}, {"user": {}}]
    right = [{"user": {"id": 1}, "x": 1}, {"user": {}, "x": 2}]
    config = {"action": "join", "inputs": [left, right], "on": "user.id", "how": "left"}
    assert await run(config, ctx) == [{"user": {"id": 1}, "x": 1}, {"user": {}}]


async def test_join_needs_lists_of_objects(ctx: RunContext) -> None:
    error = await fails({"action": "join", "inputs": [{"id": 1}, ORDERS], "on": "id"}, ctx)
    assert error.message == (
        "join needs a list of objects on the left (inputs[0]), got an object {'id': 1}"
    )
    error = await fails({"action": "join", "inputs": [USERS, [{"id": 1}, 5]], "on": "id"}, ctx)
    assert error.message == "join: right (inputs[1]) item 1 is a number 5, not an object"


# --- aggregate -------------------------------------------------------------------------------

OPS = {
    "n": "count",
    "priced": "count:price",
    "total": "sum:price",
    "mean": "avg:price",
    "lo": "min:price",
    "hi": "max:price",
}


async def test_aggregate_over_all_items(ctx: RunContext) -> None:
    result = await run({"action": "aggregate", "input": PRODUCTS, "ops": OPS}, ctx)
    assert result == {"n": 4, "priced": 3, "total": 47, "mean": 47 / 3, "lo": 5, "hi": 30}


async def test_aggregate_by_group_in_first_seen_order(ctx: RunContext) -> None:
    config = {"action": "aggregate", "input": PRODUCTS, "ops": OPS, "group_by": "category"}
    assert await run(config, ctx) == [
        {"category": "books", "n": 2, "priced": 2, "total": 17, "mean": 8.5, "lo": 5, "hi": 12},
        {"category": "games", "n": 2, "priced": 1, "total": 30, "mean": 30.0, "lo": 30, "hi": 30},
    ]


async def test_aggregate_by_several_keys(ctx: RunContext) -> None:
    items = [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "x"}]
    config = {"action": "aggregate", "input": items, "ops": {"n": "count"}, "group_by": ["a", "b"]}
    assert await run(config, ctx) == [{"a": 1, "b": "x", "n": 2}, {"a": 1, "b": "y", "n": 1}]


async def test_aggregate_of_nothing(ctx: RunContext) -> None:
    result = await run({"action": "aggregate", "input": [], "ops": OPS}, ctx)
    assert result == {"n": 0, "priced": 0, "total": 0, "mean": None, "lo": None, "hi": None}


async def test_aggregate_sum_needs_numbers(ctx: RunContext) -> None:
    items = [{"price": 1}, {"price": "x"}]
    error = await fails({"action": "aggregate", "input": items, "ops": {"t": "sum:price"}}, ctx)
    assert error.message == "aggregate 't' (sum:price) needs numbers, but one value is a string 'x'"


# --- flatten and pick ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (None, [1, [2, [3]], 4, 5]),
        (2, [1, 2, [3], 4, 5]),
        (5, [1, 2, 3, 4, 5]),
    ],
)
async def test_flatten_by_depth(ctx: RunContext, depth: int | None, expected: list[Any]) -> None:
    config: dict[str, Any] = {"action": "flatten", "input": [[1, [2, [3]]], 4, [5]]}
    if depth is not None:
        config["depth"] = depth
    assert await run(config, ctx) == expected


async def test_pick_fields_from_an_object(ctx: RunContext) -> None:
    source = {"a": 1, "b": {"c": 2}, "d": 3}
    assert await run({"action": "pick", "input": source, "fields": ["a", "b.c"]}, ctx) == {
        "a": 1,
        "b.c": 2,
    }
    assert await run({"action": "pick", "input": source, "fields": {"x": "b.c"}}, ctx) == {"x": 2}


async def test_pick_fields_from_each_item_of_a_list(ctx: RunContext) -> None:
    config = {"action": "pick", "input": PRODUCTS[:2], "fields": ["name"]}
    assert await run(config, ctx) == [{"name": "atlas"}, {"name": "chess"}]


async def test_pick_path_reads_one_value(ctx: RunContext, log_lines: list[LogLine]) -> None:
    source = {"data": {"items": [{"id": 4}, {"id": 5}]}}
    assert await run({"action": "pick", "input": source, "path": "data.items[].id"}, ctx) == [4, 5]
    assert log_lines[-1][1] == "picked 'data.items[].id': a list"
    config = {"action": "pick", "inputs": [[1, 2], [3]], "path": "length(@)"}
    assert await run(config, ctx) == 3


async def test_pick_fields_needs_an_object_or_list(ctx: RunContext) -> None:
    error = await fails({"action": "pick", "input": 42, "fields": ["a"]}, ctx)
    assert (
        error.message == "pick with 'fields' needs an object or a list, but 'input' is a number 42"
    )


# --- inputs that are not lists ---------------------------------------------------------------


async def test_input_must_be_a_list_for_list_actions(ctx: RunContext) -> None:
    error = await fails({"action": "filter", "input": {"items": [1]}, "where": "@"}, ctx)
    assert error.message == (
        "action 'filter' needs a list, but 'input' is an object {'items': [1]}; "
        "point it at a list, e.g. '${task.output.items}'"
    )


async def test_each_of_several_inputs_must_be_a_list(ctx: RunContext) -> None:
    error = await fails({"action": "flatten", "inputs": [[1], None, 5]}, ctx)
    assert error.message.startswith(
        "action 'flatten' concatenates lists, but inputs[2] is a number 5;"
    )


async def test_long_values_are_shortened_in_messages(ctx: RunContext) -> None:
    error = await fails({"action": "sort", "input": "x" * 500}, ctx)
    assert len(error.message) < 200
    assert "a string 'xxxx" in error.message


# --- config validation -----------------------------------------------------------------------


def test_jmespath_syntax_error_is_a_validation_error_at_the_field() -> None:
    (error,) = invalid({"action": "filter", "input": [], "where": "price > `10"})
    assert error["loc"] == ("where",)
    assert error["msg"] == (
        "invalid JMESPath in 'where': Unclosed ` delimiter at character 9 in 'price > `10'"
    )
    assert "backticks" in error["ctx"]["hint"]


def test_jmespath_errors_in_lists_and_mappings_point_at_the_entry() -> None:
    errors = invalid({"action": "select", "input": [], "fields": ["ok", "first-name", "a["]})
    assert [(e["loc"], e["msg"]) for e in errors] == [
        (
            ("fields", 1),
            "invalid JMESPath in 'fields': Unknown token '-' at character 6 in 'first-name'",
        ),
        (("fields", 2), "invalid JMESPath in 'fields': the expression ends too early in 'a['"),
    ]
    (error,) = invalid({"action": "aggregate", "input": [], "ops": {"t": "sum:a b"}})
    assert error["loc"] == ("ops", "t")
    assert error["msg"] == "invalid JMESPath in 'ops.t': unexpected 'b' at character 3 in 'a b'"


def test_expressions_holding_references_are_checked_once_resolved() -> None:
    config = RUNNER().parse_config({"action": "filter", "input": [], "where": "p > ${vars.min}"})
    assert config.where == "p > ${vars.min}"


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        ({"action": "filter", "input": []}, ("where",), "action 'filter' needs 'where'"),
        ({"action": "group_by", "input": []}, ("key",), "action 'group_by' needs 'key'"),
        ({"action": "select", "input": []}, ("fields",), "action 'select' needs 'fields'"),
        ({"action": "aggregate", "input": []}, ("ops",), "action 'aggregate' needs 'ops'"),
        (
            {"action": "aggregate", "input": [], "ops": {}},
            ("ops",),
            "action 'aggregate' needs at least one entry in 'ops'",
        ),
        (
            {"action": "join", "inputs": [[], []]},
            ("on",),
            "action 'join' needs 'on' (or both 'left_on' and 'right_on')",
        ),
        (
            {"action": "join", "inputs": [[], []], "left_on": "a"},
            ("on",),
            "action 'join' needs 'on' (or both 'left_on' and 'right_on')",
        ),
        (
            {"action": "join", "inputs": [[], []], "on": "a", "right_on": "b"},
            ("on",),
            "action 'join' takes 'on', or 'left_on' and 'right_on', not both",
        ),
        (
            {"action": "join", "inputs": [[], [], []], "on": "id"},
            ("action",),
            "action 'join' needs 'inputs: [left, right]' (exactly two), got 3 inputs",
        ),
        (
            {"action": "join", "input": [], "on": "id"},
            ("action",),
            "action 'join' needs 'inputs: [left, right]' (exactly two), got 'input'",
        ),
        (
            {"action": "map", "input": []},
            ("expression",),
            "action 'map' needs 'expression' or 'fields'",
        ),
        (
            {"action": "map", "input": [], "expression": "a", "fields": ["b"]},
            ("fields",),
            "action 'map' takes 'expression' or 'fields', not both",
        ),
        ({"action": "pick", "input": {}}, ("fields",), "action 'pick' needs 'fields' or 'path'"),
        (
            {"action": "sort", "input": [], "where": "a"},
            ("where",),
            "action 'sort' does not use 'where'; it uses: key, order",
        ),
        (
            {"action": "merge", "inputs": [], "depth": 2},
            ("depth",),
            "action 'merge' does not use 'depth'; it uses: on_conflict",
        ),
        (
            {"action": "sort"},
            ("input",),
            "action 'sort' needs 'input' (one value, e.g. '${task.output}') "
            "or 'inputs' (several values)",
        ),
        (
            {"action": "sort", "input": [], "inputs": []},
            ("action",),
            "give either 'input' (one value) or 'inputs' (several), not both",
        ),
        (
            {"action": "aggregate", "input": [], "ops": {"k": "count"}, "group_by": "k"},
            ("ops", "k"),
            "'k' names both a group key and an operation; rename the operation",
        ),
    ],
)
def test_each_action_says_what_it_needs(
    config: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    (error,) = invalid(config)
    assert (error["loc"], error["msg"]) == (loc, message)


def test_every_problem_is_reported_at_once() -> None:
    errors = invalid({"action": "join", "inputs": [[], []], "where": "a", "depth": 2})
    assert [error["loc"] for error in errors] == [("where",), ("depth",), ("on",)]


def test_aggregate_ops_are_checked() -> None:
    (error,) = invalid({"action": "aggregate", "input": [], "ops": {"t": "mean:price"}})
    assert (error["loc"], error["msg"]) == (("ops", "t"), "ops.t: unknown operation 'mean'")
    (error,) = invalid({"action": "aggregate", "input": [], "ops": {"t": "summ:price"}})
    assert error["ctx"]["hint"] == "did you mean 'sum'?"
    (error,) = invalid({"action": "aggregate", "input": [], "ops": {"t": "sum"}})
    assert error["msg"] == "ops.t: 'sum' needs a field, e.g. 'sum:price'"


def test_unknown_keys_and_actions_are_errors() -> None:
    (error,) = invalid({"action": "filter", "input": [], "where": "a", "wher": "b"})
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("wher",))
    (error,) = invalid({"action": "merj", "inputs": []})
    assert (error["type"], error["loc"]) == ("literal_error", ("action",))
    (error,) = invalid({"action": "flatten", "input": [], "depth": 0})
    assert error["loc"] == ("depth",)
