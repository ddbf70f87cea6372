"""One process of a durable run whose first turn has six parallel tool calls, started and
killed by test_durable_parallel.py.

    python parallel_child.py BASE_URL DB_URL LOG start|resume|plain

``start`` runs the agent durably under the id ``run-p``; ``resume`` launches DBOS (which resumes
this executor's pending runs) and waits for it; ``plain`` runs the same agent without DBOS, for
comparison. Every tool logs its start and its side effect (keyed by its idempotency key) to LOG
as JSON lines; while ``LOG.block`` exists, the calls for ``c`` (sync) and ``e`` (async) hang so
the test can kill the process with them in flight. Prints the answer as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dbos import DBOS

from sfagent import Agent, RunContext, tool
from sfagent.durable import DurableAgent, launch, shutdown

BASE_URL, DB_URL, LOG, MODE = sys.argv[1:5]
HANG = {"c", "e"}


def note(**fields: Any) -> None:
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


def blocked(name: str) -> bool:
    return name in HANG and Path(LOG + ".block").exists()


@tool
def work_sync(ctx: RunContext[Any], name: str, seconds: float) -> str:
    """Do some work on a thread."""
    note(event="start", key=ctx.idempotency_key)
    time.sleep(600 if blocked(name) else seconds)
    note(event="effect", key=ctx.idempotency_key)
    return f"{name} done on a thread"


@tool
async def work_async(ctx: RunContext[Any], name: str, seconds: float) -> str:
    """Do some work on the event loop."""
    note(event="start", key=ctx.idempotency_key)
    await asyncio.sleep(600 if blocked(name) else seconds)
    note(event="effect", key=ctx.idempotency_key)
    return f"{name} done on the loop"


agent = Agent(
    "Qwen/Qwen3-8B",
    tools=[work_sync, work_async],
    api_key="sk-durable-test",
    base_url=BASE_URL,
)
durable = DurableAgent(agent, name="parallel-test")


async def main() -> None:
    if MODE == "plain":
        result = await agent.run("Do the six jobs.", run_id="run-p")
    else:
        launch(DB_URL, executor_id="worker-1", notification_listener_polling_interval_sec=0.01)
        if MODE == "start":
            result = await durable.run("Do the six jobs.", run_id="run-p")
        else:
            result = await (await DBOS.retrieve_workflow_async("run-p")).get_result()
        shutdown()
    await agent.aclose()
    print(json.dumps({"output": result.output, "requests": result.usage.requests}))


asyncio.run(main())
