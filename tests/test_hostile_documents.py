"""Hostile documents: bombs, deep nesting, oversize text, Python payloads, and fuzzing.

Every input to the loader (``engine.document.loader.load_text``), the validator
(``engine.document.validation.validate``) and the resolver (``engine.expressions.resolve``) must
end, within a second, in a loaded document, a validation (a plan, or errors), a resolved value —
or the module's own error (DocumentError, ExpressionError). Nothing else may escape and nothing
may hang: each example runs under hypothesis' deadline, and in a thread of its own that is
interrupted if it never returns.

Properties run 300 examples each when ``CI`` is set, fewer locally.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.document.hardened_yaml import MAX_ALIAS_EXPANSION
from multi_task_orchestrator.engine.document.loader import (
    MAX_NESTING_DEPTH,
    RawDocument,
    load_mapping,
    load_text,
)
from multi_task_orchestrator.engine.document.validation import Validation, validate
from multi_task_orchestrator.engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    Scope,
    resolve,
)
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.engine.runners import discover

EXAMPLES = 300 if os.environ.get("CI") else 75
fuzzing = settings(
    max_examples=EXAMPLES,
    deadline=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RUNNER_CONFIGS = {name: runner.config_model for name, runner in discover().items()}


T = TypeVar("T")

# Only a call that never returns fails here (hypothesis' deadline judges slowness): generous, so
# a loaded machine never trips it.
HANG_SECONDS = 10.0


class Hang(Exception):
    """A call did not return in time."""


def bounded(call: Callable[[], T]) -> T:
    """``call()``, run in a thread of its own; if it has not returned after HANG_SECONDS, it is
    interrupted and this test fails with Hang.

    Not an alarm signal: its handler raises wherever the main thread happens to be — inside
    hypothesis or pytest as well as the code under test — which turned a slow example into an
    INTERNALERROR that ended the whole session. Here the exception is raised in the worker thread,
    which runs nothing but ``call``, and the test fails alone.
    """
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_exception(exc)

    worker = threading.Thread(target=run, name="bounded", daemon=True)
    worker.start()
    worker.join(HANG_SECONDS)
    if worker.is_alive():
        # stop the runaway call (at its next bytecode) rather than leave it eating a core
        assert worker.ident is not None
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(Hang)
        )
        raise Hang(f"still running after {HANG_SECONDS:g}s")
    return outcome.result()


def loads_or_refuses(text: str) -> RawDocument | DocumentError:
    try:
        raw = bounded(lambda: load_text(text))
    except DocumentError as exc:
        assert exc.issues, "a DocumentError lists its problems"
        return exc
    assert isinstance(raw.data, dict)
    return raw


def validates(source: Any) -> Validation:
    result = bounded(
        lambda: validate(
            source, available_types=set(registry.type_names()), runner_configs=RUNNER_CONFIGS
        )
    )
    assert isinstance(result, Validation)
    if result.ok:
        assert result.orchestration is not None and result.plan is not None
        json.dumps(result.plan.to_dict())
    else:
        assert result.plan is None
        assert all(issue.message for issue in result.errors)
    return result


def error_messages(source: Any) -> list[str]:
    return [issue.message for issue in validates(source).errors]


def refused(text: str) -> None:
    with pytest.raises(DocumentError):
        load_text(text)


def quickly(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- alias bombs ---------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
tasks:
  - id: boom
    type: delay
    config: {value: *i}
"""


def test_the_billion_laughs_is_refused_at_once() -> None:
    with pytest.raises(DocumentError) as caught:
        bounded(lambda: load_text(BILLION_LAUGHS))
    (issue,) = caught.value.issues
    assert issue.message == (
        f"YAML aliases in the document expand to more than {MAX_ALIAS_EXPANSION:,} values "
        "beyond those written out (an alias bomb?)"
    )
    assert error_messages(BILLION_LAUGHS) == [issue.message]


def test_a_bomb_made_of_mappings_and_merge_keys_is_refused() -> None:
    lines = ["l0: &l0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}"]
    for level in range(1, 10):
        refs = ", ".join(f"k{n}: *l{level - 1}" for n in range(10))
        lines.append(f"l{level}: &l{level} {{<<: *l{level - 1}, {refs}}}")
    text = "\n".join(lines) + "\ntasks: [{id: a, type: delay, config: {value: *l9}}]\n"
    with pytest.raises(DocumentError, match="an alias bomb"):
        bounded(lambda: load_text(text))


