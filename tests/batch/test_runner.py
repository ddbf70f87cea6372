"""`BatchRunner`: every task once, journaled and resumable, under limits and a budget."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sfagent import Agent, RunContext, tool
from sfagent.batch import (
    ConfigMismatchError,
    EstimateTooLargeError,
    Price,
    PriceTable,
    RateLimiter,
    RateLimits,
    TemplateFieldError,
    estimate_tokens,
    load_tasks,
)
from sfagent.batch.runner import BatchRunner
from sfagent.exceptions import RateLimitError, UserError
from sfagent.offline import OfflineModel, Reply, ScriptedToolCall
from sfagent.settings import ChatRequest, ModelSettings

MODEL = "test/model"
PRICES = PriceTable({MODEL: Price(1, 2)})  # CNY per million input / output tokens


class Weather(OfflineModel):
    """Looks the prompt's city up `rounds` times, then answers; counts requests per turn."""

    model_name = MODEL

    def __init__(self, rounds: int = 2, *, fail: set[str] = frozenset(), limited: int = 0) -> None:
        super().__init__()
        self.rounds = rounds
        self.fail = fail
        self.limited = limited
        self.seen: Counter[tuple[str, int]] = Counter()

    def reply_for(self, request: ChatRequest) -> Reply:
        messages = [m if isinstance(m, dict) else m.to_wire() for m in request.messages]
        city = next(m["content"] for m in messages if m["role"] == "user")
        done = sum(1 for m in messages if m["role"] == "tool")
        self.seen[(city, done)] += 1
        if self.limited:
            self.limited -= 1
            raise RateLimitError("TPM limit reached.", status_code=429)
        if city in self.fail:
            return Reply.error(400, {"code": 20015, "message": f"bad city {city}", "data": None})
        if done < self.rounds:
            call = ScriptedToolCall("lookup", {"city": city, "day": done}, id=f"c{done}")
            return Reply(tool_calls=[call])
        return Reply(text=f"sunny in {city}")


looked_up: list[tuple[str, str | None]] = []


@tool
def lookup(city: str, day: int, ctx: RunContext[None]) -> str:
    """Weather for a city on a day."""
    looked_up.append((city, ctx.idempotency_key))
    return f"{city} day {day}: sunny"


@pytest.fixture(autouse=True)
def _reset() -> None:
    looked_up.clear()


def cities(n: int) -> list[str]:
    return [f"city{i:03d}" for i in range(n)]


