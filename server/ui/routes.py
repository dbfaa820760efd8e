"""The routes of ``/ui``: two pages and the JSON they poll, plus approve and reject.

Pages: ``/ui/`` (runs list and schedules) and ``/ui/runs/{id}`` (one run, live). API:
``/ui/api/runs``, ``/ui/api/schedules``, ``/ui/api/runs/{id}`` (``tools.live_view.LiveRun``),
``.../tasks/{task}`` (its output, bounded), ``.../log``, ``.../artifacts/{name}``, and
``POST .../tasks/{task}/approve|reject``. Every answer comes from the engine, which redacts
secrets before anything is stored.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from multi_task_orchestrator.engine import (
    Engine,
    NotAllowedNow,
    RunStatus,
    ScheduleBook,
    UnknownOrchestration,
    UnknownTask,
    iso,
    render_log,
)
from multi_task_orchestrator.server.app import Running
from multi_task_orchestrator.server.ui.access import Access
from multi_task_orchestrator.tools.app import page
from multi_task_orchestrator.tools.live_view import live_run
from multi_task_orchestrator.tools.schedules import ScheduleList, schedule_info

OUTPUT_CHARS = 20_000  # of one task's output on its detail panel
LOG_LINES = 2_000  # the last lines of a run's log
DECIDED_BY = "web"
# raster images open in the browser; every other artifact downloads (an HTML or SVG file a
# task wrote must never run as a page of this origin)
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
STATES = frozenset(status.value for status in RunStatus)

Handler = Callable[[Request], Awaitable[Response]]


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


def build_ui_app(running: Running, access: Access) -> Starlette:
    """The ``/ui`` application: ``running`` gives the engine once the server has started."""

    def guarded(handler: Callable[[Request, Engine], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            refused = await access.refuse(request)
            if refused is not None:
                return refused
            if running.context is None:
                return PlainTextResponse("the server is starting; try again", status_code=503)
            try:
                return await handler(request, running.context.engine)
            except (UnknownOrchestration, UnknownTask) as exc:
                return _error(str(exc), 404)
            except NotAllowedNow as exc:
                return _error(str(exc), 409)

        return endpoint

    async def pages(request: Request) -> Response:
        given = access.token_in_query(request)
        if given is not None:
            if not given:
                return PlainTextResponse("wrong token in the address", status_code=401)
            refused = await access.names.validate_request(request)
            if refused is not None:
                return refused
            # the token leaves the address bar at once; the cookie carries the session on
            redirect = RedirectResponse(request.url.remove_query_params("token"), 303)
            access.set_session(redirect, request)
            return redirect
        refused = await access.refuse(request)
        if refused is not None:
            return refused
        nonce = secrets.token_urlsafe(16)
        run = request.path_params.get("run")
        return HTMLResponse(
            page("web", base="/ui", run=run, nonce=nonce), headers=_page_headers(nonce)
        )

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    async def runs(request: Request, engine: Engine) -> Response:
        state = request.query_params.get("status") or None
        if state is not None and state not in STATES:
            shown = state if len(state) <= 40 else state[:40] + "…"
            return _error(f"unknown state {shown!r}; one of {', '.join(sorted(STATES))}", 400)
        rows = await engine.list(state, 100)
        return _json(
            [
                {
                    "id": row.id,
                    "name": row.name,
                    "status": row.status,
                    "created_at": iso(row.created_at),
                    "finished_at": iso(row.finished_at),
                    "source": row.source,
                }
                for row in rows
            ]
        )

    async def schedules(request: Request, engine: Engine) -> Response:
        listed = ScheduleList(
            schedules=[schedule_info(schedule) for schedule in await ScheduleBook(engine).list()]
        )
        return Response(
            listed.model_dump_json(exclude_none=True),
            media_type="application/json",
            headers=_api_headers(),
        )

    async def run(request: Request, engine: Engine) -> Response:
        view = await live_run(engine, request.path_params["run"])
        return Response(
            view.model_dump_json(exclude_none=True),
            media_type="application/json",
            headers=_api_headers(),
        )

    async def task(request: Request, engine: Engine) -> Response:
        task_id = request.path_params["task"]
        snapshot = await engine.snapshot(request.path_params["run"], include_outputs=True)
        found = next((t for t in snapshot.tasks if t.task_id == task_id), None)
        if found is None:
            raise UnknownTask(f"orchestration {snapshot.id} has no task '{task_id}'")
        answer: dict[str, Any] = {"id": task_id, "state": found.state.value}
        if found.has_output:
            text = json.dumps(found.output, default=str, ensure_ascii=False)
            if len(text) > OUTPUT_CHARS:
                answer["output"] = text[:OUTPUT_CHARS] + "…"
                answer["note"] = (
                    f"{len(text):,} characters, cut; the whole output is in "
                    f"orchestration://{snapshot.id}/results"
                )
            else:
                answer["output"] = found.output
        return _json(answer)

    async def log(request: Request, engine: Engine) -> Response:
        events = await engine.events(request.path_params["run"])
        lines = render_log(events).splitlines()[-LOG_LINES:]
        return PlainTextResponse("\n".join(lines) + "\n", headers=_api_headers())

    async def artifact(request: Request, engine: Engine) -> Response:
        snapshot = await engine.snapshot(request.path_params["run"])
        name = request.path_params["name"]
        folder = (Path(snapshot.run_dir or "") / "artifacts").resolve()
        path = (folder / name).resolve()
        if not snapshot.run_dir or path.parent != folder or not path.is_file() or path.is_symlink():
            return _error(f"orchestration {snapshot.id} has no artifact '{name}'", 404)
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        inline = kind in INLINE_TYPES
        return FileResponse(
            path,
            media_type=kind if inline else "application/octet-stream",
            filename=name,
            content_disposition_type="inline" if inline else "attachment",
            headers={**_api_headers(), "Content-Security-Policy": "sandbox"},
        )

    def decide(decision: Literal["approve", "reject"]) -> Handler:
        async def decide_task(request: Request, engine: Engine) -> Response:
            try:
                body = DecisionBody.model_validate_json(await request.body() or b"{}")
            except ValidationError as exc:
                fields = ", ".join(str(e["loc"][0]) if e["loc"] else "body" for e in exc.errors())
                return _error(f'the body must be {{"note": text or null}}; check: {fields}', 400)
            act = engine.approve if decision == "approve" else engine.reject
            row = await act(
                request.path_params["run"],
                request.path_params["task"],
                note=body.note,
                by=DECIDED_BY,
            )
            return _json(
                {
                    "id": row.orchestration_id,
                    "task_id": row.task_id,
                    "decision": row.decision,
                    "decided_by": row.decided_by,
                    "decided_at": iso(row.decided_at),
                }
            )

        return guarded(decide_task)

    return Starlette(
        routes=[
            Route("/ui", root),
            Route("/ui/", pages),
            Route("/ui/runs/{run}", pages),
            Route("/ui/api/runs", guarded(runs)),
            Route("/ui/api/schedules", guarded(schedules)),
            Route("/ui/api/runs/{run}", guarded(run)),
            Route("/ui/api/runs/{run}/log", guarded(log)),
            Route("/ui/api/runs/{run}/artifacts/{name}", guarded(artifact)),
            Route("/ui/api/runs/{run}/tasks/{task}", guarded(task)),
            Route("/ui/api/runs/{run}/tasks/{task}/approve", decide("approve"), methods=["POST"]),
            Route("/ui/api/runs/{run}/tasks/{task}/reject", decide("reject"), methods=["POST"]),
        ]
    )


def _page_headers(nonce: str) -> dict[str, str]:
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _api_headers() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _json(value: Any) -> Response:
    return JSONResponse(value, headers=_api_headers())


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=_api_headers())
