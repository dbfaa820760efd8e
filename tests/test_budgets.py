"""Model usage and budgets through the door: documents of ``llm`` tasks run by the
``orchestrator`` CLI (a child process) and through the MCP tools (the SDK's in-memory client),
against the local stand-in model (``server/standin_model.py``) on 127.0.0.1.

What every attempt's calls used is stored with the attempt (a failed, retried attempt's calls
too) and added up for the run; a budget stops model steps from starting once it is spent (the
stand-in shows the calls that were never made); a task's own budget stops its own calls, its
repair call included; costs come from the price table; the summary, report.html, get_status,
get_results and aggregated_results.json show it, and say nothing for a run without model steps.
The key is a canary: never at rest in the data folder, never in an answer.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli, home_with_secrets
from mcp import Client

from multi_task_orchestrator.engine.runners.llm.prices import DEFAULT_PRICES
from multi_task_orchestrator.engine.usage import RunUsage, compact, money, usage_text
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.server.standin_model import StandinModel, answer_for, tokens

KEY = "sk-canary-budget-0c8e17a5d2b94f36"
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
    "required": ["title", "tags"],
}


@pytest.fixture
def model() -> Iterator[StandinModel]:
    with StandinModel(keys=frozenset({KEY})) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", LLM_KEY=KEY)


def llm(task_id: str, server: StandinModel, **fields: Any) -> dict[str, Any]:
    """An ``llm`` task on the stand-in's Anthropic face; ``config`` in ``fields`` adds to its
    config, the rest to the task."""
    config = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": server.url,
        "api_key": "${vault.LLM_KEY}",
        "prompt": "Hi",
        **fields.pop("config", {}),
    }
    return {"id": task_id, "type": "llm", "config": config, **fields}


def call_tokens(prompt: str) -> int:
    """The tokens one stand-in call of ``prompt`` uses (Anthropic's face, no system prompt):
    its input (the system slot, empty, and the prompt) and its answer."""
    sent = "\n" + prompt
    return tokens(sent) + tokens(answer_for(sent, prompt, invalid=False))


def run(home: Path, document: dict[str, Any], **env: str) -> tuple[dict[str, Any], str]:
    """Run ``document`` with ``orchestrator run --json``: the results, and all it printed."""
    path = home.parent / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    done = cli(home, "run", path, "--json", timeout=180, **env)
    return json.loads(done.stdout), done.stdout + done.stderr


def attempts(home: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's attempt rows as stored, with their usage columns."""
    db = sqlite3.connect(home / "state.db")
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT task_id, attempt, outcome, error_class, input_tokens, output_tokens, "
            "cost_usd, model_calls, unpriced_calls, model FROM attempts "
            "WHERE orchestration_id = ? ORDER BY task_id, attempt",
            (run_id,),
        ).fetchall()
    finally:
        db.close()
    return [dict(row) for row in rows]


def assert_key_nowhere(home: Path, shown: str) -> None:
    """The canary is in no file of the data folder (the vault holds it encrypted) and not in
    what was shown."""
    assert KEY not in shown
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes(), f"the key is in {path}"


def fan_out(task_id: str, server: StandinModel, count: int, **fields: Any) -> dict[str, Any]:
    """``count`` llm items of equal size (``page-00`` ...), one at a time."""
    config = {"prompt": "Summarise ${item}", **fields.pop("config", {})}
    return llm(
        task_id,
        server,
        for_each=[f"page-{index:02d}" for index in range(count)],
        max_concurrent=1,
        config=config,
        **fields,
    )


# --- usage per attempt ------------------------------------------------------------------------


