"""Folding a chat-completions stream into the response a non-stream call returns.

Three layers, all pure (no I/O), shared by the sync and the async client:

- `StreamAccumulator` folds `ChatCompletionChunk`s into a `ChatCompletion`.
- `error_from_stream_payload` turns an error object found inside a stream into a typed error.
- `StreamState` drives both over raw bytes: ``feed(bytes) -> chunks``, then ``finish()``.

Quirks handled (see ``docs/streaming.md``): usage repeated as a running total on every chunk
(SiliconFlow) or sent once at the end (DeepSeek, OpenAI): the last one seen wins, never a sum;
``content`` and ``reasoning_content`` both nullable and possibly in one delta; chunks with empty
``choices``; tool-call fragments keyed by ``index`` with ``id`` and ``name`` only in the first;
no ``finish_reason`` before ``[DONE]`` (taken as ``"stop"``); errors after HTTP 200.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sfagent.client._sse import SSEDecoder, SSEEvent
from sfagent.client.error_bodies import ascii_code, error_from_response, parse_json_body
from sfagent.exceptions import APIResponseValidationError, APIStatusError, IncompleteStreamError
from sfagent.messages import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "StreamAccumulator",
    "StreamState",
    "error_from_stream_payload",
    "stream_error_status",
]

_MAX_BODY_CHARS = 500


class _ToolCallBuilder:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def add(self, fragment: ToolCallDelta) -> None:
        # Only the first non-empty id/type/name counts: some servers repeat them (or send "")
        # on later fragments.
        if fragment.id and not self.id:
            self.id = fragment.id
        if fragment.type and not self.type:
            self.type = fragment.type
        function = fragment.function
        if function is not None:
            if function.name and not self.name:
                self.name = function.name
            if function.arguments:
                self.arguments.append(function.arguments)

    def build(self, position: int) -> ToolCall:
        function = FunctionCall(name=self.name or "", arguments="".join(self.arguments))
        # A call that never got an id still needs one for its tool message to answer.
        return ToolCall(id=self.id or f"call_{position}", function=function)


class _ChoiceBuilder:
    __slots__ = ("by_id", "calls", "content", "finish_reason", "last_call", "reasoning")

    def __init__(self) -> None:
        self.content: list[str] | None = None
        self.reasoning: list[str] = []
        self.calls: dict[int, _ToolCallBuilder] = {}
        self.by_id: dict[str, int] = {}
        self.last_call: int | None = None
        self.finish_reason: str | None = None

    def add_tool_calls(self, fragments: list[ToolCallDelta]) -> None:
        several = len(fragments) > 1
        for position, fragment in enumerate(fragments):
            key = self._key(fragment, position if several else None)
            builder = self.calls.get(key)
            if builder is None:
                builder = self.calls[key] = _ToolCallBuilder()
            builder.add(fragment)
            if fragment.id and fragment.id not in self.by_id:
                self.by_id[fragment.id] = key
            self.last_call = key

    def _key(self, fragment: ToolCallDelta, position: int | None) -> int:
        if fragment.index is not None:
            return fragment.index
        # No index (some OpenAI-compatible servers): the id says which call, else the
        # fragment's place in a multi-call delta, else it continues the latest call.
        if fragment.id:
            known = self.by_id.get(fragment.id)
            return known if known is not None else _next_key(self.calls)
        if position is not None:
            return position
        return self.last_call if self.last_call is not None else 0

    def build(self, index: int) -> Choice:
        calls = [b.build(i) for i, (_, b) in enumerate(sorted(self.calls.items()))]
        message = AssistantMessage(
            content="".join(self.content) if self.content is not None else None,
            reasoning_content="".join(self.reasoning) or None,
            tool_calls=calls or None,
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


def _next_key(calls: dict[int, _ToolCallBuilder]) -> int:
    return max(calls) + 1 if calls else 0


class StreamAccumulator:
    """Fold stream chunks into exactly the `ChatCompletion` a non-stream call returns.

    Example:
        >>> acc = StreamAccumulator()
        >>> for chunk in chunks:  # doctest: +SKIP
        ...     acc.add(chunk)
        >>> response = acc.result()  # doctest: +SKIP
    """

    __slots__ = ("_choices", "_created", "_fingerprint", "_id", "_model", "_usage", "chunks")

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceBuilder] = {}
        self._id = ""
        self._model = ""
        self._created = 0
        self._fingerprint: str | None = None
        self._usage: Usage | None = None
        self.chunks = 0
        """How many chunks were added."""

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk in."""
        self.chunks += 1
        if not self._id:
            self._id, self._model, self._created = chunk.id, chunk.model, chunk.created
        if chunk.system_fingerprint is not None:
            self._fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self._usage = chunk.usage  # a running total (SiliconFlow) or the final count
        for choice in chunk.choices:
            builder = self._choices.get(choice.index)
            if builder is None:
                builder = self._choices[choice.index] = _ChoiceBuilder()
            delta = choice.delta
            if delta.content is not None:
                if builder.content is None:
                    builder.content = [delta.content]
                else:
                    builder.content.append(delta.content)
            if delta.reasoning_content:
                builder.reasoning.append(delta.reasoning_content)
            if delta.tool_calls:
                builder.add_tool_calls(delta.tool_calls)
            if choice.finish_reason is not None:
                builder.finish_reason = choice.finish_reason

    def result(self, *, default_finish_reason: str | None = "stop") -> ChatCompletion:
        """Return the response folded so far.

        Args:
            default_finish_reason: Used for a choice that never got one (a stream that ended
                with ``[DONE]`` but no ``finish_reason`` stopped normally); ``None`` for a
                snapshot of an unfinished stream.
        """
        choices = []
        for index in sorted(self._choices):
            choice = self._choices[index].build(index)
            if choice.finish_reason is None:
                choice.finish_reason = default_finish_reason
            choices.append(choice)
        return ChatCompletion(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self._usage,
            system_fingerprint=self._fingerprint,
        )


