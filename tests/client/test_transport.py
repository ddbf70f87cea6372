"""KeepAliveTransport, the async client's default transport, against real sockets on 127.0.0.1.

`LoopbackServer` plays a well-behaved SiliconFlow; `RawServer` (below) runs on the test's own
event loop and writes whatever bytes a test scripts, at whatever pace, recording what it
received: the framing edge cases, the broken servers and the ones that never answer.
Nothing here touches the internet, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import shutil
import socket
import ssl
import subprocess
import threading
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfagent.client import AsyncSiliconFlow, SiliconFlow
from sfagent.client._transport import KeepAliveTransport, _origin
from sfagent.exceptions import ConfigurationError
from sfagent.settings import ChatRequest
from sfagent.testing import LoopbackServer, Reply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]

KEY = "sk-FAKEKEY-transport-1234567890"
REQUEST = ChatRequest([{"role": "user", "content": "Hello"}], model="Qwen/Qwen3-8B")
TIMEOUT = httpx.Timeout(1.0)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# --- a raw HTTP/1.1 server on the test's loop --------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request as it arrived: the head (request line and headers) and the decoded body."""

    head: bytes
    body: bytes

    @property
    def target(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0].split(b" ")[1]

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = (line.partition(":") for line in lines if line)
        return {name.strip().lower(): value.strip() for name, _, value in pairs}


@dataclass(frozen=True)
class Close:
    """A scripted step: send these bytes, then close the connection."""

    data: bytes = b""


class Peer:
    """One accepted connection, as a scripted step or handler sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False

    async def request(self) -> Received | None:
        """The next request, its body decoded; ``None`` once the client has closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        received = Received(head, b"")
        if "chunked" in received.headers.get("transfer-encoding", ""):
            return Received(head, await self._chunked())
        length = int(received.headers.get("content-length", "0"))
        return Received(head, await self.reader.readexactly(length))

    async def _chunked(self) -> bytes:
        body = bytearray()
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            assert await self.reader.readexactly(2) == b"\r\n"
        while await self.reader.readuntil(b"\r\n") != b"\r\n":
            pass
        return bytes(body)

    async def send(self, data: bytes, *, piece: int = 0, pause: float = 0.0) -> None:
        """Write `data`, in pieces of `piece` bytes `pause` seconds apart when asked."""
        step = piece or len(data) or 1
        for start in range(0, len(data), step):
            self.writer.write(data[start : start + step])
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)

    def close(self) -> None:
        self.closed = True
        self.writer.close()


Step = bytes | Close | Callable[[Peer, Received], Awaitable[None]]
Handler = Callable[[Peer], Awaitable[None]]


