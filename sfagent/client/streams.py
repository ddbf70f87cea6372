"""The stream objects `SiliconFlow.stream` and `AsyncSiliconFlow.stream` return.

Everything they decide is in `StreamState` (bytes in, chunks and the whole response out); here
they only pull bytes from httpx and hand out the chunks each read completed, within the call's
`Deadline`: the async stream waits for each read in a cancel scope that ends at the deadline,
the sync one relies on the watchdog to wake a blocked read (see ``_deadline``). Either way a
stream out of time raises `APITimeoutError` with what it received so far as ``partial``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType

import httpx

from sfagent.client._body import DEFAULT_MAX_RESPONSE_BYTES, PIECE_BYTES
from sfagent.client._deadline import Deadline
from sfagent.client._within import ReadTimedOut, ReadTimer, within
from sfagent.client.config import TRACE_ID_HEADER
from sfagent.client.error_bodies import Redact
from sfagent.client.streaming import StreamState
from sfagent.exceptions import (
    APIError,
    APITimeoutError,
    IncompleteStreamError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream", "is_timeout"]

Opened = tuple[httpx.Response, Iterator[bytes], bytes, Deadline]
"""A stream's response, the iterator of the rest of its (decoded) body, its first bytes, and
the call's deadline."""
AsyncOpened = tuple[httpx.Response, AsyncIterator[bytes], bytes, Deadline]

_DRAIN_SECONDS = 1.0
"""How long reading past ``[DONE]`` to the end of the body may take before the connection is
dropped instead of kept (the end normally follows at once)."""
_DRAIN_BYTES = 4 * PIECE_BYTES


class _StreamBase:
    """State both stream classes share; the subclasses only read bytes."""

    def __init__(self, redact: Redact, max_response_bytes: int | None) -> None:
        self._response: httpx.Response | None = None
        self._state: StreamState | None = None
        self._ready: Iterator[ChatCompletionChunk] = iter(())  # completed by the last read
        self._closed = False
        self._redact = redact
        self._limit = max_response_bytes
        self._deadline: Deadline | None = None

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

    def _start(self, response: httpx.Response, first: bytes, deadline: Deadline) -> StreamState:
        self._response = response
        self._deadline = deadline
        state = self._state = StreamState(
            trace_id=response.headers.get(TRACE_ID_HEADER),
            redact=self._redact,
            content_type=response.headers.get("content-type"),
            max_response_bytes=self._limit,
        )
        self._take(state, first)
        return state

    def _take(self, state: StreamState, data: bytes | None) -> None:
        """Hand one read to the state; ``None`` is the end of the body."""
        if data is None:
            # Raises IncompleteStreamError unless [DONE] came; a plain JSON body ends here.
            self._ready = iter(state.end())
        else:
            self._ready = iter(state.feed(data))


