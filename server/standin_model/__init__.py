"""A local stand-in model server: Anthropic's and OpenAI's wire formats on 127.0.0.1, no model.

It answers ``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/chat/completions`` (OpenAI
chat completions; also without ``/v1``), non-streaming, deterministically from the prompt: a
short text that says it comes from a local stand-in and quotes the prompt's first words; or,
when the conversation asks for JSON, a JSON value that satisfies simple schemas (object,
properties, required, string, integer, number, boolean, array, enum) found after "JSON Schema:"
in it. It checks the auth header's shape (``x-api-key`` or ``Authorization: Bearer``; with
``keys``, the key itself), counts tokens as about four characters each, and honours
``max_tokens`` (cutting the answer, stop reason ``max_tokens`` / ``length``).

When a request offers tools, it drives a tool-use loop: it asks for one tool call a step — the
tools the prompt names, in order, with the ``prop=value`` arguments written after each
(``read_text_file path=/tmp/notes.txt``), or the calls scripted through the knob — and, once
they are made, answers quoting the last result (``tool_use.py``).

The offline demo and the tests use it in place of a provider. Knobs, from Python
(``StandinModel.state``) or ``POST /_standin/control`` (``{"fail": {"count": 2, "status": 429,
"retry_after": 1}, "invalid_json": 1, "tool_calls": [...]}``): fail the next calls with a status
(429 with ``retry-after``, Anthropic's 529 overloaded, 5xx), answer the next calls with invalid
JSON, script the tool calls. Every call is recorded (path, headers, body) in
``state.requests``, to show where a key went.

- ``state``: the knobs and the record; ``answers``: the answers and token counts;
  ``tool_use``: which tool to call next; ``app``: the wire formats; ``serving``: uvicorn.

``python -m multi_task_orchestrator.server.standin_model [PORT]`` serves it in the foreground.
"""

from multi_task_orchestrator.server.standin_model.answers import answer_for, tokens
from multi_task_orchestrator.server.standin_model.app import create_app
from multi_task_orchestrator.server.standin_model.serving import StandinModel, main
from multi_task_orchestrator.server.standin_model.state import NOTICE, Fault, StandinState

__all__ = [
    "NOTICE",
    "Fault",
    "StandinModel",
    "StandinState",
    "answer_for",
    "create_app",
    "main",
    "tokens",
]
