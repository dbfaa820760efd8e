"""The ``http`` runner through a real engine, against a local server on 127.0.0.1.

Concurrency and spacing are measured at the server (requests in flight, arrivals per second);
timing checks are lower bounds only. Secrets come from a small host-bound resolver written here,
and the tests check where a secret went, where it did not, and that nothing stored holds it.
"""

from __future__ import annotations

import email.utils
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_server import PNG_BYTES, LocalServer
from memory_secrets import MemorySecrets

from multi_task_orchestrator.engine.document.units import Rate
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.network import HostLimits, Network, NetworkPolicy
from multi_task_orchestrator.engine.runners.http import HttpConfig, retry_after_seconds
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState

pytestmark = pytest.mark.anyio

TOKEN = "tok-7f3a9c1e5b"  # the canary: a secret value that must only reach 127.0.0.1


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer() as running:
        yield running


class RecordingNetwork(Network):
    """The engine's network with a hook on the shared client recording every request sent."""

    def __init__(self, policy: NetworkPolicy | None = None) -> None:
        super().__init__(policy)
        self.sent: list[str] = []

        async def record(request: httpx.Request) -> None:
            self.sent.append(str(request.url))

        self.client().event_hooks["request"].append(record)


@asynccontextmanager
async def open_engine(tmp_path: Path, **options: Any) -> AsyncIterator[Engine]:
    home = tmp_path / "home"
    async with await Engine.open(home / "state.db", home / "runs", resume=False, **options) as e:
        yield e


async def run(engine: Engine, document: dict[str, Any], timeout: float = 30) -> RunSnapshot:
    run_id = await engine.submit(document)
    snapshot = await engine.wait(run_id, timeout, include_outputs=True)
    assert snapshot.status.terminal, f"run did not finish: {snapshot.status}"
    return snapshot


async def watch(engine: Engine, run_ids: list[str]) -> tuple[list[RunSnapshot], set[str]]:
    """Wait for the runs to end, noting every ``waiting_for`` the status showed meanwhile."""
    waits: set[str] = set()
    while True:
        snapshots = [await engine.snapshot(run_id) for run_id in run_ids]
        waits |= {t.waiting_for for s in snapshots for t in s.tasks if t.waiting_for}
        if all(snapshot.status.terminal for snapshot in snapshots):
            return snapshots, waits
        await engine.wait(run_ids[0], 0.02)


def task(snapshot: RunSnapshot, task_id: str) -> TaskSnapshot:
    return next(t for t in snapshot.tasks if t.task_id == task_id)


def http(task_id: str, url: str, **config: Any) -> dict[str, Any]:
    retry = config.pop("retry", None)
    spec: dict[str, Any] = {"id": task_id, "type": "http", "config": {"url": url, **config}}
    if retry is not None:
        spec["retry"] = retry
    return spec


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def stored_bytes(home: Path) -> bytes:
    """The state database with its write-ahead log, and every file of every run folder."""
    files = [*home.glob("state.db*"), *(path for path in home.rglob("runs/**/*") if path.is_file())]
    return b"".join(path.read_bytes() for path in files)


# --- requests and responses -----------------------------------------------------------------


async def test_get_with_params_and_headers_extracts_from_the_json_body(
    engine: Engine, server: LocalServer
) -> None:
    document = {
        "tasks": [
            http(
                "get",
                server.url("/echo?lang=en&page=1"),  # params add to its query, page replaced
                params={"q": "books", "page": 2, "tag": ["a", "b"]},
                headers={"X-Trace": 42},
                extract='{method: method, query: query, trace: headers."x-trace"}',
            )
        ]
    }
    snapshot = await run(engine, document)
    output = task(snapshot, "get").output
    assert output["status"] == 200
    assert output["data"] == {
        "method": "GET",
        "query": {"lang": "en", "q": "books", "page": "2", "tag": "b"},
        "trace": "42",
    }
    assert output["headers"]["content-type"] == "application/json"
    assert set(output["headers"]) <= {
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "location",
        "retry-after",
        "link",
    }
    sent = server.state.received("/echo")[-1]
    assert sent["query"] == "lang=en&page=2&q=books&tag=a&tag=b"


