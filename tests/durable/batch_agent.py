"""The agent of the multi-worker batch tests (test_durable_batch_workers.py), loaded by
``sfagent batch --agent`` and ``sfagent worker --agent`` in their own processes.

It asks the loopback server at ``SFAGENT_TEST_BASE_URL``; its tool logs every call (process
and idempotency key) as a JSON line to ``SFAGENT_TEST_TOOL_LOG``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sfagent import Agent, ModelSettings, RunContext, tool


@tool
def lookup(ctx: RunContext[Any], city: str, day: int) -> str:
    """The weather in a city on a day."""
    with open(os.environ["SFAGENT_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"pid": os.getpid(), "key": ctx.idempotency_key}) + "\n")
    return f"{city} day {day}: sunny"


agent = Agent(
    "Qwen/Qwen3-8B",
    tools=[lookup],
    api_key="sk-batch-workers-test",
    base_url=os.environ["SFAGENT_TEST_BASE_URL"],
    settings=ModelSettings(max_tokens=64),
)
