"""A durable run in one process: its steps are DBOS steps, a finished run is answered from its
record, errors and limits behave as in a plain run, bad input is refused clearly."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from dbos import DBOS

from sfagent import Agent, RunContext, tool
from sfagent.durable import DurableAgent, DurableRunError
from sfagent.durable._dbos import WORKFLOW_NAME, _agent_run
from sfagent.exceptions import (
    AuthenticationError,
    BudgetExceeded,
    MaxTurnsExceeded,
    ModelRequestError,
    UserError,
)
from sfagent.testing import LoopbackServer, Reply, ScriptedModel, ScriptedToolCall

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

seen_keys: list[str] = []


@tool
def add(ctx: RunContext[Any], a: int, b: int) -> int:
    """Add two numbers."""
    seen_keys.append(str(ctx.idempotency_key))
    return a + b


def two_calls_then_answer() -> ScriptedModel:
    calls = [
        ScriptedToolCall("add", {"a": 1, "b": 2}, id="c1"),
        ScriptedToolCall("add", {"a": 3, "b": 4}, id="c2"),
    ]
    return ScriptedModel([Reply(tool_calls=calls), Reply(text="3 and 7")])


async def step_names(run_id: str) -> list[str]:
    return [step["function_name"] for step in await DBOS.list_workflow_steps_async(run_id)]


async def test_each_model_request_and_tool_call_is_a_step(dbos_db_url: str) -> None:
    model = two_calls_then_answer()
    durable = DurableAgent(Agent(model, tools=[add]), name="adder-steps", replace=True)
    seen_keys.clear()
    result = await durable.run("add them", run_id="run-steps")
    assert result.output == "3 and 7"
    assert await step_names("run-steps") == [
        "sfagent/started",
        "v1/turn-1/model",
        "v1/turn-1/call/c1",
        "v1/turn-1/call/c2",
        "v1/turn-2/model",
    ]
    assert sorted(seen_keys) == ["run-steps/c1", "run-steps/c2"]  # run in parallel
    status = await DBOS.get_workflow_status_async("run-steps")
    assert status is not None
    assert status.name == WORKFLOW_NAME


async def test_a_finished_run_is_answered_from_its_record(dbos_url: str) -> None:
    model = two_calls_then_answer()
    durable = DurableAgent(Agent(model, tools=[add]), name="adder-again")
    first = await durable.run("add them", run_id="run-again")
    again = await durable.run("add them", run_id="run-again")
    assert again.output == first.output
    assert again.messages == first.messages
    assert len(model.requests) == 2  # nothing was asked twice


async def test_a_started_run_hands_back_its_id_and_result(dbos_url: str) -> None:
    durable = DurableAgent(Agent(ScriptedModel(["hello"])), name="greeter")
    started = await durable.start("hi")
    assert started.run_id.startswith("greeter-")
    assert (await started.result()).output == "hello"
    assert await started.status() == "SUCCESS"


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


async def test_structured_output_comes_back_validated(dbos_url: str) -> None:
    model = ScriptedModel(['{"city": "Wuhan", "celsius": 31}'])
    durable = DurableAgent(Agent(model, output_type=Weather), name="weather-typed")
    result = await durable.run("weather?", run_id="run-typed")
    assert result.output == Weather(city="Wuhan", celsius=31)
    again = await durable.run("weather?", run_id="run-typed")
    assert again.output == result.output


async def test_a_run_that_hits_a_limit_raises_the_same_error_with_its_messages(
    dbos_url: str,
) -> None:
    call = ScriptedToolCall("add", {"a": 1, "b": 1}, id="c1")
    model = ScriptedModel([Reply(tool_calls=[call])] * 3)
    durable = DurableAgent(Agent(model, tools=[add], max_turns=2), name="looper")
    with pytest.raises(MaxTurnsExceeded) as caught:
        await durable.run("loop", run_id="run-limit")
    assert [m["role"] for m in caught.value.result.messages][-2:] == ["assistant", "tool"]
    with pytest.raises(MaxTurnsExceeded):  # the recorded error, not a new run
        await durable.run("loop", run_id="run-limit")
    assert len(model.requests) == 2


async def test_a_run_ended_by_an_api_error_raises_it_again_from_its_record(
    dbos_db_url: str,
) -> None:
    # The error a failed request ends a run with is made at run time (a ModelRequestError
    # and an AuthenticationError at once); DBOS must record it, and give the same one back.
    with LoopbackServer([Reply.error(401, {"code": 20001, "message": "bad key"})]) as server:
        agent = Agent("Qwen/Qwen3-8B", api_key="sk-durable-401", base_url=server.base_url)
        durable = DurableAgent(agent, name="refused", replace=True)
        try:
            with pytest.raises(AuthenticationError) as first:
                await durable.run("hi", run_id="run-401")
            with pytest.raises(AuthenticationError) as again:
                await durable.run("hi", run_id="run-401")
        finally:
            await agent.aclose()
    assert isinstance(first.value, ModelRequestError)
    assert type(again.value) is type(first.value)
    assert (again.value.status_code, again.value.code) == (401, 20001)
    assert len(server.requests) == 1  # the second answer came from the record


async def test_a_run_past_its_time_limit_sends_nothing() -> None:
    model = ScriptedModel(["too late"])
    agent = Agent(model, time_limit=5)
    with pytest.raises(BudgetExceeded) as caught:
        await agent.run("hi", elapsed=6.0)
    assert caught.value.budget == "time"
    assert not model.requests


async def test_a_run_of_an_agent_this_process_lacks_is_refused(dbos_url: str) -> None:
    spec = {"format": "v1", "agent": "ghost", "prompt": "hi", "messages": [], "deps": None}
    with pytest.raises(DurableRunError, match=r"'ghost'.*DurableAgent\(agent, name='ghost'\)"):
        await _agent_run(spec)


async def test_a_run_in_an_unknown_step_format_is_refused(dbos_url: str) -> None:
    DurableAgent(Agent(ScriptedModel(["x"])), name="future")
    spec = {"format": "v9", "agent": "future", "prompt": "hi", "messages": [], "deps": None}
    with pytest.raises(DurableRunError, match="step format 'v9'"):
        await _agent_run(spec)


async def test_deps_that_cannot_be_recorded_are_refused_before_anything_runs(
    dbos_url: str,
) -> None:
    model = ScriptedModel(["x"])
    durable = DurableAgent(Agent(model), name="with-deps")
    with pytest.raises(UserError, match="pickle"):
        await durable.run("hi", deps=lambda: None)
    assert not model.requests


def test_a_name_is_one_agent() -> None:
    DurableAgent(Agent(ScriptedModel(["x"])), name="taken")
    with pytest.raises(UserError, match="already registered"):
        DurableAgent(Agent(ScriptedModel(["y"])), name="taken")
    DurableAgent(Agent(ScriptedModel(["z"])), name="taken", replace=True)
    with pytest.raises(UserError, match="non-empty name"):
        DurableAgent(Agent(ScriptedModel(["x"])), name=" ")
