"""`SiliconFlow` and `AsyncSiliconFlow`: typed, retrying chat completions over httpx.

Both clients share `sfagent._client_core` (configuration, bodies, status to error, retry
bookkeeping, stream state) and differ only in how they move bytes. This is the only module of
the library that imports httpx.

The async client's default transport is httpx over aiohttp (``httpx-aiohttp``) when that package
is installed, because httpx 0.28's own pool slows down badly under concurrency; see
``docs/client.md`` for the measurements. Pass ``http_client=`` to choose yourself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType

import anyio
import httpx

from sfagent._client_core import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    TRACE_ID_HEADER,
    ClientCore,
    RequestLike,
    StreamCursor,
    logger,
)
from sfagent._retry import RetryPolicy
from sfagent.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    IncompleteStreamError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "AsyncChatStream",
    "AsyncSiliconFlow",
    "ChatStream",
    "SiliconFlow",
]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
"""Ten minutes to read (reasoning models think silently for minutes); ten seconds to connect."""

DEFAULT_RETRY = RetryPolicy()
"""Three tries in all, full-jitter backoff from 1 s, within one minute (see `RetryPolicy`)."""

Timeout = httpx.Timeout | float


class SiliconFlow:
    """Synchronous client for SiliconFlow's (or any OpenAI-compatible) chat completions.

    Args:
        api_key: The API key; defaults to ``$SILICONFLOW_API_KEY``. Never logged or shown.
        base_url: The API base, ending in ``/v1``; defaults to ``$SILICONFLOW_BASE_URL``, then
            ``https://api.siliconflow.cn/v1``. International accounts use
            ``https://api.siliconflow.com/v1``: keys work on their own site only.
        timeout: An `httpx.Timeout` or seconds; defaults to `DEFAULT_TIMEOUT`, also with
            ``http_client`` (whose own timeout is not used). ``httpx.Timeout(None)`` disables
            timeouts.
        retry: The retry policy; ``None`` disables retries.
        http_client: Your own `httpx.Client` (proxies, certificates...); you close it.
        default_headers: Extra headers sent with every request.
        sleep: How to wait between retries (tests pass a fake).

    Raises:
        ConfigurationError: No API key, or a base URL that is not http(s).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        http_client: httpx.Client | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._core = ClientCore(
            api_key=api_key, base_url=base_url, retry=retry, default_headers=default_headers
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._timeout = _client_timeout(timeout)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SiliconFlow(base_url={self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._core.base_url

    def complete(self, request: RequestLike, *, timeout: Timeout | None = None) -> ChatCompletion:
        """Send a chat completion and return the whole response.

        Args:
            request: A `ChatRequest` (or a ready JSON body as a dict); ``stream`` is ignored.
            timeout: This call's timeout, instead of the client's.

        Raises:
            APIStatusError: A subclass per HTTP error status, after any retries.
            APIConnectionError: The request never got an answer (`APITimeoutError` on timeout).
            APIResponseValidationError: The answer is not a chat completion.
        """
        body = self._core.chat_body(request, stream=False)
        response, _, _ = self._send("POST", "/chat/completions", body, timeout, stream=False)
        trace_id = response.headers.get(TRACE_ID_HEADER)
        return self._core.parse_completion(response.content, trace_id=trace_id)

    def stream(self, request: RequestLike, *, timeout: Timeout | None = None) -> ChatStream:
        """Start a streamed chat completion; iterate the returned `ChatStream` for chunks.

        The request is sent on first use (``with`` or iteration) and retried only until the
        first byte of the stream arrives.

        Args:
            request: A `ChatRequest` (or a ready JSON body as a dict); ``stream`` is forced on.
            timeout: This call's timeout, instead of the client's.
        """
        return ChatStream(self, self._core.chat_body(request, stream=True), timeout)

    def list_models(self, *, timeout: Timeout | None = None) -> list[str]:
        """The ids of the models the key can use (``GET /models``)."""
        response, _, _ = self._send("GET", "/models", None, timeout, stream=False)
        return self._core.parse_models(response.content)

    def close(self) -> None:
        """Close the connection pool, unless it came from ``http_client=``."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> SiliconFlow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(
        self, method: str, path: str, body: bytes | None, timeout: Timeout | None, *, stream: bool
    ) -> tuple[httpx.Response, Iterator[bytes] | None, bytes]:
        """Send with retries; for a stream, also read its first bytes (until then it is retried)."""
        core, url = self._core, self._core.url(path)
        headers = core.request_headers(stream=stream, json_body=body is not None)
        request = self._http.build_request(
            method, url, content=body, headers=headers, timeout=_call_timeout(timeout, self)
        )
        attempts = core.attempts()
        while True:
            number = attempts.begin()
            retry_after = None
            try:
                response = self._http.send(request, stream=stream)
                _log_response(method, url, response, number)
                if response.is_success:
                    if not stream:
                        return response, None, b""
                    chunks = response.iter_bytes()
                    return response, chunks, _first(chunks, response)
                retry_after = response.headers.get("retry-after")
                error: APIError = core.status_error(
                    response.status_code, response.read(), response.headers
                )
                response.close()
            except httpx.TransportError as exc:
                error = _transport_error(exc, method, url, number)
            self._sleep(attempts.delay_after(error, retry_after=retry_after))


class ChatStream:
    """A streamed chat completion: a context manager and an iterator of `ChatCompletionChunk`.

    ``get_final_response()`` returns the same `ChatCompletion` a non-stream call would have.
    Use it in a ``with`` block (or iterate it to the end) so the connection is released.
    """

    def __init__(self, client: SiliconFlow, body: bytes, timeout: Timeout | None) -> None:
        self._client, self._body, self._timeout = client, body, timeout
        self._response: httpx.Response | None = None
        self._bytes: Iterator[bytes] | None = None
        self._cursor: StreamCursor | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "unsent"
        return f"<ChatStream {state}>"

    @property
    def response(self) -> ChatCompletion | None:
        """The whole response once the stream has ended with ``[DONE]``, else ``None``."""
        return self._cursor.response if self._cursor is not None else None

    @property
    def trace_id(self) -> str | None:
        """The ``x-siliconcloud-trace-id`` of the response, once it has arrived."""
        return self._cursor.state.trace_id if self._cursor is not None else None

    def get_final_response(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole response."""
        for _ in self:
            pass
        return _final(self._cursor)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopIteration
        try:
            cursor = self._cursor if self._cursor is not None else self._open()
            while (chunk := cursor.pop()) is None:
                if cursor.finished:
                    raise StopIteration
                self._pull(cursor)
            return chunk
        except BaseException:
            self.close()
            raise

    def _open(self) -> StreamCursor:
        response, chunks, first = self._client._send(
            "POST", "/chat/completions", self._body, self._timeout, stream=True
        )
        self._response, self._bytes = response, chunks
        cursor = self._cursor = StreamCursor(trace_id=response.headers.get(TRACE_ID_HEADER))
        _feed(cursor, first)
        return cursor

    def _pull(self, cursor: StreamCursor) -> None:
        assert self._bytes is not None
        try:
            data = next(self._bytes, None)
        except httpx.TransportError as exc:
            raise _broken_stream(exc, cursor) from exc
        _feed(cursor, data)

    def close(self) -> None:
        """Release the connection; the stream cannot be read further."""
        self._closed = True
        if self._bytes is not None:
            getattr(self._bytes, "close", lambda: None)()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> ChatStream:
        if self._cursor is None and not self._closed:
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


class AsyncSiliconFlow:
    """Asynchronous client; the same methods and arguments as `SiliconFlow`, awaited.

    By default it sends through httpx over aiohttp when ``httpx-aiohttp`` is installed (measured
    several times faster under concurrency than httpx 0.28's own pool), else through httpx's
    default transport. ``http_client=`` takes your own `httpx.AsyncClient` (you close it).

    Args:
        api_key: The API key; defaults to ``$SILICONFLOW_API_KEY``. Never logged or shown.
        base_url: The API base; defaults to ``$SILICONFLOW_BASE_URL``, then the ``.cn`` site.
        timeout: An `httpx.Timeout` or seconds; defaults to `DEFAULT_TIMEOUT`.
        retry: The retry policy; ``None`` disables retries.
        http_client: Your own `httpx.AsyncClient`; you close it.
        default_headers: Extra headers sent with every request.
        sleep: How to wait between retries, awaited (tests pass a fake).

    Raises:
        ConfigurationError: No API key, or a base URL that is not http(s).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        http_client: httpx.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._core = ClientCore(
            api_key=api_key, base_url=base_url, retry=retry, default_headers=default_headers
        )
        self._owns_http = http_client is None
        if http_client is None:
            http_client = httpx.AsyncClient(transport=_default_async_transport())
        self._http = http_client
        self._timeout = _client_timeout(timeout)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"AsyncSiliconFlow(base_url={self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._core.base_url

    async def complete(
        self,
        request: RequestLike,
        *,
        timeout: Timeout | None = None,  # noqa: ASYNC109 - httpx's per-phase timeouts
    ) -> ChatCompletion:
        """Send a chat completion and return the whole response (see `SiliconFlow.complete`)."""
        body = self._core.chat_body(request, stream=False)
        response, _, _ = await self._send("POST", "/chat/completions", body, timeout, stream=False)
        trace_id = response.headers.get(TRACE_ID_HEADER)
        return self._core.parse_completion(response.content, trace_id=trace_id)

    def stream(self, request: RequestLike, *, timeout: Timeout | None = None) -> AsyncChatStream:
        """Start a streamed chat completion: ``async with client.stream(request) as s``."""
        return AsyncChatStream(self, self._core.chat_body(request, stream=True), timeout)

    async def list_models(self, *, timeout: Timeout | None = None) -> list[str]:  # noqa: ASYNC109
        """The ids of the models the key can use (``GET /models``)."""
        response, _, _ = await self._send("GET", "/models", None, timeout, stream=False)
        return self._core.parse_models(response.content)

    async def close(self) -> None:
        """Close the connection pool, unless it came from ``http_client=``."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSiliconFlow:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: Timeout | None,  # noqa: ASYNC109
        *,
        stream: bool,
    ) -> tuple[httpx.Response, AsyncIterator[bytes] | None, bytes]:
        """Send with retries; for a stream, also read its first bytes (see `SiliconFlow._send`)."""
        core, url = self._core, self._core.url(path)
        headers = core.request_headers(stream=stream, json_body=body is not None)
        request = self._http.build_request(
            method, url, content=body, headers=headers, timeout=_call_timeout(timeout, self)
        )
        attempts = core.attempts()
        while True:
            number = attempts.begin()
            retry_after = None
            try:
                response = await self._http.send(request, stream=stream)
                _log_response(method, url, response, number)
                if response.is_success:
                    if not stream:
                        return response, None, b""
                    chunks = response.aiter_bytes()
                    return response, chunks, await _afirst(chunks, response)
                retry_after = response.headers.get("retry-after")
                error: APIError = core.status_error(
                    response.status_code, await response.aread(), response.headers
                )
                await response.aclose()
            except httpx.TransportError as exc:
                error = _transport_error(exc, method, url, number)
            await self._sleep(attempts.delay_after(error, retry_after=retry_after))


class AsyncChatStream:
    """A streamed chat completion: an async context manager and async iterator of chunks.

    ``await get_final_response()`` returns the same `ChatCompletion` a non-stream call would.
    """

    def __init__(self, client: AsyncSiliconFlow, body: bytes, timeout: Timeout | None) -> None:
        self._client, self._body, self._timeout = client, body, timeout
        self._response: httpx.Response | None = None
        self._bytes: AsyncIterator[bytes] | None = None
        self._cursor: StreamCursor | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "unsent"
        return f"<AsyncChatStream {state}>"

    @property
    def response(self) -> ChatCompletion | None:
        """The whole response once the stream has ended with ``[DONE]``, else ``None``."""
        return self._cursor.response if self._cursor is not None else None

    @property
    def trace_id(self) -> str | None:
        """The ``x-siliconcloud-trace-id`` of the response, once it has arrived."""
        return self._cursor.state.trace_id if self._cursor is not None else None

    async def get_final_response(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole response."""
        async for _ in self:
            pass
        return _final(self._cursor)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopAsyncIteration
        try:
            cursor = self._cursor if self._cursor is not None else await self._open()
            while (chunk := cursor.pop()) is None:
                if cursor.finished:
                    raise StopAsyncIteration
                await self._pull(cursor)
            return chunk
        except BaseException:
            await self.aclose()
            raise

    async def _open(self) -> StreamCursor:
        response, chunks, first = await self._client._send(
            "POST", "/chat/completions", self._body, self._timeout, stream=True
        )
        self._response, self._bytes = response, chunks
        cursor = self._cursor = StreamCursor(trace_id=response.headers.get(TRACE_ID_HEADER))
        _feed(cursor, first)
        return cursor

    async def _pull(self, cursor: StreamCursor) -> None:
        assert self._bytes is not None
        try:
            data = await anext(self._bytes, None)
        except httpx.TransportError as exc:
            raise _broken_stream(exc, cursor) from exc
        _feed(cursor, data)

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
        if self._cursor is None and not self._closed:
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


# --- the thin shared helpers that touch httpx objects ------------------------------------------


def _client_timeout(timeout: Timeout | None) -> httpx.Timeout:
    # Deliberately not the http_client's own timeout: httpx's 5 s default would cut off
    # reasoning models, and it cannot be told apart from a chosen one.
    if timeout is None:
        return DEFAULT_TIMEOUT
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _call_timeout(timeout: Timeout | None, client: SiliconFlow | AsyncSiliconFlow) -> httpx.Timeout:
    if timeout is None:
        return client._timeout
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _default_async_transport() -> httpx.AsyncBaseTransport | None:
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None
    return AiohttpTransport()


def _log_response(method: str, url: str, response: httpx.Response, attempt: int) -> None:
    logger.debug(
        "%s %s -> %d (attempt %d, trace id %s)",
        method,
        url,
        response.status_code,
        attempt,
        response.headers.get(TRACE_ID_HEADER),
    )


def _is_timeout(exc: BaseException) -> bool:
    if not isinstance(exc, httpx.TimeoutException):
        return False
    # httpx-aiohttp reports some non-timeout failures (a server disconnect) as ConnectTimeout;
    # trust the underlying error when there is one.
    cause = exc.__cause__ or exc.__context__
    return cause is None or isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__


def _transport_error(exc: httpx.TransportError, method: str, url: str, attempt: int) -> APIError:
    kind = type(exc).__name__
    logger.debug("%s %s failed (attempt %d): %s", method, url, attempt, kind)
    detail = str(exc) or kind
    error: APIError
    if _is_timeout(exc):
        error = APITimeoutError(f"Request to {url} timed out ({kind}): {detail}")
    else:
        error = APIConnectionError(f"Connection error on {url} ({kind}): {detail}")
    error.__cause__ = exc
    return error


def _broken_stream(exc: httpx.TransportError, cursor: StreamCursor) -> APIError:
    kind = type(exc).__name__
    if _is_timeout(exc):
        return APITimeoutError(f"The stream timed out while reading ({kind}): {exc}")
    return IncompleteStreamError(
        f"The stream broke before [DONE] ({kind}: {exc})", partial=cursor.partial()
    )


def _first(chunks: Iterator[bytes], response: httpx.Response) -> bytes:
    try:
        return next(chunks, b"")
    except BaseException:
        getattr(chunks, "close", lambda: None)()
        response.close()
        raise


async def _afirst(chunks: AsyncIterator[bytes], response: httpx.Response) -> bytes:
    try:
        return await anext(chunks, b"")
    except BaseException:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await response.aclose()
        raise


def _feed(cursor: StreamCursor, data: bytes | None) -> None:
    if data is None:
        cursor.end()
    elif data:
        cursor.feed(data)


def _final(cursor: StreamCursor | None) -> ChatCompletion:
    if cursor is None or cursor.response is None:
        partial = cursor.partial() if cursor is not None else None
        raise IncompleteStreamError("The stream was closed before it finished", partial=partial)
    return cursor.response
