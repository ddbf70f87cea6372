"""`SiliconFlow` and `AsyncSiliconFlow`: typed, retrying chat completions over httpx.

Both clients share `sfagent.client._core` (configuration, bodies, status to error, retry
bookkeeping) and their streams share `sfagent.client.streaming.StreamState`; they differ only in
how they move bytes, which they and their streams (`sfagent.client.streams`) do over httpx.

A client made without ``http_client=`` sends each request straight through its transport, not
through an `httpx.Client`: the client layer (URL merging, cookie jars, auth and redirect flows,
event hooks) costs more per request than the rest of a turn, and a request to this API needs
none of it. The async client's default transport is `KeepAliveTransport` (``_transport``):
httpx 0.28's own pool slows down badly under concurrency; see ``docs/design.md``, "Transport".
Pass ``http_client=`` (or ``transport=``) to choose yourself.

Every call is bounded twice over: in time, by its total timeout (every try, backoff wait, the
wait for headers and the whole body or stream; see ``_deadline``), and in size, by
``max_response_bytes`` on the decoded body, which is read in bounded pieces (see ``_body``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from urllib.request import getproxies

import httpx

from sfagent._observe import TRY_OBSERVER
from sfagent._secret import Secret
from sfagent.client._body import ACCEPT_ENCODING, DEFAULT_MAX_RESPONSE_BYTES, check_max_bytes
from sfagent.client._core import ClientCore, RequestLike, logger
from sfagent.client._deadline import Deadline, total_seconds
from sfagent.client._reading import (
    Answer,
    AsyncAnswer,
    Failure,
    areceive,
    receive,
    socket_serving,
)
from sfagent.client._within import within
from sfagent.client.config import TRACE_ID_HEADER
from sfagent.client.retry import RetryPolicy
from sfagent.client.streams import AsyncChatStream, AsyncOpened, ChatStream, Opened, is_timeout
from sfagent.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    ConfigurationError,
)
from sfagent.messages import ChatCompletion

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "AsyncSiliconFlow",
    "SiliconFlow",
    "Timeout",
]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
"""Ten minutes to read (reasoning models think silently for minutes); ten seconds to connect."""

DEFAULT_TOTAL_TIMEOUT = 1800.0
"""Thirty minutes for a whole call, retries and the whole body or stream included. The longest
answers SiliconFlow's models give (``max_tokens`` up to 32768, streamed at 20-50 tokens a second)
take up to about a quarter of an hour; twice that leaves room, while a server that drips bytes
can no longer hold a call, or a worker, forever."""

DEFAULT_RETRY = RetryPolicy()
"""Three tries in all, full-jitter backoff from 1 s, within one minute (see `RetryPolicy`)."""

Timeout = httpx.Timeout | float

_SENDS_BODY = frozenset({"POST", "PUT", "PATCH"})
"""Methods httpx gives a ``Content-Length`` even without a body."""


class _ClientBase:
    """What both clients hold: the shared core, the timeouts and the size cap."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: Timeout | None,
        retry: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
        total_timeout: float | None,
        max_response_bytes: int | None,
    ) -> None:
        self._core = ClientCore(
            api_key=api_key, base_url=base_url, retry=retry, default_headers=default_headers
        )
        self._templates: dict[tuple[str, str, bool, bool], tuple[httpx.URL, httpx.Headers]] = {}
        self._timeout = _as_timeout(timeout) if timeout is not None else DEFAULT_TIMEOUT
        self._total = total_seconds(total_timeout, timeout, DEFAULT_TOTAL_TIMEOUT)
        self._limit = check_max_bytes(max_response_bytes)
        # Only encodings inflated in bounded pieces, unless the caller asked for others.
        self._accept = not any(k.lower() == "accept-encoding" for k in self._core.headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._core.base_url!r})"

    def redact(self, text: str) -> str:
        """`text` without this client's key (or any run of 6 or more of its characters)."""
        return self._core.redact(text)

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._core.base_url

    def _request(
        self,
        http: httpx.Client | httpx.AsyncClient | None,
        method: str,
        path: str,
        body: bytes | None,
        timeout: Timeout | None,
        stream: bool,
    ) -> tuple[httpx.Request, str]:
        """The request to send (built once, sent again on each retry) and its URL; built by
        `http` (the caller's client, whose defaults apply) or directly (sent on a transport)."""
        url = self._core.url(path)
        phases = self._call(timeout)
        if http is not None:
            headers = self._headers(stream, body is not None)
            request = http.build_request(method, url, content=body, headers=headers, timeout=phases)
            return request, url
        key = (method, url, stream, body is not None)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._template(method, url, stream, body)
        parsed, head = template
        # The head httpx would build, copied (its list only), and the body given whole: about
        # a fifth of the cost of building the request from a dict of headers every time.
        request = httpx.Request(
            method,
            parsed,
            headers=head,
            stream=httpx.ByteStream(body or b""),
            extensions={"timeout": phases.as_dict()},
        )
        if body is not None or method in _SENDS_BODY:
            request.headers["Content-Length"] = str(len(body or b""))
        request.read()  # the body is in hand: `request.content` works, as with content=
        return request, url

    def _headers(self, stream: bool, json_body: bool) -> dict[str, str]:
        headers = self._core.request_headers(stream=stream, json_body=json_body)
        if self._accept:
            headers["Accept-Encoding"] = ACCEPT_ENCODING
        return headers

    def _template(
        self, method: str, url: str, stream: bool, body: bytes | None
    ) -> tuple[httpx.URL, httpx.Headers]:
        """The URL and the headers (``Host`` first, no ``Content-Length``) of every request of
        this kind sent on a transport, as ``httpx.Request`` orders them."""
        headers = self._headers(stream, body is not None)
        if not stream:
            headers["Accept"] = "application/json"
        built = httpx.Request(method, url, headers=headers, content=body)
        head = httpx.Headers(
            [(k, v) for k, v in built.headers.raw if k.lower() != b"content-length"]
        )
        return built.url, head

    def _call(self, timeout: Timeout | None) -> httpx.Timeout:
        # The client's timeout, deliberately not http_client's own: httpx's 5 s default would
        # cut off reasoning models, and it cannot be told apart from a chosen one.
        return self._timeout if timeout is None else _as_timeout(timeout)

    def _deadline(
        self, method: str, path: str, timeout: Timeout | None, total_timeout: float | None
    ) -> Callable[[], Deadline]:
        """What starts a call's clock: a maker of its `Deadline`, from the arguments and the
        client's total (a stream starts it when it is first used, not when it is made)."""
        total = total_seconds(total_timeout, timeout, self._total)
        what = f"{method} {self._core.url(path)}"
        return functools.partial(Deadline, total, what)


