"""The ``llm`` task type: one model call, Anthropic's Messages API or any OpenAI-compatible chat
completions endpoint, through the providers' official SDKs.

- ``config``: the task's config (``LlmConfig``) and the runner's settings (``LlmSettings``:
  ``ORCHESTRATOR_LLM_PRICES``);
- ``runner``: the call, the JSON answer's one repair, the output
  ``{text | data, model, usage: {input_tokens, output_tokens}, cost_usd, stop_reason}``;
- ``providers``: the two SDKs and how their errors become error classes;
- ``transport``: the SDKs' requests sent through the engine's network, the key added per host;
- ``answers``: JSON parsing and the schema check;
- ``prices``: the price table.

The key (``api_key: ${vault.NAME}``, the only field that may name a secret) is revealed only for
the host each request goes to, and never reaches a prompt, an output, an event or an error.
Error classes, for ``retry.on``: ``http_429``, ``overloaded`` (Anthropic's 529; retried when
``retry.on`` is not given, like ``http_5xx``), ``http_5xx``, ``auth`` (401/403), ``http_4xx``,
``timeout``, ``network``, ``policy``, ``invalid_output`` (a JSON answer still wrong after its
repair), ``too_large``; and ``budget`` when a budget is spent before the repair call. Each call
is counted with ``ctx.record_usage`` as it is made (``spends_budget``).
"""

from __future__ import annotations

from multi_task_orchestrator.engine.runners.llm.runner import LlmRunner

RUNNER = LlmRunner

__all__ = ["RUNNER", "LlmRunner"]
