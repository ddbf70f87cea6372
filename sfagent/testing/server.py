"""A real HTTP server on 127.0.0.1 that speaks SiliconFlow's chat-completions API.

It runs an asyncio loop in a background thread and parses HTTP/1.1 by hand (request line,
headers, ``Content-Length`` body, keep-alive), which keeps it fast enough for a thousand
concurrent clients in the transport benchmark. Replies are scripted (`Reply`), served in order
or chosen by a function of the request, and can inject faults: error statuses, delays, dropped
connections, malformed chunks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from sfagent.offline.replies import Completion, RecordedRequest, Reply

__all__ = ["DEFAULT_MODELS", "LoopbackServer"]

DEFAULT_MODELS: tuple[str, ...] = (
    "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1",
    "Qwen/Qwen3-8B",
)
"""The ids ``GET /v1/models`` lists unless told otherwise."""

Responder = Callable[[RecordedRequest], Reply]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_HEAD = 64 * 1024


class _Dropped(Exception):
    """The scripted reply asked for the connection to be closed."""


class LoopbackServer:
    """A loopback SiliconFlow-compatible server for tests and offline demos.

    Use it as a context manager; `base_url` is ready inside the block::

        with LoopbackServer([Reply(text="Hello!")]) as server:
            client = SiliconFlow(api_key="test", base_url=server.base_url)

    Args:
        replies: Replies served in order, or a function from the request to its reply.
        default: The reply when the scripted ones run out; without one, such a request gets a 500.
        latency: Seconds added before every answer (simulates the network and the model).
        models: The ids ``GET /v1/models`` lists.
        api_key: When given, requests must carry ``Authorization: Bearer <api_key>`` or get 401.

    Attributes:
        requests: Every request received, in order (``Authorization`` removed).
        connections: How many TCP connections were accepted (keep-alive shows as reuse).
    """

    def __init__(
        self,
        replies: Iterable[Reply] | Responder = (),
        *,
        default: Reply | None = None,
        latency: float = 0.0,
        models: Sequence[str] = DEFAULT_MODELS,
        api_key: str | None = None,
    ) -> None:
        self._responder: Responder | None = replies if callable(replies) else None
        self._queue: deque[Reply] = deque() if callable(replies) else deque(replies)
        self._default = default
        self._latency = latency
        self._models = tuple(models)
        self._expected_auth = None if api_key is None else f"Bearer {api_key}"
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0

    def __repr__(self) -> str:
        return f"LoopbackServer(base_url={self.base_url!r}, received={len(self.requests)})"

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    def add(self, *replies: Reply) -> None:
        """Append replies to the script."""
        self._queue.extend(replies)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="sfagent-loopback", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop serving, close every connection and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._serve_connection, "127.0.0.1", 0, backlog=4096, limit=_MAX_HEAD
                )
            )
            self._port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # handed to the starting thread
            failure.append(exc)
            loop.close()
            self._loop = None
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- HTTP ----------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (_Dropped, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await _send(writer, 411, b"chunked request bodies are not supported", "text/plain")
            return False
        raw = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        auth = headers.pop("authorization", None)
        request = RecordedRequest(method, path, headers, _parse_body(raw))
        self.requests.append(request)
        keep_alive = headers.get("connection", "").lower() != "close"
        if self._expected_auth is not None and auth != self._expected_auth:
            await _send(writer, 401, b"Invalid token", "text/plain; charset=utf-8")
        else:
            await self._route(request, writer)
        return keep_alive

    async def _route(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> None:
        route = request.path.split("?", 1)[0].rstrip("/")
        if route == "/v1/models":
            if request.method != "GET":
                await _send(writer, 405, b"method not allowed", "text/plain")
                return
            await asyncio.sleep(self._latency)
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": ""} for m in self._models
            ]
            await _send(writer, 200, _dumps({"object": "list", "data": data}))
        elif route == "/v1/chat/completions":
            if request.method != "POST":
                await _send(writer, 405, b"method not allowed", "text/plain")
                return
            await self._answer(self._next_reply(request), request, writer)
        else:
            await _send(writer, 404, b"404 page not found", "text/plain; charset=utf-8")

    def _next_reply(self, request: RecordedRequest) -> Reply:
        if self._responder is not None:
            return self._responder(request)
        if self._queue:
            return self._queue.popleft()
        if self._default is not None:
            return self._default
        body = {"code": 50000, "message": "loopback server: no scripted reply left", "data": None}
        return Reply.error(500, body)

    async def _answer(
        self, reply: Reply, request: RecordedRequest, writer: asyncio.StreamWriter
    ) -> None:
        delay = self._latency + reply.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if reply.fault == "drop_before_response":
            raise _Dropped
        extra = dict(reply.headers)
        if reply.status != 200:
            body, content_type = reply.error_payload()
            await _send(writer, reply.status, body, content_type, extra)
            return
        completion = Completion(reply, request)
        if request.json.get("stream"):
            await self._stream(completion, writer, extra)
        else:
            await _send(writer, 200, _dumps(completion.response()), extra=extra)

    async def _stream(
        self, completion: Completion, writer: asyncio.StreamWriter, extra: dict[str, str]
    ) -> None:
        reply = completion.reply
        head = _head(200, "text/event-stream; charset=utf-8", extra, length=None)
        writer.write(head)
        for number, chunk in enumerate(completion.chunks()):
            if number == 1:
                if reply.fault == "malformed_chunk":
                    writer.write(_framed(b'data: {"id": "broken", "choices": [\n\n'))
                if reply.fault == "drop_mid_stream":
                    await writer.drain()
                    raise _Dropped
                if reply.stream_error is not None:
                    writer.write(_framed(_dumps(reply.stream_error) + b"\n\n"))
                    break
            if reply.chunk_delay > 0:
                await writer.drain()
                await asyncio.sleep(reply.chunk_delay)
            writer.write(_framed(b"data: " + _dumps(chunk) + b"\n\n"))
        else:
            if reply.fault != "cut_before_done":
                writer.write(_framed(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _dumps(value: object) -> bytes:
    # Compact separators, as SiliconFlow sends them.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _head(status: int, content_type: str, extra: dict[str, str], *, length: int | None) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"x-siliconcloud-trace-id: {uuid.uuid4().hex}",
    ]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in extra.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _framed(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    writer.write(_head(status, content_type, extra or {}, length=len(body)) + body)
    await writer.drain()