class RawServer:
    """Answers requests with scripted steps, in order across connections (then ``OK``), or
    hands every connection to `handler`.

    Attributes:
        requests: Every request read by the scripted loop, in order.
        connections: Connections accepted.
        ended: Connections that have ended (the client closed, or the script did).
    """

    def __init__(
        self, *steps: Step, handler: Handler | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self._steps: deque[Step] = deque(steps)
        self._handler = handler
        self._tls = tls
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.requests: list[Received] = []
        self.connections = 0
        self.ended = 0

    def url(self, path: str = "/") -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{port}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        peer = Peer(reader, writer)
        try:
            await (self._handler(peer) if self._handler else self._script(peer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away mid-request
        except asyncio.CancelledError:
            pass  # shut down; ended, not cancelled (3.11's start_server logs a cancelled one)
        finally:
            writer.close()
            self.ended += 1
            self._tasks.discard(task)

    async def _script(self, peer: Peer) -> None:
        while not peer.closed and (request := await peer.request()) is not None:
            self.requests.append(request)
            step = self._steps.popleft() if self._steps else OK
            if isinstance(step, bytes):
                await peer.send(step)
            elif isinstance(step, Close):
                await peer.send(step.data)
                peer.close()
            else:
                await step(peer, request)


def response(
    body: bytes = b"ok",
    *headers: bytes,
    status: bytes = b"200 OK",
    version: bytes = b"HTTP/1.1",
    length: bool = True,
) -> bytes:
    """A whole response, framed by Content-Length unless `length` is false."""
    lines = [version + b" " + status, *headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*pieces: bytes, trailers: bytes = b"") -> bytes:
    """A chunked response carrying `pieces`, each chunk with an extension, then trailers."""
    body = b"".join(b"%x;name=value\r\n%s\r\n" % (len(p), p) for p in pieces)
    end = b"0\r\n" + trailers + b"\r\n"
    return response(body + end, b"Transfer-Encoding: chunked", length=False)


async def forever(peer: Peer, request: Received | None = None) -> None:
    """Never answer; return once the client closes (or the server shuts down)."""
    while await peer.reader.read(64 * 1024):
        pass


# --- helpers -----------------------------------------------------------------------------------


@asynccontextmanager
async def client_on(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, KeepAliveTransport]]:
    """An httpx client over a fresh KeepAliveTransport, both closed on the way out."""
    transport = KeepAliveTransport(**options)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        yield client, transport


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> None:
    """Wait (bounded) until `condition` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.005)


def idle(transport: KeepAliveTransport) -> list[Any]:
    return [conn for conns in transport._idle.values() for conn in conns]


def counted(transport: KeepAliveTransport) -> int:
    """Connections the pool counts as open (in use or idle)."""
    return transport._open


def waiting(transport: KeepAliveTransport) -> int:
    """Requests queued for a connection (a finished wait must leave no entry behind)."""
    return len(transport._waiting)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async client picks KeepAliveTransport only without a proxy in the environment."""
    for name in ("HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# --- 1. keep-alive -----------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    with LoopbackServer() as server:
        async with client_on() as (client, transport):
            for _ in range(5):
                answer = await client.get(server.base_url + "/models")
                assert answer.status_code == 200
                assert answer.json()["object"] == "list"
            assert server.connections == 1
            assert transport.opened == 1
            assert len(idle(transport)) == 1
            assert answer.http_version == "HTTP/1.1"
            assert answer.reason_phrase == "OK"


@pytest.mark.parametrize(
    ("first", "reused"),
    [
        (response(b"ok", b"Connection: close"), False),
        (response(b"ok", b"Connection: Keep-Alive, Close"), False),
        (response(b"ok", version=b"HTTP/1.0"), False),
        (response(b"ok", b"Connection: keep-alive", version=b"HTTP/1.0"), True),
        (response(b"ok", b"Connection: keep-alive"), True),
    ],
    ids=["close", "close-in-a-list", "http10", "http10-keep-alive", "http11-keep-alive"],
)
async def test_reuse_follows_the_response(first: bytes, reused: bool) -> None:
    # The server keeps every connection open: only the response's own words decide.
    async with RawServer(first, OK) as server, client_on() as (client, transport):
        assert (await client.get(server.url())).text == "ok"
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == server.connections == (1 if reused else 2)


async def test_a_request_asking_to_close_is_not_reused() -> None:
    # The server keeps the connection open and its response says nothing; the request said close.
    async with RawServer(OK, OK) as server, client_on() as (client, transport):
        await client.get(server.url(), headers={"Connection": "close"})
        await client.get(server.url())
        assert transport.opened == server.connections == 2


async def test_an_expired_idle_connection_is_replaced() -> None:
    async with RawServer() as server, client_on(keepalive_expiry=0.0) as (client, transport):
        for _ in range(3):
            assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 3
        await eventually(lambda: server.ended == 2)  # the expired ones were closed
        assert counted(transport) == 1


async def test_max_idle_bounds_what_is_kept() -> None:
    async with RawServer() as server, client_on(max_idle=1) as (client, transport):
        answers = await asyncio.gather(*(client.get(server.url()) for _ in range(3)))
        assert [a.text for a in answers] == ["ok"] * 3
        assert len(idle(transport)) == 1
        assert counted(transport) == 1


# --- 2. the cap --------------------------------------------------------------------------------


async def test_the_cap_bounds_concurrent_connections() -> None:
    with LoopbackServer(latency=0.05) as server:
        async with client_on(max_connections=2) as (client, transport):
            answers = await asyncio.gather(
                *(client.get(server.base_url + "/models") for _ in range(10))
            )
            assert all(a.status_code == 200 for a in answers)
            assert server.connections <= 2
            assert transport.opened <= 2
            assert counted(transport) <= 2
            assert waiting(transport) == 0


async def test_one_slot_alternates_between_origins() -> None:
    with LoopbackServer(latency=0.02) as one, LoopbackServer(latency=0.02) as two:
        urls = [one.base_url + "/models", two.base_url + "/models"]
        async with client_on(max_connections=1) as (client, transport):
            for number in range(4):  # the other origin's idle connection gives up its slot
                assert (await client.get(urls[number % 2])).status_code == 200
            assert transport.opened == 4
            answers = await asyncio.gather(*(client.get(urls[n % 2]) for n in range(6)))
            assert all(a.status_code == 200 for a in answers)
            assert counted(transport) == 1
            assert waiting(transport) == 0
    assert len(one.requests) == len(two.requests) == 5


async def test_a_waiter_is_handed_the_connection_of_its_origin() -> None:
    async with RawServer() as server, client_on(max_connections=1) as (client, transport):
        held = await client.send(client.build_request("GET", server.url()), stream=True)
        second = asyncio.create_task(client.get(server.url()))
        await eventually(lambda: waiting(transport) == 1)
        await held.aread()
        assert (await asyncio.wait_for(second, 1.0)).text == "ok"
        assert transport.opened == server.connections == 1


async def test_pool_timeout_while_every_connection_is_busy() -> None:
    async with RawServer() as server, client_on(max_connections=1) as (client, transport):
        held = await client.send(client.build_request("GET", server.url()), stream=True)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(server.url(), timeout=httpx.Timeout(1.0, pool=0.05))
        assert waiting(transport) == 0
        await held.aread()
        # The timed-out waiter left nothing behind: the connection went idle and is reused.
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 1
        assert counted(transport) == 1


async def test_a_cancelled_waiter_leaks_no_slot() -> None:
    async with RawServer() as server, client_on(max_connections=1) as (client, transport):
        held = await client.send(client.build_request("GET", server.url()), stream=True)
        waiter = asyncio.create_task(client.get(server.url()))
        await eventually(lambda: waiting(transport) == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert waiting(transport) == 0
        await held.aread()
        answers = await asyncio.gather(*(client.get(server.url()) for _ in range(3)))
        assert [a.text for a in answers] == ["ok"] * 3
        assert transport.opened == 1
        assert counted(transport) == 1


async def test_a_waiter_cancelled_as_it_is_handed_a_connection_gives_it_back() -> None:
    async with RawServer() as server, client_on(max_connections=1) as (client, transport):
        held = await client.send(client.build_request("GET", server.url()), stream=True)
        waiter = asyncio.create_task(client.get(server.url()))
        await eventually(lambda: waiting(transport) == 1)
        await held.aread()  # hands the connection over; the waiter has not run yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 1
        assert counted(transport) == 1


# --- 3. framing --------------------------------------------------------------------------------


async def test_content_length_body() -> None:
    body = b"x" * 100_000
    async with RawServer(response(body)) as server, client_on() as (client, _):
        answer = await client.get(server.url())
        assert answer.content == body
        assert answer.headers["content-length"] == "100000"


async def test_chunked_body_with_extensions_and_trailers() -> None:
    reply = chunked(b"hello ", b"chunked ", b"world", trailers=b"X-Checksum: abc\r\nX-More: 1\r\n")
    async with RawServer(reply, reply) as server, client_on() as (client, transport):
        for _ in range(2):
            assert (await client.get(server.url())).content == b"hello chunked world"
        assert transport.opened == 1


async def test_close_delimited_body() -> None:
    reply = Close(response(b"until the end", length=False))
    async with RawServer(reply) as server, client_on() as (client, transport):
        assert (await client.get(server.url())).content == b"until the end"
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("GET", response(b"", status=b"204 No Content", length=False)),
        ("GET", response(b"", b'ETag: "x"', status=b"304 Not Modified", length=False)),
        ("HEAD", response(b"", b"Content-Length: 1000", length=False)),
        ("HEAD", response(b"", b"Transfer-Encoding: chunked", length=False)),
    ],
    ids=["204", "304", "head", "head-chunked"],
)
async def test_responses_without_a_body(method: str, reply: bytes) -> None:
    async with RawServer(reply) as server, client_on() as (client, transport):
        answer = await client.request(method, server.url())
        assert answer.content == b""
        assert (await client.get(server.url())).text == "ok"  # the same connection, in step
        assert transport.opened == 1


async def test_interim_responses_come_before_the_real_one() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    async with RawServer(interim + response(b"final")) as server, client_on() as (client, _):
        answer = await client.post(server.url(), content=b"data")
        assert answer.status_code == 200
        assert answer.content == b"final"
        assert "link" not in answer.headers


@pytest.mark.parametrize(
    "reply",
    [response(b"0123456789" * 20), chunked(b"0123456789" * 10, b"abc" * 30, trailers=b"T: 1\r\n")],
    ids=["content-length", "chunked"],
)
async def test_a_response_in_many_small_writes(reply: bytes) -> None:
    async def drip(peer: Peer, request: Received) -> None:
        await peer.send(reply, piece=7, pause=0.002)

    async with RawServer(drip) as server, client_on() as (client, transport):
        answer = await client.get(server.url())
        assert answer.content in (b"0123456789" * 20, b"0123456789" * 10 + b"abc" * 30)
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 1


async def test_a_large_response_survives_read_back_pressure() -> None:
    body = bytes(range(256)) * (40 * 1024)  # 10 MiB: past the buffer's high-water mark
    digest = hashlib.sha256(body).digest()
    replies = response(body), chunked(body[:5_000_000], body[5_000_000:])
    async with RawServer(*replies) as server, client_on() as (client, transport):
        async with client.stream("GET", server.url()) as answer:
            await asyncio.sleep(0.05)  # let the socket fill the buffer and pause
            assert hashlib.sha256(await answer.aread()).digest() == digest
        second = await client.get(server.url())
        assert hashlib.sha256(second.content).digest() == digest
        assert transport.opened == 1


BIG_HEAD = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nok"
MALFORMED = {
    "not-http": b"ICY 200 OK\r\n\r\n",
    "http2-line": b"HTTP/2 200\r\nContent-Length: 2\r\n\r\nok",
    "status-not-a-number": b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok",
    "status-two-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok",
    "folded-header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
    "conflicting-lengths": response(b"ok", b"Content-Length: 3"),
    "length-not-a-number": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "chunk-size-not-hex": response(b"zz\r\nok\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"),
    "chunk-size-0x": response(b"0x2\r\nok\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"),
    "chunk-size-negative": response(b"-2\r\nok\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"),
    "chunk-size-empty": response(b"\r\nok\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"),
    "chunk-without-crlf": response(b"2\r\nokXX0\r\n\r\n", b"Transfer-Encoding: chunked"),
    "chunk-size-line-too-long": response(b"2;" + b"e" * 5000 + b"\r\nok", length=False),
    "head-too-large": BIG_HEAD,
    "head-too-large-unfinished": BIG_HEAD[:66_000],
    "endless-trailers": response(b"0\r\n" + b"X-T: 0123456789\r\n" * 5000, length=False),
}
MALFORMED["chunk-size-line-too-long"] = MALFORMED["chunk-size-line-too-long"].replace(
    b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1
)
MALFORMED["endless-trailers"] = MALFORMED["endless-trailers"].replace(
    b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1
)


@pytest.mark.parametrize("reply", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_response_is_a_protocol_error(reply: bytes) -> None:
    # The server keeps the connection open; the client must not use it again.
    async with RawServer(reply) as server, client_on() as (client, transport):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url())
        assert idle(transport) == []
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == server.connections == 2
        assert counted(transport) == 1


async def test_a_large_head_within_the_cap_is_read() -> None:
    reply = response(b"ok", b"X-Pad: " + b"a" * 60_000)
    async with RawServer(reply) as server, client_on() as (client, _):
        answer = await client.get(server.url())
        assert answer.text == "ok"
        assert len(answer.headers["x-pad"]) == 60_000


async def test_repeated_equal_content_lengths_are_accepted() -> None:
    reply = response(b"ok", b"Content-Length: 2")
    async with RawServer(reply) as server, client_on() as (client, _):
        assert (await client.get(server.url())).text == "ok"


async def test_chunked_with_a_content_length_is_read_chunked_and_not_reused() -> None:
    body, framing = b"2\r\nok\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"
    reply = response(body, framing, b"Content-Length: 5", length=False)
    async with RawServer(reply) as server, client_on() as (client, transport):
        assert (await client.get(server.url())).text == "ok"
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2


@pytest.mark.parametrize(
    "reply",
    [
        Close(b""),
        Close(b"HTTP/1.1 200 OK\r\nContent-"),
        Close(response(b"0123456789")[:-5]),
        Close(chunked(b"0123456789")[:-12]),
        Close(response(b"2\r\nok\r\n", b"Transfer-Encoding: chunked", length=False)),
    ],
    ids=["before-response", "mid-head", "mid-body", "mid-chunk", "before-last-chunk"],
)
async def test_a_server_closing_mid_response_is_a_protocol_error(reply: Close) -> None:
    async with RawServer(reply) as server, client_on() as (client, transport):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url())
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2
        assert counted(transport) == 1


async def test_bytes_after_the_response_spoil_the_connection() -> None:
    async with RawServer(OK + b"HTTP/1.1 200 OK\r\n") as server, client_on() as (client, transport):
        assert (await client.get(server.url())).text == "ok"
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2


# --- 4. timeouts and failures ------------------------------------------------------------------


async def test_a_silent_server_is_a_read_timeout() -> None:
    async with RawServer(forever) as server, client_on() as (client, transport):
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url(), timeout=httpx.Timeout(1.0, read=0.1))
        assert counted(transport) == 0
        await eventually(lambda: server.ended == 1)  # the connection was closed, not kept


