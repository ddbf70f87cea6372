"""Many runs at once with asyncio: one agent, twenty questions, answered concurrently.

`await agent.run(...)` never blocks the event loop, so `asyncio.gather` overlaps the runs'
waiting on the model; a semaphore keeps the number in flight under the API's rate limits.

Run it:
    python examples/many_runs.py
"""

from __future__ import annotations

import asyncio
import time

from sfagent import Agent, ModelSettings, RunResult, RunUsage, tool

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Brazil": "Brasília",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Norway": "Oslo",
    "Peru": "Lima",
    "Vietnam": "Hanoi",
    "Australia": "Canberra",
    "Mexico": "Mexico City",
    "Chile": "Santiago",
    "Poland": "Warsaw",
    "Morocco": "Rabat",
    "Thailand": "Bangkok",
    "Portugal": "Lisbon",
    "New Zealand": "Wellington",
    "South Korea": "Seoul",
    "Turkey": "Ankara",
    "Ghana": "Accra",
}


@tool
def get_capital(country: str) -> str:
    """Get the capital city of a country."""
    return CAPITALS.get(country.strip().title(), "unknown")


async def ask(agent: Agent, country: str, limit: asyncio.Semaphore) -> tuple[RunResult, float]:
    async with limit:  # wait for a free slot
        start = time.perf_counter()
        result = await agent.run(f"What is the capital of {country}?")
        return result, time.perf_counter() - start


async def main() -> None:
    from _model import pick_model

    limit = asyncio.Semaphore(8)  # at most 8 runs talk to the model at once
    async with Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[get_capital],
        instructions="Answer with the city's name only.",
        settings=ModelSettings(enable_thinking=False),  # short answers need no reasoning
    ) as agent:  # closes the HTTP clients at the end
        start = time.perf_counter()
        runs = await asyncio.gather(*(ask(agent, country, limit) for country in CAPITALS))
        wall = time.perf_counter() - start

    for country, (result, _) in zip(CAPITALS, runs, strict=True):
        print(f"{country:>12}: {result.output.strip().splitlines()[-1]}")  # the answer's last line
    usage = sum((result.usage for result, _ in runs), RunUsage())
    busy = sum(seconds for _, seconds in runs)
    print(f"{len(runs)} runs in {wall:.2f} s (their own durations add up to {busy:.2f} s)")
    print(f"{usage.requests} requests, {usage.tool_calls} tool calls, {usage.total_tokens} tokens")


if __name__ == "__main__":
    asyncio.run(main())
