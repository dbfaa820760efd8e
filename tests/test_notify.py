"""Notifications through the door: ``orchestrator run`` as a child process and ``serve``
through the SDK's in-memory MCP client, sending to real receivers on 127.0.0.1.

A webhook receiver checks the ``X-Orchestrator-Signature`` HMAC with the key the vault holds; an
Apprise ``json://`` URL reaches a receiver too; a receiver answering 500 gets three tries while
the run succeeds; a channel whose host the secret is not bound to gets nothing. The signing key
is a canary: it must not be in any body, answer, log line or file of the run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cli_process import cli, home_with_secrets
from mcp import Client
from webhook_receiver import Received, Receiver

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings

CANARY = "canary-hmac-key-5b8e1f"  # the signing key: never anywhere but the vault


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run_log(home: Path) -> str:
    (log,) = (home / "runs").glob("*/execution_log.txt")
    return log.read_text(encoding="utf-8")


def assert_canary_nowhere(home: Path, *texts: str) -> None:
    """Not in the answers, not in the run folder, not in the state database."""
    for text in texts:
        assert CANARY not in text
    for path in [*(home / "runs").rglob("*"), home / "state.db"]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def signed(received: Received) -> bool:
    expected = "sha256=" + hmac.new(CANARY.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers.get("X-Orchestrator-Signature", ""), expected)


FAILING_TASK = {"id": "broken", "type": "delay", "config": {"fail": "network", "message": "down"}}
FINE_TASK = {"id": "fine", "type": "delay", "config": {"seconds": 0.1, "value": 1}}


# --- orchestrator run ------------------------------------------------------------------------


def test_a_signed_webhook_hears_the_failed_task_then_the_failed_run(
    tmp_path: Path, receiver: Receiver
) -> None:
    home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
    channel = {
        "url": receiver.url("webhook+http", "/hook"),
        "events": ["finished", "failed", "task_failed"],
        "secret": "${vault.HOOK_KEY}",
    }
    doc = write(
        tmp_path, {"name": "nightly", "notify": [channel], "tasks": [FINE_TASK, FAILING_TASK]}
    )

    result = cli(home, "run", doc)

    assert result.code == 1, result.stderr  # the run failed: its task did
    task, run = receiver.received
    assert all(signed(received) for received in receiver.received)
    assert task.path == run.path == "/hook"
    assert task.json()["event"] == "task_failed"
    assert task.json()["failed_tasks"] == [
        {"task_id": "broken", "error_class": "network", "error": "down"}
    ]
    body = run.json()
    assert body["event"] == "failed" and body["name"] == "nightly"
    assert body["status"] == "failed"
    assert body["counts"] == {"succeeded": 1, "failed": 1}
    assert body["summary"].startswith("nightly: failed, 1 of 2 tasks succeeded in ")
    assert body["run_id"].startswith("orch-")
    log = run_log(home)
    where = f"webhook+http://127.0.0.1:{receiver.port}"
    assert f"notify: task_failed sent to {where} (try 1): HTTP 200" in log
    assert f"notify: failed sent to {where} (try 1): HTTP 200" in log
    assert_canary_nowhere(
        home, result.stdout, result.stderr, *(r.body.decode() for r in receiver.received)
    )


def test_a_failing_receiver_gets_three_tries_and_the_run_still_succeeds(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.status = 500
    home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
    channel = {"url": receiver.url("webhook+http", "/hook"), "secret": "${vault.HOOK_KEY}"}
    doc = write(tmp_path, {"name": "ok", "notify": [channel], "tasks": [FINE_TASK]})

    result = cli(home, "run", doc)

    assert result.code == 0, result.stderr
    assert len(receiver.received) == 3
    assert all(signed(received) for received in receiver.received)
    assert [received.json()["event"] for received in receiver.received] == ["finished"] * 3
    log = run_log(home)
    where = f"webhook+http://127.0.0.1:{receiver.port}"
    assert f"finished to {where}: try 1 of 3 failed: HTTP 500; will retry" in log
    assert f"finished to {where}: try 2 of 3 failed: HTTP 500; will retry" in log
    assert f"finished to {where}: try 3 of 3 failed: HTTP 500; gave up" in log
    assert_canary_nowhere(home, result.stdout, result.stderr)


def test_a_host_the_secret_is_not_bound_to_gets_nothing(tmp_path: Path, receiver: Receiver) -> None:
    """The secret is allowed for 127.0.0.1; ``localhost`` reaches the same receiver, but
    neither the signing key nor a secret inside the URL is revealed for it."""
    home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
    signed_channel = {
        "url": receiver.url("webhook+http", "/signed", host="localhost"),
        "secret": "${vault.HOOK_KEY}",
    }
    in_url = {"url": receiver.url("webhook+http", "/token/${vault.HOOK_KEY}", host="localhost")}
    doc = write(tmp_path, {"notify": [signed_channel, in_url], "tasks": [FINE_TASK]})

    result = cli(home, "run", doc)

    assert result.code == 0, result.stderr
    assert receiver.received == []
    log = run_log(home)
    refusal = "secret 'HOOK_KEY' may not be sent to host 'localhost'"
    assert log.count(refusal) == 2
    assert "try 1 of 3 failed" in log and "gave up" in log  # a refusal is not tried again
    assert "try 2 of 3" not in log
    assert_canary_nowhere(home, result.stdout, result.stderr)


def test_a_secret_goes_to_the_host_apprise_connects_to_not_the_urls(tmp_path: Path) -> None:
    """mailto's smtp= sends to another server than the URL's host (127.0.0.1, which the secret
    is allowed for): an SMTP server on 127.0.0.2 would get it as the login password."""
    logins: list[bytes] = []

    def authenticate(*args: Any) -> AuthResult:
        logins.append(args[-1].password)
        return AuthResult(success=True)

    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    smtp = Controller(
        Sink(), hostname="127.0.0.2", port=port, authenticator=authenticate, auth_require_tls=False
    )
    smtp.start()
    try:
        home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
        url = (
            f"mailto://user:${{vault.HOOK_KEY}}@127.0.0.1:{port}?smtp=127.0.0.2"
            "&to=ops@example.com&from=orchestrator@example.com&mode=insecure"
        )
        doc = write(tmp_path, {"notify": [{"url": url}], "tasks": [FINE_TASK]})
        result = cli(home, "run", doc)
    finally:
        smtp.stop()
    assert result.code == 0, result.stderr
    assert logins == []
    log = run_log(home)
    assert "secret 'HOOK_KEY' may not be sent to host '127.0.0.2'" in log
    # the log names the channel by scheme and host, none of its query
    assert f"to mailto://127.0.0.1:{port}: try 1 of 3 failed" in log
    assert "mode=insecure" not in log
    assert_canary_nowhere(home, result.stdout, result.stderr)


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def test_the_network_policy_stops_webhooks_and_apprise_alike(
    tmp_path: Path, receiver: Receiver
) -> None:
    home = tmp_path / "home"
    channels = [
        {"url": receiver.url("webhook+http", "/hook")},
        {"url": receiver.url("json", "/apprise")},
    ]
    doc = write(tmp_path, {"notify": channels, "tasks": [FINE_TASK]})

    result = cli(home, "run", doc, ORCHESTRATOR_NET_DENY='["127.0.0.1"]')

    assert result.code == 0, result.stderr
    assert receiver.received == []
    log = run_log(home)
    assert log.count("try 1 of 3 failed: refused") == 2, log
    assert "try 2 of 3" not in log


def test_notify_true_sends_to_the_default_channel_of_the_settings(
    tmp_path: Path, receiver: Receiver
) -> None:
    home = tmp_path / "home"
    doc = write(tmp_path, {"name": "seed", "notify": True, "tasks": [FINE_TASK]})

    result = cli(home, "run", doc, ORCHESTRATOR_NOTIFY_URL=receiver.url("webhook+http", "/d"))

    assert result.code == 0, result.stderr
    (received,) = receiver.received
    assert received.path == "/d" and received.json()["event"] == "finished"
    assert "X-Orchestrator-Signature" not in received.headers  # no secret, no signature


def test_notify_true_without_a_default_channel_writes_a_log_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    doc = write(tmp_path, {"name": "seed", "notify": True, "tasks": [FINE_TASK]})

    result = cli(home, "run", doc)

    assert result.code == 0, result.stderr
    assert "[orchestration] notify: run finished: succeeded" in run_log(home)


def test_the_seeds_on_failure_notify_uses_the_default_channel_for_task_failures(
    tmp_path: Path, receiver: Receiver
) -> None:
    home = tmp_path / "home"
    doc = write(
        tmp_path,
        {"on_failure": {"notify": True}, "tasks": [FINE_TASK, FAILING_TASK]},
    )

    result = cli(home, "run", doc, ORCHESTRATOR_NOTIFY_URL=receiver.url("webhook+http", "/d"))

    assert result.code == 1
    (received,) = receiver.received  # task failures only: the run's end was not asked for
    assert received.json()["event"] == "task_failed"


def test_unknown_events_and_schemes_are_refused_with_did_you_mean(tmp_path: Path) -> None:
    home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
    channels = [
        {"url": "webhook+htps://hooks.example.com/x", "events": ["finishd", "approval_needed"]},
        {"url": "json://127.0.0.1:9/x", "events": []},
        {"url": "no scheme here"},
        {"url": "webhook+https://hooks.example.com/x", "secret": "${vault.HOOK_KEYS}"},
        {"url": "webhook+https://hooks.example.com/${vars.path}", "secret": "plain"},
        {"url": "json://127.0.0.1:9/x", "event": ["failed"]},
        {"url": "slack://${vault.HOOK_KEY}/B/C"},
        {"url": "webhok+https://hooks.example.com/x"},
        {"url": "json://127.0.0.1:9/x"},  # Apprise's own schemes are no misspelt webhooks
    ]
    doc = write(tmp_path, {"notify": channels, "tasks": [FINE_TASK]})

    result = cli(home, "validate", doc)

    assert result.code != 0
    out = result.stdout + result.stderr
    assert (
        "notify[0].url: unknown webhook scheme 'webhook+htps'; known: webhook+https, "
        "webhook+http (did you mean 'webhook+https'?)"
    ) in out
    assert "notify[0].events[0]: unknown notification event 'finishd'" in out
    assert "(did you mean 'finished'?)" in out
    assert "events[1]" not in out  # approval_needed is a known event
    assert "notify[1].events: a channel needs at least one event" in out
    assert "notify[2].url: 'no scheme here' is not a channel URL" in out
    assert "unknown secret 'HOOK_KEYS' in a notification channel (did you mean 'HOOK_KEY'?" in out
    assert "notify[4].secret: a channel's secret must be a vault reference" in out
    assert "'${vars.path}' cannot be used in a notification channel: only secrets are" in out
    assert "notify[5].event: unknown field 'event' (did you mean 'events'?)" in out
    assert "notify[6].url: a secret cannot stand for a channel URL's host" in out
    assert "notify[7].url: unknown webhook scheme 'webhok+https'" in out
    assert "notify[8]" not in out
    assert CANARY not in out

    # one channel's URL without the list around it: was "Input should be a valid list"
    one_url = write(tmp_path, {"notify": "json://127.0.0.1:9/x", "tasks": [FINE_TASK]})
    result = cli(home, "validate", one_url)
    assert result.code == 2
    assert (
        "notify: is true, false or a list of channels, each with a url, not one URL "
        "(write a list, e.g. notify: [{url: 'json://127.0.0.1:9/x'}])"
    ) in result.stdout + result.stderr
    # and one event without its list: was "Input should be a valid tuple"
    one_event = [{"url": "json://127.0.0.1:9/x", "events": "failed"}]
    result = cli(home, "validate", write(tmp_path, {"notify": one_event, "tasks": [FINE_TASK]}))
    assert result.code == 2
    assert (
        "notify[0].events: is a list of events, not one event (write a list, e.g. events: [failed])"
    ) in result.stdout + result.stderr


# --- serve, through the in-memory MCP client ----------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Client]:
    home = home_with_secrets(tmp_path / "home", HOOK_KEY=CANARY)
    settings = Settings(home=home, shutdown_grace=0)
    async with Client(create_server(settings)) as connected:
        yield connected


async def submit(client: Client, document: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("submit_orchestration", {"spec": document, "wait_seconds": 20})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["progress"]["finished"] is True
    return result.structured_content


@pytest.mark.anyio
async def test_apprise_json_url_reaches_a_local_receiver_with_a_secret_from_the_vault(
    client: Client, receiver: Receiver, tmp_path: Path
) -> None:
    """``json://user:${vault.HOOK_KEY}@127.0.0.1:PORT/...``: the secret is revealed for the
    URL's host only, and Apprise sends it as basic auth."""
    url = receiver.url("json", "/apprise", host="user:${vault.HOOK_KEY}@127.0.0.1")
    channels = [{"url": url, "events": ["finished", "failed"]}]
    answer = await submit(client, {"name": "Morning", "notify": channels, "tasks": [FINE_TASK]})

    (received,) = receiver.received
    body = received.json()
    assert received.path == "/apprise"
    assert body["title"] == "Morning: finished"
    assert body["message"].startswith("Morning: succeeded, 1 of 1 tasks succeeded in ")
    assert body["type"] == "success"
    user, _, password = base64.b64decode(received.headers["Authorization"].split()[1]).partition(
        b":"
    )
    assert (user, password) == (b"user", CANARY.encode())
    results = await client.call_tool("get_results", {"id": answer["id"]})
    texts = [getattr(block, "text", "") for block in results.content]
    home = tmp_path / "home"
    assert "notify: finished sent to json://" in run_log(home)
    assert_canary_nowhere(home, json.dumps(answer), *texts)


