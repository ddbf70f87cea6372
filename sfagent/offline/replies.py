"""What the loopback server answers: scripted replies and the SiliconFlow-shaped JSON they become.

Payloads are built as plain dicts, independently of `sfagent.messages`, so tests that read them
through our models check the models against the wire format rather than against themselves.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Fault", "RecordedRequest", "Reply", "ScriptedToolCall"]

Fault = Literal["drop_before_response", "drop_mid_stream", "malformed_chunk", "cut_before_done"]
"""Transport faults a reply can inject.

- ``drop_before_response``: close the connection without answering.
- ``drop_mid_stream``: send the first chunks, then close without ending the body.
- ``malformed_chunk``: send a ``data:`` line that is not JSON after the first chunk.
- ``cut_before_done``: end the body properly, but never send ``data: [DONE]``.
"""

_WORD = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call for the server to send.

    Attributes:
        name: The function name.
        arguments: A dict is sent as its JSON text, a string as is (it may be invalid JSON).
        id: The call id; a 32-hex id like SiliconFlow's when not given.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        """The arguments as the JSON string sent on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the loopback server.

    A reply is an answer (text, reasoning, tool calls) or an error status, plus optional faults.

    Attributes:
        text: The assistant's content.
        reasoning: The ``reasoning_content``, streamed before the content.
        tool_calls: Tool calls; several make a parallel call.
        finish_reason: Defaults to ``"tool_calls"`` with tool calls, else ``"stop"``.
        model: The model echoed back; the request's model when not given.
        status: An HTTP error status to answer with instead (200 means a normal answer).
        error_body: The error body for ``status``: a string is sent as plain text, anything else as
            JSON. Defaults to SiliconFlow's ``{"code", "message", "data"}`` shape.
        headers: Extra response headers, e.g. ``{"Retry-After": "2"}``.
        delay: Seconds to wait before answering.
        chunk_delay: Seconds to wait between stream chunks.
        fault: A transport fault to inject (see `Fault`).
        stream_error: An error object sent mid-stream as a bare JSON line (no ``data:``), after the
            first chunk, ending the stream; SiliconFlow did this after HTTP 200.
    """

    text: str | None = None
    reasoning: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    finish_reason: str | None = None
    model: str | None = None
    status: int = 200
    error_body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    fault: Fault | None = None
    stream_error: Mapping[str, Any] | None = None

    @classmethod
    def error(
        cls, status: int, body: object = None, *, retry_after: float | str | None = None
    ) -> Reply:
        """An error reply, optionally with a ``Retry-After`` header."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(status=status, error_body=body, headers=headers)

    def error_payload(self) -> tuple[bytes, str]:
        """The error body bytes and their content type."""
        body = self.error_body
        if body is None:
            body = {"code": 50000, "message": f"scripted error {self.status}", "data": None}
        if isinstance(body, str):
            return body.encode(), "text/plain; charset=utf-8"
        return json.dumps(body).encode(), "application/json"


@dataclass(frozen=True)
class RecordedRequest:
    """A request the loopback server received.

    Attributes:
        method: ``"GET"``, ``"POST"``...
        path: The path with any query string, e.g. ``"/v1/chat/completions"``.
        headers: Lower-cased header names to values, without ``authorization``.
        body: The JSON body parsed, the raw text if it was not JSON, or ``None`` when empty.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any

    @property
    def json(self) -> dict[str, Any]:
        """The body as a JSON object (``{}`` when it is not one)."""
        return self.body if isinstance(self.body, dict) else {}


class _Usage:
    """Running token counts, reported the SiliconFlow way (totals so far on every chunk)."""

    def __init__(self, prompt_tokens: int) -> None:
        self.prompt = prompt_tokens
        self.completion = 0
        self.reasoning = 0

    def as_dict(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        }
        if self.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning}
        return usage


def pieces(text: str) -> list[str]:
    """Split text into word-sized pieces, as a tokenizer streams it; joined they give the text."""
    return _WORD.findall(text) or ([text] if text else [])


def _argument_pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _prompt_tokens(request: RecordedRequest) -> int:
    # A rough stand-in for a tokenizer: one token per four characters of the messages.
    messages = request.json.get("messages", [])
    return max(1, len(json.dumps(messages, ensure_ascii=False)) // 4)


def _finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


def _call_id(call: ScriptedToolCall) -> str:
    return call.id if call.id is not None else uuid.uuid4().hex


class Completion:
    """Builds the payloads for one reply to one request, sharing its id, model and clock."""

    def __init__(self, reply: Reply, request: RecordedRequest) -> None:
        self.reply = reply
        self.id = uuid.uuid4().hex
        self.created = int(time.time())
        self.model = reply.model or str(request.json.get("model", "loopback-model"))
        self.usage = _Usage(_prompt_tokens(request))
        self.call_ids = [_call_id(call) for call in reply.tool_calls]

    def response(self) -> dict[str, Any]:
        """The non-stream ``chat.completion`` object."""
        reply = self.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text is not None else "",
            "reasoning_content": reply.reasoning,
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_text()},
                }
                for call, call_id in zip(reply.tool_calls, self.call_ids, strict=True)
            ]
        self.usage.reasoning = len(pieces(reply.reasoning or ""))
        self.usage.completion = self.usage.reasoning + len(pieces(reply.text or ""))
        self.usage.completion += sum(
            1 + len(_argument_pieces(c.arguments_text())) for c in reply.tool_calls
        )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
            "usage": self.usage.as_dict(),
            "system_fingerprint": "",
        }

    def chunks(self) -> Iterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of the stream, ``[DONE]`` not included."""
        reply = self.reply
        yield self._chunk({"role": "assistant", "content": "", "reasoning_content": None})
        for piece in pieces(reply.reasoning or ""):
            self.usage.reasoning += 1
            yield self._chunk({"content": None, "reasoning_content": piece}, tokens=1)
        for piece in pieces(reply.text or ""):
            yield self._chunk({"content": piece, "reasoning_content": None}, tokens=1)
        for index, (call, call_id) in enumerate(zip(reply.tool_calls, self.call_ids, strict=True)):
            head = {"index": index, "id": call_id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            yield self._chunk({"tool_calls": [head]}, tokens=1)
            for part in _argument_pieces(call.arguments_text()):
                fragment = {"index": index, "function": {"arguments": part}}
                yield self._chunk({"tool_calls": [fragment]}, tokens=1)
        last = {"content": "", "reasoning_content": None}
        yield self._chunk(last, finish_reason=_finish_reason(reply))

    def _chunk(
        self, delta: dict[str, Any], *, tokens: int = 0, finish_reason: str | None = None
    ) -> dict[str, Any]:
        self.usage.completion += tokens
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            "system_fingerprint": "",
            "usage": self.usage.as_dict(),
        }
