"""The stand-in's two wire formats: ``POST /v1/messages`` (Anthropic Messages) and ``POST
/v1/chat/completions`` (OpenAI chat completions; also without ``/v1``), non-streaming; and
``POST /_standin/control``, the knobs (``{"fail": {"count": 2, "status": 429, "retry_after":
1}, "invalid_json": 1, "tool_calls": [{"tool": "read_text_file", "arguments": {...}}]}``).

Each checks the auth header's shape (``x-api-key`` or ``Authorization: Bearer``; with ``keys``,
the key itself), gives the faults it was told to, and answers: with a tool call when tools are
offered and one is due (``tool_use.py``: Anthropic ``tool_use`` blocks, stop reason
``tool_use``; OpenAI ``tool_calls``, finish reason ``tool_calls``), else with the answer
``answers.py`` makes, cut to ``max_tokens`` (stop reason ``max_tokens`` / ``length``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from multi_task_orchestrator.server.standin_model.answers import answer_for, cut, text_of, tokens
from multi_task_orchestrator.server.standin_model.state import NOTICE, Fault, StandinState
from multi_task_orchestrator.server.standin_model.tool_use import (
    next_call,
    offered_tools,
    results_so_far,
)


def _anthropic_error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _openai_error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


_FAULT_KINDS = {429: "rate_limit_error", 529: "overloaded_error"}


def _fault(fault: Fault, openai: bool) -> JSONResponse:
    kind = _FAULT_KINDS.get(fault.status, "api_error")
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    message = f"{NOTICE}: failing this call on purpose with {fault.status}"
    make = _openai_error if openai else _anthropic_error
    return make(fault.status, kind, message, **headers)


def _tool_call(
    state: StandinState, body: dict[str, Any], prompt: str, openai: bool
) -> tuple[str, dict[str, Any], int] | None:
    """The tool call due in this conversation: (tool, arguments, its number), or None."""
    done = len(results_so_far(body.get("messages") or [], openai))
    call = next_call(offered_tools(body, openai), prompt, done, state.tool_script)
    return None if call is None else (*call, done + 1)


def create_app(state: StandinState) -> Starlette:
    """The Starlette app over ``state``."""

    async def received(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        state.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        return body if isinstance(body, dict) else {}

    def key_refused(given: str | None, openai: bool) -> JSONResponse | None:
        make = _openai_error if openai else _anthropic_error
        kind = "invalid_api_key" if openai else "authentication_error"
        if not given:
            if not state.require_key:
                return None
            what = "Authorization: Bearer KEY" if openai else "x-api-key"
            return make(401, kind, f"{NOTICE}: the {what} header is required")
        if state.keys is not None and given not in state.keys:
            return make(401, kind, f"{NOTICE}: invalid API key")
        return None

    async def messages(request: Request) -> Response:
        body = await received(request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        refused = key_refused(request.headers.get("x-api-key") or bearer or None, False)
        if refused is not None:
            return refused
        if "anthropic-version" not in request.headers:
            return _anthropic_error(400, "invalid_request_error", "anthropic-version is required")
        turns = body.get("messages")
        if not body.get("model") or not isinstance(turns, list) or "max_tokens" not in body:
            return _anthropic_error(
                400, "invalid_request_error", "model, messages and max_tokens are required"
            )
        if state.faults:
            return _fault(state.faults.popleft(), False)
        texts = [text_of(body.get("system"))] + [text_of(t.get("content")) for t in turns]
        prompt = next((text_of(t.get("content")) for t in turns if t.get("role") == "user"), "")
        usage = {"input_tokens": tokens("\n".join(texts))}
        reply: dict[str, Any] = {
            "id": f"msg_standin_{len(state.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "stop_sequence": None,
        }
        call = _tool_call(state, body, prompt, False)
        if call is not None:
            tool, arguments, number = call
            said = f"[{NOTICE}] Calling {tool}."
            return JSONResponse(
                {
                    **reply,
                    "content": [
                        {"type": "text", "text": said},
                        {
                            "type": "tool_use",
                            "id": f"toolu_standin_{number}",
                            "name": tool,
                            "input": arguments,
                        },
                    ],
                    "stop_reason": "tool_use",
                    "usage": {**usage, "output_tokens": tokens(said + json.dumps(arguments))},
                }
            )
        results = results_so_far(turns, False)
        answer, was_cut = cut(_answer(state, "\n".join(texts), prompt, results), body["max_tokens"])
        return JSONResponse(
            {
                **reply,
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "max_tokens" if was_cut else "end_turn",
                "usage": {**usage, "output_tokens": tokens(answer)},
            }
        )

    async def chat_completions(request: Request) -> Response:
        body = await received(request)
        authorization = request.headers.get("authorization", "")
        if authorization and not authorization.startswith("Bearer "):
            return _openai_error(401, "invalid_api_key", f"{NOTICE}: use Authorization: Bearer")
        refused = key_refused(authorization.removeprefix("Bearer ").strip() or None, True)
        if refused is not None:
            return refused
        turns = body.get("messages")
        if not body.get("model") or not isinstance(turns, list):
            return _openai_error(400, "invalid_request_error", "model and messages are required")
        if state.faults:
            return _fault(state.faults.popleft(), True)
        texts = [text_of(t.get("content")) for t in turns]
        prompt = next((text_of(t.get("content")) for t in turns if t.get("role") == "user"), "")
        prompt_tokens = tokens("\n".join(texts))
        call = _tool_call(state, body, prompt, True)
        if call is not None:
            tool, arguments, number = call
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_standin_{number}",
                        "type": "function",
                        "function": {"name": tool, "arguments": json.dumps(arguments)},
                    }
                ],
            }
            finish, completion_tokens = "tool_calls", tokens(tool + json.dumps(arguments))
        else:
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            results = results_so_far(turns, True)
            answer, was_cut = cut(_answer(state, "\n".join(texts), prompt, results), limit)
            message = {"role": "assistant", "content": answer}
            finish, completion_tokens = ("length" if was_cut else "stop"), tokens(answer)
        return JSONResponse(
            {
                "id": f"chatcmpl-standin-{len(state.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def control(request: Request) -> Response:
        body = await received(request)
        fail = body.get("fail")
        if isinstance(fail, dict):
            state.fail_next(
                int(fail.get("count", 1)), int(fail.get("status", 429)), fail.get("retry_after")
            )
        if "invalid_json" in body:
            state.answer_invalid_json_next(int(body["invalid_json"]))
        if "tool_calls" in body:
            state.script_tool_calls(body["tool_calls"])
        return JSONResponse(
            {
                "faults": len(state.faults),
                "invalid_json": state.invalid_answers,
                "tool_calls": state.tool_script,
            }
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/_standin/control", control, methods=["POST"]),
        ]
    )


def _answer(state: StandinState, conversation: str, prompt: str, results: list[str]) -> str:
    invalid = "JSON" in conversation and state.invalid_answers > 0
    if invalid:
        state.invalid_answers -= 1
    return answer_for(conversation, prompt, invalid=invalid, tool_results=results)