async def test_json_text_and_form_bodies_arrive_as_sent(
    engine: Engine, server: LocalServer
) -> None:
    echo = server.url("/echo")
    pick = '{method: method, type: headers."content-type", body: body}'
    document = {
        "tasks": [
            http("as_json", echo, method="post", json={"title": "Hi", "n": [1, 2]}, extract=pick),
            http("as_text", echo, method="PUT", body="plain words", extract=pick),
            http("as_form", echo, method="PATCH", form={"a": "1", "b": True}, extract=pick),
        ]
    }
    snapshot = await run(engine, document)
    assert snapshot.status == RunStatus.succeeded
    assert task(snapshot, "as_json").output["data"] == {
        "method": "POST",
        "type": "application/json",
        "body": '{"title":"Hi","n":[1,2]}',
    }
    assert task(snapshot, "as_text").output["data"]["body"] == "plain words"
    assert task(snapshot, "as_form").output["data"] == {
        "method": "PATCH",
        "type": "application/x-www-form-urlencoded",
        "body": "a=1&b=true",
    }


async def test_bytes_are_saved_as_an_artifact(engine: Engine, server: LocalServer) -> None:
    snapshot = await run(engine, {"tasks": [http("image", server.url("/bytes"), response="bytes")]})
    data = task(snapshot, "image").output["data"]
    assert data == {"artifact": "image-bytes.png", "size": len(PNG_BYTES), "mime_type": "image/png"}
    assert (Path(snapshot.run_dir) / "artifacts" / "image-bytes.png").read_bytes() == PNG_BYTES


async def test_config_mistakes_are_validation_errors(engine: Engine) -> None:
    document = {
        "tasks": [
            http("a", "ftp://example.org/x"),
            http("b", "https://example.org", json={"a": 1}, form={"b": 2}),
            http("c", "https://example.org", expect_status=["2xy"], jsn={"a": 1}),
            http("d", "https://example.org", paginate={"next": "link", "nxt": "a"}),
            http("e", "https://example.org", extract="items[?"),
            http("f", "https://example.org", headers={"X Trace": "1"}),
        ]
    }
    issues = [(issue.path, issue.message, issue.hint) for issue in engine.validate(document).errors]
    assert issues == [
        (
            "tasks[0].config.url",
            "'ftp://example.org/x' is not an http or https URL",
            "write the whole URL, e.g. https://api.example.org/items",
        ),
        ("tasks[1].config", "give one body, not json and form", "use json, body or form"),
        (
            "tasks[2].config.expect_status",
            "'2xy' is not a status pattern",
            'use codes such as 201, classes such as "2xx", or spans such as "200-299"',
        ),
        ("tasks[2].config.jsn", "unknown field 'jsn'", "did you mean 'json'?"),
        ("tasks[3].config.paginate.nxt", "unknown field 'nxt'", "did you mean 'next'?"),
        (
            "tasks[4].config.extract",
            "invalid JMESPath in 'extract': the expression ends too early",
            "see https://jmespath.org; literals go in backticks, e.g. items[?id > `3`]",
        ),
        (
            "tasks[5].config.headers",
            "'X Trace' is not a header name",
            "use letters, digits and !#$%&'*+-.^_`|~; a ${...} reference is replaced in a "
            "header's value, not in its name",
        ),
    ]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_seconds(future)
    assert seconds is not None and 25 <= seconds <= 30


def test_expect_status_takes_codes_classes_and_spans() -> None:
    config = HttpConfig.model_validate({"url": "https://x.org", "expect_status": 404})
    assert config.expect_status == [404]
    config = HttpConfig.model_validate(
        {"url": "https://x.org", "expect_status": ["2xx", "400-404"]}
    )
    assert config.expect_status == ["2xx", "400-404"]


# --- error classes and retries --------------------------------------------------------------