async def test_a_body_that_stops_is_a_read_timeout() -> None:
    async def stall(peer: Peer, request: Received) -> None:
        await peer.send(response(b"0123456789")[:-4])
        await forever(peer)

    async with RawServer(stall) as server, client_on() as (client, transport):
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url(), timeout=httpx.Timeout(1.0, read=0.1))
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2


async def test_connection_refused_is_a_connect_error() -> None:
    async with client_on() as (client, transport):
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")
        assert counted(transport) == 0
        assert transport.opened == 0


async def test_a_server_that_does_not_read_is_a_write_timeout() -> None:
    async def deaf(peer: Peer) -> None:
        await asyncio.Event().wait()  # reads nothing, ever

    async with RawServer(handler=deaf) as server, client_on() as (client, transport):
        with pytest.raises(httpx.WriteTimeout):
            await client.post(
                server.url(), content=b"x" * 16_000_000, timeout=httpx.Timeout(1.0, write=0.1)
            )
        assert counted(transport) == 0


async def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    go = asyncio.Event()

    async def answer_then_close(peer: Peer, request: Received) -> None:
        await peer.send(OK)
        await asyncio.wait_for(go.wait(), 1.0)
        peer.close()

    async with RawServer(answer_then_close) as server, client_on() as (client, transport):
        assert (await client.get(server.url())).text == "ok"
        [kept] = idle(transport)
        assert kept.reusable
        go.set()
        await eventually(lambda: not kept.reusable)
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == server.connections == 2
        assert counted(transport) == 1


