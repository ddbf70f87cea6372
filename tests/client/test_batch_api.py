"""SiliconFlow's batch API client: the pure core, and the whole flow against the emulation."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sfagent.client.batch_api import (
    MAX_LINES_PER_FILE,
    AsyncBatchAPI,
    Batch,
    BatchFile,
    BatchInputError,
    build_input_files,
    completion_window,
    input_line,
    parse_results,
    unwrap,
)
from sfagent.exceptions import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from sfagent.settings import ChatRequest
from sfagent.testing.batch_server import BatchServer, Wrap
from sfagent.testing.server import Reply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "sk-batchtestkey0123456789abcdef"
MODEL = "Qwen/Qwen3-8B"


def body(text: str, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


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


# --- the pure core ------------------------------------------------------------------------------


def test_input_line_shape() -> None:
    line = input_line("t1", body("Hi", temperature=0.2, stream=False))
    assert line == {
        "custom_id": "t1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body("Hi", temperature=0.2),
    }


def test_input_line_takes_a_chat_request() -> None:
    request = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert input_line("t1", request)["body"]["messages"][-1]["content"] == "Hi"


@pytest.mark.parametrize(
    ("request_body", "reason"),
    [
        (body("Hi", tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
        (body("Hi", stream=True), "stream"),
        ({"model": MODEL, "messages": [{"role": "assistant", "content": "x"}]}, "end with a user"),
        ({"model": MODEL, "messages": []}, "no messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no model"),
        ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "role 'tool'"),
    ],
)
def test_input_line_refusals_name_the_custom_id(request_body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BatchInputError, match=reason) as caught:
        input_line("task-7", request_body)
    assert caught.value.custom_id == "task-7"
    assert "task-7" in str(caught.value)


def test_split_5001_lines_into_two_files() -> None:
    files = build_input_files((f"t{i}", body(str(i))) for i in range(MAX_LINES_PER_FILE + 1))
    assert [len(f.custom_ids) for f in files] == [MAX_LINES_PER_FILE, 1]
    assert files[0].content.count(b"\n") == MAX_LINES_PER_FILE
    assert files[1].custom_ids == (f"t{MAX_LINES_PER_FILE}",)


def test_split_two_models_into_two_files() -> None:
    pairs = [("a", body("1")), ("b", body("2", model="deepseek-ai/DeepSeek-V3")), ("c", body("3"))]
    files = build_input_files(pairs)
    assert [(f.model, f.custom_ids) for f in files] == [
        (MODEL, ("a", "c")),
        ("deepseek-ai/DeepSeek-V3", ("b",)),
    ]
    for f in files:
        lines = [json.loads(line) for line in f.content.decode().splitlines()]
        assert {line["body"]["model"] for line in lines} == {f.model}


def test_duplicate_custom_id_is_refused() -> None:
    with pytest.raises(BatchInputError, match="twice") as caught:
        build_input_files([("a", body("1")), ("a", body("2"))])
    assert caught.value.custom_id == "a"


def test_max_lines_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        build_input_files([], max_lines=MAX_LINES_PER_FILE + 1)


def test_digest_and_metadata_are_stable() -> None:
    first = build_input_files([("a", body("1"))])[0]
    again = build_input_files([("a", body("1"))])[0]
    other = build_input_files([("a", body("2"))])[0]
    assert first.digest == again.digest != other.digest
    assert first.metadata("job-1") == {"sfagent_job": "job-1", "sfagent_digest": first.digest}
    assert "content" not in repr(first)


@pytest.mark.parametrize(("given", "expected"), [(24, "24h"), ("336h", "336h"), ("48", "48h")])
def test_completion_window(given: Any, expected: str) -> None:
    assert completion_window(given) == expected


@pytest.mark.parametrize("given", [23, "337h", "1d", 24.5, "h"])
def test_completion_window_refuses(given: Any) -> None:
    with pytest.raises(ConfigurationError):
        completion_window(given)


def test_unwrap_wrapped_and_plain() -> None:
    data = {"id": "file-1"}
    assert unwrap({"code": 20000, "message": "Ok", "status": True, "data": data}) == data
    assert unwrap(data) == data
    plain_list = {"object": "list", "data": [], "has_more": False}
    assert unwrap(plain_list) == plain_list


def test_unwrap_failed_envelope_is_typed() -> None:
    with pytest.raises(BadRequestError) as caught:
        unwrap({"code": 20015, "message": "bad file", "status": False, "data": None})
    assert caught.value.code == 20015
    assert caught.value.message == "bad file"


def test_file_reads_created_at_either_way() -> None:
    wrapped = {"code": 20000, "status": True, "data": {"id": "file-x", "createdAt": 5, "bytes": 9}}
    assert BatchFile.from_payload(wrapped) == BatchFile("file-x", bytes=9, created_at=5)
    assert BatchFile.from_payload({"id": "file-y", "created_at": 6}).created_at == 6


def test_batch_from_payload_and_finished() -> None:
    batch = Batch.from_payload(
        {
            "id": "batch_1",
            "status": "completed",
            "output_file_id": "file-o",
            "error_file_id": None,
            "request_counts": {"total": 3, "completed": 2, "failed": 1},
            "metadata": {"sfagent_job": "j"},
            "created_at": 1,
            "completed_at": 9,
        }
    )
    assert batch.finished
    assert batch.request_counts is not None
    assert batch.request_counts.failed == 1
    assert batch.metadata == {"sfagent_job": "j"}
    assert not Batch.from_payload({"id": "b", "status": "in_progress"}).finished


COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


def test_parse_results_maps_by_custom_id_and_reports_malformed_lines() -> None:
    ok = {"custom_id": "a", "response": {"status_code": 200, "body": COMPLETION}, "error": None}
    as_text = {"custom_id": "b", "response": {"status_code": 200, "body": json.dumps(COMPLETION)}}
    failed = {
        "custom_id": "c",
        "response": {"status_code": 400, "body": {"code": 20015, "message": "too long"}},
        "error": None,
    }
    expired = {
        "custom_id": "d",
        "response": None,
        "error": {"code": "batch_expired", "message": "late"},
    }
    output = "\n".join([json.dumps(ok), "", json.dumps(as_text), "{broken", "[1]"]) + "\n"
    errors = "\n".join([json.dumps(failed), json.dumps(expired), json.dumps({"x": 1})])
    parsed = parse_results(output, errors.encode())
    assert parsed.results["a"].ok
    assert parsed.results["a"].completion is not None
    assert parsed.results["a"].completion.choices[0].message.content == "hi"
    assert parsed.results["b"].ok
    c = parsed.results["c"].failure
    assert c is not None
    assert (c.status_code, c.code, c.message) == (400, 20015, "too long")
    d = parsed.results["d"].failure
    assert d is not None
    assert (d.code, d.message) == ("batch_expired", "late")
    assert [(m.source, m.line_number) for m in parsed.malformed] == [
        ("output", 4),
        ("output", 5),
        ("error", 3),
    ]
    assert parsed.missing(["a", "e", "d", "f"]) == ["e", "f"]


def test_parse_results_an_answer_wins_over_a_failure() -> None:
    ok = {"custom_id": "a", "response": {"status_code": 200, "body": COMPLETION}}
    bad = {"custom_id": "a", "response": None, "error": {"code": "x", "message": "no"}}
    assert parse_results(json.dumps(ok), json.dumps(bad)).results["a"].ok
    assert parse_results(json.dumps(bad) + "\n" + json.dumps(ok)).results["a"].ok


def test_parse_results_body_that_is_not_a_completion_fails_that_line() -> None:
    line = {"custom_id": "a", "response": {"status_code": 200, "body": {"choices": "no"}}}
    failure = parse_results(json.dumps(line)).results["a"].failure
    assert failure is not None
    assert "not a chat completion" in failure.message


# --- the flow against the emulation -------------------------------------------------------------


@pytest.mark.parametrize("wrap", ["docs", "all", "none"])
async def test_whole_flow(wrap: Wrap) -> None:
    with BatchServer(api_key=KEY, wrap=wrap) as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=no_sleep) as api:
            files = build_input_files([("q1", body("one")), ("q2", body("two"))])
            uploaded = await api.upload(files[0].content)
            assert uploaded.id.startswith("file-")
            assert uploaded.purpose == "batch"
            assert uploaded.bytes == len(files[0].content)
            batch = await api.create(uploaded.id, metadata={"sfagent_job": "j1"})
            assert batch.status == "in_queue"
            assert batch.request_counts is None
            polled: list[str] = []
            done = await api.wait(
                batch.id, poll_interval=0.01, on_poll=lambda b: polled.append(b.status)
            )
            assert polled == ["in_progress", "finalizing", "completed"]
            assert done.request_counts is not None
            assert done.request_counts.completed == 2
            results = await api.results(done)
    assert results.malformed == ()
    answers = {cid: r.completion for cid, r in results.results.items()}
    assert answers["q1"] is not None
    assert answers["q1"].choices[0].message.content == "Answer to: one"
    assert answers["q2"] is not None
    assert answers["q2"].choices[0].message.content == "Answer to: two"
    upload = next(r for r in server.requests if r.path == "/v1/files")
    assert upload.headers["content-type"].startswith("multipart/form-data")


async def test_error_file_lines_become_failures() -> None:
    def responder(custom_id: str, request: dict[str, Any]) -> Reply:
        if custom_id == "bad":
            return Reply.error(400, {"code": 20015, "message": "context too long", "data": None})
        return Reply(text="fine")

    with BatchServer(api_key=KEY, responder=responder, polls_per_step=None) as server:
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url) as api:
            file = build_input_files([("good", body("1")), ("bad", body("2"))])[0]
            batch = await api.submit(file, job="j")
            assert server.run(batch.id) == "completed"
            done = await api.get(batch.id)
            assert done.output_file_id
            assert done.error_file_id
            results = await api.results(done)
    assert results.results["good"].ok
    failure = results.results["bad"].failure
    assert failure is not None
    assert (failure.status_code, failure.code) == (400, 20015)


async def test_resume_finds_the_submitted_job(server: BatchServer, api: AsyncBatchAPI) -> None:
    file = build_input_files([("a", body("1"))])[0]
    first, submitted = await api.find_or_submit(file, job="nightly")
    assert submitted
    # Other jobs and another file of the same job do not match.
    await api.find_or_submit(build_input_files([("b", body("2"))])[0], job="nightly")
    await api.find_or_submit(file, job="other")
    again, submitted_again = await api.find_or_submit(file, job="nightly")
    assert not submitted_again
    assert again.id == first.id
    assert len(server.created) == 3
    assert [c["metadata"]["sfagent_job"] for c in server.created] == ["nightly", "nightly", "other"]


async def test_find_batches_pages_through_the_list(server: BatchServer, api: AsyncBatchAPI) -> None:
    file = await api.upload(build_input_files([("a", body("1"))])[0].content)
    for n in range(5):
        server.advance_clock(1)  # distinct creation times, for the newest-first order
        await api.create(file.id, metadata={"sfagent_job": "j", "n": str(n)})
    page, cursor = await api.list_batches(limit=2)
    assert len(page) == 2
    assert cursor == page[-1].id
    found = await api.find_batches({"sfagent_job": "j"}, max_pages=10)
    assert [b.metadata["n"] for b in found] == ["4", "3", "2", "1", "0"]
    assert [b.metadata["n"] for b in await api.find_batches({"n": "2"})] == ["2"]


async def test_a_cancelled_job_is_submitted_again(server: BatchServer, api: AsyncBatchAPI) -> None:
    file = build_input_files([("a", body("1"))])[0]
    first, _ = await api.find_or_submit(file, job="j")
    cancelling = await api.cancel(first.id)
    assert cancelling.status == "cancelling"
    second, submitted = await api.find_or_submit(file, job="j")
    assert submitted
    assert second.id != first.id


async def test_cancel_then_results_are_failures(server: BatchServer, api: AsyncBatchAPI) -> None:
    file = build_input_files([("a", body("1")), ("b", body("2"))])[0]
    batch = await api.submit(file, job="j")
    await api.cancel(batch.id)
    done = await api.wait(batch.id, poll_interval=1)
    assert done.status == "cancelled"
    assert done.finished
    results = await api.results(done)
    failures = [results.results[c].failure for c in ("a", "b")]
    assert [f.code for f in failures if f is not None] == ["batch_cancelled", "batch_cancelled"]
    with pytest.raises(BadRequestError, match="cancelled"):
        await api.cancel(batch.id)


async def test_expiry(server: BatchServer, api: AsyncBatchAPI) -> None:
    file = build_input_files([("a", body("1"))])[0]
    batch = await api.submit(file, job="j", completion_window="24h")
    server.advance_clock(24 * 3600)
    done = await api.get(batch.id)
    assert done.status == "expired"
    assert done.finished
    failure = (await api.results(done)).results["a"].failure
    assert failure is not None
    assert failure.code == "batch_expired"


async def test_wait_is_bounded() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with BatchServer(api_key=KEY, polls_per_step=None) as server:  # moves only when told
        async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url, sleep=sleep) as api:
            batch = await api.submit(build_input_files([("a", body("1"))])[0], job="j")
            with pytest.raises(APITimeoutError, match="still in_queue"):
                await api.wait(batch.id, poll_interval=10, timeout=35)
    assert slept == [10, 10, 10]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            Reply.error(400, {"code": 20012, "message": "Model does not exist.", "data": None}),
            BadRequestError,
        ),
        (Reply.error(429, {"message": "rate limited", "data": None}), RateLimitError),
        (
            Reply.error(503, {"code": 50505, "message": "overloaded", "data": None}),
            ServiceUnavailableError,
        ),
        (Reply.error(404, "404 page not found"), NotFoundError),
    ],
)
async def test_error_answers_are_typed(
    server: BatchServer, api: AsyncBatchAPI, reply: Reply, error: type[Exception]
) -> None:
    server.fail_next(reply)
    with pytest.raises(error):
        await api.get("batch_x")


async def test_unknown_batch_is_not_found(api: AsyncBatchAPI) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        await api.get("batch_nope")


async def test_emulation_refusal_is_a_typed_error(api: AsyncBatchAPI) -> None:
    line = json.dumps(
        {
            "custom_id": "a",
            "body": body("x") | {"messages": [{"role": "assistant", "content": "x"}]},
        }
    )
    with pytest.raises(BadRequestError, match="line 1: messages must end with a user message"):
        await api.upload(line.encode())


async def test_reads_are_retried_creates_are_not(server: BatchServer) -> None:
    from sfagent.client.retry import RetryPolicy

    async with AsyncBatchAPI(
        api_key=KEY, base_url=server.base_url, sleep=no_sleep, retry=RetryPolicy(max_attempts=3)
    ) as api:
        uploaded_ok = await api.upload(build_input_files([("a", body("1"))])[0].content)
        server.fail_next(Reply.error(503), Reply.error(503))
        uploaded = await api.upload(build_input_files([("a", body("1"))])[0].content)
        assert uploaded.id != uploaded_ok.id
        server.fail_next(Reply.error(503))
        with pytest.raises(ServiceUnavailableError):
            await api.create(uploaded.id)
        assert server.created == []


async def test_a_wrong_key_is_typed(server: BatchServer) -> None:
    async with AsyncBatchAPI(api_key="sk-wrong-key-000000", base_url=server.base_url) as api:
        with pytest.raises(AuthenticationError):
            await api.get("batch_x")


async def test_the_key_is_never_shown(
    server: BatchServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail_next(Reply.error(400, {"code": 20015, "message": f"bad key {KEY}", "data": None}))
    async with AsyncBatchAPI(api_key=KEY, base_url=server.base_url) as api:
        assert KEY not in repr(api)
        with pytest.raises(BadRequestError) as caught:
            await api.get("batch_x")
    shown = [str(caught.value), repr(caught.value), repr(caught.value.body), caplog.text]
    assert all(KEY not in text and KEY[:12] not in text for text in shown)


async def test_connection_error_is_typed_without_the_key() -> None:
    from sfagent.exceptions import APIConnectionError

    async with AsyncBatchAPI(api_key=KEY, base_url="http://127.0.0.1:9/v1") as api:
        with pytest.raises(APIConnectionError) as caught:
            await api.get("batch_x")
    assert KEY not in str(caught.value)
    assert caught.value.__cause__ is None


def test_ids_stay_one_path_segment() -> None:
    from sfagent.client.batch_api import _segment

    assert _segment("../files/x?y") == "..%2Ffiles%2Fx%3Fy"
    with pytest.raises(ConfigurationError):
        _segment("")
