"""The cheap path: single-turn tasks without tools through SiliconFlow's batch API, half price.

`BatchAPIRunner` is `BatchRunner`'s twin for ``--via batch-api``: the same tasks, journal,
records and summary, but every task's one request goes into a batch file instead of being
sent. Each request is the one `Agent.run` would send first: the run's own flow is started
and its first action taken (system prompt, user prompt, model id and settings, as the loop
builds them). When the batch is done, each answer is sent back into a fresh flow for its
task, so the run ends exactly as it would have online (the output, a truncation error, the
usage) and becomes the same result record, priced at the batch rate.

Nothing paid for twice:
    The requests are built from every task, finished ones included, so the files, and the
    digests that name them, are the same on every start over the same tasks. After each
    batch is created the journal's job metadata records it (digest → batch id). A resumed
    start skips files whose tasks are all finished, takes a recorded batch up again, and asks
    the server (`AsyncBatchAPI.find_or_submit`, by job id and digest) for one that was
    created but not recorded (a kill between the two); only a file with neither is uploaded.
    Each task's record is committed to the journal before it is yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sfagent.agent import Agent
from sfagent.batch._journal import JobInfo, Journal
from sfagent.batch._tasks import Task, TaskSource
from sfagent.batch.pricing import SILICONFLOW_PRICES, PriceTable
from sfagent.batch.runner import (
    BatchSummary,
    RecordTally,
    TaskRecord,
    as_tasks,
    batch_fingerprint,
    currency_for,
    open_journal,
    task_record,
)
from sfagent.client.batch_api import (
    MAX_LINES_PER_FILE,
    AsyncBatchAPI,
    Batch,
    BatchInputError,
    BatchInputFile,
    BatchRequestFailure,
    BatchResult,
    build_input_files,
)
from sfagent.exceptions import (
    AgentRunError,
    APIError,
    NotFoundError,
    UserError,
    status_error_class,
)
from sfagent.result import RunResult
from sfagent.run._actions import Emit, Flow, ModelCall

__all__ = [
    "BatchAPIRunner",
    "BatchLineError",
    "NotBatchableError",
    "run_via_batch_api",
]

METADATA_KEY = "batch_api"
"""The journal job metadata's key for the submitted batches: digest → batch."""

_CHUNK = 500  # records committed to the journal in one group before they are yielded
_GONE = frozenset({"cancelled", "cancelling"})  # a batch that will not answer: submit again


