"""The journal: a batch's task states and every recorded step, so a killed batch can resume.

One SQLite file (stdlib `sqlite3`, nothing to start) holds one job: a header (job id, when it
was created, the configuration a resume must match, free JSON metadata), one row per task
(status, attempts, the final result record) and one row per step of a run: ``(task id, step
key) → (kind, JSON payload)``, where the runner builds stable keys with `step_key`
(``turn-3/model``, ``turn-3/call/<call id>``). A resumed batch skips finished tasks and replays
the steps of interrupted ones, so no model request that got a recorded response is sent again.

Durability, the invariant:
    A write method returns (or its ``a…`` twin's await completes) only once the write is
    committed. The runner acts on a model answer only after recording it: it runs a
    response's tool calls only once the response is recorded. Tool results it queues without
    waiting (`record_step` with ``wait=False``) and goes on; steps of one task commit in the
    order they were recorded (one writer, one queue), so a later step is never durable
    without the earlier ones, and the next answer's commit carries the results before it.
    What a kill can lose is therefore only what a resume repeats anyway: the request in
    flight (a response received but not yet committed is asked for again: the one window no
    journal can close, the answer lives only in memory until it is written) and tool results
    not yet committed (the tool runs again, with the same idempotency key).

    "Committed" means: with ``durable=False`` (the default: WAL and ``synchronous=NORMAL``) in
    the operating system's hands, which survives the failure the issue names, the process
    killed (``kill -9``), but not necessarily an OS crash or power loss, which may drop the
    last commits (never corrupt the file). ``durable=True`` (``synchronous=FULL``) fsyncs each
    commit and survives those too, at a price (``benchmarks/bench_journal.py``).

Throughput, the choice:
    sqlite3 calls block, and the runner records from many asyncio tasks at once. Writes go to
    one writer thread through a queue; the writer commits everything queued in one
    transaction (group commit, up to ``max_batch`` writes), then wakes each waiter (one
    wake-up per event loop per commit). It never lingers: an idle journal commits a lone step
    at once (no added latency), and under load the commits grow by themselves. Measured on
    the 2-core test machine (``benchmarks/bench_journal.py``; 2 KB model responses, 200 B
    tool results; runs vary by about a third): plain sqlite3 committing each record does
    20,000-30,000 records/s in WAL+NORMAL, 1,200-1,600 with FULL (the fsync); grouped, 60,000
    (2 KB) to 220,000 (200 B). The journal fed by 64 asyncio tasks, each awaiting its commit,
    does 11,000-19,000 records/s (2 KB) and 40,000-60,000 (200 B). In a batch's shape
    (tasks waiting 10-30 ms for each answer, every 2 KB answer recorded before going on) it
    costs 2-5% of the steps a second at 800 and 3,000 steps/s and about 9% at 6,000; past
    that the event loop and the writer share two cores and it costs 30% and more (at 12,000).
    A batch sends at most a few thousand requests a second (SiliconFlow's RPM limits are far
    lower), so every step is committed before it is acted on: no durability window is traded
    for speed, and the default is ``durable=False`` (FULL costs 12-25% at those rates).

Reads (`steps`, `results`, `summary`...) use their own connection, under a lock; WAL lets
them run while the writer writes. They see every write whose method has returned.
Iterators page through the file (`_PAGE` rows a query), so 100,000 tasks are never in
memory at once. One process at a time may run a journal (nothing enforces it yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, TypeAlias, get_args

from pydantic_core import PydanticSerializationError, to_json

from sfagent.exceptions import SFAgentError, UserError

__all__ = [
    "SCHEMA_VERSION",
    "ConfigMismatchError",
    "JobInfo",
    "Journal",
    "JournalError",
    "JournalSummary",
    "JournalVersionError",
    "SQLiteJournal",
    "StepConflictError",
    "StepKind",
    "TaskResult",
    "TaskStatus",
    "fingerprint",
    "step_key",
]

SCHEMA_VERSION = 1
"""The schema this module writes; a file with a higher one is refused, not misread."""

TaskStatus: TypeAlias = Literal["pending", "running", "done", "failed"]
StepKind: TypeAlias = Literal["model_response", "tool_result"]
_STATUSES: frozenset[str] = frozenset(get_args(TaskStatus))
_KINDS: frozenset[str] = frozenset(get_args(StepKind))
_PAGE = 1000
_BUSY_MS = 10_000


# --- errors ----------------------------------------------------------------------------------


class JournalError(SFAgentError):
    """The journal cannot do what was asked: not a journal, closed, unwritable, a bad value."""


class JournalVersionError(JournalError):
    """The file was written by a newer sfagent, with a schema this one does not know.

    Attributes:
        found: The file's schema version.
        supported: The newest version this sfagent reads.
    """

    def __init__(self, path: str, found: int) -> None:
        self.found, self.supported = found, SCHEMA_VERSION
        super().__init__(
            f"{path}: journal schema version {found} is newer than this sfagent's "
            f"({SCHEMA_VERSION}); upgrade sfagent to resume it"
        )


class ConfigMismatchError(JournalError, UserError):
    """A resume that does not match the journal: another job, another configuration, or none.

    Attributes:
        differing: The configuration's keys whose values differ (empty for other mismatches).
    """

    def __init__(self, message: str, differing: Iterable[str] = ()) -> None:
        self.differing = tuple(differing)
        super().__init__(message)


class StepConflictError(JournalError):
    """A step recorded again with another payload: a replay that diverged (a bug to surface).

    Attributes:
        task_id: The task.
        key: The step's key.
    """

    def __init__(self, task_id: str, key: str) -> None:
        self.task_id, self.key = task_id, key
        super().__init__(
            f"task {task_id!r}: step {key!r} is already recorded with a different payload "
            "(the run diverged from its journal)"
        )


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """The job a journal holds.

    Attributes:
        job_id: The job's id.
        created_at: When the journal was created (seconds since the epoch).
        config: The configuration a resume must match (decoded JSON).
        metadata: Free JSON metadata.
        resumed: Whether `open_job` found the job already there.
    """

    job_id: str
    created_at: float
    config: dict[str, Any]
    metadata: dict[str, Any]
    resumed: bool


@dataclass(frozen=True)
class TaskResult:
    """A finished task's record, as `SQLiteJournal.results` yields it."""

    task_id: str
    status: TaskStatus
    attempts: int
    result: dict[str, Any]
    finished_at: float


