"""Reading a final response: its status against ``expect_status``, its body as ``response``
says (JSON, text, or an artifact file), ``extract``, and the task's output.

Error classes come from here: ``http_429`` (with ``Retry-After`` as the next delay),
``http_5xx``, ``http_4xx``, ``too_deep``.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import mimetypes
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from multi_task_orchestrator.engine.atomic import write_atomic
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.limits import MAX_DATA_DEPTH, nests_deeper, search
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.config import (
    ResponseKind,
    compile_jmespath,
    status_matcher,
)

SAFE_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "link",
)
EXCERPT_LENGTH = 200
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")

LARGE_BODY = 1024 * 1024  # a JSON body past this is parsed on a worker thread


@dataclass(slots=True)
class Reply:
    """The final response of a request, and how to name the request in messages."""

    method: str
    shown_url: str  # the configured text (secrets unrevealed), or the URL a server gave
    response: httpx.Response

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def label(self) -> str:
        return f"{self.method} {self.shown_url}"


def check_status(reply: Reply, expected: tuple[int | str, ...]) -> None:
    """Raise the classed TaskError for a status ``expected`` does not accept."""
    status = reply.status
    if any(matcher(status) for matcher in map(status_matcher, expected) if matcher):
        return
    response = reply.response
    excerpt = body_excerpt(response)
    detail = f": {excerpt}" if excerpt else ""
    message = f"{reply.label} returned {status} {response.reason_phrase}".rstrip() + detail
    if status == 429:
        delay = retry_after_seconds(response.headers.get("retry-after"))
        if delay is not None:
            message += f" (Retry-After: {delay:g}s)"
        raise TaskError(message, "http_429", retry_after=delay)
    if status >= 500:
        raise TaskError(message, "http_5xx")
    if status >= 400:
        raise TaskError(message, "http_4xx")
    shown = ", ".join(str(pattern) for pattern in expected)
    raise TaskError(f"{message} (expected {shown})")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def body_excerpt(response: httpx.Response) -> str:
    """The start of the body on one line, for error messages."""
    content = response.content
    if not content:
        return ""
    try:
        text = content.decode(response.encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return f"<{len(content)} bytes of {response.headers.get('content-type', 'data')}>"
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_LENGTH else flat[: EXCERPT_LENGTH - 1] + "…"


def safe_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in SAFE_HEADERS if name in response.headers}


async def read_body(reply: Reply, kind: ResponseKind, ctx: RunContext) -> Any:
    """The body as ``kind`` says; ``bytes`` are saved as an artifact file."""
    response = reply.response
    if kind == "bytes":
        return await save_artifact(ctx, reply)
    if kind == "text":
        return response.text
    if not response.content.strip():
        return None
    content = response.content
    try:
        if len(content) > LARGE_BODY:  # ~1 s per 100 MB: not on the event loop
            data, deep = await cpu_bound(functools.partial(_parsed, content))
        else:
            data, deep = _parsed(content)
    except RecursionError:
        raise _too_deep(reply) from None
    except ValueError:
        if kind == "auto":
            return response.text
        content_type = response.headers.get("content-type", "no content type")
        raise TaskError(
            f"{reply.label} returned {content_type}, not JSON: {body_excerpt(response)} "
            "(set response: text, or response: auto)"
        ) from None
    if deep:
        raise _too_deep(reply)
    return data


def _parsed(content: bytes) -> tuple[Any, bool]:
    """The JSON ``content`` holds, and whether it nests deeper than ``MAX_DATA_DEPTH``."""
    data = json.loads(content)
    return data, nests_deeper(data, MAX_DATA_DEPTH)


def _too_deep(reply: Reply) -> TaskError:
    return TaskError(
        f"{reply.label} returned JSON nested more than {MAX_DATA_DEPTH} levels deep; it is "
        "refused so that nothing walking it can exhaust the stack (set response: text to read "
        "it as text)",
        "too_deep",
    )


def extract(data: Any, expression: str | None) -> Any:
    if expression is None:
        return data
    return search(compile_jmespath(expression, "extract"), data)


def reply_output(reply: Reply, data: Any) -> dict[str, Any]:
    return {"status": reply.status, "headers": safe_headers(reply.response), "data": data}


async def save_artifact(ctx: RunContext, reply: Reply) -> dict[str, Any]:
    """Write the body into the run's artifacts folder (atomically); describe the file."""
    response = reply.response
    mime_type = response.headers.get("content-type", "application/octet-stream")
    mime_type = mime_type.split(";")[0].strip() or "application/octet-stream"
    base = Path(urlsplit(reply.shown_url).path).name
    if not Path(base).suffix:
        base = (base or "response") + (mimetypes.guess_extension(mime_type) or ".bin")
    name = _UNSAFE_FILE_CHARACTERS.sub("_", f"{ctx.task_id}-{base}").strip("._") or "response"
    path = ctx.artifacts_dir / name
    await asyncio.to_thread(write_atomic, path, response.content)
    ctx.log(f"saved {len(response.content)} bytes to artifact {name}")
    return {"artifact": name, "size": len(response.content), "mime_type": mime_type}
