"""Streaming a run to the terminal: reasoning dimmed, the answer as it arrives, tool calls.

`agent.stream_sync(...)` yields events while the run goes on; `agent.stream(...)` is the
async twin. The last event is `RunFinished`, which carries the same result `run_sync` returns.

Run it:
    python examples/streaming.py
    python examples/streaming.py "How big are Wuhan and Chengdu?"
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from sfagent import (
    Agent,
    Event,
    ModelSettings,
    ReasoningDelta,
    RunFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    tool,
)
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall

POPULATIONS = {"chongqing": 32.1, "chengdu": 21.4, "wuhan": 13.7, "xi'an": 13.1}


@tool
def get_population(city: str) -> str:
    """Get a Chinese city's population (whole municipal area)."""
    millions = POPULATIONS.get(city.lower())
    return f"{city}: {millions} million" if millions else f"{city}: unknown"


# Offline: a reasoning model's two turns, scripted (reasoning, then tool calls, then the answer).
OFFLINE = ScriptedModel(
    [
        Reply(
            reasoning="Two cities to compare. I'll look up both populations.",
            tool_calls=[
                ScriptedToolCall("get_population", {"city": "Chongqing"}),
                ScriptedToolCall("get_population", {"city": "Chengdu"}),
            ],
        ),
        Reply(
            reasoning="32.1 million against 21.4 million: Chongqing is larger.",
            text="Chongqing is bigger: about 32.1 million people, against 21.4 million in Chengdu.",
        ),
    ]
)


def show(events: Iterable[Event]) -> None:
    """Print a run's events as they come."""
    dim, reset = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")
    previous: type | None = None
    for event in events:
        if previous in (ReasoningDelta, TextDelta) and type(event) is not previous:
            print()  # end the streamed line before what comes next
        previous = type(event)
        match event:
            case ReasoningDelta(text=text):
                print(f"{dim}{text}{reset}", end="", flush=True)
            case TextDelta(text=text):
                print(text, end="", flush=True)
            case ToolCallStarted(name=name, arguments=arguments):
                print(f"→ {name}({arguments})", flush=True)
            case ToolResult(content=content, duration=duration):
                print(f"← {content} ({duration * 1000:.1f} ms)", flush=True)
            case RunFinished(result=result):
                print(f"({result.usage.requests} requests, {result.usage.total_tokens} tokens)")


if __name__ == "__main__":
    from _model import pick_model

    question = sys.argv[1] if len(sys.argv) > 1 else "Which is bigger, Chongqing or Chengdu?"
    agent = Agent(
        pick_model("Qwen/Qwen3-8B", offline=OFFLINE if len(sys.argv) == 1 else None),
        tools=[get_population],
        settings=ModelSettings(enable_thinking=True, max_tokens=1024),  # Qwen3 thinks aloud
    )
    with agent:
        show(agent.stream_sync(question))
