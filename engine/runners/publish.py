"""The ``multi_publish`` task type: publish content to several destinations, one child each.

A task names its request templates under ``targets`` and lists what goes where under
``destinations``::

    - id: publish_all
      type: multi_publish
      dependencies: [merge_content]
      config:
        payload: "${merge_content.output}"     # what is published (unless an entry says otherwise)
        targets:                               # one HTTP request template per site
          site_a:
            url: "https://a.example/wp-json/wp/v2/posts"
            auth: {type: bearer, token: "${vault.SITE_A_TOKEN}"}
            body: {status: publish}            # fixed JSON fields, merged over an object payload
          site_b: {url: "https://b.example/api/posts", method: PUT, payload_field: content}
          site_c: {url: "https://c.example/submit", form: {source: orchestrator}}
        destinations:                          # optional; default: every target, in order
          - site_a                             # a target's name: publishes `payload`
          - site_b: "${merge_content.output}"  # the seed's form: a target and its own payload
          - site_c

Each destination becomes one tracked child task (``publish_all[0]``, ``[1]``, ...) under the
orchestration's limits and the per-host limits; each child retries on its own. The task's output
is the list of the children's outputs, ``{destination, status, headers, data}`` each. A failed
destination fails its child and its error starts with ``destination NAME:``, so the status and the
summary name it; with ``allow_partial: true`` on the task, the others' results still count as a
success of the task.

A target is an ``http`` request template (``method`` defaults to POST, ``response`` to ``auto``)
with these ways to carry the payload: nothing — the payload is the JSON body; ``body`` — fixed
JSON fields merged over an object payload (the fixed fields win); ``form`` — a url-encoded form of
the payload's fields and the fixed ones; ``payload_field`` — the payload goes under that one key
of the JSON body (or of the form, as JSON text unless it is a string). ``${vault.NAME}`` works in
a target's url, params, headers, auth, body and form, revealed per hop for that hop's host; the
payload itself is content, sent as it is and never searched for secrets.

Targets belong in the task's config (not in ``vars``): references inside them resolve there, and
only the secrets a task's own config names are revealed to it. When the task has ``for_each``,
each child publishes to the destination its ``${item}`` names, or to every destination when the
item names none.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.runners.http import (
    FormValue,
    HttpSettings,
    Method,
    RequestFields,
    ResponseKind,
)


class Target(RequestFields):
    """A destination's request template; see the module docstring for how the payload goes in."""

    method: Method = Field("POST", description="GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
    response: ResponseKind = Field(
        "auto", description="read the answer as auto (json when it is JSON), json, text or bytes"
    )
    body: dict[str, Any] | None = Field(
        None, description="fixed JSON fields, merged over an object payload (these win)"
    )
    form: dict[str, FormValue] | None = Field(
        None, description="send a url-encoded form: these fixed fields and the payload's"
    )
    payload_field: str | None = Field(
        None, description="put the payload under this key instead of merging it"
    )

    @model_validator(mode="after")
    def _one_encoding(self) -> Target:
        if self.body is not None and self.form is not None:
            raise PydanticCustomError(
                "body",
                "give body (JSON) or form, not both",
                {"hint": "a form's fixed fields go under form"},
            )
        return self


Problem = InitErrorDetails


def _problem(loc: tuple[str | int, ...], message: str, hint: str, value: Any = None) -> Problem:
    error = PydanticCustomError("publish_config", "{detail}", {"detail": message, "hint": hint})
    return InitErrorDetails(type=error, loc=loc, input=value)


class PublishConfig(RunnerConfig):
    """Config of a ``multi_publish`` task."""

    targets: dict[str, Target] = Field(
        default_factory=dict, description="request templates by destination name"
    )
    payload: Any = Field(None, description="what is published, usually ${task.output}")
    destinations: list[str | dict[str, Any]] | None = Field(
        None,
        description="where to publish: target names, or {target: payload}; default: every target",
    )

    @model_validator(mode="after")
    def _destinations_fit(self) -> PublishConfig:
        problems = self._problems()
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def _problems(self) -> list[Problem]:
        """Each destination entry that is malformed or has nothing to publish.

        A destination naming no target is reported when the task runs (``missing_target``), not
        here: the seed's own example lists destinations whose targets it leaves to be defined,
        and it must still validate.
        """
        if self.destinations is None and not self.targets:
            hint = "e.g. targets: {site_a: {url: 'https://a.example/api/posts'}}"
            return [_problem(("targets",), "multi_publish needs at least one target", hint)]
        if self.destinations == []:
            hint = "list target names, or leave destinations out to publish to every target"
            return [_problem(("destinations",), "destinations is empty", hint, [])]
        problems = []
        for index, entry in enumerate(self.destinations or []):
            if isinstance(entry, dict) and len(entry) != 1:
                keys = ", ".join(map(str, entry)) or "none"
                message = (
                    f"destinations[{index}] has {len(entry)} keys ({keys}); an entry is a "
                    "target's name or {target_name: payload}"
                )
                hint = "define request templates under targets: and list their names here"
                problems.append(_problem(("destinations", index), message, hint, entry))
                continue
            name = entry if isinstance(entry, str) else next(iter(entry))
            if isinstance(entry, str) and "payload" not in self.model_fields_set:
                message = f"destinations[{index}] ('{name}') has no payload to publish"
                hint = f"set payload: ${{task.output}}, or write {{{name}: ${{task.output}}}}"
                problems.append(_problem(("payload",), message, hint))
        return problems

    def missing_target(self, name: str) -> TaskError | None:
        """The error for a destination that names no target, or None when it is defined."""
        if name in self.targets:
            return None
        defined = ", ".join(self.targets) or "none"
        return ConfigError(
            f"destination {name}: no target '{name}' is defined (defined: {defined}); add it "
            f"to the task's config: targets: {{{name}: {{url: 'https://...', headers: {{...}}}}}}"
        )

    def plan(self) -> list[tuple[str, Any]]:
        """``(target name, payload)`` per destination, in order."""
        if self.destinations is None:
            return [(name, self.payload) for name in self.targets]
        plan = []
        for entry in self.destinations:
            if isinstance(entry, str):
                plan.append((entry, self.payload))
            else:
                ((name, payload),) = entry.items()
                plan.append((name, payload))
        return plan


class MultiPublishRunner(Runner[PublishConfig]):
    """Fans out one child per destination; each child sends one request."""

    type_name: ClassVar[str] = "multi_publish"
    aliases: ClassVar[tuple[str, ...]] = ("publish",)
    listing_rank: ClassVar[int] = 50
    config_model: ClassVar[type[PublishConfig]] = PublishConfig
    settings_model: ClassVar[type[HttpSettings]] = HttpSettings  # http's: the same variables
    secret_fields: ClassVar[frozenset[str]] = frozenset({"targets"})
    summary: ClassVar[str] = (
        "Publishes one payload to several destinations in parallel, one tracked child per "
        "destination: targets are HTTP request templates (url, method, headers, auth, body or "
        "form); partial failures are reported per destination."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "publish_all",
        "type": "multi_publish",
        "config": {
            "payload": "${merge_content.output}",
            "targets": {
                "site_a": {"url": "https://a.example/api/posts", "body": {"status": "publish"}},
                "site_b": {"url": "https://b.example/api/posts", "payload_field": "content"},
            },
            "destinations": ["site_a", {"site_b": "${merge_content.output}"}],
        },
        "retry": {"max_attempts": 3, "on": ["timeout", "network", "http_429", "http_5xx"]},
        "dependencies": ["merge_content"],
    }

    def fan_out(self, config: PublishConfig) -> list[Any]:
        return [name for name, _ in config.plan()]

    async def run(self, config: PublishConfig, ctx: RunContext) -> Any:
        plan = config.plan()
        chosen = _chosen(plan, ctx.item, ctx.index)
        if chosen is not None:
            name, payload = plan[chosen]
            return await self._publish(name, config, payload, ctx)
        results = await asyncio.gather(
            *(self._publish(name, config, payload, ctx) for name, payload in plan),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, TaskError):
                raise result
        failures = [result for result in results if isinstance(result, TaskError)]
        if failures:
            listed = "; ".join(failure.message for failure in failures)
            raise TaskError(
                f"{len(failures)} of {len(plan)} destination(s) failed: {listed}",
                failures[0].error_class,
                retry_after=failures[0].retry_after,
            )
        return results

    async def _publish(
        self, name: str, config: PublishConfig, payload: Any, ctx: RunContext
    ) -> dict[str, Any]:
        # the request code (and httpx) loads with the first request, as for http tasks
        from multi_task_orchestrator.engine.runners.http.exchange import exchange
        from multi_task_orchestrator.engine.runners.http.reply import (
            extract,
            read_body,
            reply_output,
        )
        from multi_task_orchestrator.engine.runners.http.request import NO_BODY, Request

        if missing := config.missing_target(name):
            raise missing
        target = config.targets[name]
        request = Request.of(
            target,
            json=target.body if target.body is not None else NO_BODY,
            form=target.form,
            payload=payload,
            payload_field=target.payload_field,
        )
        limit = int(self.settings_as(HttpSettings).max_response_bytes)
        try:
            reply = await exchange(ctx, request, limit)
            data = extract(await read_body(reply, target.response, ctx), target.extract)
        except TaskError as exc:
            raise TaskError(
                f"destination {name}: {exc.message}", exc.error_class, retry_after=exc.retry_after
            ) from None
        ctx.log(f"published to {name}: {reply.label} -> {reply.status}")
        return {"destination": name, **reply_output(reply, data)}


def _chosen(plan: list[tuple[str, Any]], item: Any, index: int | None) -> int | None:
    """The destination a child publishes to: the one its item names (at its own index when
    names repeat), or None for every destination."""
    if not isinstance(item, str):
        return None
    if index is not None and 0 <= index < len(plan) and plan[index][0] == item:
        return index
    return next((position for position, (name, _) in enumerate(plan) if name == item), None)


RUNNER = MultiPublishRunner