def test_every_attempts_usage_is_stored_and_added_up_a_retried_ones_too(
    home: Path, model: StandinModel
) -> None:
    # attempt 1: two bad JSON answers (the call and its repair), invalid_output; attempt 2: one
    model.state.answer_invalid_json_next(2)
    retry = {"max_attempts": 2, "initial": "0.1s", "on": ["invalid_output"]}
    document = {
        "name": "usage",
        "tasks": [llm("meta", model, retry=retry, config={"prompt": "Tag it", "schema": SCHEMA})],
    }
    results, shown = run(home, document)

    meta = results["tasks"]["meta"]
    assert (meta["state"], meta["attempts"]) == ("succeeded", 2), meta
    first, second = attempts(home, results["id"])
    assert (first["outcome"], first["error_class"], first["model_calls"]) == (
        "failed",
        "invalid_output",
        2,
    )
    assert (second["outcome"], second["model_calls"]) == ("succeeded", 1)
    assert first["model"] == second["model"] == "claude-sonnet-4-5"
    calls = model.state.calls()
    assert len(calls) == 3
    # the output counts its own attempt's call; the run counts all three
    assert meta["output"]["usage"] == {
        "input_tokens": second["input_tokens"],
        "output_tokens": second["output_tokens"],
    }
    usage = results["usage"]
    assert usage["calls"] == 3 and usage["unpriced_calls"] == 0
    assert usage["input_tokens"] == first["input_tokens"] + second["input_tokens"]
    assert usage["output_tokens"] == first["output_tokens"] + second["output_tokens"]
    price = DEFAULT_PRICES["claude-sonnet-4-5"]
    expected = price.cost(usage["input_tokens"], usage["output_tokens"])
    assert usage["cost_usd"] == pytest.approx(expected, abs=2e-6)
    assert first["cost_usd"] + second["cost_usd"] == pytest.approx(expected, abs=2e-6)
    assert usage["budget"] is None
    assert_key_nowhere(home, shown)


# --- budgets ----------------------------------------------------------------------------------


def test_a_token_budget_stops_a_fan_out_mid_way(home: Path, model: StandinModel) -> None:
    each = call_tokens("Summarise page-00")
    limit = 5 * each - 1  # spent by the fifth call
    document = {
        "name": "budgeted",
        "budget": {"tokens": limit},
        "tasks": [
            fan_out("pages", model, 20),
            {"id": "after", "type": "delay", "dependencies": ["pages"], "run_if": "all_done"},
        ],
    }
    results, shown = run(home, document)

    calls = model.state.calls()
    assert len(calls) == 5
    tasks = results["tasks"]
    done = [f"pages[{index}]" for index in range(5)]
    assert all(tasks[task_id]["state"] == "succeeded" for task_id in done)
    message = f"budget spent: {5 * each:,} of {limit:,} tokens used (the orchestration's budget)"
    for index in range(5, 20):
        item = tasks[f"pages[{index}]"]
        assert (item["state"], item["error_class"], item["error"]) == ("failed", "budget", message)
        assert item["attempts"] == 0  # never started
    assert tasks["pages"]["error_class"] == "budget"
    assert tasks["after"]["state"] == "succeeded"  # not a model step: the budget leaves it be
    assert results["usage"]["calls"] == 5
    assert results["usage"]["budget"] == {
        "tokens": {"used": 5 * each, "limit": limit},
        "cost_usd": None,
        "spent": True,
        "text": f"budget: {5 * each:,} of {limit:,} tokens used",
    }
    stored = attempts(home, results["id"])
    assert [row["task_id"] for row in stored if row["model_calls"]] == done
    assert_key_nowhere(home, shown)

    # the summary and report.html say it, and the status shows it
    (run_dir,) = (home / "runs").iterdir()
    summary = (run_dir / "summary.txt").read_text(encoding="utf-8")
    assert f"Budget:     {5 * each:,} of {limit:,} tokens used — spent" in summary
    assert "Tokens:     " in summary and "pages[5] (pages[page-05]): " + message in summary
    log = (run_dir / "execution_log.txt").read_text(encoding="utf-8")
    assert log.count(f"{message}: model steps under it no longer start") == 1
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"budget: {5 * each:,} of {limit:,} tokens used — spent: model steps stopped" in html
    status = cli(home, "status", results["id"])
    assert f"· budget: {5 * each:,} of {limit:,} tokens used — spent" in status.stdout

    # a retry goes on from what the run used: the budget is still spent, no call is made
    retried = cli(home, "retry", results["id"], timeout=120)
    assert retried.code == 1, retried.stdout + retried.stderr
    assert len(model.state.calls()) == 5
    assert f"budget spent: {5 * each:,} of {limit:,} tokens used" in retried.stdout
    assert [row["task_id"] for row in attempts(home, results["id"]) if row["model_calls"]] == done


