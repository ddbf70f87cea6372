"""`--via batch-api`: single-turn tasks through the batch API emulation, journaled, resumable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest

from sfagent import Agent, tool
from sfagent.batch import Price, PriceTable, SQLiteJournal, _via_batch_api as via
from sfagent.batch._via_batch_api import (
    BatchAPIRunner,
    NotBatchableError,
    run_via_batch_api,
)
from sfagent.client.batch_api import AsyncBatchAPI, Batch
from sfagent.exceptions import UserError
from sfagent.offline import OfflineModel
from sfagent.settings import ChatRequest, ModelSettings
from sfagent.testing.batch_server import BatchServer
from sfagent.testing.server import Reply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "sk-batchtestkey0123456789abcdef"
MODEL = "Qwen/Qwen3-8B"
PRICES = PriceTable({MODEL: Price(1, 2)})  # CNY per million input / output tokens
TASKS = [{"id": "a", "prompt": "one"}, {"id": "b", "prompt": "two"}, {"id": "c", "prompt": "three"}]
RECORD_KEYS = {
    "id", "status", "output", "error_type", "error_message", "turns", "usage", "cost",
    "currency", "attempt", "latency", "started_at", "finished_at",
}  # fmt: skip


class Crash(Exception):
    """Stands for the process being killed."""


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with BatchServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture
async def api(server: BatchServer) -> AsyncIterator[AsyncBatchAPI]:
    async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as client:
        yield client


def agent(server: BatchServer, **options: Any) -> Agent[Any, Any]:
    return Agent(MODEL, api_key=KEY, base_url=server.base_url, **options)


def runner(server: BatchServer, api: AsyncBatchAPI, **options: Any) -> BatchAPIRunner:
    options.setdefault("prices", PRICES)
    options.setdefault("poll_interval", 0.0)
    return BatchAPIRunner(agent(server), api=api, **options)


async def collect(run: BatchAPIRunner, tasks: Any = TASKS, **kwargs: Any) -> list[dict[str, Any]]:
    return [record async for record in run.run(tasks, **kwargs)]


def answered(server: BatchServer) -> dict[str, dict[str, Any]]:
    """The emulation's answer lines (output files), by custom_id."""
    lines: dict[str, dict[str, Any]] = {}
    for created in server.requests:
        if created.method == "GET" and created.path.startswith("/v1/batches/"):
            batch = server.batch(created.path.rsplit("/", 1)[1])
            if batch["output_file_id"]:
                for line in server.file_text(batch["output_file_id"]).splitlines():
                    data = json.loads(line)
                    lines[data["custom_id"]] = data
    return lines


def uploaded_lines(server: BatchServer) -> list[dict[str, Any]]:
    return [json.loads(line) for f in server.uploads for line in server.file_text(f).splitlines()]


# --- the whole flow ------------------------------------------------------------------------------


