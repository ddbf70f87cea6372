"""`BatchRunner`: many tasks through one agent, under rate limits, journaled, resumable.

The runner starts up to ``concurrency`` runs at a time, pulling tasks lazily from their
source (a 100,000-line file is never read whole). Each run goes through `Agent.run` with the
task's id as ``run_id`` and, when there is a journal, a `JournalSteps` that records every model
answer and tool result before the run acts on it: a batch started again with ``resume=True``
skips finished tasks and replays the recorded steps of interrupted ones. Requests go through a
`LimitedModel` holding the runner's `RateLimiter`, so the minute (and day) limits bind across
every run; HTTP models are given a retry policy without 429s, which the limiter handles. Without
limits there is no limiter (nothing to wait for), but requests still go through a `LimitedModel`,
which tallies them on the runner's `Timeline` for the report.

Nothing is written to the journal before the first task has been read: a batch whose first row
cannot become a task (a template field it lacks) fails as if it had never started, so the
corrected command is a first start, not a second one that would be refused.

Every task ends as one result record (see `BatchRunner.run`); a resumed batch yields the
records of tasks finished before first, so the records of one batch are each task's exactly
once however often it was interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sfagent.agent import Agent
from sfagent.batch._journal import JobInfo, Journal, SQLiteJournal
from sfagent.batch._journal_steps import JournalSteps
from sfagent.batch._limited_model import Admission, LimitedModel, Timeline
from sfagent.batch._limiter import RateLimiter, RateLimits, check_completion_allowance
from sfagent.batch._tasks import Task, TaskSource, load_tasks
from sfagent.batch.pricing import SILICONFLOW_PRICES, Budget, PriceTable
from sfagent.exceptions import AgentRunError, UserError
from sfagent.result import RunResult

__all__ = ["BatchRunner", "BatchSummary"]

TaskRecord = dict[str, Any]
"""One task's result, as written to the results file (one JSON line)."""


@dataclass(frozen=True)
class BatchSummary:
    """How a batch went.

    Attributes:
        done: Tasks that finished with an answer (this start and earlier ones).
        failed: Tasks that ended in an error.
        resumed: Of those, tasks finished by an earlier start (their records were replayed).
        not_started: Tasks left untouched because the money budget was reached.
        tokens: Tokens used by the tasks run in this start.
        cost: What they cost, when every task's model has a price (else ``None``).
        currency: The currency of `cost`.
        seconds: Wall time of this start.
        replayed_steps: Steps answered from the journal instead of being performed again.
    """

    done: int
    failed: int
    resumed: int
    not_started: int
    tokens: int
    cost: Decimal | None
    currency: str
    seconds: float
    replayed_steps: int


