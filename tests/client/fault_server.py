"""A raw-socket HTTP/1.1 server for fault tests: any bytes, at any pace, or none at all.

The loopback server (`sfagent.testing.LoopbackServer`) plays a well-behaved SiliconFlow; this one
plays a hostile or broken one: it never answers, drips a response a few bytes a second (the
headers too, if asked), streams without end, sends a gzip bomb, or sends whatever status,
headers and body a test names. Each behaviour answers one request; the server serves them in
order, the last one for every later request.

Bounded: it binds 127.0.0.1 only, every connection and the server itself stop after
``lifetime`` seconds, and leaving the ``with`` block stops everything at once.

Example:
    >>> with FaultServer(drip(completion_body(), rate=4)) as server:  # doctest: +SKIP
    ...     SiliconFlow(api_key="k", base_url=server.base_url, timeout=1).complete(...)
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

__all__ = [
    "Behaviour",
    "FaultServer",
    "Wire",
    "completion_body",
    "drip",
    "endless",
    "gzip_bomb",
    "gzip_zeros",
    "gzip_zeros_quick",
    "request_json",
    "respond",
    "routed",
    "silent",
    "sse_chunk",
    "sse_stream",
]


class Wire:
    """One connection as a behaviour sees it: send bytes, pause; both give up when told to stop.

    Attributes:
        request: The request it is answering (head and body, raw).
    """

    def __init__(self, sock: socket.socket, stop: threading.Event, until: float) -> None:
        self._sock = sock
        self._stop = stop
        self._until = until
        self.request = b""

    @property
    def alive(self) -> bool:
        """False once the server stops or its lifetime ends."""
        return not self._stop.is_set() and time.monotonic() < self._until

    def send(self, data: bytes | memoryview) -> bool:
        """Send all of `data`; False when the client has gone or the server is stopping."""
        if not self.alive:
            return False
        try:
            self._sock.sendall(data)
        except OSError:
            return False
        return True

    def pause(self, seconds: float) -> bool:
        """Wait; False when the server stops (or its lifetime ends) first."""
        left = self._until - time.monotonic()
        return not self._stop.wait(min(seconds, max(left, 0.0))) and self.alive

    def hold(self) -> None:
        """Keep the connection open, silent, until the server stops."""
        while self.pause(0.5):
            pass


Behaviour = Callable[[Wire], bool]
"""Answers one request on a wire; returns True to keep the connection for another request."""


class FaultServer:
    """Serve `behaviours` in order (the last one repeats) on 127.0.0.1, in background threads.

    Args:
        behaviours: How to answer the first, second... request.
        lifetime: Seconds after which every connection is dropped and the server stops.

    Attributes:
        requests: The raw requests received, in order.
        connections: How many connections were accepted.
    """

    def __init__(self, *behaviours: Behaviour, lifetime: float = 30.0) -> None:
        if not behaviours:
            raise ValueError("a FaultServer needs at least one behaviour")
        self._behaviours = behaviours
        self._lifetime = lifetime
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._until = 0.0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def start(self) -> FaultServer:
        """Start accepting connections."""
        self._until = time.monotonic() + self._lifetime
        self._spawn(self._accept)
        return self

    def close(self) -> None:
        """Stop: drop every connection and wait for the threads."""
        self._stop.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._until:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._sockets.append(sock)
                self.connections += 1
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        wire = Wire(sock, self._stop, self._until)
        try:
            while wire.alive:
                request = _read_request(sock, wire)
                if request is None:
                    return
                with self._lock:
                    number = len(self.requests)
                    self.requests.append(request)
                behaviour = self._behaviours[min(number, len(self._behaviours) - 1)]
                wire.request = request
                if not behaviour(wire):
                    return
        finally:
            sock.close()


def _read_request(sock: socket.socket, wire: Wire) -> bytes | None:
    """One request, head and body (by Content-Length); None when the client goes first."""
    sock.settimeout(0.2)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, wire)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = _recv(sock, wire)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _recv(sock: socket.socket, wire: Wire) -> bytes:
    while wire.alive:
        try:
            return sock.recv(65536)
        except TimeoutError:  # noqa: PERF203 - a short timeout, to notice the server stopping
            continue
        except OSError:
            return b""
    return b""


# --- behaviours ------------------------------------------------------------------------------


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def silent() -> Behaviour:
    """Read the request, then never answer (the connection stays open)."""

    def behave(wire: Wire) -> bool:
        wire.hold()
        return False

    return behave


def respond(
    body: bytes = b"",
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    keep_alive: bool = False,
) -> Behaviour:
    """Answer at once with `status`, `headers` and `body` (Content-Length is added).

    Args:
        keep_alive: Keep the connection for the next request (else ``Connection: close``).
    """
    fields = {"Content-Type": "application/json", **(headers or {})}
    fields["Content-Length"] = str(len(body))
    fields["Connection"] = "keep-alive" if keep_alive else "close"
    message = _head(status, fields) + body

    def behave(wire: Wire) -> bool:
        return wire.send(message) and keep_alive

    return behave


def drip(
    body: bytes,
    *,
    rate: float,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    prefix: bytes = b"",
    length: bool = True,
    head_too: bool = False,
) -> Behaviour:
    """Send `prefix` of the body at once, then the rest of `body` one byte every 1/`rate` s.

    Args:
        length: Announce a Content-Length (else the body ends when the connection closes).
        head_too: Drip the status line and headers too (a server slow before its answer).
    """
    fields = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if length:
        fields["Content-Length"] = str(len(prefix) + len(body))
    head = _head(status, fields)

    def behave(wire: Wire) -> bool:
        slow = head + prefix + body if head_too else body
        if not head_too and not wire.send(head + prefix):
            return False
        for i in range(len(slow)):
            if not (wire.send(slow[i : i + 1]) and wire.pause(1 / rate)):
                return False
        wire.hold()
        return False

    return behave


def endless(
    first: bytes, repeat: bytes, *, headers: Mapping[str, str] | None = None, block: int = 1 << 16
) -> Behaviour:
    """Send `first`, then `repeat` over and over, as fast as the client reads, never ending."""
    fields = {"Content-Type": "text/event-stream", "Connection": "close", **(headers or {})}
    copies = max(1, block // max(len(repeat), 1))
    chunk = repeat * copies

    def behave(wire: Wire) -> bool:
        if not wire.send(_head(200, fields) + first):
            return False
        while wire.send(chunk):
            pass
        return False

    return behave


@functools.cache
def gzip_zeros(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed, built a MiB at a time (never the whole in memory)."""
    compress = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [compress.compress(block) for _ in range(size >> 20)]
    parts.append(compress.compress(bytes(size & ((1 << 20) - 1))))
    parts.append(compress.flush())
    return b"".join(parts)


