"""The ``notify:`` section of a document: the channels a run's notifications go to, and the
events each channel hears. ``notify: true`` (the seed's form) means the default channel of the
settings (``ORCHESTRATOR_NOTIFY_URL``), or a ``notify`` event in the run's log without one."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.issues import did_you_mean


class NotifyEvent(StrEnum):
    """What a channel may hear. ``approval_needed`` is accepted now and sent once the
    approval task type exists."""

    finished = "finished"  # the run succeeded
    failed = "failed"  # the run ended failed, cancelled or timed out
    task_failed = "task_failed"  # a task failed for good
    approval_needed = "approval_needed"  # a task waits for a person (approval tasks)


DEFAULT_EVENTS = (NotifyEvent.finished, NotifyEvent.failed)
WEBHOOK_SCHEMES = ("webhook+https", "webhook+http")


def _known_event(value: Any) -> Any:
    known = [event.value for event in NotifyEvent]
    if not isinstance(value, str) or value in known:
        return value
    raise PydanticCustomError(
        "unknown_notify_event",
        "unknown notification event '{name}'; known events: {known}",
        {
            "name": value,
            "known": ", ".join(known),
            "hint": did_you_mean(value, known) or "pick one of the known events",
        },
    )


NotifyEventName = Annotated[str, AfterValidator(_known_event)]


class NotifyChannel(BaseModel):
    """One channel: a ``webhook+https://`` URL (a signed JSON POST) or an Apprise URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="webhook+https://host/path, or an Apprise URL (slack://, json://, mailto://...)"
    )
    events: tuple[NotifyEventName, ...] = Field(
        tuple(DEFAULT_EVENTS), description="what this channel hears"
    )
    secret: str | None = Field(
        None,
        description="${vault.NAME}: the key of the webhook's X-Orchestrator-Signature HMAC",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, separator, rest = value.partition("://")
        if not separator or not scheme or not rest:
            raise PydanticCustomError(
                "bad_notify_url",
                "'{url}' is not a channel URL",
                {"url": value, "hint": "e.g. webhook+https://hooks.example.com/run or slack://..."},
            )
        lowered = scheme.lower()
        # no Apprise scheme is close to these: a near miss is a misspelt webhook
        misspelt = lowered.startswith("webhook") or did_you_mean(lowered, WEBHOOK_SCHEMES)
        if misspelt and lowered not in WEBHOOK_SCHEMES:
            raise PydanticCustomError(
                "bad_notify_url",
                "unknown webhook scheme '{scheme}'; known: {known}",
                {
                    "scheme": scheme,
                    "known": ", ".join(WEBHOOK_SCHEMES),
                    "hint": did_you_mean(lowered, WEBHOOK_SCHEMES) or "use webhook+https://",
                },
            )
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # one event, written without the list around it
            raise PydanticCustomError(
                "notify_events_not_a_list",
                "is a list of events, not one event",
                {"hint": f"write a list, e.g. events: [{value[:40]}]"},
            )
        return value

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise PydanticCustomError(
                "no_notify_events",
                "a channel needs at least one event",
                {"hint": "e.g. events: [finished, failed]; leave it out for those two"},
            )
        return value

    @field_validator("secret")
    @classmethod
    def _vault_reference(cls, value: str | None) -> str | None:
        if value is not None and secret_name(value) is None:
            raise PydanticCustomError(
                "bad_notify_secret",
                "a channel's secret must be a vault reference, not '{value}'",
                {"value": "***", "hint": "write secret: ${vault.NAME}"},
            )
        return value

    @property
    def is_webhook(self) -> bool:
        return self.url.partition("://")[0].lower() in WEBHOOK_SCHEMES


def secret_name(value: str) -> str | None:
    """``NAME`` of a value written ``${vault.NAME}``, else None."""
    text = value.strip()
    if text.startswith("${vault.") and text.endswith("}"):
        name = text[len("${vault.") : -1]
        return name or None
    return None


def channel_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a channel's URL, with the fix; None when nothing is."""
    try:
        NotifyChannel(url=url)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        hint = (error.get("ctx") or {}).get("hint")
        return f"{error['msg']} ({hint})" if hint else str(error["msg"])
    return None


_CHANNELS = TypeAdapter(list[NotifyChannel])


def notify_setting(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """``notify:`` is true/false or a list of channels; a list's errors are reported at the
    channel (not once per branch of the union, with a 'bool' error that does not apply)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, list):  # often one channel, written without the list around it
        example = (
            f"notify: [{{url: '{value}'}}]"
            if isinstance(value, str) and len(value) <= 100 and "'" not in value
            else "notify: [{url: 'json://127.0.0.1:8080/runs'}]"
        )
        what = {str: "one URL", dict: "one mapping", type(None): "null"}.get(
            type(value), type(value).__name__
        )
        raise PydanticCustomError(
            "notify_not_a_list",
            "is true, false or a list of channels, each with a url, not {what}",
            {"what": what, "hint": f"write a list, e.g. {example}"},
        )
    return _CHANNELS.validate_python(value)
