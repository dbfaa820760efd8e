"""The commands that run tasks in the foreground, with live progress: run, retry, resume."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from multi_task_orchestrator.engine import (
    REPORT_FILE,
    RunStatus,
    aggregated_results,
    load_file,
    render_summary,
    run_files,
)
from multi_task_orchestrator.server.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    json_text,
    open_engine,
    parse_vars,
    with_backend,
)
from multi_task_orchestrator.server.cli.ctrl_c import CtrlC, cancels_runs, run_command
from multi_task_orchestrator.server.progress import follow
from multi_task_orchestrator.server.settings import load_settings

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.engine import Engine
    from multi_task_orchestrator.server.settings import Settings


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = with_backend(load_settings(), args)
    return run_command(_run(args, settings, out, err))


async def _run(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    with cancels_runs() as ctrl_c:
        raw = load_file(args.file, max_bytes=settings.max_document_bytes)
        extra_vars = parse_vars(args.var)
        async with open_engine(settings, runs_tasks=True, with_vault=True) as engine:
            validation = engine.validate(raw, extra_vars=extra_vars, require_runners=True)
            orchestration = validation.raise_for_errors()
            await engine.machine_warnings(validation)
            for issue in validation.warnings:
                err.print(f"{args.file}: {issue}", markup=False)
            if args.max_concurrent is not None:
                orchestration = orchestration.model_copy(
                    update={"max_concurrent": args.max_concurrent}
                )
            with ctrl_c.starting():
                run_id, _ = await engine.start(orchestration, source_name=str(args.file))
            ctrl_c.started([engine.runs.get(run_id)])
            snapshot = await follow(engine, run_id, err, show=not args.json)
            full = await engine.snapshot(run_id, include_outputs=True)
            files = run_files(snapshot.run_dir)
    if args.json:
        out.print_json(json_text(aggregated_results(full)))
    else:
        out.print(render_summary(full, files), markup=False)
        report_path = Path(snapshot.run_dir or "") / REPORT_FILE
        if snapshot.run_dir and report_path.exists():
            out.print(f"Report: {report_path}", markup=False)
    if ctrl_c.pressed or snapshot.status == RunStatus.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if snapshot.status == RunStatus.succeeded else EXIT_FAILED


def cmd_retry(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = with_backend(load_settings(), args)

    async def work() -> int:
        with cancels_runs() as ctrl_c:
            async with open_engine(settings, runs_tasks=True, with_vault=True) as engine:
                with ctrl_c.starting():
                    run_id = await engine.retry(args.id)
                ctrl_c.started([engine.runs.get(run_id)])
                snapshot = await follow(engine, run_id, err)
                full = await engine.snapshot(run_id, include_outputs=True)
        out.print(render_summary(full, run_files(snapshot.run_dir)), markup=False)
        return _exit_code(ctrl_c, snapshot.status)

    return run_command(work())


def cmd_resume(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = with_backend(load_settings(), args)

    async def work() -> int:
        with cancels_runs() as ctrl_c:
            async with open_engine(settings, runs_tasks=True, with_vault=True) as engine:
                run_id = await engine.resolve_id(args.id) if args.id else None
                with ctrl_c.starting():
                    resumed = await engine.resume(run_id)
                ctrl_c.started(engine.runs.get(resumed_id) for resumed_id in resumed)
                return await _follow_resumed(engine, run_id, resumed, ctrl_c, out, err)

    return run_command(work())


async def _follow_resumed(
    engine: Engine,
    run_id: str | None,
    resumed: list[str],
    ctrl_c: CtrlC,
    out: Console,
    err: Console,
) -> int:
    """Follow the runs ``resume`` took up (or say why there were none) to their ends."""
    held = await engine.held_elsewhere(run_id)
    if run_id is not None and not resumed:
        if held:  # a live process runs it: taking it would run its tasks twice
            raise UsageError(held[0].explain())
        status = await engine.run_status(run_id)
        retryable = status in (RunStatus.failed, RunStatus.cancelled)
        hint = "; `orchestrator retry` runs its failed tasks again" if retryable else ""
        state = f"already finished: {status.value}" if status.terminal else status.value
        out.print(f"nothing to resume: {run_id} is {state}{hint}", markup=False)
        return EXIT_OK
    for run in held:
        out.print(f"not resumed: {run.explain()}", markup=False)
    if not resumed:
        if not held:
            out.print("nothing to resume: no unfinished orchestrations", markup=False)
        return EXIT_OK
    worst = EXIT_OK
    for resumed_id in resumed:
        snapshot = await follow(engine, resumed_id, err)
        full = await engine.snapshot(resumed_id, include_outputs=True)
        out.print(render_summary(full, run_files(snapshot.run_dir)), markup=False)
        worst = max(worst, _exit_code(ctrl_c, snapshot.status))
    return worst


def _exit_code(ctrl_c: CtrlC, status: RunStatus) -> int:
    if ctrl_c.pressed or status == RunStatus.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if status == RunStatus.succeeded else EXIT_FAILED