class NotBatchableError(UserError):
    """An agent whose runs cannot go through the batch API: it has tools or structured output.

    Attributes:
        reason: Why.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"--via batch-api runs single-turn tasks without tools: {reason}")


class BatchLineError(APIError):
    """A batch request that got no answer with an HTTP status: the batch expired or was
    cancelled before it ran, its result line was missing or unreadable, or the run asked for
    a second turn.

    Attributes:
        code: The error code when the line had one (e.g. ``"batch_expired"``).
        batch_id: The batch.
    """

    def __init__(self, message: str, *, code: int | str | None = None, batch_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.batch_id = batch_id


@dataclass(frozen=True)
class _Submitted:
    """One input file and its batch, as last read."""

    file: BatchInputFile
    batch: Batch


@dataclass
class _Plan:
    """What a start has to do: the files of every task, and the tasks still to finish."""

    files: list[BatchInputFile]
    pending: dict[str, Task]


class BatchAPIRunner:
    """Runs a batch of single-turn tasks through SiliconFlow's batch API (see the module).

    Args:
        agent: The agent whose first request each task sends (no tools, text output).
        api: The batch API client (you close it).
        journal: A path for the SQLite journal (or a `Journal`); ``None`` keeps nothing.
        job_id: The journal's name for this batch; also tags the batches on the server.
        prices: Prices, applied at the batch rate (``None``: no costs).
        completion_window: ``"24h"`` to ``"336h"``.
        poll_interval: Seconds between polls of each batch.
        timeout: Seconds to wait for each batch (``None``: until it finishes or expires).
        on_poll: Called with each batch state read (progress).
        transcripts: Put each run's messages into its result record.
        max_lines: The most requests one file holds (SiliconFlow's limit by default).

    Raises:
        NotBatchableError: The agent has tools or structured output.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        api: AsyncBatchAPI,
        journal: str | Path | Journal | None = None,
        job_id: str = "batch",
        prices: PriceTable | None = SILICONFLOW_PRICES,
        completion_window: str = "24h",
        poll_interval: float = 60.0,
        timeout: float | None = None,
        on_poll: Callable[[Batch], None] | None = None,
        transcripts: bool = False,
        max_lines: int = MAX_LINES_PER_FILE,
    ) -> None:
        _check_agent(agent)
        self.model_name = agent.model_name
        self.prices = prices
        self.currency = currency_for(prices, self.model_name)
        self.completion_window = completion_window
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.on_poll = on_poll
        self.transcripts = transcripts
        self.max_lines = max_lines
        self._agent = agent
        self._api = api
        self._journal_arg = journal
        self._job_id = job_id
        self._job: JobInfo | None = None
        self.summary: BatchSummary | None = None
        """How the last `run` went (set when it ends)."""
        self.running = 0
        """Tasks in batches not answered yet (for a progress display)."""
        self.batches: dict[str, Batch] = {}
        """Each batch of the last `run`, as last read, by id."""

    def __repr__(self) -> str:
        return f"BatchAPIRunner(model={self.model_name!r})"

    def fingerprint(self, template: str | None = None) -> dict[str, Any]:
        """What a resumed batch must match; `BatchRunner`'s, so either may resume the other."""
        return batch_fingerprint(self.model_name, self._agent.tools.names, template)

    async def run(
        self,
        tasks: TaskSource | Iterable[Task] | Iterable[str | Mapping[str, Any]],
        *,
        resume: bool = False,
        force: bool = False,
    ) -> AsyncIterator[TaskRecord]:
        """Submit the tasks, wait for their batches, yield each task's result record.

        The records are `BatchRunner.run`'s (``turns`` is 1, ``cost`` at the batch rate,
        ``started_at``/``finished_at`` the batch's creation and completion on the server).

        Args:
            tasks: From `load_tasks`, or prompts and rows.
            resume: Continue the journal's batch: records of finished tasks come first, and
                batches already submitted are found again instead of submitted.
            force: Resume although the model, tools or template differ from the journal's.

        Raises:
            BatchInputError: A task whose request cannot go into a batch (nothing is sent).
            ConfigMismatchError: The journal holds another batch (or ``resume`` is false).
            APITimeoutError: A batch outlasted ``timeout`` (resume later: it is found again).
        """
        source = tasks if isinstance(tasks, TaskSource) else as_tasks(tasks)
        template = (
            source.template.text if isinstance(source, TaskSource) and source.template else None
        )
        # Every request is built before the journal opens the job: a bad row or a request no
        # batch can take then leaves no job behind to refuse the corrected command.
        plan = self._plan(source)
        journal = self._open_journal(template, resume=resume, force=force)
        started, counts = time.monotonic(), RecordTally()
        self.batches = {}
        try:
            if journal is not None:
                for earlier in journal.results():
                    plan.pending.pop(earlier.task_id, None)
                    counts.resumed += 1
                    counts.count(earlier.result)
                    yield earlier.result
            async for record in self._run_plan(plan, journal, counts, resume=resume):
                yield record
        finally:
            self.running = 0
            if journal is not None and self._journal_arg is not journal:
                journal.close()
            self.summary = counts.summary(self.currency, time.monotonic() - started)

    # --- the requests ------------------------------------------------------------------------

    def _flow(self, task: Task) -> Flow:
        # The agent's own run, started as `Agent.run` starts it: the request is the loop's.
        return self._agent._flow(task.prompt, (), task.deps, False, run_id=task.id)

    def _request(self, task: Task) -> dict[str, Any]:
        """The body of the first request the task's run sends."""
        try:
            flow = self._flow(task)
            try:
                action = next(flow)
            finally:
                flow.close()
        except UserError as exc:  # a prompt or deps the agent refuses
            raise BatchInputError(task.id, str(exc)) from exc
        if not isinstance(action, ModelCall):
            raise BatchInputError(task.id, "the run does not start with a model request")
        return action.request.to_body()

    def _plan(self, tasks: Iterable[Task]) -> _Plan:
        # Every task's request, finished ones too: the files (and digests) of a resumed start
        # are then the first start's, so its batches are found again.
        pairs: list[tuple[str, dict[str, Any]]] = []
        pending: dict[str, Task] = {}
        for task in tasks:
            pairs.append((task.id, self._request(task)))
            pending[task.id] = task
        return _Plan(build_input_files(pairs, max_lines=self.max_lines), pending)

    # --- submitting and waiting --------------------------------------------------------------

    async def _run_plan(
        self, plan: _Plan, journal: Journal | None, counts: RecordTally, *, resume: bool
    ) -> AsyncIterator[TaskRecord]:
        submitted = await self._submit_all(plan, journal, resume=resume)
        self.running = sum(_count_pending(s.file, plan.pending) for s in submitted)
        waits = [asyncio.ensure_future(self._finished(s)) for s in submitted]
        try:
            for next_done in asyncio.as_completed(waits):
                done = await next_done
                async for record in self._records(done, plan.pending, journal, counts):
                    yield record
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _submit_all(
        self, plan: _Plan, journal: Journal | None, *, resume: bool
    ) -> list[_Submitted]:
        recorded = dict(self._job.metadata.get(METADATA_KEY, {})) if self._job else {}
        submitted = []
        for file in plan.files:
            if not _count_pending(file, plan.pending):
                continue  # every task of it finished before: nothing to wait for
            known = recorded.get(file.digest)
            batch = await self._find_or_submit(file, known, resume=resume)
            self.batches[batch.id] = batch
            if journal is not None and (known is None or known.get("batch_id") != batch.id):
                recorded[file.digest] = _entry(file, batch)
                self._record_batches(journal, recorded)
                journal.add_tasks(cid for cid in file.custom_ids if cid in plan.pending)
            submitted.append(_Submitted(file, batch))
        return submitted

    async def _find_or_submit(
        self, file: BatchInputFile, known: Mapping[str, Any] | None, *, resume: bool
    ) -> Batch:
        if known is not None:
            with contextlib.suppress(NotFoundError):  # gone from the server: look, then submit
                batch = await self._api.get(str(known["batch_id"]))
                if batch.status not in _GONE:
                    return batch
        options: dict[str, Any] = {"job": self._job_id, "completion_window": self.completion_window}
        if resume:  # created by a start killed before the journal recorded it?
            batch, _ = await self._api.find_or_submit(file, **options)
            return batch
        return await self._api.submit(file, **options)

    def _record_batches(self, journal: Journal, recorded: Mapping[str, Any]) -> None:
        """Keep the submitted batches in the job's metadata (committed before going on)."""
        assert self._job is not None
        metadata = {**self._job.metadata, METADATA_KEY: dict(recorded)}
        config = self._job.config
        self._job = journal.open_job(
            self._job_id, config, resume=True, force=True, metadata=metadata
        )

    async def _finished(self, submitted: _Submitted) -> _Submitted:
        def seen(batch: Batch) -> None:
            self.batches[batch.id] = batch
            if self.on_poll is not None:
                self.on_poll(batch)

        batch = await self._api.wait(
            submitted.batch.id, poll_interval=self.poll_interval, timeout=self.timeout, on_poll=seen
        )
        return replace(submitted, batch=batch)

    # --- the answers -------------------------------------------------------------------------

    async def _records(
        self,
        done: _Submitted,
        pending: dict[str, Task],
        journal: Journal | None,
        counts: RecordTally,
    ) -> AsyncIterator[TaskRecord]:
        """The records of a finished batch's tasks, each committed before it is yielded."""
        results = (await self._api.results(done.batch)).results
        ids = [cid for cid in done.file.custom_ids if cid in pending]
        for start in range(0, len(ids), _CHUNK):
            chunk = [pending.pop(cid) for cid in ids[start : start + _CHUNK]]
            attempts = [1] * len(chunk)
            if journal is not None:
                attempts = list(await asyncio.gather(*(journal.astart_task(t.id) for t in chunk)))
            made = [
                self._task_record(task, results.get(task.id), done.batch, attempt)
                for task, attempt in zip(chunk, attempts, strict=True)
            ]
            if journal is not None:
                await asyncio.gather(
                    *(journal.afinish_task(r["id"], r, r["status"]) for r, _ in made)
                )
            for record, tokens in made:
                self.running -= 1
                counts.count(record, tokens=tokens)
                yield record

    def _task_record(
        self, task: Task, result: BatchResult | None, batch: Batch, attempt: int
    ) -> tuple[TaskRecord, int]:
        """A task's record (as `BatchRunner` writes it) and the tokens its run used."""
        run, error = self._outcome(task, result, batch)
        cost = None
        if self.prices is not None and run is not None:
            cost = self.prices.cost(self.model_name, run.usage, batch=True)
        record = task_record(task, run, error, cost, self.currency, attempt)
        started, finished = _times(batch)
        record.update(
            latency=max(finished - started, 0.0), started_at=started, finished_at=finished
        )
        if self.transcripts and run is not None:
            record["transcript"] = run.messages
        return record, run.usage.total_tokens if run is not None else 0

    def _outcome(
        self, task: Task, result: BatchResult | None, batch: Batch
    ) -> tuple[RunResult[Any] | None, BaseException | None]:
        """The task's run, ended by the batch's answer (or failure) as it would end online."""
        flow = self._flow(task)
        try:
            next(flow)  # the request, sent in the batch
            if result is None:
                message = f"batch {batch.id} ended {batch.status} without a line for this request"
                return _drive(flow, None, BatchLineError(message, batch_id=batch.id)), None
            if result.completion is not None:
                return _drive(flow, result.completion, None), None
            assert result.failure is not None
            return _drive(flow, None, _failure_error(result.failure, batch.id)), None
        except AgentRunError as exc:
            return exc.result, exc
        except Exception as exc:  # a run that cannot take the answer: its record says why
            return None, exc
        finally:
            flow.close()

    # --- the journal -------------------------------------------------------------------------

    def _open_journal(self, template: str | None, *, resume: bool, force: bool) -> Journal | None:
        opened = open_journal(
            self._journal_arg, self._job_id, self.fingerprint(template), resume=resume, force=force
        )
        if opened is None:
            return None
        journal, self._job = opened
        return journal


