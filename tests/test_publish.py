"""The ``multi_publish`` runner through a real engine, against a local server on 127.0.0.1,
and the seed's pattern 2 example (``examples/pattern2_publish_local.yaml``) run end to end."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from local_server import LocalServer
from memory_secrets import MemorySecrets

from multi_task_orchestrator.engine.document.loader import load_file
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.display import render_status
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pattern2_publish_local.yaml"
SEED = (Path(__file__).parent / "fixtures" / "seed_example.yaml").read_text(encoding="utf-8")
ARTICLE = {"title": "Hello", "words": 3, "tags": ["a", "b"]}


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer() as running:
        yield running


async def run(engine: Engine, document: dict[str, Any] | Path, **options: Any) -> RunSnapshot:
    source = load_file(document) if isinstance(document, Path) else document
    run_id = await engine.submit(source, **options)
    snapshot = await engine.wait(run_id, 30, include_outputs=True)
    assert snapshot.status.terminal
    return snapshot


def by_id(snapshot: RunSnapshot) -> dict[str, TaskSnapshot]:
    return {t.task_id: t for t in snapshot.tasks}


def unique(name: str) -> str:
    return f"{name}{time.monotonic_ns()}"


def content_then_publish(
    targets: dict[str, Any], destinations: list[Any] | None = None, **publish: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {"targets": targets, "payload": "${content.output}"}
    if destinations is not None:
        config["destinations"] = destinations
    return {
        "tasks": [
            {"id": "content", "type": "delay", "config": {"value": ARTICLE}},
            {
                "id": "publish",
                "type": "multi_publish",
                "needs": "content",
                "config": config,
                **publish,
            },
        ]
    }


async def test_one_failing_destination_of_three_is_named_in_status_and_summary(
    engine: Engine, server: LocalServer
) -> None:
    a, c = unique("a"), unique("c")
    targets = {
        "site_a": {"url": server.url(f"/publish/{a}")},
        "site_b": {"url": server.url("/status/500")},
        "site_c": {"url": server.url(f"/publish/{c}")},
    }
    snapshot = await run(engine, content_then_publish(targets))
    tasks = by_id(snapshot)
    failure = (
        f"destination site_b: POST {server.url('/status/500')} returned 500 Internal Server "
        'Error: {"status":500,"message":"status 500 on purpose"}'
    )
    children = [tasks[f"publish[{n}]"] for n in range(3)]
    assert [(t.state, t.error) for t in children] == [
        (TaskState.succeeded, None),
        (TaskState.failed, failure),
        (TaskState.succeeded, None),
    ]
    assert children[1].error_class == "http_5xx"
    assert children[0].output["destination"] == "site_a"
    assert children[0].output["data"] == {"site": a, "id": 1}
    assert tasks["publish"].state == TaskState.failed
    assert tasks["publish"].error == f"1 of 3 item(s) failed: publish[1] ({failure})"
    assert server.state.published[a] == [ARTICLE]
    assert server.state.published[c] == [ARTICLE]

    summary = render_summary(snapshot)
    assert "Success:    3 (60%)" in summary
    assert "Failed:     2 (40%)" in summary
    assert f"- publish[1] (publish[site_b]): {failure} [http_5xx]" in summary.splitlines()
    status = render_status(snapshot)
    assert "   ├─ publish[site_b]: ✗ Failed (destination site_b: POST http://127.0.0.1:" in status


async def test_allow_partial_keeps_what_was_published(engine: Engine, server: LocalServer) -> None:
    a = unique("a")
    targets = {
        "site_a": {"url": server.url(f"/publish/{a}")},
        "site_b": {"url": server.url("/status/503")},
    }
    snapshot = await run(engine, content_then_publish(targets, allow_partial=True))
    publish = by_id(snapshot)["publish"]
    assert publish.state == TaskState.succeeded
    assert publish.output == [
        {
            "destination": "site_a",
            "status": 201,
            "headers": {"content-type": "application/json", "content-length": str(len(a) + 18)},
            "data": {"site": a, "id": 1},
        },
        None,
    ]


async def test_the_seed_form_and_each_way_to_carry_the_payload(
    engine: Engine, server: LocalServer
) -> None:
    a, b, c, d = (unique(name) for name in "abcd")
    targets = {
        "plain": {"url": server.url(f"/publish/{a}")},
        "merged": {"url": server.url(f"/publish/{b}"), "body": {"status": "draft", "title": "X"}},
        "nested": {"url": server.url(f"/publish/{c}"), "method": "PUT", "payload_field": "post"},
        "form": {"url": server.url(f"/publish/{d}"), "form": {"source": "orchestrator"}},
    }
    destinations = [
        {"plain": "${content.output.title}"},
        "merged",
        {"nested": "${content.output}"},
        "form",
    ]
    snapshot = await run(engine, content_then_publish(targets, destinations))
    assert snapshot.status == RunStatus.succeeded
    assert server.state.published[a] == ["Hello"]
    assert server.state.published[b] == [{**ARTICLE, "status": "draft", "title": "X"}]
    assert server.state.published[c] == [{"post": ARTICLE}]
    assert server.state.published[d] == [
        {"title": "Hello", "words": "3", "tags": '["a", "b"]', "source": "orchestrator"}
    ]
    (put,) = server.state.received(f"/publish/{c}")
    assert put["method"] == "PUT"
    assert [t.output["destination"] for t in snapshot.tasks if t.parent_id == "publish"] == [
        "plain",
        "merged",
        "nested",
        "form",
    ]


async def test_each_destination_retries_on_its_own(engine: Engine, server: LocalServer) -> None:
    flaky, steady = unique("flaky"), unique("steady")
    targets = {
        "steady": {"url": server.url(f"/publish/{steady}")},
        "flaky": {"url": server.url(f"/flaky/{flaky}?fails=1&status=503"), "expect_status": 200},
    }
    retry = {"max_attempts": 3, "initial": "10ms", "jitter": False}
    snapshot = await run(engine, content_then_publish(targets, retry=retry))
    tasks = by_id(snapshot)
    assert snapshot.status == RunStatus.succeeded
    assert [tasks["publish[0]"].attempts, tasks["publish[1]"].attempts] == [1, 2]
    assert server.state.hits[flaky] == 2
    assert server.state.published[steady] == [ARTICLE]


async def test_secrets_fill_templates_but_never_the_payload(
    tmp_path: Path, server: LocalServer
) -> None:
    token = "pub-token-31337"
    site = unique("secret")
    document = {
        "tasks": [
            # the text of a reference, escaped (a delay's config may not name a secret)
            {"id": "content", "type": "delay", "config": {"value": "$${vault.SITE_TOKEN}"}},
            {
                "id": "publish",
                "type": "multi_publish",
                "needs": "content",
                "config": {
                    "payload": {"text": "${content.output}"},
                    "targets": {
                        "site": {
                            "url": server.url(f"/publish/{site}"),
                            "auth": {"type": "bearer", "token": "${vault.SITE_TOKEN}"},
                        }
                    },
                },
            },
        ],
    }
    home = tmp_path / "home"
    options = {"secrets": MemorySecrets({"SITE_TOKEN": (token, ["127.0.0.1"])}), "resume": False}
    async with await Engine.open(home / "state.db", home / "runs", **options) as engine:
        snapshot = await run(engine, document)
    assert snapshot.status == RunStatus.succeeded
    (received,) = server.state.received(f"/publish/{site}")
    assert received["headers"]["authorization"] == f"Bearer {token}"
    assert server.state.published[site] == [{"text": "${vault.SITE_TOKEN}"}]


async def test_the_corrected_seed_example_validates(engine: Engine) -> None:
    fixed = SEED.replace("${merged_content}", "${merge_content.output}")
    assert engine.validate(fixed).errors == []


async def test_a_destination_without_a_target_fails_when_it_runs(engine: Engine) -> None:
    document = {
        "tasks": [
            {
                "id": "publish_all",
                "type": "multi_publish",
                "config": {"payload": {"title": "x"}, "destinations": ["site_a"]},
            }
        ]
    }
    snapshot = await run(engine, document)
    child = next(task for task in snapshot.tasks if task.task_id == "publish_all[0]")
    assert child.state == TaskState.failed
    assert child.error.startswith(
        "destination site_a: no target 'site_a' is defined (defined: none)"
    )


# --- the example ----------------------------------------------------------------------------


async def test_pattern2_example_runs_serial_content_then_parallel_publishing(
    engine: Engine, server: LocalServer
) -> None:
    before = {site: len(server.state.published[site]) for site in ("site_a", "site_b", "site_c")}
    snapshot = await run(engine, EXAMPLE, extra_vars={"base": server.url()})
    assert snapshot.status == RunStatus.succeeded
    attempts = {a.task_id: a for a in await engine.store.load_attempts(snapshot.id)}
    chain = ["research", "write", "edit", "optimize"]
    for earlier, later in itertools.pairwise(chain):
        assert attempts[earlier].finished_at <= attempts[later].started_at
    children = [attempts[f"publish_all[{n}]"] for n in range(3)]
    assert all(attempts["optimize"].finished_at <= child.started_at for child in children)
    assert max(c.started_at for c in children) < min(c.finished_at for c in children)

    article = {"title": "Parallel orchestration — a guide", "words": 850}
    article["tags"] = ["orchestration", "parallel"]
    published = {site: server.state.published[site][before[site] :] for site in before}
    assert published == {
        "site_a": [{**article, "status": "publish"}],
        "site_b": [{"article": article}],
        "site_c": [
            {
                "title": article["title"],
                "words": "850",
                "tags": '["orchestration", "parallel"]',
                "source": "orchestrator",
            }
        ],
    }


def test_pattern2_example_runs_from_the_cli(tmp_path: Path, server: LocalServer) -> None:
    before = len(server.state.published["site_b"])
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "multi_task_orchestrator.server.cli",
            "run",
            str(EXAMPLE),
            "--var",
            f"base={server.url()}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ORCHESTRATION COMPLETE\n" in done.stdout
    assert "Tasks:      8 total" in done.stdout
    assert len(server.state.published["site_b"]) == before + 1
