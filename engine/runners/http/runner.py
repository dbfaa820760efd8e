"""The ``http`` runner: the task type's declarations, and one task's run from config to output."""

from __future__ import annotations

from typing import Any, ClassVar

from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.http.config import HttpConfig, HttpSettings


class HttpRunner(Runner[HttpConfig]):
    """Sends the configured request (and its next pages); see the package docstring."""

    type_name: ClassVar[str] = "http"
    aliases: ClassVar[tuple[str, ...]] = ("api_call", "api")
    listing_rank: ClassVar[int] = 10
    config_model: ClassVar[type[HttpConfig]] = HttpConfig
    settings_model: ClassVar[type[HttpSettings]] = HttpSettings
    error_classes: ClassVar[frozenset[str]] = frozenset({"auth"})  # a token endpoint refused
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"url", "params", "headers", "auth", "json", "body", "form"}
    )
    summary: ClassVar[str] = (
        "Calls an HTTP API: method, url, params, headers, a json/body/form body, bearer or "
        "basic auth from the vault or OAuth2 (tokens cached in the vault), pagination, "
        "JMESPath extraction; 429 and 5xx are retryable."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "fetch_posts",
        "type": "http",
        "config": {
            "url": "https://api.example.org/posts",
            "params": {"per_page": 50},
            "headers": {"Accept": "application/json"},
            "extract": "[].{id: id, title: title}",
        },
        "retry": {"max_attempts": 3, "on": ["timeout", "network", "http_429", "http_5xx"]},
        "dependencies": [],
    }

    @property
    def max_response_bytes(self) -> int:
        return int(self.settings_as(HttpSettings).max_response_bytes)

    async def run(self, config: HttpConfig, ctx: RunContext) -> Any:
        # the request code (and httpx) loads with the first request, not with the declaration
        from multi_task_orchestrator.engine.runners.http.exchange import exchange
        from multi_task_orchestrator.engine.runners.http.pagination import paginated
        from multi_task_orchestrator.engine.runners.http.reply import (
            extract,
            read_body,
            reply_output,
        )
        from multi_task_orchestrator.engine.runners.http.request import Request

        body: dict[str, Any] = {}
        if "json_body" in config.model_fields_set:
            body["json"] = config.json_body
        elif config.body is not None:
            body["content"] = config.body
        elif config.form is not None:
            body["form"] = config.form
        request = Request.of(config, **body)
        if config.paginate is not None:
            return await paginated(config, config.paginate, request, ctx, self.max_response_bytes)
        reply = await exchange(ctx, request, self.max_response_bytes)
        data = extract(await read_body(reply, config.response, ctx), config.extract)
        ctx.log(f"{reply.label} -> {reply.status}")
        return reply_output(reply, data)