class BatchRunner:
    """Runs a batch of tasks through one agent.

    Args:
        agent: The agent every task runs on (its tools, model and limits).
        limits: Requests and tokens per minute (and per day) and a cap on requests in flight,
            shared by every run of the batch (``None``: no limits).
        concurrency: Runs in progress at once.
        journal: A path for the SQLite journal (or a `Journal`), to resume after a crash;
            ``None`` keeps nothing.
        job_id: The journal's name for this batch.
        prices: Prices for the cost of each task (``None``: no costs).
        budget: A money limit (in the price table's currency): no task starts once the
            tasks run so far have cost this much.
        transcripts: Put each run's messages into its result record.
        limiter: A limiter to share with other runners against the same endpoint and model
            (instead of one made from `limits`).

    Raises:
        UserError: A setting that cannot work (``concurrency < 1``).
        EstimateTooLargeError: A TPM or TPD limit below the completion tokens every request
            is estimated at (the agent's ``max_tokens``, or the server's default of 512),
            so that no request could ever be sent.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        limits: RateLimits | None = None,
        concurrency: int = 16,
        journal: str | Path | Journal | None = None,
        job_id: str = "batch",
        prices: PriceTable | None = SILICONFLOW_PRICES,
        budget: Decimal | str | float | None = None,
        transcripts: bool = False,
        limiter: RateLimiter | None = None,
    ) -> None:
        if concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.model_name = agent.model_name
        self.prices = prices
        self.currency = currency_for(prices, self.model_name)
        self.budget = None if budget is None else Budget(budget, currency=self.currency)
        self.transcripts = transcripts
        self.timeline = Timeline()
        self.limits = limits
        self.limiter = limiter or (RateLimiter(limits) if limits is not None else None)
        if self.limiter is not None:
            check_completion_allowance(_settings_body(agent), self.limiter.limits)
        self._agent = limited_agent(agent, self.limiter, self.timeline)
        self._journal_arg = journal
        self._job_id = job_id
        self.summary: BatchSummary | None = None
        """How the last `run` went (set when it ends)."""
        self.running = 0
        """Runs in progress now (for a progress display)."""

    def __repr__(self) -> str:
        return f"BatchRunner(model={self.model_name!r}, concurrency={self.concurrency})"

    def fingerprint(self, template: str | None = None) -> dict[str, Any]:
        """What a resumed batch must match: the model, the tools, and the task template."""
        return batch_fingerprint(self.model_name, self._agent.tools.names, template)

    async def run(
        self,
        tasks: TaskSource | Iterable[Task] | Iterable[str | Mapping[str, Any]],
        *,
        resume: bool = False,
        force: bool = False,
    ) -> AsyncIterator[TaskRecord]:
        """Run the tasks; yield each one's result record as it completes.

        A record holds ``id``, ``status`` (``"done"`` or ``"failed"``), ``output``,
        ``error_type``, ``error_message``, ``turns``, ``usage``, ``cost`` (text, exact; or
        ``None``), ``currency``, ``latency`` (seconds), ``started_at``/``finished_at`` (Unix
        time), ``attempt``, and ``transcript`` when asked for.

        Args:
            tasks: From `load_tasks`, or prompts and rows (loaded with `load_tasks`).
            resume: Continue the batch the journal holds: records of finished tasks come
                first, interrupted tasks replay their recorded steps.
            force: Resume although the model, tools or template differ from the journal's.

        Raises:
            ConfigMismatchError: The journal holds another batch (or ``resume`` is false).
            TaskError: A row that cannot become a task (raised when it is reached; for the
                first row, before the journal records anything).
        """
        source = tasks if isinstance(tasks, TaskSource) else as_tasks(tasks)
        template = (
            source.template.text if isinstance(source, TaskSource) and source.template else None
        )
        rest = iter(source)
        # Read before the journal opens the job: a bad first row then leaves no job behind to
        # refuse the corrected command as a second start of this batch.
        first = next(rest, None)
        opened = open_journal(
            self._journal_arg, self._job_id, self.fingerprint(template), resume=resume, force=force
        )
        journal = opened[0] if opened is not None else None
        # A job just created holds no task: nothing to look up before each one starts.
        fresh = opened is None or not opened[1].resumed
        pending = rest if first is None else itertools.chain((first,), rest)
        started, counts = time.monotonic(), RecordTally()
        try:
            if journal is not None:
                for earlier in journal.results():
                    counts.resumed += 1
                    counts.count(earlier.result)
                    yield earlier.result
            async for record in self._run_all(pending, journal, counts, fresh=fresh):
                yield record
            if journal is not None and self._journal_arg is journal:
                journal.flush()  # a write nobody awaited that failed (close does it otherwise)
        finally:
            if journal is not None and self._journal_arg is not journal:
                journal.close()
            self.summary = counts.summary(self.currency, time.monotonic() - started)

    def run_sync(
        self,
        tasks: TaskSource | Iterable[Task] | Iterable[str | Mapping[str, Any]],
        *,
        resume: bool = False,
        force: bool = False,
    ) -> Iterator[TaskRecord]:
        """`run`, blocking: the batch runs on an event loop in a worker thread."""
        return _iterate_in_thread(self.run(tasks, resume=resume, force=force))

    # --- one start ---------------------------------------------------------------------------

    async def _run_all(
        self, tasks: Iterator[Task], journal: Journal | None, counts: RecordTally, *, fresh: bool
    ) -> AsyncIterator[TaskRecord]:
        finished: asyncio.Queue[TaskRecord | None] = asyncio.Queue(maxsize=self.concurrency)

        async def worker() -> None:
            while (task := self._next(tasks, None if fresh else journal, counts)) is not None:
                await finished.put(await self._run_task(task, journal, counts, fresh=fresh))

        async def all_workers() -> None:
            try:
                await asyncio.gather(*(worker() for _ in range(self.concurrency)))
            finally:
                await finished.put(None)

        runner = asyncio.ensure_future(all_workers())
        try:
            while (record := await finished.get()) is not None:
                yield record
            await runner  # a worker's unexpected error surfaces here
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    def _next(
        self, tasks: Iterator[Task], journal: Journal | None, counts: RecordTally
    ) -> Task | None:
        """The next task to start; `journal` (when resuming) tells which ones are finished."""
        for task in tasks:
            if journal is not None and journal.status(task.id) in ("done", "failed"):
                continue  # its record came first
            if self.budget is not None and not self.budget.may_start():
                counts.not_started += 1 + sum(1 for _ in tasks)
                return None
            return task
        return None

    async def _run_task(
        self, task: Task, journal: Journal | None, counts: RecordTally, *, fresh: bool
    ) -> TaskRecord:
        attempt = 1
        if journal is not None and fresh:
            journal.begin_task(task.id)  # its first attempt; commits before the task's steps
        elif journal is not None:
            attempt = await journal.astart_task(task.id)
        steps = None
        if journal is not None:
            steps = JournalSteps(journal, task.id, recorded={} if fresh else None)
        started, clock = time.time(), time.monotonic()
        error: BaseException | None = None
        result: RunResult[Any] | None
        self.running += 1
        try:
            result = await self._agent.run(task.prompt, deps=task.deps, run_id=task.id, steps=steps)
        except AgentRunError as exc:
            result, error = exc.result, exc
        except Exception as exc:  # a task that cannot run (bad deps...): its record says why
            result, error = None, exc
        finally:
            self.running -= 1
        cost = self._cost(result)
        record = task_record(task, result, error, cost, self.currency, attempt)
        record.update(latency=time.monotonic() - clock, started_at=started, finished_at=time.time())
        if self.transcripts and result is not None:
            record["transcript"] = result.messages
        if journal is not None:
            await journal.afinish_task(task.id, record, record["status"])
        if steps is not None:
            counts.replayed_steps += steps.replayed
        counts.count(record, tokens=result.usage.total_tokens if result is not None else 0)
        if self.budget is not None and cost is not None:
            self.budget.charge(cost)
        return record

    def _cost(self, result: RunResult[Any] | None) -> Decimal | None:
        if self.prices is None or result is None:
            return None
        return self.prices.cost(self.model_name, result.usage)


# --- helpers ---------------------------------------------------------------------------------


def batch_fingerprint(model: str, tools: Iterable[str], template: str | None) -> dict[str, Any]:
    """What a resumed batch must match, the same for every runner (either may resume the
    other's journal): the model, the tools' names, and the task template."""
    return {"model": model, "tools": list(tools), "template": template}


def open_journal(
    given: str | Path | Journal | None,
    job_id: str,
    fingerprint: Mapping[str, Any],
    *,
    resume: bool,
    force: bool,
) -> tuple[Journal, JobInfo] | None:
    """Open (a path) or take (a `Journal`) the batch's journal and its job; ``None`` for none.

    Raises:
        UserError: ``resume`` without a journal.
        ConfigMismatchError: See `Journal.open_job`.
    """
    if given is None:
        if resume:
            raise UserError("resume=True needs a journal to resume from")
        return None
    journal = SQLiteJournal(given) if isinstance(given, (str, Path)) else given
    try:
        job = journal.open_job(job_id, fingerprint, resume=resume, force=force)
    except BaseException:
        if journal is not given:
            journal.close()
        raise
    return journal, job


@dataclass
class RecordTally:
    """Counts records as they come, for the `BatchSummary` of one start."""

    done: int = 0
    failed: int = 0
    resumed: int = 0
    not_started: int = 0
    tokens: int = 0
    cost: Decimal | None = Decimal(0)
    replayed_steps: int = 0

    def count(self, record: TaskRecord, *, tokens: int = 0) -> None:
        """Count one task's record; `tokens` it used in this start (0 for replayed records)."""
        if record.get("status") == "done":
            self.done += 1
        else:
            self.failed += 1
        self.tokens += tokens
        cost = record.get("cost")
        if tokens and (cost is None or self.cost is None):
            self.cost = None  # a task without a price: no total can be honest
        elif tokens and self.cost is not None:
            self.cost += Decimal(str(cost))

    def summary(self, currency: str, seconds: float) -> BatchSummary:
        """The summary of what was counted."""
        return BatchSummary(
            done=self.done,
            failed=self.failed,
            resumed=self.resumed,
            not_started=self.not_started,
            tokens=self.tokens,
            cost=self.cost,
            currency=currency,
            seconds=seconds,
            replayed_steps=self.replayed_steps,
        )


def currency_for(prices: PriceTable | None, model: str) -> str:
    """The currency of `model`'s price (CNY when the table has none)."""
    price = prices.get(model) if prices is not None else None
    return price.currency if price is not None else "CNY"


def limited_agent(agent: Agent[Any, Any], limiter: Admission | None, timeline: Timeline) -> Any:
    """The agent the batch runs: every request tallied on `timeline` and, when there is a
    limiter, admitted by it (429s then left to the limiter, not the HTTP client)."""
    model = agent.model
    from sfagent.client.http_model import HTTPModel

    if limiter is not None and isinstance(model, HTTPModel):
        from sfagent.client.retry import RETRYABLE_STATUSES, RetryPolicy

        model = model.with_retry(RetryPolicy(retry_statuses=RETRYABLE_STATUSES - {429}))
    limited = LimitedModel(model, limiter, timeline)
    limited.model_name = agent.model_name  # the id requests name, not the wrapper's
    return agent.replace(model=limited)


def _settings_body(agent: Agent[Any, Any]) -> dict[str, Any]:
    """The settings fields every request of the agent's runs carries."""
    settings = agent._config.settings
    return settings.to_body() if settings is not None else {}


def as_tasks(tasks: Iterable[Any]) -> TaskSource | Iterable[Task]:
    """Tasks as given, or prompts and rows loaded with `load_tasks`."""
    items = tasks if isinstance(tasks, (list, tuple)) else list(tasks)
    if items and all(isinstance(t, Task) for t in items):
        return items
    return load_tasks(items)


def task_record(
    task: Task,
    result: RunResult[Any] | None,
    error: BaseException | None,
    cost: Decimal | None,
    currency: str,
    attempt: int,
) -> TaskRecord:
    """One task's result record (see `BatchRunner.run`), without latency and times."""
    from pydantic_core import to_jsonable_python

    usage = result.usage if result is not None else None
    return {
        "id": task.id,
        "status": "failed" if error is not None else "done",
        "output": None
        if error is not None or result is None
        else to_jsonable_python(result.output, fallback=repr),
        "error_type": type(error).__name__ if error is not None else None,
        "error_message": str(error) if error is not None else None,
        "turns": len(result.turns) if result is not None else 0,
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
            "requests": usage.requests if usage else 0,
            "tool_calls": usage.tool_calls if usage else 0,
        },
        "cost": str(cost) if cost is not None else None,
        "currency": currency,
        "attempt": attempt,
    }


def _iterate_in_thread(records: AsyncIterator[TaskRecord]) -> Iterator[TaskRecord]:
    """Drive an async generator on its own loop in a thread, handing its items over a queue."""
    # Unbounded: a bounded put would block the loop that runs the batch's workers.
    handoff: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()

    async def pump() -> None:
        try:
            async for record in records:
                handoff.put(("item", record))
        except BaseException as exc:  # handed to the caller's thread (cancellation included)
            handoff.put(("error", exc))
        else:
            handoff.put(("end", None))

    pumping = loop.create_task(pump())
    thread = threading.Thread(
        target=loop.run_until_complete, args=(pumping,), name="sfagent-batch", daemon=True
    )
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        if thread.is_alive():  # the caller stopped early: end the batch's runs
            loop.call_soon_threadsafe(pumping.cancel)
        thread.join()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
