"""The event-loop driver of `_loop.run_flow`: async HTTP, tools gathered on the loop.

Sync tools run on the agent's worker threads (`_pool`), so a slow tool never blocks the loop;
a call past its deadline is cancelled (an async tool stops; a sync tool's thread runs on, its
result discarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeGuard

from sfagent.context import ApprovalRequest
from sfagent.events import Event
from sfagent.exceptions import APIError
from sfagent.models import Model
from sfagent.run._actions import Emit, Flow, ModelCall, RunCalls
from sfagent.run._drivers import batches, call_deadline, deltas, run_deadline
from sfagent.run._invoke import ToolPolicy, acall, arefusal, call, timed_out
from sfagent.run._nested import relay_async
from sfagent.run._tool_calls import CallOutcome, PreparedCall
from sfagent.run._trace import RunTrace
from sfagent.steps import (
    ApprovingSteps,
    Steps,
    approval_step_key,
    call_step_key,
    model_step_key,
)


def drive_async(
    flow: Flow,
    model: Model,
    policy: ToolPolicy,
    *,
    stream: bool,
    steps: Steps | None = None,
    trace: RunTrace | None = None,
) -> AsyncIterator[Event]:
    """Run `flow` on the event loop, yielding its events (the last is `RunFinished`); with
    `steps`, each model request and tool call goes through it (a non-streamed run only); with
    `trace`, inside the run's spans."""
    if trace is None:
        return _drive(flow, model, policy, stream, steps, None)
    return trace.aevents(_drive(flow, trace.model(model), policy, stream, steps, trace))


async def _drive(
    flow: Flow,
    model: Model,
    policy: ToolPolicy,
    stream: bool,
    steps: Steps | None,
    trace: RunTrace | None,
) -> AsyncIterator[Event]:
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
                elif steps is not None:
                    reply = await _model_step(steps, model, action)
                else:
                    reply = await model.complete_async(action.request, timeout=action.timeout)
            except APIError as exc:
                error = exc
        elif action.nesting is None:
            reply = await _run_calls_async(action, policy, steps, trace)
        else:  # an agent tool's inner run streams: its events come through while it runs
            box = _Box()
            work = _run_calls_async(action, policy, steps, trace)
            async for event in relay_async(action.nesting, work, box):
                yield event
            reply = box.value


@dataclass
class _Box:
    """Carries a streamed turn's response out of an async generator (which cannot return)."""

    value: Any = None


async def _model_stream_async(model: Model, action: ModelCall, box: _Box) -> AsyncIterator[Event]:
    async with model.stream_async(action.request, timeout=action.timeout) as chunks:
        async for chunk in chunks:
            for event in deltas(chunk, action.turn):
                yield event
        box.value = await chunks.get_final_response()


async def _model_step(steps: Steps, model: Model, action: ModelCall) -> Any:
    from sfagent.run._steps import completion_from, completion_value

    live: list[Any] = []

    async def perform() -> dict[str, Any]:
        response = await model.complete_async(action.request, timeout=action.timeout)
        live.append(response)
        return completion_value(response)

    value = await steps.step(model_step_key(action.turn), perform)
    # Performed now: the response in hand is what was recorded; decoding it back would only
    # repeat the validation it passed.
    return live[0] if live else completion_from(value)


async def _call_step(steps: Steps, turn: int, item: PreparedCall, run: Any) -> CallOutcome:
    from sfagent.run._steps import outcome_from, outcome_value

    live: list[CallOutcome] = []

    async def perform() -> dict[str, Any]:
        live.append(await run())
        return outcome_value(item, live[0])

    value = await steps.step(call_step_key(turn, item.call.id), perform)
    return live[0] if live else outcome_from(value)


async def _run_calls_async(
    action: RunCalls,
    policy: ToolPolicy,
    steps: Steps | None = None,
    trace: RunTrace | None = None,
) -> list[CallOutcome | None]:
    outcomes: list[CallOutcome | None] = [None] * len(action.calls)
    decided = await _approvals(steps, action, policy) if _approving(steps) else {}
    run_end = run_deadline(time.monotonic(), action.time_left)
    limit = asyncio.Semaphore(policy.max_concurrency) if policy.max_concurrency else None

    async def one(i: int) -> None:
        item = action.calls[i]
        async with limit if limit is not None else contextlib.nullcontext():
            if steps is None and trace is None:
                outcomes[i] = await _call_async(item, policy, run_end)
                return
            own = policy if i not in decided else _decided(policy, decided[i])
            run = functools.partial(_call_async, item, own, run_end)
            if trace is not None:  # the span covers the call, not a step replayed instead
                run = functools.partial(trace.tool(item, action.turn).arun, run)
            if steps is None:
                outcomes[i] = await run()
            else:
                outcomes[i] = await _call_step(steps, action.turn, item, run)

    for batch in batches(action.calls):
        if len(batch) == 1:
            await one(batch[0])
        else:
            await asyncio.gather(*(one(i) for i in batch))
    return outcomes


def _approving(steps: Steps | None) -> TypeGuard[ApprovingSteps]:
    # Not isinstance(steps, ApprovingSteps): a runtime protocol's check costs ~15 µs a turn.
    return callable(getattr(steps, "approval", None))


async def _approvals(
    steps: ApprovingSteps, action: RunCalls, policy: ToolPolicy
) -> dict[int, bool]:
    """The steps' decision on each call needing approval, asked one at a time in the model's
    order (an engine replays them by position)."""
    decided: dict[int, bool] = {}
    for i, item in enumerate(action.calls):
        if item.runnable and item.tool is not None and item.tool.requires_approval:
            call = item.call
            request = ApprovalRequest(
                tool_name=call.function.name,
                arguments=call.function.arguments,
                call_id=call.id,
                deps=policy.deps,
            )
            key = approval_step_key(action.turn, call.id)
            decided[i] = await steps.approval(key, request, policy.approve)
    return decided


def _decided(policy: ToolPolicy, approved: bool) -> ToolPolicy:
    """`policy` with the approval already decided (the call's step only applies it)."""
    return dataclasses.replace(policy, approve=lambda _request: approved)


async def _on_thread(policy: ToolPolicy, item: PreparedCall) -> CallOutcome:
    # Like asyncio.to_thread, on the agent's bounded pool instead of the loop's default one.
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await policy.threads.run_async(loop, context.run, call, item)


async def _call_async(item: PreparedCall, policy: ToolPolicy, run_end: float) -> CallOutcome:
    refusal = await arefusal(item, policy)
    if refusal is not None:
        return refusal
    tool = item.tool
    assert tool is not None
    work = acall(item) if tool.is_async else _on_thread(policy, item)
    started = time.monotonic()
    deadline = call_deadline(item, started, run_end)
    if math.isinf(deadline):
        return await work
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(deadline - started, 0.0))
    except asyncio.CancelledError:
        task.cancel()  # a cancelled run cancels its calls (asyncio.wait would leave them on)
        raise
    if not done:
        task.cancel()
        return timed_out(time.monotonic() - started)
    return task.result()
