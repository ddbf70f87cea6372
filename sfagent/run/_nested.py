"""Runs inside runs: an agent called as a tool, and what it inherits from the run that calls it.

`AgentTool` is the tool `Agent.as_tool` makes. Its call starts a run of the inner agent that
is bounded by the calling run: the time left and the tokens left, the latter shared by every
call of the turn (`Nesting`), so two inner runs side by side cannot each spend the whole
remainder. The calling run's loop adds the inner run's usage to its own and keeps its
transcript on the call's `ToolCallRecord.sub_run`; in a streamed run the driver hands the
inner run's events on as they come, wrapped in `NestedEvent`.

The tool has two ways to run: `run_blocking` for the sync drivers, and an async function for
the async drivers, so an inner run is sync inside a sync run and async inside an async one.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Unpack

from sfagent.context import RunContext
from sfagent.events import Event, NestedEvent, RunFinished
from sfagent.exceptions import UserError
from sfagent.tools import Tool
from sfagent.tools.tool import SchemaToolKwargs

if TYPE_CHECKING:
    import asyncio

    from sfagent.result import RunResult

__all__ = ["AgentTool", "NestedResult", "Nesting", "relay_async", "relay_sync"]

T = TypeVar("T")

# An inner run ends this much before the calling run's deadline (at most), so it reports its
# own BudgetExceeded, transcript included, before the calling driver stops waiting for it.
_MARGIN = 0.1
_MARGIN_SHARE = 0.05


class Nesting:
    """What the calls of one tool turn pass on to the runs they start.

    Made by the loop once per tool turn that has a call taking a `RunContext`, and shared by
    those calls' contexts: the run's deadline, its token budget left (spent by each inner run
    as it goes, and by the runs above this one), and, while a streamed run's driver listens,
    where nested events go.

    Attributes:
        turn: The calling run's turn.
        deadline: When the calling run's time is up, on `time.monotonic` (``None``: never).
    """

    __slots__ = ("_limit", "_lock", "_relay", "_spent", "deadline", "turn", "up")

    def __init__(
        self, *, turn: int, deadline: float | None, tokens: int | None, up: Nesting | None
    ) -> None:
        self.turn = turn
        self.deadline = deadline
        self.up = up
        self._limit = tokens
        self._spent = 0
        self._lock = threading.Lock()
        self._relay: Callable[[Event], None] | None = None

    def time_left(self) -> float | None:
        """Seconds until the calling run's deadline (``None``: no deadline; never below 0)."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def tokens_left(self) -> int | None:
        """Tokens the calling run (and every run above it) has left (``None``: no budget)."""
        own = None if self._limit is None else self._limit - self._spent
        above = self.up.tokens_left() if self.up is not None else None
        if own is None or above is None:
            return above if own is None else own
        return min(own, above)

    def charge(self, tokens: int) -> None:
        """Count `tokens` an inner run spent, here and in every run above."""
        with self._lock:  # inner runs on worker threads charge side by side
            self._spent += tokens
        if self.up is not None:
            self.up.charge(tokens)

    def inner_deadline(self, clock: Callable[[], float]) -> float | None:
        """The deadline of an inner run on its own `clock`, a little before this one's."""
        left = self.time_left()
        if left is None:
            return None
        return clock() + left - min(_MARGIN, left * _MARGIN_SHARE)

    @property
    def relayed(self) -> bool:
        """A streamed run's driver is listening for nested events."""
        return self._relay is not None

    def attach(self, relay: Callable[[Event], None]) -> None:
        """Send nested events to `relay` (a driver's queue) until `detach`."""
        self._relay = relay

    def detach(self) -> None:
        """Stop sending nested events (they are dropped from then on)."""
        self._relay = None

    def emit(self, event: Event) -> None:
        """Hand `event` to the listening driver, if any."""
        relay = self._relay
        if relay is not None:
            relay(event)


@dataclass(frozen=True)
class NestedResult:
    """What an `AgentTool` call returns to the loop: the answer for the model, and the run.

    Attributes:
        output: The inner run's output (the tool message is made from it).
        result: The inner run's `RunResult`.
    """

    output: Any
    result: RunResult[Any]


SyncStart = Callable[[Any, Any, bool, "Nesting | None"], Iterator[Event]]
AsyncStart = Callable[[Any, Any, bool, "Nesting | None"], AsyncIterator[Event]]


