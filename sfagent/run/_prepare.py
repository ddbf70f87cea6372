"""The tools each turn offers, chosen by the agent's `prepare_tools` hook, checked and cached.

The hook is sync and runs inside the loop, between turns, so every engine that drives a run
(the drivers, a durable workflow, the batch API runner) runs it the same way with no new
action to answer. Its answer becomes a `ToolSet` of the chosen tools: the request carries that
set's schemas, and a call to a tool outside it gets the same answer as a call to a tool that
does not exist. One set is kept per distinct choice, so a hook that keeps choosing the same
tools costs a tuple and a dict lookup per turn.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from sfagent.context import RunContext
from sfagent.exceptions import ToolSelectionError
from sfagent.settings import tool_count_problem
from sfagent.tools import Tool, ToolSet

__all__ = ["PrepareTools", "ToolSelector"]

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
        self._sets: dict[tuple[str, ...], ToolSet] = {}

    def select(self, context: RunContext[Any]) -> ToolSet:
        """The tools of this turn, in the order the hook gave them.

        Raises:
            ToolSelectionError: the hook raised, or its answer is not a valid choice.
        """
        try:
            chosen = self.hook(context, self.tools)
        except Exception as exc:  # the run ends with a typed error; the cause is kept
            raise ToolSelectionError(f"prepare_tools raised {type(exc).__name__}: {exc}") from exc
        key = self._names(chosen)
        found = self._sets.get(key)
        if found is None:
            problem = tool_count_problem(len(key))
            if problem:
                raise ToolSelectionError(f"prepare_tools chose {problem}")
            found = ToolSet(self.tools[name] for name in key)
            if len(self._sets) >= _CACHED:
                del self._sets[next(iter(self._sets))]
            self._sets[key] = found
        return found

    def _names(self, chosen: Any) -> tuple[str, ...]:
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
        names = tuple(self._name(item) for item in chosen)
        if len(set(names)) != len(names):
            twice = next(name for i, name in enumerate(names) if name in names[:i])
            raise ToolSelectionError(f"prepare_tools chose '{twice}' twice")
        return names

    def _name(self, item: Any) -> str:
        if isinstance(item, Tool):
            if self.tools.get(item.name) is not item:
                raise ToolSelectionError(
                    f"prepare_tools chose {item!r}, which is not one of the agent's tools "
                    "(choose from the tools it was given)"
                )
            return item.name
        if isinstance(item, str):
            if item not in self.tools:
                known = ", ".join(self.tools.names) or "none"
                raise ToolSelectionError(
                    f"prepare_tools chose '{item}', which is not one of the agent's tools ({known})"
                )
            return item
        raise ToolSelectionError(
            f"prepare_tools must choose tools or tool names, got {type(item).__name__}"
        )