async def test_flaky_endpoint_succeeds_on_the_third_attempt(
    engine: Engine, server: LocalServer
) -> None:
    key = unique("flaky")
    retry = {"max_attempts": 3, "initial": "10ms", "jitter": False, "on": ["http_5xx"]}
    document = {"tasks": [http("flaky", server.url(f"/flaky/{key}?fails=2"), retry=retry)]}
    snapshot = await run(engine, document)
    flaky = task(snapshot, "flaky")
    assert flaky.state == TaskState.succeeded
    assert flaky.attempts == 3
    assert flaky.output["data"] == {"key": key, "hits": 3}
    attempts = sorted(await engine.store.load_attempts(snapshot.id), key=lambda a: a.attempt)
    assert [(a.attempt, a.outcome, a.error_class) for a in attempts] == [
        (1, "failed", "http_5xx"),
        (2, "failed", "http_5xx"),
        (3, "succeeded", None),
    ]
    assert attempts[0].error == (
        f"GET {server.url(f'/flaky/{key}?fails=2')} returned 503 Service Unavailable: "
        '{"error":"failure 1"}'
    )
    assert server.state.hits[key] == 3


async def test_429_waits_at_least_retry_after(engine: Engine, server: LocalServer) -> None:
    key = unique("limited")
    retry = {"max_attempts": 2, "initial": "10ms", "jitter": False, "on": ["http_429"]}
    url = server.url(f"/limited/{key}?times=1&retry_after=1")
    snapshot = await run(engine, {"tasks": [http("limited", url, retry=retry)]})
    limited = task(snapshot, "limited")
    assert (limited.state, limited.attempts) == (TaskState.succeeded, 2)
    first, second = server.state.hit_times[key]
    assert second - first >= 1.0
    events = [e for e in await engine.events(snapshot.id) if e.kind == "retrying"]
    assert len(events) == 1
    assert "(Retry-After: 1s); next attempt in 1.00s" in events[0].message


async def test_client_errors_are_not_retried_by_default(
    engine: Engine, server: LocalServer
) -> None:
    document = {"tasks": [http("missing", server.url("/status/404"), retry={"max_attempts": 3})]}
    snapshot = await run(engine, document)
    missing = task(snapshot, "missing")
    assert (missing.state, missing.attempts, missing.error_class) == (
        TaskState.failed,
        1,
        "http_4xx",
    )
    assert missing.error == (
        f"GET {server.url('/status/404')} returned 404 Not Found: "
        '{"status":404,"message":"status 404 on purpose"}'
    )