@dataclass(frozen=True)
class JournalSummary:
    """How many tasks are in each state."""

    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """Every task the journal knows."""
        return self.pending + self.running + self.done + self.failed


def step_key(turn: int, call_id: str | None = None) -> str:
    """The stable key of a step: ``turn-3/model``, or ``turn-3/call/<call_id>`` for a tool."""
    return f"turn-{turn}/model" if call_id is None else f"turn-{turn}/call/{call_id}"


def fingerprint(config: Mapping[str, Any]) -> str:
    """A short digest of a configuration (canonical JSON), for logs and file names."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact: a cost is written as its decimal string
    raise TypeError(f"{type(value).__name__} is not JSON")


_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
).encode


def _dumps(value: object, what: str) -> str:
    # pydantic-core's encoder is ~5x the stdlib's on a model answer, and a batch writes one
    # per step; the stdlib's, strict, only judges what the fast one wrote as not quite JSON.
    try:
        text = to_json(value).decode()
    except PydanticSerializationError:
        text = None
    if text is None or "NaN" in text or "Infinity" in text:
        try:
            return _encode(value)
        except (TypeError, ValueError) as error:
            raise JournalError(f"{what} cannot be written as JSON: {error}") from None
    return text


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --- the protocol ----------------------------------------------------------------------------


class Journal(Protocol):
    """What the runner needs from a journal; `SQLiteJournal` is the embedded one."""

    def open_job(
        self,
        job_id: str,
        config: Mapping[str, Any],
        *,
        resume: bool,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> JobInfo: ...
    def add_tasks(self, task_ids: Iterable[str]) -> None: ...
    def start_task(self, task_id: str) -> int: ...
    async def astart_task(self, task_id: str) -> int: ...
    def begin_task(self, task_id: str) -> None: ...
    def record_step(
        self, task_id: str, key: str, kind: StepKind, payload: Any, *, wait: bool = True
    ) -> None: ...
    async def arecord_step(self, task_id: str, key: str, kind: StepKind, payload: Any) -> None: ...
    def finish_task(
        self,
        task_id: str,
        result: Mapping[str, Any],
        status: Literal["done", "failed"],
        *,
        wait: bool = True,
    ) -> None: ...
    async def afinish_task(
        self, task_id: str, result: Mapping[str, Any], status: Literal["done", "failed"]
    ) -> None: ...
    def steps(self, task_id: str) -> dict[str, Any]: ...
    def status(self, task_id: str) -> TaskStatus | None: ...
    def task_ids(self, *statuses: TaskStatus) -> Iterator[str]: ...
    def results(self) -> Iterator[TaskResult]: ...
    def summary(self) -> JournalSummary: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


# --- SQLite ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE job (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    config TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    added_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    finish_seq INTEGER
) WITHOUT ROWID;
CREATE INDEX tasks_by_status ON tasks (status, task_id);
CREATE UNIQUE INDEX tasks_by_finish ON tasks (finish_seq) WHERE finish_seq IS NOT NULL;
CREATE TABLE steps (
    task_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (task_id, key)
);
"""
# A rowid table for steps: rowid order is recording order, which `steps` keeps.

