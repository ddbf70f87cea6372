"""What the sync and async drivers share: the tool policy, batching, deltas, timeouts.

The drivers (`_drive_sync`, `_drive_async`) perform the actions `_loop.run_flow` yields — a
model request, whole or streamed, and a batch of tool calls — and pass every event on. They
decide nothing; the flow does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sfagent.context import ApprovalRequest
from sfagent.events import Event, ReasoningDelta, TextDelta
from sfagent.messages import ChatCompletionChunk
from sfagent.run._tool_calls import PreparedCall

Approver = Callable[[ApprovalRequest], Any]


@dataclass(frozen=True)
class ToolPolicy:
    """How a driver runs a batch of calls."""

    approve: Approver | None
    max_concurrency: int | None
    deps: Any


def deltas(chunk: ChatCompletionChunk, turn: int) -> Iterator[Event]:
    for choice in chunk.choices:
        if choice.index != 0:
            continue
        delta = choice.delta
        if delta.reasoning_content:
            yield ReasoningDelta(delta.reasoning_content, turn)
        if delta.content:
            yield TextDelta(delta.content, turn)


def batches(calls: Sequence[PreparedCall]) -> list[list[int]]:
    """Runnable calls grouped: neighbours run together; a `sequential` tool's call runs alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i, item in enumerate(calls):
        if not item.runnable:
            continue
        if item.tool is not None and item.tool.sequential:
            if current:
                batches.append(current)
                current = []
            batches.append([i])
        else:
            current.append(i)
    if current:
        batches.append(current)
    return batches


def call_timeout(item: PreparedCall, time_left: float | None) -> float | None:
    timeout = item.tool.timeout if item.tool is not None else None
    if time_left is not None:
        timeout = time_left if timeout is None else min(timeout, time_left)
    return timeout


def approval(item: PreparedCall, policy: ToolPolicy) -> ApprovalRequest:
    call = item.call
    return ApprovalRequest(
        tool_name=call.function.name,
        arguments=call.function.arguments,
        call_id=call.id,
        deps=policy.deps,
    )