async def test_whole_flow_maps_answers_back_by_custom_id(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    run = runner(server, api, journal=tmp_path / "j.sqlite")
    records = await collect(run)
    assert [r["id"] for r in records] == ["a", "b", "c"]
    lines = answered(server)
    for record, prompt in zip(records, ["one", "two", "three"], strict=True):
        assert set(record) == RECORD_KEYS
        assert record["status"] == "done"
        assert record["output"] == f"Answer to: {prompt}"
        assert record["turns"] == 1
        usage = lines[record["id"]]["response"]["body"]["usage"]
        assert record["usage"]["prompt_tokens"] == usage["prompt_tokens"]
        assert record["usage"]["completion_tokens"] == usage["completion_tokens"]
        assert record["usage"]["requests"] == 1
        assert record["attempt"] == 1
        assert record["finished_at"] >= record["started_at"]
    assert (len(server.uploads), len(server.created)) == (1, 1)
    assert run.summary is not None
    assert (run.summary.done, run.summary.failed, run.summary.resumed) == (3, 0, 0)
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        assert [r.result for r in journal.results()] == records
        assert journal.summary().done == 3


async def test_cost_uses_the_batch_discount(server: BatchServer, api: AsyncBatchAPI) -> None:
    run = runner(server, api)
    records = await collect(run)
    price = PRICES[MODEL]
    for record in records:
        usage = record["usage"]
        online = price.cost(usage["prompt_tokens"], usage["completion_tokens"])
        assert Decimal(record["cost"]) == online / 2
        assert record["currency"] == "CNY"
    assert run.summary is not None
    assert run.summary.cost == sum(Decimal(r["cost"]) for r in records)


class Recording(OfflineModel):
    """Answers online, keeping each request's body (what `Agent.run` sends)."""

    model_name = MODEL

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []

    def reply_for(self, request: ChatRequest) -> Reply:
        self.bodies.append(request.to_body())
        return Reply(text="online")


async def test_each_request_is_the_one_agent_run_sends(
    server: BatchServer, api: AsyncBatchAPI
) -> None:
    model = Recording()
    same = Agent(model, instructions="Be brief.", settings=ModelSettings(temperature=0.3))
    await same.run("one")
    await collect(BatchAPIRunner(same, api=api, poll_interval=0), [{"id": "a", "prompt": "one"}])
    [line] = uploaded_lines(server)
    assert line["body"] == model.bodies[0]
    assert line["body"]["model"] == MODEL
    assert line["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
    ]
    assert line["body"]["temperature"] == 0.3
    assert len(model.bodies) == 1  # the batch path never calls the agent's model


async def test_error_file_lines_become_failed_records(api: AsyncBatchAPI) -> None:
    def responder(custom_id: str, body: dict[str, Any]) -> Reply:
        if custom_id == "b":
            return Reply.error(400, {"code": 20015, "message": "context too long", "data": None})
        return Reply(text="fine")

    with BatchServer(api_key=KEY, responder=responder) as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as client:
            run = runner(server, client)
            records = {r["id"]: r for r in await collect(run)}
    assert records["a"]["status"] == records["c"]["status"] == "done"
    failed = records["b"]
    assert failed["status"] == "failed"
    assert "BadRequestError" in failed["error_type"]
    assert "context too long" in failed["error_message"]
    assert failed["output"] is None
    assert run.summary is not None
    assert (run.summary.done, run.summary.failed) == (2, 1)


async def test_an_expired_batch_fails_its_tasks(api: AsyncBatchAPI) -> None:
    with BatchServer(api_key=KEY, polls_per_step=None) as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as client:

            def poll(batch: Batch) -> None:
                server.advance_clock(25 * 3600)  # past the 24 h window

            records = await collect(runner(server, client, on_poll=poll))
    assert {r["status"] for r in records} == {"failed"}
    assert {r["error_type"] for r in records} == {"ModelRequestError[BatchLineError]"}
    assert all("expired" in r["error_message"] for r in records)


async def test_more_lines_than_a_file_holds_go_in_several_batches(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    tasks = [{"id": f"t{i}", "prompt": f"p{i}"} for i in range(5)]
    run = runner(server, api, journal=tmp_path / "j.sqlite", max_lines=2)
    records = await collect(run, tasks)
    assert sorted(r["id"] for r in records) == [f"t{i}" for i in range(5)]
    assert {r["status"] for r in records} == {"done"}
    assert len(server.created) == 3
    digests = {c["metadata"]["sfagent_digest"] for c in server.created}
    assert len(digests) == 3
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        info = journal.open_job("batch", run.fingerprint(), resume=True)
    recorded = info.metadata[via.METADATA_KEY]
    assert set(recorded) == digests
    assert {e["batch_id"] for e in recorded.values()} == set(run.batches)


async def test_wrapped_answers_are_read(api: AsyncBatchAPI) -> None:
    with BatchServer(api_key=KEY, wrap="all") as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as client:
            records = await collect(runner(server, client))
    assert [r["status"] for r in records] == ["done"] * 3


async def test_run_via_batch_api_yields_the_records(
    server: BatchServer, api: AsyncBatchAPI
) -> None:
    records = [
        r
        async for r in run_via_batch_api(
            agent(server), TASKS, api=api, journal=None, job_id="j", resume=False, poll_interval=0
        )
    ]
    assert [r["output"] for r in records] == [
        "Answer to: one",
        "Answer to: two",
        "Answer to: three",
    ]
    assert server.created[0]["metadata"]["sfagent_job"] == "j"


# --- nothing paid for twice ----------------------------------------------------------------------


async def test_resume_after_a_crash_before_completion_submits_nothing_again(
    tmp_path: Path,
) -> None:
    def crash(batch: Batch) -> None:
        raise Crash

    path = tmp_path / "j.sqlite"
    with BatchServer(api_key=KEY, polls_per_step=None) as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as api:
            crashed = runner(server, api, journal=path, on_poll=crash)
            with pytest.raises(Crash):
                await collect(crashed)
            assert (len(server.uploads), len(server.created)) == (1, 1)
            [batch_id] = crashed.batches
            assert server.batch(batch_id)["status"] == "in_queue"
            assert server.run(batch_id) == "completed"
            again = runner(server, api, journal=path)
            records = await collect(again, resume=True)
    assert (len(server.uploads), len(server.created)) == (1, 1)
    assert [r["status"] for r in records] == ["done"] * 3
    assert [r["id"] for r in records] == ["a", "b", "c"]


class KilledAfterCreate(SQLiteJournal):
    """A journal whose process dies as it records a submitted batch (after the create)."""

    def open_job(self, *args: Any, metadata: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        if metadata is not None:
            raise Crash
        return super().open_job(*args, metadata=metadata, **kw)


async def test_resume_finds_a_batch_the_journal_never_recorded(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    killed = KilledAfterCreate(path)
    with pytest.raises(Crash):
        await collect(runner(server, api, journal=killed))
    killed.close()
    assert len(server.created) == 1
    records = await collect(runner(server, api, journal=path), resume=True)
    assert len(server.created) == 1  # found by its job and digest on the server
    assert len(server.uploads) == 1
    assert [r["status"] for r in records] == ["done"] * 3


async def test_resume_after_completion_sends_no_request(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    first = await collect(runner(server, api, journal=path))
    seen = len(server.requests)
    run = runner(server, api, journal=path)
    again = await collect(run, resume=True)
    assert again == first
    assert len(server.requests) == seen
    assert run.summary is not None
    assert (run.summary.resumed, run.summary.done) == (3, 3)


async def test_resume_after_some_records_maps_the_rest_from_the_same_batch(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(via, "_CHUNK", 1)  # a record is committed, then yielded, one at a time
    path = tmp_path / "j.sqlite"
    records = runner(server, api, journal=path).run(TASKS)
    first = await records.__anext__()
    await records.aclose()  # stopped after one record
    rest = await collect(runner(server, api, journal=path), resume=True)
    assert rest[0] == first
    assert [r["id"] for r in rest] == ["a", "b", "c"]
    assert (len(server.uploads), len(server.created)) == (1, 1)
    with SQLiteJournal(path) as journal:
        assert journal.summary().done == 3


async def test_a_cancelled_batch_is_submitted_again_on_resume(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    def crash(batch: Batch) -> None:
        raise Crash

    path = tmp_path / "j.sqlite"
    crashed = runner(server, api, journal=path, on_poll=crash)
    with pytest.raises(Crash):
        await collect(crashed)
    [batch_id] = crashed.batches
    await api.cancel(batch_id)
    records = await collect(runner(server, api, journal=path), resume=True)
    assert len(server.created) == 2
    assert [r["status"] for r in records] == ["done"] * 3


# --- refusals ------------------------------------------------------------------------------------


@tool
def lookup(city: str) -> str:
    """Weather for a city."""
    return f"{city}: sunny"


class Answer(pydantic.BaseModel):
    text: str


async def test_refuses_an_agent_with_tools(server: BatchServer, api: AsyncBatchAPI) -> None:
    with pytest.raises(NotBatchableError, match="tools"):
        BatchAPIRunner(agent(server, tools=[lookup]), api=api)
    assert not server.requests


async def test_refuses_structured_output(server: BatchServer, api: AsyncBatchAPI) -> None:
    with pytest.raises(NotBatchableError, match="structured output") as caught:
        BatchAPIRunner(agent(server, output_type=Answer), api=api)
    assert isinstance(caught.value, UserError)


async def test_resume_needs_a_journal(server: BatchServer, api: AsyncBatchAPI) -> None:
    with pytest.raises(UserError, match="journal"):
        await collect(runner(server, api), resume=True)
    assert not server.requests


async def test_a_bad_row_leaves_nothing_that_blocks_the_corrected_batch(
    server: BatchServer, api: AsyncBatchAPI, tmp_path: Path
) -> None:
    from sfagent.batch import TaskError, load_tasks

    tasks_file = tmp_path / "tasks.jsonl"
    rows = [{"id": "a", "city": "Paris"}, {"id": "b", "town": "Lyon"}]
    tasks_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    journal = tmp_path / "batch.journal"
    with pytest.raises(TaskError, match="city"):
        await collect(
            runner(server, api, journal=journal), load_tasks(tasks_file, template="In {city}?")
        )
    assert not server.uploads  # nothing was sent

    rows[1] = {"id": "b", "city": "Lyon"}
    tasks_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = await collect(
        runner(server, api, journal=journal), load_tasks(tasks_file, template="In {city}?")
    )
    assert sorted(r["id"] for r in records) == ["a", "b"]
    assert {r["status"] for r in records} == {"done"}
