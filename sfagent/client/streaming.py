"""Folding a chat-completions stream into the response a non-stream call returns.

Pure (no I/O), shared by the sync and the async client: `StreamState` takes the body's bytes
as they arrive, decodes them (``_sse``), parses the chunks, folds them in with a
`StreamAccumulator` (``sfagent.client.accumulator``, exported here too) and raises error
objects as typed errors: ``feed(bytes) -> chunks``, then ``finish()``.

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

from pydantic import ValidationError

from sfagent.client._body import DEFAULT_MAX_RESPONSE_BYTES, SizedBody
from sfagent.client._sse import SSEDecoder, SSEEvent
from sfagent.client.accumulator import StreamAccumulator
from sfagent.client.error_bodies import (
    Redact,
    error_from_stream_payload,
    invalid_body,
    is_error_reply,
    stream_error_status,
)
from sfagent.exceptions import APIError, APIStatusError, IncompleteStreamError
from sfagent.messages import (
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    FunctionCallDelta,
    ToolCallDelta,
)

__all__ = [
    "StreamAccumulator",
    "StreamState",
    "error_from_stream_payload",
    "stream_error_status",
]


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
