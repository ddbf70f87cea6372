"""Agents as tools: usage, budgets, events and transcripts of inner runs, under every driver."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from sfagent import RunContext, tool
from sfagent.agent import Agent
from sfagent.events import (
    NestedEvent,
    RunFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from sfagent.exceptions import (
    BudgetExceeded,
    MaxTurnsExceeded,
    ToolDefinitionError,
    UserError,
)
from sfagent.offline.model import AsyncOfflineStream, OfflineStream
from sfagent.result import RunResult, ToolCallRecord
from sfagent.settings import ChatRequest
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall
from tests.run.agent_support import DRIVERS, drive, tool_contents

STREAMED = {"stream_sync", "stream"}


class ModeModel(ScriptedModel):
    """A scripted model that notes whether each request came blocking or async."""

    def __init__(self, replies: list[Any]) -> None:
        super().__init__(replies)
        self.modes: list[str] = []

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        self.modes.append("sync")
        return super().complete(request, timeout=timeout)

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> OfflineStream:
        self.modes.append("sync")
        return super().stream(request, timeout=timeout)

    async def complete_async(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        self.modes.append("async")
        return await super().complete_async(request, timeout=timeout)

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncOfflineStream:
        self.modes.append("async")
        return super().stream_async(request, timeout=timeout)


NOTES = {"agents.txt": "An agent is a loop.", "tools.txt": "Tools are typed."}


@tool
def read_note(name: str) -> str:
    """Read a note.

    Args:
        name: The note's file name.
    """
    return NOTES[name]


def call(name: str, arguments: dict[str, Any], id: str | None = None) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(name, arguments, id=id)])


def researcher(model: ScriptedModel, **options: Any) -> Agent[Any]:
    return Agent(model, tools=[read_note], instructions="Answer from the notes.", **options)


def only_record(result: RunResult[Any], name: str) -> ToolCallRecord:
    records = [r for turn in result.turns for r in turn.tool_calls if r.name == name]
    assert len(records) == 1, records
    return records[0]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_planner_delegates_to_a_researcher(driver: str) -> None:
    inner = ModeModel([call("read_note", {"name": "agents.txt"}), "Agents loop."])
    outer = ModeModel(
        [call("research", {"input": "What is an agent?"}, id="c1"), "An agent loops, I hear."]
    )
    research = researcher(inner).as_tool(name="research", description="Looks things up.")
    planner = Agent(outer, tools=[research])

    result = drive(planner, driver, "Explain agents.").result

    assert result.output == "An agent loops, I hear."
    assert tool_contents(result) == ["Agents loop."]
    # The inner prompt is the input; the inner run's whole transcript is on the record.
    record = only_record(result, "research")
    assert record.error is None
    sub = record.sub_run
    assert sub is not None
    assert sub.output == "Agents loop."
    assert [m["role"] for m in sub.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert sub.messages[1]["content"] == "What is an agent?"
    assert sub.messages[3]["content"] == "An agent is a loop."
    # Usage rolls up: both outer requests, both inner ones, and both tool calls.
    outer_tokens = sum(t.response.usage.total_tokens for t in result.turns)  # type: ignore[union-attr]
    assert result.usage.requests == 4
    assert result.usage.tool_calls == 2
    assert result.usage.total_tokens == outer_tokens + sub.usage.total_tokens
    assert sub.usage.requests == 2
    # An inner run is sync inside a sync run and async inside an async one.
    mode = "sync" if driver in ("run_sync", "stream_sync") else "async"
    assert inner.modes == [mode, mode]
    assert outer.modes == [mode, mode]
    inner.assert_used_up()
    outer.assert_used_up()


@pytest.mark.parametrize("driver", sorted(STREAMED))
def test_inner_events_arrive_nested_between_start_and_result(driver: str) -> None:
    inner = ScriptedModel([call("read_note", {"name": "tools.txt"}), "Typed tools."])
    outer = ScriptedModel([call("research", {"input": "tools?"}, id="c7"), "Done."])
    research = researcher(inner).as_tool(name="research", description="Looks things up.")
    events = drive(Agent(outer, tools=[research]), driver, "Go").events

    started = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStarted))
    ended = next(i for i, e in enumerate(events) if isinstance(e, ToolResult))
    nested = [e for e in events if isinstance(e, NestedEvent)]
    assert nested, events
    assert all(started < events.index(e) < ended for e in nested)
    assert {(e.call_id, e.tool_name, e.turn) for e in nested} == {("c7", "research", 1)}
    inner_events = [e.event for e in nested]
    assert isinstance(inner_events[0], ToolCallStarted)
    assert inner_events[0].name == "read_note"
    text = "".join(e.text for e in inner_events if isinstance(e, TextDelta))
    assert text == "Typed tools."
    last = inner_events[-1]
    assert isinstance(last, RunFinished)
    assert last.result.output == "Typed tools."
    # The outer stream still ends with its own RunFinished; inner text never leaks unwrapped.
    assert isinstance(events[-1], RunFinished)
    outer_text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert outer_text == "Done."


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_inner_failure_is_a_typed_tool_error_with_its_partial_run(driver: str) -> None:
    # The inner agent may make one request only, and that one calls a tool: MaxTurnsExceeded.
    inner = ScriptedModel([call("read_note", {"name": "agents.txt"})])
    outer = ScriptedModel([call("research", {"input": "q"}), "I could not find out."])
    research = researcher(inner, max_turns=1).as_tool(name="research", description="Looks up.")
    outcome = drive(Agent(outer, tools=[research]), driver, "Go")

    (content,) = tool_contents(outcome.result)
    assert content.startswith("Error: tool 'research' failed: MaxTurnsExceeded: the run reached")
    record = only_record(outcome.result, "research")
    assert record.error == content
    sub = record.sub_run
    assert sub is not None
    assert sub.output is None
    assert [m["role"] for m in sub.messages][-2:] == ["assistant", "tool"]
    # What the failed inner run spent is counted too.
    assert outcome.result.usage.requests == 3
    assert outcome.result.usage.total_tokens > sum(
        t.response.usage.total_tokens  # type: ignore[union-attr]
        for t in outcome.result.turns
    )
    if driver in STREAMED:
        (result_event,) = [e for e in outcome.events if isinstance(e, ToolResult)]
        assert isinstance(result_event.exception, MaxTurnsExceeded)
        assert result_event.exception.result is sub
        assert pickle.loads(pickle.dumps(result_event.exception)).args == (
            result_event.exception.args
        )


class Query(BaseModel):
    topic: str
    limit: int = 3


@pytest.mark.parametrize("driver", ["run_sync", "run"])
def test_structured_input_goes_to_the_inner_agent_as_json(driver: str) -> None:
    inner = ScriptedModel(["ok"])
    outer = ScriptedModel([call("research", {"input": {"topic": "agents"}}), "fine"])
    research = researcher(inner).as_tool(
        name="research", description="Looks up.", input_type=Query, input_description="What."
    )
    parameters = research.parameters
    assert parameters["required"] == ["input"]
    assert parameters["properties"]["input"]["description"] == "What."
    result = drive(Agent(outer, tools=[research]), driver, "Go").result
    sub = only_record(result, "research").sub_run
    assert sub is not None
    assert json.loads(sub.messages[1]["content"]) == {"topic": "agents", "limit": 3}


def test_the_schema_of_a_text_input() -> None:
    research = researcher(ScriptedModel([])).as_tool(
        name="research", description="Looks things up.", timeout=5, max_retries=1
    )
    assert research.schema["function"]["name"] == "research"
    assert research.schema["function"]["description"] == "Looks things up."
    assert research.parameters["properties"]["input"]["type"] == "string"
    assert research.parameters["required"] == ["input"]
    assert (research.timeout, research.max_retries) == (5, 1)
    assert repr(research) == "AgentTool(name='research')"


def test_bad_definitions_are_refused() -> None:
    agent = researcher(ScriptedModel([]))
    with pytest.raises(UserError, match="needs a description"):
        agent.as_tool(name="research", description=" ")
    with pytest.raises(ToolDefinitionError):
        agent.as_tool(name="no spaces allowed", description="x")


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_inner_run_gets_the_deps_and_the_budgets_left(driver: str) -> None:
    seen: list[tuple[Any, float | None, int | None]] = []

    @tool
    def peek(ctx: RunContext[dict[str, str]]) -> str:
        """Look at the run."""
        seen.append((ctx.deps, ctx.time_left, ctx.tokens_left))
        return "peeked"

    inner = ScriptedModel([call("peek", {}), "seen"])
    outer = ScriptedModel([call("research", {"input": "q"}), "done"])
    research = Agent(inner, tools=[peek]).as_tool(name="research", description="Looks up.")
    planner = Agent(outer, tools=[research], time_limit=30, max_total_tokens=100_000)
    result = drive(planner, driver, "Go", deps={"user": "ada"}).result

    ((deps, time_left, tokens_left),) = seen
    assert deps == {"user": "ada"}
    assert time_left is not None
    assert 25 < time_left < 30
    # The budget left when the inner tool ran: the outer run's first turn and the inner
    # run's first turn were spent.
    sub = only_record(result, "research").sub_run
    assert sub is not None
    spent = result.turns[0].response.usage.total_tokens  # type: ignore[union-attr]
    spent += sub.turns[0].response.usage.total_tokens  # type: ignore[union-attr]
    assert tokens_left == 100_000 - spent


def _token_script() -> tuple[ScriptedModel, ScriptedModel]:
    inner = ScriptedModel([call("read_note", {"name": "agents.txt"}), "never sent"])
    outer = ScriptedModel([call("research", {"input": "q"}), "never sent either"])
    return inner, outer


def _first_turn_tokens() -> int:
    """What the outer and inner first requests of `_token_script` cost, measured."""
    inner, outer = _token_script()
    research = researcher(inner).as_tool(name="research", description="Looks up.")
    result = Agent(outer, tools=[research]).run_sync("Go")
    sub = only_record(result, "research").sub_run
    assert sub is not None
    first_outer = result.turns[0].response.usage.total_tokens  # type: ignore[union-attr]
    return first_outer + sub.turns[0].response.usage.total_tokens  # type: ignore[union-attr]


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_outer_token_budget_bounds_the_inner_run(driver: str) -> None:
    budget = _first_turn_tokens()
    inner, outer = _token_script()
    research = researcher(inner).as_tool(name="research", description="Looks up.")
    planner = Agent(outer, tools=[research], max_total_tokens=budget)

    with pytest.raises(BudgetExceeded) as caught:
        drive(planner, driver, "Go")

    # The inner run stopped before its second request, on the caller's budget...
    record = only_record(caught.value.result, "research")
    assert "BudgetExceeded: token budget exhausted: the calling run's budget" in record.content
    assert record.sub_run is not None
    assert record.sub_run.usage.requests == 1
    # ...and the outer run, which counts what the inner one spent, stopped next.
    assert caught.value.budget == "tokens"
    assert caught.value.result.usage.total_tokens == budget
    assert inner.remaining == outer.remaining == 1


@pytest.mark.parametrize("driver", ["run_sync", "run"])
def test_inner_runs_of_one_turn_share_the_budget_left(driver: str) -> None:
    budget = _first_turn_tokens() * 3  # room for the outer turn and a few inner ones
    first = ScriptedModel([call("read_note", {"name": "agents.txt"})] * 40)
    second = ScriptedModel(["unused"])
    outer = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    ScriptedToolCall("one", {"input": "a"}),
                    ScriptedToolCall("two", {"input": "b"}),
                ]
            ),
            "both tried",
        ]
    )
    one = researcher(first, max_repeated_calls=None, max_turns=40).as_tool(
        name="one", description="First.", sequential=True
    )
    two = researcher(second).as_tool(name="two", description="Second.", sequential=True)
    planner = Agent(outer, tools=[one, two], max_total_tokens=budget)

    with pytest.raises(BudgetExceeded):
        drive(planner, driver, "Go")
    # The first inner run spent what was left; the second, in the same turn, got nothing.
    assert second.remaining == 1
    assert first.remaining > 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_outer_deadline_bounds_the_inner_run(driver: str) -> None:
    release = threading.Event()

    @tool
    def slow() -> str:
        """Wait."""
        release.wait(5)
        return "late"

    inner = ScriptedModel([call("slow", {}), "never"])
    outer = ScriptedModel([call("research", {"input": "q"}), "gave up on it"])
    research = Agent(inner, tools=[slow]).as_tool(name="research", description="Slow.")
    planner = Agent(outer, tools=[research], time_limit=0.6)
    budgets: list[str] = []
    try:
        try:
            result = drive(planner, driver, "Go").result
        except BudgetExceeded as exc:  # the outer deadline may pass right after the inner one
            budgets.append(exc.budget)
            result = exc.result
    finally:
        release.set()
    assert budgets in ([], ["time"])
    record = only_record(result, "research")
    assert "BudgetExceeded: time budget exhausted" in record.content
    assert record.sub_run is not None
    assert "cut short" in record.sub_run.messages[-1]["content"]


@pytest.mark.parametrize("driver", sorted(STREAMED))
def test_three_levels_nest_events_and_sum_usage(driver: str) -> None:
    calculator = Agent(ScriptedModel(["4"]))
    middle = Agent(
        ScriptedModel([call("calc", {"input": "2+2"}), "It is 4."]),
        tools=[calculator.as_tool(name="calc", description="Does sums.")],
    )
    top = Agent(
        ScriptedModel([call("ask", {"input": "sum?"}), "4, they say."]),
        tools=[middle.as_tool(name="ask", description="Asks.")],
    )
    outcome = drive(top, driver, "Go")

    twice = [
        e.event.event
        for e in outcome.events
        if isinstance(e, NestedEvent) and isinstance(e.event, NestedEvent)
    ]
    assert isinstance(twice[-1], RunFinished)
    assert twice[-1].result.output == "4"
    assert outcome.result.usage.requests == 5
    middle_run = only_record(outcome.result, "ask").sub_run
    assert middle_run is not None
    bottom_run = only_record(middle_run, "calc").sub_run
    assert bottom_run is not None
    assert bottom_run.output == "4"


def test_a_listener_that_leaves_early_stops_the_inner_run() -> None:
    inner = ScriptedModel([Reply(text="one two three four five", chunk_delay=2)])
    outer = ScriptedModel([call("research", {"input": "q"})])
    research = researcher(inner).as_tool(name="research", description="Looks up.")
    planner = Agent(outer, tools=[research])

    async def first_nested_text() -> NestedEvent:
        events = planner.stream("Go")
        try:
            async for event in events:
                if isinstance(event, NestedEvent) and isinstance(event.event, TextDelta):
                    return event
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        raise AssertionError("no nested text")

    async def main() -> NestedEvent:
        # Closing the stream cancels the inner run: no waiting out its slow chunks.
        return await asyncio.wait_for(first_nested_text(), timeout=3)

    event = asyncio.run(main())
    assert event.event.text  # type: ignore[union-attr]


@pytest.mark.parametrize("driver", DRIVERS)
def test_two_agents_called_side_by_side(driver: str) -> None:
    one = Agent(ScriptedModel([Reply(text="from one", chunk_delay=0.01)]))
    two = Agent(ScriptedModel([Reply(text="from two", chunk_delay=0.01)]))
    outer = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    ScriptedToolCall("one", {"input": "a"}, id="a1"),
                    ScriptedToolCall("two", {"input": "b"}, id="b2"),
                ]
            ),
            "both answered",
        ]
    )
    planner = Agent(
        outer,
        tools=[
            one.as_tool(name="one", description="First."),
            two.as_tool(name="two", description="Second."),
        ],
    )
    outcome = drive(planner, driver, "Go")
    assert tool_contents(outcome.result) == ["from one", "from two"]
    assert outcome.result.usage.requests == 4
    if driver in STREAMED:
        texts: dict[str, str] = {}
        for event in outcome.events:
            if isinstance(event, NestedEvent) and isinstance(event.event, TextDelta):
                texts[event.call_id] = texts.get(event.call_id, "") + event.event.text
        assert texts == {"a1": "from one", "b2": "from two"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_any_tool_sees_the_budgets_left(driver: str) -> None:
    seen: list[tuple[float | None, int | None]] = []

    @tool
    def peek(ctx: RunContext[None]) -> str:
        """Look at the run."""
        seen.append((ctx.time_left, ctx.tokens_left))
        return "peeked"

    model = ScriptedModel([call("peek", {}), "done"])
    agent = Agent(model, tools=[peek], time_limit=20, max_total_tokens=5_000)
    result = drive(agent, driver, "Go").result
    ((time_left, tokens_left),) = seen
    assert time_left is not None
    assert 15 < time_left <= 20
    assert tokens_left == 5_000 - result.turns[0].response.usage.total_tokens  # type: ignore[union-attr]
    unbounded = Agent(ScriptedModel([call("peek", {}), "done"]), tools=[peek])
    drive(unbounded, driver, "Go")
    assert seen[-1] == (None, None)
    assert RunContext(deps=None).time_left is None