def test_aliases_within_the_budget_still_load() -> None:
    text = (
        "vars: {headers: &h {accept: application/json, user-agent: bot}}\n"
        "tasks:\n"
        "  - {id: a, type: http, config: {url: 'https://a.test', headers: *h}}\n"
        "  - {id: b, type: http, config: {url: 'https://b.test', headers: *h}}\n"
    )
    result = validates(text)
    assert result.ok
    assert result.orchestration is not None
    assert result.orchestration.tasks[1].config["headers"] == {
        "accept": "application/json",
        "user-agent": "bot",
    }


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\ntasks: []\n", "a: &a {b: {c: *a}}\n", "tasks: &t [{id: x, type: delay, c: *t}]"],
)
def test_an_alias_inside_its_own_value_is_refused(text: str) -> None:
    with pytest.raises(DocumentError) as caught:
        bounded(lambda: load_text(text))
    assert caught.value.issues[0].message == (
        "a YAML alias refers to a value that contains it, which would repeat forever"
    )


# --- size and nesting limits ---------------------------------------------------------------------


def test_text_over_the_size_limit_is_refused_before_parsing() -> None:
    text = "tasks:\n" + "  - {id: t, type: delay}\n" * 10
    with pytest.raises(DocumentError) as caught:
        load_text(text, max_bytes=100)
    (issue,) = caught.value.issues
    assert issue.message == f"the document is {len(text):,} bytes, over the limit of 100 bytes"
    assert issue.hint is not None and "ORCHESTRATOR_MAX_DOCUMENT_BYTES" in issue.hint
    unparseable = "{" * (6 * 1024 * 1024)  # refused for its size, never read
    assert quickly(lambda: refused(unparseable)) < 1.0
    assert validate(text, max_document_bytes=100).errors[0].message == issue.message


def test_a_mapping_over_the_size_limit_is_refused() -> None:
    document = {"tasks": [{"id": "t", "type": "delay", "config": {"value": "x" * 500}}]}
    with pytest.raises(DocumentError, match=r"the document \(as JSON\) is 5\d\d bytes"):
        load_mapping(document, max_bytes=500)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("form", ["yaml", "json", "mapping", "yaml-flow"])
@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH - 4, MAX_NESTING_DEPTH - 3, 100_000])
def test_nesting_is_limited(form: str, depth: int) -> None:
    # the document and its tasks list, a task, its config: 4 levels before the value
    document = {"tasks": [{"id": "t", "type": "delay", "config": {"value": nested(depth)}}]}
    source: Any
    if form == "mapping":
        source = document if depth < 1000 else _deep_mapping(depth)
    elif form == "json":
        source = json.dumps(document) if depth < 1000 else "[" * depth + "]" * depth
    elif form == "yaml-flow":
        source = "tasks: " + "[" * depth + "]" * depth
    else:
        source = yaml.safe_dump(document) if depth < 1000 else _deep_block_yaml(depth)
    messages = error_messages(source)  # validates() runs under bounded()
    too_deep = (
        f"the document nests mappings and lists more than {MAX_NESTING_DEPTH} levels deep, "
        f"over the nesting limit of {MAX_NESTING_DEPTH}"
    )
    levels = depth + 1 if form == "yaml-flow" else depth + 4
    if levels > MAX_NESTING_DEPTH:
        assert messages == [too_deep]
    else:
        assert too_deep not in messages


def _deep_mapping(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    top = value
    for _ in range(depth):
        value["k"] = {}
        value = value["k"]
    return top


def _deep_block_yaml(depth: int) -> str:
    return "".join(" " * level + "k:\n" for level in range(min(depth, 2000)))


def test_a_mapping_that_contains_itself_is_refused() -> None:
    document: dict[str, Any] = {"tasks": [{"id": "t", "type": "delay"}]}
    document["tasks"][0]["config"] = document
    assert "levels deep" in error_messages(document)[0]


def test_overlong_references_are_refused_everywhere() -> None:
    long = "a.output" + ".x" * MAX_EXPRESSION_LENGTH
    document = {
        "tasks": [
            {"id": "a", "type": "delay"},
            {
                "id": "b",
                "type": "delay",
                "dependencies": ["a"],
                "for_each": "${" + long + "}",
                "config": {"value": ["${" + long + "}", {"inputs": [long]}]},
            },
        ]
    }
    expected = f"a reference is {len(long)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
    assert error_messages(document) == [expected] * 3
    scope = Scope(outputs={"a": {"output": {}, "state": "succeeded", "error": None}})
    for value in ("${" + long + "}", {"inputs": [long]}, "x ${" + long + "} y"):
        with pytest.raises(ExpressionError, match="characters long; the limit is 2000"):
            resolve(value, scope)


# --- no code runs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch /tmp/pwned']",
        "!!python/object:__main__.Exploit {}",
        "!!python/name:os.system",
        "!!python/module:os",
        "!<tag:yaml.org,2002:python/object/apply:subprocess.check_output> [[id]]",
    ],
)
def test_python_tags_are_refused(tag: str) -> None:
    with pytest.raises(DocumentError) as caught:
        load_text(f"tasks: {tag}\n")
    (issue,) = caught.value.issues
    assert issue.message.startswith("invalid YAML: could not determine a constructor for the tag")
    assert (issue.line, issue.column) == (1, 8)


