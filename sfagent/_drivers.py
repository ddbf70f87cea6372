"""The I/O around the loop: the sync and async drivers of `_loop.run_flow`.

Each driver performs the actions the flow yields — a model request (whole or streamed), a batch
of tool calls — and passes every event on. They decide nothing; the flow does.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from sfagent._loop import Emit, Flow, ModelCall, RunCalls
from sfagent._tool_calls import CallOutcome, PreparedCall
from sfagent.context import ApprovalRequest
from sfagent.events import Event, ReasoningDelta, TextDelta
from sfagent.exceptions import APIError
from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.models import Model

Approver = Callable[[ApprovalRequest], Any]


@dataclass(frozen=True)
class ToolPolicy:
    """How a driver runs a batch of calls."""

    approve: Approver | None
    max_concurrency: int | None
    deps: Any


# --- sync -------------------------------------------------------------------------------------


def drive_sync(flow: Flow, model: Model, policy: ToolPolicy, *, stream: bool) -> Iterator[Event]:
    """Run `flow` with blocking I/O, yielding its events (the last is `RunFinished`)."""
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
                reply = yield from _model_sync(model, action, stream)
            except APIError as exc:
                error = exc
        else:
            reply = _run_calls_sync(action, policy)


def _model_sync(
    model: Model, action: ModelCall, stream: bool
) -> Generator[Event, None, tuple[ChatCompletion, bool]]:
    if not stream:
        return model.complete(action.request, timeout=action.timeout), False
    with model.stream(action.request, timeout=action.timeout) as chunks:
        for chunk in chunks:
            yield from _deltas(chunk, action.turn)
        return chunks.get_final_response(), True


def _run_calls_sync(action: RunCalls, policy: ToolPolicy) -> list[CallOutcome | None]:
    outcomes: list[CallOutcome | None] = [None] * len(action.calls)
    for batch in _batches(action.calls):
        if len(batch) == 1 and not _needs_thread(action.calls[batch[0]]):
            i = batch[0]
            outcomes[i] = _call_sync(action.calls[i], policy)
            continue
        # Threads run the batch concurrently; a call that overruns its timeout is abandoned
        # (a thread cannot be killed), so the pool is not waited for on the way out.
        workers = min(len(batch), policy.max_concurrency or len(batch))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sfagent-tool")
        try:
            futures = {i: pool.submit(_call_sync, action.calls[i], policy) for i in batch}
            for i, future in futures.items():
                outcomes[i] = _wait(future, action.calls[i], action.time_left)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return outcomes


def _needs_thread(item: PreparedCall) -> bool:
    # Async tools and approval callbacks may need an event loop of their own: a worker thread
    # has none running, even when the caller's thread does (Jupyter).
    tool = item.tool
    return tool is not None and (
        tool.is_async or tool.requires_approval or tool.timeout is not None
    )


def _wait(future: Any, item: PreparedCall, time_left: float | None) -> CallOutcome:
    timeout = _call_timeout(item, time_left)
    try:
        return future.result(timeout=timeout)  # type: ignore[no-any-return]
    except FutureTimeout:
        return CallOutcome(timed_out=True, duration=timeout or 0.0)


def _call_sync(item: PreparedCall, policy: ToolPolicy) -> CallOutcome:
    if not item.runnable:
        return CallOutcome()
    assert item.tool is not None
    start = time.perf_counter()
    try:
        if item.tool.requires_approval and not _approved_sync(item, policy):
            return CallOutcome(denied=True)
        value = item.tool.function(*item.args, **item.kwargs)
        if inspect.isawaitable(value):
            # Only ever reached in a worker thread (async tools always get one), where no
            # event loop runs, so this works even when the caller's thread has one.
            value = asyncio.run(_await(value))
        return CallOutcome(value=value, duration=time.perf_counter() - start)
    except Exception as exc:  # errors become results for the model
        return CallOutcome(exception=exc, duration=time.perf_counter() - start)


def _approved_sync(item: PreparedCall, policy: ToolPolicy) -> bool:
    answer = policy.approve(_approval(item, policy)) if policy.approve else False
    if inspect.isawaitable(answer):
        answer = asyncio.run(_await(answer))
    return bool(answer)


async def _await(awaitable: Any) -> Any:
    return await awaitable


# --- async ------------------------------------------------------------------------------------


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
            for event in _deltas(chunk, action.turn):
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

    for batch in _batches(action.calls):
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
        timeout = _call_timeout(item, time_left)
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
    answer = policy.approve(_approval(item, policy)) if policy.approve else False
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


# --- shared -------------------------------------------------------------------------------------


def _deltas(chunk: ChatCompletionChunk, turn: int) -> Iterator[Event]:
    for choice in chunk.choices:
        if choice.index != 0:
            continue
        delta = choice.delta
        if delta.reasoning_content:
            yield ReasoningDelta(delta.reasoning_content, turn)
        if delta.content:
            yield TextDelta(delta.content, turn)


def _batches(calls: Sequence[PreparedCall]) -> list[list[int]]:
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


def _call_timeout(item: PreparedCall, time_left: float | None) -> float | None:
    timeout = item.tool.timeout if item.tool is not None else None
    if time_left is not None:
        timeout = time_left if timeout is None else min(timeout, time_left)
    return timeout


def _approval(item: PreparedCall, policy: ToolPolicy) -> ApprovalRequest:
    call = item.call
    return ApprovalRequest(
        tool_name=call.function.name,
        arguments=call.function.arguments,
        call_id=call.id,
        deps=policy.deps,
    )
