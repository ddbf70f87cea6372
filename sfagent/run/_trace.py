"""The seam where tracing watches a run: what the drivers call when a run is traced.

A driver given a `RunTrace` hands it the run's events (it wraps them to open and close the
run's span), its model (wrapped so each request is a span), and each tool call it runs. The
drivers pass ``None`` when tracing is off and then call nothing here; `sfagent.tracing`
implements these with OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol

from sfagent.events import Event
from sfagent.models import Model
from sfagent.run._tool_calls import CallOutcome, PreparedCall


class ToolTrace(Protocol):
    """The span of one tool call."""

    def run(self, work: Callable[[], CallOutcome]) -> CallOutcome:
        """Run `work` (on any thread) with the call's span current; end the span with its
        outcome."""
        ...

    async def arun(self, work: Callable[[], Awaitable[CallOutcome]]) -> CallOutcome:
        """`run` for a coroutine on the event loop."""
        ...

    def end(self, outcome: CallOutcome | None) -> None:
        """End the span with `outcome` unless `run` already did (a call the driver stopped
        waiting for)."""
        ...


class RunTrace(Protocol):
    """The spans of one run."""

    def model(self, model: Model) -> Model:
        """`model` with each request made a span under the run's."""
        ...

    def events(self, events: Iterator[Event]) -> Iterator[Event]:
        """`events` inside the run's span: it starts with the first and ends with the last."""
        ...

    def aevents(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """`events` for an async run."""
        ...

    def tool(self, item: PreparedCall, turn: int) -> ToolTrace:
        """The span of `item` (started now), a child of the run's."""
        ...
