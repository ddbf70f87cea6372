"""One process of a durable run, started and killed by test_durable_kill.py.

    python durable_child.py BASE_URL DB_URL LOG RUN_ID start|resume TIME_LIMIT [approval]

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
from sfagent.durable import DurableAgent, launch, shutdown, wait_for_approval
from sfagent.exceptions import AgentRunError

BASE_URL, DB_URL, LOG, RUN_ID, MODE, TIME_LIMIT = sys.argv[1:7]
APPROVAL = sys.argv[7:] == ["approval"]
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


@tool(requires_approval=True)
def delete_file(ctx: RunContext[Any], path: str) -> str:
    """Delete a file."""
    note(event="delete", path=path, key=ctx.idempotency_key)
    return f"deleted {path}"


agent = Agent(
    "Qwen/Qwen3-8B",
    tools=[delete_file] if APPROVAL else [lookup],
    api_key="sk-durable-test",
    base_url=BASE_URL,
    time_limit=float(TIME_LIMIT) or None,
    approve=wait_for_approval,
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
