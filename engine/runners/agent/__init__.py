"""The ``agent`` task type: a model with tools from named MCP servers, in a bounded tool-use loop.

- ``config``: the task's config (``AgentConfig``): the model as an ``llm`` task names it,
  ``instructions``, ``prompt``, ``tools`` (servers of the servers file, optionally ``only``
  some of their tools), ``max_steps``, ``max_tokens``, ``step_max_tokens``, ``timeout``,
  ``output`` / ``schema``;
- ``loop``: ask, call the tools asked for, feed the results back, until an answer without a
  call or a limit; every model call and tool call an event;
- ``toolbox``: the tools, from the ``mcp`` runner's shared sessions (one per server for the
  engine's life; the engine hands the agent that runner through ``Runner.use_runners``);
- ``transcript``: the conversation, redacted, saved as the artifact ``TASK-transcript.json``;
- ``budget``: where each call is counted and budgets stop the loop;
- ``runner``: the output ``{text | data, model, steps, tool_calls, usage: {input_tokens,
  output_tokens}, cost_usd, stop_reason, transcript}``.

The model calls go through the ``llm`` runner's providers (the official SDKs, the engine's
policy-checked network, the key revealed only for the provider's host). Error classes, for
``retry.on``: those of ``llm``, plus ``max_steps``, ``max_tokens``, ``budget`` and ``timeout``
(the loop's own limits, each named in the message); a tool that fails is not one — its error
is the model's to read.
"""

from __future__ import annotations

from multi_task_orchestrator.engine.runners.agent.config import AgentConfig, ToolSource
from multi_task_orchestrator.engine.runners.agent.runner import AgentRunner

RUNNER = AgentRunner

__all__ = ["RUNNER", "AgentConfig", "AgentRunner", "ToolSource"]
