"""The embedded executor's public API: what ``server/`` and ``tools/`` may import.

The engine runs orchestration documents: it loads and validates them (``document/``), runs them
(``engine.py`` over ``run/``), persists every change (``store/``), guards egress (``network``),
renders what a run looks like (``reports/``) and fires schedules (``schedules/``). It knows
nothing of MCP; secrets reach it only through the resolver interface (``SecretResolver``).
Everything outside the engine imports from here, never from its modules, so the inside can move
without breaking the callers.

Names are loaded on first use (PEP 562): ``from multi_task_orchestrator.engine import Engine``
imports the modules ``Engine`` needs and nothing else, which keeps the CLI's start quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.backends import Backend
    from multi_task_orchestrator.engine.backends.dask import DaskBackend
    from multi_task_orchestrator.engine.backends.dask_worker import serve_worker
    from multi_task_orchestrator.engine.checking import DocumentChecker
    from multi_task_orchestrator.engine.cpu_work import cpu_bound
    from multi_task_orchestrator.engine.document.loader import load_file, read_document
    from multi_task_orchestrator.engine.document.notify_models import channel_url_problem
    from multi_task_orchestrator.engine.document.plan import Plan
    from multi_task_orchestrator.engine.document.schema import document_json_schema
    from multi_task_orchestrator.engine.document.units import RateValue
    from multi_task_orchestrator.engine.document.validation import Validation
    from multi_task_orchestrator.engine.engine import Engine
    from multi_task_orchestrator.engine.errors import TaskError
    from multi_task_orchestrator.engine.facade_errors import (
        IdempotencyConflict,
        NotAllowedNow,
        RequestError,
        UnknownOrchestration,
        UnknownTask,
    )
    from multi_task_orchestrator.engine.gc_policy import freeze_start_up
    from multi_task_orchestrator.engine.issues import DocumentError, Issue, did_you_mean
    from multi_task_orchestrator.engine.limits import run_query
    from multi_task_orchestrator.engine.network import (
        DEFAULT_PER_HOST,
        HostLimits,
        Network,
        NetworkPolicy,
        PolicyEntry,
    )
    from multi_task_orchestrator.engine.redaction import Redactor
    from multi_task_orchestrator.engine.reports.display import render_status
    from multi_task_orchestrator.engine.reports.files import REPORT_FILE, run_files
    from multi_task_orchestrator.engine.reports.html import build_report, write_report
    from multi_task_orchestrator.engine.reports.log import render_log
    from multi_task_orchestrator.engine.reports.png import RasterizeError, svg_to_png
    from multi_task_orchestrator.engine.reports.results import aggregated_results
    from multi_task_orchestrator.engine.reports.summary import render_summary
    from multi_task_orchestrator.engine.reports.text import iso
    from multi_task_orchestrator.engine.runners import discover
    from multi_task_orchestrator.engine.runners.browser import locate_browser
    from multi_task_orchestrator.engine.runners.browser.discovery import (
        BrowserNotFound,
        find_browser,
    )
    from multi_task_orchestrator.engine.runners.browser.pool import BrowserSettings
    from multi_task_orchestrator.engine.runners.mcp import McpRunner, McpSettings, ServerTools
    from multi_task_orchestrator.engine.schedules import (
        GRACE_SECONDS,
        POLL_SECONDS,
        Fire,
        Schedule,
        ScheduleBook,
        ScheduleError,
        ScheduleFirer,
        ScheduleSpec,
        UnknownSchedule,
        explain_cron,
        explain_every,
    )
    from multi_task_orchestrator.engine.secret_hosts import host_allowed
    from multi_task_orchestrator.engine.secrets import SecretResolver
    from multi_task_orchestrator.engine.state import (
        RunSnapshot,
        RunStatus,
        TaskSnapshot,
        TaskState,
    )
    from multi_task_orchestrator.engine.store import (
        SCHEMA_VERSION,
        ApprovalRow,
        OrchestrationRow,
        Store,
        StoreError,
    )
    from multi_task_orchestrator.engine.usage import (
        BudgetState,
        RunUsage,
        budget_text,
        usage_line,
        usage_text,
    )

# each public name, and the module (under this package) that defines it
_EXPORTS: dict[str, str] = {
    "aggregated_results": "reports.results",
    "ApprovalRow": "store",
    "Backend": "backends",
    "BrowserNotFound": "runners.browser.discovery",
    "BrowserSettings": "runners.browser.pool",
    "budget_text": "usage",
    "BudgetState": "usage",
    "build_report": "reports.html",
    "cpu_bound": "cpu_work",
    "DaskBackend": "backends.dask",
    "DEFAULT_PER_HOST": "network",
    "did_you_mean": "issues",
    "discover": "runners",
    "document_json_schema": "document.schema",
    "DocumentChecker": "checking",
    "DocumentError": "issues",
    "Engine": "engine",
    "explain_cron": "schedules",
    "explain_every": "schedules",
    "find_browser": "runners.browser.discovery",
    "freeze_start_up": "gc_policy",
    "Fire": "schedules",
    "GRACE_SECONDS": "schedules",
    "host_allowed": "secret_hosts",
    "HostLimits": "network",
    "iso": "reports.text",
    "Issue": "issues",
    "load_file": "document.loader",
    "channel_url_problem": "document.notify_models",
    "read_document": "document.loader",
    "locate_browser": "runners.browser",
    "McpRunner": "runners.mcp",
    "McpSettings": "runners.mcp",
    "Network": "network",
    "NetworkPolicy": "network",
    "PolicyEntry": "network",
    "IdempotencyConflict": "facade_errors",
    "NotAllowedNow": "facade_errors",
    "RequestError": "facade_errors",
    "OrchestrationRow": "store",
    "Plan": "document.plan",
    "POLL_SECONDS": "schedules",
    "RasterizeError": "reports.png",
    "RateValue": "document.units",
    "Redactor": "redaction",
    "render_log": "reports.log",
    "render_status": "reports.display",
    "render_summary": "reports.summary",
    "REPORT_FILE": "reports.files",
    "run_files": "reports.files",
    "run_query": "limits",
    "RunSnapshot": "state",
    "RunStatus": "state",
    "RunUsage": "usage",
    "Schedule": "schedules",
    "ScheduleBook": "schedules",
    "ScheduleError": "schedules",
    "ScheduleFirer": "schedules",
    "ScheduleSpec": "schedules",
    "SCHEMA_VERSION": "store",
    "SecretResolver": "secrets",
    "serve_worker": "backends.dask_worker",
    "ServerTools": "runners.mcp",
    "Store": "store",
    "StoreError": "store",
    "svg_to_png": "reports.png",
    "TaskError": "errors",
    "TaskSnapshot": "state",
    "TaskState": "state",
    "UnknownOrchestration": "facade_errors",
    "UnknownSchedule": "schedules",
    "UnknownTask": "facade_errors",
    "usage_line": "usage",
    "usage_text": "usage",
    "Validation": "document.validation",
    "write_report": "reports.html",
}

__all__ = [
    "DEFAULT_PER_HOST",
    "GRACE_SECONDS",
    "POLL_SECONDS",
    "REPORT_FILE",
    "SCHEMA_VERSION",
    "ApprovalRow",
    "Backend",
    "BrowserNotFound",
    "BrowserSettings",
    "BudgetState",
    "DaskBackend",
    "DocumentChecker",
    "DocumentError",
    "Engine",
    "Fire",
    "HostLimits",
    "IdempotencyConflict",
    "Issue",
    "McpRunner",
    "McpSettings",
    "Network",
    "NetworkPolicy",
    "NotAllowedNow",
    "OrchestrationRow",
    "Plan",
    "PolicyEntry",
    "RasterizeError",
    "RateValue",
    "Redactor",
    "RequestError",
    "RunSnapshot",
    "RunStatus",
    "RunUsage",
    "Schedule",
    "ScheduleBook",
    "ScheduleError",
    "ScheduleFirer",
    "ScheduleSpec",
    "SecretResolver",
    "ServerTools",
    "Store",
    "StoreError",
    "TaskError",
    "TaskSnapshot",
    "TaskState",
    "UnknownOrchestration",
    "UnknownSchedule",
    "UnknownTask",
    "Validation",
    "aggregated_results",
    "budget_text",
    "build_report",
    "channel_url_problem",
    "cpu_bound",
    "did_you_mean",
    "discover",
    "document_json_schema",
    "explain_cron",
    "explain_every",
    "find_browser",
    "freeze_start_up",
    "host_allowed",
    "iso",
    "load_file",
    "locate_browser",
    "read_document",
    "render_log",
    "render_status",
    "render_summary",
    "run_files",
    "run_query",
    "serve_worker",
    "svg_to_png",
    "usage_line",
    "usage_text",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
