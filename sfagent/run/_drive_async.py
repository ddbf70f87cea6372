"""The event-loop driver of `_loop.run_flow`: async HTTP, tools gathered on the loop.

Sync tools run in worker threads (`asyncio.to_thread`), so a slow tool never blocks the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sfagent.events import Event
from sfagent.exceptions import APIError
from sfagent.models import Model
from sfagent.run._drivers import ToolPolicy, approval, batches, call_timeout, deltas
from sfagent.run._loop import Emit, Flow, ModelCall, RunCalls
from sfagent.run._tool_calls import CallOutcome, PreparedCall


async def drive_async(
    flow: Flow, model: Model, policy: ToolPolicy, *, stream: bool
) -> AsyncIterator[Event]:
    """Run `flow` on the event loop, yielding its events (the last is `RunFinished`)."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            action = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration:
            return
        reply, error = None, None
        if isinstance(action, Emit):
            yield action.event
        elif isinstance(action, ModelCall):
            try:
                if stream:
                    box = _Box()
                    async for event in _model_stream_async(model, action, box):
                        yield event
                    reply = box.value
                else:
                    response = await model.complete_async(action.request, timeout=action.timeout)
                    reply = (response, False)
            except APIError as exc:
                error = exc
        else:
            reply = await _run_calls_async(action, policy)


@dataclass
class _Box:
    """Carries a streamed turn's response out of an async generator (which cannot return)."""

    value: Any = None


async def _model_stream_async(model: Model, action: ModelCall, box: _Box) -> AsyncIterator[Event]:
    async with model.stream_async(action.request, timeout=action.timeout) as chunks:
        async for chunk in chunks:
            for event in deltas(chunk, action.turn):
                yield event
        box.value = (await chunks.get_final_response(), True)


async def _run_calls_async(action: RunCalls, policy: ToolPolicy) -> list[CallOutcome | None]:
    outcomes: list[CallOutcome | None] = [None] * len(action.calls)
    limit = asyncio.Semaphore(policy.max_concurrency) if policy.max_concurrency else None

    async def one(i: int) -> None:
        if limit is None:
            outcomes[i] = await _call_async(action.calls[i], policy, action.time_left)
            return
        async with limit:
            outcomes[i] = await _call_async(action.calls[i], policy, action.time_left)

    for batch in batches(action.calls):
        if len(batch) == 1:
            await one(batch[0])
        else:
            await asyncio.gather(*(one(i) for i in batch))
    return outcomes


async def _call_async(
    item: PreparedCall, policy: ToolPolicy, time_left: float | None
) -> CallOutcome:
    if not item.runnable:
        return CallOutcome()
    tool = item.tool
    assert tool is not None
    start = time.perf_counter()
    try:
        if tool.requires_approval and not await _approved_async(item, policy):
            return CallOutcome(denied=True)
        if tool.is_async:
            work = tool.function(*item.args, **item.kwargs)
        else:
            work = asyncio.to_thread(tool.function, *item.args, **item.kwargs)
        timeout = call_timeout(item, time_left)
        value = await work if timeout is None else await _within(work, timeout)
        if inspect.isawaitable(value):
            value = await value
        return CallOutcome(value=value, duration=time.perf_counter() - start)
    except _TimedOut:
        return CallOutcome(timed_out=True, duration=time.perf_counter() - start)
    except Exception as exc:  # errors become results for the model
        return CallOutcome(exception=exc, duration=time.perf_counter() - start)


class _TimedOut(Exception):
    """Our timeout fired (as opposed to a TimeoutError the tool itself raised)."""


async def _within(work: Any, timeout: float) -> Any:
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise _TimedOut
    return task.result()


async def _approved_async(item: PreparedCall, policy: ToolPolicy) -> bool:
    answer = policy.approve(approval(item, policy)) if policy.approve else False
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)
