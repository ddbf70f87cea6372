"""`MCPServerStdio` and `MCPServerHTTP`: an MCP server's tools beside `@tool` functions.

A server object goes in `Agent(tools=[...])` as is. Its tools are listed when a run starts
(starting the server then, within the run's time) and kept until the server says its list
changed (`notifications/tools/list_changed`); each call goes through `tools/call`. Resources and
prompts are there for Python code (`read_resource`, `get_prompt`...).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypedDict, TypeVar

from typing_extensions import Unpack

from sfagent.exceptions import UserError
from sfagent.mcp._errors import MCPTimeoutError
from sfagent.mcp._requests import (
    all_prompts,
    all_resources,
    call_tool_op,
    check_options,
    get_prompt_op,
    read_resource_op,
    require_sdk,
    stdio_name,
)
from sfagent.tools import Tool

if TYPE_CHECKING:
    import mcp.types as mt
    from mcp import ClientSession
    from mcp.client._transport import TransportStreams

    from sfagent.mcp._link import Link, LoopThread

__all__ = ["MCPServer", "MCPServerHTTP", "MCPServerStdio", "ServerOptions"]

T = TypeVar("T")

# Closing waits this long for the server to stop (the SDK's own stdio shutdown takes at most
# about 6 s) before the background thread is left to end by itself.
_CLOSE_TIMEOUT = 15.0
# A call in a run ends itself this long after the run's deadline: `run` and `stream` cancel it
# at the deadline (this never fires first), `run_sync` and `stream_sync` stop waiting for its
# thread then, and this cancels the request a moment later instead of at the server's timeout.
_DEADLINE_GRACE = 0.25


class ServerOptions(TypedDict, total=False):
    """The options every MCP server takes besides its name (see `MCPServer`), as keywords."""

    prefix: str | None
    include: Collection[str] | None
    exclude: Collection[str]
    strict: bool
    timeout: float | None
    connect_timeout: float
    requires_approval: bool
    max_retries: int | None
    sequential: bool
    max_output_chars: int | None


class MCPServer:
    """An MCP server whose tools an agent can call; the base of the two transports.

    Put it in `Agent(tools=[...])`: its tools join the agent's, checked like them (names,
    duplicates, the 128-tool limit). The server starts when a run starts (within the run's
    `time_limit`; an async run awaits it without blocking its event loop) and runs until
    `close`, `async with` / `with` on the server or on the agent, or (when the agent started
    it) the agent's `close`. A server that ended (a stdio process that exited)
    is started again on the next use; the call it cut off fails with `MCPServerCrashed`,
    which the model is told about.

    Args:
        name: The server's name in errors and logs (default: from the command or URL).
        prefix: Prepended to every tool name as ``"<prefix>_<name>"``, to keep two servers'
            tools (or a server's and yours) apart.
        include: Only these of the server's tools (by the server's names).
        exclude: Leave these of the server's tools out.
        strict: Send each tool's schema in strict mode where strict mode can express it
            (free-form objects and untyped values cannot); the rest are sent as they are.
        timeout: Seconds one request (a tool call, a listing, a resource read) may take;
            also each tool's `timeout` in a run. ``None``: no bound.
        connect_timeout: Seconds starting the server and its handshake may take.
        requires_approval: Ask the agent's approval callback before each call of these tools.
        max_retries: Failed calls of each tool a run tolerates (``None``: the agent's).
        sequential: Never run these tools' calls beside other calls.
        max_output_chars: A tool result longer than this is cut (and says so), since it is
            sent to the model on every later turn (``None``: never cut).

    Raises:
        UserError: an option out of range or of the wrong type.
    """

    def __init__(
        self,
        *,
        name: str,
        prefix: str | None = None,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        strict: bool = False,
        timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        requires_approval: bool = False,
        max_retries: int | None = None,
        sequential: bool = False,
        max_output_chars: int | None = 100_000,
    ) -> None:
        require_sdk()
        from sfagent.mcp._convert import ToolPolicy  # imports the SDK's types

        check_options(name, prefix, include, exclude, timeout, connect_timeout)
        if max_output_chars is not None and max_output_chars < 100:
            raise UserError(f"max_output_chars must be >= 100, got {max_output_chars!r}")
        if max_retries is not None and max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {max_retries!r}")
        self.name = name
        self._policy = ToolPolicy(
            server=name,
            prefix=prefix,
            include=frozenset(include) if include is not None else None,
            exclude=frozenset(exclude),
            strict=strict,
            timeout=timeout,
            requires_approval=requires_approval,
            max_retries=max_retries,
            sequential=sequential,
            max_output_chars=max_output_chars,
        )
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._guard = threading.Lock()
        self._thread: LoopThread | None = None
        self._link: Link | None = None
        self._tools: tuple[Tool[..., Any], ...] | None = None
        self._specs: tuple[mt.Tool, ...] = ()
        self._version = 0
        self._held = 0
        self._past_starts = 0

    def _open_transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        raise NotImplementedError  # each transport says how it connects

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # --- as a tool source (what ToolSet asks) -------------------------------------------------

    @property
    def requires_approval(self) -> bool:
        """Whether each call of this server's tools needs the agent's approval."""
        return self._policy.requires_approval

    @property
    def tools_version(self) -> int:
        """Goes up each time the tool list is read anew (no I/O); ``-1`` while the server has
        announced a change not read yet, so a `ToolSet` asks for the list again."""
        link = self._link
        if self._tools is not None and link is not None and link.stale:
            return -1
        return self._version

    def source_tools(self) -> Sequence[Tool[..., Any]]:
        """The server's tools as `Tool`s: listed (and the server started) on first use, and
        again after the server announced a change; otherwise the cached list.

        Raises:
            MCPError: the server could not be started or listed.
            ToolDefinitionError: a tool whose name or schema cannot be sent to the API.
        """
        _, link = self._ensure()
        if self._tools is None or link.stale:
            self._wait(link.refresh_tools(), self._listing_bound())
        return self._tools or ()

    def load_tools(self, *, timeout: float | None = None) -> bool:
        """List the tools now unless they are listed (starting the server if need be), waiting
        at most `timeout` seconds: what a blocking run does first, with the time it has.

        Returns:
            ``True`` once listed; ``False`` if `timeout` passed first (a start under way goes
            on, for the next use).

        Raises:
            MCPError: the server could not be started or listed within its own bounds.
        """
        if self._listed():
            return True
        _, link = self._ensure()
        try:
            self._wait(link.refresh_tools(), self._listing_bound(), budget=timeout)
        except _OutOfTime:
            return False
        return True

    async def aload_tools(self, *, timeout: float | None = None) -> bool:
        """Like `load_tools`, without blocking the running event loop: what `run` and `stream`
        do first."""
        if self._listed():
            return True
        _, link = self._ensure()
        listing = asyncio.ensure_future(self._await(link.refresh_tools()))
        try:
            done, _ = await asyncio.wait({listing}, timeout=timeout)
        finally:
            if not listing.done():
                listing.cancel()  # the listing only: a start under way goes on
        if not done:
            return False
        listing.result()
        return True

    def release(self) -> None:
        """Close the server unless it is held open by `with` / `async with` / `connect`:
        what an agent's `close` calls for the servers it started."""
        if self._held == 0:
            self.close()

    @property
    def tools(self) -> list[Tool[..., Any]]:
        """The server's tools as the agent sees them (listing them if need be)."""
        return list(self.source_tools())

    @property
    def connected(self) -> bool:
        """Whether the server is running and connected now."""
        link = self._link
        return link is not None and link.connected

    @property
    def starts(self) -> int:
        """How many times this server was started (restarts after a crash count)."""
        link = self._link
        return self._past_starts + (link.starts if link is not None else 0)

    # --- lifetime ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Start the server and list its tools now, and keep it open until `close`.

        Raises:
            MCPError: the server could not be started or listed.
        """
        self._held += 1
        try:
            self.source_tools()
        except BaseException:
            self._held -= 1
            raise

    async def aconnect(self) -> None:
        """Like `connect`, without blocking the running event loop."""
        self._held += 1
        try:
            _, link = self._ensure()
            await self._await(link.refresh_tools())
        except BaseException:
            self._held -= 1
            raise

    def close(self) -> None:
        """Stop the server (a stdio process is ended) and its background thread; a later use
        starts it again."""
        with self._guard:
            thread, link = self._thread, self._link
            self._thread = self._link = None
            self._held = 0
            self._past_starts += link.starts if link is not None else 0
            if self._tools is not None:
                self._tools = None
                self._version += 1  # the next run lists again, from the next server
        if thread is None or link is None:
            return
        if thread.is_current:
            raise UserError(f"MCP server '{self.name}' cannot be closed from its own thread")
        future = thread.submit(link.close())
        with contextlib.suppress(
            concurrent.futures.TimeoutError, concurrent.futures.CancelledError
        ):
            future.result(timeout=_CLOSE_TIMEOUT)
        thread.stop(timeout=_CLOSE_TIMEOUT)

    async def aclose(self) -> None:
        """Like `close`, without blocking the running event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> MCPServer:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> MCPServer:
        await self.aconnect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- MCP requests, from Python ---------------------------------------------------------------

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> mt.CallToolResult:
        """Call one of the server's tools by its own name (no prefix) and return its result."""
        return await self._await(
            self._request(call_tool_op(name, arguments), f"tools/call '{name}'")
        )

    def call_tool_sync(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> mt.CallToolResult:
        """Like `call_tool`, blocking."""
        coroutine = self._request(call_tool_op(name, arguments), f"tools/call '{name}'")
        return self._wait(coroutine, self._bound())

    async def list_resources(self) -> list[mt.Resource]:
        """The server's resources (every page)."""
        return await self._await(self._request(all_resources, "resources/list"))

    def list_resources_sync(self) -> list[mt.Resource]:
        """Like `list_resources`, blocking."""
        return self._wait(self._request(all_resources, "resources/list"), self._bound())

    async def read_resource(
        self, uri: str
    ) -> list[mt.TextResourceContents | mt.BlobResourceContents]:
        """The contents of the resource at `uri`."""
        return await self._await(self._request(read_resource_op(uri), f"resources/read '{uri}'"))

    def read_resource_sync(
        self, uri: str
    ) -> list[mt.TextResourceContents | mt.BlobResourceContents]:
        """Like `read_resource`, blocking."""
        return self._wait(
            self._request(read_resource_op(uri), f"resources/read '{uri}'"), self._bound()
        )

    async def list_prompts(self) -> list[mt.Prompt]:
        """The server's prompts (every page)."""
        return await self._await(self._request(all_prompts, "prompts/list"))

    def list_prompts_sync(self) -> list[mt.Prompt]:
        """Like `list_prompts`, blocking."""
        return self._wait(self._request(all_prompts, "prompts/list"), self._bound())

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> mt.GetPromptResult:
        """The prompt `name`, filled in with `arguments`."""
        return await self._await(
            self._request(get_prompt_op(name, arguments), f"prompts/get '{name}'")
        )

    def get_prompt_sync(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> mt.GetPromptResult:
        """Like `get_prompt`, blocking."""
        coroutine = self._request(get_prompt_op(name, arguments), f"prompts/get '{name}'")
        return self._wait(coroutine, self._bound())

    # --- plumbing --------------------------------------------------------------------------------

    def _ensure(self) -> tuple[LoopThread, Link]:
        from sfagent.mcp._link import Link, LoopThread

        with self._guard:
            if self._thread is None or self._link is None:
                self._thread = LoopThread(f"sfagent-mcp-{self.name}")
                self._link = Link(
                    server=self.name,
                    open_transport=self._open_transport,
                    connect_timeout=self._connect_timeout,
                    timeout=self._timeout,
                    on_tools=self._take_tools,
                )
            return self._thread, self._link

    def _take_tools(self, specs: list[mt.Tool]) -> None:
        # On the background loop, each time the list is read: converted first, so a tool that
        # cannot be sent leaves the previous list in place.
        from sfagent.mcp._convert import convert_tools

        tools = convert_tools(specs, self._policy, self._call_from_tool)
        self._specs = tuple(specs)
        self._tools = tuple(tools)
        self._version += 1

    async def _call_from_tool(
        self, name: str, arguments: dict[str, Any], time_left: float | None
    ) -> mt.CallToolResult:
        what = f"tools/call '{name}'"
        waiting = self._await(self._request(call_tool_op(name, arguments), what))
        if time_left is None:
            return await waiting
        try:
            return await asyncio.wait_for(waiting, time_left + _DEADLINE_GRACE)
        except asyncio.TimeoutError:
            raise MCPTimeoutError(
                f"{what} was cut short: the run's time budget ran out", server=self.name
            ) from None

    async def _request(self, op: Callable[[ClientSession], Awaitable[T]], what: str) -> T:
        # Runs on the background loop: the link of the moment (a closed server gets a new one).
        _, link = self._ensure()
        return await link.request(op, what)

    def _bound(self) -> float | None:
        if self._timeout is None:
            return None
        return self._connect_timeout + self._timeout + 1.0

    def _listing_bound(self) -> float:
        return self._connect_timeout + (self._timeout or 60.0)

    def _listed(self) -> bool:
        link = self._link
        return self._tools is not None and link is not None and link.connected and not link.stale

    async def _await(self, coroutine: Coroutine[Any, Any, T]) -> T:
        thread, _ = self._ensure()
        if thread.is_current:
            return await coroutine
        # Cancelling this wait cancels the request's task on the background loop (the SDK then
        # tells the server); the connection's owner task is never touched.
        return await asyncio.wrap_future(thread.submit(coroutine))

    def _wait(
        self, coroutine: Coroutine[Any, Any, T], bound: float | None, *, budget: float | None = None
    ) -> T:
        """Wait for `coroutine` on the background loop: `MCPTimeoutError` past `bound`, or
        `_OutOfTime` past the caller's `budget` when that ends first."""
        thread, _ = self._ensure()
        if thread.is_current:
            coroutine.close()
            raise UserError(f"MCP server '{self.name}': a blocking call from its own event loop")
        future = thread.submit(coroutine)
        limit, budgeted = bound, False
        if budget is not None and (bound is None or budget < bound):
            limit, budgeted = max(budget, 0.0), True
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if budgeted:
                raise _OutOfTime from None
            raise MCPTimeoutError(f"no answer within {bound:g} s", server=self.name) from None
        except BaseException:
            future.cancel()
            raise


class MCPServerStdio(MCPServer):
    """An MCP server the agent starts as a subprocess and talks to over stdin/stdout.

    Args:
        command: The program, e.g. ``sys.executable`` or ``"npx"``.
        args: Its arguments, e.g. ``["notes_server.py"]``.
        env: Environment variables for it, over the SDK's safe defaults (``PATH``, ``HOME``...;
            the parent's other variables, such as API keys, are not passed on).
        cwd: Its working directory.
        errlog: Where its stderr goes (default: this process's stderr).
        name: The server's name in errors and logs (default: the script's or command's).
        **options: The `MCPServer` options.

    Example:
        >>> notes = MCPServerStdio(sys.executable, ["notes_server.py"])  # doctest: +SKIP
        >>> agent = Agent("Qwen/Qwen3-8B", tools=[notes])  # doctest: +SKIP
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        errlog: TextIO | None = None,
        name: str | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        if not isinstance(command, str) or not command.strip():
            raise UserError(f"command must be a non-empty string, got {command!r}")
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise UserError(f"args must be a list of strings, got {args!r}")
        if env is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise UserError("env must map strings to strings")
        self.command = command
        self.args = list(args)
        self._env = dict(env) if env is not None else None
        self._cwd = Path(cwd) if cwd is not None else None
        self._errlog = errlog
        super().__init__(name=name or stdio_name(command, self.args), **options)

    def _open_transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        from mcp import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=self.command, args=self.args, env=self._env, cwd=self._cwd
        )
        return stdio_client(params, errlog=self._errlog or sys.stderr)


class MCPServerHTTP(MCPServer):
    """An MCP server reached over streamable HTTP at a URL.

    Args:
        url: The endpoint, e.g. ``"http://127.0.0.1:8000/mcp"``.
        headers: Sent with every request (e.g. ``Authorization``); never shown in errors,
            logs or the repr.
        name: The server's name in errors and logs (default: the URL's host).
        **options: The `MCPServer` options.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"url must be an http:// or https:// URL, got {url!r}")
        if headers is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise UserError("headers must map strings to strings")
        self.url = url
        self._headers = dict(headers or {})
        super().__init__(name=name or parts.hostname, **options)

    def _open_transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        return self._http_streams()

    @contextlib.asynccontextmanager
    async def _http_streams(self) -> AsyncIterator[TransportStreams]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        # Read timeout as the SDK's default client has it: a response stream may stay open.
        limits = httpx2.Timeout(self._connect_timeout, read=max(self._timeout or 300.0, 300.0))
        async with (
            httpx2.AsyncClient(headers=self._headers, timeout=limits) as client,
            streamable_http_client(self.url, http_client=client) as streams,
        ):
            yield streams


class _OutOfTime(Exception):
    """The caller's time budget ended before the server answered (`MCPServer._wait`)."""
