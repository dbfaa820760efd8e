"""``orchestrator schedule`` as a user runs it (child processes on one home), and a real
``orchestrator serve`` (stdio, driven by the SDK's client) firing a schedule that the CLI added
from outside while it ran."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tests.cli_process import cli
from tests.test_mcp_stdio import connect

DOC = "name: ping\ntasks:\n  - {id: ping, type: delay, config: {value: '${vars.who}'}}\n"


def test_schedule_add_list_pause_resume_rm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = tmp_path / "ping.yaml"
    document.write_text(DOC, encoding="utf-8")

    bad = cli(home, "schedule", "add", document, "--cron", "0 9 * *", "--tz", "Europe/Pari")
    assert bad.code == 2
    assert "bad cron expression '0 9 * *'" in bad.stderr
    assert "did you mean 'Europe/Paris'?" in bad.stderr

    latin1 = tmp_path / "latin1.yaml"  # was a traceback (UnicodeDecodeError), exit 1
    latin1.write_bytes(DOC.replace("ping", "pr\u00eat").encode("latin-1"))
    unreadable = cli(home, "schedule", "add", latin1, "--every", "1h")
    assert unreadable.code == 2
    assert f"cannot read {latin1}: byte 9 (0xea) is not UTF-8 text (save the document as " in (
        unreadable.stderr
    )

    added = cli(
        home,
        *("schedule", "add", document, "--cron", "30 7 * * *", "--tz", "Europe/Paris"),
        *("--overlap", "queue", "--catch-up", "run_once", "--var", "who=me", "--json"),
    )
    assert added.code == 0, added.stderr
    (schedule,) = json.loads(added.stdout)
    assert (schedule["overlap"], schedule["catch_up"], schedule["paused"]) == (
        "queue",
        "run_once",
        False,
    )
    assert len(schedule["next_fires"]) == 3
    assert all(fire[11:16] in {"05:30", "06:30"} for fire in schedule["next_fires"])  # 07:30 Paris

    interval = cli(
        home, "schedule", "add", document, "--every", "900s", "--var", "who=me", "--var", "whom=x"
    )
    assert interval.code == 0, interval.stderr
    assert "[every 15m]" in interval.stdout  # as the MCP tools say it, not "every 900s"
    # a var the document does not use is a warning, as run and validate say (was silent)
    assert "warning: var 'whom' was given, but the document neither defines nor uses it" in (
        interval.stderr
    )

    listed = cli(home, "schedule", "list")
    assert listed.code == 0 and schedule["id"] in listed.stdout
    assert (
        "At 07:30 every day, Europe/Paris" in listed.stdout and "last run none yet" in listed.stdout
    )

    short = schedule["id"][:7]
    paused = cli(home, "schedule", "pause", short, "--json")
    assert paused.code == 0 and json.loads(paused.stdout)[0]["paused"] is True
    resumed = cli(home, "schedule", "resume", short)
    assert resumed.code == 0 and f"resumed {schedule['id']}  active" in resumed.stdout
    removed = cli(home, "schedule", "rm", schedule["id"])
    assert removed.code == 0 and f"deleted {schedule['id']}" in removed.stdout
    gone = cli(home, "schedule", "rm", schedule["id"])
    assert gone.code == 2 and f"no schedule '{schedule['id']}'" in gone.stderr


@pytest.mark.anyio
async def test_serve_fires_a_schedule_the_cli_added_while_it_ran(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = tmp_path / "ping.yaml"
    document.write_text(DOC, encoding="utf-8")
    with (tmp_path / "serve.log").open("w", encoding="utf-8") as errlog:
        async with connect(home, errlog) as (client, _):
            added = await anyio.to_thread.run_sync(
                lambda: cli(
                    home,
                    *("schedule", "add", document, "--every", "1s", "--var", "who=cron"),
                    *("--overlap", "allow", "--json"),
                )
            )
            assert added.code == 0, added.stderr
            schedule_id = json.loads(added.stdout)[0]["id"]
            with anyio.fail_after(60):
                while True:
                    listing = await client.call_tool("list_orchestrations", {"limit": 50})
                    assert listing.structured_content is not None
                    runs = listing.structured_content["orchestrations"]
                    if len(runs) >= 2:
                        break
                    await anyio.sleep(0.2)
            assert {run["source"] for run in runs} == {f"schedule:{schedule_id}"}
            assert {run["name"] for run in runs} == {"ping"}
            answer = await client.call_tool("pause_schedule", {"id": schedule_id})
            assert answer.structured_content is not None
            assert answer.structured_content["fires"] >= 2
