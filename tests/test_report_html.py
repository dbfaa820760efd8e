"""report.html, the PNG timeline, the get_report tool and the report resource.

Real runs on a real store; the secret is masked by a real resolver, and the picture is drawn by
the Chromium the browser runner uses.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ImageContent, TextContent, TextResourceContents

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.reports.files import REPORT_FILE, run_files
from multi_task_orchestrator.engine.reports.html import build_report, write_report
from multi_task_orchestrator.engine.reports.png import svg_size
from multi_task_orchestrator.engine.state import RunStatus
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings

pytestmark = pytest.mark.anyio

CANARY = "CANARY-7f3a9c-do-not-show"


class CanaryResolver:
    """A SecretResolver holding one secret, the canary, which it masks wherever it appears."""

    async def resolve(self, name: str, *, host: str | None) -> str:
        if name != "TOKEN":
            raise TaskError(f"no secret '{name}'", "config")
        return CANARY

    def names(self) -> Collection[str] | None:
        return ["TOKEN"]

    def redact(self, text: str) -> str:
        return text.replace(CANARY, "***")

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        raise TaskError("read-only", "config")


DOCUMENT: dict[str, Any] = {
    "name": "Report check",
    "tasks": [
        {"id": "fetch", "type": "delay", "config": {"seconds": 0.01, "value": [1, 2, 3]}},
        {
            "id": "each",
            "type": "delay",
            "dependencies": ["fetch"],
            "for_each": "${fetch.output}",
            "config": {"value": f"token {CANARY}"},
        },
        {
            "id": "leaky",
            "type": "delay",
            "config": {"fail": "network", "message": f"server said {CANARY} is wrong"},
        },
        {"id": "after_leaky", "type": "delay", "dependencies": ["leaky"], "config": {}},
    ],
}
ALL_TASKS = ["fetch", "each", "each[0]", "each[1]", "each[2]", "leaky", "after_leaky"]


async def test_report_html_is_written_with_every_task_and_no_secret(home: Path) -> None:
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, secrets=CanaryResolver()
    ) as engine:
        run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
        snapshot = await engine.wait(run_id, timeout=10)
        assert snapshot.status is RunStatus.failed
        await engine.settled(run_id)
        run_dir = Path(snapshot.run_dir or "")
        written = run_dir / REPORT_FILE
        assert str(written) in run_files(run_dir)  # written just after the end of the run
        html = written.read_text(encoding="utf-8")

        assert CANARY not in html
        assert "server said *** is wrong" in html
        for task_id in ALL_TASKS:
            assert f"<td>{task_id}</td>" in html
        assert "<script" not in html and "http://" not in html.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        )
        assert "https://" not in html
        assert "<svg" in html and "Timeline" in html
        assert "chain: after_leaky → leaky" in html  # the failure with its chain
        assert "Failures (2)" in html

        # on demand, with an artifact: linked relatively, the name escaped for a URL
        (run_dir / "artifacts").mkdir()
        (run_dir / "artifacts" / "shot 1.png").write_bytes(b"png")
        path = await write_report(engine.store, await engine.snapshot(run_id))
        assert path == written.absolute()
        again = path.read_text(encoding="utf-8")
        assert "<a href='artifacts/shot%201.png'>artifacts/shot 1.png</a>" in again
        assert "<a href='summary.txt'>summary.txt</a>" in again
        assert CANARY not in again
        assert path.stat().st_mode & 0o077 == 0  # owner only, like the other run files


async def test_report_of_a_five_hundred_task_run_stays_readable(engine: Engine) -> None:
    document = {
        "name": "many",
        "max_concurrent": 50,
        "tasks": [
            {"id": "items", "type": "delay", "config": {"value": list(range(300))}},
            {
                "id": "each",
                "type": "delay",
                "dependencies": ["items"],
                "for_each": "${items.output}",
            },
            *({"id": f"t{index}", "type": "delay"} for index in range(198)),
        ],
    }
    run_id = await engine.submit(engine.validate(document).raise_for_errors())
    snapshot = await engine.wait(run_id, timeout=20)
    assert len(snapshot.tasks) == 500
    report = await build_report(engine.store, snapshot)
    assert len(report.timeline.rows) <= 60
    assert [row.key for row in report.timeline.rows if row.kind == "group"] == ["each[*]"]
    width, height = svg_size(report.svg)
    assert width == 1100 and height < 1600
    for task in snapshot.tasks:  # the table still lists every task
        assert f"<td>{task.task_id}</td>" in report.html


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def test_get_report_returns_the_summary_and_the_timeline_png(home: Path) -> None:
    async with Client(create_server(Settings(home=home))) as client:
        submitted = await client.call_tool(
            "submit_orchestration", {"spec": DOCUMENT, "wait_seconds": 10}
        )
        run_id = submitted.structured_content["id"]

        result = await client.call_tool("get_report", {"id": run_id})
        assert not result.is_error
        text, image = result.content
        assert isinstance(text, TextContent) and isinstance(image, ImageContent)
        assert text.text.startswith("ORCHESTRATION COMPLETE WITH FAILURES")
        assert f"orchestration://{run_id}/report" in text.text
        assert image.mime_type == "image/png"
        png = base64.b64decode(image.data)
        report_html = await client.read_resource(f"orchestration://{run_id}/report")
        svg_width, svg_height = _svg_size_in(report_html.contents[0])
        assert _png_size(png) == (2 * svg_width, 2 * svg_height)  # drawn at twice the pixels
        assert (svg_width, svg_height) == (1100, 92 + 7 * 22 + 34)  # header, 7 rows, axis

        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["get_report"].annotations is not None
        assert tools["get_report"].annotations.read_only_hint is True


async def test_get_results_lists_the_report_written_after_the_end(home: Path) -> None:
    """report.html is written just after the run's end is published; get_results waits for
    it, so the files its summary lists right after the end are all there."""
    async with Client(create_server(Settings(home=home))) as client:
        submitted = await client.call_tool(
            "submit_orchestration", {"spec": DOCUMENT, "wait_seconds": 10}
        )
        assert submitted.structured_content["status"] in ("succeeded", "failed")  # ended
        run_id = submitted.structured_content["id"]
        results = await client.call_tool("get_results", {"id": run_id})
    summary = results.structured_content["summary"]
    report = home / "runs" / run_id / REPORT_FILE
    assert str(report) in summary
    assert report.read_text(encoding="utf-8").startswith("<!doctype html>")


def _svg_size_in(contents: Any) -> tuple[int, int]:
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "text/html"
    assert contents.text.startswith("<!doctype html>")
    svg = contents.text[contents.text.index("<svg") :]
    return svg_size(svg)


async def test_get_report_says_why_there_is_no_picture(home: Path) -> None:
    missing = home / "no-such-chromium"
    async with Client(create_server(Settings(home=home, browser_path=missing))) as client:
        submitted = await client.call_tool(
            "submit_orchestration",
            {"spec": {"tasks": [{"id": "a", "type": "delay"}]}, "wait_seconds": 10},
        )
        result = await client.call_tool("get_report", {"id": submitted.structured_content["id"]})
        assert not result.is_error
        assert len(result.content) == 1
        text = result.content[0]
        assert isinstance(text, TextContent)
        assert text.text.startswith("ORCHESTRATION COMPLETE\n")
        assert (
            "No timeline picture: the browser set in ORCHESTRATOR_BROWSER_PATH does not exist"
            in text.text
        )
        assert text.text.rstrip().endswith(f"it is set to {missing}")