class AgentTool(Tool[..., Any]):
    """An agent as a tool: a call runs the agent on the call's input (see `Agent.as_tool`).

    Args:
        start_sync: ``(prompt, deps, stream, nesting) -> events`` of a blocking run.
        start_async: The same for an async run.
        name: The tool's name.
        description: What the agent does, for the calling model.
        input_type: The type of the tool's one argument, ``input``: ``str`` (the prompt), or a
            pydantic model (or any type pydantic validates) sent to the agent as JSON.
        input_description: The ``input`` parameter's description.
        **options: The other `ToolOptions` (``timeout``, ``max_retries``, ...).

    Attributes:
        input_type: The type of ``input``.
    """

    def __init__(
        self,
        start_sync: SyncStart,
        start_async: AsyncStart,
        *,
        name: str,
        description: str,
        input_type: Any = str,
        input_description: str | None = None,
        **options: Unpack[SchemaToolKwargs],
    ) -> None:
        if not isinstance(description, str) or not description.strip():
            raise UserError(f"as_tool(name={name!r}) needs a description for the calling model")
        self._start_sync = start_sync
        self._start_async = start_async
        self.input_type = input_type

        async def delegate(ctx: RunContext[Any], input: Any) -> Any:
            return await self._run_async(ctx, input)

        # The schema is read from this signature: `input` of the given type, and the context.
        delegate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("ctx", _KEYWORD, annotation=RunContext[Any]),
                inspect.Parameter("input", _KEYWORD, annotation=input_type),
            ]
        )
        text = input_description or (
            "The task for this agent, in plain words." if input_type is str else "The task."
        )
        delegate.__doc__ = f"{description}\n\nArgs:\n    input: {text}\n"
        super().__init__(delegate, name=name, description=description, **options)

    def run_blocking(self, ctx: RunContext[Any], input: Any) -> NestedResult:
        """Run the agent on `input` with blocking I/O (what the sync drivers call)."""
        nesting: Nesting | None = ctx._nesting
        stream = nesting is not None and nesting.relayed
        last: Event | None = None
        for last in self._start_sync(_prompt(input), ctx.deps, stream, nesting):
            if stream:
                self._relay(ctx, nesting, last)
        return _nested_result(last)

    async def _run_async(self, ctx: RunContext[Any], input: Any) -> NestedResult:
        nesting: Nesting | None = ctx._nesting
        stream = nesting is not None and nesting.relayed
        last: Event | None = None
        async for last in self._start_async(_prompt(input), ctx.deps, stream, nesting):
            if stream:
                self._relay(ctx, nesting, last)
        return _nested_result(last)

    def _relay(self, ctx: RunContext[Any], nesting: Nesting | None, event: Event) -> None:
        if nesting is not None:
            call_id = ctx.tool_call_id or ""
            nesting.emit(NestedEvent(call_id, self.name, nesting.turn, event))

    def __repr__(self) -> str:
        return f"AgentTool(name={self.name!r})"


_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _prompt(value: Any) -> str:
    """The inner run's prompt: the text itself, or structured input as JSON."""
    if isinstance(value, str):
        return value
    from pydantic_core import to_jsonable_python

    return json.dumps(to_jsonable_python(value), ensure_ascii=False)


def _nested_result(last: Event | None) -> NestedResult:
    if not isinstance(last, RunFinished):  # a run ends with one, or raises
        raise RuntimeError("the inner run ended without a RunFinished event")
    return NestedResult(last.result.output, last.result)


# --- the drivers' side: inner runs' events passed on while the calls run ---------------------

_DONE = object()


def relay_sync(nesting: Nesting, work: Callable[[], T]) -> Generator[Event, None, T]:
    """Run `work` (a turn's calls) on a helper thread, yielding the inner runs' events as they
    come; return what `work` returns (or raise what it raised)."""
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    ended: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            ended.append((True, work()))
        except BaseException as exc:  # handed to the driver's thread, raised there
            ended.append((False, exc))
        finally:
            events.put(_DONE)

    nesting.attach(events.put)
    # Not the agent's pool: a call queued behind max_concurrency must not wait for this.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(run,), name="sfagent-nested", daemon=True).start()
    try:
        while (event := events.get()) is not _DONE:
            yield event
    finally:
        nesting.detach()  # a call given up on may still run: its events go nowhere
    ok, value = ended[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def relay_async(
    nesting: Nesting, work: Coroutine[Any, Any, Any], box: Any
) -> AsyncIterator[Event]:
    """Run `work` (a turn's calls) as a task, yielding the inner runs' events as they come;
    `box.value` is then what `work` returned."""
    import asyncio  # deferred: sync runs never load it

    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Any] = asyncio.Queue()
    home = threading.get_ident()

    def relay(event: Event) -> None:
        if threading.get_ident() == home:
            events.put_nowait(event)
        else:  # an inner run on a worker thread
            loop.call_soon_threadsafe(events.put_nowait, event)

    nesting.attach(relay)
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda _task: events.put_nowait(_DONE))
    try:
        while (event := await events.get()) is not _DONE:
            yield event
        box.value = task.result()
    finally:
        nesting.detach()
        task.cancel()  # the listener left early: stop the calls (a no-op once done)
