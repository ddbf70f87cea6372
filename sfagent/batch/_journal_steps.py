"""`JournalSteps`: a task's steps recorded in the batch journal, and replayed on resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sfagent.batch._journal import Journal, StepKind

__all__ = ["JournalSteps"]


class JournalSteps:
    """The `Steps` of one task: a step recorded before is returned as it was recorded.

    A new step's value is committed to the journal before the run goes on, so a batch killed
    at any moment never sends again a model request whose answer it had received (only the
    one in flight), nor runs again a tool call whose result it had recorded.

    Args:
        journal: The batch's journal.
        task_id: The task whose run this is.
        recorded: The task's recorded steps when the caller knows them (``{}`` for a task the
            journal has never seen); ``None`` reads them from the journal.
    """

    def __init__(
        self, journal: Journal, task_id: str, recorded: dict[str, Any] | None = None
    ) -> None:
        self.journal = journal
        self.task_id = task_id
        self.recorded = journal.steps(task_id) if recorded is None else recorded
        self.replayed = 0

    async def step(
        self, key: str, perform: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """The recorded value of `key`, or `perform`'s, committed first."""
        if key in self.recorded:
            self.replayed += 1
            value: dict[str, Any] = self.recorded[key]
            return value
        value = await perform()
        kind: StepKind = "model_response" if key.endswith("/model") else "tool_result"
        await self.journal.arecord_step(self.task_id, key, kind, value)
        self.recorded[key] = value
        return value