async def run_via_batch_api(
    agent: Agent[Any, Any],
    tasks: TaskSource | Iterable[Task] | Iterable[str | Mapping[str, Any]],
    *,
    api: AsyncBatchAPI,
    journal: str | Path | Journal | None = None,
    job_id: str = "batch",
    resume: bool = False,
    force: bool = False,
    **options: Any,
) -> AsyncIterator[TaskRecord]:
    """`BatchAPIRunner(agent, api=..., ...).run(tasks)` in one call (no summary: use the class).

    Args:
        agent: The agent (no tools, text output).
        tasks: The tasks.
        api: The batch API client.
        journal: The journal's path, or a `Journal`.
        job_id: The job's name.
        resume: Continue the journal's batch.
        force: Resume although the configuration differs.
        **options: `BatchAPIRunner`'s other options.
    """
    runner = BatchAPIRunner(agent, api=api, journal=journal, job_id=job_id, **options)
    async for record in runner.run(tasks, resume=resume, force=force):
        yield record


# --- helpers ---------------------------------------------------------------------------------


def _check_agent(agent: Agent[Any, Any]) -> None:
    if agent.tools.names:
        raise NotBatchableError(f"the agent has tools ({', '.join(agent.tools.names)})")
    # Structured output may need a second turn (a retry after a bad answer): not single-turn.
    if agent._config.output is not None:
        raise NotBatchableError("the agent has structured output (output_type)")


