"""Loading a document quickly without changing what it loads to, or where its problems are.

YAML is read straight from libyaml's events (``yaml_events``) unless the text needs the careful
path (``hardened_yaml``: aliases, tags, errors); JSON by orjson, with the standard library for
what orjson refuses; and where each value sits is found only when a problem is reported. Each
of these is checked against the careful path, on the same text: the same values, the same
positions, the same refusals. (How fast: ``python -m bench --only W9``.)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from multi_task_orchestrator.engine.document import yaml_events
from multi_task_orchestrator.engine.document.hardened_yaml import compose
from multi_task_orchestrator.engine.document.loader import (
    MAX_NESTING_DEPTH,
    _load_yaml_carefully,
    load_text,
)
from multi_task_orchestrator.engine.document.raw import positions_in
from multi_task_orchestrator.engine.document.validation import validate
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings

examples = settings(
    max_examples=300 if os.environ.get("CI") else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def carefully(text: str) -> tuple[bool, Any]:
    """What the careful path builds of ``text`` (it raises what it refuses)."""
    loader, node = compose(text, MAX_NESTING_DEPTH)
    try:
        return (False, None) if node is None else (True, loader.construct_document(node))
    finally:
        loader.dispose()


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself, and True not equal to 1 (a type is part of a value)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# scalars YAML reads as something else than text, or almost does
TRICKY = [
    *["on", "no", "yes", "off", "y", "n", "true", "False", "TRUE", "~", "null", "Null", ""],
    *["0x1F", "0o17", "017", "1_000", "1:30", "190:20:30", "-0", "+1", ".inf", "-.Inf", ".nan"],
    *["1e3", "1.5e-3", "6.8523015e+5", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "=", "<<"],
    *["a: b", "- x", "#", "'q'", '"d"', "${a.output}", "é", "\t", " x", "x ", "\u2028", "|"],
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(TRICKY)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(TRICKY) | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)
PIECES = [
    *["tasks:", "- ", "  ", "\n", "id: ", "a", "b", ": ", ", ", "[", "]", "{", "}", "? ", "'"],
    *['"', "#", "---\n", "...\n", "|\n", ">-\n", "&a ", "*a", "!!str ", "!x ", "!! ", "! "],
    *TRICKY,
]
yaml_like = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@examples
@given(values, st.sampled_from([False, True, None]), st.integers(0, 3))
def test_written_values_read_back_as_the_careful_path_reads_them(
    value: Any, flow: bool | None, indent: int
) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, indent=indent + 2, allow_unicode=True)
    found, quick = yaml_events.read(text, MAX_NESTING_DEPTH)
    assert found
    assert same(quick, carefully(text)[1])


@examples
@given(st.one_of(yaml_like, st.text(max_size=80)))
def test_any_text_reads_as_the_careful_path_reads_it_or_is_left_to_it(text: str) -> None:
    try:
        quick = yaml_events.read(text, MAX_NESTING_DEPTH)
    except yaml_events.Careful:
        return
    careful = carefully(text)  # what the quick path reads, the careful one must read too
    assert quick[0] == careful[0]
    assert same(quick[1], careful[1])


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1]\nb: *x\n",  # an alias
        "a: !!str 1\n",  # an explicit tag
        "<<: {a: 1}\nb: 2\n",  # a merge key
        "? [a]\n: 1\n",  # a key that is a list
        "a: 1\na: 2\n",  # a key twice
        "1: a\ntrue: b\n",  # two keys Python takes for one
        "a: &q 1\nb: &q 2\n",  # an anchor twice
        "a: =\n",  # a value no constructor reads
        "a: 1\n---\nb: 2\n",  # two documents
        "a: [1\n",  # a syntax error
        "a: " + "[" * 65 + "]" * 65 + "\n",  # nested past the limit
    ],
)
def test_what_needs_care_is_left_to_the_careful_path(text: str) -> None:
    with pytest.raises(yaml_events.Careful):
        yaml_events.read(text, MAX_NESTING_DEPTH)


def test_nesting_up_to_the_limit_reads_quickly() -> None:
    deepest = "a: " + "[" * (MAX_NESTING_DEPTH - 1) + "]" * (MAX_NESTING_DEPTH - 1) + "\n"
    assert yaml_events.read(deepest, MAX_NESTING_DEPTH)[0]


DOCUMENT = """\
name: positions
tasks:
  - id: a
    type: delay
    config: {seconds: 0, note: "x"}
  - id: b
    type: delay
    dependencies: [a, c]
