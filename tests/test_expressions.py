"""The ${...} reference language: parsing, finding, resolving and revealing secrets."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_secrets import MemorySecrets

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    Reference,
    Scope,
    _follow,
    find_references,
    parse_reference,
    resolve,
    reveal_secrets,
    secret_names,
)
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.secrets import NoVault


def finished(output: Any) -> dict[str, Any]:
    return {"output": output, "state": "succeeded", "error": None}


OUTPUTS = {
    "a": finished({"title": "Hello", "url": "https://a.test/1", "subtitle": None}),
    "b": finished(
        [
            {"name": "cheap", "price": 5},
            {"name": "dear", "price": 20},
            {"name": "mid", "price": 12},
        ]
    ),
    "site-a": finished(["x", "y"]),
    "typed": finished(
        {
            "list": [1, "two"],
            "dict": {"k": "v"},
            "int": 3,
            "float": 1.5,
            "yes": True,
            "no": False,
            "none": None,
            "text": "plain",
            "template": "see ${vault.TOKEN}",
        }
    ),
}
VARS = {"base": "https://example.org", "limit": 10, "nested": {"deep": {"value": 7}}}


def scope(**overrides: Any) -> Scope:
    return Scope(outputs=OUTPUTS, vars=VARS, **overrides)


def error_of(value: Any, in_scope: Scope | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        resolve(value, in_scope or scope())
    return caught.value


def parse_error_of(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        parse_reference(text)
    return caught.value


# --- parse_reference -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "merge_content.output.items[0]",
            Reference("merge_content.output.items[0]", "merge_content", "output.items[0]", "task"),
        ),
        ("merged_content", Reference("merged_content", "merged_content", "", "task")),
        (
            "extract-site-a.output",
            Reference("extract-site-a.output", "extract-site-a", "output", "task"),
        ),
        ("vars.x.y", Reference("vars.x.y", "vars", "x.y", "vars")),
        ("vars", Reference("vars", "vars", "", "vars")),
        ("item", Reference("item", "item", "", "item")),
        ("item.name", Reference("item.name", "item", "name", "item")),
        ("item[0]", Reference("item[0]", "item", "[0]", "item")),
        ("index", Reference("index", "index", "", "index")),
        ("vault.API_TOKEN", Reference("vault.API_TOKEN", "vault", "API_TOKEN", "vault")),
        (
            "vault.smtp.pass-word",
            Reference("vault.smtp.pass-word", "vault", "smtp.pass-word", "vault"),
        ),
        ("  a.output  ", Reference("a.output", "a", "output", "task")),
        (
            "length(a.output)",
            Reference("length(a.output)", "a", "output", "task", expression=True),
        ),
        (
            'length("site-a".output)',
            Reference('length("site-a".output)', "site-a", "output", "task", expression=True),
        ),
    ],
)
def test_parse_each_kind(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_parse_accepts_the_longest_allowed_text() -> None:
    text = "a.output." + "k" * (MAX_EXPRESSION_LENGTH - len("a.output."))
    assert len(text) == MAX_EXPRESSION_LENGTH
    assert parse_reference(text).path == "output." + "k" * (MAX_EXPRESSION_LENGTH - 9)


def test_parse_rejects_too_long_text() -> None:
    error = parse_error_of("a.output." + "k" * MAX_EXPRESSION_LENGTH)
    assert error.message == "a reference is 2009 characters long; the limit is 2000"
    assert error.hint == "move the logic into a data_processing task and refer to its output"


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_rejects_empty_text(text: str) -> None:
    error = parse_error_of(text)
    assert error.message == "empty reference '${}'"
    assert error.hint == (
        "write ${task_id.output}, ${vars.NAME}, ${item}, ${index} or ${vault.NAME}; "
        "for a literal '${' write '$${'"
    )


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "a.output[",
            "'${a.output[}' is not a valid JMESPath expression: it ends too early",
            "JMESPath syntax, e.g. a.output.items[0].title, a.output[?price > `10`].name",
        ),
        (
            "a.output foo",
            "'${a.output foo}' is not a valid JMESPath expression: "
            "unexpected 'foo' at character 10",
            'quote names that hold dashes or spaces: a.output."my-key"',
        ),
        (
            "vars.my-key",
            "'${vars.my-key}' is not a valid JMESPath expression: Unknown token '-' at character 8",
            'quote names that hold dashes or spaces: a.output."my-key"',
        ),
        (
            "vault",
            "'${vault}' is not a secret reference",
            "write ${vault.NAME}; names use letters, digits, '_', '.' and '-'",
        ),
        (
            "vault.has space",
            "'${vault.has space}' is not a secret reference",
            "write ${vault.NAME}; names use letters, digits, '_', '.' and '-'",
        ),
        (
            "index.x",
            "'${index.x}': index is the item's position, a number, and takes no path",
            "write ${index}",
        ),
        (
            "a.items",
            "'${a.items}' reads 'items' from task 'a', which has only output, state and error",
            "did you mean ${a.output.items}?",
        ),
        (
            "a.outptu.title",
            "'${a.outptu.title}' reads 'outptu' from task 'a', which has only output, state and "
            "error",
            "did you mean 'output'?",
        ),
        (
            "a | length(@)",
            "'${a | length(@)}': expected '.' or '[' after 'a'",
            "write ${a.output...}, e.g. ${a.output[0]}, ${length(a.output)}",
        ),
        (
            "lenght(a.output)",
            "'${lenght(a.output)}' calls unknown function 'lenght'",
            "did you mean 'length'?",
        ),
        (
            "length(a.output, b.output)",
            "'${length(a.output, b.output)}': length() takes 1 argument(s), got 2",
            "see the JMESPath function reference at https://jmespath.org/specification.html",
        ),
        (
            "length(a)",
            "'${length(a)}' reads task 'a' without saying which part",
            "write a.output (or a.state, a.error)",
        ),
        (
            "length(@)",
            "'${length(@)}' reads the whole run ('@' at the top level)",
            "name what you read: a task's output (a.output), vars or item",
        ),
        (
            "a.output[?name == `abc`]",
            "'${a.output[?name == `abc`]}' writes a string in JMESPath's deprecated `text` form",
            "write a string as 'text', or as JSON inside backticks: `\"text\"`",
        ),
        (
            "`[1, 2]`",
            "'${`[1, 2]`}' reads nothing from the run",
            "write the value itself, without ${...}; or start with a task id, vars or item",
        ),
        (
            "length(vault.TOKEN)",
            "'${length(vault.TOKEN)}' uses a secret inside an expression",
            "a secret can only be written on its own, as ${vault.NAME}",
        ),
    ],
)
def test_parse_errors_say_what_and_how(text: str, message: str, hint: str) -> None:
    error = parse_error_of(text)
    assert (error.message, error.hint) == (message, hint)
    assert str(error) == f"{message} ({hint})"


# --- find_references -----------------------------------------------------------------------


def test_find_references_reports_locations_under_the_given_prefix() -> None:
    config = {
        "url": "${vars.base}/a?page=${index}",
        "headers": [{"Authorization": "Bearer ${vault.TOKEN}"}],
        "count": 3,
        "body": {"items": "${merge_content.output.items}"},
    }
    assert find_references(config, loc=("tasks", 2, "config")) == [
        (("tasks", 2, "config", "url"), Reference("vars.base", "vars", "base", "vars")),
        (("tasks", 2, "config", "url"), Reference("index", "index", "", "index")),
        (
            ("tasks", 2, "config", "headers", 0, "Authorization"),
            Reference("vault.TOKEN", "vault", "TOKEN", "vault"),
        ),
        (
            ("tasks", 2, "config", "body", "items"),
            Reference("merge_content.output.items", "merge_content", "output.items", "task"),
        ),
    ]


def test_find_references_reads_the_seeds_bare_inputs_form() -> None:
    config = {
        "action": "merge",
        "inputs": ["extract_site_a.output", "extract_site_b.output.items", "a.outputs", "text"],
        "input": "other.output",
        "note": "extract_site_a.output",
        "nested": {"inputs": [["x.output"]]},
    }
    assert find_references(config) == [
        (("inputs", 0), Reference("extract_site_a.output", "extract_site_a", "output", "task")),
        (
            ("inputs", 1),
            Reference("extract_site_b.output.items", "extract_site_b", "output.items", "task"),
        ),
        (("input",), Reference("other.output", "other", "output", "task")),
    ]


def test_find_references_finds_the_seeds_unknown_reference() -> None:
    config = {"destinations": [{"site_a": "${merged_content}"}, {"site_b": "${merged_content}"}]}
    assert find_references(config) == [
        (("destinations", 0, "site_a"), Reference("merged_content", "merged_content", "", "task")),
        (("destinations", 1, "site_b"), Reference("merged_content", "merged_content", "", "task")),
    ]


def test_find_references_skips_escapes() -> None:
    assert find_references(["$${a.output}", "cost: $$${b.output}", "$$ and $ and {}"]) == []
    assert find_references("$${not.this} but ${this.output}") == [
        ((), Reference("this.output", "this", "output", "task"))
    ]


def test_find_references_keeps_jmespath_braces_and_quoted_braces_inside_one_reference() -> None:
    text = "x ${a.output | {n: length(@)}} y ${b.output[?name == '}'].price} z"
    assert [reference.text for _, reference in find_references(text)] == [
        "a.output | {n: length(@)}",
        "b.output[?name == '}'].price",
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("${a.output}", ["a.output"]),
        ("${ a.output }", ["a.output"]),
        ("${a.output}}", ["a.output"]),
        ("${a.output}${b.output}", ["a.output", "b.output"]),
        ("${a.output[?n == '}']}", ["a.output[?n == '}']"]),
        ("${a.output[?n == `1`]}", ["a.output[?n == `1`]"]),
        ('${a.output."x"}', ['a.output."x"']),
        ("${{x: a.output}}", ["{x: a.output}"]),
        ("${a.output}$${b}", ["a.output"]),
        ("$${a}${b.output}", ["b.output"]),
        ("$${a.output}", []),
    ],
)
def test_find_references_in_a_string_that_starts_with_one(text: str, found: list[str]) -> None:
    assert [reference.text for _, reference in find_references({"x": text})] == found


def test_a_path_is_compiled_once_for_all_the_references_that_write_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    compile_expression = jmespath.compile

    def counting(expression: str) -> Any:
        compiled.append(expression)
        return compile_expression(expression)

    monkeypatch.setattr(jmespath, "compile", counting)
    config = {f"k{n}": f"${{t{n}.output.compiled_once}}" for n in range(50)}

    assert len(find_references(config)) == 50
    assert compiled == ["output.compiled_once"]


def test_find_references_lists_malformed_ones_in_place_and_keeps_going() -> None:
    found = find_references({"a": "${a.output[}", "b": "${ok.output}", "c": "${never closed"})
    assert [(loc, type(item).__name__) for loc, item in found] == [
        (("a",), "ExpressionError"),
        (("b",), "Reference"),
        (("c",), "ExpressionError"),
    ]
    assert str(found[2][1]) == (
        "'${never closed' has no closing '}' (close it with '}', or write '$${' for a literal '${')"
    )


def test_find_references_lists_each_name_an_expression_reads() -> None:
    text = "merge(a.output, vars.extra, b.output.meta, a.output)"
    assert find_references({"x": "${" + text + "}"}) == [
        (("x",), Reference(text, "a", "output", "task", expression=True)),
        (("x",), Reference(text, "vars", "extra", "vars", expression=True)),
        (("x",), Reference(text, "b", "output.meta", "task", expression=True)),
    ]


def test_secret_names_collects_every_vault_reference() -> None:
    config = {
        "headers": {"Authorization": "Bearer ${vault.TOKEN}", "X-Key": "${vault.api.key}"},
        "again": ["${vault.TOKEN}"],
        "escaped": "$${vault.NOT_A_SECRET}",
        "other": "${vars.base}",
    }
    assert secret_names(config) == {"TOKEN", "api.key"}


# --- resolve: types and interpolation ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("list", [1, "two"]),
        ("dict", {"k": "v"}),
        ("int", 3),
        ("float", 1.5),
        ("yes", True),
        ("no", False),
        ("none", None),
        ("text", "plain"),
    ],
)
def test_a_whole_reference_keeps_the_type(key: str, expected: Any) -> None:
    resolved = resolve("${typed.output." + key + "}", scope())
    assert resolved == expected
    assert type(resolved) is type(expected)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("list", 'v=[1,"two"]'),
        ("dict", 'v={"k":"v"}'),
        ("int", "v=3"),
        ("float", "v=1.5"),
        ("yes", "v=true"),
        ("no", "v=false"),
        ("none", "v="),
        ("text", "v=plain"),
    ],
)
def test_a_reference_inside_a_string_is_interpolated(key: str, expected: str) -> None:
    assert resolve("v=${typed.output." + key + "}", scope()) == expected


def test_surrounding_whitespace_makes_a_string() -> None:
    assert resolve(" ${typed.output.int}", scope()) == " 3"
    assert resolve("${typed.output.int}${typed.output.int}", scope()) == "33"


def test_resolve_walks_nested_structures_into_a_new_one() -> None:
    config = {"url": "${vars.base}/a", "pages": ["${vars.limit}", 2, None], "n": {"x": "${a}"}}
    resolved = resolve(config, scope())
    assert resolved == {
        "url": "https://example.org/a",
        "pages": [10, 2, None],
        "n": {"x": {"title": "Hello", "url": "https://a.test/1", "subtitle": None}},
    }
    assert config["pages"] == ["${vars.limit}", 2, None]


def test_task_reference_reads_the_task_entry() -> None:
    assert resolve("${a}", scope()) == {
        "title": "Hello",
        "url": "https://a.test/1",
        "subtitle": None,
    }
    assert resolve("${a.output.title}", scope()) == "Hello"
    assert resolve("${a.state}", scope()) == "succeeded"
    assert resolve("${a.error}", scope()) is None


def test_vars_references() -> None:
    assert resolve("${vars}", scope()) == VARS
    assert resolve("${vars.nested.deep.value}", scope()) == 7
    assert resolve('${vars.missing || `"fallback"`}', scope()) == "fallback"


def test_escape_writes_a_literal() -> None:
    assert resolve("$${a.output}", scope()) == "${a.output}"
    assert resolve("$${x} is ${a.output.title}", scope()) == "${x} is Hello"
    assert resolve("$$${a.output}", scope()) == "$${a.output}"


def test_bare_inputs_form_resolves_like_a_reference() -> None:
    config = {
        "action": "merge",
        "inputs": ["a.output", "b.output[?price > `10`].name", "literal"],
        "input": "a.output.title",
        "note": "a.output",
    }
    assert resolve(config, scope()) == {
        "action": "merge",
        "inputs": [
            {"title": "Hello", "url": "https://a.test/1", "subtitle": None},
            ["dear", "mid"],
            "literal",
        ],
        "input": "Hello",
        "note": "a.output",
    }


# --- resolve: secrets stay in place --------------------------------------------------------


def test_vault_references_stay_as_written() -> None:
    assert resolve("${vault.TOKEN}", scope()) == "${vault.TOKEN}"
    assert resolve("${ vault.TOKEN }", scope()) == "${ vault.TOKEN }"
    assert resolve({"h": "Bearer ${vault.TOKEN}"}, scope()) == {"h": "Bearer ${vault.TOKEN}"}


def test_a_string_holding_a_secret_stays_in_the_reference_language() -> None:
    # Escapes stay escaped and interpolated text cannot become a reference: reveal_secrets decodes.
    resolved = resolve("${vault.TOKEN}:${typed.output.template}:$${x}", scope())
    assert resolved == "${vault.TOKEN}:see $${vault.TOKEN}:$${x}"
    revealed = asyncio.run(reveal_secrets(resolved, fake_vault(), host="api.test"))
    assert revealed == "s3cr3t:see ${vault.TOKEN}:${x}"


# --- resolve: errors -----------------------------------------------------------------------


def test_missing_key_names_the_keys_there() -> None:
    error = error_of("${a.output.titel}")
    assert error.message == "'${a.output.titel}' has no key 'titel'"
    assert error.hint == "keys there: title, url, subtitle"


def test_a_null_value_is_not_a_missing_key() -> None:
    assert resolve("${a.output.subtitle}", scope()) is None
    assert resolve("${a.output.subtitle.more}", scope()) is None
    assert resolve("x${a.output.subtitle}y", scope()) == "xy"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "${b.output.name}",
            "'${b.output.name}' reads key 'name' from a list",
            "take it from every item with '${b.output[].name}', "
            "or from one with '${b.output[0].name}'",
        ),
        ("${b.output[3]}", "'${b.output[3]}' has no item [3]", "'b.output' has 3 item(s)"),
        (
            "${a.output.title.x}",
            "'${a.output.title.x}' has no key 'x'",
            "'a.output.title' is a string, not an object",
        ),
        (
            "${a.output[0]}",
            "'${a.output[0]}' has no item [0]",
            "'a.output' is an object, not a list",
        ),
        (
            "${vars.nested.deep.valu}",
            "'${vars.nested.deep.valu}' has no key 'valu'",
            "keys there: value",
        ),
    ],
)
def test_absent_keys_and_items_are_explained(text: str, message: str, hint: str) -> None:
    error = error_of(text)
    assert (error.message, error.hint) == (message, hint)


def test_missing_var_suggests_the_closest_name() -> None:
    error = error_of("${vars.bsae}/x")
    assert error.message == "'${vars.bsae}': there is no var 'bsae'"
    assert error.hint == "did you mean 'base'?"
    unrelated = error_of("${vars.zzz}")
    assert unrelated.hint == "vars defined: base, limit, nested"
    none_defined = error_of("${vars.base}", Scope(outputs=OUTPUTS))
    assert (
        none_defined.hint == "no vars are defined; add 'base' under vars: or pass --var base=VALUE"
    )


def test_unfinished_task_is_an_error() -> None:
    error = error_of({"x": ["${later.output}"]})
    assert error.message == "'${later.output}': task 'later' has not finished (or does not exist)"
    assert error.hint == "add 'later' to this task's dependencies so it finishes first"


def test_evaluation_errors_are_expression_errors() -> None:
    error = error_of("${sum(a.output)}")
    assert error.message.startswith("'${sum(a.output)}' could not be evaluated: In function sum()")
    assert error.hint == "check the types the expression works on, e.g. with ${type(...)}"


def test_unclosed_reference_is_an_error() -> None:
    assert error_of("x ${a.output").message == "'${a.output' has no closing '}'"


# --- resolve: fan-out ----------------------------------------------------------------------


def test_item_and_index_inside_fan_out() -> None:
    inside = scope(item={"name": "wp-2", "tags": ["a"]}, index=2, has_item=True)
    assert resolve("${item}", inside) == {"name": "wp-2", "tags": ["a"]}
    assert resolve("${item.tags}", inside) == ["a"]
    assert resolve("${index}", inside) == 2
    assert resolve("${item.name}#${index}", inside) == "wp-2#2"
    assert resolve("${length(item.tags)}", inside) == 1
    assert resolve("${item}", scope(item=None, index=0, has_item=True)) is None


@pytest.mark.parametrize(("text", "kind"), [("${item.name}", "item"), ("n=${index}", "index")])
def test_item_and_index_outside_fan_out(text: str, kind: str) -> None:
    error = error_of(text)
    reference = text[text.index("$") :]
    assert error.message == f"'{reference}': '{kind}' exists only inside a for_each task"
    assert error.hint == "add for_each: to this task, or refer to a task's output or vars instead"


# --- resolve: JMESPath ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${b.output[?price > `10`].name}", ["dear", "mid"]),
        ("${b.output[].price}", [5, 20, 12]),
        ("${b.output | sort_by(@, &price)[-1].name}", "dear"),
        ("${length(b.output)}", 3),
        ("${length(a.output)}", 3),
        ('${length("site-a".output)}', 2),
        ("${max_by(b.output, &price).name}", "dear"),
        ("${merge(a.output, vars.nested)}", {**OUTPUTS["a"]["output"], "deep": {"value": 7}}),
        ("${[a.output.title, vars.limit]}", ["Hello", 10]),
        ("${not_null(vars.missing, a.output.title)}", "Hello"),
        ("total: ${sum(b.output[].price)}", "total: 37"),
        ("${a.output.title || b.output}", "Hello"),
        ("${a.output.missing || b.output[0].name}", "cheap"),
        ("${b.output[1].price > vars.limit}", True),
    ],
)
def test_jmespath_filters_and_functions(text: str, expected: Any) -> None:
    assert resolve(text, scope()) == expected


def test_a_path_that_reads_other_names_means_the_whole_scope() -> None:
    text = "a.output.missing || b.output[0].name"
    assert find_references("${" + text + "}") == [
        ((), Reference(text, "a", "output.missing", "task", expression=True)),
        ((), Reference(text, "b", "output[0].name", "task", expression=True)),
    ]
    inside = scope(item={"x": None}, index=0, has_item=True)
    assert resolve("${item.x || vars.base}", inside) == "https://example.org"


def test_expressions_check_what_they_read() -> None:
    assert error_of("${length(later.output)}").message == (
        "'${length(later.output)}': task 'later' has not finished (or does not exist)"
    )
    assert error_of("${length(item)}").message == (
        "'${length(item)}': 'item' exists only inside a for_each task"
    )


# --- reveal_secrets ------------------------------------------------------------------------


def fake_vault() -> MemorySecrets:
    """Two secrets that may go to api.test only."""
    return MemorySecrets({"TOKEN": ("s3cr3t", ["api.test"]), "OTHER": ("0ther", ["api.test"])})


def test_reveal_replaces_secrets_for_the_host() -> None:
    vault = fake_vault()
    text = "Bearer ${vault.TOKEN}, again ${vault.TOKEN}, ${vault.OTHER}"
    revealed = asyncio.run(reveal_secrets(text, vault, host="api.test", allowed={"TOKEN", "OTHER"}))
    assert revealed == "Bearer s3cr3t, again s3cr3t, 0ther"
    assert vault.requested == [("TOKEN", "api.test"), ("OTHER", "api.test")]


def test_reveal_decodes_escapes_next_to_secrets() -> None:
    revealed = asyncio.run(reveal_secrets("${vault.TOKEN} $${x}", fake_vault(), host="api.test"))
    assert revealed == "s3cr3t ${x}"


def test_reveal_leaves_a_string_without_secrets_alone() -> None:
    vault = fake_vault()
    for text in ["plain", "already final: $${x}", "${a.output}"]:
        assert asyncio.run(reveal_secrets(text, vault, host="api.test")) == text
    assert vault.requested == []


def test_reveal_refuses_a_secret_the_configuration_does_not_name() -> None:
    vault = fake_vault()
    with pytest.raises(TaskError) as caught:
        asyncio.run(reveal_secrets("${vault.OTHER}", vault, host="api.test", allowed={"TOKEN"}))
    assert caught.value.error_class == "config"
    assert caught.value.message == (
        "secret 'OTHER' is not referenced by this task's configuration in the document, so it is "
        "not revealed (a reference that arrived through another task's output is refused)"
    )
    assert vault.requested == []


def test_reveal_passes_on_the_resolvers_refusal() -> None:
    with pytest.raises(TaskError, match=r"may not be sent to evil\.test"):
        asyncio.run(reveal_secrets("${vault.TOKEN}", fake_vault(), host="evil.test"))


def test_reveal_without_a_vault_says_so() -> None:
    with pytest.raises(TaskError, match="no vault is configured"):
        asyncio.run(reveal_secrets("${vault.TOKEN}", NoVault(), host=None))


def test_run_context_reveals_only_the_secrets_its_config_names(tmp_path: Path) -> None:
    config = {"headers": {"Authorization": "Bearer ${vault.TOKEN}"}}
    ctx = RunContext(
        orchestration_id="o1",
        task_id="t1",
        attempt=1,
        run_dir=tmp_path,
        secrets=fake_vault(),
        log_sink=lambda level, message, data: None,
        secret_names=frozenset(secret_names(config)),
    )
    assert asyncio.run(ctx.reveal("Bearer ${vault.TOKEN}", host="api.test")) == "Bearer s3cr3t"
    with pytest.raises(TaskError, match="secret 'OTHER' is not referenced"):
        asyncio.run(ctx.reveal("${vault.OTHER}", host="api.test"))


# --- properties ----------------------------------------------------------------------------

NAMES = "a b site-a vars item index vault output state title length sum sort_by merge not_null"
TOKENS = [
    *NAMES.split(),
    *".[]{}()|&@!?>`'\"$-_ 0,*:\\\né",
    *["||", "&&", "==", "${", "$${", "-1", "`10`", "[?", "[]"],
]
fragments = st.one_of(
    st.text(max_size=60), st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
)
FAN_OUT_SCOPE = scope(item={"title": "t", "n": [1, 2]}, index=0, has_item=True)


@settings(max_examples=300, deadline=None)
@given(fragments)
def test_parse_reference_returns_or_raises_expression_error(text: str) -> None:
    try:
        reference = parse_reference(text)
    except ExpressionError:
        return
    assert reference.kind in ("task", "vars", "item", "index", "vault")


@settings(max_examples=300, deadline=None)
@given(fragments, st.booleans())
def test_resolve_returns_or_raises_expression_error(text: str, in_fan_out: bool) -> None:
    in_scope = FAN_OUT_SCOPE if in_fan_out else scope()
    for value in (text, "${" + text + "}", {"inputs": [text]}):
        with contextlib.suppress(ExpressionError):
            resolve(value, in_scope)
    assert all(isinstance(item, Reference | ExpressionError) for _, item in find_references(text))


@settings(max_examples=200, deadline=None)
@given(fragments)
def test_escaping_every_opening_gives_the_text_back(text: str) -> None:
    assert resolve(text.replace("${", "$${"), scope()) == text


# --- plain paths read without the JMESPath interpreter ---------------------------------------

KEYS = st.sampled_from(["a", "b", "items", "0"])
PLAIN_DATA = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=12,
)
STEPS = st.lists(KEYS | st.integers(min_value=-4, max_value=4), max_size=4)


@settings(max_examples=400)
@given(PLAIN_DATA, STEPS)
def test_a_plain_path_reads_what_jmespath_reads(data: Any, steps: list[str | int]) -> None:
    text = "@" + "".join(f'."{step}"' if isinstance(step, str) else f"[{step}]" for step in steps)
    assert _follow(data, tuple(steps)) == jmespath.search(text, data)