PAYLOADS = [
    "__import__('os').system('id')",
    "a.__class__",
    "vars.__dict__",
    "a.output.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "eval('1+1')",
    "exec('import os')",
    "a.output.__getattribute__('x')",
    "open('/etc/passwd').read()",
    "lambda: 1",
    "globals()",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_python_payloads_in_references_are_errors_or_inert(payload: str) -> None:
    outputs = {"a": {"output": {"x": 1}, "state": "succeeded", "error": None}}
    scope = Scope(outputs=outputs, vars={"v": 1})
    try:
        value = resolve({"value": "${" + payload + "}"}, scope)
    except ExpressionError as exc:
        assert str(exc)
    else:
        # names index mappings: a dunder is just a key nobody has
        assert value == {"value": None}
    document = {
        "vars": {"v": 1},
        "tasks": [
            {"id": "a", "type": "delay"},
            {"id": "b", "type": "delay", "needs": ["a"], "config": {"value": "${" + payload + "}"}},
        ],
    }
    validates(document)


def test_a_dunder_name_reads_only_data() -> None:
    outputs = {"a": {"output": {"__class__": "just a key"}, "state": "succeeded", "error": None}}
    assert resolve("${a.output.__class__}", Scope(outputs=outputs)) == "just a key"


# --- fuzzing -------------------------------------------------------------------------------------

YAML_PIECES = [
    *["tasks:", "- ", "  ", "\n", "id: ", "type: ", "config: ", "needs: ", "for_each: "],
    *["delay", "http", "shell", "a", "b", "vars", "&a ", "*a", "&b ", "*b", "<<: ", "? "],
    *["[", "]", "{", "}", ", ", ": ", "'", '"', "#", "---\n", "...\n", "%YAML 1.2\n", "|\n"],
    *["!!python/object:os.system ", "!!binary ", "!!set ", "!!str ", "!!timestamp ", "!!omap "],
    *["2024-01-01", "0x1F", ".inf", "~", "null", "yes", "on", "1e999", "-0", "\t", "\ufeff"],
    *["${a.output}", "${vars.x}", "${", "}", "$${", "\\", "é", "\x00", "\u2028", "\ud800"],
]
yaml_like = st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join)


