"""`ToolSet`: the ordered, checked collection of tools a request carries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from sfagent.exceptions import ToolDefinitionError
from sfagent.settings import CheckedTools, tool_count_problem
from sfagent.tools.tool import Tool, tool

__all__ = ["ToolSet", "ToolSource"]


@runtime_checkable
class ToolSource(Protocol):
    """Tools listed somewhere else that may change between runs: an MCP server's
    (`sfagent.mcp`). A `ToolSet` holds the source and asks it for its tools when it first
    needs them and again each time `tools_version` moves.

    A source may also have ``load_tools(*, timeout) -> bool`` and ``async aload_tools(*,
    timeout) -> bool`` (list now, within `timeout` seconds; ``False`` if they passed first):
    an agent then lists it before each run starts, within the run's time, and an async run
    awaits it instead of blocking its event loop (`sfagent.run._prepare`)."""

    @property
    def tools_version(self) -> int:
        """Goes up each time the list changes; reading it does no I/O."""
        ...

    @property
    def requires_approval(self) -> bool:
        """Whether each call of its tools needs the agent's approval."""
        ...

    def source_tools(self) -> Sequence[Tool[..., Any]]:
        """The current tools (the first call may connect and list them)."""
        ...

    def release(self) -> None:
        """Close what the source started on demand; an agent's `close` calls it."""
        ...


class ToolSet:
    """An ordered collection of tools with unique, valid names: what a request carries.

    Plain callables are turned into tools with `tool()`. Refuses more than 128 tools
    (SiliconFlow's limit) and duplicate names, when they are added, so the request's `tools`
    it makes (`request_tools`) need no check per request.

    A `ToolSource` (an MCP server) may be given beside tools: its tools join the set when the
    set is first read, and again whenever the source's list changes; the same checks apply
    to them then.

    ``limited=False`` lifts the 128-tool cap: an agent with a `prepare_tools` hook holds more
    tools and offers at most 128 in each request (its `request_tools` still refuses more).
    """

    def __init__(
        self,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource] = (),
        *,
        limited: bool = True,
    ) -> None:
        self.limited = limited
        self._tools: dict[str, Tool[..., Any]] = {}
        self._schemas: list[dict[str, Any]] | None = None
        self._request_tools: CheckedTools | None = None
        self._sources: list[ToolSource] = []
        self._merged: dict[str, Tool[..., Any]] | None = None
        self._merged_versions: tuple[int, ...] = ()
        for item in tools:
            # An attribute check, not the runtime protocol's isinstance (slow on 3.11).
            if not isinstance(item, Tool) and hasattr(item, "source_tools"):
                self.add_source(item)  # type: ignore[arg-type]
            else:
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
        problem = tool_count_problem(len(self._tools) + 1) if self.limited else None
        if problem:
            raise ToolDefinitionError(f"{problem} (adding '{new.name}')")
        self._tools[new.name] = new
        self._schemas = self._request_tools = self._merged = None
        return new

    def add_source(self, source: ToolSource) -> ToolSource:
        """Add a source of tools (an MCP server); nothing is listed until the set is read.

        Raises:
            ToolDefinitionError: the same source was added already.
        """
        if any(s is source for s in self._sources):
            raise ToolDefinitionError(f"{source!r} was added twice")
        self._sources.append(source)
        self._schemas = self._request_tools = self._merged = None
        return source

    @property
    def sources(self) -> tuple[ToolSource, ...]:
        """The tool sources, in the order they were added."""
        return tuple(self._sources)

    def _view(self) -> dict[str, Tool[..., Any]]:
        """Every tool by name: the set's own, then each source's (listed when they change)."""
        if not self._sources:
            return self._tools
        versions = tuple(s.tools_version for s in self._sources)
        if self._merged is not None and versions == self._merged_versions:
            return self._merged
        merged = dict(self._tools)
        for source in self._sources:
            for item in source.source_tools():
                if item.name in merged:
                    raise ToolDefinitionError(
                        f"duplicate tool name '{item.name}' from {source!r}: tool names must be "
                        "unique in a request (give the server a prefix=...)"
                    )
                merged[item.name] = item
        problem = tool_count_problem(len(merged)) if self.limited else None
        if problem:
            raise ToolDefinitionError(f"{problem} (with the tools of {list(self._sources)})")
        # Read again: listing a source for the first time moves its version.
        self._merged_versions = tuple(s.tools_version for s in self._sources)
        self._merged = merged
        self._schemas = self._request_tools = None
        return merged

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The request's `tools` array, in order (built once per change; do not mutate)."""
        view = self._view()
        if self._schemas is None:
            self._schemas = [t.schema for t in view.values()]
        return self._schemas

    @property
    def request_tools(self) -> CheckedTools:
        """The `tools` a `ChatRequest` carries: checked once per change, never per request."""
        schemas = self.schemas
        if self._request_tools is None:
            self._request_tools = CheckedTools(tuple(schemas))
        return self._request_tools

    @property
    def names(self) -> list[str]:
        """Tool names, in order."""
        return list(self._view())

    @property
    def known_names(self) -> list[str]:
        """Tool names without listing any source: each unlisted source appears as its repr."""
        if self._merged is not None:
            return list(self._merged)
        return [*self._tools, *(repr(s) for s in self._sources)]

    def needing_approval(self) -> list[str]:
        """The tools (and sources, by repr) that need approval, without listing any source."""
        names = [t.name for t in self._tools.values() if t.requires_approval]
        return names + [repr(s) for s in self._sources if s.requires_approval]

    def release_sources(self) -> None:
        """Release every source (close what it started on demand): an agent's `close`."""
        for source in self._sources:
            source.release()

    def get(self, name: str) -> Tool[..., Any] | None:
        """The tool called `name`, or `None`."""
        return self._view().get(name)

    def __getitem__(self, name: str) -> Tool[..., Any]:
        view = self._view()
        try:
            return view[name]
        except KeyError:
            known = ", ".join(view) or "none"
            raise KeyError(f"no tool named {name!r} (tools: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._view()

    def __iter__(self) -> Iterator[Tool[..., Any]]:
        return iter(self._view().values())

    def __len__(self) -> int:
        return len(self._view())

    def __repr__(self) -> str:
        return f"ToolSet({self.known_names})"
