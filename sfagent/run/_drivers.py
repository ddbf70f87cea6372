"""What the sync and async drivers share: streamed deltas, batching, and call deadlines.

The drivers (`_drive_sync`, `_drive_async`) perform the actions `_loop.run_flow` yields — a
model request, whole or streamed, and a batch of tool calls — and pass every event on. They
decide nothing; the flow does, and `_invoke` runs each call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from sfagent.events import Event, ReasoningDelta, TextDelta
from sfagent.messages import ChatCompletionChunk
from sfagent.run._tool_calls import PreparedCall


def deltas(chunk: ChatCompletionChunk, turn: int) -> Iterator[Event]:
    """The text and reasoning events of one streamed chunk (first choice only)."""
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
    groups: list[list[int]] = []
    current: list[int] = []
    for i, item in enumerate(calls):
        if not item.runnable:
            continue
        if item.tool is not None and item.tool.sequential:
            if current:
                groups.append(current)
                current = []
            groups.append([i])
        else:
            current.append(i)
    if current:
        groups.append(current)
    return groups


def run_deadline(now: float, time_left: float | None) -> float:
    """When the run's time budget ends, on the clock `now` was read from (inf: never)."""
    return math.inf if time_left is None else now + time_left


def call_deadline(item: PreparedCall, started: float, run_end: float) -> float:
    """When a call that started at `started` must be given up: its tool's timeout, capped by
    the run's deadline. Every call of a batch shares the run's deadline; a call queued behind
    `max_concurrency` gets its tool's full timeout from when it actually starts."""
    timeout = item.tool.timeout if item.tool is not None else None
    own = math.inf if timeout is None else started + timeout
    return min(own, run_end)
