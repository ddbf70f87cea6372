"""The agent `tests/cli/test_batch_cli.py` runs with ``sfagent batch --agent``.

One tool, `lookup`, that a scripted model (the tests' loopback server) calls a few times per
task. Each call appends a line ``<start> <idempotency key>`` to the file named by
``BATCH_AGENT_LOG`` (when set), where ``<start>`` is ``BATCH_AGENT_START`` (which start of a
killed-and-resumed batch ran it): the tests read it to see which side effects happened twice.
"""

from __future__ import annotations

import os

from sfagent import Agent, RunContext, tool

LOG_ENV = "BATCH_AGENT_LOG"
START_ENV = "BATCH_AGENT_START"


def weather(city: str, day: int) -> str:
    """What `lookup` answers: the tests' model checks each tool message against it."""
    return f"{city}: sunny, 21 C on day {day}"


@tool
def lookup(ctx: RunContext[None], city: str, day: int) -> str:
    """Look up the weather.

    Args:
        city: The city.
        day: Days from today.
    """
    log = os.environ.get(LOG_ENV)
    if log:
        line = f"{os.environ.get(START_ENV, '0')} {ctx.idempotency_key}\n".encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write with O_APPEND: whole lines even when killed
        finally:
            os.close(fd)
    return weather(city, day)


agent = Agent(
    "deepseek-ai/DeepSeek-V3",
    tools=[lookup],
    instructions="Use the lookup tool as often as the task says, then answer.",
    max_turns=10,
)
