"""One process of a durable run, started and killed by test_durable_kill.py.

    python durable_child.py BASE_URL DB_URL LOG RUN_ID start|resume TIME_LIMIT

``start`` runs the agent under RUN_ID; ``resume`` launches DBOS (which resumes this executor's
pending runs) and waits for RUN_ID. The tool logs each call's start and end to LOG as JSON
lines and, while ``LOG.block`` exists, hangs in its call for Lhasa so the test can kill it there.
Prints the outcome as one JSON line.
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
from sfagent.exceptions import AgentRunError

BASE_URL, DB_URL, LOG, RUN_ID, MODE, TIME_LIMIT = sys.argv[1:7]
PROMPT = "What's the weather in Paris, Lhasa and Oslo?"


def note(**fields: Any) -> None:
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


@tool
def lookup(ctx: RunContext[Any], city: str) -> str:
    """Look up a city's weather."""
    note(event="start", city=city, key=ctx.idempotency_key)
    if city == "Lhasa" and Path(LOG + ".block").exists():
        time.sleep(600)  # the test kills the process here
    note(event="end", city=city, key=ctx.idempotency_key)
    return f"{city}: sunny"


agent = Agent(
    "Qwen/Qwen3-8B",
    tools=[lookup],
    api_key="sk-durable-test",
    base_url=BASE_URL,
    time_limit=float(TIME_LIMIT) or None,
)
durable = DurableAgent(agent, name="kill-test")


async def main() -> None:
    launch(DB_URL, executor_id="worker-1", notification_listener_polling_interval_sec=0.01)
    try:
        if MODE == "start":
            result = await durable.run(PROMPT, run_id=RUN_ID)
        else:
            handle = await DBOS.retrieve_workflow_async(RUN_ID)
            result = await handle.get_result()
        print(json.dumps({"output": result.output, "requests": result.usage.requests}))
    except AgentRunError as exc:
        print(json.dumps({"error": type(exc).__name__, "budget": getattr(exc, "budget", None)}))
    finally:
        shutdown()
        await agent.aclose()


asyncio.run(main())
