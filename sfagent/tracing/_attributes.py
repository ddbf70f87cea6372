"""What each span says, in the GenAI semantic conventions' names (pure: no OpenTelemetry).

Requests, responses, tool calls and their outcomes become attribute dicts here; message
content becomes the conventions' JSON (``gen_ai.input.messages``, ``gen_ai.output.messages``),
built only when the user opted in to content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sfagent.exceptions import APIStatusError, StopRun
from sfagent.messages import ChatCompletion, MessageBase
from sfagent.run._tool_calls import CallOutcome, PreparedCall, render_outcome
from sfagent.settings import ChatRequest
from sfagent.usage import RunUsage

Value = str | bool | int | float | Sequence[str]
Attributes = dict[str, Value]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
AGENT_NAME = "gen_ai.agent.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE = "error.type"
TRACE_ID = "siliconflow.trace_id"
"""SiliconFlow's ``x-siliconcloud-trace-id`` of the answering try (quote it to their support)."""
# sfagent's own names, built from a prefix: a dotted "sfagent.x" literal reads as an import
# to tests/test_layout.py.
_OWN = "sfagent."
RETRIES = _OWN + "request.retries"
"""How often the client retried the request (its tries are `RETRY_EVENT` span events)."""
RETRY_EVENT = _OWN + "request.retry"
RETRY_ATTEMPT = _OWN + "retry.attempt"
RETRY_DELAY = _OWN + "retry.delay_s"
RUN_REQUESTS = _OWN + "run.requests"
RUN_TOOL_CALLS = _OWN + "run.tool_calls"

# ModelSettings field -> the conventions' request attribute.
_REQUEST_SETTINGS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "n": "gen_ai.request.choice.count",
}


def run_attributes(provider: str, model: str, agent_name: str | None) -> Attributes:
    """The ``invoke_agent`` span's attributes at its start."""
    attributes: Attributes = {OPERATION: "invoke_agent", PROVIDER: provider, REQUEST_MODEL: model}
    if agent_name:
        attributes[AGENT_NAME] = agent_name
    return attributes


def run_usage_attributes(usage: RunUsage) -> Attributes:
    """A run's totals, for the ``invoke_agent`` span's end."""
    attributes: Attributes = {
        INPUT_TOKENS: usage.prompt_tokens,
        OUTPUT_TOKENS: usage.completion_tokens,
        RUN_REQUESTS: usage.requests,
        RUN_TOOL_CALLS: usage.tool_calls,
    }
    if usage.reasoning_tokens:
        attributes[REASONING_TOKENS] = usage.reasoning_tokens
    return attributes


def request_attributes(request: ChatRequest, provider: str) -> Attributes:
    """The ``chat`` span's attributes at its start: what was asked for, and how."""
    attributes: Attributes = {
        OPERATION: "chat",
        PROVIDER: provider,
        REQUEST_MODEL: request.model,
        "gen_ai.request.stream": request.stream,
    }
    settings = request.settings
    if settings is not None:
        for field, name in _REQUEST_SETTINGS.items():
            value = getattr(settings, field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        stop = settings.stop
        if stop:
            attributes["gen_ai.request.stop_sequences"] = (
                (stop,) if isinstance(stop, str) else tuple(stop)
            )
    return attributes


def response_attributes(response: ChatCompletion) -> Attributes:
    """The ``chat`` span's attributes from the answer: model, id, finish reasons, usage."""
    attributes: Attributes = {}
    if response.model:
        attributes["gen_ai.response.model"] = response.model
    if response.id:
        attributes["gen_ai.response.id"] = response.id
    reasons = tuple(c.finish_reason for c in response.choices if c.finish_reason)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    usage = response.usage
    if usage is not None:
        attributes[INPUT_TOKENS] = usage.prompt_tokens
        attributes[OUTPUT_TOKENS] = usage.completion_tokens
        if usage.reasoning_tokens:
            attributes[REASONING_TOKENS] = usage.reasoning_tokens
        if usage.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    return attributes


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name."""
    return type(error).__qualname__


def error_attributes(error: BaseException) -> Attributes:
    """A failed request's attributes: its type, status and SiliconFlow trace id."""
    attributes: Attributes = {ERROR_TYPE: error_type(error)}
    if isinstance(error, APIStatusError):
        attributes["http.response.status_code"] = error.status_code
    trace_id = getattr(error, "trace_id", None)
    if isinstance(trace_id, str) and trace_id:
        attributes[TRACE_ID] = trace_id
    return attributes


def tool_attributes(item: PreparedCall) -> Attributes:
    """The ``execute_tool`` span's attributes at its start."""
    call = item.call
    attributes: Attributes = {
        OPERATION: "execute_tool",
        "gen_ai.tool.name": call.function.name,
        "gen_ai.tool.call.id": call.id,
        "gen_ai.tool.type": "function",
    }
    tool = item.tool
    if tool is not None and tool.description:
        attributes["gen_ai.tool.description"] = tool.description
    return attributes


def outcome_error(outcome: CallOutcome | None) -> str | None:
    """``error.type`` of a call's outcome: the exception's class, ``timeout`` or ``denied``;
    ``None`` when it returned (or stopped the run on purpose)."""
    if outcome is None:
        return None
    if outcome.timed_out:
        return "timeout"
    if outcome.denied:
        return "denied"
    raised = outcome.exception
    if raised is None or isinstance(raised, StopRun):
        return None
    return error_type(raised)


def tool_result(item: PreparedCall, outcome: CallOutcome | None) -> str:
    """The text the model is sent for the call (``gen_ai.tool.call.result``)."""
    return render_outcome(item, outcome)[0]


# --- content (opt-in) ----------------------------------------------------------------------


def input_messages(request: ChatRequest) -> str:
    """``gen_ai.input.messages``: the request's conversation as the conventions' JSON."""
    out = []
    for message in request.messages:
        wire = message.to_wire() if isinstance(message, MessageBase) else message
        out.append({"role": str(wire.get("role", "")), "parts": _parts(wire)})
    return _dumps(out)


def output_messages(response: ChatCompletion) -> str:
    """``gen_ai.output.messages``: each choice's message, with its finish reason."""
    out = []
    for choice in response.choices:
        wire = choice.message.to_wire()
        out.append(
            {
                "role": "assistant",
                "parts": _parts(wire),
                "finish_reason": choice.finish_reason or "",
            }
        )
    return _dumps(out)


def _parts(wire: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    reasoning = wire.get("reasoning_content")
    if reasoning:
        parts.append({"type": "reasoning", "content": reasoning})
    content = wire.get("content")
    if wire.get("role") == "tool":
        parts.append(
            {"type": "tool_call_response", "id": wire.get("tool_call_id"), "response": content}
        )
        return parts
    if isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        parts.extend(_content_part(part) for part in content if isinstance(part, Mapping))
    for call in wire.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": _arguments(function.get("arguments")),
            }
        )
    return parts


def _content_part(part: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(part.get("type", ""))
    if kind == "text":
        return {"type": "text", "content": part.get("text", "")}
    # Images, audio and video are named, not copied: a data URL can be megabytes.
    return {"type": kind}


def _arguments(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
