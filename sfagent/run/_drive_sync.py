"""The blocking driver of `_loop.run_flow`: sync HTTP, tools inline or in threads.

It never touches an event loop of the caller's, so it works where one is running (Jupyter);
async tools and async approval callbacks get a worker thread with a loop of their own.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sfagent.events import Event
from sfagent.exceptions import APIError
from sfagent.messages import ChatCompletion
from sfagent.models import Model
from sfagent.run._drivers import ToolPolicy, approval, batches, call_timeout, deltas
from sfagent.run._loop import Emit, Flow, ModelCall, RunCalls
from sfagent.run._tool_calls import CallOutcome, PreparedCall


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
            yield from deltas(chunk, action.turn)
        return chunks.get_final_response(), True


def _run_calls_sync(action: RunCalls, policy: ToolPolicy) -> list[CallOutcome | None]:
    outcomes: list[CallOutcome | None] = [None] * len(action.calls)
    for batch in batches(action.calls):
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
    timeout = call_timeout(item, time_left)
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
            import asyncio

            # Only ever reached in a worker thread (async tools always get one), where no
            # event loop runs, so this works even when the caller's thread has one.
            value = asyncio.run(_await(value))
        return CallOutcome(value=value, duration=time.perf_counter() - start)
    except Exception as exc:  # errors become results for the model
        return CallOutcome(exception=exc, duration=time.perf_counter() - start)


def _approved_sync(item: PreparedCall, policy: ToolPolicy) -> bool:
    answer = policy.approve(approval(item, policy)) if policy.approve else False
    if inspect.isawaitable(answer):
        import asyncio

        answer = asyncio.run(_await(answer))
    return bool(answer)


async def _await(awaitable: Any) -> Any:
    return await awaitable
