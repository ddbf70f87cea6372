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
no ``finish_reason`` before ``[DONE]`` (taken as ``"stop"``); errors after HTTP 200; two calls
that share an id and carry no index (kept apart); a server that ignores ``stream: true`` and
answers one JSON completion (taken as a one-chunk stream).

Bounded: given ``max_response_bytes``, the text, reasoning and tool-call arguments a stream
accumulates (and any one unfinished line or event, see ``_sse``) raise `ResponseTooLargeError`
past it; small pieces are joined as they come, so memory follows the text, not the chunk count.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from sfagent.client._body import DEFAULT_MAX_RESPONSE_BYTES, SizedBody, too_large
from sfagent.client._sse import SSEDecoder, SSEEvent
from sfagent.client.error_bodies import (
    Redact,
    error_from_stream_payload,
    invalid_body,
    is_error_reply,
    stream_error_status,
)
from sfagent.exceptions import APIError, APIStatusError, IncompleteStreamError
from sfagent.messages import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FunctionCall,
    FunctionCallDelta,
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


_BUILDER_COST = 256
"""What a new choice or tool call is counted as against the cap, beside its text: a stream of
endless empty calls must reach the cap too."""


class _Text:
    """Text that arrives in many small pieces, joined every 256 so that each costs its size."""

    __slots__ = ("_blocks", "_tail")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._tail: list[str] = []

    def add(self, piece: str) -> None:
        tail = self._tail
        tail.append(piece)
        if len(tail) >= 256:
            self._blocks.append("".join(tail))
            tail.clear()

    def value(self) -> str:
        return "".join(self._blocks + self._tail) if self._blocks else "".join(self._tail)


class _ToolCallBuilder:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments = _Text()

    def add(self, fragment: ToolCallDelta) -> int:
        """Take one fragment; returns the characters it added."""
        # Only the first non-empty id/type/name counts: some servers repeat them (or send "")
        # on later fragments.
        added = 0
        if fragment.id and not self.id:
            self.id = fragment.id
            added += len(fragment.id)
        if fragment.type and not self.type:
            self.type = fragment.type
            added += len(fragment.type)
        function = fragment.function
        if function is not None:
            if function.name and not self.name:
                self.name = function.name
                added += len(function.name)
            if function.arguments:
                self.arguments.add(function.arguments)
                added += len(function.arguments)
        return added

    def is_whole(self) -> bool:
        """Whether the arguments so far are one complete JSON value."""
        text = self.arguments.value().rstrip()
        if text[-1:] not in ("}", "]"):
            return False
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return False
        return True

    def build(self, position: int) -> ToolCall:
        function = FunctionCall(name=self.name or "", arguments=self.arguments.value())
        # A call that never got an id still needs one for its tool message to answer.
        return ToolCall(id=self.id or f"call_{position}", function=function)