def test_a_task_budget_stops_its_own_calls_and_its_repair(home: Path, model: StandinModel) -> None:
    each = call_tokens("Summarise page-00")
    model.state.answer_invalid_json_next(1)
    document = {
        "name": "task budgets",
        "tasks": [
            fan_out("small", model, 6, budget={"tokens": 2 * each}),
            fan_out("free", model, 3),
            # the first answer is not JSON, and the first call spent the task's budget: the
            # repair call is not made
            llm("tagged", model, budget={"tokens": 1}, config={"prompt": "Tag", "schema": SCHEMA}),
        ],
        "mode": "sequential",
    }
    results, shown = run(home, document)

    tasks = results["tasks"]
    states = [tasks[f"small[{index}]"]["state"] for index in range(6)]
    assert states == ["succeeded"] * 2 + ["failed"] * 4
    assert tasks["small[2]"]["error"] == (
        f"budget spent: {2 * each:,} of {2 * each:,} tokens used (task small's budget)"
    )
    assert all(tasks[f"free[{index}]"]["state"] == "succeeded" for index in range(3))
    tagged = tasks["tagged"]
    assert (tagged["state"], tagged["error_class"]) == ("failed", "budget"), tagged
    assert "the repair call was not made: budget spent:" in tagged["error"]
    assert "(task tagged's budget)" in tagged["error"]
    assert len(model.state.calls()) == 2 + 3 + 1
    assert results["usage"]["calls"] == 6 and results["usage"]["budget"] is None
    assert_key_nowhere(home, shown)


def test_a_cost_budget_counts_the_price_table_and_an_unpriced_model_is_named(
    home: Path, model: StandinModel
) -> None:
    each = call_tokens("Summarise page-00")
    prices = json.dumps({"house-model": {"input": 10_000, "output": 10_000}})  # $ per million
    per_call = each * 10_000 / 1_000_000
    limit = round(2.5 * per_call, 2)  # spent by the third call
    document = {
        "name": "costs",
        "budget": {"cost_usd": limit},
        "tasks": [
            fan_out("unpriced", model, 2, config={"model": "mystery-model"}),
            fan_out("priced", model, 6, config={"model": "house-model"}),
        ],
        "mode": "sequential",
    }
    results, shown = run(home, document, ORCHESTRATOR_LLM_PRICES=prices)

    tasks = results["tasks"]
    assert [tasks[f"priced[{index}]"]["state"] for index in range(6)] == (
        ["succeeded"] * 3 + ["failed"] * 3
    )
    assert tasks["priced[3]"]["error"] == (
        f"budget spent: {money(3 * per_call)} of {money(limit)} used (the orchestration's budget)"
    )
    assert tasks["priced[0]"]["output"]["cost_usd"] == pytest.approx(per_call)
    usage = results["usage"]
    assert (usage["calls"], usage["unpriced_calls"]) == (5, 2)
    assert usage["cost_usd"] == pytest.approx(3 * per_call)
    assert usage["budget"]["spent"] is True
    (run_dir,) = (home / "runs").iterdir()
    log = (run_dir / "execution_log.txt").read_text(encoding="utf-8")
    warned = [
        line for line in log.splitlines() if "does not count" in line or "do not count" in line
    ]
    assert len(warned) == 1 and "mystery-model" in warned[0] and "WARN" in warned[0]
    summary = (run_dir / "summary.txt").read_text(encoding="utf-8")
    assert "· 2 calls without a price" in summary
    assert_key_nowhere(home, shown)


def test_a_budget_is_checked_when_the_document_is(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "budget: {tokenz: 5}\n"
        "tasks:\n"
        "  - {id: a, type: delay, budget: {tokens: 10}}\n"
        "  - {id: b, type: delay, budget: {}}\n"
        "  - {id: c, type: delay, budget: {cost_usd: .inf}}\n",
        encoding="utf-8",
    )
    done = cli(home, "validate", path)
    shown = done.stdout + done.stderr
    assert done.code == 2, shown
    assert "tasks[2].budget.cost_usd: Input should be a finite number" in shown
    assert "budget.tokenz" in shown and "did you mean" in shown.lower()
    assert "a budget needs tokens, cost_usd, or both" in shown
    model_steps = re.search(r"budget only applies to model steps \(([^)]*)\)", shown)
    assert model_steps and set(model_steps[1].split(", ")) == {"agent", "llm"}, shown


