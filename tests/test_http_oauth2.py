"""OAuth2 for the ``http`` task type, through ``orchestrator run`` against a local token endpoint
and API on 127.0.0.1: client credentials, refresh tokens (rotated), a cached token reused by a
later run, an expired token renewed after a 401, a refused refresh failing with class ``auth``,
and every token and client secret kept out of everything stored or shown (canaries)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from cli_process import cli, home_with_secrets
from local_server import LocalServer

from multi_task_orchestrator.vault.store import Vault

CLIENT_ID = "client-7"
CLIENT_SECRET = "cs-canary-4b1f9e2d7c3a"
REFRESH_TOKEN = "rt-canary-0a9b8c7d6e5f"


@dataclass
class OAuthState:
    """What the token endpoint and the API saw and hold; read by the tests."""

    token_requests: list[dict[str, Any]] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)  # access tokens the API accepts
    issued: list[str] = field(default_factory=list)  # every token handed out
    refresh: str = REFRESH_TOKEN  # the refresh token the endpoint accepts now
    refuse: bool = False  # answer every token request with 400 invalid_grant
    expire_fresh: int = 0  # valid tokens the API still refuses (401) the first time it sees them
    api_calls: list[str | None] = field(default_factory=list)


class OAuthServer:
    """A token endpoint (``POST /token``) and an API (``GET /api/me``) on 127.0.0.1."""

    def __init__(self) -> None:
        self.state = OAuthState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = self.headers.get("authorization", "").removeprefix("Basic ")
                client = base64.b64decode(basic).decode() if basic else ""
                state.token_requests.append({"form": form, "client": client})
                if state.refuse or client != f"{CLIENT_ID}:{CLIENT_SECRET}":
                    self.answer(400, {"error": "invalid_grant", "error_description": "no"})
                    return
                grant = form.get("grant_type")
                if grant == "refresh_token" and form.get("refresh_token") != state.refresh:
                    self.answer(400, {"error": "invalid_grant"})
                    return
                token = f"at-canary-{secrets.token_hex(8)}"
                state.valid.add(token)
                state.issued.append(token)
                body: dict[str, Any] = {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }
                if grant == "refresh_token":
                    state.refresh = f"rt-canary-{secrets.token_hex(8)}"  # rotated
                    state.issued.append(state.refresh)
                    body["refresh_token"] = state.refresh
                self.answer(200, body)

            def do_GET(self) -> None:
                sent = self.headers.get("authorization")
                state.api_calls.append(sent)
                if self.path == "/api/elsewhere":  # on to the same server, by another name
                    port = self.server.server_address[1]
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost:{port}/api/me")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = (sent or "").removeprefix("Bearer ")
                if token in state.valid and state.expire_fresh > 0:
                    state.expire_fresh -= 1
                    state.valid.discard(token)
                if token in state.valid:
                    self.answer(200, {"user": "alice", "echo": sent})
                else:
                    self.answer(401, {"error": "invalid_token"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def token_grants(self) -> list[str | None]:
        return [request["form"].get("grant_type") for request in self.state.token_requests]


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    running = OAuthServer()
    running.thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(
        tmp_path / "home",
        CLIENT_ID=CLIENT_ID,
        CLIENT_SECRET=CLIENT_SECRET,
        REFRESH_TOKEN=REFRESH_TOKEN,
    )


def document(tmp_path: Path, grant: str, path: str = "/api/me") -> Path:
    written = tmp_path / "oauth2.yaml"
    written.write_text(
        f"""
tasks:
  - id: me
    type: http
    config:
      url: "${{vars.api}}{path}"
      auth:
        type: oauth2
        token_url: "${{vars.api}}/token"
        client_id: "${{vault.CLIENT_ID}}"
        client_secret: "${{vault.CLIENT_SECRET}}"
        {grant}
        scope: read
