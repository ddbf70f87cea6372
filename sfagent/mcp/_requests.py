"""The MCP requests `MCPServer` sends, as functions of the session, and its option checks.

Each request is a function of the SDK's `ClientSession`, so the connection's owner task (see
`_link`) runs it; listings follow the pagination cursor up to `MAX_PAGES` pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sfagent.exceptions import ConfigurationError, UserError
from sfagent.mcp._errors import MCPRequestError
from sfagent.settings import TOOL_NAME_PATTERN

if TYPE_CHECKING:
    import mcp.types as mt
    from mcp import ClientSession

__all__ = [
    "MAX_PAGES",
    "PREFIX_LIMIT",
    "all_prompts",
    "all_resources",
    "call_tool_op",
    "check_options",
    "get_prompt_op",
    "read_resource_op",
    "require_sdk",
    "stdio_name",
]

T = TypeVar("T")

MAX_PAGES = 100
"""The most pages a listing follows before it is an error (a server looping its cursor)."""

PREFIX_LIMIT = 32
"""The longest tool-name prefix a server may be given."""


def call_tool_op(
    name: str, arguments: Mapping[str, Any] | None
) -> Callable[[ClientSession], Awaitable[mt.CallToolResult]]:
    async def op(session: ClientSession) -> mt.CallToolResult:
        return await session.call_tool(name, dict(arguments or {}))

    return op


def read_resource_op(uri: str) -> Callable[[ClientSession], Awaitable[list[Any]]]:
    async def op(session: ClientSession) -> list[Any]:
        return list((await session.read_resource(uri)).contents)

    return op


def get_prompt_op(
    name: str, arguments: Mapping[str, str] | None
) -> Callable[[ClientSession], Awaitable[mt.GetPromptResult]]:
    async def op(session: ClientSession) -> mt.GetPromptResult:
        return await session.get_prompt(name, dict(arguments) if arguments else None)

    return op


async def all_resources(session: ClientSession) -> list[mt.Resource]:
    """Every resource the server lists, page after page."""

    async def fetch(params: mt.PaginatedRequestParams | None) -> tuple[list[mt.Resource], Any]:
        page = await session.list_resources(params=params)
        return page.resources, page.next_cursor

    return await _all_pages(fetch, "resources/list")


async def all_prompts(session: ClientSession) -> list[mt.Prompt]:
    """Every prompt the server lists, page after page."""

    async def fetch(params: mt.PaginatedRequestParams | None) -> tuple[list[mt.Prompt], Any]:
        page = await session.list_prompts(params=params)
        return page.prompts, page.next_cursor

    return await _all_pages(fetch, "prompts/list")


async def _all_pages(
    fetch: Callable[[mt.PaginatedRequestParams | None], Awaitable[tuple[list[T], Any]]],
    what: str,
) -> list[T]:
    found: list[T] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        items, cursor = await fetch(_page(cursor))
        found.extend(items)
        if not cursor:
            return found
    raise MCPRequestError(f"{what} returned more than {MAX_PAGES} pages", server="", code=0)


def _page(cursor: str | None) -> mt.PaginatedRequestParams | None:
    import mcp.types as mt

    return mt.PaginatedRequestParams(cursor=cursor) if cursor else None


# --- checks ------------------------------------------------------------------------------------


def check_options(
    name: str,
    prefix: str | None,
    include: Collection[str] | None,
    exclude: Collection[str],
    timeout: float | None,
    connect_timeout: float,
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"name must be a non-empty string, got {name!r}")
    if prefix is not None and (
        not isinstance(prefix, str)
        or len(prefix) > PREFIX_LIMIT
        or not TOOL_NAME_PATTERN.fullmatch(prefix)
    ):
        raise UserError(
            f"prefix must be 1-{PREFIX_LIMIT} letters, digits, '_' or '-', got {prefix!r}"
        )
    for label, names in (("include", include), ("exclude", exclude)):
        if names is not None and (
            isinstance(names, str) or not all(isinstance(n, str) for n in names)
        ):
            raise UserError(f"{label} must be a collection of tool names, got {names!r}")
    if timeout is not None and not timeout > 0:
        raise UserError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if not connect_timeout > 0:
        raise UserError(f"connect_timeout must be > 0 seconds, got {connect_timeout!r}")


def require_sdk() -> None:
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise ConfigurationError("MCP servers need the MCP SDK: pip install 'sfagent[mcp]'")


def stdio_name(command: str, args: Sequence[str]) -> str:
    # `python notes_server.py` is better named by its script than by the interpreter.
    script = next((a for a in args if a.endswith(".py")), None)
    return Path(script or command).stem or "stdio"