class SiliconFlow(_ClientBase):
    """Synchronous client for SiliconFlow's (or any OpenAI-compatible) chat completions.

    Args:
        api_key: The API key; defaults to ``$SILICONFLOW_API_KEY``. Never logged or shown.
        base_url: The API base, ending in ``/v1``; defaults to ``$SILICONFLOW_BASE_URL``, then
            ``https://api.siliconflow.cn/v1``. International accounts use
            ``https://api.siliconflow.com/v1``: keys work on their own site only.
        timeout: Per-phase timeouts (connect, read, write, pool): an `httpx.Timeout`, or
            seconds, which then also bound each whole call; defaults to `DEFAULT_TIMEOUT`, also
            with ``http_client`` (whose own timeout is not used). ``httpx.Timeout(None)``
            disables them (the total still holds).
        retry: The retry policy; ``None`` disables retries.
        http_client: Your own `httpx.Client` (proxies, certificates...); you close it.
        transport: An `httpx.BaseTransport` to send on instead of httpx's default one (not with
            ``http_client``); you close it.
        default_headers: Extra headers sent with every request.
        sleep: How to wait between retries (tests pass a fake).
        total_timeout: Seconds one whole call may take: every try and backoff wait, the wait
            for headers, and the whole body or stream (until its last chunk is read); past it,
            `APITimeoutError`. Defaults to a number given as ``timeout``, else
            `DEFAULT_TOTAL_TIMEOUT`; ``math.inf`` for no bound.
        max_response_bytes: The most a response may hold, decoded: a body (whatever its
            compression), a stream's text, reasoning and tool-call arguments, any one line of
            a stream; past it, `ResponseTooLargeError`. Defaults to
            `DEFAULT_MAX_RESPONSE_BYTES` (32 MiB); ``None`` for no cap.

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
        transport: httpx.BaseTransport | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        total_timeout: float | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            api_key, base_url, timeout, retry, default_headers, total_timeout, max_response_bytes
        )
        _one_of(http_client, transport)
        self._owned: httpx.Client | httpx.BaseTransport | None = None
        if http_client is None and transport is None:
            if _proxied():  # httpx's client applies the proxy settings, NO_PROXY included
                http_client = self._owned = httpx.Client()
            else:
                transport = self._owned = httpx.HTTPTransport()
        self._http = http_client
        self._transport = transport
        self._sleep = sleep

    def complete(
        self,
        request: RequestLike,
        *,
        timeout: Timeout | None = None,
        total_timeout: float | None = None,
    ) -> ChatCompletion:
        """Send a chat completion and return the whole response.

        Args:
            request: A `ChatRequest` (or a ready JSON body as a dict); ``stream`` is ignored.
            timeout: This call's per-phase timeouts, instead of the client's (a number also
                bounds the whole call).
            total_timeout: This call's total bound in seconds, instead of the client's.

        Raises:
            APIStatusError: A subclass per HTTP error status, after any retries.
            APIConnectionError: The request never got an answer (`APITimeoutError` on timeout,
                or when the total timeout runs out).
            APIResponseValidationError: The answer is not a chat completion
                (`ResponseTooLargeError` past ``max_response_bytes``).
        """
        body = self._core.chat_body(request, stream=False)
        start = self._deadline("POST", "/chat/completions", timeout, total_timeout)
        response, data = self._fetch("POST", "/chat/completions", body, timeout, start())
        trace_id = response.headers.get(TRACE_ID_HEADER)
        return self._core.parse_completion(data, trace_id=trace_id)

    def stream(
        self,
        request: RequestLike,
        *,
        timeout: Timeout | None = None,
        total_timeout: float | None = None,
    ) -> ChatStream:
        """Start a streamed chat completion; iterate the returned `ChatStream` for chunks.

        The request is sent on first use (``with`` or iteration) and retried only until the
        first byte of the stream arrives. The total timeout runs from then until the last
        chunk is read; a stream out of time raises `APITimeoutError` whose ``partial`` holds
        what arrived.

        Args:
            request: A `ChatRequest` (or a ready JSON body as a dict); ``stream`` is forced on.
            timeout: This call's per-phase timeouts, instead of the client's (a number also
                bounds the whole call).
            total_timeout: This call's total bound in seconds, instead of the client's.
        """
        body = self._core.chat_body(request, stream=True)
        start = self._deadline("POST", "/chat/completions", timeout, total_timeout)

        def opener() -> Opened:
            deadline = start()
            try:
                try:
                    sent = self._send(
                        "POST", "/chat/completions", body, timeout, deadline, stream=True
                    )
                except BadRequestError as exc:
                    if not self._core.refused_stream_usage(exc):
                        raise
                    again = self._core.chat_body(request, stream=True)
                    sent = self._send(
                        "POST", "/chat/completions", again, timeout, deadline, stream=True
                    )
            except BaseException:
                deadline.close()
                raise
            return (*sent, deadline)

        return ChatStream(opener, self._core.redact, max_response_bytes=self._limit)

    def list_models(
        self, *, timeout: Timeout | None = None, total_timeout: float | None = None
    ) -> list[str]:
        """The ids of the models the key can use (``GET /models``).

        Args:
            timeout: This call's per-phase timeouts, instead of the client's.
            total_timeout: This call's total bound in seconds, instead of the client's.
        """
        start = self._deadline("GET", "/models", timeout, total_timeout)
        _, data = self._fetch("GET", "/models", None, timeout, start())
        return self._core.parse_models(data)

    def close(self) -> None:
        """Close the connection pool, unless it came from ``http_client=`` or ``transport=``."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> SiliconFlow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fetch(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: Timeout | None,
        deadline: Deadline,
    ) -> tuple[httpx.Response, bytes]:
        """Send with retries and read the whole body, within the deadline."""
        try:
            response, _, data = self._send(method, path, body, timeout, deadline, stream=False)
        finally:
            deadline.close()
        return response, data

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: Timeout | None,
        deadline: Deadline,
        *,
        stream: bool,
    ) -> Answer:
        """Send with retries until an answer: the response, its decoded body pieces, and the
        first piece (a stream: retried until it arrives) or the whole body (otherwise)."""
        request, url = self._request(self._http, method, path, body, timeout, stream)
        phases = request.extensions["timeout"]
        transport = self._transport
        if transport is None and self._http is not None:
            transport = self._http._transport_for_url(request.url)
        guard = deadline.arm(functools.partial(socket_serving, transport, request))
        if guard is not None:
            request.extensions["trace"] = guard.trace
        attempts = self._core.attempts(deadline=deadline.at)
        while True:
            number = attempts.begin()
            request.extensions["timeout"] = deadline.phases(phases)
            outcome = self._attempt(request, deadline, url, number, stream=stream)
            if not isinstance(outcome, Failure):
                if deadline.fired:  # the watchdog ended a body that ends at EOF: cut short
                    outcome[0].close()
                    raise deadline.error()
                return outcome
            delay = attempts.delay_after(outcome.error, retry_after=outcome.retry_after)
            _retrying(number, outcome.error, delay)
            self._sleep(delay)

    def _send_once(self, request: httpx.Request) -> httpx.Response:
        if self._http is not None:
            return self._http.send(request, stream=True)
        assert self._transport is not None
        response = self._transport.handle_request(request)
        response.request = request
        return response

    def _attempt(
        self, request: httpx.Request, deadline: Deadline, url: str, number: int, *, stream: bool
    ) -> Answer | Failure:
        """One try: the answer, or how it failed (a status, or the transport)."""
        method = request.method
        try:
            response = self._send_once(request)
            deadline.watch(response.extensions.get("network_stream"), response.http_version)
            _log_response(method, url, response, number)
            _answered(response, number)
            return receive(response, self._core, self._limit, stream=stream)
        except httpx.TransportError as exc:
            failure = Failure(_transport_error(exc, method, url, number))
        return failure.out_of_time(deadline)


