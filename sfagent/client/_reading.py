"""Reading one try's response over httpx: its body in bounded pieces, or the error it carries.

The clients' thin helpers that touch httpx responses, sync and async side by side: the body
decoded by `sfagent.client._body` (gzip and deflate in bounded pieces; httpx decodes anything
else) and counted against the cap, an error status's body cut at the cap, and the pool lookup
the sync watchdog falls back on (see ``_deadline``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx

from sfagent.client._body import BodyDecoder, SizedBody
from sfagent.client._core import ClientCore
from sfagent.client._deadline import Deadline, socket_of
from sfagent.exceptions import APIError, APIResponseValidationError

__all__ = [
    "Answer",
    "AsyncAnswer",
    "Failure",
    "abody_pieces",
    "areceive",
    "body_pieces",
    "receive",
    "socket_serving",
]

Answer = tuple[httpx.Response, Iterator[bytes], bytes]
"""A successful try: the response, its decoded body pieces, and the first piece (a stream) or
the whole body (otherwise)."""
AsyncAnswer = tuple[httpx.Response, AsyncIterator[bytes], bytes]


class Failure:
    """A try that failed: the error, and the server's ``Retry-After``."""

    __slots__ = ("error", "retry_after")

    def __init__(self, error: APIError, retry_after: str | None = None) -> None:
        self.error = error
        self.retry_after = retry_after

    def out_of_time(self, deadline: Deadline) -> Failure:
        """A try broken by the deadline (the sync watchdog's shutdown surfaces as a broken
        read) is reported as the call's timeout, caused by what the transport said."""
        if deadline.hit():
            error = deadline.error()
            error.__cause__ = self.error
            return Failure(error)
        return self


def receive(
    response: httpx.Response, core: ClientCore, limit: int | None, *, stream: bool
) -> Answer | Failure:
    """What one try's response says: the answer, or the error status it carries.

    The response is closed unless it is a stream handed on.

    Raises:
        ResponseTooLargeError: A body past `limit`.
        APIResponseValidationError: A body that does not decode.
        httpx.TransportError: The body broke off.
    """
    keep = False
    try:
        parts = body_pieces(response)
        if not response.is_success:
            body = _error_body(parts, limit)
            error = core.status_error(response.status_code, body, response.headers)
            return Failure(error, response.headers.get("retry-after"))
        if not stream:
            return response, parts, SizedBody(limit).add_all(parts)
        first = next(parts, b"")
        keep = True
        return response, parts, first
    finally:
        if not keep:
            response.close()


async def areceive(
    response: httpx.Response, core: ClientCore, limit: int | None, *, stream: bool
) -> AsyncAnswer | Failure:
    """What one try's response says (see `receive`)."""
    keep = False
    try:
        parts = abody_pieces(response)
        if not response.is_success:
            body = await _aerror_body(parts, limit)
            error = core.status_error(response.status_code, body, response.headers)
            return Failure(error, response.headers.get("retry-after"))
        if not stream:
            whole = SizedBody(limit)
            async for piece in parts:
                whole.add(piece)
            return response, parts, whole.value()
        first = await anext(parts, b"")
        keep = True
        return response, parts, first
    finally:
        # A body read to its end closed itself; a shielded scope (~7 us) only for the rest.
        if not keep and not response.is_closed:
            with anyio.CancelScope(shield=True):  # closes even when the time is up
                await response.aclose()


def body_pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body decoded in bounded pieces (see ``_body``); httpx decodes what is not ours."""
    if response.is_stream_consumed:  # read already, e.g. by a mock transport: decoded
        yield response.content
        return
    decoder = BodyDecoder.for_encoding(response.headers.get("content-encoding"))
    if decoder is None:
        try:
            yield from response.iter_bytes()
        except httpx.DecodingError as exc:
            error = _undecodable(exc)
        else:
            return
        raise error  # outside the handler: httpx's error holds the request's headers
    elif decoder.identity:
        yield from response.iter_raw()
    else:
        for raw in response.iter_raw():
            yield from decoder.decode(raw)


async def abody_pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body decoded in bounded pieces (see `body_pieces`)."""
    if response.is_stream_consumed:  # read already, e.g. by a mock transport: decoded
        yield response.content
        return
    decoder = BodyDecoder.for_encoding(response.headers.get("content-encoding"))
    if decoder is None:
        try:
            async for piece in response.aiter_bytes():
                yield piece
        except httpx.DecodingError as exc:
            error = _undecodable(exc)
        else:
            return
        raise error
    elif decoder.identity:
        async for raw in response.aiter_raw():
            yield raw
    else:
        async for raw in response.aiter_raw():
            for piece in decoder.decode(raw):
                yield piece


def _undecodable(exc: httpx.DecodingError) -> APIResponseValidationError:
    return APIResponseValidationError(f"The response body cannot be decoded ({exc})")


def _error_body(parts: Iterator[bytes], limit: int | None) -> bytes:
    """An error status's body, cut at the cap (the status says enough past it)."""
    body = SizedBody(None)
    try:
        for piece in parts:
            body.add(piece)
            if limit is not None and body.size >= limit:
                break
    except APIResponseValidationError:  # a body that does not decode: the status still holds
        pass
    return body.value()[:limit]


async def _aerror_body(parts: AsyncIterator[bytes], limit: int | None) -> bytes:
    """An error status's body, cut at the cap (see `_error_body`)."""
    body = SizedBody(None)
    try:
        async for piece in parts:
            body.add(piece)
            if limit is not None and body.size >= limit:
                break
    except APIResponseValidationError:
        pass
    return body.value()[:limit]


def socket_serving(
    transport: httpx.BaseTransport | None, request: httpx.Request
) -> socket.socket | None:
    """The socket of the pooled HTTP/1.1 connection serving `request`, if it can be found.

    The watchdog's last resort, called only at a deadline that passed before the response's
    headers arrived on a reused connection (a new one is known from its trace event). It reads
    httpx's and httpcore's private pool state, so anything unexpected means "not found".
    """
    try:
        pool: Any = getattr(transport, "_pool", None)
        for waiting in list(getattr(pool, "_requests", ())):
            if waiting.request.extensions is request.extensions:
                connection = getattr(waiting.connection, "_connection", None)
                if type(connection).__name__ == "HTTP11Connection":
                    return socket_of(getattr(connection, "_network_stream", None))
    except Exception:  # a pool of another shape: no socket
        return None
    return None
