"""Running one agent scenario through any of the four drivers, with the same expectations."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sfagent.agent import Agent
from sfagent.events import Event, RunFinished
from sfagent.result import RunResult

DRIVERS = ["run_sync", "run", "stream_sync", "stream"]


@dataclass
class Outcome:
    """What a driver produced: the result, and the events when the driver streams them."""

    result: RunResult[Any]
    events: list[Event]


def drive(agent: Agent[Any], driver: str, prompt: str | None = None, **kwargs: Any) -> Outcome:
    """Run `agent` with `driver`; raises what the run raises."""
    if driver == "run_sync":
        with agent:
            return Outcome(agent.run_sync(prompt, **kwargs), [])
    if driver == "run":

        async def run() -> RunResult[Any]:
            async with agent:  # closes the HTTP client in the loop that opened it
                return await agent.run(prompt, **kwargs)

        return Outcome(asyncio.run(run()), [])
    if driver == "stream_sync":
        with agent:
            events = list(agent.stream_sync(prompt, **kwargs))
    else:

        async def collect() -> list[Event]:
            async with agent:
                return [event async for event in agent.stream(prompt, **kwargs)]

        events = asyncio.run(collect())
    last = events[-1]
    assert isinstance(last, RunFinished)
    return Outcome(last.result, events)


def roles(result: RunResult[Any]) -> list[str]:
    """The role of every message, in order."""
    return [m["role"] for m in result.messages]


def tool_contents(result: RunResult[Any]) -> list[str]:
    """The content of every tool message, in order."""
    return [m["content"] for m in result.messages if m["role"] == "tool"]