_STOP = object()


class _Write:
    """One queued write: what to run on the writer's connection, and who waits for it."""

    __slots__ = ("error", "event", "future", "loop", "op", "result")

    def __init__(self, op: Callable[[sqlite3.Connection], Any]) -> None:
        self.op = op
        self.result: Any = None
        self.error: BaseException | None = None
        self.event: threading.Event | None = None
        self.future: asyncio.Future[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None


def _apply(write: _Write, conn: sqlite3.Connection) -> None:
    try:
        write.result = write.op(conn)
    except (JournalError, sqlite3.IntegrityError) as error:
        write.error = error  # this write alone: SQLite undid its statement, not the transaction


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(writes: list[_Write]) -> None:
    """On the waiters' event loop: hand each awaiting task its write's outcome."""
    for write in writes:
        future = write.future
        if future is None or future.done():  # cancelled while waiting: the write still holds
            continue
        if write.error is not None:
            future.set_exception(write.error)
        else:
            future.set_result(write.result)


@dataclass
class _Pages:
    """Keyset pagination over the reader connection: one short query per page, no held cursor."""

    journal: SQLiteJournal
    sql: str
    params: tuple[Any, ...] = field(default=())

    def rows(self, start: Any) -> Iterator[tuple[Any, ...]]:
        after = start
        while True:
            page = self.journal._read(self.sql, (*self.params, after, _PAGE))
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]