def gzip_bomb(
    size: int,
    *,
    status: int = 200,
    content_type: str = "application/json",
    keep_alive: bool = False,
) -> Behaviour:
    """A small gzip body (``Content-Encoding: gzip``) that inflates to `size` zero bytes."""
    headers = {"Content-Encoding": "gzip", "Content-Type": content_type}
    return respond(gzip_zeros(size), status=status, headers=headers, keep_alive=keep_alive)


@functools.cache
def gzip_zeros_quick(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed like `gzip_zeros`, but ~40x faster for large sizes.

    Each MiB is deflated with a full flush, which resets the compressor, so every MiB gives the
    same bytes: one is compressed and repeated. 4 GiB (4.3 MB on the wire) takes about 2 s,
    nearly all of it the CRC; `gzip_zeros` takes about 30 s.
    """
    block = 1 << 20
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(block)
    whole = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(bytes(size % block)) + deflate.flush()
    crc = 0
    for _ in range(size // block):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(size % block), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip, deflate, no name, no time
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + whole * (size // block) + tail + trailer


def routed(choose: Callable[[bytes], Behaviour]) -> Behaviour:
    """Answer each request with the behaviour `choose` picks for it (from the raw request).

    One server can then play many conversations at once, each turn as its plan says.
    """

    def behave(wire: Wire) -> bool:
        return choose(wire.request)(wire)

    return behave


# --- payloads --------------------------------------------------------------------------------


def completion_body(text: str = "Hello", **message: Any) -> bytes:
    """A chat completion's JSON body."""
    reply = {"role": "assistant", "content": text, **message}
    choice = {"index": 0, "message": reply, "finish_reason": "stop"}
    body = {"id": "f", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
    return json.dumps(body).encode()


def sse_chunk(**delta: Any) -> bytes:
    """One ``data:`` event holding a chunk with this delta."""
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    chunk = {"id": "f", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps(chunk | {"choices": [choice]}).encode() + b"\n\n"


def request_json(raw: bytes) -> Any:
    """The JSON body of a raw request (as `FaultServer.requests` and `Wire.request` hold it)."""
    return json.loads(raw.partition(b"\r\n\r\n")[2] or b"null")


def sse_stream(parts: Iterable[bytes], *, done: bool = True) -> bytes:
    """Events joined, with ``data: [DONE]`` at the end unless `done` is False."""
    return b"".join(parts) + (b"data: [DONE]\n\n" if done else b"")
