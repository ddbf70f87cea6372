"""Folding a chat-completions stream into the response a non-stream call returns.

Two pieces, both pure (no I/O), shared by the sync and the async client:

- `StreamAccumulator` folds `ChatCompletionChunk`s into a `ChatCompletion`.
- `StreamState` takes the body's bytes as they arrive: it decodes them (``_sse``), parses the
  chunks, folds them in and raises error objects as typed errors: ``feed(bytes) -> chunks``,
  then ``finish()``.

How an error object is recognised and mapped lives in `sfagent.client.error_bodies`;
`error_from_stream_payload` and `stream_error_status` are exported here too.

Quirks handled (see ``docs/streaming.md``): usage repeated as a running total on every chunk
(SiliconFlow) or sent once at the end (DeepSeek, OpenAI): the last one seen wins, never a sum;
``content`` and ``reasoning_content`` both nullable and possibly in one delta; chunks with empty
``choices``; tool-call fragments keyed by ``index`` with ``id`` and ``name`` only in the first;
no ``finish_reason`` before ``[DONE]`` (taken as ``"stop"``); errors after HTTP 200.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from sfagent.client._sse import SSEDecoder, SSEEvent
from sfagent.client.error_bodies import (
    error_from_stream_payload,
    invalid_body,
    is_error_reply,
    stream_error_status,
)
from sfagent.exceptions import APIStatusError, IncompleteStreamError
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

Redact = Callable[[APIStatusError], APIStatusError]
"""Removes secrets from an error before it is raised (see `StreamState`)."""


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
        redact: Applied to every error object before it is raised (the clients pass one that
            removes the API key, should the server echo it).
    """

    __slots__ = ("_decoder", "_redact", "accumulator", "response", "trace_id")

    def __init__(
        self,
        *,
        trace_id: str | None = None,
        redact: Redact | None = None,
    ) -> None:
        self._decoder = SSEDecoder()
        self._redact = redact
        self.accumulator = StreamAccumulator()
        """The chunks folded so far (see `StreamAccumulator`)."""
        self.trace_id = trace_id
        self.response: ChatCompletion | None = None
        """The whole response, once the stream has ended (at ``[DONE]``, or by `finish`)."""

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
        events = self._decoder.decode(data)
        chunks = self._chunks(events) if events else []
        if self._decoder.done and self.response is None:
            self.response = self.accumulator.result()
        return chunks

    def finish(self) -> ChatCompletion:
        """Signal the end of the body; return the whole response.

        Raises:
            IncompleteStreamError: When ``[DONE]`` never came; ``partial`` holds the
                `ChatCompletion` received so far.
            APIStatusError: For an error object in the unterminated tail.
        """
        if self.response is not None:
            return self.response
        self._chunks(self._decoder.close())
        if not self._decoder.done:
            raise IncompleteStreamError(
                f"The stream ended before [DONE] after {self.accumulator.chunks} chunks",
                partial=self.partial(),
            )
        self.response = self.accumulator.result()
        return self.response

    def partial(self) -> ChatCompletion:
        """What was received so far, as a response with no finish reason filled in."""
        return self.accumulator.result(default_finish_reason=None)

    def _chunks(self, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
        chunks = []
        add = self.accumulator.add
        for event in events:
            if event.bare or event.event == "error":
                raise self._error(event.data)
            if event.event not in (None, "message"):
                continue  # an event type this API does not define
            data = event.data
            if not data.strip():
                continue
            try:
                chunk = ChatCompletionChunk.model_validate_json(data)
            except ValidationError as exc:
                what = "A stream event is not a chat.completion.chunk"
                raise invalid_body(what, exc, data) from None
            if is_error_reply(chunk):
                raise self._error(data)
            add(chunk)
            chunks.append(chunk)
        return chunks

    def _error(self, payload: bytes) -> APIStatusError:
        error = error_from_stream_payload(payload, trace_id=self.trace_id)
        return self._redact(error) if self._redact is not None else error
