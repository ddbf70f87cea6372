"""`JournalSteps`: a task's steps recorded in the batch journal, and replayed on resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sfagent.batch._journal import Journal

__all__ = ["JournalSteps"]


class JournalSteps:
    """The `Steps` of one task: a step recorded before is returned as it was recorded.

    A model answer is committed to the journal before the run acts on it, so a batch killed
    at any moment never sends again a model request whose answer it had received (only the
    one in flight), nor runs a tool call the journal does not know was asked for. A tool
    result is queued and the run goes on: the journal commits a task's writes in order, so
    the next answer's commit carries it, and a kill before that loses only what a resume
    repeats anyway (the tool, with the same idempotency key, and the request in flight).

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
        if key.endswith("/model"):
            await self.journal.arecord_step(self.task_id, key, "model_response", value)
        else:
            # Not awaited (see the class): a failed write fails the journal's next write,
            # or its flush.
            self.journal.record_step(self.task_id, key, "tool_result", value, wait=False)
        self.recorded[key] = value
        return value
