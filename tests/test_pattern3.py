"""The seed's pattern 3 for real: ``examples/pattern3_account_checks.yaml`` through
``orchestrator run`` against the demo's servers, started here on 127.0.0.1 — an IMAP server
(pymap), an OAuth2 token endpoint, a social API whose first token has expired, a profile API
behind an API key and a notification receiver — with the credentials in the user's vault.
The scheduled variant: ``orchestrator serve`` fires the example on a schedule an agent made with
``schedule_orchestration``, and each run notifies. Also: the demo's copy is the example's
document, and ``orchestrator demo --sites`` says how to run the example against it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from cli_process import REPO, Result, child_env, cli, home_with_secrets
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from multi_task_orchestrator.server.demo import ACCOUNT_SECRETS, PATTERN_3, notify_url
from multi_task_orchestrator.server.demo.accounts import SOCIAL_CLIENT_ID
from multi_task_orchestrator.server.demo.inbox import MESSAGES, UNREAD, DemoInbox
from multi_task_orchestrator.server.demo.sites import DemoSites

EXAMPLE = REPO / "examples" / "pattern3_account_checks.yaml"
HEADLINE = "Automating the boring parts, one DAG at a time"  # the example's default


@pytest.fixture
async def servers() -> AsyncIterator[tuple[DemoSites, DemoInbox]]:
    async with DemoSites() as sites, DemoInbox() as inbox:
        yield sites, inbox


def example_vars(sites: DemoSites, inbox: DemoInbox) -> dict[str, str]:
    """The example's vars that point it at the servers started here."""
    return {
        "imap_port": str(inbox.port),
        "token_url": f"{sites.url}/oauth/token",
        "social_api": f"{sites.url}/social/api",
        "profile_api": f"{sites.url}/profile/api",
    }


def run_example(home: Path, sites: DemoSites, inbox: DemoInbox) -> Result:
    given = example_vars(sites, inbox)
    pairs = [arg for name, value in given.items() for arg in ("--var", f"{name}={value}")]
    return cli(
        home,
        "run",
        EXAMPLE,
        *pairs,
        "--json",
        ORCHESTRATOR_NOTIFY_URL=notify_url(sites.url),
    )


@pytest.mark.anyio
async def test_pattern_3_checks_the_inbox_posts_with_oauth2_updates_the_profile_and_notifies(
    tmp_path: Path, servers: tuple[DemoSites, DemoInbox]
) -> None:
    sites, inbox = servers
    home = home_with_secrets(tmp_path / "home", **ACCOUNT_SECRETS)
    ran = await asyncio.to_thread(run_example, home, sites, inbox)
    accounts = sites.state.accounts

    assert ran.code == 0, ran.stdout + ran.stderr
    results = json.loads(ran.stdout)
    assert results["status"] == "succeeded"
    tasks = results["tasks"]
    # the inbox, as pymap serves it: counted, and the newest three subjects
    assert tasks["inbox_unread"]["output"] == {
        "folder": "INBOX",
        "messages": len(MESSAGES),
        "unseen": UNREAD,
    }
    newest = [subject for _, subject, _, _ in reversed(MESSAGES)][:3]
    assert [m["subject"] for m in tasks["inbox_recent"]["output"]["messages"]] == newest
    # the post: the first token was refused as expired, a second fetched with the refresh
    # token, and the post sent again with it, within one attempt
    assert accounts.grants == ["refresh_token", "refresh_token"]
    assert accounts.refused == 1
    assert accounts.posted_with == [accounts.issued[1]]
    assert [post["text"] for post in accounts.posts] == [
        f"Morning check done: {UNREAD} unread in the inbox."
    ]
    assert tasks["post"]["attempts"] == 1
    # the profile, updated with the API key
    assert accounts.profile_updates == 1
    assert accounts.profile["headline"] == HEADLINE
    assert accounts.profile["status"] == "available"
    # the summary holds what all three said
    assert tasks["summary"]["output"] == {
        "unread": UNREAD,
        "messages": len(MESSAGES),
        "recent_subjects": newest,
        "profile_headline": HEADLINE,
        "profile_updated_at": accounts.profile["updated_at"],
        "post_id": "1",
        "post_url": accounts.posts[0]["url"],
    }
    # critical checks first: the two inbox checks started before the rest, at most two at once
    log = (home / "runs" / results["id"] / "execution_log.txt").read_text(encoding="utf-8")
    started = [
        line.split("[")[1].split("]")[0] for line in log.splitlines() if "] started:" in line
    ]
    assert sorted(started[:2]) == ["inbox_recent", "inbox_unread"]
    assert started[2:] == ["profile", "post", "summary"]
    assert results["max_parallel"] <= 2
    assert "401: renewing the OAuth2 access token, sending again" in log
    # the notification reached the receiver
    (notification,) = accounts.notifications
    assert notification["event"] == "finished"
    assert notification["run_id"] == results["id"]
    assert notification["status"] == "succeeded"
    assert "notify: finished sent to webhook+http://127.0.0.1" in log

    assert_no_canary(home, ran, [*ACCOUNT_SECRETS.values(), *accounts.issued])