# --- errors inside a stream ------------------------------------------------------------------

_OPENAI_TYPES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "overloaded_error": 503,
}


def stream_error_status(payload: object) -> int:
    """Infer the HTTP status an error object found inside a stream stands for.

    A mid-stream error arrives after HTTP 200, so the status comes from the payload: a
    ``status``/``status_code`` field when present; SiliconFlow codes 20000-20999 are
    validation errors (400), 50505 is overload (503); OpenAI-style ``type``/``code`` strings
    map to their statuses; everything else (including SiliconFlow's 60000) is 500.
    """
    if not isinstance(payload, dict):
        return 500
    inner = payload.get("error")
    source: dict[str, Any] = inner if isinstance(inner, dict) else payload
    for key in ("status", "status_code"):
        status = source.get(key)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 600:
            return status
    code = source.get("code")
    if isinstance(code, str):
        code = ascii_code(code)
    if isinstance(code, int) and not isinstance(code, bool):
        if 20000 <= code < 21000:
            return 400
        if code == 50505:
            return 503
        if 400 <= code < 600:
            return code
        return 500
    for key in ("type", "code"):
        status = _OPENAI_TYPES.get(str(source.get(key)))
        if status is not None:
            return status
    return 500


def error_from_stream_payload(
    payload: bytes | str | object, *, trace_id: str | None = None
) -> APIStatusError:
    """Turn an error object found inside a stream into the typed error (not raised).

    Args:
        payload: The raw bytes/text of the event, or the parsed JSON.
        trace_id: The ``x-siliconcloud-trace-id`` header of the (HTTP 200) response.

    Returns:
        The `APIStatusError` subclass for the status `stream_error_status` infers.
    """
    parsed = parse_json_body(payload)
    return error_from_response(stream_error_status(parsed), parsed, trace_id=trace_id)


def _is_error(chunk: ChatCompletionChunk) -> bool:
    extra = chunk.__pydantic_extra__
    if not extra:
        return False
    if isinstance(extra.get("error"), dict):
        return True
    # SiliconFlow's {"code", "message", "data"} shape: no id, no choices.
    return "code" in extra and "message" in extra and not chunk.choices and not chunk.id


# --- the stream driver core ------------------------------------------------------------------


class StreamState:
    """Decode, parse and fold one stream; the sync and async clients only move bytes.

    Example:
        >>> state = StreamState(trace_id=response.headers.get("x-siliconcloud-trace-id"))
        >>> for data in response.iter_bytes():  # doctest: +SKIP
        ...     for chunk in state.feed(data):
        ...         ...  # hand the chunk to the caller
        >>> completion = state.finish()  # doctest: +SKIP

    Args:
        trace_id: The response's trace id header, attached to errors.
    """

    __slots__ = ("_decoder", "accumulator", "trace_id")

    def __init__(self, *, trace_id: str | None = None) -> None:
        self._decoder = SSEDecoder()
        self.accumulator = StreamAccumulator()
        """The chunks folded so far (see `StreamAccumulator`)."""
        self.trace_id = trace_id

    @property
    def done(self) -> bool:
        """True once ``[DONE]`` has arrived."""
        return self._decoder.done

    @property
    def received(self) -> bool:
        """True once any chunk has been parsed (a stream is retried only before that)."""
        return self.accumulator.chunks > 0

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Take the next bytes of the body; return the chunks they complete, folded in.

        Raises:
            APIStatusError: A subclass for an error object in the stream (after HTTP 200).
            APIResponseValidationError: For an event whose data is not a chunk.
        """
        events = self._decoder.feed(data)
        return self._chunks(events) if events else []

    def finish(self) -> ChatCompletion:
        """Signal the end of the body; return the whole response.

        Raises:
            IncompleteStreamError: When ``[DONE]`` never came; ``partial`` holds the
                `ChatCompletion` received so far.
            APIStatusError: For an error object in the unterminated tail.
        """
        self._chunks(self._decoder.close())
        if not self._decoder.done:
            partial = self.accumulator.result(default_finish_reason=None)
            raise IncompleteStreamError(
                f"The stream ended before [DONE] after {self.accumulator.chunks} chunks",
                partial=partial,
            )
        return self.accumulator.result()

    def _chunks(self, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
        chunks = []
        add = self.accumulator.add
        for event in events:
            if event.bare or event.event == "error":
                raise error_from_stream_payload(event.data, trace_id=self.trace_id)
            if event.event not in (None, "message"):
                continue  # an event type this API does not define
            data = event.data
            if not data.strip():
                continue
            chunk = self._parse(data)
            if _is_error(chunk):
                raise error_from_stream_payload(data, trace_id=self.trace_id)
            add(chunk)
            chunks.append(chunk)
        return chunks

    def _parse(self, data: bytes) -> ChatCompletionChunk:
        try:
            return ChatCompletionChunk.model_validate_json(data)
        except ValidationError as exc:
            text = data[:_MAX_BODY_CHARS].decode("utf-8", errors="replace")
            first = exc.errors()[0]
            raise APIResponseValidationError(
                f"A stream event is not a chat.completion.chunk: {first['msg']} at "
                f"{'.'.join(str(p) for p in first['loc']) or 'top level'}",
                body=text,
            ) from None
