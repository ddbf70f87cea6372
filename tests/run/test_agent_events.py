"""Events of the streaming drivers: the same sequence whatever the driver."""

from __future__ import annotations

import json

import pytest

from sfagent import tool
from sfagent.agent import Agent
from sfagent.events import (
    ReasoningDelta,
    RunFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnFinished,
)
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall
from tests.run.agent_support import drive


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(name: str, arguments: dict[str, int]) -> ScriptedToolCall:
    return ScriptedToolCall(name, arguments)


@pytest.mark.parametrize("driver", ["stream_sync", "stream"])
def test_events_are_the_same_whether_streamed_or_not(driver: str) -> None:
    model = ScriptedModel(
        [
            Reply(tool_calls=[call("add", {"a": 2, "b": 2})]),
            Reply(text="The answer is 4.", reasoning="Two plus two."),
        ]
    )
    events = drive(Agent(model, tools=[add]), driver, "2+2?").events
    kinds = [type(e) for e in events]
    assert kinds[:3] == [ToolCallStarted, ToolResult, TurnFinished]
    assert kinds[-2:] == [TurnFinished, RunFinished]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert text == "The answer is 4."
    assert reasoning == "Two plus two."
    started = events[0]
    assert isinstance(started, ToolCallStarted)
    assert (started.name, json.loads(started.arguments)) == ("add", {"a": 2, "b": 2})
    finished = events[2]
    assert isinstance(finished, TurnFinished)
    assert finished.turn == 1