@fuzzing
@given(st.one_of(st.text(max_size=300), yaml_like))
def test_random_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text)
    validates(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
IDS = ["a", "b", "c", "fetch", "site-a", "vars", "item", "1bad", "", "x" * 200]
ids = st.one_of(st.sampled_from(IDS), st.text(max_size=12))
REFERENCE_PIECES = [
    *IDS,
    *[".output", ".state", ".error", ".x", "[0]", "[*]", "[?", "]", "|", "||", "&&", "@", "`1`"],
    *["length(", "merge(", "sort_by(", ")", ", ", "'s'", '"q"', "vault.", "index", "item", "$"],
    *["__import__", "__class__", "__dict__", "eval(", "(", "!", "=="],
]
references = st.lists(st.sampled_from(REFERENCE_PIECES), max_size=12).map(
    lambda parts: "${" + "".join(parts) + "}"
)
config_values = st.one_of(
    json_values,
    references,
    st.dictionaries(
        st.sampled_from(["value", "inputs", "input", "url", "argv", "seconds"]),
        st.one_of(references, json_values, st.lists(references, max_size=3)),
        max_size=4,
    ),
)
types = st.one_of(
    st.sampled_from([*registry.type_names(), *registry.aliases()]),
    st.text(max_size=10),
    st.integers(),
)
tasks = st.fixed_dictionaries(
    {"id": ids, "type": types},
    optional={
        "config": config_values,
        "dependencies": st.one_of(ids, st.lists(ids, max_size=4)),
        "needs": st.lists(ids, max_size=2),
        "for_each": st.one_of(references, st.lists(json_values, max_size=3), json_values),
        "max_concurrent": st.integers(-2, 5),
        "timeout": st.one_of(st.sampled_from(["1s", "5m", "-1s", "1h30m", "x"]), json_values),
        "retry": st.one_of(st.fixed_dictionaries({"max_attempts": st.integers(0, 5)}), json_values),
        "run_if": st.sampled_from(["all_success", "always", "never"]),
        "limit": st.one_of(st.sampled_from(["api", "other"]), json_values),
        "stage": st.integers(-1, 3),
        "surprise": json_values,
    },
)
documents = st.fixed_dictionaries(
    {"tasks": st.one_of(st.lists(tasks, max_size=8), json_values)},
    optional={
        "mode": st.sampled_from(["parallel", "sequential", "mixed", "chaos"]),
        "vars": st.one_of(
            st.dictionaries(st.sampled_from(["x", "y", "base"]), json_values), json_values
        ),
        "limits": st.one_of(st.just({"api": {"concurrency": 2, "rate": "10/s"}}), json_values),
        "name": json_values,
        "max_concurrent": st.integers(-1, 20_000),
        "on_failure": st.one_of(st.just({"strategy": "abort"}), json_values),
    },
)


@fuzzing
@given(documents, st.sampled_from(["mapping", "json", "yaml", "wrapped"]))
def test_random_documents_give_a_plan_or_errors(document: dict[str, Any], form: str) -> None:
    source: Any = document
    if form == "json":
        source = json.dumps(document)
    elif form == "yaml":
        source = yaml.safe_dump(document, allow_unicode=True)
    elif form == "wrapped":
        source = {"orchestration": document}
    validates(source)


def test_a_cycle_through_every_task_is_reported_with_its_path() -> None:
    document = {
        "tasks": [
            {"id": f"t{n}", "type": "delay", "needs": [f"t{(n + 1) % 500}"]} for n in range(500)
        ]
    }
    (message,) = error_messages(document)  # validates() runs under bounded()
    assert message.startswith("dependency cycle: t0 -> t1 -> t2")
    assert message.endswith("t498 -> t499 -> t0")


scopes = st.builds(
    Scope,
    outputs=st.dictionaries(
        st.sampled_from(["a", "b", "site-a"]),
        st.fixed_dictionaries(
            {
                "output": json_values,
                "state": st.sampled_from(["succeeded", "failed"]),
                "error": st.none() | st.text(max_size=10),
            }
        ),
    ),
    vars=st.dictionaries(st.sampled_from(["x", "y", "base"]), json_values),
    item=json_values,
    index=st.none() | st.integers(0, 5),
    has_item=st.booleans(),
)


@fuzzing
@given(config_values, scopes)
def test_resolving_gives_a_value_or_an_expression_error(value: Any, scope: Scope) -> None:
    try:
        resolved = bounded(lambda: resolve(value, scope))
    except ExpressionError as exc:
        assert str(exc)
        return
    json.dumps(resolved, default=str)


@fuzzing
@given(st.text(max_size=2 * MAX_EXPRESSION_LENGTH + 50), scopes)
def test_any_text_inside_a_reference_resolves_or_fails_cleanly(text: str, scope: Scope) -> None:
    with contextlib.suppress(ExpressionError):
        bounded(lambda: resolve({"value": "${" + text + "}", "inputs": [text]}, scope))


@settings(max_examples=max(10, EXAMPLES // 10), deadline=None)
@given(st.integers(1, 300), st.sampled_from(["[", "{a: ", "- ", '{"a": ']))
def test_any_depth_of_brackets_ends_quickly(depth: int, opener: str) -> None:
    text = "tasks: " + opener * depth
    result = validates(text)  # validates() runs under bounded()
    assert not result.ok


# --- the guard itself ---------------------------------------------------------------------------

GUARDED = """
import threading

from hypothesis import Phase, given, settings, strategies as st

import test_hostile_documents as hostile

hostile.HANG_SECONDS = 0.5


def spin(n: int) -> None:
    while True:
        n += 1


@settings(max_examples=2, deadline=None, database=None, phases=[Phase.generate])
@given(st.integers())
def test_hangs(n: int) -> None:
    hostile.bounded(lambda: spin(n))


def test_after_the_hang() -> None:
    for thread in threading.enumerate():
        if thread.name == "bounded":
            thread.join(30)
    assert [t.name for t in threading.enumerate() if t.name == "bounded"] == []
"""


def test_a_hang_fails_its_own_test_and_the_session_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_guarded.py").write_text(GUARDED, encoding="utf-8")
    tests = Path(__file__).parent
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = finished.stdout + finished.stderr
    assert finished.returncode == 1, out  # tests failed; 3 would be an internal error
    assert "INTERNALERROR>" not in out
    assert "Hang: still running after 0.5s" in out
    # the spinning calls were stopped, not left running: the next test sees no worker left
    assert "1 failed, 1 passed" in out
