"""The model protocol the agent loop talks to, and its HTTP implementation.

A model answers a `ChatRequest`, whole (`complete`) or as a stream of chunks (`stream`), in sync
and async flavours. `HTTPModel` implements it over `SiliconFlow`/`AsyncSiliconFlow` (or any
OpenAI-compatible endpoint); the offline models in `sfagent.testing` implement it without HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.settings import ChatRequest

if TYPE_CHECKING:
    from sfagent._retry import RetryPolicy
    from sfagent.client import AsyncSiliconFlow, SiliconFlow

__all__ = ["AsyncModelStream", "HTTPModel", "Model", "ModelStream"]


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


_UNSET: Any = object()


class HTTPModel:
    """`Model` over the HTTP clients; each client is made on first use, or given.

    Args:
        client: A `SiliconFlow` client for the sync drivers (made from the settings below
            when not given).
        async_client: An `AsyncSiliconFlow` client for the async drivers (likewise).
        api_key: Key for clients made here; defaults to ``SILICONFLOW_API_KEY``.
        base_url: Base URL for clients made here; defaults to ``SILICONFLOW_BASE_URL`` or
            SiliconFlow's ``.cn`` site.
        retry: Retry policy for clients made here (the client default when not given).
    """

    def __init__(
        self,
        *,
        client: SiliconFlow | None = None,
        async_client: AsyncSiliconFlow | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = _UNSET,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._owned: list[Any] = []
        self._options: dict[str, Any] = {"api_key": api_key, "base_url": base_url}
        if retry is not _UNSET:
            self._options["retry"] = retry
        if client is None and async_client is None:
            self._check_key()

    def __repr__(self) -> str:
        return "HTTPModel()"

    def _check_key(self) -> None:
        from sfagent._client_core import _resolve_api_key

        _resolve_api_key(self._options["api_key"])  # fail now, not at the first request

    @property
    def client(self) -> SiliconFlow:
        """The sync client (made on first use)."""
        if self._client is None:
            from sfagent.client import SiliconFlow

            self._client = SiliconFlow(**self._options)
            self._owned.append(self._client)
        return self._client

    @property
    def async_client(self) -> AsyncSiliconFlow:
        """The async client (made on first use)."""
        if self._async_client is None:
            from sfagent.client import AsyncSiliconFlow

            self._async_client = AsyncSiliconFlow(**self._options)
            self._owned.append(self._async_client)
        return self._async_client

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        """Answer `request` whole (see `SiliconFlow.complete`)."""
        return self.client.complete(request, timeout=_http_timeout(timeout))

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> ModelStream:
        """Answer `request` as a stream (see `SiliconFlow.stream`)."""
        return self.client.stream(request, timeout=_http_timeout(timeout))

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        """Answer `request` whole (see `AsyncSiliconFlow.complete`)."""
        return await self.async_client.complete(request, timeout=_http_timeout(timeout))

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncModelStream:
        """Answer `request` as a stream (see `AsyncSiliconFlow.stream`)."""
        return self.async_client.stream(request, timeout=_http_timeout(timeout))

    def close(self) -> None:
        """Close the sync client if it was made here."""
        for owned in list(self._owned):
            close = owned.close()
            if close is None:
                self._owned.remove(owned)
            else:  # an async client's close is a coroutine: leave it to aclose()
                close.close()

    async def aclose(self) -> None:
        """Close every client made here."""
        for owned in self._owned:
            result = owned.close()
            if result is not None:
                await result
        self._owned.clear()


def _http_timeout(budget: float | None) -> Any:
    if budget is None:
        return None
    import httpx

    # The run's remaining budget bounds every phase of this request.
    return httpx.Timeout(budget)
