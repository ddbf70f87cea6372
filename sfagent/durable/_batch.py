"""A batch across machines: every task a DBOS workflow on a durable queue, run by workers.

`DurableBatch` (the process that submits) enqueues one workflow per task on the queue of its
agent, then collects the records as the workflows end; `serve` (each worker, on any machine
sharing the database) dequeues and runs them. A task's workflow is a durable run like
`DurableAgent.run`'s (each model request and each tool call a recorded step), so a worker
killed mid-task loses nothing: a worker started again with its id resumes the task from its
last recorded step. The minute limits bind all workers together through a `SharedRateLimiter`
in the same database (DBOS's own queue limiter counts workflow starts, not tokens).

A task's workflow id is ``JOB/TASK_ID``: submitting a job again attaches to the workflows
already there (nothing is paid for twice) and a finished task is never run again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from dbos import DBOS

from sfagent.agent import Agent
from sfagent.batch._journal import ConfigMismatchError
from sfagent.batch._limited_model import Timeline
from sfagent.batch._limiter import RateLimits, check_completion_allowance
from sfagent.batch._tasks import Task, TaskSource
from sfagent.batch.pricing import SILICONFLOW_PRICES, Budget, PriceTable
from sfagent.batch.runner import (
    BatchSummary,
    RecordTally,
    TaskRecord,
    as_tasks,
    batch_fingerprint,
    currency_for,
    limited_agent,
    task_record,
)
from sfagent.durable._dbos import (
    STARTED_STEP,
    DBOSSteps,
    DurableAgent,
    DurableRunError,
    launch,
    registered_agent,
    shutdown,
    system_database_url,
)
from sfagent.exceptions import AgentRunError, UserError

__all__ = ["BATCH_TASK_WORKFLOW", "DurableBatch", "batch_queue", "limiter_bucket", "serve"]

BATCH_TASK_WORKFLOW = "sfagent/batch-task"
"""The DBOS workflow each task of a durable batch is (stable: workers find tasks by it)."""

QUEUE_POLL_SECONDS = 0.25
"""How often a worker looks for tasks on a batch queue (DBOS polls its queues)."""

_FINISHED = ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]


def batch_queue(agent_name: str) -> str:
    """The DBOS queue the tasks of `agent_name`'s batches wait on: a worker serves the queues
    of the agents it has, so no worker takes a task it cannot run."""
    return f"sfagent-batch:{agent_name}"


class DurableBatch:
    """Submits a batch's tasks to workers through a durable queue and collects their records.

    Needs DBOS launched in this process (`launch`); it need not serve the queue itself. The
    records are those of `BatchRunner.run`, with ``cost`` priced here from each task's usage.

    Args:
        agent: The durable agent every task runs on; each worker registers the same agent
            under the same name (see `serve`).
        limits: Requests and tokens per minute (and per day) for all workers together; a
            limit on requests in flight applies to each worker.
        concurrency: Tasks each worker runs at once.
        job_id: The batch's name: its tasks' workflows are ``JOB_ID/TASK_ID``.
        prices: Prices for each task's cost (``None``: no costs).
        budget: A money limit: once reached, tasks not yet started are cancelled.
        transcripts: Put each run's messages into its record.
        poll_interval: Seconds between looks at the workflows that ended.

    Raises:
        UserError: ``concurrency < 1`` or ``poll_interval <= 0``.
        EstimateTooLargeError: A limit no request of the agent could fit under.
    """

    def __init__(
        self,
        agent: DurableAgent[Any, Any],
        *,
        limits: RateLimits | None = None,
        concurrency: int = 16,
        job_id: str = "batch",
        prices: PriceTable | None = SILICONFLOW_PRICES,
        budget: Decimal | str | float | None = None,
        transcripts: bool = False,
        poll_interval: float = 0.5,
    ) -> None:
        if concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {concurrency}")
        if not poll_interval > 0:
            raise UserError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        if not job_id or "/" in job_id:
            raise UserError(f"a job id is a non-empty name without '/', got {job_id!r}")
        self.durable = agent
        self.limits = limits
        if limits is not None:
            settings = agent.agent._config.settings
            check_completion_allowance(settings.to_body() if settings else {}, limits)
        self.concurrency = concurrency
        self.job_id = job_id
        self.model_name = agent.agent.model_name
        self.prices = prices
        self.currency = currency_for(prices, self.model_name)
        self.budget = None if budget is None else Budget(budget, currency=self.currency)
        self.transcripts = transcripts
        self.poll_interval = poll_interval
        self.timeline = Timeline()
        """Requests and tokens per second, each task's counted when its record arrives."""
        self.summary: BatchSummary | None = None
        """How the last `run` went (set when it ends)."""
        self.running = 0
        """Tasks submitted and not yet ended (queued or running on a worker)."""
        self.limiter = None  # the limits bind on the workers; nothing to show here

    def __repr__(self) -> str:
        return f"DurableBatch({self.job_id!r}, agent={self.durable.name!r})"

    @property
    def queue(self) -> str:
        """The DBOS queue the tasks are put on."""
        return batch_queue(self.durable.name)

    async def run(
        self,
        tasks: TaskSource | Iterable[Task] | Iterable[str | Mapping[str, Any]],
        *,
        resume: bool = False,
    ) -> AsyncIterator[TaskRecord]:
        """Submit the tasks; yield each one's record as its workflow ends.

        Records of tasks that ended before this start come first; a task whose workflow is
        already queued or running is waited for, not submitted again.

        Args:
            tasks: From `load_tasks`, or prompts and rows.
            resume: Continue a job submitted before under the same `job_id`.

        Raises:
            ConfigMismatchError: The job exists and ``resume`` is false, or it does not and
                ``resume`` is true.
        """
        source = tasks if isinstance(tasks, TaskSource) else as_tasks(tasks)
        template = (
            source.template.text if isinstance(source, TaskSource) and source.template else None
        )
        started, counts = time.monotonic(), RecordTally()
        await self._check_job(resume)
        await DBOS.register_queue_async(
            self.queue,
            worker_concurrency=self.concurrency,
            polling_interval_sec=QUEUE_POLL_SECONDS,
        )
        prefix = f"{self.job_id}/"
        seen: set[str] = set()
        try:
            for earlier in await self._ended(prefix, seen):
                seen.add(earlier.workflow_id)
                record = self._record_of(earlier)
                counts.resumed += 1
                if record is None:
                    counts.not_started += 1
                    continue
                counts.count(record)
                yield record
            submitting = asyncio.ensure_future(
                asyncio.to_thread(self._submit_all, iter(source), template, seen)
            )
            async for record in self._collect(prefix, seen, submitting, counts):
                yield record
        finally:
            self.running = 0
            self.summary = counts.summary(self.currency, time.monotonic() - started)

    # --- submitting ------------------------------------------------------------------------

    async def _check_job(self, resume: bool) -> None:
        found = await DBOS.list_workflows_async(
            workflow_id_prefix=f"{self.job_id}/", limit=1, load_input=False, load_output=False
        )
        if found and not resume:
            raise ConfigMismatchError(
                f"job {self.job_id!r} was submitted before: resume it (resume=True, --resume) "
                "or choose another job id"
            )
        if resume and not found:
            raise ConfigMismatchError(f"there is no job {self.job_id!r} to resume")

    def _submit_all(self, tasks: Iterable[Task], template: str | None, ended: set[str]) -> set[str]:
        """Enqueue every task not ended yet (in a thread: each is a database write); the
        workflow ids of all the tasks."""
        fingerprint = batch_fingerprint(self.model_name, self.durable.agent.tools.names, template)
        bucket = limiter_bucket(self.durable.agent)
        limits = asdict(self.limits) if self.limits is not None else None
        submitted: set[str] = set()
        for task in tasks:
            workflow_id = f"{self.job_id}/{task.id}"
            submitted.add(workflow_id)
            if workflow_id in ended:
                continue
            spec = self.durable.spec(task.prompt, deps=task.deps)
            spec.update(
                task=task.id,
                fingerprint=fingerprint,
                limits=limits,
                bucket=bucket,
                transcripts=self.transcripts,
            )
            DBOS.enqueue_workflow_with_options(
                {
                    "workflow_name": BATCH_TASK_WORKFLOW,
                    "queue_name": self.queue,
                    "workflow_id": workflow_id,
                    "app_version": _app_version(),
                },
                spec,
            )
            self.running += 1
        return submitted

    # --- collecting --------------------------------------------------------------------------

    async def _collect(
        self,
        prefix: str,
        seen: set[str],
        submitting: asyncio.Future[set[str]],
        counts: RecordTally,
    ) -> AsyncIterator[TaskRecord]:
        try:
            while True:
                # Done when every task of this start ended (a resumed job's records of tasks
                # not in this start's source come first, and do not count).
                if submitting.done() and submitting.result() <= seen:
                    return
                await asyncio.sleep(self.poll_interval)
                for status in await self._ended(prefix, seen):
                    seen.add(status.workflow_id)
                    self.running = max(0, self.running - 1)
                    record = self._record_of(status)
                    if record is None:  # cancelled before it ran (the budget was reached)
                        counts.not_started += 1
                        continue
                    counts.count(record, tokens=int(record["usage"]["total_tokens"]))
                    self.timeline.add(
                        int(record["usage"]["requests"]),
                        int(record["usage"]["total_tokens"]),
                        now=time.monotonic(),
                    )
                    yield record
                    await self._spend(record)
        finally:
            if not submitting.done():
                submitting.cancel()

    async def _ended(self, prefix: str, seen: set[str]) -> list[Any]:
        """The job's workflows that ended and are not in `seen`, outputs loaded.

        Looked up by status, not by completion time: workers' clocks need not agree.
        """
        ended = await DBOS.list_workflows_async(
            workflow_id_prefix=prefix, status=_FINISHED, load_input=False, load_output=False
        )
        new = [s.workflow_id for s in ended if s.workflow_id not in seen]
        found: list[Any] = []
        for first in range(0, len(new), 500):
            found += await DBOS.list_workflows_async(
                workflow_ids=new[first : first + 500], load_input=False, load_output=True
            )
        return found

    def _record_of(self, status: Any) -> TaskRecord | None:
        """A workflow's record: its output, or a failed record for a workflow that raised."""
        task_id = str(status.workflow_id)[len(self.job_id) + 1 :]
        if status.status == "SUCCESS" and isinstance(status.output, dict):
            record: TaskRecord = dict(status.output)
        elif status.status == "CANCELLED":
            return None
        else:
            error = status.error
            record = task_record(
                Task(id=task_id, prompt=""),
                None,
                error if isinstance(error, BaseException) else DurableRunError(str(status.status)),
                None,
                self.currency,
                1,
            )
            record.update(latency=None, started_at=None, finished_at=None)
        record["cost"], record["currency"] = self._cost(record), self.currency
        return record

    def _cost(self, record: TaskRecord) -> str | None:
        usage = record.get("usage") or {}
        if self.prices is None:
            return None
        cost = self.prices.cost(self.model_name, _Tokens(usage))
        return None if cost is None else str(cost)

    async def _spend(self, record: TaskRecord) -> None:
        if self.budget is None or record.get("cost") is None:
            return
        self.budget.charge(Decimal(str(record["cost"])))
        if self.budget.may_start():
            return
        queued = await DBOS.list_workflows_async(
            workflow_id_prefix=f"{self.job_id}/",
            status="ENQUEUED",
            load_input=False,
            load_output=False,
        )
        if queued:
            await DBOS.cancel_workflows_async([s.workflow_id for s in queued])


