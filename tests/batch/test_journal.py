"""The journal: schema and version, idempotent steps, resume, lazy reads, threads, kill -9."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sfagent.batch import _journal
from sfagent.batch._journal import (
    SCHEMA_VERSION,
    ConfigMismatchError,
    JournalError,
    JournalSummary,
    JournalVersionError,
    SQLiteJournal,
    StepConflictError,
    fingerprint,
    step_key,
)
from sfagent.exceptions import UserError

CONFIG = {"agent": "a", "model": "m", "template": "{q}"}
CHILD = Path(__file__).with_name("journal_child.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(path: Path) -> Iterator[SQLiteJournal]:
    with SQLiteJournal(path) as journal:
        journal.open_job("job-1", CONFIG, resume=False, metadata={"note": "test"})
        yield journal


def _sql(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


# --- schema ----------------------------------------------------------------------------------


def test_first_open_creates_the_schema_in_wal_mode(path: Path) -> None:
    SQLiteJournal(path).close()
    assert _sql(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert _sql(path, "PRAGMA journal_mode") == [("wal",)]


def test_a_newer_schema_is_refused_with_its_version(path: Path) -> None:
    SQLiteJournal(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(JournalVersionError) as caught:
        SQLiteJournal(path)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_other_files_are_not_journals(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(JournalError, match="not an sfagent journal"):
        SQLiteJournal(other)
    text = tmp_path / "text.db"
    text.write_text("not a database at all, just some text " * 100)
    with pytest.raises(JournalError):
        SQLiteJournal(text)


def test_writes_need_a_job_and_an_open_journal(path: Path) -> None:
    journal = SQLiteJournal(path)
    with pytest.raises(JournalError, match="open_job"):
        journal.start_task("t")
    journal.open_job("j", CONFIG, resume=False)
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        journal.record_step("t", "k", "tool_result", 1)
    with pytest.raises(JournalError, match="closed"):
        journal.summary()


# --- steps -----------------------------------------------------------------------------------


def test_steps_are_idempotent_and_conflicts_are_errors(journal: SQLiteJournal) -> None:
    journal.start_task("t")
    journal.record_step("t", step_key(1), "model_response", {"a": 1, "b": [1, 2]})
    journal.record_step("t", step_key(1), "model_response", {"a": 1, "b": [1, 2]})
    journal.record_step("t", step_key(1), "model_response", {"b": [1, 2], "a": 1})  # key order
    with pytest.raises(StepConflictError) as caught:
        journal.record_step("t", step_key(1), "model_response", {"a": 2})
    assert (caught.value.task_id, caught.value.key) == ("t", "turn-1/model")
    with pytest.raises(StepConflictError):
        journal.record_step("t", step_key(1), "tool_result", {"a": 1, "b": [1, 2]})
    journal.record_step("t", step_key(1, "call_9"), "tool_result", "héllo")  # after an error
    assert journal.steps("t") == {
        "turn-1/model": {"a": 1, "b": [1, 2]},
        "turn-1/call/call_9": "héllo",
    }
    raw = _sql(Path(journal.path), "SELECT payload FROM steps WHERE key LIKE '%call%'")
    assert raw == [('"héllo"',)]  # compact, not ASCII-escaped


def test_bad_values_are_refused_before_queueing(journal: SQLiteJournal) -> None:
    with pytest.raises(JournalError, match="JSON"):
        journal.record_step("t", "k", "tool_result", {"x": object()})
    with pytest.raises(JournalError, match="JSON"):
        journal.record_step("t", "k", "tool_result", float("nan"))
    with pytest.raises(JournalError, match="kind"):
        journal.record_step("t", "k", "other", 1)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="task id"):
        journal.start_task("")


def test_unwaited_conflicts_surface_at_flush(journal: SQLiteJournal) -> None:
    journal.record_step("t", "k", "tool_result", 1)
    journal.record_step("t", "k", "tool_result", 2, wait=False)
    with pytest.raises(StepConflictError):
        journal.flush()
    journal.flush()  # reported once


# --- tasks and resume ------------------------------------------------------------------------


def test_task_lifecycle_and_results(journal: SQLiteJournal) -> None:
    journal.add_tasks(["a", "b", "c", "d"])
    assert journal.summary() == JournalSummary(pending=4)
    assert journal.start_task("a") == 1
    assert journal.start_task("b") == 1
    assert journal.start_task("b") == 2
    journal.finish_task("b", {"output": "B", "cost": Decimal("0.0012")}, "done")
    journal.finish_task("a", {"output": None, "error_type": "X"}, "failed")
    journal.finish_task("a", {"output": "A"}, "done")  # retried: its last record counts
    assert journal.summary() == JournalSummary(pending=2, done=2)
    assert journal.status("a") == "done"
    assert journal.status("zzz") is None
    results = list(journal.results())
    assert [(r.task_id, r.status, r.attempts) for r in results] == [
        ("b", "done", 2),
        ("a", "done", 1),
    ]
    assert results[0].result == {"output": "B", "cost": "0.0012"}  # money as its exact string
    assert sorted(journal.task_ids()) == ["a", "b", "c", "d"]
    assert list(journal.task_ids("pending")) == ["c", "d"]


def test_resume_skips_done_tasks_and_replays_steps(path: Path) -> None:
    with SQLiteJournal(path) as journal:
        journal.open_job("job-1", CONFIG, resume=False)
        journal.start_task("done")
        journal.finish_task("done", {"output": 1}, "done")
        journal.start_task("cut")
        journal.record_step("cut", step_key(1), "model_response", {"m": 1})
        journal.record_step("cut", step_key(1, "c1"), "tool_result", "r1")
    with SQLiteJournal(path) as journal:
        job = journal.open_job("job-1", CONFIG, resume=True)
        assert job.resumed
        assert job.config == CONFIG
        assert set(journal.task_ids("done")) == {"done"}
        assert list(journal.task_ids("running")) == ["cut"]
        assert journal.steps("cut") == {"turn-1/model": {"m": 1}, "turn-1/call/c1": "r1"}
        assert journal.start_task("cut") == 2
        assert [r.task_id for r in journal.results()] == ["done"]


def test_resume_refuses_another_job_or_configuration(path: Path) -> None:
    with SQLiteJournal(path) as journal:
        journal.open_job("job-1", CONFIG, resume=False, metadata={"n": 1})
    with SQLiteJournal(path) as journal:
        with pytest.raises(ConfigMismatchError, match="already holds"):
            journal.open_job("job-1", CONFIG, resume=False)
        with pytest.raises(ConfigMismatchError, match="not 'job-2'"):
            journal.open_job("job-2", CONFIG, resume=True)
        other = {**CONFIG, "model": "m2"}
        with pytest.raises(ConfigMismatchError) as caught:
            journal.open_job("job-1", other, resume=True)
        assert caught.value.differing == ("model",)
        assert isinstance(caught.value, UserError)
        job = journal.open_job("job-1", other, resume=True, force=True)
        assert job.config == other
        assert job.metadata == {"n": 1}
    with SQLiteJournal(path) as journal:
        assert journal.open_job("job-1", other, resume=True).config == other


def test_resume_of_an_empty_journal_starts_afresh(journal: SQLiteJournal, tmp_path: Path) -> None:
    with SQLiteJournal(tmp_path / "new.db") as fresh:
        assert not fresh.open_job("j", CONFIG, resume=True).resumed
    assert fingerprint(CONFIG) == fingerprint(dict(reversed(CONFIG.items())))


def test_many_tasks_are_read_page_by_page(
    journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "_PAGE", 1000)
    ids = (f"task-{i:06d}" for i in range(100_000))  # a generator: add_tasks streams it
    journal.add_tasks(ids)
    for i in range(0, 100_000, 7):
        journal.finish_task(f"task-{i:06d}", {"output": i}, "done", wait=False)
    journal.flush()
    assert journal.summary() == JournalSummary(pending=100_000 - 14_286, done=14_286)
    queries: list[str] = []
    journal._reader.set_trace_callback(queries.append)
    first = list(itertools.islice(journal.results(), 3))
    assert [r.result for r in first] == [{"output": 0}, {"output": 7}, {"output": 14}]
    assert len(queries) == 1
    assert "LIMIT" in queries[0]
    journal._reader.set_trace_callback(None)
    assert sum(1 for _ in journal.results()) == 14_286
    assert sum(1 for _ in journal.task_ids("pending")) == 100_000 - 14_286


# --- concurrency -----------------------------------------------------------------------------


def test_threads_and_tasks_write_at_once(journal: SQLiteJournal) -> None:
    def thread_writes(n: int) -> None:
        for i in range(200):
            journal.record_step(f"thread-{n}", step_key(i), "tool_result", {"i": i})

    async def task_writes(n: int) -> None:
        await journal.astart_task(f"async-{n}")
        for i in range(100):
            await journal.arecord_step(f"async-{n}", step_key(i), "model_response", {"i": i})
        await journal.afinish_task(f"async-{n}", {"output": n}, "done")

    async def main() -> None:
        await asyncio.gather(*(task_writes(n) for n in range(20)))

    threads = [threading.Thread(target=thread_writes, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    asyncio.run(main())
    for thread in threads:
        thread.join(timeout=30)
    for n in range(4):
        assert list(journal.steps(f"thread-{n}").values()) == [{"i": i} for i in range(200)]
    assert all(len(journal.steps(f"async-{n}")) == 100 for n in range(20))
    assert journal.summary().done == 20


def test_a_cancelled_await_still_records(journal: SQLiteJournal) -> None:
    async def main() -> None:
        task = asyncio.create_task(journal.arecord_step("t", "k", "tool_result", 1))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    journal.flush()
    assert journal.steps("t") == {"k": 1}


def test_writes_made_on_a_loop_keep_their_order_with_direct_ones(journal: SQLiteJournal) -> None:
    async def on_the_loop() -> None:
        journal.begin_task("t")  # held until the loop's next turn
        journal.record_step("t", step_key(1), "model_response", {"n": 1}, wait=False)
        journal.record_step("t", step_key(1, "c"), "tool_result", {"n": 2}, wait=False)
        # A blocking write from the loop itself goes after them, not before (or forever).
        journal.record_step("t", step_key(2), "model_response", {"n": 3})
        assert list(journal.steps("t").values()) == [{"n": 1}, {"n": 2}, {"n": 3}]
        await journal.arecord_step("t", step_key(3), "model_response", {"n": 4})

    asyncio.run(on_the_loop())
    assert journal.status("t") == "running"
    assert len(journal.steps("t")) == 4


def test_writes_held_by_a_loop_that_stopped_are_committed_at_close(path: Path) -> None:
    with SQLiteJournal(path) as journal:
        journal.open_job("job-1", CONFIG, resume=False)
        loop = asyncio.new_event_loop()

        async def last_words() -> None:
            journal.record_step("t", step_key(1), "tool_result", {"n": 1}, wait=False)

        loop.run_until_complete(last_words())
        loop.close()  # before the turn that would have handed the write over
    with SQLiteJournal(path) as reopened:
        reopened.open_job("job-1", CONFIG, resume=True)
        assert reopened.steps("t") == {step_key(1): {"n": 1}}


# --- kill -9 ---------------------------------------------------------------------------------


def _run_child(path: Path, tasks: int, kill_after: int | None, rng: random.Random) -> list[str]:
    """Run the child; SIGKILL it after ``kill_after`` lines (and a random moment more)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(tasks)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    enough = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.endswith("\n"):  # a line cut short by the kill was not reported
                lines.append(line.strip())
            if kill_after is not None and len(lines) >= kill_after:
                enough.set()
        enough.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        enough.wait(timeout=10)
        if kill_after is not None:
            threading.Event().wait(rng.uniform(0, 0.02))
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=10)
        assert child.stdout is not None
        child.stdout.close()
    return list(lines)


