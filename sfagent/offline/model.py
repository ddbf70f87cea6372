"""`OfflineModel`: the `Model` protocol without a network, for demos, tests and the CLI.

Both build their answers with the same `Reply` vocabulary as the loopback server and turn them
into the exact payloads it would send, so a run on an offline model exercises the same parsing
and stream folding as a run over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType

from sfagent.client.accumulator import StreamAccumulator
from sfagent.exceptions import status_error_class
from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.offline.replies import Completion, RecordedRequest, Reply
from sfagent.settings import ChatRequest

__all__ = ["AsyncOfflineStream", "OfflineModel", "OfflineStream"]


class OfflineModel:
    """Base of the offline models: subclasses decide the `Reply` for each request.

    Implements all four methods of `sfagent.models.Model`. A reply's ``delay`` is slept
    (`asyncio.sleep` in the async methods) and a reply with an error ``status`` raises the
    matching `APIStatusError`, so error paths can be tested offline too.
    """

    model_name = "offline"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def reply_for(self, request: ChatRequest) -> Reply:
        """The reply to `request` (subclasses implement this)."""
        raise NotImplementedError

    def _answer(self, request: ChatRequest) -> tuple[Reply, Completion]:
        self.requests.append(request)
        reply = self.reply_for(request)
        recorded = RecordedRequest("POST", "/chat/completions", {}, request.to_body())
        return reply, Completion(reply, recorded)

    @staticmethod
    def _raise_status(reply: Reply) -> None:
        if reply.status != 200:
            body = reply.error_body
            message = body.get("message", "") if isinstance(body, dict) else str(body or "")
            code = body.get("code") if isinstance(body, dict) else None
            cls = status_error_class(reply.status)
            raise cls(message or f"scripted error {reply.status}", status_code=reply.status,
                      code=code, body=body)  # fmt: skip

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        """Answer `request` whole."""
        reply, completion = self._answer(request)
        time.sleep(reply.delay)
        self._raise_status(reply)
        return ChatCompletion.model_validate(completion.response())

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> OfflineStream:
        """Answer `request` as a stream of chunks."""
        reply, completion = self._answer(request)
        time.sleep(reply.delay)
        self._raise_status(reply)
        return OfflineStream(completion)

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        """Answer `request` whole, sleeping asynchronously."""
        reply, completion = self._answer(request)
        await asyncio.sleep(reply.delay)
        self._raise_status(reply)
        return ChatCompletion.model_validate(completion.response())

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncOfflineStream:
        """Answer `request` as an async stream of chunks."""
        reply, completion = self._answer(request)
        self._raise_status(reply)
        return AsyncOfflineStream(completion, reply.delay)


class OfflineStream:
    """A stream of chunks built in memory, folded by the same accumulator as HTTP streams."""

    def __init__(self, completion: Completion) -> None:
        self._chunks = iter(completion.chunks())
        self._accumulator = StreamAccumulator()

    def __enter__(self) -> OfflineStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        for payload in self._chunks:
            chunk = ChatCompletionChunk.model_validate(payload)
            self._accumulator.add(chunk)
            yield chunk

    def get_final_response(self) -> ChatCompletion:
        """Read the rest and return the folded response."""
        for _ in self:
            pass
        return self._accumulator.result()


class AsyncOfflineStream:
    """The async twin of `OfflineStream`."""

    def __init__(self, completion: Completion, delay: float) -> None:
        self._sync = OfflineStream(completion)
        self._delay = delay

    async def __aenter__(self) -> AsyncOfflineStream:
        await asyncio.sleep(self._delay)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        for chunk in self._sync:
            yield chunk

    async def get_final_response(self) -> ChatCompletion:
        """Read the rest and return the folded response."""
        return self._sync.get_final_response()
