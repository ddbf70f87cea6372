"""The async client's default transport: HTTP/1.1 keep-alive connections on asyncio, under httpx.

Why not httpx's own pool: httpx 0.28's pool (httpcore 1.0) slows as it grows and, with its
default ``keepalive 20``, opens a new connection for almost every request under concurrency
(encode/httpx#3215); measured in ``benchmarks/bench_transport.py``, 200 concurrent runs took 5x
longer than here. Why not aiohttp: it is about seven more packages for a plain install, and it
was still slower than this transport in the same benchmark (see docs/design.md, "Transport").

What it does: one `asyncio.Protocol` per connection, reused last-in first-out per origin
(scheme, host, port); responses framed by ``Content-Length``, chunked encoding or the end of
the connection; the per-phase timeouts httpx passes in ``request.extensions``; TLS through an
`ssl.SSLContext` (httpx's default one unless given). What it leaves to httpx: everything above
the connection (headers, redirects, decoding ``Content-Encoding``, cookies). Proxies are not
spoken: behind one, `AsyncSiliconFlow` keeps httpx's transport.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httpx

__all__ = ["KeepAliveTransport"]

_MAX_HEAD = 64 * 1024
"""Bytes of status line and headers accepted (httpcore and aiohttp use similar caps)."""
_MAX_CHUNK_LINE = 4096
"""Bytes of a chunk's size line accepted (with any extension)."""
_READ_HIGH_WATER = 256 * 1024
"""Buffered unread bytes at which the socket stops being read until the caller catches up (kept
small: it is held per connection, and a fast server would otherwise fill it before a size cap
is seen)."""
_PIECE = 64 * 1024
"""Most body bytes handed on per read: a reader decodes a whole piece at once, so this bounds
what one read can turn into."""
_NO_BODY_STATUS = frozenset({204, 304})
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""Hex digits only: ``int(text, 16)`` would also take ``0x``, ``+``, ``_`` and spaces."""
_Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: bytes in a buffer, one waiter at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: _Origin) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._closed = False
        self._paused = False

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_HIGH_WATER and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- use -----------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Open, with nothing unread: the server has not closed it while it sat idle."""
        transport = self.transport
        return (
            not self._closed
            and not self._buffer
            and transport is not None
            and (not transport.is_closing())
        )

    def close(self) -> None:
        """Close the socket; a waiting read wakes and finds it closed."""
        self._closed = True
        transport = self.transport
        if transport is not None and not self.loop.is_closed():
            if asyncio._get_running_loop() is self.loop:
                transport.close()
            else:  # pooled on another loop (another thread's): closed there
                self.loop.call_soon_threadsafe(transport.close)
        # On a closed loop (an earlier asyncio.run) nothing can run any more, a transport's
        # close included (it raises): the socket is left to the garbage collector.
        self._wake()

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send `data`, waiting while the socket's buffer is full (the write timeout)."""
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            raise httpx.WriteError("the connection was closed before the request was sent")
        transport.write(data)
        drained = self._drained
        if drained is not None:
            try:
                await asyncio.wait_for(asyncio.shield(drained), timeout)
            except asyncio.TimeoutError:
                raise httpx.WriteTimeout("timed out sending the request") from None

    async def _wait(self, timeout: float | None) -> None:
        # One future per wait, expired by a timer: cheaper than asyncio.wait_for per read.
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._read_more_if_caught_up()
        return data

    def _read_more_if_caught_up(self) -> None:
        if self._paused and len(self._buffer) <= _READ_HIGH_WATER // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()

    def take_chunk(self) -> bytes | None:
        """The data of a whole non-empty chunk already buffered, else ``None`` (then the
        careful path in `_chunks` reads it, and reports what is wrong with it). An event stream
        is mostly small chunks that arrive whole: one buffer operation each instead of three."""
        buffer = self._buffer
        end = buffer.find(b"\r\n", 0, _MAX_CHUNK_LINE)
        if end <= 0:
            return None
        size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            return None
        start = end + 2
        stop = start + int(size_text, 16)
        if stop == start or len(buffer) < stop + 2 or buffer[stop : stop + 2] != b"\r\n":
            return None
        data = bytes(buffer[start:stop])
        del buffer[: stop + 2]
        self._read_more_if_caught_up()
        return data

    async def read_until(self, marker: bytes, limit: int, timeout: float | None) -> bytes:
        """Bytes up to and including `marker`, at most `limit` of them."""
        start = 0
        while True:
            found = self._buffer.find(marker, start)
            # Past the cap with the marker too: a whole oversized head can come in one read.
            end = found + len(marker) if found >= 0 else len(self._buffer)
            if end > limit:
                raise httpx.RemoteProtocolError(f"the server sent over {limit} bytes of framing")
            if found >= 0:
                return self._take(end)
            if self._closed:
                raise _disconnected(self._buffer)
            start = max(0, len(self._buffer) - len(marker) + 1)
            await self._wait(timeout)

    async def read_exactly(self, size: int, timeout: float | None) -> bytes:
        """Exactly `size` bytes."""
        while len(self._buffer) < size:
            if self._closed:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection before the response body was complete"
                )
            await self._wait(timeout)
        return self._take(size)

    async def read_some(self, most: int, timeout: float | None) -> bytes:
        """What is buffered (up to `most`), waiting for some; ``b""`` once the server closed."""
        while not self._buffer:
            if self._closed:
                return b""
            await self._wait(timeout)
        return self._take(min(most, len(self._buffer)))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("timed out waiting for the server"))


