"""`SiliconFlow` and `AsyncSiliconFlow`: typed, retrying chat completions over httpx.

Both clients share `sfagent.client._core` (configuration, bodies, status to error, retry
bookkeeping) and their streams share `sfagent.client.streaming.StreamState`; they differ only in
how they move bytes, which they and their streams (`sfagent.client.streams`) do over httpx.

The async client's default transport is httpx over aiohttp (``httpx-aiohttp``) when that package
is installed, because httpx 0.28's own pool slows down badly under concurrency; see
``docs/client.md`` for the measurements. Pass ``http_client=`` to choose yourself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from urllib.request import getproxies

import anyio
import httpx

from sfagent.client._core import ClientCore, RequestLike, logger
from sfagent.client.config import TRACE_ID_HEADER
from sfagent.client.retry import RetryPolicy
from sfagent.client.streams import AsyncChatStream, AsyncOpened, ChatStream, Opened, is_timeout
from sfagent.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
)
from sfagent.messages import ChatCompletion

__all__ = ["DEFAULT_RETRY", "DEFAULT_TIMEOUT", "AsyncSiliconFlow", "SiliconFlow", "Timeout"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
"""Ten minutes to read (reasoning models think silently for minutes); ten seconds to connect."""

DEFAULT_RETRY = RetryPolicy()
"""Three tries in all, full-jitter backoff from 1 s, within one minute (see `RetryPolicy`)."""

Timeout = httpx.Timeout | float


class _ClientBase:
    """What both clients hold: the shared core and the timeout."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: Timeout | None,
        retry: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        self._core = ClientCore(
            api_key=api_key, base_url=base_url, retry=retry, default_headers=default_headers
        )
        self._timeout = _as_timeout(timeout) if timeout is not None else DEFAULT_TIMEOUT

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._core.base_url

    def _request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        body: bytes | None,
        timeout: Timeout | None,
        stream: bool,
    ) -> tuple[httpx.Request, str]:
        """The request to send (built once, sent again on each retry) and its URL."""
        url = self._core.url(path)
        headers = self._core.request_headers(stream=stream, json_body=body is not None)
        request = http.build_request(
            method, url, content=body, headers=headers, timeout=self._call(timeout)
        )
        return request, url

    def _call(self, timeout: Timeout | None) -> httpx.Timeout:
        # The client's timeout, deliberately not http_client's own: httpx's 5 s default would
        # cut off reasoning models, and it cannot be told apart from a chosen one.
        return self._timeout if timeout is None else _as_timeout(timeout)


class SiliconFlow(_ClientBase):
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
        super().__init__(api_key, base_url, timeout, retry, default_headers)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._sleep = sleep

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
        body = self._core.chat_body(request, stream=True)

        def opener() -> Opened:
            response, chunks, first = self._send(
                "POST", "/chat/completions", body, timeout, stream=True
            )
            assert chunks is not None  # a stream always has a body iterator
            return response, chunks, first

        return ChatStream(opener, self._core.redact)

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
        core = self._core
        request, url = self._request(self._http, method, path, body, timeout, stream)
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


class AsyncSiliconFlow(_ClientBase):
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
        super().__init__(api_key, base_url, timeout, retry, default_headers)
        self._owns_http = http_client is None
        if http_client is None:
            http_client = httpx.AsyncClient(transport=_default_async_transport())
        self._http = http_client
        self._sleep = sleep

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
        body = self._core.chat_body(request, stream=True)

        async def opener() -> AsyncOpened:
            response, chunks, first = await self._send(
                "POST", "/chat/completions", body, timeout, stream=True
            )
            assert chunks is not None  # a stream always has a body iterator
            return response, chunks, first

        return AsyncChatStream(opener, self._core.redact)

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
        core = self._core
        request, url = self._request(self._http, method, path, body, timeout, stream)
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


# --- the thin shared helpers that touch httpx objects ------------------------------------------


def _as_timeout(timeout: Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _default_async_transport() -> httpx.AsyncBaseTransport | None:
    # httpx ignores proxy environment variables once given a transport, and this one does not
    # read them either: behind a proxy, httpx's own transport is the one that works.
    if any(key in getproxies() for key in ("http", "https", "all")):
        return None
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


def _transport_error(exc: httpx.TransportError, method: str, url: str, attempt: int) -> APIError:
    kind = type(exc).__name__
    logger.debug("%s %s failed (attempt %d): %s", method, url, attempt, kind)
    detail = str(exc) or kind
    error: APIError
    if is_timeout(exc):
        error = APITimeoutError(f"Request to {url} timed out ({kind}): {detail}")
    else:
        error = APIConnectionError(f"Connection error on {url} ({kind}): {detail}")
    error.__cause__ = exc
    return error


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
