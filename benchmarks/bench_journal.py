"""The journal's cost: records a second, commit by commit or grouped, and in a batch's shape.

Run:  ``python benchmarks/bench_journal.py [--records N] [--durable]``

Prints markdown tables. Payloads are realistic: a 2 KB chat completion (model response) and a
200 B tool result. The rows:

- *raw, commit each* / *raw, 200 a commit*: plain `sqlite3` in WAL mode from one thread, the
  floor and ceiling of what the file allows.
- *journal, one thread*: `SQLiteJournal.record_step` from one thread, each call waiting for
  its commit (so one record a commit, plus the hand-off to the writer thread).
- *journal, 64 asyncio tasks*: `arecord_step` from 64 tasks, each awaiting its commit: the
  writer groups what is queued (group commit).
- *batch shape*: 16, 64, 128, 256 simulated tasks on one event loop (about 800, 3,000, 6,000, 12,000
  steps a second at most), each step a 10-30 ms wait for the "model" then parsing its 2 KB
  answer, with and without awaiting ``arecord_step`` for every step; the cost is the lost
  share of steps a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sfagent.batch._journal import SQLiteJournal, step_key

MODEL = {
    "id": "chatcmpl-0123456789abcdef",
    "object": "chat.completion",
    "model": "deepseek-ai/DeepSeek-V3",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Let me look that up. " * 70,
                "tool_calls": [
                    {
                        "id": "call_0123456789",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"query": "weather"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908},
}
TOOL = {"call_id": "call_0123456789", "content": "Sunny, 23 °C, light wind. " * 6, "ok": True}
PAYLOADS = {"2 KB model response": MODEL, "200 B tool result": TOOL}


def _raw(path: Path, payload: str, n: int, group: int, durable: bool) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute("CREATE TABLE steps (task_id TEXT, key TEXT, kind TEXT, payload TEXT)")
    start = time.perf_counter()
    for first in range(0, n, group):
        conn.execute("BEGIN")
        for i in range(first, min(n, first + group)):
            conn.execute(
                "INSERT INTO steps VALUES (?, ?, 'x', ?)", (f"t{i % 500}", str(i), payload)
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def _journal(path: Path, durable: bool) -> SQLiteJournal:
    journal = SQLiteJournal(path, durable=durable)
    journal.open_job("bench", {"model": "m"}, resume=False)
    return journal


def _one_thread(path: Path, payload: Any, n: int, durable: bool) -> float:
    with _journal(path, durable) as journal:
        start = time.perf_counter()
        for i in range(n):
            journal.record_step(f"t{i % 500}", step_key(i), "tool_result", payload)
        return n / (time.perf_counter() - start)


def _many_tasks(path: Path, payload: Any, n: int, durable: bool, tasks: int = 64) -> float:
    async def worker(journal: SQLiteJournal, w: int) -> None:
        for i in range(n // tasks):
            await journal.arecord_step(f"t{w}", step_key(i), "tool_result", payload)

    async def main() -> float:
        with _journal(path, durable) as journal:
            start = time.perf_counter()
            await asyncio.gather(*(worker(journal, w) for w in range(tasks)))
            return (n // tasks) * tasks / (time.perf_counter() - start)

    return asyncio.run(main())


def _batch(path: Path | None, seconds: float, durable: bool, tasks: int = 256) -> float:
    """Steps a second of a simulated batch, with a journal (``path``) or without."""
    body = json.dumps(MODEL)
    done = 0

    async def worker(journal: SQLiteJournal | None, w: int, stop: float) -> None:
        nonlocal done
        turn = 0
        while time.perf_counter() < stop:
            await asyncio.sleep(random.uniform(0.01, 0.03))  # the model's latency
            answer = json.loads(body)  # what the runner does with any answer
            turn += 1
            if journal is not None:
                await journal.arecord_step(f"t{w}", step_key(turn), "model_response", answer)
            done += 1

    async def main() -> float:
        journal = _journal(path, durable) if path is not None else None
        try:
            start = time.perf_counter()
            await asyncio.gather(*(worker(journal, w, start + seconds) for w in range(tasks)))
            return done / (time.perf_counter() - start)
        finally:
            if journal is not None:
                journal.close()

    return asyncio.run(main())


def _fresh(directory: Path) -> Callable[[], Path]:
    count = 0

    def make() -> Path:
        nonlocal count
        count += 1
        return directory / f"j{count}.db"

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--durable", action="store_true", help="synchronous=FULL")
    args = parser.parse_args()
    n, durable = args.records, args.durable
    mode = "FULL" if durable else "NORMAL"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = _fresh(Path(tmp))
        print(f"records a second, WAL + synchronous={mode}, {n} records a row\n")
        print("| writer | " + " | ".join(PAYLOADS) + " |")
        print("|---|" + "---:|" * len(PAYLOADS))
        rows: list[tuple[str, Callable[[Any], float]]] = [
            ("raw, commit each", lambda p: _raw(fresh(), json.dumps(p), n, 1, durable)),
            ("raw, 200 a commit", lambda p: _raw(fresh(), json.dumps(p), n, 200, durable)),
            ("journal, one thread", lambda p: _one_thread(fresh(), p, n, durable)),
            ("journal, 64 asyncio tasks", lambda p: _many_tasks(fresh(), p, n, durable)),
        ]
        for name, run in rows:
            cells = " | ".join(f"{run(p):,.0f}" for p in PAYLOADS.values())
            print(f"| {name} | {cells} |")
        print(
            "\nbatch shape: 10-30 ms a model answer, each 2 KB answer recorded (steps a second)\n"
        )
        print("| tasks | without a journal | with the journal | cost |\n|---:|---:|---:|---:|")
        for tasks in (16, 64, 128, 256):
            without = _batch(None, args.seconds, durable, tasks)
            with_journal = _batch(fresh(), args.seconds, durable, tasks)
            cost = 100 * (1 - with_journal / without)
            print(f"| {tasks} | {without:,.0f} | {with_journal:,.0f} | {cost:.1f}% |")


if __name__ == "__main__":
    main()
