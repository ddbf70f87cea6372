"""The blocking driver of `_loop.run_flow`: sync HTTP, tools inline or on worker threads.

It never touches an event loop of the caller's, so it works where one is running (Jupyter);
async tools and approval callbacks get a worker thread, with a loop of their own.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from sfagent.events import Event
from sfagent.exceptions import APIError
from sfagent.messages import ChatCompletion
from sfagent.models import Model
from sfagent.run._actions import Emit, Flow, ModelCall, RunCalls
from sfagent.run._drivers import batches, call_deadline, deltas, run_deadline
from sfagent.run._invoke import ToolPolicy, invoke, timed_out
from sfagent.run._nested import relay_sync
from sfagent.run._tool_calls import CallOutcome, PreparedCall
from sfagent.run._trace import RunTrace, ToolTrace

# While a queued call has not started, its deadline is unknown: look again this often.
_POLL = 0.02


def drive_sync(
    flow: Flow, model: Model, policy: ToolPolicy, *, stream: bool, trace: RunTrace | None = None
) -> Iterator[Event]:
    """Run `flow` with blocking I/O, yielding its events (the last is `RunFinished`); with
    `trace`, inside the run's spans."""
    if trace is None:
        return _drive(flow, model, policy, stream, None)
    return trace.events(_drive(flow, trace.model(model), policy, stream, trace))


def _drive(
    flow: Flow, model: Model, policy: ToolPolicy, stream: bool, trace: RunTrace | None
) -> Iterator[Event]:
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
        elif action.nesting is None:
            reply = _run_calls_sync(action, policy, trace)
        else:  # an agent tool's inner run streams: its events come through while it runs
            work = functools.partial(_run_calls_sync, action, policy, trace)
            reply = yield from relay_sync(action.nesting, work)


def _model_sync(
    model: Model, action: ModelCall, stream: bool
) -> Generator[Event, None, ChatCompletion]:
    if not stream:
        return model.complete(action.request, timeout=action.timeout)
    with model.stream(action.request, timeout=action.timeout) as chunks:
        for chunk in chunks:
            yield from deltas(chunk, action.turn)
        return chunks.get_final_response()


def _run_calls_sync(
    action: RunCalls, policy: ToolPolicy, trace: RunTrace | None = None
) -> list[CallOutcome | None]:
    outcomes: list[CallOutcome | None] = [None] * len(action.calls)
    run_end = run_deadline(time.monotonic(), action.time_left)
    for batch in batches(action.calls):
        first = action.calls[batch[0]]
        if len(batch) == 1 and not _needs_thread(first, run_end):
            if trace is None:
                outcomes[batch[0]] = invoke(first, policy)
            else:
                work = functools.partial(invoke, first, policy)
                outcomes[batch[0]] = trace.tool(first, action.turn).run(work)
            continue
        # On the agent's pool, which queues what its bound does not let run yet. A call past
        # its deadline is abandoned, not waited for (a thread cannot be killed).
        started: dict[int, float] = {}
        submit = policy.threads.submit
        spans = {i: trace.tool(action.calls[i], action.turn) for i in batch} if trace else {}
        futures = {
            i: submit(_started, started, i, action.calls[i], policy, spans.get(i)) for i in batch
        }
        for i, outcome in _wait_batch(futures, started, action.calls, run_end).items():
            outcomes[i] = outcome
            if spans:
                spans[i].end(outcome)  # a call given up on; a finished one's span has ended
    return outcomes


def _needs_thread(item: PreparedCall, run_end: float) -> bool:
    # Async tools and approval callbacks may need an event loop of their own: a worker thread
    # has none running, even when the caller's thread does (Jupyter). A call with a deadline
    # runs on a thread so that the run can stop waiting for it.
    tool = item.tool
    return tool is not None and (
        tool.is_async
        or tool.requires_approval
        or tool.timeout is not None
        or not math.isinf(run_end)
    )


def _started(
    started: dict[int, float],
    i: int,
    item: PreparedCall,
    policy: ToolPolicy,
    span: ToolTrace | None = None,
) -> Any:
    started[i] = time.monotonic()
    if span is None:
        return invoke(item, policy)
    return span.run(functools.partial(invoke, item, policy))


def _wait_batch(
    futures: dict[int, Future[CallOutcome]],
    started: dict[int, float],
    calls: Sequence[PreparedCall],
    run_end: float,
) -> dict[int, CallOutcome]:
    """Wait for a batch until each call ends or passes its own deadline, whichever is first."""
    done: dict[int, CallOutcome] = {}
    pending = dict(futures)
    while pending:
        now = time.monotonic()
        wake = math.inf
        for i, future in list(pending.items()):
            if future.done():
                done[i] = future.result()
                del pending[i]
                continue
            deadline, check = _deadline(calls[i], started.get(i), now, run_end)
            if now >= deadline:
                done[i] = timed_out(now - started.get(i, now))
                del pending[i]
            wake = min(wake, check)
        if pending:
            timeout = None if math.isinf(wake) else max(wake - now, 0.0)
            wait(pending.values(), timeout=timeout, return_when=FIRST_COMPLETED)
    return done


def _deadline(
    item: PreparedCall, begun: float | None, now: float, run_end: float
) -> tuple[float, float]:
    """A pending call's deadline, and when to look at it again."""
    if begun is None and item.tool is not None and item.tool.timeout is not None:
        # Queued behind max_concurrency: its own timeout starts when it does, which no
        # future reports, so look again soon; the run's deadline holds meanwhile.
        return run_end, min(run_end, now + _POLL)
    deadline = call_deadline(item, begun if begun is not None else now, run_end)
    return deadline, deadline
