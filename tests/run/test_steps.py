"""The step seam: each model request and tool call of a run goes through `Steps`, replayable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sfagent import Agent, ModelRetry, RunContext, StopRun, tool
from sfagent.exceptions import UserError
from sfagent.steps import Steps, call_step_key, model_step_key
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall


class Recorder:
    """Steps kept in a dict: performs what it has no record of, replays the rest."""

    def __init__(self, records: dict[str, dict[str, Any]] | None = None) -> None:
        self.records = dict(records or {})
        self.performed: list[str] = []

    async def step(
        self, key: str, perform: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        if key in self.records:
            return self.records[key]
        value = await perform()
        json.dumps(value)  # a step's value must be JSON-ready
        self.performed.append(key)
        self.records[key] = value
        return value


class Refusing:
    """A model that must not be asked: every request is a test failure."""

    async def complete_async(self, request: Any, *, timeout: float | None = None) -> Any:
        raise AssertionError("a recorded model request was sent again")

    complete = stream = stream_async = complete_async


calls: list[tuple[str, Any]] = []


@tool
def lookup(city: str, ctx: RunContext[None]) -> str:
    """Weather for a city."""
    calls.append((city, ctx.idempotency_key))
    return f"sunny in {city}"


@tool
def flaky(n: int) -> str:
    """Fails for odd numbers."""
    if n % 2:
        raise ModelRetry(f"{n} is odd, try an even number")
    return f"ok {n}"


@tool
def finish(answer: str) -> str:
    """Ends the run."""
    raise StopRun({"answer": answer})


def script() -> list[Reply]:
    return [
        Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Paris"}, id="c1")]),
        Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Rome"}, id="c2")]),
        Reply(text="Paris and Rome are sunny."),
    ]


def run(agent: Agent[Any, Any], steps: Steps, run_id: str = "task-1") -> Any:
    return asyncio.run(agent.run("weather?", run_id=run_id, steps=steps))


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def test_every_step_goes_through_steps_under_stable_keys() -> None:
    steps = Recorder()
    result = run(Agent(ScriptedModel(script()), tools=[lookup]), steps)
    assert result.output == "Paris and Rome are sunny."
    assert steps.performed == [
        model_step_key(1),
        call_step_key(1, "c1"),
        model_step_key(2),
        call_step_key(2, "c2"),
        model_step_key(3),
    ]
    assert steps.records[call_step_key(1, "c1")]["content"] == "sunny in Paris"


def test_a_recorded_run_replays_without_the_model_or_the_tools() -> None:
    first = Recorder()
    original = run(Agent(ScriptedModel(script()), tools=[lookup]), first)
    calls.clear()
    replay = Recorder(first.records)
    again = run(Agent(Refusing(), tools=[lookup]), replay)  # type: ignore[arg-type]
    assert again.output == original.output
    assert again.messages == original.messages
    assert replay.performed == []
    assert calls == []


def test_a_resumed_run_performs_only_what_it_has_no_record_of() -> None:
    first = Recorder()
    run(Agent(ScriptedModel(script()), tools=[lookup]), first)
    kept = {k: v for k, v in first.records.items() if "turn-1/" in k}  # killed after turn 1
    calls.clear()
    model = ScriptedModel(script()[1:])
    resumed = Recorder(kept)
    result = run(Agent(model, tools=[lookup]), resumed)
    assert result.output == "Paris and Rome are sunny."
    assert len(model.requests) == 2  # turns 2 and 3 only
    assert calls == [("Rome", "task-1/c2")]  # Paris was not looked up again
    assert resumed.performed == [model_step_key(2), call_step_key(2, "c2"), model_step_key(3)]


def test_tools_see_a_stable_idempotency_key() -> None:
    run(Agent(ScriptedModel(script()), tools=[lookup]), Recorder(), run_id="job-7")
    assert calls == [("Paris", "job-7/c1"), ("Rome", "job-7/c2")]


def test_without_a_run_id_there_is_no_idempotency_key() -> None:
    asyncio.run(Agent(ScriptedModel(script()), tools=[lookup]).run("weather?"))
    assert [key for _, key in calls] == [None, None]


def test_a_failed_call_replays_with_the_same_message_and_counts_against_retries() -> None:
    replies = [
        Reply(tool_calls=[ScriptedToolCall("flaky", {"n": 1}, id="f1")]),
        Reply(tool_calls=[ScriptedToolCall("flaky", {"n": 2}, id="f2")]),
        Reply(text="done"),
    ]
    first = Recorder()
    original = run(Agent(ScriptedModel(replies), tools=[flaky]), first)
    assert first.records[call_step_key(1, "f1")]["error"] == "1 is odd, try an even number"
    again = run(Agent(Refusing(), tools=[flaky]), Recorder(first.records))  # type: ignore[arg-type]
    assert again.messages == original.messages
    assert again.turns[0].tool_calls[0].error == original.turns[0].tool_calls[0].error


def test_a_tool_that_stopped_the_run_stops_the_replay_too() -> None:
    replies = [Reply(tool_calls=[ScriptedToolCall("finish", {"answer": "42"}, id="s1")])]
    first = Recorder()
    original = run(Agent(ScriptedModel(replies), tools=[finish]), first)
    assert original.output == {"answer": "42"}
    again = run(Agent(Refusing(), tools=[finish]), Recorder(first.records))  # type: ignore[arg-type]
    assert again.output == {"answer": "42"}


def test_a_denied_approval_is_replayed_without_asking_again() -> None:
    asked: list[str] = []

    @tool(requires_approval=True)
    def pay(amount: int) -> str:
        """Pays."""
        return "paid"

    def approve(request: Any) -> bool:
        asked.append(request.call_id)
        return False

    replies = [
        Reply(tool_calls=[ScriptedToolCall("pay", {"amount": 5}, id="p1")]),
        Reply(text="not paid"),
    ]
    first = Recorder()
    original = run(Agent(ScriptedModel(replies), tools=[pay], approve=approve), first)
    assert asked == ["p1"]
    again = run(Agent(Refusing(), tools=[pay], approve=approve), Recorder(first.records))  # type: ignore[arg-type]
    assert asked == ["p1"]
    assert again.messages == original.messages
    assert again.usage.tool_calls == original.usage.tool_calls == 0


def test_steps_must_be_a_steps() -> None:
    agent = Agent(ScriptedModel([Reply(text="hi")]))
    with pytest.raises(UserError, match="steps must be a Steps"):
        asyncio.run(agent.run("hi", steps=object()))  # type: ignore[arg-type]
