"""The tools a run offers: its tool sources listed before it starts, and the tools each turn
offers, chosen by the agent's `prepare_tools` hook, checked and cached.

Tool sources (MCP servers) that can be listed ahead (`load_tools` / `aload_tools`) are listed
before the loop starts, within the time the run has: an async run awaits them (its event loop
keeps running while a server starts), a blocking run waits for them. Listing them inside the
loop instead would block the event loop and ignore the run's deadline.

The hook is sync and runs inside the loop, between turns, so every engine that drives a run
(the drivers, a durable workflow, the batch API runner) runs it the same way with no new
action to answer. Its answer becomes a `ToolSet` of the chosen tools: the request carries that
set's schemas, and a call to a tool outside it gets the same answer as a call to a tool that
does not exist. One set is kept per distinct choice of tool objects (not names: an MCP server
that relists a tool under the same name with a new schema gives a new object), so a hook that
keeps choosing the same tools costs a lookup per tool and a dict lookup per turn.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sfagent.context import RunContext
from sfagent.exceptions import ToolSelectionError
from sfagent.settings import tool_count_problem
from sfagent.tools import Tool, ToolSet
from sfagent.tools.toolset import ToolSource

if TYPE_CHECKING:
    from sfagent.events import Event
    from sfagent.run._nested import Nesting

__all__ = [
    "PrepareTools",
    "ToolSelector",
    "after_sources",
    "list_sources",
    "sources_budget",
]

PrepareTools = Callable[[RunContext[Any], ToolSet], Iterable["Tool[..., Any] | str"]]
"""``(ctx, tools) -> the tools this turn offers`` (tools of the agent, or their names)."""

_CACHED = 64  # distinct choices kept per agent; the oldest goes first past this


class ToolSelector:
    """The agent's hook and a cache of the sets it chose.

    Args:
        hook: ``(ctx, tools) -> iterable of Tool or name``, sync.
        tools: Every tool the agent holds.
    """

    def __init__(self, hook: PrepareTools, tools: ToolSet) -> None:
        self.hook = hook
        self.tools = tools
        # Keyed by the chosen tools themselves (compared by identity): a set holds its tools,
        # so a key's objects stay alive, and a tool relisted anew is a new key.
        self._sets: dict[tuple[Tool[..., Any], ...], ToolSet] = {}

    def select(self, context: RunContext[Any]) -> ToolSet:
        """The tools of this turn, in the order the hook gave them.

        Raises:
            ToolSelectionError: the hook raised, or its answer is not a valid choice.
        """
        try:
            chosen = self.hook(context, self.tools)
        except Exception as exc:  # the run ends with a typed error; the cause is kept
            raise ToolSelectionError(f"prepare_tools raised {type(exc).__name__}: {exc}") from exc
        key = self._chosen(chosen)
        found = self._sets.get(key)
        if found is None:
            problem = tool_count_problem(len(key))
            if problem:
                raise ToolSelectionError(f"prepare_tools chose {problem}")
            found = ToolSet(key)
            if len(self._sets) >= _CACHED:
                del self._sets[next(iter(self._sets))]
            self._sets[key] = found
        return found

    def _chosen(self, chosen: Any) -> tuple[Tool[..., Any], ...]:
        if inspect.isawaitable(chosen):
            if inspect.iscoroutine(chosen):
                chosen.close()  # never awaited: close it so no warning leaks
            raise ToolSelectionError(
                "prepare_tools returned an awaitable: the hook must be sync (it runs between "
                "turns, inside the loop); fetch what it needs before the run"
            )
        if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Iterable):
            raise ToolSelectionError(
                f"prepare_tools must return an iterable of tools or tool names, "
                f"got {type(chosen).__name__}"
            )
        tools = tuple(self._tool(item) for item in chosen)
        if len({t.name for t in tools}) != len(tools):
            names = [t.name for t in tools]
            twice = next(name for i, name in enumerate(names) if name in names[:i])
            raise ToolSelectionError(f"prepare_tools chose '{twice}' twice")
        return tools

    def _tool(self, item: Any) -> Tool[..., Any]:
        if isinstance(item, Tool):
            if self.tools.get(item.name) is not item:
                raise ToolSelectionError(
                    f"prepare_tools chose {item!r}, which is not one of the agent's tools "
                    "(choose from the tools it was given)"
                )
            return item
        if isinstance(item, str):
            found = self.tools.get(item)
            if found is None:
                known = ", ".join(self.tools.names) or "none"
                raise ToolSelectionError(
                    f"prepare_tools chose '{item}', which is not one of the agent's tools ({known})"
                )
            return found
        raise ToolSelectionError(
            f"prepare_tools must choose tools or tool names, got {type(item).__name__}"
        )


# --- tool sources, listed before the run ---------------------------------------------------------


def sources_budget(
    time_limit: float | None, elapsed: float, parent: Nesting | None
) -> float | None:
    """Seconds a run starting now may spend listing its sources (``None``: no bound but theirs):
    what is left of its `time_limit` and of the calling run's (an agent called as a tool)."""
    budget = None if time_limit is None else max(time_limit - elapsed, 0.0)
    above = parent.time_left() if parent is not None else None
    if above is None or budget is None:
        return above if budget is None else budget
    return min(budget, above)


def list_sources(sources: Sequence[ToolSource], budget: float | None) -> tuple[bool, float]:
    """List each source that can be listed ahead, blocking, within `budget` seconds.

    Returns:
        Whether they were all listed in time, and the seconds spent.

    Raises:
        MCPError: a server could not be started or listed (within its own bounds).
    """
    began = time.monotonic()
    for source in sources:
        load = getattr(source, "load_tools", None)
        if load is None:
            continue  # listed when the run first reads the tools
        left = None if budget is None else max(began + budget - time.monotonic(), 0.0)
        if not load(timeout=left):
            return False, time.monotonic() - began
    return True, time.monotonic() - began


async def alist_sources(sources: Sequence[ToolSource], budget: float | None) -> tuple[bool, float]:
    """Like `list_sources`, awaiting the sources side by side on the running event loop."""
    import asyncio

    began = time.monotonic()
    loads = [getattr(source, "aload_tools", None) for source in sources]
    tasks = [asyncio.ensure_future(load(timeout=budget)) for load in loads if load is not None]
    try:
        listed = all(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()  # the others, when one failed (a start under way goes on)
    return listed, time.monotonic() - began


async def after_sources(
    sources: Sequence[ToolSource],
    budget: Callable[[], float | None],
    start: Callable[[bool, float], AsyncIterator[Event]],
) -> AsyncIterator[Event]:
    """The events of an async run whose sources are listed first, within ``budget()``
    seconds: ``start(listed, seconds spent)`` makes the run (out of time, if not listed)."""
    listed, spent = await alist_sources(sources, budget())
    events = start(listed, spent)
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
