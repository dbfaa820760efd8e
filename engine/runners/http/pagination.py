"""Pagination: the ``http`` task's ``paginate``, one request per page until there is no next.

The next page's URL comes from the ``Link`` header's ``rel="next"`` or from a JMESPath over each
page's JSON; it is sent as it is (never searched for secrets), a page linking back stops the
series, and ``max_pages`` bounds it. The items of every page are joined in order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.limits import search
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.config import (
    HttpConfig,
    Paginate,
    compile_jmespath,
)
from multi_task_orchestrator.engine.runners.http.exchange import exchange
from multi_task_orchestrator.engine.runners.http.reply import extract, read_body, reply_output
from multi_task_orchestrator.engine.runners.http.request import Request, json_type


async def paginated(
    config: HttpConfig,
    paginate: Paginate,
    request: Request,
    ctx: RunContext,
    max_response_bytes: int,
) -> dict[str, Any]:
    """The output of every page in order: the items, the last reply's status and headers."""
    items_expression = (
        compile_jmespath(paginate.items, "paginate.items") if paginate.items else None
    )
    next_expression = (
        None if paginate.next == "link" else compile_jmespath(paginate.next, "paginate.next")
    )
    items: list[Any] = []
    seen = {request.url}
    pages = 0
    while True:
        reply = await exchange(ctx, request, max_response_bytes)
        pages += 1
        page = await read_body(reply, "json", ctx)
        found = search(items_expression, page) if items_expression else page
        if found is None:
            found = []
        if not isinstance(found, list):
            what = f"paginate.items '{paginate.items}'" if paginate.items else "the page"
            raise TaskError(
                f"page {pages} ({reply.label}): {what} gave {json_type(found)}, not a list"
                + ("" if paginate.items else " (set paginate.items to select the items)")
            )
        items.extend(found)
        if next_expression is None:
            link = reply.response.links.get("next", {}).get("url")
        else:
            link = search(next_expression, page)
        if not link:
            break
        if not isinstance(link, str):
            raise TaskError(
                f"page {pages} ({reply.label}): paginate.next gave {json_type(link)}, not a URL"
            )
        next_url = urljoin(str(reply.response.url), link)
        if next_url in seen:
            ctx.log(f"page {pages} links back to {next_url}; stopping", level="warning")
            break
        if pages >= paginate.max_pages:
            ctx.log(
                f"stopped after max_pages ({paginate.max_pages}); more pages remain",
                level="warning",
            )
            break
        seen.add(next_url)
        request = replace(request, url=next_url, params=None, literal_url=True)
    ctx.log(f"{pages} page(s), {len(items)} item(s)")
    return {**reply_output(reply, extract(items, config.extract)), "pages": pages}
