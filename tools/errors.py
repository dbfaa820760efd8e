"""Turn engine errors into ``ToolError`` messages a model can act on; hide internals.

Anticipated problems (a bad document, an unknown id, a request that does not fit the run's
state) become a ``ToolError`` naming what is wrong and what to do. Anything else is logged with
its traceback on the server and reaches the model as one short sentence.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from multi_task_orchestrator.engine import DocumentError, RequestError, StoreError

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("orchestrator.tools")


def document_problems(error: DocumentError) -> str:
    """Every problem of a document, one per line, then what to do."""
    lines = "\n".join(f"- {issue}" for issue in error.issues)
    count = len(error.issues)
    return (
        f"The orchestration document has {count} problem{'s' if count != 1 else ''}:\n{lines}\n"
        "Fix them and submit again (validate_orchestration checks a document without running it)."
    )


def friendly_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a tool so every failure reaches the model as a clear ToolError."""

    @functools.wraps(tool)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except ToolError:
            raise
        except DocumentError as exc:
            raise ToolError(document_problems(exc)) from None
        except (RequestError, StoreError) as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:
            logger.exception("tool %s failed", tool.__name__)
            raise ToolError(
                f"internal error in {tool.__name__} ({type(exc).__name__}); the server log has "
                "the details. Try again; if it keeps failing, report it."
            ) from None

    return wrapper
