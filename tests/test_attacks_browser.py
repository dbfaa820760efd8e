"""Browser attacks on loopback, through ``orchestrator run`` / ``validate`` with real Chromium.

Egress: a page on an allowed host reaches a denied one (``127.0.0.2``, refused with
``ORCHESTRATOR_NET_DENY``) through an image's redirect, a main-frame redirect or a WebSocket;
the denied server receives nothing and the task reports the refusal.

Secrets (``TOKEN``, allowed for 127.0.0.1 only): an evaluate script may not hold one; a secret
typed into a page cannot be read back by evaluate, nor by reading the page; and a context that
has received it cannot reach another host - neither by its page's own script nor by a goto.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import home_with_secrets
from local_server import LocalServer

from multi_task_orchestrator.vault.store import Vault
from tests.browser_site import serve_site

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-canary-7e2b90c4d1a6f358"
DENY = {"ORCHESTRATOR_NET_DENY": '["127.0.0.2/32"]'}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_site() as (base, _):
        yield base


@pytest.fixture(scope="module")
def other() -> Iterator[LocalServer]:
    """The host a document must not reach: another loopback address."""
    with LocalServer(host="127.0.0.2") as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", TOKEN=SECRET)


def orchestrator(home: Path, command: str, document: str, **env: str) -> tuple[int, str]:
    path = home.parent / "attack.yaml"
    path.write_text(document, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environment.update(ORCHESTRATOR_HOME=str(home), **env)
    done = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", command, str(path), "--json"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr


def run(home: Path, config: dict[str, Any], **env: str) -> tuple[dict[str, Any], str]:
    document = {"tasks": [{"id": "page", "type": "browser_automation", "config": config}]}
    _, shown = orchestrator(home, "run", json.dumps(document), **env)
    results = json.loads(shown[: shown.rindex("}") + 1])
    return results["tasks"]["page"], shown


def received(server: LocalServer, path: str) -> list[dict[str, Any]]:
    return server.state.received(path)


def assert_nowhere(home: Path, shown: str, *forms: str) -> None:
    for form in (SECRET, *forms):
        assert form not in shown, f"{form!r} is in the CLI's output"
        for path in (p for p in home.rglob("*") if p.is_file()):
            assert form.encode() not in path.read_bytes(), f"{form!r} is in {path}"


# --- egress: what Chromium sends before routing sees it ----------------------------------------


@pytest.mark.parametrize("way", ["image", "navigation", "socket"])
def test_a_denied_host_receives_nothing_from_a_page(
    home: Path, site: str, other: LocalServer, way: str
) -> None:
    target = other.url(f"/echo/{way}")
    config: dict[str, Any] = {
        "image": {"url": f"{site}/image?to={target}"},
        "navigation": {"url": f"{site}/redirect?to={target}"},
        "socket": {
            "url": f"{site}/socket?to={target.replace('http:', 'ws:')}",
            "steps": [{"wait_for": {"text": "done"}}],
        },
    }[way]
    task, _ = run(home, config, **DENY)

    assert received(other, f"/echo/{way}") == []
    assert (task["state"], task["error_class"]) == ("failed", "policy"), task
    assert "127.0.0.2 is in the denied network 127.0.0.2/32" in task["error"]


def test_webrtc_sends_nothing_around_the_proxy(home: Path, site: str) -> None:
    # a STUN request is UDP, which no HTTP proxy carries: it must not be sent at all
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stun:
        stun.bind(("127.0.0.2", 0))
        stun.setblocking(False)
        port = stun.getsockname()[1]
        task, _ = run(
            home,
            {"url": f"{site}/rtc?to=127.0.0.2:{port}", "steps": [{"wait_for": {"text": "done"}}]},
        )
        datagrams = 0
        with contextlib.suppress(BlockingIOError):
            while stun.recv(2048):
                datagrams += 1
    assert task["state"] == "succeeded", task
    assert datagrams == 0


# --- secrets in the browser ----------------------------------------------------------------


def test_an_evaluate_script_with_a_secret_is_refused_at_validation(home: Path, site: str) -> None:
    document = {
        "tasks": [
            {
                "id": "steal",
                "type": "browser_automation",
                "config": {
                    "url": f"{site}/list",
                    "steps": [{"evaluate": "Array.from('${vault.TOKEN}')"}],
                },
            }
        ]
    }
    code, shown = orchestrator(home, "validate", json.dumps(document))
    assert code == 2, shown
    assert "steps" in shown and "evaluate step's script may not use a secret" in shown, shown
    assert "fill, type or select steps" in shown, shown


READ_BACK = "Array.from(document.querySelector('#password').value)"
LISTEN = (
    "document.addEventListener('input', (event) => { document.title = "
    "Array.from(event.target.value).join(' '); })"
)


@pytest.mark.parametrize(
    "steps",
    [
        [{"fill": {"selector": "#password", "value": "${vault.TOKEN}"}}, {"evaluate": READ_BACK}],
        [
            {"evaluate": LISTEN},
            {"type": {"selector": "#password", "text": "${vault.TOKEN}"}},
        ],
    ],
    ids=["read-after", "listen-before"],
)
def test_a_task_that_types_a_secret_cannot_evaluate(
    home: Path, site: str, steps: list[dict[str, Any]]
) -> None:
    document = {
        "tasks": [
            {
                "id": "page",
                "type": "browser_automation",
                "config": {"url": f"{site}/login", "steps": steps},
            }
        ]
    }
    code, shown = orchestrator(home, "run", json.dumps(document))
    assert code == 2, shown
    assert "a task that types a secret may not have evaluate steps" in shown, shown
    assert_nowhere(home, shown)


def test_a_page_that_shows_a_typed_secret_is_redacted_before_any_transform(
    home: Path, site: str
) -> None:
    # the form page writes the values typed into it into #out; extract reads #out and a later
    # task reverses what it read: a form of the secret the redactor would not know
    page = {
        "url": f"{site}/form",
        "steps": [
            {"fill": {"selector": "#q", "value": "${vault.TOKEN}"}},
            {"click": "#go"},
            {"extract": {"selector": "#out", "as": "shown"}},
        ],
    }
    flip = {"action": "pick", "input": "${page.output.data.shown[0]}", "path": "reverse(@)"}
    document = {
        "tasks": [
            {"id": "page", "type": "browser_automation", "config": page},
            {"id": "flip", "type": "data_processing", "config": flip, "dependencies": ["page"]},
        ]
    }
    _, shown = orchestrator(home, "run", json.dumps(document))
    results = json.loads(shown[: shown.rindex("}") + 1])["tasks"]
    assert results["flip"]["state"] == "succeeded", results
    assert "***" in results["page"]["output"]["data"]["shown"][0]
    assert "***" in results["flip"]["output"]
    assert_nowhere(home, shown, SECRET[::-1])


def test_a_context_holding_a_secret_cannot_send_it_elsewhere(
    home: Path, site: str, other: LocalServer
) -> None:
    # the page's own script sends every key typed into its password field to another host
    leak = other.url("/echo/leak?v=")
    task, shown = run(
        home,
        {
            "url": f"{site}/leak?to={leak}",
            "steps": [
                {"type": {"selector": "#pw", "text": "${vault.TOKEN}"}},
                {"wait_for": {"text": "sent"}},
            ],
        },
    )
    assert received(other, "/echo/leak") == []
    assert (task["state"], task["error_class"]) == ("failed", "policy"), task
    assert "has received secret 'TOKEN', which is not allowed for 127.0.0.2" in task["error"]
    assert_nowhere(home, shown)


def test_a_context_holding_a_secret_cannot_navigate_elsewhere(
    home: Path, site: str, other: LocalServer
) -> None:
    # the other host is reachable: a page that holds no secret goes there
    before, _ = run(home, {"url": f"{site}/login", "steps": [{"goto": other.url("/echo/free")}]})
    assert before["state"] == "succeeded", before
    assert len(received(other, "/echo/free")) == 1

    task, shown = run(
        home,
        {
            "url": f"{site}/login",
            "steps": [
                {"fill": {"selector": "#password", "value": "${vault.TOKEN}"}},
                {"goto": other.url("/echo/after")},
            ],
        },
    )
    assert received(other, "/echo/after") == []
    assert (task["state"], task["error_class"]) == ("failed", "policy"), task
    assert "step 2 (goto" in task["error"] and "received secret 'TOKEN'" in task["error"]
    assert_nowhere(home, shown)


def test_a_session_context_reaches_only_the_session_hosts(
    home: Path, site: str, other: LocalServer
) -> None:
    state = {
        "cookies": [
            {
                "name": "sid",
                "value": SECRET,
                "domain": "127.0.0.1",
                "path": "/",
                "expires": -1,
                "httpOnly": False,
                "secure": False,
                "sameSite": "Lax",
            }
        ],
        "origins": [],
    }
    vault = Vault.open(home / "vault.db")
    vault.set("PORTAL", json.dumps(state), allowed_hosts=["127.0.0.1"])
    vault.close()
    task, shown = run(
        home,
        {"url": f"{site}/list", "session": "PORTAL", "steps": [{"goto": other.url("/echo/s")}]},
    )
    assert received(other, "/echo/s") == []
    assert (task["state"], task["error_class"]) == ("failed", "policy"), task
    assert "received secret 'PORTAL', which is not allowed for 127.0.0.2" in task["error"]
    assert_nowhere(home, shown)