def test_kill_9_at_random_points_loses_nothing_reported(path: Path) -> None:
    rng = random.Random(13)
    tasks, reported_steps, reported_done = 60, set(), set()
    for _ in range(10):
        lines = _run_child(path, tasks, rng.randrange(5, 120), rng)
        reported_steps |= {tuple(line.split()[1:]) for line in lines if line.startswith("step")}
        reported_done |= {line.split()[1] for line in lines if line.startswith("done")}
        assert _sql(path, "PRAGMA integrity_check") == [("ok",)]
        recorded = set(_sql(path, "SELECT task_id, key FROM steps"))
        assert reported_steps <= recorded
        done = {row[0] for row in _sql(path, "SELECT task_id FROM tasks WHERE status = 'done'")}
        assert reported_done <= done
    lines = _run_child(path, tasks, None, rng)
    assert lines[-1] == "finished"
    with SQLiteJournal(path) as journal:
        journal.open_job("kill-test", {"agent": "child", "model": "m"}, resume=True)
        assert journal.summary() == JournalSummary(done=tasks)
        results = [r.task_id for r in journal.results()]
        assert sorted(results) == [f"task-{i:04d}" for i in range(tasks)]  # each exactly once
        assert all(len(journal.steps(task_id)) == 9 for task_id in results)
