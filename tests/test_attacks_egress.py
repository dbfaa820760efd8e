"""Egress attacks on loopback, through ``orchestrator run``: an IPv6 spelling of a refused IPv4
address (IPv4-mapped, IPv4-compatible, NAT64) is refused as the address it carries, directly and
as a redirect hop, and the server behind the refused address receives nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import cli
from local_server import LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    started = LocalServer().start()
    yield started
    started.stop()


def run(home: Path, document: str, **settings: str) -> tuple[int, dict, str]:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "doc.yaml"
    path.write_text(document, encoding="utf-8")
    variables = {f"ORCHESTRATOR_{key.upper()}": value for key, value in settings.items()}
    done = cli(home, "run", path, "--json", **variables)
    return done.code, json.loads(done.stdout), done.stderr


def fetch(url: str) -> str:
    return f"""
name: Egress
tasks:
  - id: get
    type: http
    config: {{url: "{url}"}}
"""


def failure(results: dict) -> str:
    task = results["tasks"]["get"]
    assert (task["state"], task["error_class"]) == ("failed", "policy"), task
    return task["error"]


@pytest.mark.parametrize(
    "address",
    ["::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::169.254.169.254", "::ffff:a9fe:a9fe"],
)
def test_ipv6_forms_of_the_metadata_address_are_refused(tmp_path: Path, address: str) -> None:
    code, results, _ = run(tmp_path, fetch(f"http://[{address}]/latest/meta-data/"))
    assert code == 1
    error = failure(results)
    assert "169.254.169.254" in error and "metadata" in error, error


def test_a_denied_network_is_refused_in_its_mapped_form(
    tmp_path: Path, server: LocalServer
) -> None:
    before = len(server.state.requests)
    code, results, _ = run(
        tmp_path,
        fetch(f"http://[::ffff:127.0.0.1]:{server.port}/echo"),
        net_deny='["127.0.0.0/8"]',
    )
    assert code == 1
    assert "denied network 127.0.0.0/8" in failure(results)
    assert len(server.state.requests) == before


def test_a_redirect_to_the_mapped_form_of_a_denied_address_is_not_followed(
    tmp_path: Path, server: LocalServer
) -> None:
    target = f"http://[::ffff:127.0.0.1]:{server.port}/echo?stolen=1"
    # the first hop goes to a server on 127.0.0.2 (also this machine), which is not denied
    hop = LocalServer(host="127.0.0.2").start()
    try:
        start = hop.url(f"/redirect?to={target}")
        code, results, _ = run(tmp_path, fetch(start), net_deny='["127.0.0.1/32"]')
    finally:
        hop.stop()
    assert [r["path"] for r in hop.state.requests] == ["/redirect"]
    assert code == 1
    assert "denied network 127.0.0.1/32" in failure(results)
    assert [r["path"] for r in server.state.requests if r["query"] == "stolen=1"] == []


def test_a_line_break_from_another_tasks_output_cannot_add_a_header(
    tmp_path: Path, server: LocalServer
) -> None:
    # a page's text put into a header must not start a second header (or request): refused as
    # the config's mistake (class config, never retried), nothing sent
    before = len(server.state.requests)
    code, results, _ = run(
        tmp_path,
        f"""
tasks:
  - {{id: page, type: delay, config: {{value: "note\\r\\nX-Injected: 1"}}}}
  - id: get
    type: http
    needs: page
    retry: {{max_attempts: 3, on: [network]}}
    config: {{url: "{server.url("/echo")}", headers: {{X-Note: "${{page.output}}"}}}}
""",
    )
    assert code == 1
    task = results["tasks"]["get"]
    assert (task["state"], task["error_class"], task["attempts"]) == ("failed", "config", 1)
    assert "header X-Note holds a line break" in task["error"]
    assert len(server.state.requests) == before
