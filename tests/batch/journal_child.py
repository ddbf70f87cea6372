"""A batch's writes to a journal, for the kill test: prints each key once it is recorded.

Usage: ``python journal_child.py JOURNAL TASKS``. Runs ``TASKS`` tasks, eight at a time on
one event loop, each a start, three turns (a model response, then two tool results) and a
finish, skipping finished tasks and re-recording the steps of interrupted ones (a resume).
Prints ``step <task> <key>`` after each recorded step and ``done <task>`` after each finish.
"""

from __future__ import annotations

import asyncio
import sys

from sfagent.batch._journal import SQLiteJournal, step_key

TURNS = 3
CONFIG = {"agent": "child", "model": "m"}


def payload(task_id: str, key: str) -> dict[str, str]:
    """The same payload for a step on every run, so a resume re-records it without conflict."""
    return {"task": task_id, "key": key, "text": "x" * 500}


async def run_task(journal: SQLiteJournal, task_id: str) -> None:
    await journal.astart_task(task_id)
    for turn in range(1, TURNS + 1):
        keys = [(step_key(turn), "model_response")]
        keys += [(step_key(turn, f"c{n}"), "tool_result") for n in range(2)]
        for key, kind in keys:
            await journal.arecord_step(task_id, key, kind, payload(task_id, key))  # type: ignore[arg-type]
            print(f"step {task_id} {key}", flush=True)
    await journal.afinish_task(task_id, {"output": task_id, "cost": "0.001"}, "done")
    print(f"done {task_id}", flush=True)


async def main(path: str, count: int) -> None:
    with SQLiteJournal(path) as journal:
        journal.open_job("kill-test", CONFIG, resume=True)
        done = set(journal.task_ids("done"))
        todo = [f"task-{i:04d}" for i in range(count) if f"task-{i:04d}" not in done]
        gate = asyncio.Semaphore(8)

        async def one(task_id: str) -> None:
            async with gate:
                await run_task(journal, task_id)

        await asyncio.gather(*(one(task_id) for task_id in todo))
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
