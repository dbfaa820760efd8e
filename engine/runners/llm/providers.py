"""One model call through a provider's official SDK: Anthropic's Messages API, or an
OpenAI-compatible chat completions endpoint (OpenAI, Ollama, vLLM, LM Studio, OpenRouter...).

Each call makes an SDK client over ``EngineTransport`` (the engine's network, the key added per
request for the host it goes to), with ``max_retries=0``: the task's retry policy decides. The
SDKs are imported on first use, in a thread (importing ``anthropic`` takes a second or more),
so neither validation nor the event loop waits for them.

The SDK's errors become classed ``TaskError``s: 429 is ``http_429`` (its ``retry-after`` the next
delay), Anthropic's 529 ``overloaded``, other 5xx ``http_5xx``, 401/403 ``auth``, other 4xx
``http_4xx``, a timeout ``timeout``, a failed connection ``network``; the engine's own refusals
(the network policy, the vault) come through as they are.

With ``tools`` (``tool_use.ToolSpec``), the call offers them and the answer carries the calls
the model asks for (``Answer.tool_calls``); ``tool_use`` builds the turns that send the calls
and their results back (the ``agent`` task type's loop).
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx2

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http import retry_after_seconds
from multi_task_orchestrator.engine.runners.llm.config import DEFAULT_BASE_URLS, LlmConfig
from multi_task_orchestrator.engine.runners.llm.tool_use import (
    Message,
    ToolCall,
    ToolSpec,
    anthropic_calls,
    openai_calls,
    tools_option,
)
from multi_task_orchestrator.engine.runners.llm.transport import EngineTransport

# What the SDK holds instead of the key: the transport replaces it (or drops it: no key).
PLACEHOLDER_KEY = "key-added-by-the-orchestrator"
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class Answer:
    """What one call gave back."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    tool_calls: tuple[ToolCall, ...] = field(default=())


async def ask(
    config: LlmConfig,
    messages: list[Message],
    system: str | None,
    ctx: RunContext,
    tools: list[ToolSpec] | None = None,
) -> Answer:
    """One call with ``messages`` (user and assistant turns) and ``system``, offering
    ``tools`` when given."""
    call = _anthropic if config.provider == "anthropic" else _openai
    sdk = await _sdk(config.provider)
    try:
        return await call(sdk, config, messages, system, ctx, tools or [])
    except sdk.APIError as exc:
        raise _classed(exc, sdk, config, ctx) from None


async def _sdk(name: str) -> ModuleType:
    return await asyncio.to_thread(importlib.import_module, name)


def _http_client(transport: EngineTransport) -> httpx2.AsyncClient:
    # trust_env=False: a proxy named by the environment would be a transport other than ours
    return httpx2.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)


async def _anthropic(
    sdk: ModuleType,
    config: LlmConfig,
    messages: list[Message],
    system: str | None,
    ctx: RunContext,
    tools: list[ToolSpec],
) -> Answer:
    transport = EngineTransport(
        ctx,
        api_key=config.api_key,
        auth_header=lambda key: ("x-api-key", key),
        timeout=config.timeout,
    )
    options: dict[str, Any] = {}
    if system:
        options["system"] = system
    if tools:
        options["tools"] = tools_option("anthropic", tools)
    if config.temperature is not None:
        options["temperature"] = config.temperature
    async with sdk.AsyncAnthropic(
        api_key=PLACEHOLDER_KEY,
        base_url=config.endpoint,
        max_retries=0,
        timeout=config.timeout,
        http_client=_http_client(transport),
    ) as client:
        reply = await client.messages.create(
            model=config.model, max_tokens=config.max_tokens, messages=messages, **options
        )
    text = "".join(block.text for block in reply.content if getattr(block, "type", "") == "text")
    usage = reply.usage
    return Answer(
        text,
        reply.model,
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        reply.stop_reason,
        anthropic_calls(reply.content),
    )


async def _openai(
    sdk: ModuleType,
    config: LlmConfig,
    messages: list[Message],
    system: str | None,
    ctx: RunContext,
    tools: list[ToolSpec],
) -> Answer:
    transport = EngineTransport(
        ctx,
        api_key=config.api_key,
        auth_header=lambda key: ("authorization", f"Bearer {key}"),
        timeout=config.timeout,
        # the SDK fills these from OPENAI_ORG_ID / OPENAI_PROJECT_ID; they are not the task's
        dropped=frozenset({"openai-organization", "openai-project"}),
    )
    turns = ([{"role": "system", "content": system}] if system else []) + messages
    options: dict[str, Any] = {}
    # OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens);
    # the compatible servers (Ollama, vLLM, LM Studio, OpenRouter) all read max_tokens
    if config.endpoint == DEFAULT_BASE_URLS["openai"]:
        options["max_completion_tokens"] = config.max_tokens
    else:
        options["max_tokens"] = config.max_tokens
    if tools:
        options["tools"] = tools_option("openai", tools)
    if config.temperature is not None:
        options["temperature"] = config.temperature
    async with sdk.AsyncOpenAI(
        api_key=PLACEHOLDER_KEY,
        base_url=config.endpoint,
        max_retries=0,
        timeout=config.timeout,
        http_client=_http_client(transport),
    ) as client:
        reply = await client.chat.completions.create(model=config.model, messages=turns, **options)
    if not reply.choices:
        raise TaskError(f"{_label(config)} answered with no choices")
    choice = reply.choices[0]
    usage = reply.usage
    return Answer(
        choice.message.content or "",
        reply.model or config.model,
        (usage.prompt_tokens or 0) if usage else 0,
        (usage.completion_tokens or 0) if usage else 0,
        choice.finish_reason,
        openai_calls(choice.message.tool_calls),
    )


def _label(config: LlmConfig) -> str:
    return f"{config.provider} model {config.model} at {config.endpoint}"


def _classed(exc: Exception, sdk: ModuleType, config: LlmConfig, ctx: RunContext) -> TaskError:
    """The TaskError an SDK error stands for (see the module docstring)."""
    cause = exc.__cause__
    if isinstance(cause, TaskError):  # raised by the transport: the engine's own words
        return cause
    label = _label(config)
    if isinstance(exc, sdk.APITimeoutError):
        return TaskError(f"{label}: timed out after {config.timeout:g}s", "timeout")
    if isinstance(exc, sdk.APIConnectionError):
        detail = ctx.secrets.redact(_cause_text(exc))
        return TaskError(f"{label}: connection failed ({detail})", "network")
    if not isinstance(exc, sdk.APIStatusError):
        return TaskError(ctx.secrets.redact(f"{label}: {type(exc).__name__}: {exc}"))
    status = exc.status_code
    message = ctx.secrets.redact(f"{label} returned {status}: {_detail(exc)}")
    if status == 429:
        delay = _retry_after(exc.response)
        if delay is not None:
            message += f" (retry-after: {delay:g}s)"
        return TaskError(message, "http_429", retry_after=delay)
    if status == 529:
        return TaskError(message, "overloaded", retry_after=_retry_after(exc.response))
    if status >= 500:
        return TaskError(message, "http_5xx")
    if status in (401, 403):
        return TaskError(message, "auth")
    return TaskError(message, "http_4xx")


def _retry_after(response: Any) -> float | None:
    headers = response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def _detail(exc: Any) -> str:
    """The provider's own error message (both wire formats put it at ``error.message``)."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            found: str = error["message"]
            kind = error.get("type")
            text = f"{kind}: {found}" if isinstance(kind, str) else found
            return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
    text = " ".join(str(getattr(exc, "message", exc)).split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _cause_text(exc: Exception) -> str:
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
