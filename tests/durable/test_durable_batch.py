"""A batch as durable workflows on a queue, submitter and worker in one process here (the
multi-process, multi-worker cases are in test_durable_batch_workers.py): every task ends as
one record shaped as on one machine, a job resubmitted pays for nothing twice, a failed task
is a record, a budget cancels what has not started, a worker with another agent refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sfagent import Agent, RunContext, tool
from sfagent.batch import Price, PriceTable, RateLimits
from sfagent.batch._journal import ConfigMismatchError
from sfagent.durable import (
    DurableAgent,
    DurableBatch,
    DurableRunError,
    batch_queue,
    launch,
    shutdown as shutdown_dbos,
)
from sfagent.durable._batch import _worker_agent
from sfagent.exceptions import UserError
from sfagent.offline import OfflineModel, Reply
from sfagent.settings import ChatRequest
from sfagent.testing import ScriptedToolCall

from .conftest import FAST_POLL

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

NAME = "batcher"
RECORD_KEYS = {
    "id", "status", "output", "error_type", "error_message", "turns", "usage", "cost",
    "currency", "attempt", "latency", "started_at", "finished_at",
}  # fmt: skip

calls: list[str] = []


@tool
def lookup(city: str, ctx: RunContext[Any]) -> str:
    """The weather in a city."""
    calls.append(str(ctx.idempotency_key))
    return f"sunny in {city}"


class Weather(OfflineModel):
    """Looks the task's city up once, then answers (a city in `fail` gets a 400)."""

    model_name = "test/model"

    def __init__(self, fail: str | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.sent = 0

    def reply_for(self, request: ChatRequest) -> Reply:
        self.sent += 1
        messages = [m if isinstance(m, dict) else m.to_wire() for m in request.messages]
        city = next(m["content"] for m in messages if m["role"] == "user")
        if self.fail is not None and self.fail in city:
            return Reply.error(400, {"code": 20015, "message": f"bad city {city}", "data": None})
        if messages[-1]["role"] == "tool":
            return Reply(text=f"done: {messages[-1]['content']}")
        return Reply(tool_calls=[ScriptedToolCall("lookup", {"city": city}, id="c1")])


@pytest.fixture
async def worker_db(db_url: str) -> AsyncIterator[str]:
    """DBOS launched here as submitter and as a worker on the batch queue."""
    launch(db_url, executor_id="tests", queues=[batch_queue(NAME)], **FAST_POLL)
    try:
        yield db_url
    finally:
        shutdown_dbos()


def rows(*cities: str) -> list[dict[str, str]]:
    return [{"id": city.lower().replace(" ", "-"), "prompt": city} for city in cities]


async def collect(batch: DurableBatch, tasks: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [record async for record in batch.run(tasks, **kwargs)]


def batch_of(model: Weather, **kwargs: Any) -> DurableBatch:
    durable = DurableAgent(Agent(model, tools=[lookup]), name=NAME, replace=True)
    kwargs.setdefault("poll_interval", 0.05)
    return DurableBatch(durable, **kwargs)


async def test_every_task_ends_as_one_record_like_on_one_machine(worker_db: str) -> None:
    calls.clear()
    model = Weather()
    batch = batch_of(model, job_id="cities", concurrency=4)
    records = await collect(batch, rows("Paris", "Oslo", "Lhasa"))
    assert sorted(r["id"] for r in records) == ["lhasa", "oslo", "paris"]
    by_id = {r["id"]: r for r in records}
    assert by_id["oslo"]["output"] == "done: sunny in Oslo"
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert record["status"] == "done"
        assert record["turns"] == 2
        assert record["usage"]["requests"] == 2
    assert sorted(calls) == [
        "lhasa/c1",
        "oslo/c1",
        "paris/c1",
    ]  # the task id in each idempotency key
    assert batch.summary is not None
    assert (batch.summary.done, batch.summary.failed, batch.summary.resumed) == (3, 0, 0)


async def test_a_job_submitted_again_is_refused_and_resumed_pays_nothing_twice(
    worker_db: str,
) -> None:
    model = Weather()
    first = await collect(batch_of(model, job_id="again"), rows("Paris", "Oslo"))
    sent = model.sent
    with pytest.raises(ConfigMismatchError, match="submitted before"):
        await collect(batch_of(model, job_id="again"), rows("Paris", "Oslo"))
    resumed = batch_of(model, job_id="again")
    again = await collect(resumed, rows("Paris", "Oslo", "Rome"), resume=True)
    assert sorted(r["id"] for r in again) == ["oslo", "paris", "rome"]
    assert {r["id"]: r["output"] for r in again if r["id"] != "rome"} == {
        r["id"]: r["output"] for r in first
    }
    assert model.sent == sent + 2  # only Rome's two requests
    assert resumed.summary is not None
    assert resumed.summary.resumed == 2
    with pytest.raises(ConfigMismatchError, match="no job"):
        await collect(batch_of(model, job_id="never"), rows("x"), resume=True)


async def test_a_failed_task_is_a_record_with_its_error(worker_db: str) -> None:
    batch = batch_of(Weather(fail="boom"), job_id="fails")
    records = {r["id"]: r for r in await collect(batch, rows("Paris", "boom town"))}
    assert records["paris"]["status"] == "done"
    assert records["boom-town"]["status"] == "failed"
    assert records["boom-town"]["error_type"]
    assert "bad city" in str(records["boom-town"]["error_message"])
    assert batch.summary is not None
    assert (batch.summary.done, batch.summary.failed) == (1, 1)


async def test_the_budget_cancels_tasks_not_started(worker_db: str) -> None:
    model = Weather()
    prices = PriceTable({model.model_name: Price(1, 2)})
    batch = batch_of(model, job_id="budget", concurrency=1, prices=prices, budget="0.0000001")
    records = await collect(batch, rows(*(f"city {i}" for i in range(8))))
    assert batch.summary is not None
    assert batch.summary.not_started >= 1  # cancelled on the queue once the budget was spent
    assert len(records) + batch.summary.not_started == 8
    assert all(r["cost"] is not None for r in records)


async def test_a_worker_with_another_agent_refuses_the_task() -> None:
    durable = DurableAgent(Agent(Weather(), tools=[lookup]), name="other", replace=True)
    spec = {"fingerprint": {"model": durable.agent.model_name, "tools": ["lookup", "extra"]}}
    with pytest.raises(DurableRunError, match="same agent"):
        _worker_agent(durable, spec)


async def test_bad_settings_are_refused() -> None:
    durable = DurableAgent(Agent(Weather(), tools=[lookup]), name="bad", replace=True)
    with pytest.raises(UserError, match="concurrency"):
        DurableBatch(durable, concurrency=0)
    with pytest.raises(UserError, match="job id"):
        DurableBatch(durable, job_id="a/b")
    with pytest.raises(UserError, match="poll_interval"):
        DurableBatch(durable, poll_interval=0)
    assert DurableBatch(durable, limits=RateLimits(rpm=10)).queue == "sfagent-batch:bad"
    await asyncio.sleep(0)
