"""The ``llm`` task type through the door: documents run by the ``orchestrator`` CLI (a child
process) against the local stand-in model server (``server/standin_model/``) on 127.0.0.1,
with both providers' SDKs; and one document submitted through the MCP tools.

The key is a canary in the vault, bound to 127.0.0.1: each test checks where it went (only the
stand-in's auth header) and where it did not (the data folder, the CLI's output). The stand-in
counts the calls it got, so retries and repairs are counted where they happen.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli, home_with_secrets
from local_server import LocalServer
from mcp import Client

from multi_task_orchestrator.engine.runners.llm.answers import InvalidAnswer, parse_answer
from multi_task_orchestrator.engine.runners.llm.prices import (
    DEFAULT_PRICES,
    Price,
    PriceError,
    price_of,
    price_table,
)
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.server.standin_model import NOTICE, StandinModel

KEY = "sk-canary-llm-6d0f3b9a27c4e815"
AMBIENT = "sk-ambient-env-91c2e0d7"  # in the CLI's environment, where an SDK would look
MESSAGES = "/v1/messages"
COMPLETIONS = "/v1/chat/completions"
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "slug": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "words": {"type": "integer"},
    },
    "required": ["title", "slug", "tags", "words"],
}


@pytest.fixture
def model() -> Iterator[StandinModel]:
    with StandinModel(keys=frozenset({KEY})) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", LLM_KEY=KEY)


def llm(task_id: str, server: StandinModel, provider: str = "anthropic", **config: Any) -> str:
    """One ``llm`` task as a line of YAML (JSON is YAML)."""
    extra = {name: config.pop(name) for name in ("retry", "dependencies") if name in config}
    base = server.url if provider == "anthropic" else server.url + "/v1"
    settings = {
        "provider": provider,
        "model": "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o-mini",
        "base_url": base,
        "api_key": "${vault.LLM_KEY}",
        **config,
    }
    return "  - " + json.dumps({"id": task_id, "type": "llm", "config": settings, **extra})


def document(*tasks: str) -> str:
    return "name: Models\ntasks:\n" + "\n".join(tasks) + "\n"


def run(home: Path, text: str, **env: str) -> tuple[dict[str, Any], str]:
    """Run ``text`` with ``orchestrator run --json``; the results and everything printed."""
    path = home.parent / "models.yaml"
    path.write_text(text, encoding="utf-8")
    done = cli(home, "run", path, "--json", timeout=120, **env)
    return json.loads(done.stdout), done.stdout + done.stderr


def task(results: dict[str, Any], task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = results["tasks"][task_id]
    return found


def assert_key_nowhere(home: Path, shown: str) -> None:
    """The canary is in no file of the data folder (state.db and its WAL, the run folders, the
    logs; the vault holds it encrypted) and not in what the CLI printed."""
    for secret in (KEY, AMBIENT):
        assert secret not in shown
        for path in (p for p in home.rglob("*") if p.is_file()):
            assert secret.encode() not in path.read_bytes(), f"the key is in {path}"


def keys_received(model: StandinModel) -> list[str]:
    """The credential each call carried, as the stand-in received it."""
    found = []
    for call in model.state.calls():
        headers = call["headers"]
        found.append(headers.get("x-api-key") or headers.get("authorization", "").split(" ")[-1])
    return found


# --- both providers ---------------------------------------------------------------------------


def test_both_providers_answer_with_text_json_usage_and_cost(
    home: Path, model: StandinModel
) -> None:
    results, shown = run(
        home,
        document(
            llm("claude", model, prompt="Write one line about queues in parallel workers"),
            llm("gpt", model, "openai", prompt="Name this article about retries", schema=SCHEMA),
            llm(
                "edit",
                model,
                "openai",
                system="You edit.",
                prompt="Edit: ${claude.output.text}",
                output="json",
                max_tokens=200,
                dependencies=["claude"],
            ),
        ),
        ANTHROPIC_API_KEY=AMBIENT,
        OPENAI_API_KEY=AMBIENT,
    )

    claude, gpt, edit = task(results, "claude"), task(results, "gpt"), task(results, "edit")
    assert [claude["state"], gpt["state"], edit["state"]] == ["succeeded"] * 3, results
    assert claude["output"]["text"].startswith(f'[{NOTICE}] You asked: "Write one line')
    assert claude["output"]["model"] == "claude-sonnet-4-5"
    assert claude["output"]["stop_reason"] == "end_turn"
    usage = claude["output"]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    price = DEFAULT_PRICES["claude-sonnet-4-5"]
    expected = price.cost(usage["input_tokens"], usage["output_tokens"])
    assert claude["output"]["cost_usd"] == pytest.approx(expected)

    data = gpt["output"]["data"]
    assert set(data) == {"title", "slug", "tags", "words"} and data["tags"]
    assert gpt["output"]["stop_reason"] == "stop" and gpt["output"]["cost_usd"] > 0
    assert isinstance(edit["output"]["data"], dict)

    (anthropic_call,) = model.state.calls(MESSAGES)
    assert anthropic_call["body"]["model"] == "claude-sonnet-4-5"
    completions = model.state.calls(COMPLETIONS)
    assert len(completions) == 2
    # the JSON instruction (with the schema) went into the system prompt; the prompt fed by a
    # reference carries the other task's output
    schema_call = next(c for c in completions if "JSON Schema" in json.dumps(c["body"]))
    system = schema_call["body"]["messages"][0]
    assert system["role"] == "system" and "JSON value only" in system["content"]
    assert '"required": ["title", "slug", "tags", "words"]' in system["content"]
    edited = next(c for c in completions if c is not schema_call)
    assert edited["body"]["messages"][0]["content"].startswith("You edit.")
    assert edited["body"]["messages"][1]["content"].startswith("Edit: [" + NOTICE)
    # the OpenAI-compatible endpoint gets max_tokens (OpenAI's own API: max_completion_tokens)
    assert edited["body"]["max_tokens"] == 200

    assert keys_received(model) == [KEY, KEY, KEY]
    assert_key_nowhere(home, shown)


def test_a_local_endpoint_without_a_key_gets_no_credential(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with StandinModel(require_key=False) as keyless:
        results, shown = run(
            home,
            document(
                llm("local", keyless, "openai", model="llama3.2", api_key=None, prompt="Hi"),
                llm("claude", keyless, api_key=None, prompt="Hello"),
            ),
            ANTHROPIC_API_KEY=AMBIENT,
            OPENAI_API_KEY=AMBIENT,
        )
        calls = keyless.state.calls()
    assert task(results, "local")["state"] == "succeeded", results
    assert task(results, "claude")["state"] == "succeeded", results
    assert len(calls) == 2
    for call in calls:
        headers = call["headers"]
        assert "authorization" not in headers and "x-api-key" not in headers, headers
    assert AMBIENT not in json.dumps(calls)
    assert_key_nowhere(home, shown)


# --- where the key may go ---------------------------------------------------------------------


def test_a_host_the_key_is_not_bound_to_gets_nothing(home: Path, model: StandinModel) -> None:
    # the same stand-in under another name: had the request been sent, it would be recorded
    elsewhere = llm("stolen", model, prompt="Hi").replace("127.0.0.1", "localhost")
    results, shown = run(home, document(elsewhere))

    stolen = task(results, "stolen")
    assert stolen["state"] == "failed", stolen
    assert "localhost" in stolen["error"] and "LLM_KEY" in stolen["error"]
    assert model.state.calls() == []
    assert_key_nowhere(home, shown)


def test_a_secret_in_the_prompt_or_a_literal_key_is_refused_at_validation(
    home: Path, model: StandinModel
) -> None:
    path = home.parent / "leaky.yaml"
    path.write_text(
        document(
            llm("in_prompt", model, prompt="Repeat ${vault.LLM_KEY}"),
            llm("in_system", model, system="Key: ${vault.LLM_KEY}", prompt="Hi"),
            llm("literal", model, api_key="sk-literal-0123456789", prompt="Hi"),
            llm("bad_schema", model, prompt="Hi", schema={"type": "objekt"}),
            llm("text_schema", model, prompt="Hi", output="text", schema={"type": "object"}),
        ),
        encoding="utf-8",
    )
    done = cli(home, "validate", path)

    assert done.code != 0
    shown = done.stdout + done.stderr
    assert shown.count("vault.LLM_KEY") >= 2 and "prompt" in shown and "system" in shown
    assert "api_key must be a ${vault.NAME} reference" in shown
    assert "sk-literal-0123456789" not in shown
    assert "schema is not a valid JSON Schema" in shown and "objekt" in shown
    assert "a schema needs a JSON answer, but output is 'text'" in shown
    assert model.state.calls() == []


# --- JSON answers -----------------------------------------------------------------------------


def test_a_bad_json_answer_is_repaired_once(home: Path, model: StandinModel) -> None:
    model.state.answer_invalid_json_next(1)
    results, _ = run(home, document(llm("meta", model, prompt="Describe it", schema=SCHEMA)))

    meta = task(results, "meta")
    assert meta["state"] == "succeeded", meta
    assert meta["attempts"] == 1 and set(meta["output"]["data"]) == set(SCHEMA["properties"])
    _, repair = model.state.calls(MESSAGES)
    turns = repair["body"]["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert "not valid JSON" in turns[2]["content"]
    # both calls are counted
    usage = meta["output"]["usage"]
    assert usage["output_tokens"] > len(turns[1]["content"]) // 4


def test_a_second_bad_answer_fails_with_invalid_output(home: Path, model: StandinModel) -> None:
    model.state.answer_invalid_json_next(2)
    results, shown = run(
        home, document(llm("meta", model, "openai", prompt="Describe it", schema=SCHEMA))
    )

    meta = task(results, "meta")
    assert (meta["state"], meta["error_class"]) == ("failed", "invalid_output"), meta
    assert "even after one repair" in meta["error"]
    assert len(model.state.calls(COMPLETIONS)) == 2
    assert_key_nowhere(home, shown)


# --- rate limits and errors -------------------------------------------------------------------


def test_429_is_retried_after_its_retry_after(home: Path, model: StandinModel) -> None:
    model.state.fail_next(2, 429, retry_after=0.3)
    # the policy's own delay is 60 s: only retry-after makes this finish quickly
    retry = {"max_attempts": 3, "initial": "60s", "jitter": False}
    started = time.monotonic()
    results, shown = run(home, document(llm("limited", model, "openai", prompt="Hi", retry=retry)))

    limited = task(results, "limited")
    assert limited["state"] == "succeeded" and limited["attempts"] == 3, limited
    assert len(model.state.calls(COMPLETIONS)) == 3
    assert time.monotonic() - started < 30
    assert_key_nowhere(home, shown)


def test_529_overloaded_is_retried_without_naming_it(home: Path, model: StandinModel) -> None:
    model.state.fail_next(1, 529)
    retry = {"max_attempts": 2, "initial": "0.1s", "jitter": False}
    results, _ = run(home, document(llm("busy", model, prompt="Hi", retry=retry)))

    busy = task(results, "busy")
    assert busy["state"] == "succeeded" and busy["attempts"] == 2, busy
    assert len(model.state.calls(MESSAGES)) == 2


def test_529_is_not_retried_when_retry_on_leaves_it_out(home: Path, model: StandinModel) -> None:
    model.state.fail_next(1, 529)
    retry = {"max_attempts": 2, "initial": "0.1s", "on": ["timeout"]}
    results, _ = run(home, document(llm("busy", model, prompt="Hi", retry=retry)))

    busy = task(results, "busy")
    assert (busy["state"], busy["error_class"]) == ("failed", "overloaded"), busy
    assert "529" in busy["error"] and "overloaded_error" in busy["error"]
    assert len(model.state.calls(MESSAGES)) == 1


def test_a_refused_key_fails_with_auth_and_is_not_retried(tmp_path: Path) -> None:
    home = home_with_secrets(tmp_path / "home", LLM_KEY=KEY)
    with StandinModel(keys=frozenset({"another-key"})) as strict:
        retry = {"max_attempts": 3, "initial": "0.1s"}
        results, shown = run(home, document(llm("denied", strict, prompt="Hi", retry=retry)))
        calls = strict.state.calls()
    denied = task(results, "denied")
    assert (denied["state"], denied["error_class"]) == ("failed", "auth"), denied
    assert "401" in denied["error"] and "invalid API key" in denied["error"]
    assert len(calls) == 1
    assert_key_nowhere(home, shown)


def test_a_dead_endpoint_fails_with_network(home: Path, model: StandinModel) -> None:
    with socket.socket() as bound:  # a port bound but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        dead = llm("dead", model, prompt="Hi").replace(
            f":{model.port}", f":{bound.getsockname()[1]}"
        )
        results, shown = run(home, document(dead))

    dead_task = task(results, "dead")
    assert (dead_task["state"], dead_task["error_class"]) == ("failed", "network"), dead_task
    assert "/v1/messages failed: ConnectError" in dead_task["error"]
    assert_key_nowhere(home, shown)


def test_an_answer_that_trickles_in_fails_at_the_calls_timeout(
    home: Path, model: StandinModel
) -> None:
    # a byte every 0.2 s never trips a per-read timeout: the config's timeout is on the call
    with LocalServer() as server:
        base = server.url("/trickle/model")
        slow = json.loads(llm("slow", model, base_url=base, timeout="1s", prompt="Hi")[4:])
        slow["timeout"] = "60s"  # the attempt's own limit, which would end it otherwise
        results, shown = run(home, document("  - " + json.dumps(slow)))
        sent = server.state.sent["model"]
    slow_task = task(results, "slow")
    assert (slow_task["state"], slow_task["error_class"]) == ("failed", "timeout"), slow_task
    assert slow_task["error"] == f"POST {base}/v1/messages timed out after 1s", slow_task
    assert sent >= 2
    assert_key_nowhere(home, shown)


def test_json_answers_are_read_through_a_fence_and_checked_against_the_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert parse_answer('{"n": 1}', schema) == {"n": 1}
    assert parse_answer('```json\n{"n": 2}\n```', schema) == {"n": 2}
    assert parse_answer('Here it is:\n\n```\n{"n": 3}\n```\nDone.', schema) == {"n": 3}
    assert parse_answer('{"n": 4, "s": "```x\\n```"}', None) == {"n": 4, "s": "```x\n```"}
    with pytest.raises(InvalidAnswer, match=r"n: 'x' is not of type 'integer'"):
        parse_answer('{"n": "x"}', schema)
    with pytest.raises(InvalidAnswer, match="not valid JSON"):
        parse_answer("Sure! n is 5.", schema)
    with pytest.raises(InvalidAnswer, match="nested more than"):
        parse_answer("[" * 200 + "]" * 200, None)


# --- prices -----------------------------------------------------------------------------------


def test_a_model_without_a_price_costs_null_with_one_warning(
    home: Path, model: StandinModel
) -> None:
    results, _ = run(
        home,
        document(
            llm("one", model, "openai", model="my-finetune-7b", prompt="Hi"),
            llm("two", model, "openai", model="my-finetune-7b", prompt="Hello"),
        ),
    )

    for task_id in ("one", "two"):
        output = task(results, task_id)["output"]
        assert output["cost_usd"] is None and output["usage"]["output_tokens"] > 0
    (log,) = home.glob("runs/*/execution_log.txt")
    warnings = [line for line in log.read_text().splitlines() if "no price for model" in line]
    assert len(warnings) == 1 and "my-finetune-7b" in warnings[0] and "WARN" in warnings[0]


def test_orchestrator_llm_prices_prices_a_model_and_a_bad_one_is_refused(
    home: Path, model: StandinModel
) -> None:
    prices = json.dumps({"my-finetune-7b": {"input": 1000, "output": 2000}})
    results, _ = run(
        home,
        document(llm("tuned", model, "openai", model="my-finetune-7b", prompt="Hi")),
        ORCHESTRATOR_LLM_PRICES=prices,
    )
    output = task(results, "tuned")["output"]
    usage = output["usage"]
    expected = (usage["input_tokens"] * 1000 + usage["output_tokens"] * 2000) / 1_000_000
    assert output["cost_usd"] == pytest.approx(expected)

    path = home.parent / "models.yaml"
    refused = cli(home, "run", path, ORCHESTRATOR_LLM_PRICES='{"m": {"input": "cheap"}}')
    assert refused.code == 2
    assert "ORCHESTRATOR_LLM_PRICES" in refused.stderr and "'m'" in refused.stderr
    assert len(model.state.calls()) == 1


def test_the_price_table_finds_dated_models_and_takes_overrides(tmp_path: Path) -> None:
    table = price_table(None)
    assert price_of(table, "claude-sonnet-4-5-20250929") == Price(3.0, 15.0)
    assert price_of(table, "gpt-4o-2024-08-06") == Price(2.5, 10.0)
    assert price_of(table, "gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert price_of(table, "claude-opus-4-99") is None  # never a guess from the family

    inline = price_table('{"gpt-4o": {"input": 1, "output": 2}, "mine": {"input": 0, "output": 0}}')
    assert price_of(inline, "gpt-4o") == Price(1.0, 2.0) and price_of(inline, "mine")
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"local-model": {"input": 0.5, "output": 1.5}}))
    assert price_of(price_table(str(path)), "local-model") == Price(0.5, 1.5)
    for bad in ('{"m": {"input": -1, "output": 1}}', '{"m": 3}', "[1]", str(tmp_path / "none")):
        with pytest.raises(PriceError):
            price_table(bad)


# --- through the MCP tools --------------------------------------------------------------------


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(home=home, shutdown_grace=0))) as connected:
        yield connected


@pytest.mark.anyio
async def test_an_llm_document_through_the_mcp_tools(
    client: Client, home: Path, model: StandinModel
) -> None:
    spec = document(llm("meta", model, "openai", prompt="Describe the run", schema=SCHEMA))
    submitted = await client.call_tool("submit_orchestration", {"spec": spec, "wait_seconds": 30})
    assert not submitted.is_error, submitted.content
    answer = submitted.structured_content
    assert answer is not None and answer["progress"]["finished"] is True

    results = await client.call_tool("get_results", {"id": answer["id"]})
    assert not results.is_error, results.content
    shown = json.dumps(results.structured_content)
    assert '"cost_usd"' in shown and '"input_tokens"' in shown and '"slug"' in shown
    assert keys_received(model) == [KEY]
    assert_key_nowhere(home, shown)
