"""The stream objects `SiliconFlow.stream` and `AsyncSiliconFlow.stream` return.

Everything they decide is in `StreamState` (bytes in, chunks and the whole response out); here
they only pull bytes from httpx and hand out the chunks each read completed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType

import httpx

from sfagent.client.config import TRACE_ID_HEADER
from sfagent.client.streaming import Redact, StreamState
from sfagent.exceptions import (
    APIError,
    APITimeoutError,
    IncompleteStreamError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream", "is_timeout"]

Opened = tuple[httpx.Response, Iterator[bytes], bytes]
"""A stream's response, the iterator of the rest of its body, and its first bytes."""
AsyncOpened = tuple[httpx.Response, AsyncIterator[bytes], bytes]


class _StreamBase:
    """State both stream classes share; the subclasses only read bytes."""

    def __init__(self, redact: Redact) -> None:
        self._response: httpx.Response | None = None
        self._state: StreamState | None = None
        self._ready: Iterator[ChatCompletionChunk] = iter(())  # completed by the last read
        self._closed = False
        self._redact = redact

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "unsent"
        return f"<{type(self).__name__} {state}>"

    @property
    def response(self) -> ChatCompletion | None:
        """The whole response once the stream has ended with ``[DONE]``, else ``None``."""
        return self._state.response if self._state is not None else None

    @property
    def trace_id(self) -> str | None:
        """The ``x-siliconcloud-trace-id`` of the response, once it has arrived."""
        return self._state.trace_id if self._state is not None else None

    def _start(self, response: httpx.Response, first: bytes) -> StreamState:
        self._response = response
        state = self._state = StreamState(
            trace_id=response.headers.get(TRACE_ID_HEADER), redact=self._redact
        )
        self._take(state, first)
        return state

    def _take(self, state: StreamState, data: bytes | None) -> None:
        """Hand one read to the state; ``None`` is the end of the body."""
        if data is None:
            state.finish()  # raises IncompleteStreamError unless [DONE] came
        else:
            self._ready = iter(state.feed(data))


class ChatStream(_StreamBase):
    """A streamed chat completion: a context manager and an iterator of `ChatCompletionChunk`.

    ``get_final_response()`` returns the same `ChatCompletion` a non-stream call would have.
    Use it in a ``with`` block (or iterate it to the end) so the connection is released.

    Args:
        opener: Sends the request (with the client's retries) and reads the first bytes.
        redact: Removes the key from an error object found in the stream.
    """

    def __init__(self, opener: Callable[[], Opened], redact: Redact) -> None:
        super().__init__(redact)
        self._send = opener
        self._bytes: Iterator[bytes] | None = None

    def get_final_response(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole response."""
        for _ in self:
            pass
        return _final(self._state)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopIteration
        try:
            state = self._state if self._state is not None else self._open()
            while (chunk := next(self._ready, None)) is None:
                if state.response is not None:
                    self._drain()
                    raise StopIteration
                self._take(state, self._read(state))
            return chunk
        except BaseException:
            self.close()
            raise

    def _open(self) -> StreamState:
        response, chunks, first = self._send()
        self._bytes = chunks
        return self._start(response, first)

    def _read(self, state: StreamState) -> bytes | None:
        assert self._bytes is not None
        try:
            return next(self._bytes, None)
        except httpx.TransportError as exc:
            raise _broken_stream(exc, state) from exc

    def _drain(self) -> None:
        # Read past [DONE] to the end of the body: httpx drops a connection whose response was
        # closed unread, and the next request would pay for a new TCP and TLS handshake.
        if self._bytes is not None:
            with contextlib.suppress(httpx.TransportError):
                for _ in self._bytes:
                    pass

    def close(self) -> None:
        """Release the connection; the stream cannot be read further."""
        self._closed = True
        if self._bytes is not None:
            getattr(self._bytes, "close", lambda: None)()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> ChatStream:
        if self._state is None and not self._closed:
            try:
                self._open()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatStream(_StreamBase):
    """A streamed chat completion: an async context manager and async iterator of chunks.

    ``await get_final_response()`` returns the same `ChatCompletion` a non-stream call would.

    Args:
        opener: Sends the request (with the client's retries) and reads the first bytes.
        redact: Removes the key from an error object found in the stream.
    """

    def __init__(self, opener: Callable[[], Awaitable[AsyncOpened]], redact: Redact) -> None:
        super().__init__(redact)
        self._send = opener
        self._bytes: AsyncIterator[bytes] | None = None

    async def get_final_response(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole response."""
        async for _ in self:
            pass
        return _final(self._state)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopAsyncIteration
        try:
            state = self._state if self._state is not None else await self._open()
            while (chunk := next(self._ready, None)) is None:
                if state.response is not None:
                    await self._drain()
                    raise StopAsyncIteration
                self._take(state, await self._read(state))
            return chunk
        except BaseException:
            await self.aclose()
            raise

    async def _open(self) -> StreamState:
        response, chunks, first = await self._send()
        self._bytes = chunks
        return self._start(response, first)

    async def _read(self, state: StreamState) -> bytes | None:
        assert self._bytes is not None
        try:
            return await anext(self._bytes, None)
        except httpx.TransportError as exc:
            raise _broken_stream(exc, state) from exc

    async def _drain(self) -> None:
        # See ChatStream._drain.
        if self._bytes is not None:
            with contextlib.suppress(httpx.TransportError):
                async for _ in self._bytes:
                    pass

    async def aclose(self) -> None:
        """Release the connection; the stream cannot be read further."""
        self._closed = True
        if self._bytes is not None:
            aclose = getattr(self._bytes, "aclose", None)
            if aclose is not None:
                await aclose()
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        if self._state is None and not self._closed:
            try:
                await self._open()
            except BaseException:
                await self.aclose()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def is_timeout(exc: BaseException) -> bool:
    if not isinstance(exc, httpx.TimeoutException):
        return False
    # httpx-aiohttp reports some non-timeout failures (a server disconnect) as ConnectTimeout;
    # trust the underlying error when there is one.
    cause = exc.__cause__ or exc.__context__
    return cause is None or isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__


def _broken_stream(exc: httpx.TransportError, state: StreamState) -> APIError:
    kind = type(exc).__name__
    if is_timeout(exc):
        return APITimeoutError(f"The stream timed out while reading ({kind}): {exc}")
    return IncompleteStreamError(
        f"The stream broke before [DONE] ({kind}: {exc})", partial=state.partial()
    )


def _final(state: StreamState | None) -> ChatCompletion:
    if state is None or state.response is None:
        partial = state.partial() if state is not None else None
        raise IncompleteStreamError("The stream was closed before it finished", partial=partial)
    return state.response