def collect(runner: BatchRunner, tasks: Any, **kwargs: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        return [record async for record in runner.run(tasks, **kwargs)]

    return asyncio.run(go())


def test_every_task_ends_as_one_record() -> None:
    model = Weather()
    runner = BatchRunner(Agent(model, tools=[lookup]), concurrency=8, prices=PRICES)
    records = collect(runner, cities(30))
    assert sorted(r["output"] for r in records) == sorted(f"sunny in {c}" for c in cities(30))
    assert {r["status"] for r in records} == {"done"}
    assert len({r["id"] for r in records}) == 30
    first = records[0]
    assert first["turns"] == 3
    assert first["usage"]["requests"] == 3
    assert first["usage"]["tool_calls"] == 2
    tokens = first["usage"]
    expected = Decimal(tokens["prompt_tokens"]) * 1 + Decimal(tokens["completion_tokens"]) * 2
    assert Decimal(first["cost"]) == expected / 1_000_000
    assert first["currency"] == "CNY"
    assert first["latency"] >= 0
    assert first["finished_at"] >= first["started_at"]
    json.dumps(records)  # a results file takes them as they are
    summary = runner.summary
    assert summary is not None
    assert (summary.done, summary.failed) == (30, 0)
    assert summary.cost == sum(Decimal(r["cost"]) for r in records)


def test_a_failed_task_is_a_record_with_its_error() -> None:
    runner = BatchRunner(Agent(Weather(fail={"city001"}), tools=[lookup]), prices=None)
    records = {r["id"]: r for r in collect(runner, cities(3))}
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error_type"] == "ModelRequestError[BadRequestError]"
    assert "bad city city001" in failed[0]["error_message"]
    assert failed[0]["cost"] is None
    assert failed[0]["output"] is None


def test_tools_get_the_task_id_in_their_idempotency_key() -> None:
    tasks = load_tasks([{"id": "t-1", "prompt": "Paris"}])
    collect(BatchRunner(Agent(Weather(), tools=[lookup])), tasks)
    assert looked_up == [("Paris", "t-1/c0"), ("Paris", "t-1/c1")]


def test_transcripts_when_asked(tmp_path: Path) -> None:
    runner = BatchRunner(Agent(Weather(rounds=0)), transcripts=True)
    (record,) = collect(runner, ["Oslo"])
    assert [m["role"] for m in record["transcript"]] == ["user", "assistant"]


def test_a_resumed_batch_yields_each_task_once_and_pays_nothing_twice(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    model = Weather()
    runner = BatchRunner(Agent(model, tools=[lookup]), concurrency=4, journal=journal)

    async def stop_after(n: int) -> list[dict[str, Any]]:
        got = []
        async for record in runner.run(cities(40)):
            got.append(record)
            if len(got) == n:
                break  # as if the process died: runs in flight are cancelled mid-way
        return got

    first = asyncio.run(stop_after(10))
    interrupted_requests = sum(model.seen.values())
    resumed = collect(runner, cities(40), resume=True)
    assert [r["id"] for r in resumed[:10]] == [r["id"] for r in first]  # earlier records first
    assert sorted(r["id"] for r in resumed) == sorted({r["id"] for r in resumed})
    assert len(resumed) == 40
    # Every request whose answer was recorded was answered from the journal: a repeat is only
    # one that was in flight when the first start was cut short (at most `concurrency`).
    repeats = sum(n - 1 for n in model.seen.values() if n > 1)
    assert repeats <= 4
    assert sum(model.seen.values()) - interrupted_requests <= 40 * 3 - 10 * 3 + 4
    # A task can finish (journaled) between the last record handed out and the stop: it is
    # among the earlier ones now, so a results file rewritten from the journal still has it.
    assert runner.summary is not None
    assert runner.summary.resumed >= 10


class Hanging(Weather):
    """Weather whose second request for `city` never answers (until the batch is stopped)."""

    def __init__(self, city: str) -> None:
        super().__init__()
        self.city = city

    async def complete_async(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        messages = [m if isinstance(m, dict) else m.to_wire() for m in request.messages]
        city = next(m["content"] for m in messages if m["role"] == "user")
        if city == self.city and any(m["role"] == "tool" for m in messages):
            await asyncio.Event().wait()
        return await super().complete_async(request, timeout=timeout)


def test_an_interrupted_task_replays_its_recorded_steps(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    hanging = Hanging("slow")

    async def until_fast_is_done() -> None:
        runner = BatchRunner(Agent(hanging, tools=[lookup]), concurrency=2, journal=journal)
        async for record in runner.run(["slow", "fast"]):
            assert record["id"]
            assert record["output"] == "sunny in fast"
            break  # "slow" is cut short, waiting for its second answer

    asyncio.run(until_fast_is_done())
    slow_lookups = [key for city, key in looked_up if city == "slow"]
    assert len(slow_lookups) == 1  # its first call ran before the stop
    model = Weather()
    runner = BatchRunner(Agent(model, tools=[lookup]), concurrency=2, journal=journal)
    records = collect(runner, ["slow", "fast"], resume=True)
    assert sorted(r["output"] for r in records) == ["sunny in fast", "sunny in slow"]
    assert model.seen[("slow", 0)] == 0  # its first answer came from the journal
    assert model.seen[("fast", 0)] == 0  # finished before: not run again
    assert [key for city, key in looked_up if city == "slow"] == [
        *slow_lookups,
        slow_lookups[0].replace("c0", "c1"),
    ]
    assert runner.summary is not None
    assert runner.summary.replayed_steps == 2  # turn 1's answer and its call


def test_resuming_needs_a_journal_and_the_same_batch(tmp_path: Path) -> None:
    agent = Agent(Weather(), tools=[lookup])
    with pytest.raises(UserError, match="needs a journal"):
        collect(BatchRunner(agent), ["x"], resume=True)
    journal = tmp_path / "j.sqlite"
    collect(BatchRunner(agent, journal=journal), ["x"])
    other = Agent(Weather(), tools=[])  # other tools: another batch
    with pytest.raises(UserError, match="tools"):
        collect(BatchRunner(other, journal=journal), ["x"], resume=True)


def test_the_budget_stops_new_tasks() -> None:
    runner = BatchRunner(
        Agent(Weather(), tools=[lookup]), concurrency=1, prices=PRICES, budget="0.0000001"
    )
    records = collect(runner, cities(10))
    assert len(records) == 1  # the first task spent the budget; no other started
    assert runner.summary is not None
    assert runner.summary.not_started == 9


def test_requests_go_through_the_limiter_and_a_429_waits_its_turn_again() -> None:
    model = Weather(rounds=0, limited=1)
    runner = BatchRunner(Agent(model), limits=RateLimits(rpm=10_000, tpm=10_000_000))
    (record,) = collect(runner, ["Lima"])
    assert record["status"] == "done"
    assert model.seen[("Lima", 0)] == 2  # refused once, then answered
    assert sum(b["requests"] for b in runner.timeline.buckets()) == 2
    assert runner.limiter is not None
    assert runner.limiter.stats().requests == 2


def test_run_sync_blocks_and_yields_records() -> None:
    runner = BatchRunner(Agent(Weather(rounds=1), tools=[lookup]), concurrency=3)
    records = list(runner.run_sync(cities(5)))
    assert len(records) == 5


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(UserError, match="concurrency"):
        BatchRunner(Agent(Weather()), concurrency=0)


# --- the timeline without limits -------------------------------------------------------------


def test_without_limits_there_is_no_limiter_but_the_timeline_counts_every_request() -> None:
    runner = BatchRunner(Agent(Weather(rounds=1), tools=[lookup]), concurrency=3)
    records = collect(runner, cities(4))
    assert runner.limiter is None
    buckets = runner.timeline.buckets()
    assert sum(b["requests"] for b in buckets) == 8 == sum(r["usage"]["requests"] for r in records)
    assert sum(b["tokens"] for b in buckets) == sum(r["usage"]["total_tokens"] for r in records)


class NoUsage(Weather):
    """Weather whose answers say nothing of the tokens they used."""

    async def complete_async(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        response = await super().complete_async(request, timeout=timeout)
        return response.model_copy(update={"usage": None})


def test_an_answer_without_usage_is_tallied_at_its_estimate() -> None:
    runner = BatchRunner(Agent(NoUsage(rounds=0)))
    (record,) = collect(runner, ["Oslo"])
    assert record["status"] == "done"
    (bucket,) = runner.timeline.buckets()
    body = ChatRequest([{"role": "user", "content": "Oslo"}], model=MODEL).to_body()
    assert (bucket["requests"], bucket["tokens"]) == (1, estimate_tokens(body))


def test_an_http_model_keeps_its_429_retries_unless_a_limiter_takes_them() -> None:
    from sfagent.client.http_model import HTTPModel
    from sfagent.client.retry import RETRYABLE_STATUSES

    def retries_429(runner: BatchRunner) -> bool:
        model = runner._agent.model.model  # inside the LimitedModel
        assert isinstance(model, HTTPModel)
        policy = model._options.get("retry")
        return 429 in (RETRYABLE_STATUSES if policy is None else policy.retry_statuses)

    agent = Agent(MODEL, api_key="sk-runner-test-0123456789")
    assert retries_429(BatchRunner(agent))  # nothing else would retry a 429
    assert not retries_429(BatchRunner(agent, limits=RateLimits(rpm=100)))
    assert BatchRunner(agent)._agent.model_name == MODEL


# --- a batch that fails before its first task ------------------------------------------------


def test_a_bad_first_row_leaves_no_journal_behind(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    rows = [{"id": "a", "city": "Paris"}, {"id": "b", "city": "Oslo"}]
    runner = BatchRunner(Agent(Weather(rounds=0)), journal=journal)
    with pytest.raises(TemplateFieldError, match="'town'"):
        collect(runner, load_tasks(rows, template="Weather in {town}"))
    assert runner.summary is None  # it never started
    assert not journal.exists()
    records = collect(runner, load_tasks(rows, template="{city}"))  # the fix: a first start
    assert sorted(r["output"] for r in records) == ["sunny in Oslo", "sunny in Paris"]


def test_a_bad_later_row_after_tasks_started_keeps_the_journal_to_resume(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    rows: list[dict[str, Any]] = [{"id": "a", "city": "Paris"}, {"id": "b"}]
    runner = BatchRunner(Agent(Weather(rounds=0)), journal=journal, concurrency=1)
    with pytest.raises(TemplateFieldError, match="'city'"):
        collect(runner, load_tasks(rows, template="{city}"))
    with pytest.raises(ConfigMismatchError, match="already holds job"):
        collect(runner, load_tasks(rows, template="{city}"))
    rows[1]["city"] = "Oslo"
    records = collect(runner, load_tasks(rows, template="{city}"), resume=True)
    assert sorted(r["id"] for r in records) == ["a", "b"]


def test_resuming_with_another_template_is_refused_unless_forced(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    rows = [{"id": "a", "city": "Paris"}]
    runner = BatchRunner(Agent(Weather(rounds=0)), journal=journal)
    collect(runner, load_tasks(rows, template="{city}"))
    with pytest.raises(ConfigMismatchError, match="template"):
        collect(runner, load_tasks(rows, template="City: {city}"), resume=True)
    (record,) = collect(runner, load_tasks(rows, template="City: {city}"), resume=True, force=True)
    assert record["output"] == "sunny in Paris"  # finished before: its record, not a new run


# --- token limits a request cannot fit under -------------------------------------------------


def test_limits_no_request_could_fit_under_are_refused_when_the_runner_is_made() -> None:
    agent = Agent(Weather(), settings=ModelSettings(max_tokens=4096))
    with pytest.raises(EstimateTooLargeError, match="~4096 tokens or more") as caught:
        BatchRunner(agent, limits=RateLimits(tpm=4000))
    assert (caught.value.estimate, caught.value.limit, caught.value.limit_name) == (
        4096,
        4000,
        "TPM",
    )
    shared = RateLimiter(RateLimits(tpd=1000))
    with pytest.raises(EstimateTooLargeError, match="but TPD is 1000"):
        BatchRunner(agent, limiter=shared)
    with pytest.raises(EstimateTooLargeError, match="server's default of 512"):
        BatchRunner(Agent(Weather()), limits=RateLimits(tpm=500))
    BatchRunner(agent, limits=RateLimits(tpm=4096))  # the prompt may still fit


def test_a_request_above_tpm_fails_its_task_only_without_being_sent() -> None:
    model = Weather(rounds=0)
    agent = Agent(model, settings=ModelSettings(max_tokens=100))
    runner = BatchRunner(agent, limits=RateLimits(tpm=300), concurrency=2)
    long = "x" * 900  # ~300 tokens of prompt, plus the 100 of max_tokens
    records = {r["id"]: r for r in collect(runner, [{"id": "long", "prompt": long}, "Lima"])}
    failed = records["long"]
    assert failed["status"] == "failed"
    assert failed["error_type"] == "EstimateTooLargeError"
    assert re.fullmatch(
        r"a request needs ~\d+ tokens \(its prompt plus max_tokens\) but TPM is 300: it can "
        r"never be sent; raise the TPM limit, lower max_tokens or shorten the prompt",
        failed["error_message"],
    )
    assert failed["usage"]["requests"] == 0
    (other,) = [r for task_id, r in records.items() if task_id != "long"]
    assert other["status"] == "done"
    assert model.seen[(long, 0)] == 0  # never sent
