"""`Steps`: the seam where a journal or a durable engine takes over a run's steps.

A run is a sequence of steps: each model request, and each tool call. With ``steps=`` given to
`Agent.run`, every step goes through `Steps.step` under a stable key, with a function that
performs it and returns its value as JSON-ready data (a dict). An implementation may return a
value recorded earlier under the same key instead of performing the step: a resumed run then
replays what it already paid for and carries on from the first step it has no record of.
`sfagent.batch`'s journal does this; a durable-execution engine can make each step one of its
own.

Keys name the step kind and where it sits in the run, under a format version, for example
``v1/turn-3/model`` and ``v1/turn-3/call/call_abc``. A key never changes meaning within a
version; a new layout gets a new version, so records written by an older release are either
read as they were meant or refused clearly, never misread.

Replaying is sound when the run is deterministic given the recorded values: the same prompt,
agent settings and tools, and tools whose effects the records stand for (use
`RunContext.idempotency_key` for side effects that must not repeat).

An implementation that also has an `ApprovingSteps.approval` method decides the approval of
each call of a tool marked ``requires_approval`` itself, before the call's step, in the model's
order: a durable engine can park the run there until a person answers, from another process,
hours later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from sfagent.context import ApprovalRequest

__all__ = [
    "STEP_KEY_VERSION",
    "ApprovingSteps",
    "Steps",
    "approval_step_key",
    "call_step_key",
    "model_step_key",
]

STEP_KEY_VERSION = "v1"
"""The key layout: bump it when what a key names, or the shape of its value, changes."""


@runtime_checkable
class Steps(Protocol):
    """Performs (or replays) each step of a run."""

    async def step(
        self, key: str, perform: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """Return the value recorded under `key`, or ``await perform()``, record it, return it.

        A step that raises is not a value: let the exception through, record nothing.
        """
        ...


@runtime_checkable
class ApprovingSteps(Steps, Protocol):
    """`Steps` that also decide approvals (see the module)."""

    async def approval(
        self,
        key: str,
        request: ApprovalRequest,
        ask: Callable[[ApprovalRequest], Any] | None,
    ) -> bool:
        """Whether the call in `request` may run.

        Args:
            key: The decision's stable key (`approval_step_key`).
            request: The call to decide on.
            ask: The agent's approval callback, if it has one.
        """
        ...


def model_step_key(turn: int) -> str:
    """The key of the run's `turn`-th model request (from 1)."""
    return f"{STEP_KEY_VERSION}/turn-{turn}/model"


def call_step_key(turn: int, call_id: str) -> str:
    """The key of the tool call `call_id` answered in `turn`."""
    return f"{STEP_KEY_VERSION}/turn-{turn}/call/{call_id}"


def approval_step_key(turn: int, call_id: str) -> str:
    """The key of the approval decision on the tool call `call_id` of `turn`."""
    return f"{STEP_KEY_VERSION}/turn-{turn}/approval/{call_id}"
