"""`ToolSet`: the ordered, checked collection of tools a request carries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sfagent.exceptions import ToolDefinitionError
from sfagent.settings import CheckedTools, tool_count_problem
from sfagent.tools.tool import Tool, tool

__all__ = ["ToolSet"]


class ToolSet:
    """An ordered collection of tools with unique, valid names: what a request carries.

    Plain callables are turned into tools with `tool()`. Refuses more than 128 tools
    (SiliconFlow's limit) and duplicate names, when they are added, so the request's `tools`
    it makes (`request_tools`) need no check per request.
    """

    def __init__(self, tools: Iterable[Tool[..., Any] | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool[..., Any]] = {}
        self._schemas: list[dict[str, Any]] | None = None
        self._request_tools: CheckedTools | None = None
        for item in tools:
            self.add(item)

    def add(self, item: Tool[..., Any] | Callable[..., Any]) -> Tool[..., Any]:
        """Add a tool (or a callable, made into one) and return it.

        Raises:
            ToolDefinitionError: the name is taken, or the set already holds 128 tools.
        """
        new = item if isinstance(item, Tool) else tool(item)
        if new.name in self._tools:
            raise ToolDefinitionError(
                f"duplicate tool name '{new.name}': tool names must be unique in a request "
                "(pass name=... to rename one)"
            )
        problem = tool_count_problem(len(self._tools) + 1)
        if problem:
            raise ToolDefinitionError(f"{problem} (adding '{new.name}')")
        self._tools[new.name] = new
        self._schemas = self._request_tools = None
        return new

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The request's `tools` array, in order (built once per change; do not mutate)."""
        if self._schemas is None:
            self._schemas = [t.schema for t in self._tools.values()]
        return self._schemas

    @property
    def request_tools(self) -> CheckedTools:
        """The `tools` a `ChatRequest` carries: checked once per change, never per request."""
        if self._request_tools is None:
            self._request_tools = CheckedTools(tuple(self.schemas))
        return self._request_tools

    @property
    def names(self) -> list[str]:
        """Tool names, in order."""
        return list(self._tools)

    def get(self, name: str) -> Tool[..., Any] | None:
        """The tool called `name`, or `None`."""
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool[..., Any]:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(self._tools) or "none"
            raise KeyError(f"no tool named {name!r} (tools: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool[..., Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolSet({self.names})"