class _Tokens:
    """A record's usage, as the price table reads it."""

    def __init__(self, usage: Mapping[str, Any]) -> None:
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or 0)


def limiter_bucket(agent: Agent[Any, Any]) -> str:
    """The name under which all workers share the limits of `agent`'s endpoint and model."""
    base_url = str(getattr(agent.model, "base_url", "") or type(agent.model).__name__)
    return f"{base_url.rstrip('/')}|{agent.model_name}"


def _app_version() -> str:
    from sfagent.durable._dbos import APP_VERSION

    return APP_VERSION


# --- the worker's side ---------------------------------------------------------------------


async def serve(
    agents: Sequence[DurableAgent[Any, Any]],
    database_url: str,
    *,
    worker_id: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Work as a batch worker: run the tasks of `agents`' batches until `stop` is set.

    Launches DBOS on `database_url` taking work from the agents' queues only, first resuming
    the tasks this `worker_id` had in progress when it last stopped (or died). Give each
    worker its own id, and the same one again when it restarts: a worker that will not come
    back is taken over by starting any worker with its id.

    Args:
        agents: The durable agents whose batches this worker runs (the submitter's agents,
            under the same names).
        database_url: The system database the batches were submitted to.
        worker_id: This worker's stable, unique id.
        stop: Set it to stop (``None``: run until cancelled). Tasks in progress stay pending
            in the database, to resume at this worker's next start.

    Raises:
        UserError: No agents, or an empty `worker_id`.
    """
    if not agents:
        raise UserError("a worker needs at least one durable agent to run tasks for")
    if not worker_id.strip():
        raise UserError("a worker needs a non-empty worker_id")
    launch(database_url, executor_id=worker_id, queues=[batch_queue(a.name) for a in agents])
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        shutdown()
        limiters = [limiter for _, _, limiter in _LIMITED.values() if limiter is not None]
        _LIMITED.clear()
        for limiter in limiters:
            await limiter.aclose()  # its queued settlements reach the database


_LIMITED: dict[tuple[str, str, str], tuple[Agent[Any, Any], Agent[Any, Any], Any]] = {}
"""(agent, the agent it runs as, its limiter) for each (agent name, bucket, limits) in this
worker: the tasks of one batch share one limiter."""


@DBOS.workflow(name=BATCH_TASK_WORKFLOW)
async def _batch_task(spec: dict[str, Any]) -> TaskRecord:
    durable = registered_agent(spec)
    started: float = await DBOS.run_step_async({"name": STARTED_STEP}, time.time)
    agent = _worker_agent(durable, spec)
    task = Task(id=str(spec["task"]), prompt=spec["prompt"], deps=spec["deps"])
    error: BaseException | None = None
    try:
        result = await agent.run(
            task.prompt,
            deps=task.deps,
            run_id=task.id,
            steps=DBOSSteps(durable.approval_timeout),
            elapsed=max(0.0, time.time() - started),
        )
    except AgentRunError as exc:
        result, error = exc.result, exc
    record = task_record(task, result, error, None, "CNY", 1)
    finished = time.time()
    record.update(latency=finished - started, started_at=started, finished_at=finished)
    if spec.get("transcripts") and result is not None:
        record["transcript"] = result.messages
    return record


def _worker_agent(durable: DurableAgent[Any, Any], spec: Mapping[str, Any]) -> Agent[Any, Any]:
    """The agent a task runs on here: checked against the submitter's, behind the limiter."""
    expected = spec.get("fingerprint") or {}
    mine = batch_fingerprint(durable.agent.model_name, durable.agent.tools.names, None)
    for field in ("model", "tools"):
        if field in expected and expected[field] != mine[field]:
            raise DurableRunError(
                f"the batch was submitted for agent {durable.name!r} with {field} "
                f"{expected[field]!r}, but this worker's agent has {mine[field]!r}: run "
                "workers with the same agent as the submitter"
            )
    limits, bucket = spec.get("limits"), str(spec.get("bucket") or "")
    key = (durable.name, bucket, repr(sorted(limits.items())) if limits else "")
    cached = _LIMITED.get(key)
    if cached is not None and cached[0] is durable.agent:
        agent: Agent[Any, Any] = cached[1]
        return agent
    limiter = None
    if limits:
        from sfagent.durable._shared_limits import SharedRateLimiter

        limiter = SharedRateLimiter(system_database_url(), RateLimits(**limits), bucket=bucket)
    agent = limited_agent(durable.agent, limiter, Timeline())
    _LIMITED[key] = (durable.agent, agent, limiter)
    return agent
