"""Running one prepared tool call and classifying what happened, for both drivers.

The drivers only schedule these (inline, on threads or as tasks) and wait for them with their
deadlines; what a call does and how its outcome is recorded is written once, here. A call is
two steps: asking for approval when the tool needs it, then running the function.

- `invoke`: both steps, blocking; what the sync driver runs, inline or on a worker thread. An
  awaitable the tool (or the approval callback) returns is run to completion on a loop of its
  own: the driver sends such calls to a worker thread, where no loop runs.
- `arefusal` then `call` / `acall`: the same steps for the async driver, which asks for
  approval on the event loop, then runs an async tool there and a sync one on a worker thread.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sfagent.context import ApprovalRequest
from sfagent.run._nested import AgentTool
from sfagent.run._pool import ToolThreads
from sfagent.run._tool_calls import CallOutcome, PreparedCall

Approver = Callable[[ApprovalRequest], Any]


@dataclass(frozen=True)
class ToolPolicy:
    """How a driver runs a batch of calls.

    Attributes:
        approve: Asked before each call of a tool marked ``requires_approval``.
        max_concurrency: Calls running at once in a batch (``None``: no cap).
        deps: The run's dependencies, shown to the approval callback.
        threads: Where sync work runs (the agent's bounded pool).
    """

    approve: Approver | None
    max_concurrency: int | None
    deps: Any
    threads: ToolThreads


def invoke(item: PreparedCall, policy: ToolPolicy) -> CallOutcome:
    """Ask for approval if needed, run the call, and record how it ended (blocking)."""
    tool = item.tool
    assert tool is not None  # only runnable calls are scheduled
    if not tool.requires_approval:
        return call(item)
    start = time.perf_counter()
    try:
        answer = _resolve(_ask(item, policy))
    except Exception as exc:  # a failing callback fails the call, not the run
        return failed(exc, start)
    return call(item) if answer else CallOutcome(denied=True)


def call(item: PreparedCall) -> CallOutcome:
    """Run the call's function and record how it ended (blocking)."""
    tool = item.tool
    assert tool is not None
    # An agent tool runs its agent the blocking way here, not its async function on a loop
    # made for it: a sync run's inner runs are sync too.
    function = tool.run_blocking if isinstance(tool, AgentTool) else tool.function
    start = time.perf_counter()
    try:
        value = _resolve(function(*item.args, **item.kwargs))
    except Exception as exc:  # errors become results for the model
        return failed(exc, start)
    return finished(value, start)


async def acall(item: PreparedCall) -> CallOutcome:
    """Run an async tool's call on the running event loop and record how it ended."""
    tool = item.tool
    assert tool is not None
    start = time.perf_counter()
    try:
        value = await _aresolve(tool.function(*item.args, **item.kwargs))
    except Exception as exc:
        return failed(exc, start)
    return finished(value, start)


async def arefusal(item: PreparedCall, policy: ToolPolicy) -> CallOutcome | None:
    """The outcome that ends `item` before it runs (denied, or the approval callback raised),
    or ``None`` when it may run; the callback is awaited on the running loop if need be."""
    tool = item.tool
    if tool is None or not tool.requires_approval:
        return None
    start = time.perf_counter()
    try:
        answer = await _aresolve(_ask(item, policy))
    except Exception as exc:
        return failed(exc, start)
    return None if answer else CallOutcome(denied=True)


def finished(value: Any, start: float) -> CallOutcome:
    """The outcome of a call that returned `value`."""
    return CallOutcome(value=value, duration=time.perf_counter() - start)


def failed(exc: BaseException, start: float) -> CallOutcome:
    """The outcome of a call that raised `exc`."""
    return CallOutcome(exception=exc, duration=time.perf_counter() - start)


def timed_out(duration: float) -> CallOutcome:
    """The outcome of a call its driver stopped waiting for."""
    return CallOutcome(timed_out=True, duration=duration)


def _ask(item: PreparedCall, policy: ToolPolicy) -> Any:
    if policy.approve is None:
        return False
    call = item.call
    request = ApprovalRequest(
        tool_name=call.function.name,
        arguments=call.function.arguments,
        call_id=call.id,
        deps=policy.deps,
    )
    return policy.approve(request)


def _resolve(value: Any) -> Any:
    if inspect.isawaitable(value):
        import asyncio  # deferred: sync runs of sync tools never load it

        # Only ever reached on a worker thread (the drivers send async work there or to the
        # event loop), where no loop runs, so this works even when the caller's thread has one.
        return asyncio.run(_await(value))
    return value


async def _aresolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
