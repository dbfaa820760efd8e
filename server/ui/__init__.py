"""``/ui`` of ``orchestrator serve --http``: the live view in a browser.

The runs list (filtered by state) and one run's live page are the page of ``tools.app`` in
``web`` mode; it polls the JSON endpoints under ``/ui/api/`` (``routes``). Access follows the
MCP endpoint's bearer token (``access``).
"""

from multi_task_orchestrator.server.ui.routes import build_ui_app

__all__ = ["build_ui_app"]
