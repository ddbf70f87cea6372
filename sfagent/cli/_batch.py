"""`sfagent batch`: a tasks file through an agent into a results file, resumable, with progress.

The results file is written from scratch at every start: a resumed batch writes the records of
the tasks finished before first (from the journal), then each new one as it completes, so the
file holds every task's record exactly once however often the batch was interrupted.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sfagent.batch._journal import ConfigMismatchError
from sfagent.cli._load import CLIError

if TYPE_CHECKING:
    from sfagent.agent import Agent
    from sfagent.batch.runner import BatchRunner, BatchSummary
    from sfagent.durable import DurableBatch

__all__ = [
    "BatchOptions",
    "Progress",
    "finish_batch",
    "run_batch_command",
    "summary_line",
    "write_batch_report",
]


@dataclass(frozen=True)
class BatchOptions:
    """What `sfagent batch` was asked to do."""

    tasks: str
    out: str
    template: str | None = None
    journal: str | None = None
    resume: bool = False
    force: bool = False
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    concurrency: int = 16
    budget: str | None = None
    transcripts: bool = False
    report: str | None = None
    progress: bool = True
    via_batch_api: bool = False
    base_url: str | None = None
    completion_window: str = "24h"
    poll_interval: float = 60.0
    job: str | None = None


def journal_path(options: BatchOptions) -> Path:
    """Where the journal goes: ``--journal``, else beside the results file."""
    return Path(options.journal) if options.journal else Path(options.out + ".journal")


def run_batch_command(agent: Agent[Any, Any], options: BatchOptions, err: IO[str]) -> int:
    """Run the batch; 0 when every task finished with an answer, 1 otherwise."""
    from sfagent.batch import EstimateTooLargeError, RateLimits, load_tasks
    from sfagent.batch.runner import BatchRunner

    tasks = load_tasks(options.tasks, template=options.template)
    if options.via_batch_api:
        return _via_batch_api(agent, tasks, options, err)
    limits = None
    if any(v is not None for v in (options.rpm, options.tpm, options.rpd, options.tpd)):
        limits = RateLimits(rpm=options.rpm, tpm=options.tpm, rpd=options.rpd, tpd=options.tpd)
    try:
        runner = BatchRunner(
            agent,
            limits=limits,
            concurrency=options.concurrency,
            journal=journal_path(options),
            budget=options.budget,
            transcripts=options.transcripts,
        )
    except EstimateTooLargeError as exc:
        flag = f"--{exc.limit_name.lower()}"
        raise CLIError(f"{flag} {exc.limit} is too low: {exc}") from None
    progress = Progress.start(runner, tasks, err) if options.progress else None
    started = time.time()
    try:
        asyncio.run(_write_results(runner, tasks, options, progress))
    except ConfigMismatchError as exc:
        raise CLIError(
            f"{exc} ({journal_path(options)}). Add --resume to continue that batch (--force if "
            "the agent or template changed on purpose), or choose another --journal to start "
            "afresh."
        ) from None
    finally:
        if progress is not None:
            progress.close()
    return finish_batch(runner, options, started, err)


def finish_batch(
    runner: BatchRunner | DurableBatch, options: BatchOptions, started: float, err: IO[str]
) -> int:
    """The summary line and the ``--report`` page of a batch that ran; its exit code (0 when
    every task finished with an answer, 1 otherwise)."""
    summary = runner.summary
    assert summary is not None  # set when the run ends
    err.write(summary_line(summary, options) + "\n")
    if options.report:
        write_batch_report(runner, options, started)
        err.write(f"report: {options.report}\n")
    return 0 if summary.failed == 0 and summary.not_started == 0 else 1


async def _write_results(
    runner: BatchRunner, tasks: Any, options: BatchOptions, progress: Progress | None
) -> None:
    # Opened at the first record, not before: a batch refused at the start (another batch's
    # journal) leaves the results file of the earlier one as it was.
    out: IO[str] | None = None
    try:
        async for record in runner.run(tasks, resume=options.resume, force=options.force):
            if out is None:
                out = open(options.out, "w", encoding="utf-8")  # noqa: ASYNC230, SIM115
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()  # a killed batch leaves whole lines; the journal has the rest
            if progress is not None:
                progress.update(record)
    finally:
        if out is not None:
            out.close()
        elif runner.summary is not None:
            Path(options.out).write_text("", encoding="utf-8")  # noqa: ASYNC240 - no tasks


def _via_batch_api(agent: Agent[Any, Any], tasks: Any, options: BatchOptions, err: IO[str]) -> int:
    """The half-price path: single-turn tasks as SiliconFlow batches, polled to the end."""
    from sfagent.batch._via_batch_api import BatchAPIRunner
    from sfagent.client.batch_api import AsyncBatchAPI

    if any(v is not None for v in (options.rpm, options.tpm, options.rpd, options.tpd)):
        raise CLIError("--via batch-api runs on SiliconFlow's batch queue: drop --rpm/--tpm")
    if options.budget is not None:
        raise CLIError("--via batch-api submits every task at once: a --budget cannot apply")

    def polled(batch: Any) -> None:
        counts = batch.request_counts
        err.write(f"batch {batch.id}: {batch.status} ({counts.completed}/{counts.total})\n")

    async def run() -> BatchSummary | None:
        async with AsyncBatchAPI(base_url=options.base_url) as api:
            runner = BatchAPIRunner(
                agent,
                api=api,
                journal=journal_path(options),
                completion_window=options.completion_window,
                poll_interval=options.poll_interval,
                on_poll=polled if options.progress else None,
                transcripts=options.transcripts,
            )
            with open(options.out, "w", encoding="utf-8") as out:  # noqa: ASYNC230
                async for record in runner.run(tasks, resume=options.resume, force=options.force):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
            return runner.summary

    try:
        summary = asyncio.run(run())
    except ConfigMismatchError as exc:
        raise CLIError(f"{exc} ({journal_path(options)}): add --resume to continue it") from None
    assert summary is not None
    err.write(summary_line(summary, options) + "\n")
    return 0 if summary.failed == 0 else 1


def summary_line(summary: BatchSummary, options: BatchOptions) -> str:
    """The line that ends a batch: counts, tokens, cost, time, where the results are."""
    cost = "unknown" if summary.cost is None else f"{summary.cost:.4f} {summary.currency}"
    parts = [
        f"{summary.done} done",
        f"{summary.failed} failed",
        f"{summary.tokens:,} tokens",
        f"cost {cost}",
        f"{summary.seconds:.1f} s",
    ]
    if summary.resumed:
        parts.append(f"{summary.resumed} finished before (resumed)")
    if summary.not_started:
        parts.append(f"{summary.not_started} not started (budget reached)")
    return f"batch: {', '.join(parts)}; results in {options.out}"


def write_batch_report(
    runner: BatchRunner | DurableBatch, options: BatchOptions, started: float
) -> None:
    """Write ``--report``'s page from the results file and the runner's timeline."""
    from sfagent.batch.report import write_report

    assert options.report is not None
    with open(options.out, encoding="utf-8") as results:
        write_report(
            options.report,
            (json.loads(line) for line in results if line.strip()),
            timeline=runner.timeline.buckets(),
            limits={"rpm": options.rpm, "tpm": options.tpm},
            title=f"sfagent batch: {Path(options.tasks).name}",
            started_at=started,
            finished_at=time.time(),
        )


class Progress:
    """The live line on a terminal: done/failed/running, rate against the limits, tokens,
    cost and time left. tqdm draws it (see docs/design.md); nothing is drawn off a terminal."""

    def __init__(self, runner: BatchRunner | DurableBatch, total: int | None, err: IO[str]) -> None:
        from tqdm import tqdm

        self.runner = runner
        self.bar = tqdm(total=total, file=err, unit="task", dynamic_ncols=True, smoothing=0.1)
        self.failed = 0
        self.tokens = 0
        self.cost = Decimal(0)

    @classmethod
    def start(cls, runner: BatchRunner | DurableBatch, tasks: Any, err: IO[str]) -> Progress | None:
        if not (hasattr(err, "isatty") and err.isatty()):
            return None
        return cls(runner, sum(1 for _ in tasks), err)  # counted once, for the time left

    def update(self, record: dict[str, Any]) -> None:
        self.failed += record.get("status") != "done"
        self.tokens += int(record.get("usage", {}).get("total_tokens") or 0)
        if record.get("cost"):
            self.cost += Decimal(record["cost"])
        fields: dict[str, Any] = {"failed": self.failed, "running": self.runner.running}
        limiter = self.runner.limiter
        if limiter is not None:
            stats, limits = limiter.stats(), limiter.limits
            fields["rpm"] = _against(stats.requests, limits.rpm)
            fields["tpm"] = _against(stats.tokens, limits.tpm)
        fields["tokens"] = f"{self.tokens:,}"
        fields["cost"] = f"{self.cost:.4f}"
        self.bar.set_postfix(fields, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _against(used: int, limit: int | None) -> str:
    return f"{used:,}" if limit is None else f"{used:,}/{limit:,}"
