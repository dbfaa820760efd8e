"""The ``llm`` task's config and the runner's settings (the price table override).

The config is checked when a document is validated: the provider and its fields, the
``base_url``, that ``api_key`` is a ``${vault.NAME}`` (a key written into a document would be
stored with it), and that ``schema`` is a valid JSON Schema (checked with ``jsonschema``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.runners.base import RunnerConfig
from multi_task_orchestrator.engine.runners.llm.prices import PriceError, read_prices

Provider = Literal["anthropic", "openai"]
DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}
DEFAULT_TIMEOUT = 300.0
_VAULT_REFERENCE = re.compile(r"\$\{vault\.[A-Za-z_][A-Za-z0-9_.-]*\}")


def _as_text(value: Any) -> Any:
    """Another task's output fed in whole (an object, a list) is sent as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


PromptText = Annotated[str, BeforeValidator(_as_text)]


def _problem(kind: str, message: str, hint: str, **values: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {**values, "hint": hint})


def vault_reference(value: str | None) -> str | None:
    """``api_key``: a ``${vault.NAME}`` reference (stripped), never the key itself."""
    if value is not None and not _VAULT_REFERENCE.fullmatch(value.strip()):
        # the value itself is never repeated: it may be a key written by mistake
        raise _problem(
            "api_key",
            "api_key must be a ${vault.NAME} reference, not the key itself",
            "store the key in the vault for the provider's host (orchestrator vault set "
            "NAME --hosts api.anthropic.com, or api.openai.com), then write "
            "api_key: ${vault.NAME}",
        )
    return value.strip() if value is not None else None


def web_url(value: str | None) -> str | None:
    """``base_url``: an http or https URL, without its trailing slash."""
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _problem(
            "base_url",
            "'{url}' is not an http or https URL",
            "write the API's base URL, e.g. https://api.openai.com/v1",
            url=value,
        )
    return value.strip().rstrip("/")


def checked_schema(schema: dict[str, Any] | None, output: Any) -> dict[str, Any] | None:
    """``schema``: a valid JSON Schema, given with an ``output`` that is not ``text``."""
    if schema is None:
        return None
    if output == "text":
        raise _problem(
            "output",
            "a schema needs a JSON answer, but output is 'text'",
            "remove output (schema implies json), or remove schema",
        )
    import jsonschema  # only a config with a schema needs it (~50 ms to import)

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise _problem(
            "json_schema",
            "schema is not a valid JSON Schema: {problem}{where}",
            "see https://json-schema.org; e.g. {type: object, properties: {title: "
            "{type: string}}, required: [title]}",
            problem=exc.message,
            where=f" (at {where})" if where else "",
        ) from None
    return schema


class ModelCallConfig(RunnerConfig):
    """What the configs of model steps (``llm``, ``agent``) share: the checks of their
    ``api_key``, ``base_url`` and ``schema`` fields and where the call goes. Each subclass
    declares the fields itself, so that each keeps its own field order."""

    if TYPE_CHECKING:  # declared by the subclasses
        provider: Provider
        base_url: str | None
        output: Literal["text", "json"] | None
        json_schema: dict[str, Any] | None

    @field_validator("api_key", check_fields=False)
    @classmethod
    def _a_vault_reference(cls, value: str | None) -> str | None:
        return vault_reference(value)

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        return web_url(value)

    @field_validator("json_schema", check_fields=False)
    @classmethod
    def _valid_schema(
        cls, schema: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        # checked here, not on the whole config: a config-wide problem waits until the
        # config's references are resolved, and api_key always holds one
        return checked_schema(schema, info.data.get("output"))

    @property
    def wants_json(self) -> bool:
        return self.output == "json" or self.json_schema is not None

    @property
    def endpoint(self) -> str:
        """The base URL the call goes to."""
        return self.base_url or DEFAULT_BASE_URLS[self.provider]


class LlmConfig(ModelCallConfig):
    """Config of an ``llm`` task: one model call."""

    provider: Provider = Field(
        description="anthropic (the Messages API) or openai (any OpenAI-compatible chat "
        "completions endpoint: OpenAI, Ollama, vLLM, LM Studio, OpenRouter...)"
    )
    model: str = Field(min_length=1, description="the model, e.g. claude-sonnet-4-5 or gpt-4.1")
    system: PromptText | None = Field(None, description="the system prompt")
    prompt: PromptText = Field(
        description="the user message; references feed it other tasks' outputs (an object or "
        "list is sent as JSON text)"
    )
    max_tokens: int = Field(1024, ge=1, le=1_000_000, description="the most tokens to generate")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    output: Literal["text", "json"] | None = Field(
        None,
        description="text (the default) or json: the answer parsed as JSON (a ```json fence is "
        "tolerated); schema implies json",
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="a JSON Schema the answer must satisfy; an answer that does not gets one "
        "repair attempt, then the task fails with invalid_output",
    )
    api_key: str | None = Field(
        None,
        description="${vault.NAME}: the key, revealed only for base_url's host; leave it out "
        "for a local endpoint that needs none",
    )
    base_url: str | None = Field(
        None,
        description="the API's base URL; by default https://api.anthropic.com or "
        "https://api.openai.com/v1 (e.g. http://127.0.0.1:11434/v1 for Ollama)",
    )
    timeout: Duration = Field(DEFAULT_TIMEOUT, gt=0, description="limit on each model call")


def _readable_prices(value: str | None) -> str | None:
    """A price table the setting gives that can be read (checked when the settings are read)."""
    if value is None or not value.strip():
        return None
    try:
        read_prices(value)
    except PriceError as exc:
        raise ValueError(str(exc)) from None
    return value


# the check is in the type, not a model validator: the server's settings copy the field
PricesSetting = Annotated[str | None, AfterValidator(_readable_prices)]


class LlmSettings(BaseModel):
    """The ``llm`` runner's settings."""

    prices: PricesSetting = Field(
        None,
        description="model prices that replace or add to the shipped table: a JSON file's "
        'path, or inline JSON mapping model -> {"input": USD, "output": USD} per million '
        "tokens",
        json_schema_extra={"shown_default": "the shipped table"},
    )
