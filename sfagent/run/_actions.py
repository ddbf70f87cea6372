"""What the loop asks its drivers to do, and what it is sent back: the seam of a run.

`run_flow` yields one of these actions at a time and is sent the reply; a driver performs
the action with real I/O. Any other engine (a test, a durable workflow) can drive a run by
speaking the same three actions.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sfagent.events import Event
from sfagent.settings import ChatRequest

if TYPE_CHECKING:
    from sfagent.result import RunResult
    from sfagent.run._nested import Nesting
    from sfagent.run._tool_calls import PreparedCall


@dataclass(frozen=True)
class ModelCall:
    """Action: send `request`; reply with the `ChatCompletion` (a stream folded into one), or
    throw the `APIError` it failed with into the flow.

    Attributes:
        request: The request to send.
        turn: Its number in the run, from 1.
        timeout: Seconds left in the run's time budget (``None``: no budget).
    """

    request: ChatRequest
    turn: int
    timeout: float | None


@dataclass(frozen=True)
class RunCalls:
    """Action: run the runnable calls; reply with one `CallOutcome` (or ``None``) per call.

    Attributes:
        calls: Every call of the turn, in order; only the runnable ones are to be run.
        turn: The turn the calls belong to.
        time_left: Seconds left in the run's time budget (``None``: no budget).
        nesting: Set in a streamed run when a call starts a run of its own (an agent as a
            tool): attach a listener to it to pass that run's events on as they come.
    """

    calls: Sequence[PreparedCall]
    turn: int
    time_left: float | None
    nesting: Nesting | None = None


@dataclass(frozen=True)
class Emit:
    """Action: hand `event` to whoever listens; reply with ``None``."""

    event: Event


Action = ModelCall | RunCalls | Emit
Flow = Generator[Action, Any, "RunResult[Any]"]
"""A run in progress: yields actions, returns the `RunResult` (or raises `AgentRunError`)."""
