"""A function-calling bot: the model calls `get_weather` once per city, then answers.

Run it:
    python examples/weather.py
    python examples/weather.py "Is it warmer in Guangzhou or Harbin?"
    sfagent run examples/weather.py "What's the weather in Beijing and Shanghai?"
"""

from __future__ import annotations

import sys
import zlib
from typing import Literal

from sfagent import Agent, tool


@tool
def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius"
) -> dict[str, str | int]:
    """Get the current weather in a city.

    Args:
        city: The city's name in English, e.g. "Hangzhou".
        unit: The temperature unit.
    """
    # Fake but deterministic data: the same city always gets the same weather.
    seed = zlib.crc32(city.strip().lower().encode())
    celsius = 5 + seed % 26
    conditions = ["sunny", "cloudy", "light rain", "windy", "overcast"][seed % 5]
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit, "conditions": conditions}


def main(question: str) -> None:
    from _model import pick_model  # examples/ is on sys.path when run as a script

    agent = Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[get_weather],
        instructions="You are a concise weather assistant. Use the tools; never guess.",
    )
    with agent:  # closes the HTTP client when done
        result = agent.run_sync(question)
    # Every tool call of the run, with the arguments the model chose.
    for turn in result.turns:
        for call in turn.tool_calls:
            print(f"→ {call.name}({call.arguments})")
    print(result.output)
    print(f"({result.usage.requests} requests, {result.usage.total_tokens} tokens)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "What's the weather in Beijing and Shanghai?")