# --- a run without model steps ----------------------------------------------------------------


def test_a_run_without_model_steps_shows_no_usage(home: Path) -> None:
    document = {"name": "plain", "tasks": [{"id": "a", "type": "delay", "config": {"value": 1}}]}
    results, _ = run(home, document)
    assert "usage" not in results
    (run_dir,) = (home / "runs").iterdir()
    for name in ("summary.txt", "report.html"):
        text = (run_dir / name).read_text(encoding="utf-8")
        assert "Tokens" not in text and "budget" not in text.lower()
    status = cli(home, "status", results["id"], "--json")
    assert '"usage"' not in status.stdout


# --- through the MCP tools --------------------------------------------------------------------


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(Settings(home=home, shutdown_grace=0))) as connected:
        yield connected


@pytest.mark.anyio
async def test_get_status_and_get_results_show_usage_and_the_budget(
    client: Client, home: Path, model: StandinModel
) -> None:
    each = call_tokens("Summarise page-00")
    limit = 3 * each
    spec = {"name": "watched", "budget": {"tokens": limit}, "tasks": [fan_out("p", model, 8)]}
    submitted = await client.call_tool("submit_orchestration", {"spec": spec, "wait_seconds": 40})
    assert not submitted.is_error, submitted.content
    answer = submitted.structured_content
    assert answer is not None and answer["progress"]["finished"] is True
    run_id = answer["id"]

    status = await client.call_tool("get_status", {"id": run_id})
    assert not status.is_error, status.content
    shown = status.structured_content
    assert shown is not None
    assert shown["usage"]["calls"] == 3 and shown["usage"]["cost_usd"] > 0
    assert shown["usage"]["text"].endswith(f"· ${shown['usage']['cost_usd']:.4f}")
    assert shown["budget"] == {
        "tokens": {"used": limit, "limit": limit},
        "cost_usd": None,
        "spent": True,
        "text": f"budget: {limit:,} of {limit:,} tokens used — spent: model steps stopped",
    }
    assert f"Tokens: {shown['usage']['text']} · budget: {limit:,}" in shown["display"]
    budget_rows = [task for task in shown["tasks"] if task["error_class"] == "budget"]
    assert len(budget_rows) == 1 + 5  # the fan-out and its five items that never started

    results = await client.call_tool("get_results", {"id": run_id})
    assert not results.is_error, results.content
    got = results.structured_content
    assert got is not None
    assert got["usage"] == shown["usage"] and got["budget"] == shown["budget"]
    assert "Tokens:     " in got["summary"] and "Budget:     " in got["summary"]
    assert len(model.state.calls()) == 3
    assert_key_nowhere(home, json.dumps([shown, got]))

    # a run without model steps: no usage, no budget in either answer
    plain = {"tasks": [{"id": "a", "type": "delay"}]}
    other = await client.call_tool("submit_orchestration", {"spec": plain, "wait_seconds": 10})
    assert other.structured_content is not None
    other_id = other.structured_content["id"]
    for tool in ("get_status", "get_results"):
        answered = await client.call_tool(tool, {"id": other_id})
        assert answered.structured_content is not None
        assert "usage" not in answered.structured_content
        assert "budget" not in answered.structured_content


def test_usage_reads_as_the_seeds_summary_writes_it() -> None:
    usage = RunUsage(input_tokens=182_345, output_tokens=41_020, cost_usd=1.3689, calls=90)
    assert usage_text(usage) == "182k in / 41k out · $1.37"
    assert [compact(n) for n in (950, 1_234, 9_960, 999_600, 3_400_000)] == [
        "950",
        "1.2k",
        "10k",
        "1M",
        "3.4M",
    ]
    assert [money(x) for x in (0, 0.00004, 0.0042, 1.3689, 1234.5)] == [
        "$0.00",
        "<$0.0001",
        "$0.0042",
        "$1.37",
        "$1,234.50",
    ]
    unpriced = RunUsage(input_tokens=10, output_tokens=5, cost_usd=None, calls=1, unpriced_calls=1)
    assert usage_text(unpriced) == "10 in / 5 out · 1 call without a price"
