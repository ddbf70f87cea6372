"""The connection to one MCP server, owned by one task on a background event loop.

The SDK's transports and `ClientSession` are async context managers holding anyio task groups
and cancel scopes, which must be entered and left by the same task (the "exit cancel scope in a
different task" failures of other frameworks). So one task, the owner, enters them, waits
until it is told to stop or the connection ends, and leaves them; nothing else ever enters or
leaves them. Requests are separate tasks on the same loop that only use the session: a
cancelled request cancels itself (the SDK then sends `notifications/cancelled`), never the
owner, so the server is fine for the next call.

The loop runs on a daemon thread of its own (`LoopThread`), so one connection serves the
blocking drivers (`run_sync`, `stream_sync`) and any number of `asyncio.run` calls alike:
callers on other loops or threads wait on futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sfagent.mcp._errors import (
    MCPConnectionError,
    MCPError,
    MCPRequestError,
    MCPServerCrashed,
    MCPTimeoutError,
)
from sfagent.mcp._requests import MAX_PAGES

if TYPE_CHECKING:
    import mcp.types as mt
    from mcp import ClientSession
    from mcp.client._transport import TransportStreams

logger = logging.getLogger("sfagent")

T = TypeVar("T")

OpenTransport = Callable[[], AbstractAsyncContextManager["TransportStreams"]]
"""Makes the transport's context manager: it yields the session's (read, write) streams."""

# How long the owner may take to leave the transport (the SDK's stdio shutdown is bounded by
# about 6 s: stdin closed, then SIGTERM, then SIGKILL) before it is cancelled outright.
_SHUTDOWN_TIMEOUT = 10.0
# JSON-RPC codes the SDK uses for its own failures (mcp.types CONNECTION_CLOSED, REQUEST_TIMEOUT).
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001


class LoopThread:
    """An event loop running on a daemon thread until `stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                leftover = asyncio.all_tasks(self.loop)
                for task in leftover:
                    task.cancel()
                if leftover:
                    self.loop.run_until_complete(asyncio.wait(leftover, timeout=2.0))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()

    @property
    def is_current(self) -> bool:
        """Whether the calling thread is this loop's own."""
        return threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coroutine` as a task on the loop; cancelling the future cancels the task."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self, timeout: float) -> None:
        """Stop the loop (its leftover tasks are cancelled) and wait for the thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


@dataclass(eq=False)
class _Connection:
    """One started server: its session, the owner task and how to tell it to stop."""

    stop: asyncio.Event
    owner: asyncio.Task[None] | None = None
    session: ClientSession | None = None
    alive: bool = True
    background: set[asyncio.Task[None]] = field(default_factory=set)


class Link:
    """One MCP server's connection: started on first use, started again after it ends.

    Every method is a coroutine for the background loop (`LoopThread`); `MCPServer` submits
    them there.

    Args:
        server: The server's name, for errors and logs.
        open_transport: Makes the transport's context manager.
        connect_timeout: Seconds the start and the handshake may take.
        timeout: Seconds any one request may take (``None``: no bound).
        on_tools: Given the server's tool listing each time it is read.
    """

    def __init__(
        self,
        *,
        server: str,
        open_transport: OpenTransport,
        connect_timeout: float,
        timeout: float | None,
        on_tools: Callable[[list[mt.Tool]], None],
    ) -> None:
        self._server = server
        self._open = open_transport
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._on_tools = on_tools
        self._conn: _Connection | None = None
        self._starting: asyncio.Task[_Connection] | None = None
        self.stale = True
        """The tool listing has not been read since start or since the server said it changed."""
        self.starts = 0
        """How many times the server was started (a restart after a crash counts)."""

    @property
    def connected(self) -> bool:
        """Whether a connection is up (no I/O; a server that just exited may still count)."""
        conn = self._conn
        return conn is not None and conn.alive

    # --- requests ----------------------------------------------------------------------------

    async def refresh_tools(self) -> None:
        """Read the tool listing if it is stale (starting the server if need be)."""
        conn = await self._connected()
        if self.stale:
            await self._list_tools(conn)

    async def request(self, op: Callable[[ClientSession], Awaitable[T]], what: str) -> T:
        """Run `op` on the session (starting the server if need be), errors made typed."""
        conn = await self._connected()
        return await self._guarded(conn, op, what)

    async def _guarded(
        self, conn: _Connection, op: Callable[[ClientSession], Awaitable[T]], what: str
    ) -> T:
        from mcp import MCPError as SDKError

        assert conn.session is not None
        try:
            if self._timeout is None:
                return await op(conn.session)
            # Cancelled at the bound (the SDK then tells the server); not the session's own
            # read timeout, which would bound the handshake too (that has connect_timeout).
            return await asyncio.wait_for(op(conn.session), self._timeout)
        except asyncio.TimeoutError:
            raise MCPTimeoutError(
                f"{what} did not finish within {self._timeout:g} s", server=self._server
            ) from None
        except SDKError as exc:
            if exc.code == _CONNECTION_CLOSED:
                conn.alive = False
                raise self._crashed(what) from None
            if exc.code == _REQUEST_TIMEOUT:
                raise MCPTimeoutError(
                    f"{what} did not finish within {self._timeout:g} s", server=self._server
                ) from None
            raise MCPRequestError(
                f"{what} failed: {exc.message}", server=self._server, code=exc.code
            ) from None
        except (OSError, EOFError) as exc:
            conn.alive = False
            raise self._crashed(what) from exc
        except Exception as exc:
            import anyio

            if isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError)):
                conn.alive = False
                raise self._crashed(what) from exc
            raise

    def _crashed(self, what: str) -> MCPServerCrashed:
        return MCPServerCrashed(
            f"the connection ended during {what}; the server will be started again on next use",
            server=self._server,
        )

    async def _list_tools(self, conn: _Connection) -> None:
        import mcp.types as mt

        self.stale = False  # a change announced while listing marks it stale again
        try:
            specs: list[mt.Tool] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                params = mt.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self._guarded(conn, _tools_page(params), "tools/list")
                specs.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            else:
                raise MCPRequestError(
                    f"tools/list returned more than {MAX_PAGES} pages",
                    server=self._server,
                    code=0,
                )
            self._on_tools(specs)
        except BaseException:  # failed, timed out or cancelled (a run out of time): list again
            self.stale = True
            raise

    # --- the owner -----------------------------------------------------------------------------

    async def _connected(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        # One start at a time, in a task of its own that every caller waits for: a caller
        # cancelled meanwhile leaves the start running for the others.
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._restart())
            self._starting.add_done_callback(_retrieve)
        return await asyncio.shield(self._starting)

    async def _restart(self) -> _Connection:
        old = self._conn
        if old is not None and not old.alive:
            # It ended (a stdio server that exited): reap it, then start a fresh one.
            self._conn = None
            await self._shut(old)
        conn = self._conn
        if conn is None:
            conn = await self._start()
            self._conn = conn
            self.stale = True
        return conn

    async def _start(self) -> _Connection:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[ClientSession] = loop.create_future()
        conn = _Connection(stop=asyncio.Event())
        conn.owner = asyncio.create_task(self._own(conn, ready), name=f"mcp:{self._server}")
        try:
            conn.session = await asyncio.wait_for(asyncio.shield(ready), self._connect_timeout)
        except BaseException as exc:
            await self._shut(conn)
            if not ready.cancelled() and ready.done():
                ready.exception()  # retrieved: the reason is reported below, not logged by asyncio
            if isinstance(exc, asyncio.TimeoutError):
                raise MCPConnectionError(
                    f"did not start within {self._connect_timeout:g} s", server=self._server
                ) from None
            if isinstance(exc, (MCPError, asyncio.CancelledError)) or not isinstance(
                exc, Exception
            ):
                raise
            raise MCPConnectionError(
                f"could not start: {_describe(exc)}", server=self._server
            ) from exc
        self.starts += 1
        return conn

    async def _own(self, conn: _Connection, ready: asyncio.Future[ClientSession]) -> None:
        """Enter the transport and the session, wait for the end, leave them: one task."""
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._open())
                watched = _WatchedRead(read, lambda: _ended(conn))
                session = ClientSession(
                    watched,
                    write,
                    message_handler=lambda message: self._on_message(conn, message),
                )
                await stack.enter_async_context(session)
                await session.initialize()
                if not ready.done():
                    ready.set_result(session)
                await conn.stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:  # ExceptionGroups from the SDK's task groups too
            if not ready.done():
                ready.set_exception(exc)
            else:  # leaving the transport should not fail: a cancel scope left by another
                # task ("exit cancel scope in a different task") would show here
                logger.warning("MCP server '%s': closing raised %s", self._server, _describe(exc))
        finally:
            conn.alive = False

    async def _shut(self, conn: _Connection) -> None:
        """Tell the owner to leave the transport and wait for it, within a bound."""
        conn.alive = False
        conn.stop.set()
        for task in conn.background:
            task.cancel()
        owner = conn.owner
        if owner is None:
            return
        if conn.session is None:
            # Still starting (a close, or a caller out of time): the owner looks at `stop` only
            # once started, so it is cancelled; it still leaves the transport itself.
            owner.cancel()
        _, pending = await asyncio.wait({owner}, timeout=_SHUTDOWN_TIMEOUT)
        if pending:
            owner.cancel()
            await asyncio.wait({owner}, timeout=2.0)

    async def _on_message(self, conn: _Connection, message: Any) -> None:
        import mcp.types as mt

        message = getattr(message, "root", message)  # 1.x wraps notifications in a root model
        if isinstance(message, mt.ToolListChangedNotification):
            self.stale = True
            # Listed from a task of its own: the SDK delivers the next message only after this
            # handler returns, and the listing's answer is such a message.
            task = asyncio.create_task(self._relist(conn))
            conn.background.add(task)
            task.add_done_callback(conn.background.discard)
        elif isinstance(message, Exception):
            logger.debug("MCP server '%s': transport error %s", self._server, _describe(message))

    async def _relist(self, conn: _Connection) -> None:
        try:
            if conn.alive:
                await self._list_tools(conn)
        except Exception as exc:  # it stays stale: the next use lists again, and reports
            logger.warning(
                "MCP server '%s': reading the changed tool list failed: %s",
                self._server,
                _describe(exc),
            )

    async def close(self) -> None:
        """Stop the server, if started, and wait for its transport to close."""
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()  # `_start` then stops what it had started
            await asyncio.wait({starting}, timeout=_SHUTDOWN_TIMEOUT)
        conn, self._conn = self._conn, None
        self.stale = True
        if conn is not None:
            await self._shut(conn)


def _tools_page(
    params: mt.PaginatedRequestParams | None,
) -> Callable[[ClientSession], Awaitable[mt.ListToolsResult]]:
    async def op(session: ClientSession) -> mt.ListToolsResult:
        return await session.list_tools(params=params)

    return op


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A failed start is reported to the callers that waited; if all of them were cancelled,
    # this keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()


def _ended(conn: _Connection) -> None:
    conn.alive = False


def _describe(exc: BaseException) -> str:
    """One line for an exception, an ExceptionGroup by its first leaf (the SDK nests them)."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WatchedRead:
    """The session's read stream, telling when it ends: a connection known dead before a
    request is sent is started again instead of failing that request."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    def __getattr__(self, name: str) -> Any:  # `last_context` and anything newer
        return getattr(self._inner, name)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except Exception:
            self._on_end()
            raise

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, Exception):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedRead:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        result: bool | None = await self._inner.__aexit__(*exc_info)
        return result