class AsyncSiliconFlow(_ClientBase):
    """Asynchronous client; the same methods and arguments as `SiliconFlow`, awaited.

    By default it sends on sfagent's `KeepAliveTransport`, HTTP/1.1 keep-alive connections on
    asyncio (measured several times faster under concurrency than httpx 0.28's own pool; see the
    "Transport" section of the design notes), or on httpx's transport when a proxy is set in
    the environment. ``http_client=`` takes your own `httpx.AsyncClient` (you close it).

    Args:
        api_key: The API key; defaults to ``$SILICONFLOW_API_KEY``. Never logged or shown.
        base_url: The API base; defaults to ``$SILICONFLOW_BASE_URL``, then the ``.cn`` site.
        timeout: Per-phase timeouts, or seconds that also bound each whole call; defaults to
            `DEFAULT_TIMEOUT`.
        retry: The retry policy; ``None`` disables retries.
        http_client: Your own `httpx.AsyncClient`; you close it.
        transport: An `httpx.AsyncBaseTransport` to send on instead of the default one (not
            with ``http_client``); you close it.
        default_headers: Extra headers sent with every request.
        sleep: How to wait between retries, awaited (tests pass a fake).
        total_timeout: Seconds one whole call may take (see `SiliconFlow`); defaults to a
            number given as ``timeout``, else `DEFAULT_TOTAL_TIMEOUT`.
        max_response_bytes: The most a response may hold, decoded (see `SiliconFlow`);
            defaults to `DEFAULT_MAX_RESPONSE_BYTES`.

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
        transport: httpx.AsyncBaseTransport | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        total_timeout: float | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            api_key, base_url, timeout, retry, default_headers, total_timeout, max_response_bytes
        )
        _one_of(http_client, transport)
        self._owned: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None
        if http_client is None and transport is None:
            if _proxied():  # KeepAliveTransport speaks to no proxy; httpx's client does
                http_client = self._owned = httpx.AsyncClient()
            else:
                from sfagent.client._transport import KeepAliveTransport

                transport = self._owned = KeepAliveTransport()
        self._http = http_client
        self._transport = transport
        self._sleep = sleep

    async def complete(
        self,
        request: RequestLike,
        *,
        timeout: Timeout | None = None,
        total_timeout: float | None = None,
    ) -> ChatCompletion:
        """Send a chat completion and return the whole response (see `SiliconFlow.complete`)."""
        body = self._core.chat_body(request, stream=False)
        start = self._deadline("POST", "/chat/completions", timeout, total_timeout)
        response, _, data = await self._send(
            "POST", "/chat/completions", body, timeout, start(), stream=False
        )
        trace_id = response.headers.get(TRACE_ID_HEADER)
        return self._core.parse_completion(data, trace_id=trace_id)

    def stream(
        self,
        request: RequestLike,
        *,
        timeout: Timeout | None = None,
        total_timeout: float | None = None,
    ) -> AsyncChatStream:
        """Start a streamed chat completion: ``async with client.stream(request) as s``.

        The total timeout runs from the first use until the last chunk is read (see
        `SiliconFlow.stream`).
        """
        body = self._core.chat_body(request, stream=True)
        start = self._deadline("POST", "/chat/completions", timeout, total_timeout)

        async def opener() -> AsyncOpened:
            deadline = start()
            try:
                sent = await self._send(
                    "POST", "/chat/completions", body, timeout, deadline, stream=True
                )
            except BadRequestError as exc:
                if not self._core.refused_stream_usage(exc):
                    raise
                again = self._core.chat_body(request, stream=True)
                sent = await self._send(
                    "POST", "/chat/completions", again, timeout, deadline, stream=True
                )
            return (*sent, deadline)

        return AsyncChatStream(opener, self._core.redact, max_response_bytes=self._limit)

    async def list_models(
        self,
        *,
        timeout: Timeout | None = None,
        total_timeout: float | None = None,
    ) -> list[str]:
        """The ids of the models the key can use (``GET /models``)."""
        start = self._deadline("GET", "/models", timeout, total_timeout)
        _, _, data = await self._send("GET", "/models", None, timeout, start(), stream=False)
        return self._core.parse_models(data)

    async def close(self) -> None:
        """Close the connection pool, unless it came from ``http_client=`` or ``transport=``."""
        if self._owned is not None:
            await self._owned.aclose()

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
        timeout: Timeout | None,
        deadline: Deadline,
        *,
        stream: bool,
    ) -> AsyncAnswer:
        """Send with retries until an answer (see `SiliconFlow._send`); each try runs in a
        cancel scope that ends at the deadline."""
        request, url = self._request(self._http, method, path, body, timeout, stream)
        phases = request.extensions["timeout"]
        attempts = self._core.attempts(deadline=deadline.at)
        while True:
            number = attempts.begin()
            request.extensions["timeout"] = deadline.phases(phases)
            outcome = None
            async with within(deadline.left()):
                outcome = await self._attempt(request, deadline, url, number, stream=stream)
            if outcome is None:  # the scope ended the try
                raise deadline.error()
            if not isinstance(outcome, Failure):
                return outcome
            delay = attempts.delay_after(outcome.error, retry_after=outcome.retry_after)
            _retrying(number, outcome.error, delay)
            await self._sleep(delay)

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        if self._http is not None:
            return await self._http.send(request, stream=True)
        assert self._transport is not None
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    async def _attempt(
        self, request: httpx.Request, deadline: Deadline, url: str, number: int, *, stream: bool
    ) -> AsyncAnswer | Failure:
        """One try (see `SiliconFlow._attempt`)."""
        method = request.method
        try:
            response = await self._send_once(request)
            _log_response(method, url, response, number)
            _answered(response, number)
            return await areceive(response, self._core, self._limit, stream=stream)
        except httpx.TransportError as exc:
            failure = Failure(_transport_error(exc, method, url, number))
        return failure.out_of_time(deadline)


# --- the thin shared helpers that touch httpx objects ------------------------------------------


def _as_timeout(timeout: Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _one_of(http_client: object, transport: object) -> None:
    if http_client is not None and transport is not None:
        raise ConfigurationError("pass http_client or transport, not both")


def _proxied() -> bool:
    return any(key in getproxies() for key in ("http", "https", "all"))


def _log_response(method: str, url: str, response: httpx.Response, attempt: int) -> None:
    if not logger.isEnabledFor(logging.DEBUG):  # per request: skip the header scan and redaction
        return
    trace_id = response.headers.get(TRACE_ID_HEADER)
    if trace_id:  # a header the server chose: it may echo the key
        trace_id = _sent_key(response).redact(trace_id)
    logger.debug(
        "%s %s -> %d (attempt %d, trace id %s)",
        method,
        url,
        response.status_code,
        attempt,
        trace_id,
    )


def _answered(response: httpx.Response, attempt: int) -> None:
    observer = TRY_OBSERVER.get()
    if observer is None:
        return
    trace_id = response.headers.get(TRACE_ID_HEADER)
    if trace_id:  # a header the server chose: it may echo the key
        trace_id = _sent_key(response).redact(trace_id)
    observer.answered(attempt, response.status_code, trace_id or None)


def _retrying(attempt: int, error: APIError, delay: float) -> None:
    observer = TRY_OBSERVER.get()
    if observer is not None:
        observer.retrying(attempt, error, delay)


def _transport_error(exc: httpx.TransportError, method: str, url: str, attempt: int) -> APIError:
    kind = type(exc).__name__
    logger.debug("%s %s failed (attempt %d): %s", method, url, attempt, kind)
    detail = _sent_key(exc).redact(str(exc)) or kind
    error: APIError
    if is_timeout(exc):
        error = APITimeoutError(f"Request to {url} timed out ({kind}): {detail}")
    else:
        error = APIConnectionError(f"Connection error on {url} ({kind}): {detail}")
    # Not chained (`raise ... from None`): httpx's error holds the request, and the request its
    # Authorization header. Its type and message are in ours; the caller raises outside the
    # `except`, so it is no __context__ either.
    error.__cause__ = None
    error.__suppress_context__ = True
    return error


def _sent_key(source: httpx.Response | httpx.HTTPError) -> Secret:
    """The key the request behind a response or an error carried, to redact what came back."""
    try:
        request = source.request
    except RuntimeError:  # an error raised before there was a request
        return Secret(None)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return Secret(key.strip() if scheme.lower() == "bearer" else None)