"""


@pytest.mark.parametrize("wrapped", [False, True])
def test_positions_found_when_asked_are_the_careful_paths(wrapped: bool) -> None:
    text = DOCUMENT
    if wrapped:
        text = "orchestration:\n" + "".join(f"  {line}\n" for line in DOCUMENT.splitlines())
    quick = load_text(text)
    careful = _load_yaml_carefully(text, "<document>", MAX_NESTING_DEPTH, None)
    assert quick.data == careful.data
    assert quick.positions == careful.positions
    where = (9, 25) if wrapped else (8, 23)
    assert quick.position(("tasks", 1, "dependencies", 1)) == where


def test_an_issue_in_a_quickly_read_document_says_where_it_is() -> None:
    result = validate(DOCUMENT)
    assert [(i.line, i.column, i.message) for i in result.errors] == [
        (8, 23, "unknown dependency 'c': no task has that id")
    ]
    as_json = json.dumps(yaml.safe_load(DOCUMENT), indent=1)
    result = validate(as_json)
    assert [(i.line, i.message) for i in result.errors] == [
        (as_json.splitlines().index('    "c"') + 1, "unknown dependency 'c': no task has that id")
    ]


def test_json_orjson_refuses_is_read_as_before() -> None:
    raw = load_text('{"tasks": [], "vars": {"n": NaN, "big": 123456789012345678901234567890}}')
    assert math.isnan(raw.data["vars"]["n"])
    assert raw.data["vars"]["big"] == 123456789012345678901234567890
    with pytest.raises(DocumentError) as caught:
        load_text('{"tasks": [\n  {"id": "a",}\n]}')
    issue = caught.value.issues[0]
    assert issue.message.startswith("invalid JSON: ")
    assert (issue.line, issue.column) == (2, 14)


@pytest.mark.parametrize("shape", ["lists", "objects", "both"])
def test_json_nested_to_the_limit_loads_and_past_it_is_refused(shape: str) -> None:
    def nested(depth: int) -> str:
        inner = "1"
        for level in range(depth - 1):  # the document itself is the first level
            use_list = shape == "lists" or (shape == "both" and level % 2)
            inner = f"[{inner}, 2]" if use_list else f'{{"k": {inner}, "j": 2}}'
        return '{"tasks": [], "x": ' + inner + "}"

    assert load_text(nested(MAX_NESTING_DEPTH)).data["tasks"] == []
    with pytest.raises(DocumentError, match="over the nesting limit of 64"):
        load_text(nested(MAX_NESTING_DEPTH + 1))


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "x", "name": "y", "tasks": []}',
        '{"tasks": [{"id": "a", "type" : "delay", "type": "http"}]}',  # one spaced from its colon
        '{"tasks": [], "vars": {"a\\":": 1, "b": {"k": 1, "k": 2}}}',  # a key holding '":'
    ],
)
def test_a_json_key_twice_in_one_object_is_refused_as_in_yaml(text: str) -> None:
    with pytest.raises(DocumentError, match="appears twice in one JSON object"):
        load_text(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"tasks": [{"id": "a", "type": "delay"}, {"id": "b", "type": "delay"}]}',
        '{"tasks" : [], "vars": {"url": "https://x", "q": "\\":\\":"}}',
    ],
)
def test_the_same_key_in_two_objects_or_colons_in_strings_load(text: str) -> None:
    assert load_text(text).data["tasks"] is not None


def test_json_yaml_cannot_read_loads_without_positions() -> None:
    text = '{"tasks": [], "' + "k" * 1100 + '": 1}'  # YAML's keys end at 1024 characters
    assert positions_in(text, MAX_NESTING_DEPTH) == {}
    raw = load_text(text)
    assert raw.data["tasks"] == []
    assert raw.position(("tasks",)) is None


ALIASED = """\
vars:
  wait: &wait {seconds: 0}
tasks:
  - {id: a, type: delay, config: *wait}
  - {id: b, type: delay, config: *wait, dependencies: [a, c]}
"""


@pytest.mark.anyio
async def test_an_agent_sees_where_the_problem_is_on_either_path(tmp_path: Path) -> None:
    """Through the MCP door: a plain document (read quickly) and one with an alias (read
    carefully) each get their problem reported at its line and column."""
    async with Client(create_server(Settings(home=tmp_path, shutdown_grace=0))) as client:
        for text, where in ((DOCUMENT, (8, 23)), (ALIASED, (5, 59))):
            result = await client.call_tool("validate_orchestration", {"spec": text})
            report = result.structured_content
            assert report is not None and report["ok"] is False
            found = [(e["line"], e["column"], e["message"]) for e in report["errors"]]
            assert (*where, "unknown dependency 'c': no task has that id") in found