@pytest.mark.anyio
async def test_pattern_3_on_a_schedule_runs_from_serve_and_notifies(
    tmp_path: Path, servers: tuple[DemoSites, DemoInbox]
) -> None:
    """The scheduled variant as a user sets it up: ``serve`` with a default notification
    channel, an agent schedules the example through MCP; the server fires it, the run checks
    the accounts and the receiver hears it finished."""
    sites, inbox = servers
    home = home_with_secrets(tmp_path / "home", **ACCOUNT_SECRETS)
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "multi_task_orchestrator.server.cli", "serve"],
        env={"ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_NOTIFY_URL": notify_url(sites.url)},
        cwd=str(REPO),
    )
    accounts = sites.state.accounts
    with (tmp_path / "serve.log").open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(server, errlog=errlog)) as client:
            scheduled = await client.call_tool(
                "schedule_orchestration",
                {
                    "spec": EXAMPLE.read_text(encoding="utf-8"),
                    "every": "1s",
                    "vars": example_vars(sites, inbox),
                    "name": "morning checks",
                },
            )
            assert not scheduled.is_error, scheduled.content
            assert scheduled.structured_content is not None
            schedule_id = scheduled.structured_content["schedule"]["id"]
            with anyio.fail_after(60):
                while not accounts.notifications:
                    await anyio.sleep(0.1)
            await client.call_tool("pause_schedule", {"id": schedule_id})
            listing = await client.call_tool("list_orchestrations", {"limit": 50})
    assert listing.structured_content is not None
    runs = {run["id"]: run for run in listing.structured_content["orchestrations"]}
    notification = accounts.notifications[0]
    assert notification["event"] == "finished"
    assert notification["status"] == "succeeded"
    assert runs[notification["run_id"]]["source"] == f"schedule:{schedule_id}"
    assert accounts.posts[0]["text"] == f"Morning check done: {UNREAD} unread in the inbox."


def assert_no_canary(home: Path, ran: Result, values: list[str]) -> None:
    """No credential or token in any file of the data folder (the vault file is encrypted),
    nor in what the command printed, in the forms they travel in."""
    secret = ACCOUNT_SECRETS["SOCIAL_CLIENT_SECRET"]
    forms = [value.encode() for value in values]
    forms.append(base64.b64encode(f"{SOCIAL_CLIENT_ID}:{secret}".encode()))  # client auth
    texts = [ran.stdout.encode(), ran.stderr.encode()]
    texts += [path.read_bytes() for path in home.rglob("*") if path.is_file()]
    for form in forms:
        for text in texts:
            assert form not in text, form


def test_the_demos_pattern_3_is_the_examples_document() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["orchestration"]
    demo = yaml.safe_load(PATTERN_3.read_text(encoding="utf-8"))["orchestration"]
    assert demo.pop("name") == "Demo · Pattern 3: account checks"
    assert example.pop("name") == "Account Checks"
    assert demo == example


def test_demo_sites_say_how_to_run_pattern_3_against_them(tmp_path: Path) -> None:
    served = subprocess.Popen(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", "demo", "--sites"],
        cwd=REPO,
        env=child_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stdout is not None
        lines: list[str] = []
        while not lines or "pattern3_account_checks.yaml" not in lines[-1]:
            line = served.stdout.readline()
            assert line, served.stderr.read() if served.stderr else ""
            lines.append(line.strip())
    finally:
        served.terminate()
        served.wait(10)
    stored = [line for line in lines if "orchestrator vault set" in line]
    assert [line.split("vault set ")[1] for line in stored] == [
        f"{name} --hosts 127.0.0.1" for name in ACCOUNT_SECRETS
    ]
    words = lines[-1].split()
    given: dict[str, Any] = dict(
        words[index + 1].split("=", 1) for index, word in enumerate(words) if word == "--var"
    )
    assert set(given) == {"imap_port", "token_url", "social_api", "profile_api"}
    sites_url = lines[0].split()[3].rstrip(",")
    assert given["token_url"] == f"{sites_url}/oauth/token"
    assert f"127.0.0.1:{given['imap_port']}" in lines[0]
