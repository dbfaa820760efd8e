"""The five schedule tools through the SDK's in-memory client on a real server (its own home):
schedule, list, pause, resume, delete, and the errors a model can make — a bad cron, an unknown
zone (with a hint), both or neither of cron and every, a misspelt argument, an unknown id, an
invalid document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from tests.test_mcp_tools import ok, refused, settings

pytestmark = pytest.mark.anyio

DOC = "name: Morning check\ntasks:\n  - {id: look, type: delay, config: {value: '${vars.who}'}}\n"


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(create_server(settings(home))) as connected:
        yield connected


async def test_schedule_list_pause_resume_delete(client: Client) -> None:
    added = await ok(
        client,
        "schedule_orchestration",
        {
            "spec": DOC,
            "cron": "0 9 * * 1-5",
            "timezone": "Europe/Berlin",
            "overlap": "queue",
            "vars": {"who": "inbox"},
        },
    )
    schedule = added["schedule"]
    assert added["warnings"] == []
    assert schedule["id"].startswith("sch-") and schedule["name"] == "Morning check"
    assert schedule["when"] == "At 09:00 on Monday through Friday (Europe/Berlin)"
    assert (schedule["overlap"], schedule["catch_up"], schedule["paused"]) == (
        "queue",
        "skip",
        False,
    )
    assert len(schedule["next_fires"]) == 3
    for fire in schedule["next_fires"]:
        assert fire["utc"].endswith(":00.000Z") and fire["utc"][11:13] in {"07", "08"}
        assert fire["local"][11:19] == "09:00:00" and fire["local"][-6:] in {"+01:00", "+02:00"}
    assert schedule["id"] in added["next_step"]

    interval = await ok(
        client,
        "schedule_orchestration",
        {"spec": {"tasks": [{"id": "a", "type": "delay"}]}, "every": "90m", "name": "often"},
    )
    assert interval["schedule"]["when"] == "every 90m"
    assert interval["schedule"]["every_seconds"] == 5400

    listed = await ok(client, "list_schedules")
    assert [entry["id"] for entry in listed["schedules"]] == [
        schedule["id"],
        interval["schedule"]["id"],
    ]
    paused = await ok(client, "pause_schedule", {"id": schedule["id"][:8]})
    assert paused["paused"] is True and paused["next_fires"] == []
    resumed = await ok(client, "resume_schedule", {"id": schedule["id"]})
    assert resumed["paused"] is False and len(resumed["next_fires"]) == 3
    deleted = await ok(client, "delete_schedule", {"id": schedule["id"]})
    assert deleted["id"] == schedule["id"]
    listed = await ok(client, "list_schedules")
    assert [entry["id"] for entry in listed["schedules"]] == [interval["schedule"]["id"]]
    text = await refused(client, "delete_schedule", {"id": schedule["id"]})
    assert f"no schedule '{schedule['id']}'" in text and interval["schedule"]["id"] in text


async def test_mistakes_are_refused_with_what_to_do(client: Client) -> None:
    text = await refused(client, "schedule_orchestration", {"spec": DOC, "cron": "0 25 * * *"})
    assert "bad cron expression '0 25 * * *'" in text and "five fields" in text
    text = await refused(
        client, "schedule_orchestration", {"spec": DOC, "every": "1h", "timezone": "Asia/Tokio"}
    )
    assert "unknown time zone 'Asia/Tokio'; did you mean 'Asia/Tokyo'?" in text
    text = await refused(client, "schedule_orchestration", {"spec": DOC})
    assert "give cron or every" in text
    text = await refused(
        client, "schedule_orchestration", {"spec": DOC, "cron": "@daily", "every": "1h"}
    )
    assert "not both" in text
    text = await refused(client, "schedule_orchestration", {"spec": DOC, "evry": "1h"})
    assert "unknown argument 'evry'" in text and "did you mean 'every'?" in text
    text = await refused(
        client, "schedule_orchestration", {"spec": "tasks: [{id: a, type: nope}]", "every": "1h"}
    )
    assert "The orchestration document has 1 problem" in text and "nope" in text
    for mistake, expected in [
        ({"every": 1e308}, "every: a duration must be at most 3650d (ten years)"),
        ({"every": "soon"}, "every: 'soon' is not a duration (write it like 30s, 5m, 1h30m"),
        ({"every": "0s"}, "every: must be at least 1 s, got 0 s"),  # was "every: every must"
        ({"every": True}, "every.float: Input should be a valid number"),  # not every 1 s
        ({"every": "1h", "timezone": "Europe"}, "unknown time zone 'Europe'; did you mean"),
        ({"every": "1h", "timezone": "x" * 100_000}, "unknown time zone 'xxx"),
    ]:
        text = await refused(client, "schedule_orchestration", {"spec": DOC, **mistake})
        assert expected in text and "internal error" not in text and len(text) < 600, text
    text = await refused(client, "pause_schedule", {"id": "sch-none"})
    assert "no schedule 'sch-none'; there are no schedules" in text
    assert (await ok(client, "list_schedules"))["schedules"] == []


async def test_a_schedule_answer_carries_the_documents_warnings(client: Client) -> None:
    """A misspelt var is a warning, not an error: the schedule is made, and the answer says
    so, as validate_orchestration would (it was silent over MCP)."""
    added = await ok(
        client,
        "schedule_orchestration",
        {"spec": DOC, "every": "1h", "vars": {"who": "x", "whom": "x"}},
    )
    assert added["schedule"]["id"].startswith("sch-")
    (warning,) = [w for w in added["warnings"] if "whom" in w["message"]]
    assert warning["message"].startswith("var 'whom' was given, but the document neither")