class SQLiteJournal:
    """The embedded journal: one SQLite file, a writer thread, group commits.

    Args:
        path: The journal file; created (with its schema) when missing.
        durable: Commit with ``synchronous=FULL`` (fsync each commit: survives an OS crash or
            power loss) instead of ``NORMAL`` (survives the process being killed).
        max_batch: The most writes one transaction holds.
    """

    def __init__(self, path: str | Path, *, durable: bool = False, max_batch: int = 512) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = str(path)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Write | list[_Write] | object] = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        # Writes made on an event loop wait here until the loop's next turn, then go to the
        # writer together: one hand-over (and one wake-up of the writer) per turn of the loop
        # instead of one per write, which at hundreds of runs cost more than the writing.
        self._held: list[_Write] = []
        self._hand_over_on: asyncio.AbstractEventLoop | None = None  # the loop it is due on
        self._read_lock = threading.Lock()
        self._closed = False
        self._broken: BaseException | None = None
        self._deferred: BaseException | None = None
        self._job: JobInfo | None = None
        self._writer_conn = _connect(self.path, durable)
        try:
            _ensure_schema(self._writer_conn, self.path)
            self._finish_seq = self._writer_conn.execute(
                "SELECT coalesce(max(finish_seq), 0) FROM tasks"
            ).fetchone()[0]
            self._reader = _connect(self.path, durable)
        except BaseException:
            self._writer_conn.close()
            raise
        self._thread = threading.Thread(
            target=self._write_loop, name="sfagent-journal", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"SQLiteJournal({self.path!r})"

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the job -----------------------------------------------------------------------------

    def open_job(
        self,
        job_id: str,
        config: Mapping[str, Any],
        *,
        resume: bool,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Start the job this journal records, or pick it up again.

        Args:
            job_id: The job's id.
            config: What a resume must match: e.g. the agent's name, model and template.
            resume: Continue the job the file holds (a file without one starts afresh).
            force: Resume even though ``config`` differs (it replaces the recorded one).
            metadata: Free JSON to keep with the job (replaces what was there, if given).

        Raises:
            ConfigMismatchError: The file holds a job and ``resume`` is false, or holds another
                job, or the configuration differs and ``force`` is false.
        """
        config_text = _dumps(dict(config), "the configuration")
        meta_text = None if metadata is None else _dumps(dict(metadata), "the metadata")
        job: JobInfo = self._call(
            lambda c: _open_job(c, _check_id(job_id), config_text, meta_text, resume, force),
            needs_job=False,
        )
        self._job = job
        return job

    @property
    def job(self) -> JobInfo | None:
        """The job `open_job` opened, or ``None`` before it."""
        return self._job

    # --- writes ------------------------------------------------------------------------------

    def add_tasks(self, task_ids: Iterable[str]) -> None:
        """Make tasks known as ``pending`` (tasks already known keep their state)."""
        now = time.time()
        chunk: list[tuple[str, float]] = []
        for task_id in task_ids:
            chunk.append((_check_id(task_id), now))
            if len(chunk) == _PAGE:
                self._submit(_Write(_adder(chunk)), wait=False)
                chunk = []
        self._call(_adder(chunk))

    def start_task(self, task_id: str) -> int:
        """Mark a task ``running`` and count the attempt; returns the attempt's number (1, 2...)."""
        return self._call(_starter(_check_id(task_id), time.time()))  # type: ignore[no-any-return]

    async def astart_task(self, task_id: str) -> int:
        """`start_task`, awaiting the writer instead of blocking the event loop."""
        return await self._acall(_starter(_check_id(task_id), time.time()))  # type: ignore[no-any-return]

    def begin_task(self, task_id: str) -> None:
        """`start_task` without waiting: it commits before any later write of the task.

        For a task the journal has not seen (its attempt is the first): nothing need wait
        for the mark, because a task's writes commit in order.
        """
        self._submit(_Write(_starter(_check_id(task_id), time.time())), wait=False)

    def record_step(
        self, task_id: str, key: str, kind: StepKind, payload: Any, *, wait: bool = True
    ) -> None:
        """Record one step of a task's run; returns once it is committed.

        Recording the same payload again does nothing (a replay may re-record its steps).

        Args:
            task_id: The task.
            key: The step's stable key (`step_key`).
            kind: ``model_response`` or ``tool_result``.
            payload: The step's output, as JSON-able values (Decimals become strings).
            wait: Return at once instead; `flush` then waits and reports any failure.

        Raises:
            StepConflictError: The step is recorded with another payload.
        """
        self._submit(_Write(self._stepper(task_id, key, kind, payload)), wait=wait)

    async def arecord_step(self, task_id: str, key: str, kind: StepKind, payload: Any) -> None:
        """`record_step`, awaiting the commit instead of blocking the event loop."""
        await self._acall(self._stepper(task_id, key, kind, payload))

    def finish_task(
        self,
        task_id: str,
        result: Mapping[str, Any],
        status: Literal["done", "failed"],
        *,
        wait: bool = True,
    ) -> None:
        """Record a task's end and its result record (the line of the results file)."""
        self._submit(_Write(self._finisher(task_id, result, status)), wait=wait)

    async def afinish_task(
        self, task_id: str, result: Mapping[str, Any], status: Literal["done", "failed"]
    ) -> None:
        """`finish_task`, awaiting the commit instead of blocking the event loop."""
        await self._acall(self._finisher(task_id, result, status))

    def flush(self) -> None:
        """Wait until every write so far is committed; raise the first unreported failure."""
        self._call(_nothing)
        error, self._deferred = self._deferred, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the file (idempotent)."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._release_held()  # a loop that stopped before its next turn left them here
            self._queue.put(_STOP)
        self._thread.join()
        with self._read_lock:
            self._reader.close()
        self._writer_conn.close()
        error, self._deferred = self._deferred, None
        if error is not None:
            raise error

    # --- reads -------------------------------------------------------------------------------

    def steps(self, task_id: str) -> dict[str, Any]:
        """A task's recorded steps, key → decoded payload, in the order they were recorded."""
        rows = self._read(
            "SELECT key, payload FROM steps WHERE task_id = ? ORDER BY rowid", (task_id,)
        )
        return {key: json.loads(payload) for key, payload in rows}

    def status(self, task_id: str) -> TaskStatus | None:
        """A task's status, or ``None`` for a task the journal does not know."""
        rows = self._read("SELECT status FROM tasks WHERE task_id = ?", (task_id,))
        return rows[0][0] if rows else None

    def task_ids(self, *statuses: TaskStatus) -> Iterator[str]:
        """The ids of the tasks in these states (all states if none), in id order, lazily."""
        for status in statuses or sorted(_STATUSES):
            pages = _Pages(
                self,
                "SELECT task_id FROM tasks WHERE status = ? AND task_id > ? "
                "ORDER BY task_id LIMIT ?",
                (status,),
            )
            for (task_id,) in pages.rows(""):
                yield task_id

    def results(self) -> Iterator[TaskResult]:
        """Each finished task's last result, once, in the order they finished, lazily."""
        pages = _Pages(
            self,
            "SELECT finish_seq, task_id, status, attempts, result, finished_at FROM tasks "
            "WHERE finish_seq > ? ORDER BY finish_seq LIMIT ?",
        )
        for _, task_id, status, attempts, result, finished_at in pages.rows(0):
            yield TaskResult(task_id, status, attempts, json.loads(result), finished_at)

    def summary(self) -> JournalSummary:
        """How many tasks are in each state."""
        rows = self._read("SELECT status, count(*) FROM tasks GROUP BY status", ())
        return JournalSummary(**dict(rows))

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            if self._closed:
                raise JournalError(f"{self.path}: the journal is closed")
            return self._reader.execute(sql, params).fetchall()

    # --- the writer --------------------------------------------------------------------------

    def _submit(self, write: _Write, *, wait: bool, needs_job: bool = True) -> Any:
        """Queue a write; with ``wait``, block until it is committed and return its result."""
        if wait:
            write.event = threading.Event()
        self._enqueue(write, needs_job, hold=not wait)
        if not wait:
            return None
        write.event.wait()  # type: ignore[union-attr]
        if write.error is not None:
            raise write.error
        return write.result

    def _call(self, op: Callable[[sqlite3.Connection], Any], *, needs_job: bool = True) -> Any:
        return self._submit(_Write(op), wait=True, needs_job=needs_job)

    async def _acall(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        write = _Write(op)
        write.loop = asyncio.get_running_loop()
        write.future = write.loop.create_future()
        self._enqueue(write, True, hold=True)
        return await write.future

    def _enqueue(self, write: _Write, needs_job: bool, *, hold: bool = False) -> None:
        """Queue `write` after every write queued before it (held ones included).

        With `hold`, a write made on a running event loop is held until the loop's next turn
        (nobody blocks on it: it is awaited, or not waited for at all).
        """
        if needs_job and self._job is None:
            raise JournalError("open_job() first: the journal has no job yet")
        # Under the lock with `close`: a write queued after the stop would wait forever.
        with self._submit_lock:
            if self._closed:
                raise JournalError(f"{self.path}: the journal is closed")
            if self._broken is not None:
                raise JournalError(
                    f"{self.path}: the journal can no longer write"
                ) from self._broken
            loop = _running_loop() if hold else None
            if loop is not None:
                self._held.append(write)
                # Due on another loop (which may never turn again): due on this one too.
                if self._hand_over_on is not loop:
                    self._hand_over_on = loop
                    loop.call_soon(self._hand_over)
                return
            self._release_held()
            self._queue.put(write)

    def _hand_over(self) -> None:
        with self._submit_lock:
            self._hand_over_on = None
            self._release_held()

    def _release_held(self) -> None:
        """Queue the held writes (the caller holds the submit lock)."""
        if self._held:
            self._queue.put(self._held)
            self._held = []

    def _write_loop(self) -> None:
        """The writer thread: everything queued, in one transaction, until the stop."""
        while True:
            batch: list[_Write] = []
            item = self._queue.get()
            while item is not _STOP:
                if isinstance(item, list):
                    batch.extend(item)
                else:
                    assert isinstance(item, _Write)
                    batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
                self._wake(batch)
            if item is _STOP:
                return

    def _commit(self, batch: list[_Write]) -> None:
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                _apply(write, conn)
            conn.execute("COMMIT")
        except Exception as error:  # the disk is full, the file went away...
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._broken = error
            failure = JournalError(f"{self.path}: writing the journal failed: {error}")
            failure.__cause__ = error
            for write in batch:
                write.error = failure

    def _wake(self, batch: list[_Write]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        for write in batch:
            if write.event is not None:
                write.event.set()
            elif write.loop is not None:
                by_loop.setdefault(write.loop, []).append(write)
            elif write.error is not None and self._deferred is None:
                self._deferred = write.error  # nobody waits: `flush` reports it
        for loop, writes in by_loop.items():  # one wake-up per loop, not one per write
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to wake
                loop.call_soon_threadsafe(_settle, writes)

    # --- what the writer runs ----------------------------------------------------------------

    def _stepper(
        self, task_id: str, key: str, kind: str, payload: Any
    ) -> Callable[[sqlite3.Connection], None]:
        _check_id(task_id)
        if not isinstance(key, str) or not key:
            raise JournalError(f"a step key is a non-empty string, not {key!r}")
        if kind not in _KINDS:
            raise JournalError(f"unknown step kind {kind!r} (one of {sorted(_KINDS)})")
        text = _dumps(payload, f"the payload of step {key!r}")  # here: the error is the caller's

        def op(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO steps (task_id, key, kind, payload) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (task_id, key) DO NOTHING",
                (task_id, key, kind, text),
            )
            if cursor.rowcount == 0:
                _same_step(conn, task_id, key, kind, text)

        return op

    def _finisher(
        self, task_id: str, result: Mapping[str, Any], status: str
    ) -> Callable[[sqlite3.Connection], None]:
        _check_id(task_id)
        if status not in ("done", "failed"):
            raise JournalError(f"a task finishes 'done' or 'failed', not {status!r}")
        text = _dumps(dict(result), f"the result of task {task_id!r}")
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            # Runs on the writer thread only, so the sequence needs no lock.
            self._finish_seq += 1
            conn.execute(
                "INSERT INTO tasks (task_id, status, attempts, result, added_at, finished_at,"
                " finish_seq) VALUES (?1, ?2, 0, ?3, ?4, ?4, ?5) ON CONFLICT (task_id) DO UPDATE"
                " SET status = ?2, result = ?3, finished_at = ?4, finish_seq = ?5",
                (task_id, status, text, now, self._finish_seq),
            )

        return op


def _connect(path: str, durable: bool) -> sqlite3.Connection:
    """A connection in WAL mode; autocommit, so transactions are the writer's explicit ones."""
    conn = sqlite3.connect(
        path, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"{path}: SQLite cannot use WAL mode here (it chose {mode!r})")
        # NORMAL: a commit is written to the WAL without an fsync; it survives the process being
        # killed, not an OS crash (which may lose the last commits, never corrupt the file).
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    except sqlite3.DatabaseError as error:
        conn.close()
        raise JournalError(f"{path} is not a journal SQLite can read: {error}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file; check the version of an existing one."""
    conn.execute("BEGIN IMMEDIATE")  # two processes creating one file: one creates, one checks
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "schema_version" not in tables:
            if tables:
                raise JournalError(f"{path} is an SQLite file but not an sfagent journal")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        else:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            found = row[0] if row and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise JournalVersionError(path, found)
            if found < 1:
                raise JournalError(f"{path}: the journal has no schema version")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _open_job(
    conn: sqlite3.Connection,
    job_id: str,
    config: str,
    metadata: str | None,
    resume: bool,
    force: bool,
) -> JobInfo:
    row = conn.execute("SELECT job_id, created_at, config, metadata FROM job").fetchone()
    if row is None:
        created = time.time()
        conn.execute(
            "INSERT INTO job VALUES (1, ?, ?, ?, ?)", (job_id, created, config, metadata or "{}")
        )
        return JobInfo(job_id, created, json.loads(config), json.loads(metadata or "{}"), False)
    old_id, created, old_config, old_meta = row
    if not resume:
        raise ConfigMismatchError(
            f"the journal already holds job {old_id!r}: resume it, or use another journal file"
        )
    if old_id != job_id:
        raise ConfigMismatchError(f"the journal holds job {old_id!r}, not {job_id!r}")
    differing = _differing(json.loads(old_config), json.loads(config))
    if differing and not force:
        raise ConfigMismatchError(
            f"job {job_id!r} was started with another configuration (differs in: "
            f"{', '.join(differing)}); resume with the same one, or force it",
            differing,
        )
    meta = old_meta if metadata is None else metadata
    conn.execute("UPDATE job SET config = ?, metadata = ?", (config, meta))
    return JobInfo(job_id, created, json.loads(config), json.loads(meta), True)


def _differing(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(
        k for k in old.keys() | new.keys() if _canonical(old.get(k)) != _canonical(new.get(k))
    )


def _adder(rows: list[tuple[str, float]]) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO tasks (task_id, status, added_at) VALUES (?, 'pending', ?) "
            "ON CONFLICT (task_id) DO NOTHING",
            rows,
        )

    return op


def _starter(task_id: str, now: float) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute(
            "INSERT INTO tasks (task_id, status, attempts, added_at, started_at)"
            " VALUES (?1, 'running', 1, ?2, ?2) ON CONFLICT (task_id) DO UPDATE"
            " SET status = 'running', attempts = attempts + 1, started_at = ?2",
            (task_id, now),
        )
        row = conn.execute("SELECT attempts FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return int(row[0])

    return op


def _same_step(conn: sqlite3.Connection, task_id: str, key: str, kind: str, text: str) -> None:
    """A step recorded twice: fine if it says the same thing, a `StepConflictError` if not."""
    old_kind, old_text = conn.execute(
        "SELECT kind, payload FROM steps WHERE task_id = ? AND key = ?", (task_id, key)
    ).fetchone()
    # Equal text is the common case; equal values cover a payload rebuilt in another key order.
    if old_kind != kind or (old_text != text and json.loads(old_text) != json.loads(text)):
        raise StepConflictError(task_id, key)


def _check_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise JournalError(f"a task id is a non-empty string, not {task_id!r}")
    return task_id


def _nothing(conn: sqlite3.Connection) -> None:
    """A write that writes nothing: `flush` waits for it to know all before it are done."""