class ChatStream(_StreamBase):
    """A streamed chat completion: a context manager and an iterator of `ChatCompletionChunk`.

    ``get_final_response()`` returns the same `ChatCompletion` a non-stream call would have.
    Use it in a ``with`` block (or iterate it to the end) so the connection is released.

    Args:
        opener: Sends the request (with the client's retries) and reads the first bytes.
        redact: Removes the key from an error object found in the stream.
        max_response_bytes: The cap on what the stream accumulates (see `StreamState`).
    """

    def __init__(
        self,
        opener: Callable[[], Opened],
        redact: Redact,
        *,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(redact, max_response_bytes)
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
        response, chunks, first, deadline = self._send()
        self._bytes = chunks
        return self._start(response, first, deadline)

    def _read(self, state: StreamState) -> bytes | None:
        assert self._bytes is not None
        assert self._deadline is not None
        deadline = self._deadline
        if deadline.hit():
            raise deadline.error(partial=state.partial())
        try:
            data = next(self._bytes, None)
        except httpx.TransportError as exc:
            # The watchdog's shutdown surfaces as a broken read: it is the deadline's doing.
            error = (
                deadline.error(partial=state.partial())
                if deadline.hit()
                else _broken_stream(exc, state, self._redact)
            )
        else:
            if data is None and deadline.hit():  # a body that ends at EOF ended by the watchdog
                raise deadline.error(partial=state.partial())
            return data
        raise error  # unchained, outside the handler: httpx's error holds the request's headers

    def _drain(self) -> None:
        # Read past [DONE] to the end of the body: httpx drops a connection whose response was
        # closed unread, and the next request would pay for a new TCP and TLS handshake. The
        # end normally follows at once; a server that keeps sending only loses its connection.
        if self._bytes is not None and self._deadline is not None:
            self._deadline.shorten(_DRAIN_SECONDS)
            drained = 0
            with contextlib.suppress(httpx.TransportError):
                for data in self._bytes:
                    drained += len(data)
                    if drained > _DRAIN_BYTES or self._deadline.hit():
                        break

    def close(self) -> None:
        """Release the connection; the stream cannot be read further."""
        self._closed = True
        try:
            if self._bytes is not None:
                getattr(self._bytes, "close", lambda: None)()
            if self._response is not None:
                self._response.close()
        finally:
            if self._deadline is not None:
                self._deadline.close()

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
        max_response_bytes: The cap on what the stream accumulates (see `StreamState`).
    """

    def __init__(
        self,
        opener: Callable[[], Awaitable[AsyncOpened]],
        redact: Redact,
        *,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(redact, max_response_bytes)
        self._send = opener
        self._bytes: AsyncIterator[bytes] | None = None
        self._timer: ReadTimer | None = None

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
        response, chunks, first, deadline = await self._send()
        self._bytes = chunks
        return self._start(response, first, deadline)

    async def _read(self, state: StreamState) -> bytes | None:
        assert self._bytes is not None
        assert self._deadline is not None
        deadline = self._deadline
        error: APIError
        try:
            if ReadTimer.available:
                if self._timer is None:
                    self._timer = ReadTimer(deadline.left())
                return await self._timer.read(anext(self._bytes, None))
            async with within(deadline.left()):
                return await anext(self._bytes, None)
            error = deadline.error(partial=state.partial())  # the scope ended the read
        except ReadTimedOut:
            error = deadline.error(partial=state.partial())
        except httpx.TransportError as exc:
            error = _broken_stream(exc, state, self._redact)
        raise error  # see ChatStream._read

    async def _drain(self) -> None:
        # See ChatStream._drain.
        if self._bytes is not None and self._deadline is not None:
            drained = 0
            async with within(min(_DRAIN_SECONDS, self._deadline.left())):
                with contextlib.suppress(httpx.TransportError):
                    async for data in self._bytes:
                        drained += len(data)
                        if drained > _DRAIN_BYTES:
                            break

    async def aclose(self) -> None:
        """Release the connection; the stream cannot be read further."""
        self._closed = True
        if self._timer is not None:
            self._timer.close()
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
    """Whether an httpx error is really a timeout (some transports report others as one)."""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    # httpx-aiohttp reports some non-timeout failures (a server disconnect) as ConnectTimeout;
    # trust the underlying error when there is one.
    cause = exc.__cause__ or exc.__context__
    return cause is None or isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__


def _broken_stream(exc: httpx.TransportError, state: StreamState, redact: Redact) -> APIError:
    kind = type(exc).__name__
    detail = redact(str(exc))
    if is_timeout(exc):
        return APITimeoutError(
            f"The stream timed out while reading ({kind}): {detail}", partial=state.partial()
        )
    return IncompleteStreamError(
        f"The stream broke before [DONE] ({kind}: {detail})", partial=state.partial()
    )


def _final(state: StreamState | None) -> ChatCompletion:
    if state is None or state.response is None:
        partial = state.partial() if state is not None else None
        raise IncompleteStreamError("The stream was closed before it finished", partial=partial)
    return state.response
