"""`sfagent batch --engine dbos` and `sfagent worker`: a batch shared by workers on many
machines through DBOS's system database (the ``sfagent[dbos]`` extra).

```
sfagent batch TASKS --agent FILE --out RESULTS --engine dbos [--database-url URL] [--job ID]
sfagent worker --agent FILE [--database-url URL] [--worker-id ID]
```

The submitting command enqueues the tasks and writes the same results file and summary as a
batch on one machine; workers (any number, anywhere the database is reachable) run them. The
database comes from ``--database-url``, else ``DBOS_SYSTEM_DATABASE_URL``, else the SQLite
file `launch` uses by default (workers on one machine only). Importing this module does not
import DBOS: the commands do.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sfagent.cli._load import CLIError

if TYPE_CHECKING:
    from sfagent.agent import Agent
    from sfagent.cli._batch import BatchOptions
    from sfagent.durable import DurableBatch

__all__ = ["agent_name_for", "database_url", "default_worker_id", "run_dbos_batch", "run_worker"]


def agent_name_for(target: str) -> str:
    """The name a batch's agent goes by on the queue: the file's or module's last name, with
    ``:NAME`` when one was picked (the same on every machine, wherever the file lives)."""
    spec, _, name = target.partition(":") if not _drive_letter(target) else (target, "", "")
    base = Path(spec).stem if spec.endswith(".py") or os.sep in spec else spec.rsplit(".", 1)[-1]
    return f"{base}:{name}" if name else base


def _drive_letter(target: str) -> bool:
    return len(target) > 2 and target[1] == ":" and target[2] in "\\/"


def database_url(given: str | None) -> str | None:
    """``--database-url``, else ``DBOS_SYSTEM_DATABASE_URL`` (``None``: `launch`'s default)."""
    from sfagent.cli._approve import DATABASE_URL_ENV

    return given or os.environ.get(DATABASE_URL_ENV) or None


def default_worker_id() -> str:
    """This machine's name: stable across restarts, so a restarted worker resumes its tasks."""
    return socket.gethostname() or "worker"


def run_dbos_batch(
    agent: Agent[Any, Any], name: str, options: BatchOptions, url: str | None, err: IO[str]
) -> int:
    """Submit the batch to the queue and write its records as workers finish them.

    Returns 0 when every task finished with an answer, 1 otherwise.
    """
    from sfagent.batch import EstimateTooLargeError, RateLimits, load_tasks
    from sfagent.batch._journal import ConfigMismatchError
    from sfagent.cli._batch import Progress, finish_batch

    durable_mod = _durable()
    tasks = load_tasks(options.tasks, template=options.template)
    limits = None
    if any(v is not None for v in (options.rpm, options.tpm, options.rpd, options.tpd)):
        limits = RateLimits(rpm=options.rpm, tpm=options.tpm, rpd=options.rpd, tpd=options.tpd)
    job = options.job or Path(options.tasks).stem
    try:
        batch = durable_mod.DurableBatch(
            durable_mod.DurableAgent(agent, name=name, replace=True),
            limits=limits,
            concurrency=options.concurrency,
            job_id=job,
            budget=options.budget,
            transcripts=options.transcripts,
        )
    except EstimateTooLargeError as exc:
        raise CLIError(f"--{exc.limit_name.lower()} {exc.limit} is too low: {exc}") from None
    _check(url)
    err.write(
        f"batch {job!r}: tasks on queue {batch.queue!r}; start workers with "
        f"`sfagent worker --agent ... --name {name}` on the same database\n"
    )
    progress = Progress.start(batch, tasks, err) if options.progress else None
    started = time.time()
    try:
        asyncio.run(_submit(batch, tasks, options, url, progress))
    except ConfigMismatchError as exc:
        raise CLIError(f"{exc}") from None
    finally:
        if progress is not None:
            progress.close()
    return finish_batch(batch, options, started, err)


async def _submit(
    batch: DurableBatch, tasks: Any, options: BatchOptions, url: str | None, progress: Any
) -> None:
    durable_mod = _durable()
    durable_mod.launch(url, executor_id=f"submitter-{uuid.uuid4().hex[:12]}")
    out: IO[str] | None = None
    try:
        async for record in batch.run(tasks, resume=options.resume):
            if out is None:
                out = open(options.out, "w", encoding="utf-8")  # noqa: ASYNC230, SIM115
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if progress is not None:
                progress.update(record)
    finally:
        if out is not None:
            out.close()
        elif batch.summary is not None:
            Path(options.out).write_text("", encoding="utf-8")  # noqa: ASYNC240 - no tasks
        durable_mod.shutdown()


def run_worker(
    agent: Agent[Any, Any], name: str, url: str | None, worker_id: str, err: IO[str]
) -> int:
    """Serve the agent's batch queue until SIGINT or SIGTERM; 0 on such a stop."""
    durable_mod = _durable()
    durable = durable_mod.DurableAgent(agent, name=name, replace=True)
    _check(url)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        err.write(
            f"worker {worker_id!r}: running tasks from queue "
            f"{durable_mod.batch_queue(name)!r} (Ctrl-C stops; tasks in progress resume at "
            "this worker's next start)\n"
        )
        err.flush()
        await durable_mod.serve([durable], url or _default_url(), worker_id=worker_id, stop=stop)

    asyncio.run(work())
    err.write(f"worker {worker_id!r}: stopped\n")
    return 0


def _default_url() -> str:
    return f"sqlite:///{Path('sfagent-durable.sqlite').resolve()}"


def _check(url: str | None) -> None:
    from sfagent.cli._approve import DATABASE_FAILED
    from sfagent.exceptions import UserError

    durable_mod = _durable()
    try:
        durable_mod.check_reachable(url or _default_url())
    except durable_mod.SystemDatabaseError as exc:
        raise CLIError(str(exc), exit_code=DATABASE_FAILED) from None
    except UserError as exc:
        raise CLIError(str(exc)) from None


def _durable() -> Any:
    try:
        import sfagent.durable as durable_mod
    except ImportError as exc:
        raise CLIError(f"{exc}") from None
    return durable_mod