class _ChoiceBuilder:
    __slots__ = (
        "by_id",
        "calls",
        "content",
        "finish_reason",
        "last_call",
        "next_key",
        "reasoning",
    )

    def __init__(self) -> None:
        self.content: _Text | None = None
        self.reasoning = _Text()
        self.calls: dict[int, _ToolCallBuilder] = {}
        self.by_id: dict[str, int] = {}
        self.last_call: int | None = None
        self.next_key = 0  # above every key used so far
        self.finish_reason: str | None = None

    def add_tool_calls(self, fragments: list[ToolCallDelta]) -> int:
        """Fold a delta's tool-call fragments in; returns what they cost against the cap."""
        several = len(fragments) > 1
        added = 0
        for position, fragment in enumerate(fragments):
            key = self._key(fragment, position if several else None)
            builder = self.calls.get(key)
            if builder is None:
                builder = self.calls[key] = _ToolCallBuilder()
                added += _BUILDER_COST
                if key >= self.next_key:
                    self.next_key = key + 1
            added += builder.add(fragment)
            if fragment.id:
                self.by_id[fragment.id] = key  # the latest call with this id
            self.last_call = key
        return added

    def _key(self, fragment: ToolCallDelta, position: int | None) -> int:
        if fragment.index is not None:
            return fragment.index
        # No index (some OpenAI-compatible servers): the id says which call, else the
        # fragment's place in a multi-call delta, else it continues the latest call. Some
        # servers (llama.cpp) repeat the id in every fragment of a call, others reuse one id
        # for two calls: a fragment that opens a JSON value after the call's arguments
        # already form a whole one starts a new call.
        if fragment.id:
            known = self.by_id.get(fragment.id)
            if known is None or self._starts_another(known, fragment):
                return self.next_key
            return known
        if position is not None:
            return position
        if self.last_call is None:
            return 0
        if self._starts_another(self.last_call, fragment):
            return self.next_key
        return self.last_call

    def _starts_another(self, key: int, fragment: ToolCallDelta) -> bool:
        function = fragment.function
        arguments = function.arguments if function is not None else None
        if not arguments or arguments.lstrip()[:1] not in ("{", "["):
            return False
        return self.calls[key].is_whole()

    def build(self, index: int) -> Choice:
        calls = [b.build(i) for i, (_, b) in enumerate(sorted(self.calls.items()))]
        message = AssistantMessage(
            content=self.content.value() if self.content is not None else None,
            reasoning_content=self.reasoning.value() or None,
            tool_calls=calls or None,
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


class StreamAccumulator:
    """Fold stream chunks into exactly the `ChatCompletion` a non-stream call returns.

    Example:
        >>> acc = StreamAccumulator()
        >>> for chunk in chunks:  # doctest: +SKIP
        ...     acc.add(chunk)
        >>> response = acc.result()  # doctest: +SKIP

    Args:
        max_response_bytes: A cap on what is accumulated (text, reasoning, tool-call ids,
            names and arguments, in characters, plus a small fixed cost per choice and call);
            ``None`` for none.
    """

    __slots__ = (
        "_choices",
        "_created",
        "_fingerprint",
        "_id",
        "_limit",
        "_model",
        "_usage",
        "chunks",
        "size",
    )

    def __init__(self, *, max_response_bytes: int | None = None) -> None:
        self._limit = max_response_bytes
        self.size = 0
        """What has been accumulated so far, as counted against ``max_response_bytes``."""
        self._choices: dict[int, _ChoiceBuilder] = {}
        self._id = ""
        self._model = ""
        self._created = 0
        self._fingerprint: str | None = None
        self._usage: Usage | None = None
        self.chunks = 0
        """How many chunks were added."""

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk in.

        Raises:
            ResponseTooLargeError: When the response passes ``max_response_bytes``.
        """
        self.chunks += 1
        if not self._id:
            self._id, self._model, self._created = chunk.id, chunk.model, chunk.created
        if chunk.system_fingerprint is not None:
            self._fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self._usage = chunk.usage  # a running total (SiliconFlow) or the final count
        size = self.size
        for choice in chunk.choices:
            builder = self._choices.get(choice.index)
            if builder is None:
                builder = self._choices[choice.index] = _ChoiceBuilder()
                size += _BUILDER_COST
            delta = choice.delta
            content = delta.content
            if content is not None:
                if builder.content is None:
                    builder.content = _Text()
                if content:
                    builder.content.add(content)
                    size += len(content)
            if delta.reasoning_content:
                builder.reasoning.add(delta.reasoning_content)
                size += len(delta.reasoning_content)
            if delta.tool_calls:
                size += builder.add_tool_calls(delta.tool_calls)
            if choice.finish_reason is not None:
                builder.finish_reason = choice.finish_reason
        self.size = size
        if self._limit is not None and size > self._limit:
            self._choices = {}  # let the memory go: the stream cannot be finished
            what = "The streamed answer (its text, reasoning and tool-call arguments)"
            raise too_large(what, self._limit)

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
        redact: Applied to the trace id and to the raw text of every error object or bad event
            before it is read or cut (the clients pass one that removes the API key, should the
            server echo it).
        content_type: The response's ``Content-Type``. When it is JSON and the body starts with
            ``{``, the server ignored ``stream: true``: the body is read whole as one
            completion, which `end` hands out as a single chunk.
        max_response_bytes: The cap on what the stream accumulates and on any one unfinished
            line or event (a JSON body: on its size); ``None`` for none.
    """

    __slots__ = (
        "_decoder",
        "_limit",
        "_maybe_plain",
        "_plain",
        "_redact",
        "accumulator",
        "response",
        "trace_id",
    )

    def __init__(
        self,
        *,
        trace_id: str | None = None,
        redact: Redact | None = None,
        content_type: str | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._decoder = SSEDecoder(max_buffer_bytes=max_response_bytes)
        self._redact = redact
        self._limit = max_response_bytes
        self._maybe_plain = _is_json_type(content_type)  # until the first byte tells
        self._plain: SizedBody | None = None  # the body, when it is one JSON completion
        self.accumulator = StreamAccumulator(max_response_bytes=max_response_bytes)
        """The chunks folded so far (see `StreamAccumulator`)."""
        self.trace_id = redact(trace_id) if redact is not None and trace_id else trace_id
        self.response: ChatCompletion | None = None
        """The whole response, once the stream has ended (at ``[DONE]``, or by `finish`)."""

    @property
    def done(self) -> bool:
        """True once ``[DONE]`` has arrived (for a plain JSON body: once it was read)."""
        if self._plain is not None:
            return self.response is not None
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
            ResponseTooLargeError: When the stream passes ``max_response_bytes``.
        """
        if self._maybe_plain or self._plain is not None:
            data = self._take_plain(data)
            if not data:
                return []
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
            APIStatusError: For an error object in the unterminated tail (or a JSON body).
            APIResponseValidationError: For a JSON body that is not a chat completion.
        """
        self.end()
        assert self.response is not None  # end() raises otherwise
        return self.response

    def end(self) -> list[ChatCompletionChunk]:
        """Signal the end of the body; return the chunks it completes, folded in.

        That is no chunk for a stream, and the whole answer as one chunk for a plain JSON
        completion (a server that ignored ``stream: true``). Raises as `finish` does.
        """
        if self.response is not None:
            return []
        if self._plain is not None:
            return [self._whole(self._plain.value())]
        self._chunks(self._decoder.close())
        if not self._decoder.done:
            raise IncompleteStreamError(
                f"The stream ended before [DONE] after {self.accumulator.chunks} chunks",
                partial=self.partial(),
            )
        self.response = self.accumulator.result()
        return []

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
            chunk = self._parse(data)
            if is_error_reply(chunk):
                raise self._error(data)
            add(chunk)
            chunks.append(chunk)
        return chunks

    def _parse(self, data: bytes) -> ChatCompletionChunk:
        try:
            return ChatCompletionChunk.model_validate_json(data)
        except ValidationError as exc:
            what = "A stream event is not a chat.completion.chunk"
            error = invalid_body(what, exc, data, redact=self._redact)
        raise error  # outside the handler: the parser's error, quoting the event, is no context

    def _take_plain(self, data: bytes) -> bytes:
        """Keep a plain JSON body whole; returns what is left for the SSE decoder."""
        if self._plain is None:
            data = data.lstrip()
            if not data:
                return data
            self._maybe_plain = False
            if data[:1] != b"{":
                return data  # an event stream after all, whatever its content type said
            self._plain = SizedBody(self._limit)
        self._plain.add(data)
        return b""

    def _whole(self, body: bytes) -> ChatCompletionChunk:
        """A plain JSON body: the completion, or the error it carries."""
        try:
            completion = ChatCompletion.model_validate_json(body)
        except ValidationError as exc:
            what = "The response (JSON, not an event stream) is not a chat completion"
            error: APIError = invalid_body(what, exc, body, redact=self._redact)
        else:
            if not is_error_reply(completion):
                chunk = _as_chunk(completion)
                self.accumulator.add(chunk)
                self.response = completion
                return chunk
            error = self._error(body)
        raise error  # outside the handler, as in `_parse`

    def _error(self, payload: bytes) -> APIStatusError:
        return error_from_stream_payload(payload, trace_id=self.trace_id, redact=self._redact)


def _is_json_type(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _as_chunk(completion: ChatCompletion) -> ChatCompletionChunk:
    """A whole completion as the one chunk that folds back into it."""
    choices = []
    for choice in completion.choices:
        message = choice.message
        calls = [
            ToolCallDelta(
                index=i,
                id=call.id,
                type=call.type,
                function=FunctionCallDelta(
                    name=call.function.name, arguments=call.function.arguments
                ),
            )
            for i, call in enumerate(message.tool_calls or ())
        ]
        delta = ChoiceDelta(
            role=message.role,
            content=message.content,
            reasoning_content=message.reasoning_content,
            tool_calls=calls or None,
        )
        choices.append(
            ChunkChoice(index=choice.index, delta=delta, finish_reason=choice.finish_reason)
        )
    return ChatCompletionChunk(
        id=completion.id,
        created=completion.created,
        model=completion.model,
        choices=choices,
        usage=completion.usage,
        system_fingerprint=completion.system_fingerprint,
    )