""",
        encoding="utf-8",
    )
    return written


CLIENT_CREDENTIALS = "grant: client_credentials"
REFRESH = 'refresh_token: "${vault.REFRESH_TOKEN}"'


def run(home: Path, path: Path, server: OAuthServer) -> dict[str, Any]:
    ran = cli(home, "run", path, "--var", f"api={server.url}", "--json")
    shown.append(ran.stdout + ran.stderr)
    return dict(json.loads(ran.stdout)["tasks"]["me"])


shown: list[str] = []


def assert_no_canary(home: Path, server: OAuthServer) -> None:
    """No token or client secret in any file of the data folder (the vault file is encrypted)
    nor in anything the CLI showed, in any of their usual encodings."""
    values = [CLIENT_SECRET, REFRESH_TOKEN, *server.state.issued]
    forms = [
        form
        for value in values
        for form in (
            value.encode(),
            base64.b64encode(value.encode()),
            quote(value, safe="").encode(),
        )
    ]
    texts = [text.encode() for text in shown]
    texts += [path.read_bytes() for path in home.rglob("*") if path.is_file()]
    for form in forms:
        for text in texts:
            assert form not in text, form
    shown.clear()


def test_client_credentials_token_is_fetched_sent_and_reused_by_a_later_run(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    path = document(tmp_path, CLIENT_CREDENTIALS)
    first = run(home, path, server)
    assert first["state"] == "succeeded", first
    assert first["output"]["data"]["user"] == "alice"
    assert first["output"]["data"]["echo"] == "Bearer ***"  # the echoed token is masked
    (request,) = server.state.token_requests
    assert request["client"] == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert request["form"] == {"grant_type": "client_credentials", "scope": "read"}

    second = run(home, path, server)
    assert second["state"] == "succeeded", second
    assert len(server.state.token_requests) == 1  # the cached token was reused
    assert server.state.api_calls == [f"Bearer {server.state.issued[0]}"] * 2

    vault = Vault.open(home / "vault.db")
    cached = [info for info in vault.list() if info.name.startswith("oauth2.127.0.0.1.")]
    vault.close()
    assert [info.allowed_hosts for info in cached] == [["127.0.0.1"]]
    assert_no_canary(home, server)


def test_refresh_token_grant_saves_the_rotated_refresh_token(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    path = document(tmp_path, REFRESH)
    first = run(home, path, server)
    assert first["state"] == "succeeded", first
    assert server.state.token_requests[0]["form"] == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "scope": "read",
    }
    server.state.valid.clear()  # the access token expires; the endpoint rotated the refresh token
    second = run(home, path, server)
    assert second["state"] == "succeeded", second
    assert server.token_grants() == ["refresh_token", "refresh_token"]
    # the second refresh used the rotated refresh token the first one saved in the vault
    assert server.state.token_requests[1]["form"]["refresh_token"] == server.state.issued[1]
    assert_expired_then_renewed(server, server.state.issued[2])
    assert_no_canary(home, server)


def assert_expired_then_renewed(server: OAuthServer, renewed_token: str) -> None:
    """The second run sent the cached (expired) token, got 401, and sent the renewed one."""
    first, expired, renewed = server.state.api_calls
    assert first == expired != renewed
    assert renewed == f"Bearer {renewed_token}"


def test_an_expired_token_is_renewed_after_a_401_and_the_request_sent_again(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    path = document(tmp_path, CLIENT_CREDENTIALS)
    assert run(home, path, server)["state"] == "succeeded"
    server.state.valid.clear()
    again = run(home, path, server)
    assert again["state"] == "succeeded", again
    assert server.token_grants() == ["client_credentials"] * 2
    assert_expired_then_renewed(server, server.state.issued[1])
    assert_no_canary(home, server)


def test_a_token_fetched_for_the_request_and_refused_is_renewed_once(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    """The session ended between the token's issue and its use: the 401 renews it (the token
    was fetched within the same request, not by another task meanwhile)."""
    server.state.expire_fresh = 1
    ran = run(home, document(tmp_path, CLIENT_CREDENTIALS), server)
    assert ran["state"] == "succeeded", ran
    assert ran["attempts"] == 1
    assert server.token_grants() == ["client_credentials"] * 2
    assert server.state.api_calls == [f"Bearer {token}" for token in server.state.issued]
    assert_no_canary(home, server)


def test_a_refused_refresh_fails_with_class_auth_naming_the_endpoint(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    path = document(tmp_path, REFRESH)
    assert run(home, path, server)["state"] == "succeeded"
    server.state.valid.clear()
    server.state.refuse = True
    failed = run(home, path, server)
    assert failed["state"] == "failed", failed
    assert failed["error_class"] == "auth"
    assert failed["error"] == (
        f"the OAuth2 token endpoint {server.url}/token refused refreshing the access token: "
        "400 Bad Request (invalid_grant)"
    )
    # the saved rotated refresh token was tried, then the configured one
    assert server.token_grants() == ["refresh_token"] * 3
    assert_no_canary(home, server)


def test_the_access_token_is_not_sent_to_a_host_a_redirect_leads_to(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    path = document(tmp_path, CLIENT_CREDENTIALS, "/api/elsewhere")
    failed = run(home, path, server)
    assert failed["state"] == "failed", failed
    assert failed["error_class"] == "config"
    assert "localhost" in failed["error"]
    assert "oauth2.127.0.0.1." in failed["error"]  # the cached token, bound to 127.0.0.1
    assert len(server.state.api_calls) == 1  # the redirect; nothing reached it by 'localhost'
    assert_no_canary(home, server)


def test_no_token_is_made_for_an_api_host_the_credentials_are_not_allowed_for(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    # a document pairs the person's token endpoint with an API of its own choosing (127.0.0.2):
    # a token made with credentials bound to 127.0.0.1 must not go there
    with LocalServer(host="127.0.0.2") as elsewhere:
        path = document(tmp_path, CLIENT_CREDENTIALS, "/echo")
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                'url: "${vars.api}/echo"', f'url: "{elsewhere.url()}/echo"'
            ),
            encoding="utf-8",
        )
        failed = run(home, path, server)
        assert (failed["state"], failed["error_class"]) == ("failed", "config"), failed
        assert "would be sent to host '127.0.0.2'" in failed["error"]
        assert "'CLIENT_ID'" in failed["error"]
        assert server.state.token_requests == []
        assert elsewhere.state.requests == []
    assert_no_canary(home, server)


def test_parallel_tasks_of_a_run_share_one_token(
    home: Path, tmp_path: Path, server: OAuthServer
) -> None:
    one = document(tmp_path, CLIENT_CREDENTIALS).read_text(encoding="utf-8")
    task = one.split("tasks:\n", 1)[1]
    path = tmp_path / "parallel.yaml"
    tasks = "".join(task.replace("id: me", f"id: me{n}") for n in range(4))
    path.write_text("tasks:\n" + tasks, encoding="utf-8")
    ran = cli(home, "run", path, "--var", f"api={server.url}", "--json")
    shown.append(ran.stdout + ran.stderr)
    states = {name: task["state"] for name, task in json.loads(ran.stdout)["tasks"].items()}
    assert states == {f"me{n}": "succeeded" for n in range(4)}, ran.stdout
    assert len(server.state.token_requests) == 1
    assert len(server.state.api_calls) == 4
    assert_no_canary(home, server)


@pytest.mark.parametrize(
    "auth, message",
    [
        ("{client_id: a}", "oauth2 needs refresh_token, or grant: client_credentials"),
        ("{client_id: a, grant: refresh_token}", "grant: refresh_token needs refresh_token"),
        (
            "{client_id: a, grant: client_credentials, refresh_token: b}",
            "refresh_token goes with grant: refresh_token, not client_credentials",
        ),
        ("{client_id: a, grant: client_credentials, token_url: 'ftp://x/t'}", "token_url"),
    ],
)
def test_an_oauth2_auth_without_one_clear_grant_is_refused_at_validation(
    tmp_path: Path, auth: str, message: str
) -> None:
    fields = auth.strip("{}")
    if "token_url" not in fields:
        fields += ", token_url: 'https://auth.example.org/token'"
    path = tmp_path / "bad.yaml"
    path.write_text(
        "tasks:\n  - {id: a, type: http, config: {url: 'https://api.example.org/x', "
        f"auth: {{type: oauth2, {fields}}}}}}}\n",
        encoding="utf-8",
    )
    checked = cli(tmp_path / "home", "validate", path)
    assert checked.code == 2
    assert message in checked.stdout + checked.stderr