async def test_timeouts_and_refused_connections_have_their_classes(
    engine: Engine, server: LocalServer
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    document = {
        "tasks": [
            http("slow", server.url("/slow?seconds=2"), timeout="200ms"),
            http("closed", f"http://127.0.0.1:{closed_port}/x"),
        ]
    }
    snapshot = await run(engine, document)
    slow, closed = task(snapshot, "slow"), task(snapshot, "closed")
    assert (slow.error_class, closed.error_class) == ("timeout", "network")
    # httpx's read timeout or the request's own, whichever fires first: both are 200 ms
    assert slow.error.startswith(f"GET {server.url('/slow?seconds=2')} timed out")
    assert closed.error.startswith(f"GET http://127.0.0.1:{closed_port}/x failed: ConnectError")


# --- pagination -----------------------------------------------------------------------------


async def test_pagination_collects_every_page_in_both_styles(
    engine: Engine, server: LocalServer
) -> None:
    document = {
        "tasks": [
            http(
                "in_body",
                server.url("/pages/body/a?pages=3&size=2"),
                paginate={"next": "next", "items": "items"},
            ),
            http(
                "in_link",
                server.url("/pages/link/b?pages=4&size=2"),
                paginate={"next": "link"},
                extract="[].id",
            ),
            http(
                "capped",
                server.url("/pages/link/c?pages=5&size=1"),
                paginate={"next": "link", "max_pages": 2},
            ),
        ]
    }
    snapshot = await run(engine, document)
    in_body = task(snapshot, "in_body").output
    assert in_body["pages"] == 3
    assert in_body["data"] == [{"id": n, "page": n // 2 + 1} for n in range(6)]
    in_link = task(snapshot, "in_link").output
    assert (in_link["pages"], in_link["data"]) == (4, list(range(8)))
    capped = task(snapshot, "capped").output
    assert (capped["pages"], capped["data"]) == (2, [{"id": 0, "page": 1}, {"id": 1, "page": 2}])
    logs = [e.message for e in await engine.events(snapshot.id) if e.task_id == "capped"]
    assert "stopped after max_pages (2); more pages remain" in logs


# --- limits ---------------------------------------------------------------------------------


async def test_sixty_requests_under_a_limit_of_five(engine: Engine, server: LocalServer) -> None:
    key = unique("limit5")
    document = {
        "max_concurrent": 20,
        "limits": {"api": {"concurrency": 5}},
        "tasks": [
            {
                "id": "fetch",
                "type": "http",
                "limit": "api",
                "for_each": list(range(60)),
                "config": {"url": server.url(f"/count/{key}?delay=0.05&n=${{item}}")},
            }
        ],
    }
    snapshot = await run(engine, document)
    assert snapshot.status == RunStatus.succeeded
    assert server.state.hits[key] == 60
    assert server.state.max_in_flight[key] == 5


async def test_per_host_cap_holds_across_two_orchestrations(
    tmp_path: Path, server: LocalServer
) -> None:
    key = unique("host3")
    network = Network(host_limits=HostLimits(per_host=3))

    def document(name: str) -> dict[str, Any]:
        url = server.url(f"/count/{key}?delay=0.1")
        return {
            "name": name,
            "tasks": [
                {"id": "f", "type": "http", "for_each": list(range(8)), "config": {"url": url}}
            ],
        }

    async with open_engine(tmp_path, network=network) as engine:
        runs = [await engine.submit(document("one")), await engine.submit(document("two"))]
        snapshots, waits = await watch(engine, runs)
    assert [snapshot.status for snapshot in snapshots] == [RunStatus.succeeded] * 2
    assert server.state.hits[key] == 16
    assert server.state.max_in_flight[key] == 3
    assert "host 127.0.0.1: slot in host 127.0.0.1 (3 at once)" in waits


def per_second(times: list[float]) -> Counter[int]:
    start = times[0]
    return Counter(int(moment - start) for moment in times)


async def test_a_named_rate_of_ten_per_second_spaces_thirty_requests(
    engine: Engine, server: LocalServer
) -> None:
    key = unique("rate")
    document = {
        "limits": {"api": {"rate": "10/s"}},
        "tasks": [
            {
                "id": "fetch",
                "type": "http",
                "limit": "api",
                "for_each": list(range(30)),
                "config": {"url": server.url(f"/count/{key}?delay=0")},
            }
        ],
    }
    (snapshot,), waits = await watch(engine, [await engine.submit(document)])
    assert snapshot.status == RunStatus.succeeded
    assert len(server.state.hit_times[key]) == 30
    # The rate spaces the engine's sends; arrivals at the server may bunch up on a busy machine.
    starts = sorted(a.started_at for a in await engine.store.load_attempts(snapshot.id))
    assert len(starts) == 30
    assert max(per_second(starts).values()) <= 11
    assert starts[-1] - starts[0] >= 2.7
    assert "rate limit api (10/s)" in waits


async def test_a_host_rate_spaces_requests_to_that_host(
    tmp_path: Path, server: LocalServer
) -> None:
    key = unique("hostrate")
    network = Network(host_limits=HostLimits(rates={"127.0.0.1": Rate(10, 1)}))
    document = {
        "tasks": [
            {
                "id": "fetch",
                "type": "http",
                "for_each": list(range(15)),
                "config": {"url": server.url(f"/count/{key}?delay=0")},
            }
        ]
    }
    async with open_engine(tmp_path, network=network) as engine:
        snapshot = await run(engine, document)
    assert snapshot.status == RunStatus.succeeded
    times = server.state.hit_times[key]
    assert len(times) == 15
    assert max(per_second(times).values()) <= 11
    assert times[-1] - times[0] >= 1.2


# --- the network policy ---------------------------------------------------------------------


async def test_metadata_address_is_refused_without_a_connection(tmp_path: Path) -> None:
    network = RecordingNetwork()
    document = {
        "tasks": [
            http(
                "metadata",
                "http://169.254.169.254/latest/meta-data/",
                retry={"max_attempts": 3, "on": ["any"]},
            )
        ]
    }
    async with open_engine(tmp_path, network=network) as engine:
        snapshot = await run(engine, document)
    metadata = task(snapshot, "metadata")
    assert (metadata.state, metadata.error_class, metadata.attempts) == (
        TaskState.failed,
        "policy",
        1,
    )
    assert metadata.error == (
        "refused http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a link-local or "
        "cloud metadata address; these are always refused unless "
        "ORCHESTRATOR_NET_ALLOW_LINK_LOCAL=1"
    )
    assert network.sent == []


async def test_redirect_to_the_metadata_address_is_refused_at_the_hop(
    tmp_path: Path, server: LocalServer
) -> None:
    network = RecordingNetwork()
    url = server.url("/redirect?to=http://169.254.169.254/latest/")
    async with open_engine(tmp_path, network=network) as engine:
        snapshot = await run(engine, {"tasks": [http("hop", url)]})
    hop = task(snapshot, "hop")
    assert (hop.state, hop.error_class) == (TaskState.failed, "policy")
    assert hop.error.startswith(f"GET {url} redirected: refused http://169.254.169.254/latest/")
    assert network.sent == [url]


async def test_block_private_refuses_loopback(tmp_path: Path, server: LocalServer) -> None:
    key = unique("private")
    network = RecordingNetwork(NetworkPolicy(block_private=True))
    async with open_engine(tmp_path, network=network) as engine:
        snapshot = await run(engine, {"tasks": [http("local", server.url(f"/count/{key}"))]})
    local = task(snapshot, "local")
    assert local.error_class == "policy"
    assert local.error == (
        f"refused {server.url(f'/count/{key}')}: 127.0.0.1 is a private address and "
        "ORCHESTRATOR_NET_BLOCK_PRIVATE is on"
    )
    assert network.sent == []
    assert server.state.hits[key] == 0


async def test_deny_list_refuses_a_host(tmp_path: Path, server: LocalServer) -> None:
    network = RecordingNetwork(NetworkPolicy(deny=["localhost"]))
    url = server.url("/echo", host="localhost")
    async with open_engine(tmp_path, network=network) as engine:
        snapshot = await run(engine, {"tasks": [http("denied", url)]})
    assert task(snapshot, "denied").error == (
        f"refused {url}: host localhost is on the deny list (localhost)"
    )
    assert network.sent == []


# --- secrets --------------------------------------------------------------------------------


async def test_bearer_token_reaches_the_allowed_host_and_is_never_stored(
    tmp_path: Path, server: LocalServer
) -> None:
    secrets = MemorySecrets({"API_TOKEN": (TOKEN, ["127.0.0.1"])})
    path = f"/echo/{unique('bearer')}"
    document = {
        "tasks": [
            http(
                "call",
                server.url(path) + "?token=${vault.API_TOKEN}",
                auth={"type": "bearer", "token": "${vault.API_TOKEN}"},
                extract="{auth: headers.authorization, query: query}",
            )
        ]
    }
    async with open_engine(tmp_path, secrets=secrets) as engine:
        snapshot = await run(engine, document)
        events = await engine.events(snapshot.id)
    call = task(snapshot, "call")
    assert call.state == TaskState.succeeded
    (received,) = server.state.received(path)
    assert received["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert received["query"] == f"token={TOKEN}"
    assert call.output["data"] == {"auth": "Bearer ***", "query": {"token": "***"}}
    assert secrets.resolved == [("API_TOKEN", "127.0.0.1")] * 2
    assert all(TOKEN not in event.message for event in events)
    assert TOKEN.encode() not in stored_bytes(tmp_path / "home")


async def test_basic_auth_reaches_the_server(tmp_path: Path, server: LocalServer) -> None:
    secrets = MemorySecrets({"PASSWORD": ("pa55-word", ["127.0.0.1"])})
    path = f"/echo/{unique('basic')}"
    auth = {"type": "basic", "username": "ada", "password": "${vault.PASSWORD}"}
    document = {"tasks": [http("call", server.url(path), auth=auth, extract="method")]}
    async with open_engine(tmp_path, secrets=secrets) as engine:
        snapshot = await run(engine, document)
    assert task(snapshot, "call").output["data"] == "GET"
    (received,) = server.state.received(path)
    assert received["headers"]["authorization"] == "Basic YWRhOnBhNTUtd29yZA=="


async def test_secret_not_allowed_for_the_host_is_refused(
    tmp_path: Path, server: LocalServer
) -> None:
    secrets = MemorySecrets({"API_TOKEN": (TOKEN, ["api.example.org"])})
    path = f"/echo/{unique('refused')}"
    document = {
        "tasks": [
            http(
                "call",
                server.url(path),
                headers={"X-Api-Key": "${vault.API_TOKEN}"},
                retry={"max_attempts": 3, "on": ["any"]},
            )
        ]
    }
    async with open_engine(tmp_path, secrets=secrets) as engine:
        snapshot = await run(engine, document)
    call = task(snapshot, "call")
    assert (call.state, call.error_class, call.attempts) == (TaskState.failed, "config", 1)
    assert call.error == (
        "secret 'API_TOKEN' may not be sent to 127.0.0.1; allowed hosts: api.example.org"
    )
    assert server.state.received(path) == []


async def test_redirect_to_another_host_never_carries_the_secret(
    tmp_path: Path, server: LocalServer
) -> None:
    secrets = MemorySecrets({"API_TOKEN": (TOKEN, ["127.0.0.1"])})
    elsewhere_path = f"/echo/{unique('elsewhere')}"
    elsewhere = server.url(elsewhere_path, host="localhost")
    url = server.url(f"/redirect?to={elsewhere}")
    document = {
        "tasks": [http("call", url, auth={"type": "bearer", "token": "${vault.API_TOKEN}"})]
    }
    async with open_engine(tmp_path, secrets=secrets) as engine:
        snapshot = await run(engine, document)
    call = task(snapshot, "call")
    assert (call.state, call.error_class) == (TaskState.failed, "config")
    assert call.error == (
        "secret 'API_TOKEN' may not be sent to localhost; allowed hosts: 127.0.0.1"
    )
    first_hop = [r for r in server.state.received("/redirect") if elsewhere in r["query"]]
    assert [r["headers"]["authorization"] for r in first_hop] == [f"Bearer {TOKEN}"]
    assert server.state.received(elsewhere_path) == []
    assert TOKEN.encode() not in stored_bytes(tmp_path / "home")


async def test_redirect_on_the_same_host_keeps_the_secret(
    tmp_path: Path, server: LocalServer
) -> None:
    secrets = MemorySecrets({"API_TOKEN": (TOKEN, ["127.0.0.1"])})
    target = f"/echo/{unique('same')}"
    url = server.url(f"/redirect?to={target}&status=307")
    document = {
        "tasks": [
            http(
                "call",
                url,
                method="POST",
                json={"keep": True},
                headers={"Authorization": "Bearer ${vault.API_TOKEN}"},
                extract="{method: method, json: json}",
            )
        ]
    }
    async with open_engine(tmp_path, secrets=secrets) as engine:
        snapshot = await run(engine, document)
    assert task(snapshot, "call").output["data"] == {"method": "POST", "json": {"keep": True}}
    (received,) = server.state.received(target)
    assert received["headers"]["authorization"] == f"Bearer {TOKEN}"


async def test_unknown_secret_is_a_validation_error(tmp_path: Path) -> None:
    secrets = MemorySecrets({"API_TOKEN": (TOKEN, ["127.0.0.1"])})
    document = {"tasks": [http("call", "https://x.org", headers={"K": "${vault.API_TOKN}"})]}
    async with open_engine(tmp_path, secrets=secrets) as engine:
        (issue,) = engine.validate(document).errors
    assert issue.message == "unknown secret 'API_TOKN' in '${vault.API_TOKN}'"