def _drive(flow: Flow, completion: Any, error: BaseException | None) -> RunResult[Any]:
    """Hand a started flow its one answer (or failure) and run it to its end."""
    reply, failure = completion, error
    while True:
        try:
            action = flow.throw(failure) if failure is not None else flow.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, failure = None, None
        if not isinstance(action, Emit):  # a second request (or tool calls): a batch has one
            failure = BatchLineError("the run asked for another turn; a batch request has one")


def _failure_error(failure: BatchRequestFailure, batch_id: str) -> APIError:
    """A failed line as the error the same request would have raised online."""
    status = failure.status_code
    if status is not None and status >= 400:
        message = failure.message or f"HTTP {status}"
        return status_error_class(status)(message, status_code=status, code=failure.code)
    return BatchLineError(
        failure.message or "the batch did not run this request",
        code=failure.code,
        batch_id=batch_id,
    )


def _times(batch: Batch) -> tuple[float, float]:
    """When the batch was created and when it ended, on the server's clock (else now)."""
    now = time.time()
    started = float(batch.created_at) if batch.created_at is not None else now
    end = batch.completed_at
    if end is None:
        stamp = batch.raw.get(f"{batch.status}_at")
        end = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None
    return started, float(end) if end is not None else now


def _entry(file: BatchInputFile, batch: Batch) -> dict[str, Any]:
    return {
        "batch_id": batch.id,
        "input_file_id": batch.input_file_id,
        "model": file.model,
        "lines": len(file.custom_ids),
    }


def _count_pending(file: BatchInputFile, pending: Mapping[str, Task]) -> int:
    return sum(1 for cid in file.custom_ids if cid in pending)
