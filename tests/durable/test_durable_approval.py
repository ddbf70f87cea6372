"""A tool that needs approval in a durable run: the run parks until `approve` answers from
anywhere (here another thread, in the kill test another process), a denial reaches the model,
and an agent's own approval callback is recorded instead of asked again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dbos import DBOS

from sfagent import Agent, tool
from sfagent.context import ApprovalRequest
from sfagent.durable import (
    DurableAgent,
    DurableRunError,
    approve,
    pending_approval,
    wait_for_approval,
)
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

deleted: list[str] = []


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    deleted.append(path)
    return f"deleted {path}"


def asks_to_delete() -> ScriptedModel:
    call = ScriptedToolCall("delete_file", {"path": "/tmp/old.log"}, id="del-1")
    return ScriptedModel([Reply(tool_calls=[call]), lambda request: Reply(text=_last(request))])


def _last(request: Any) -> str:
    return f"tool said: {request.messages[-1].content}"


async def pending_of(run_id: str, url: str) -> Any:
    return await asyncio.to_thread(pending_approval, run_id, database_url=url, wait=20)


async def test_the_run_waits_for_an_approval_and_goes_on_with_it(dbos_db_url: str) -> None:
    dbos_url = dbos_db_url
    deleted.clear()
    durable = DurableAgent(
        Agent(asks_to_delete(), tools=[delete_file], approve=wait_for_approval),
        name="cleaner-yes",
        replace=True,  # once per backend
    )
    started = await durable.start("clean up", run_id="run-approve")
    pending = await pending_of("run-approve", dbos_url)
    assert (pending.call_id, pending.tool) == ("del-1", "delete_file")
    assert pending.arguments == '{"path": "/tmp/old.log"}'
    assert not deleted
    answered = await asyncio.to_thread(
        approve, "run-approve", call_id="del-1", database_url=dbos_url, by="alice"
    )
    assert answered == pending
    result = await started.result()
    assert result.output == "tool said: deleted /tmp/old.log"
    assert deleted == ["/tmp/old.log"]
    assert await asyncio.to_thread(pending_approval, "run-approve", database_url=dbos_url) is None
    steps = [s["function_name"] for s in await DBOS.list_workflow_steps_async("run-approve")]
    assert steps[2:5] == ["DBOS.setEvent", "DBOS.recv", "DBOS.sleep"]


async def test_a_denial_reaches_the_model_and_the_tool_never_runs(dbos_url: str) -> None:
    deleted.clear()
    durable = DurableAgent(
        Agent(asks_to_delete(), tools=[delete_file], approve=wait_for_approval), name="cleaner-no"
    )
    started = await durable.start("clean up", run_id="run-deny")
    await pending_of("run-deny", dbos_url)
    await asyncio.to_thread(approve, "run-deny", approved=False, database_url=dbos_url)
    result = await started.result()
    assert "did not approve" in str(result.output)
    assert not deleted


async def test_no_answer_in_time_is_a_denial(dbos_url: str) -> None:
    deleted.clear()
    agent = Agent(asks_to_delete(), tools=[delete_file], approve=wait_for_approval)
    durable = DurableAgent(agent, name="cleaner-late", approval_timeout=0.2)
    result = await durable.run("clean up", run_id="run-late")
    assert "did not approve" in str(result.output)
    assert not deleted


async def test_an_agents_own_callback_is_recorded_as_a_step(dbos_url: str) -> None:
    deleted.clear()
    asked: list[ApprovalRequest] = []

    def yes(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    agent = Agent(asks_to_delete(), tools=[delete_file], approve=yes)
    durable = DurableAgent(agent, name="cleaner-callback")
    result = await durable.run("clean up", run_id="run-callback")
    assert result.output == "tool said: deleted /tmp/old.log"
    assert [r.call_id for r in asked] == ["del-1"]
    steps = [s["function_name"] for s in await DBOS.list_workflow_steps_async("run-callback")]
    assert "v1/turn-1/approval/del-1" in steps


async def test_approving_a_run_that_waits_for_nothing_is_refused(dbos_url: str) -> None:
    durable = DurableAgent(Agent(ScriptedModel(["done"])), name="no-tools")
    await durable.run("hi", run_id="run-plain")
    with pytest.raises(DurableRunError, match="not waiting for an approval"):
        await asyncio.to_thread(approve, "run-plain", database_url=dbos_url)


async def test_approving_another_call_than_the_pending_one_is_refused(dbos_url: str) -> None:
    deleted.clear()
    durable = DurableAgent(
        Agent(asks_to_delete(), tools=[delete_file], approve=wait_for_approval),
        name="cleaner-which",
    )
    started = await durable.start("clean up", run_id="run-which")
    await pending_of("run-which", dbos_url)
    with pytest.raises(DurableRunError, match=r"'del-1'.*not 'del-9'"):
        await asyncio.to_thread(approve, "run-which", call_id="del-9", database_url=dbos_url)
    await asyncio.to_thread(approve, "run-which", database_url=dbos_url)
    await started.result()
    assert deleted == ["/tmp/old.log"]


def test_outside_a_durable_run_waiting_for_approval_fails_the_call() -> None:
    deleted.clear()
    agent = Agent(asks_to_delete(), tools=[delete_file], approve=wait_for_approval)
    result = agent.run_sync("clean up")
    assert "only a durable run can wait for" in str(result.output)
    assert not deleted