@pytest.mark.anyio
async def test_serve_sends_task_failed_and_failed_to_a_signed_webhook(
    client: Client, receiver: Receiver, tmp_path: Path
) -> None:
    channel = {
        "url": receiver.url("webhook+http", "/hook"),
        "events": ["failed", "task_failed"],
        "secret": "${vault.HOOK_KEY}",
    }
    answer = await submit(client, {"notify": [channel], "tasks": [FAILING_TASK]})

    assert [r.json()["event"] for r in receiver.received] == ["task_failed", "failed"]
    assert all(signed(received) for received in receiver.received)
    assert_canary_nowhere(tmp_path / "home", json.dumps(answer))


def test_a_default_channel_that_is_no_url_is_a_setting_error(tmp_path: Path) -> None:
    """ORCHESTRATOR_NOTIFY_URL=nope was taken: a run with notify: true then failed to build the
    channel when a task failed, and stayed 'running' for good (with a traceback)."""
    doc = write(tmp_path, {"notify": True, "tasks": [FINE_TASK]})
    result = cli(tmp_path / "home", "run", doc, ORCHESTRATOR_NOTIFY_URL="nope")
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: invalid setting: ORCHESTRATOR_NOTIFY_URL: 'nope' is not a channel URL "
        "(e.g. webhook+https://hooks.example.com/run or slack://...)\n"
    )
    assert not (tmp_path / "home" / "runs").exists()