async def test_an_unsupported_scheme_is_refused() -> None:
    async with KeepAliveTransport() as transport:
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/"))


# --- 5. streams --------------------------------------------------------------------------------


async def test_a_stream_is_read_as_it_arrives() -> None:
    sent_last = False
    first_read = asyncio.Event()

    async def in_two_parts(peer: Peer, request: Received) -> None:
        nonlocal sent_last
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await asyncio.wait_for(first_read.wait(), 1.0)
        sent_last = True
        await peer.send(b"4\r\nlast\r\n0\r\n\r\n")

    async with RawServer(in_two_parts) as server, client_on() as (client, transport):
        async with client.stream("GET", server.url()) as answer:
            pieces = answer.aiter_raw()
            assert await anext(pieces) == b"first"
            assert not sent_last
            first_read.set()
            assert [piece async for piece in pieces] == [b"last"]
        assert sent_last
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 1


async def test_a_response_closed_early_discards_its_connection() -> None:
    async def endless(peer: Peer, request: Received) -> None:
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await forever(peer)

    async with RawServer(endless) as server, client_on(max_connections=1) as (client, transport):
        async with client.stream("GET", server.url()) as answer:
            assert await anext(answer.aiter_raw()) == b"first"
        await eventually(lambda: server.ended == 1)
        assert counted(transport) == 0
        assert (await client.get(server.url())).text == "ok"
        assert transport.opened == 2


