"""The model protocol the agent loop talks to.

A model answers a `ChatRequest`, whole (`complete`) or as a stream of chunks (`stream`), in sync
and async flavours. `sfagent.client.http_model.HTTPModel` implements it over HTTP; the offline
models in `sfagent.offline` (and `sfagent.testing`) implement it without a network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sfagent.messages import ChatCompletion, ChatCompletionChunk
    from sfagent.settings import ChatRequest

__all__ = ["AsyncModelStream", "Model", "ModelStream"]


class ModelStream(Protocol):
    """A streamed answer: a context manager and an iterator of chunks."""

    def __enter__(self) -> ModelStream: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...

    def __iter__(self) -> Iterator[ChatCompletionChunk]: ...

    def get_final_response(self) -> ChatCompletion:
        """The whole response the chunks fold into (reads the rest of the stream)."""
        ...


class AsyncModelStream(Protocol):
    """A streamed answer: an async context manager and an async iterator of chunks."""

    async def __aenter__(self) -> AsyncModelStream: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]: ...

    async def get_final_response(self) -> ChatCompletion:
        """The whole response the chunks fold into (reads the rest of the stream)."""
        ...


@runtime_checkable
class Model(Protocol):
    """What an agent needs from a model: four ways to answer one request.

    `timeout` is the time left in the run's budget (``None``: no budget); an implementation
    should not take longer.
    """

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        """Answer `request` whole."""
        ...

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> ModelStream:
        """Answer `request` as a stream."""
        ...

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        """Answer `request` whole, without blocking the event loop."""
        ...

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncModelStream:
        """Answer `request` as an async stream."""
        ...