def _time_out(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.PoolTimeout("timed out waiting for a free connection"))


def _disconnected(buffer: bytearray) -> httpx.RemoteProtocolError:
    if buffer:
        return httpx.RemoteProtocolError("the server closed the connection mid-response")
    return httpx.RemoteProtocolError("Server disconnected without sending a response.")


class _Head:
    """A parsed status line and headers."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status")

    def __init__(self, raw: bytes) -> None:
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not _is_status(parts[1]):
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line: {line[:80]!r}")
            value = value.strip()
            self.headers.append((name, value))
            self._note(name.lower(), value)
        if self.chunked and self.length is not None:
            # Both framings (RFC 9112 6.3): chunked wins, but a proxy in between may have read
            # the other one; what follows on this connection is not to be trusted.
            self.keep_alive = False

    def _note(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            if not value.isdigit() or (self.length is not None and int(value) != self.length):
                raise httpx.RemoteProtocolError(f"bad Content-Length: {value[:40]!r}")
            self.length = int(value)
        elif name == b"transfer-encoding":
            self.chunked = value.lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = _tokens(value)
            if b"close" in tokens:
                self.keep_alive = False
            elif b"keep-alive" in tokens:
                self.keep_alive = True


class _Body(httpx.AsyncByteStream):
    """A response body read off its connection; the connection goes back to the pool at the end."""

    def __init__(
        self, pool: KeepAliveTransport, conn: _Connection, head: _Head, timeout: float | None
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._head = head
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        try:
            async for piece in self._pieces(conn):
                yield piece
        except BaseException:
            self._release(reuse=False)
            raise
        head = self._head
        self._release(reuse=head.keep_alive and (head.chunked or head.length is not None))

    async def _pieces(self, conn: _Connection) -> AsyncIterator[bytes]:
        head, timeout = self._head, self._timeout
        if head.chunked:
            async for piece in _chunks(conn, timeout):
                yield piece
        elif head.length is not None:
            left = head.length
            while left:
                piece = await conn.read_some(min(left, _PIECE), timeout)
                if not piece:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection before the response body was complete"
                    )
                left -= len(piece)
                yield piece
        else:  # framed by the end of the connection
            while piece := await conn.read_some(_PIECE, timeout):
                yield piece

    def _release(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, reuse=reuse)

    async def aclose(self) -> None:
        # Closed before the end (an abandoned stream): the connection holds unread bytes.
        self._release(reuse=False)


async def _chunks(conn: _Connection, timeout: float | None) -> AsyncIterator[bytes]:
    while True:
        whole = conn.take_chunk()
        if whole is not None:
            yield whole
            continue
        line = await conn.read_until(b"\r\n", _MAX_CHUNK_LINE, timeout)
        size_text = line[:-2].split(b";", 1)[0].strip()  # whitespace may precede an extension
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            await _skip_trailers(conn, timeout)
            return
        left = size
        while left:
            piece = await conn.read_some(min(left, _PIECE), timeout)
            if not piece:
                raise httpx.RemoteProtocolError("the server closed the connection mid-chunk")
            left -= len(piece)
            yield piece
        if await conn.read_exactly(2, timeout) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk did not end with CRLF")


async def _skip_trailers(conn: _Connection, timeout: float | None) -> None:
    # Dropped, within one head's worth of bytes in all: a server must not stream them forever.
    budget = _MAX_HEAD
    while (line := await conn.read_until(b"\r\n", budget, timeout)) != b"\r\n":
        budget -= len(line)


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with a last-in first-out keep-alive pool per origin.

    Args:
        ssl_context: For ``https`` URLs; defaults to httpx's (certifi's CA bundle).
        max_connections: Connections open at once across origins; a request waits (the pool
            timeout) for one to free up. ``None``: no cap.
        max_idle: Idle connections kept per origin for reuse.
        keepalive_expiry: Seconds an idle connection is kept; servers close idle ones too.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = 512,
        max_idle: int = 1000,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self._open = 0
        self._waiting: deque[tuple[_Origin, asyncio.Future[_Connection | None]]] = deque()
        self._closed = False
        self.opened = 0
        """Connections opened so far (the benchmarks report it per request)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on a pooled connection; the body streams off the same connection."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        origin = _origin(request.url)
        payload, closing = _encode(request, await request.aread())
        # A failure is not retried here, even on a connection the server may have closed
        # while it sat idle: the server may have read the request, and the client's retry
        # policy (which counts tries and waits) is the one place that decides to send again.
        conn = await self._acquire(origin, timeouts.get("pool"), timeouts.get("connect"))
        try:
            await conn.write(payload, timeouts.get("write"))
            head = await _read_head(conn, request.method, timeouts.get("read"))
        except BaseException:
            self.release(conn, reuse=False)
            raise
        if closing:  # the request said close: the server may close as soon as it answers
            head.keep_alive = False
        return self._response(conn, head, request.method, timeouts.get("read"))

    def _response(
        self, conn: _Connection, head: _Head, method: str, read_timeout: float | None
    ) -> httpx.Response:
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": head.reason}
        if method == "HEAD" or head.status in _NO_BODY_STATUS:
            self.release(conn, reuse=head.keep_alive)
            return httpx.Response(head.status, headers=head.headers, extensions=extensions)
        body = _Body(self, conn, head, read_timeout)
        return httpx.Response(head.status, headers=head.headers, stream=body, extensions=extensions)

    # --- the pool ------------------------------------------------------------------------------

    async def _acquire(
        self, origin: _Origin, pool_timeout: float | None, connect_timeout: float | None
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = self._idle_connection(origin, loop)
        if conn is not None:
            return conn
        if not self._take_slot():
            handed = await self._wait_turn(loop, origin, pool_timeout)
            if handed is not None:
                return handed
        try:
            return await self._connect(loop, origin, connect_timeout)
        except BaseException:
            self._free_slot()
            raise

    def _idle_connection(
        self, origin: _Origin, loop: asyncio.AbstractEventLoop
    ) -> _Connection | None:
        idle = self._idle.get(origin)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.loop is loop and conn.reusable and now - conn.idle_since < self._expiry:
                return conn
            self._discard(conn)
        return None

    def _take_slot(self) -> bool:
        """Count a new connection in if the cap allows, closing an idle one if that makes room."""
        if self._max_connections is None or self._open < self._max_connections:
            self._open += 1
            return True
        for idle in self._idle.values():
            if idle:  # idle for another origin (this one's were tried): its slot changes hands
                idle.popleft().close()
                return True
        return False

    async def _wait_turn(
        self, loop: asyncio.AbstractEventLoop, origin: _Origin, timeout: float | None
    ) -> _Connection | None:
        """Wait for a connection to this origin to be handed over, or (``None``) for a slot."""
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        entry = (origin, waiter)
        self._waiting.append(entry)
        # The pool timeout fails the waiter itself, so a waiter is either handed its turn or
        # timed out, never both; asyncio.wait_for can time out (3.12+) or be cancelled (3.11:
        # the cancellation is then lost) just after a turn was handed over.
        timer = None if timeout is None else loop.call_later(timeout, _time_out, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())  # handed its turn as it was cancelled
            elif entry in self._waiting:  # left in the queue, it would hold others back
                self._waiting.remove(entry)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _give_back(self, handed: _Connection | None) -> None:
        if handed is None:
            self._free_slot()
        else:
            self.release(handed, reuse=True)

    def _free_slot(self) -> None:
        while self._waiting:
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the waiter
                return
        self._open -= 1

    def _hand_over(self, conn: _Connection) -> bool:
        """Give a reusable connection to the first request waiting for its origin."""
        for entry in self._waiting:
            origin, waiter = entry
            if origin == conn.origin and not waiter.done():
                self._waiting.remove(entry)
                waiter.set_result(conn)
                return True
        return False

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: _Origin, timeout: float | None
    ) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop, origin),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:  # ssl.SSLError is one
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        self.opened += 1
        return conn

    def release(self, conn: _Connection, *, reuse: bool) -> None:
        """Take back a connection whose exchange ended; keep it for reuse when it can be."""
        if reuse and not self._closed and conn.reusable:
            if self._waiting and self._hand_over(conn):
                return
            idle = self._idle.setdefault(conn.origin, deque())
            if not self._waiting and len(idle) < self._max_idle:
                conn.idle_since = conn.loop.time()
                idle.append(conn)
                return
        self._discard(conn)  # its slot goes to a waiter for another origin, if any

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._free_slot()

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their responses do. Requests
        still waiting for a connection fail."""
        self._closed = True
        while self._waiting:
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the transport is closed"))
        for idle in self._idle.values():
            while idle:
                self._discard(idle.pop())
        self._idle.clear()


def _origin(url: httpx.URL) -> _Origin:
    scheme = url.scheme
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"the URL must be http or https, got {scheme!r}")
    port = url.port or (443 if scheme == "https" else 80)
    # The host as the Host header has it (IDNA 2008): url.host is Unicode, which the socket
    # and SNI would encode with Python's IDNA 2003 codec, and "faß" would become "fass".
    return scheme, url.raw_host.decode("ascii"), port


def _encode(request: httpx.Request, body: bytes) -> tuple[bytes, bool]:
    """The request's bytes, and whether it asks for the connection to close after it."""
    target = request.url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    chunked = closing = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = True  # the body was read whole: send it as one chunk
        elif lowered == b"connection":
            closing = closing or b"close" in _tokens(value)
        lines.append(name + b": " + value)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if chunked:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return head + body, closing


def _tokens(value: bytes) -> set[bytes]:
    """A comma-separated header value's tokens, lower-cased."""
    return {token.strip() for token in value.lower().split(b",")}


def _is_status(text: bytes) -> bool:
    return len(text) == 3 and text.isdigit()


async def _read_head(conn: _Connection, method: str, timeout: float | None) -> _Head:
    while True:
        head = _Head(await conn.read_until(b"\r\n\r\n", _MAX_HEAD, timeout))
        if not 100 <= head.status < 200:
            return head
        # An interim response (100 Continue, 103 Early Hints): the real one follows.