@pytest.mark.parametrize("when", ["before-headers", "mid-body"])
async def test_cancelling_a_request_discards_its_connection_and_frees_the_slot(when: str) -> None:
    started = asyncio.Event()

    async def stall(peer: Peer, request: Received) -> None:
        if when == "mid-body":
            await peer.send(response(b"0123456789")[:-4])
        await forever(peer)

    async def fetch(client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", url) as answer:
            started.set()
            await answer.aread()

    async with RawServer(stall) as server, client_on(max_connections=1) as (client, transport):
        task = asyncio.create_task(fetch(client, server.url()))
        if when == "mid-body":
            await asyncio.wait_for(started.wait(), 1.0)
        else:
            await eventually(lambda: len(server.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert counted(transport) == 0
        await eventually(lambda: server.ended == 1)
        answer = await client.get(server.url(), timeout=httpx.Timeout(1.0, pool=0.2))
        assert answer.text == "ok"
        assert transport.opened == 2


# --- 6. the request side -----------------------------------------------------------------------


async def test_a_chunked_request_body_arrives_intact() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for number in range(5):
            yield b"part %d;" % number

    async with RawServer() as server, client_on() as (client, _):
        await client.post(server.url("/upload"), content=parts())
        [received] = server.requests
        assert received.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in received.headers
        assert received.body == b"part 0;part 1;part 2;part 3;part 4;"


async def test_an_empty_chunked_request_body() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    async with RawServer() as server, client_on() as (client, _):
        assert (await client.post(server.url(), content=nothing())).text == "ok"
        assert server.requests[0].body == b""


async def test_the_target_keeps_its_path_and_query() -> None:
    async with RawServer() as server, client_on() as (client, _):
        await client.get(server.url("/v1/a%20b/c"), params={"q": "x y", "lang": "中"})
        await client.get(server.url("?only=query"))
        first, second = server.requests
        assert first.target == b"/v1/a%20b/c?q=x+y&lang=%E4%B8%AD"
        assert first.headers["host"] == server.url().split("//")[1].rstrip("/")
        assert second.target == b"/?only=query"


async def test_a_large_request_body_arrives_intact() -> None:
    body = bytes(range(256)) * (20 * 1024)  # 5 MiB: the write waits for the socket to drain
    async with RawServer() as server, client_on() as (client, transport):
        assert (await client.post(server.url(), content=body)).text == "ok"
        assert (await client.post(server.url(), content=body[::-1])).text == "ok"
        assert [r.body == b for r, b in zip(server.requests, (body, body[::-1]), strict=True)] == [
            True,
            True,
        ]
        assert transport.opened == 1


# --- 7. TLS ------------------------------------------------------------------------------------


@dataclass
class Certificate:
    cert: Path
    key: Path
    server: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.load_cert_chain(self.cert, self.key)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    if not Path(openssl).exists():
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Certificate(cert, key)


async def test_https_with_a_context_that_trusts_the_server(certificate: Certificate) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate.cert))
    server = RawServer(OK, response(b"again"), tls=certificate.server)
    async with server, client_on(ssl_context=trusting) as (client, transport):
        assert server.url().startswith("https://")
        assert (await client.get(server.url())).text == "ok"
        assert (await client.get(server.url())).text == "again"
        assert transport.opened == server.connections == 1


async def test_https_with_an_untrusted_certificate_is_a_connect_error(
    certificate: Certificate,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # In asyncio's debug mode the server reports the handshake the client broke off.
        if isinstance(context.get("exception"), ConnectionError | ssl.SSLError):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
    try:
        async with RawServer(tls=certificate.server) as server, client_on() as (client, transport):
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.get(server.url())
            assert counted(transport) == 0
    finally:
        loop.set_exception_handler(previous)


# --- 8. content decoding -----------------------------------------------------------------------


async def test_gzip_bodies_are_decoded_by_httpx() -> None:
    text = b'{"text": "' + b"compressible " * 1000 + b'"}'
    reply = response(gzip.compress(text), b"Content-Encoding: gzip")
    async with RawServer(reply) as server, client_on() as (client, _):
        answer = await client.get(server.url())
        assert answer.content == text
        assert answer.headers["content-encoding"] == "gzip"


# --- 9. closing --------------------------------------------------------------------------------


async def test_aclose_closes_idle_connections() -> None:
    async with RawServer() as server:
        transport = KeepAliveTransport()
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            await asyncio.gather(*(client.get(server.url()) for _ in range(3)))
            assert len(idle(transport)) == 3
        await eventually(lambda: server.ended == 3)  # the server saw each one closed
        assert counted(transport) == 0
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx.Request("GET", server.url()))


async def test_aclose_closes_a_busy_connection_when_its_response_ends() -> None:
    async with RawServer() as server:
        transport = KeepAliveTransport()
        request = httpx.Request("GET", server.url(), extensions={"timeout": TIMEOUT.as_dict()})
        held = await transport.handle_async_request(request)
        await transport.aclose()
        assert await held.aread() == b"ok"
        await eventually(lambda: server.ended == 1)
        assert counted(transport) == 0
        assert idle(transport) == []


async def test_aclose_ends_the_wait_of_queued_requests() -> None:
    async with RawServer() as server:
        transport = KeepAliveTransport(max_connections=1)
        request = httpx.Request("GET", server.url(), extensions={"timeout": TIMEOUT.as_dict()})
        held = await transport.handle_async_request(request)
        queued = asyncio.create_task(transport.handle_async_request(request))
        await eventually(lambda: waiting(transport) == 1)
        await transport.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(queued, 1.0)
        await held.aclose()
        assert counted(transport) == 0
        assert transport.opened == 1


async def fetch_on(transport: KeepAliveTransport, url: str, *, close: bool = False) -> bytes:
    """One GET straight through the transport; then close the transport when asked."""
    request = httpx.Request("GET", url, extensions={"timeout": TIMEOUT.as_dict()})
    body = await (await transport.handle_async_request(request)).aread()
    if close:
        await transport.aclose()
    return body


def test_a_pool_outlives_its_event_loop() -> None:
    # Two asyncio.run calls on one transport: the first loop ends with a connection idle.
    transport = KeepAliveTransport()
    with LoopbackServer() as server:
        url = server.base_url + "/models"
        assert b'"object":"list"' in asyncio.run(fetch_on(transport, url))
        [orphan] = idle(transport)
        assert b'"object":"list"' in asyncio.run(fetch_on(transport, url, close=True))
        assert transport.opened == server.connections == 2
        assert orphan not in idle(transport)
    # Nothing can run on the first loop any more, its socket's close included: it goes when
    # collected (with the ResourceWarning asyncio gives any transport its loop left open).
    gone = weakref.ref(orphan.transport)
    del orphan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert gone() is None


async def test_a_connection_pooled_by_another_running_loop_is_closed_on_that_loop() -> None:
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        async with RawServer() as server, KeepAliveTransport() as transport:
            on_other = asyncio.run_coroutine_threadsafe(fetch_on(transport, server.url()), other)
            assert await asyncio.wait_for(asyncio.wrap_future(on_other), 1.0) == b"ok"
            [foreign] = idle(transport)
            assert await fetch_on(transport, server.url()) == b"ok"  # not on the foreign one
            await eventually(lambda: server.ended == 1)  # the other loop closed it
            assert foreign not in idle(transport)
            assert transport.opened == server.connections == 2
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(1.0)
        other.close()


def test_an_international_host_is_connected_to_as_the_host_header_names_it() -> None:
    # httpx writes the Host header in IDNA 2008 ("xn--fa-hia"); Python's own idna codec, used
    # for a str host, is IDNA 2003 ("fass"): another host.
    request = httpx.Request("GET", "https://faß.example/")
    assert _origin(request.url) == ("https", request.headers["host"], 443)
    assert _origin(httpx.URL("http://[::1]:8080/")) == ("http", "::1", 8080)


# --- 10. the clients ---------------------------------------------------------------------------


@pytest.mark.usefixtures("no_proxy")
async def test_async_client_reuses_one_connection_by_default() -> None:
    replies = [Reply(text="one"), Reply(text="two two"), Reply(text="three"), Reply(text="four")]
    with LoopbackServer(replies) as server:
        async with AsyncSiliconFlow(api_key=KEY, base_url=server.base_url) as client:
            assert isinstance(client._transport, KeepAliveTransport)
            assert (await client.complete(REQUEST)).message.content == "one"
            assert (await client.stream(REQUEST).get_final_response()).message.content == "two two"
            async with client.stream(REQUEST) as stream:
                assert [chunk async for chunk in stream] != []
            assert (await client.complete(REQUEST)).message.content == "four"
            assert "Qwen/Qwen3-8B" in await client.list_models()
            assert client._transport.opened == 1
        assert server.connections == 1
        assert len(server.requests) == 5
        assert counted(client._transport) == 0  # closed with the client


async def test_async_client_sends_on_a_given_transport_and_leaves_it_open() -> None:
    with LoopbackServer([Reply(text="hi"), Reply(text="again")]) as server:
        async with KeepAliveTransport() as transport:
            async with AsyncSiliconFlow(
                api_key=KEY, base_url=server.base_url, transport=transport
            ) as client:
                assert (await client.complete(REQUEST)).message.content == "hi"
            async with AsyncSiliconFlow(
                api_key=KEY, base_url=server.base_url, transport=transport
            ) as client:
                assert (await client.complete(REQUEST)).message.content == "again"
            assert transport.opened == server.connections == 1


def models_handler(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "m/one"}]})

    return handler


async def test_async_client_on_a_mock_transport() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(models_handler(seen))
    url = "https://api.example.test/v1"
    async with AsyncSiliconFlow(api_key=KEY, base_url=url, transport=transport) as client:
        assert await client.list_models() == ["m/one"]
    [request] = seen
    assert str(request.url) == "https://api.example.test/v1/models"
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_sync_client_on_a_mock_transport() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(models_handler(seen))
    url = "https://api.example.test/v1"
    with SiliconFlow(api_key=KEY, base_url=url, transport=transport) as client:
        assert client.list_models() == ["m/one"]
    assert [str(r.url) for r in seen] == ["https://api.example.test/v1/models"]


async def test_http_client_and_transport_together_are_refused() -> None:
    transport = httpx.MockTransport(models_handler([]))
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigurationError, match="not both"):
            AsyncSiliconFlow(api_key=KEY, http_client=http, transport=transport)
    with httpx.Client() as sync_http, pytest.raises(ConfigurationError, match="not both"):
        SiliconFlow(api_key=KEY, http_client=sync_http, transport=transport)
