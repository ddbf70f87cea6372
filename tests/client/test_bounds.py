"""Every call bounded: a total timeout that holds, size caps enforced while decoding, and typed
errors for hostile structure, against a raw-socket server that misbehaves on purpose.

Each call runs on three drivers (the sync client, and the async client over its own keep-alive
transport and over httpx's) and must end in time (`TOTAL` + `SLACK`), in bounded memory (a
small multiple of the cap, measured with tracemalloc), with an error from the documented tree.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sfagent.client import AsyncSiliconFlow, RetryPolicy, SiliconFlow
from sfagent.client._deadline import WATCHDOG, Guard
from sfagent.client.clients import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TOTAL_TIMEOUT
from sfagent.exceptions import (
    APIResponseValidationError,
    APITimeoutError,
    ConfigurationError,
    InternalServerError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    SFAgentError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.settings import ChatRequest
from sfagent.streaming import StreamState
from tests.client.fault_server import (
    FaultServer,
    completion_body,
    drip,
    endless,
    gzip_bomb,
    respond,
    silent,
    sse_chunk,
    sse_stream,
)
from tests.client.scripted_http import scripted

KEY = "sk-bounds-test-key"
REQUEST = ChatRequest([{"role": "user", "content": "hi"}], model="m")
TOTAL = 0.5
SLACK = 0.4  # the bound is ~0.25 s tight; a loaded 2-core machine gets a little more
MIB = 1 << 20
CAP = MIB
MEMORY = 8 * CAP  # peak traced memory allowed for a call capped at CAP
DRIVERS = ["sync", "async-default", "async-httpx"]
SSE = {"Content-Type": "text/event-stream"}


# --- running one call on any driver -----------------------------------------------------------


def call(driver: str, base_url: str, op: str = "complete", **kwargs: Any) -> tuple[Any, float]:
    """Run one call; returns what it returned (or the SFAgentError it raised) and the seconds
    the call took (making the client, a first import included, is not counted).

    ``op`` is ``"complete"``, ``"models"`` or ``"stream"`` (which returns the final response
    and the first ten chunks: an endless stream's chunks must not fill the test's memory).
    """
    kwargs.setdefault("retry", None)
    clock = [0.0]
    try:
        if driver == "sync":
            result = _call_sync(base_url, op, kwargs, clock)
        else:
            result = asyncio.run(_call_async(driver, base_url, op, kwargs, clock))
    except SFAgentError as exc:
        result = exc
    return result, time.monotonic() - clock[0]


def _call_sync(base_url: str, op: str, kwargs: dict[str, Any], clock: list[float]) -> Any:
    with SiliconFlow(api_key=KEY, base_url=base_url, **kwargs) as client:
        clock[0] = time.monotonic()
        if op == "complete":
            return client.complete(REQUEST)
        if op == "models":
            return client.list_models()
        with client.stream(REQUEST) as stream:
            chunks = list(itertools.islice(stream, 10))
            return stream.get_final_response(), chunks


async def _call_async(
    driver: str, base_url: str, op: str, kwargs: dict[str, Any], clock: list[float]
) -> Any:
    http = httpx.AsyncClient() if driver == "async-httpx" else None
    try:
        client = AsyncSiliconFlow(api_key=KEY, base_url=base_url, http_client=http, **kwargs)
        async with client:
            clock[0] = time.monotonic()
            if op == "complete":
                return await client.complete(REQUEST)
            if op == "models":
                return await client.list_models()
            async with client.stream(REQUEST) as stream:
                chunks = []
                async for chunk in stream:
                    if len(chunks) < 10:
                        chunks.append(chunk)
                return await stream.get_final_response(), chunks
    finally:
        if http is not None:
            await http.aclose()


def traced(run: Callable[[], tuple[Any, float]]) -> tuple[Any, float, int]:
    """`run()`'s result and seconds, and the peak memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        result, seconds = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, seconds, peak


def padded_completion(size: int = 400) -> bytes:
    return completion_body("x" * size)


# --- 1. a total bound per call ----------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("length", [True, False], ids=["length", "until-eof"])
def test_a_number_as_timeout_bounds_a_dripped_body(driver: str, length: bool) -> None:
    with FaultServer(drip(padded_completion(), rate=5, length=length), lifetime=10) as server:
        error, seconds = call(driver, server.base_url, timeout=TOTAL)
    assert isinstance(error, APITimeoutError), error
    assert "total timeout of 0.5 s" in str(error)
    assert TOTAL - 0.05 <= seconds < TOTAL + SLACK


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_total_holds_against_a_byte_just_before_each_read_timeout(driver: str) -> None:
    # Each read waits at most 0.3 s and a byte comes every 0.2 s: only the total can end it.
    with FaultServer(drip(padded_completion(), rate=5), lifetime=10) as server:
        error, seconds = call(
            driver, server.base_url, timeout=httpx.Timeout(0.3), total_timeout=0.7
        )
    assert isinstance(error, APITimeoutError), error
    assert 0.65 <= seconds < 0.7 + SLACK


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_dripped_stream_times_out_with_what_it_received(driver: str) -> None:
    prefix = sse_chunk(role="assistant", content="Hel") + sse_chunk(content="lo")
    rest = sse_stream([sse_chunk(content=" world" * 20)])
    behaviour = drip(rest, rate=5, prefix=prefix, headers=SSE, length=False)
    with FaultServer(behaviour, lifetime=10) as server:
        error, seconds = call(driver, server.base_url, "stream", timeout=TOTAL)
    assert isinstance(error, APITimeoutError), error
    assert isinstance(error.partial, ChatCompletion)
    assert error.partial.message.content == "Hello"
    assert error.partial.finish_reason is None
    assert seconds < TOTAL + SLACK


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("op", ["complete", "stream", "models"])
def test_dripped_headers_are_bounded_too(driver: str, op: str) -> None:
    with FaultServer(drip(padded_completion(), rate=5, head_too=True), lifetime=10) as server:
        error, seconds = call(driver, server.base_url, op, total_timeout=TOTAL)
    assert isinstance(error, APITimeoutError), error
    assert seconds < TOTAL + SLACK


def test_dripped_headers_on_a_reused_connection_are_bounded() -> None:
    # The sync watchdog learns a new connection's socket from its trace event; a reused one it
    # must find in the pool.
    behaviours = (
        respond(completion_body(), keep_alive=True),
        drip(padded_completion(), rate=5, head_too=True),
    )
    with (
        FaultServer(*behaviours, lifetime=10) as server,
        SiliconFlow(api_key=KEY, base_url=server.base_url, retry=None) as client,
    ):
        assert client.complete(REQUEST).message.content == "Hello"
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.complete(REQUEST, total_timeout=TOTAL)
        seconds = time.monotonic() - start
        assert server.connections == 1
    assert seconds < TOTAL + SLACK


@pytest.mark.parametrize("driver", DRIVERS)
def test_retries_never_outlast_the_total(driver: str) -> None:
    retry = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.02)
    with FaultServer(silent(), lifetime=10) as server:
        error, seconds = call(driver, server.base_url, timeout=TOTAL, retry=retry)
    assert isinstance(error, APITimeoutError), error
    assert seconds < TOTAL + SLACK
    assert len(server.requests) == 1


def test_no_retry_starts_when_its_wait_would_end_past_the_deadline() -> None:
    busy = httpx.Response(
        503, json={"code": 50505, "message": "busy"}, headers={"Retry-After": "5"}
    )
    handler, seen = scripted(busy, httpx.Response(200, content=completion_body()))
    sleeps: list[float] = []
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        SiliconFlow(api_key=KEY, http_client=http, sleep=sleeps.append) as client,
        pytest.raises(ServiceUnavailableError),
    ):
        client.complete(REQUEST, total_timeout=2)
    assert (len(seen), sleeps) == (1, [])


def test_phase_timeouts_never_exceed_the_time_left() -> None:
    handler, seen = scripted(*(httpx.Response(200, content=completion_body()) for _ in range(3)))
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        SiliconFlow(api_key=KEY, http_client=http, timeout=httpx.Timeout(None)) as client,
    ):
        client.complete(REQUEST, total_timeout=2)
        client.complete(REQUEST, timeout=httpx.Timeout(30.0, connect=0.5), total_timeout=5)
        client.complete(REQUEST)
    short, mixed, default = (request.extensions["timeout"] for request in seen)
    assert all(1.5 < value <= 2 for value in short.values())
    assert mixed["connect"] == 0.5
    assert all(4.5 < mixed[phase] <= 5 for phase in ("read", "write", "pool"))
    # No phase limit at all: the client's total bounds every phase.
    assert all(DEFAULT_TOTAL_TIMEOUT - 60 < v <= DEFAULT_TOTAL_TIMEOUT for v in default.values())


@pytest.mark.parametrize("bad", [0, -1, math.nan, True, "5"])
def test_total_timeout_must_be_a_positive_number(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="total_timeout"):
        SiliconFlow(api_key=KEY, total_timeout=bad)
    with SiliconFlow(api_key=KEY) as client, pytest.raises(ConfigurationError):
        client.complete(REQUEST, total_timeout=bad)


def test_the_defaults() -> None:
    assert DEFAULT_TOTAL_TIMEOUT == 1800.0
    assert DEFAULT_MAX_RESPONSE_BYTES == 32 * MIB


@pytest.mark.parametrize("driver", DRIVERS)
def test_reading_past_done_is_bounded(driver: str) -> None:
    # [DONE] then a drip: the stream's answer is complete and must not wait for the drip.
    whole = sse_stream([sse_chunk(role="assistant", content="Hi")])
    behaviour = drip(b": still here\n" * 50, rate=5, prefix=whole, headers=SSE, length=False)
    with FaultServer(behaviour, lifetime=10) as server:
        result, seconds = call(driver, server.base_url, "stream", total_timeout=30)
    final, _ = result
    assert final.message.content == "Hi"
    assert seconds < 2.5


def test_the_watchdog_forgets_finished_calls_and_never_fires_after_them() -> None:
    guards = [WATCHDOG.arm(time.monotonic() + 3600, None) for _ in range(5000)]
    for guard in guards:
        WATCHDOG.disarm(guard)
    assert len(WATCHDOG._heap) < 2100  # compacted as finished calls pile up

    guard = Guard(time.monotonic(), None)
    guard.cancel()
    guard.expire()  # after the call ended: nothing happens
    assert not guard.fired


# --- 2. size caps -----------------------------------------------------------------------------


def too_large(error: object) -> ResponseTooLargeError:
    assert isinstance(error, ResponseTooLargeError), error
    assert error.limit == CAP
    assert f"max_response_bytes={CAP}" in str(error)
    assert "SiliconFlow(max_response_bytes=...)" in str(error)
    return error


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_gzip_bomb_fails_typed_in_bounded_memory(driver: str) -> None:
    with FaultServer(gzip_bomb(256 * MIB), lifetime=20) as server:
        error, seconds, peak = traced(lambda: call(driver, server.base_url, max_response_bytes=CAP))
    too_large(error)
    assert peak < MEMORY, f"{peak / MIB:.1f} MiB"
    assert seconds < 5


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_gzip_bombed_stream_fails_typed_in_bounded_memory(driver: str) -> None:
    bomb = gzip_bomb(256 * MIB, content_type="text/event-stream")
    with FaultServer(bomb, lifetime=20) as server:
        error, _, peak = traced(
            lambda: call(driver, server.base_url, "stream", max_response_bytes=CAP)
        )
    too_large(error)
    assert peak < MEMORY, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_bombed_error_body_keeps_its_status_in_bounded_memory(driver: str) -> None:
    with FaultServer(gzip_bomb(256 * MIB, status=500), lifetime=20) as server:
        error, _, peak = traced(lambda: call(driver, server.base_url, max_response_bytes=CAP))
    assert isinstance(error, InternalServerError), error
    assert peak < MEMORY, f"{peak / MIB:.1f} MiB"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_body_past_the_cap_is_refused(driver: str) -> None:
    with FaultServer(respond(padded_completion(4 * MIB)), lifetime=20) as server:
        error, _ = call(driver, server.base_url, max_response_bytes=CAP)
        answer, _ = call(driver, server.base_url, max_response_bytes=5 * MIB)
    too_large(error)
    assert isinstance(answer, ChatCompletion)


def _call_delta(arguments: str, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, **fields, "function": {"arguments": arguments}}]}


def _chunk_with(delta: dict[str, Any]) -> bytes:
    return sse_chunk(**delta)


ENDLESS = {
    "content": (sse_chunk(role="assistant", content=""), sse_chunk(content="x" * 1000)),
    "reasoning": (sse_chunk(role="assistant"), sse_chunk(reasoning_content="y" * 1000)),
    "arguments": (
        _chunk_with(_call_delta('{"a": "', id="c1", type="function")),
        _chunk_with(_call_delta("z" * 1000)),
    ),
    "a line without end": (b"", b"data: " + b"q" * 1000),
    "a bare JSON value without end": (b'{"code": 500,\n', b'"k": "v",\n' * 100),
    "an event without end": (b"", b"data: {}\n" * 100),
    # No id, no index: each whole "{}" after another starts a new call.
    "new tool calls without end": (
        b"",
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}\n\n',
    ),
}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("kind", list(ENDLESS))
def test_an_endless_stream_fails_typed_in_bounded_memory(driver: str, kind: str) -> None:
    first, repeat = ENDLESS[kind]
    with FaultServer(endless(first, repeat), lifetime=30) as server:
        error, seconds, peak = traced(
            lambda: call(driver, server.base_url, "stream", max_response_bytes=CAP)
        )
    too_large(error)
    assert peak < MEMORY, f"{peak / MIB:.1f} MiB"
    assert seconds < 20


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True])
def test_max_response_bytes_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        SiliconFlow(api_key=KEY, max_response_bytes=bad)
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        AsyncSiliconFlow(api_key=KEY, max_response_bytes=bad)


def test_the_cap_can_be_lifted() -> None:
    state = StreamState(max_response_bytes=None)
    state.feed(b"data: " + b"q" * (3 * MIB))  # an unfinished line past any default
    with FaultServer(respond(padded_completion(2 * MIB)), lifetime=10) as server:
        answer, _ = call("sync", server.base_url, max_response_bytes=None)
    assert isinstance(answer, ChatCompletion)


# --- 3. hostile structure ---------------------------------------------------------------------

DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
FIRST = sse_chunk(role="assistant", content="")


@pytest.mark.parametrize(
    "tail",
    [
        DEEP_OBJECT + b"\n\n",  # a bare line, outside SSE framing
        b"data: " + DEEP_OBJECT + b"\n\n",
        b"data: " + DEEP_LIST + b"\n\n",
        b"event: error\ndata: " + DEEP_OBJECT + b"\n\n",
        b'{"code": 50000,\n"x": ' + DEEP_OBJECT + b"\n}\n\n",  # over several lines
    ],
    ids=["bare", "data-object", "data-list", "event-error", "bare-multiline"],
)
def test_deep_json_in_a_stream_is_a_typed_error(tail: bytes) -> None:
    state = StreamState()
    with pytest.raises(SFAgentError):
        state.feed(FIRST + tail + b"data: [DONE]\n\n")
    with pytest.raises(SFAgentError):
        StreamState().finish()


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("op", "status", "body", "expected"),
    [
        ("complete", 200, DEEP_OBJECT, APIResponseValidationError),
        ("complete", 200, DEEP_LIST, APIResponseValidationError),
        ("complete", 500, DEEP_OBJECT, InternalServerError),
        ("models", 200, DEEP_OBJECT, APIResponseValidationError),
        ("stream", 200, DEEP_OBJECT, APIResponseValidationError),
    ],
    ids=["body-object", "body-list", "error-body", "models", "stream-json"],
)
def test_deep_json_anywhere_over_http_is_a_typed_error(
    driver: str, op: str, status: int, body: bytes, expected: type[Exception]
) -> None:
    with FaultServer(respond(body, status=status), lifetime=10) as server:
        error, _ = call(driver, server.base_url, op)
    assert isinstance(error, expected), error


def _fold(*deltas: dict[str, Any]) -> ChatCompletion:
    state = StreamState()
    state.feed(b"".join(sse_chunk(**delta) for delta in deltas) + b"data: [DONE]\n\n")
    return state.finish()


def _calls(completion: ChatCompletion) -> list[tuple[str, str, str]]:
    calls = completion.message.tool_calls or []
    return [(c.id, c.function.name, c.function.arguments) for c in calls]


def test_two_calls_sharing_an_id_without_index_stay_apart() -> None:
    first = {
        "id": "x",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a": 1, "b": 2}'},
    }
    second = {
        "id": "x",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a": 10, "b": 20}'},
    }
    completion = _fold({"tool_calls": [first]}, {"tool_calls": [second]})
    assert _calls(completion) == [
        ("x", "f", '{"a": 1, "b": 2}'),
        ("x", "f", '{"a": 10, "b": 20}'),
    ]


@pytest.mark.parametrize("with_index", [False, True])
def test_one_call_repeating_its_id_and_name_in_every_fragment_stays_one(with_index: bool) -> None:
    # llama.cpp's habit; braces inside a string ("\\frac{a}{b}") must not split the call.
    pieces = ['{"tex": "\\\\frac{a}', '{b}", ', '"n": {', '"m": 1}}']
    index = {"index": 0} if with_index else {}
    deltas = [
        {"tool_calls": [{**index, "id": "c", "function": {"name": "f", "arguments": piece}}]}
        for piece in pieces
    ]
    completion = _fold(*deltas)
    assert _calls(completion) == [("c", "f", "".join(pieces))]
    assert json.loads(completion.message.tool_calls[0].function.arguments)["n"] == {"m": 1}


def test_two_calls_without_id_or_index_in_separate_chunks_stay_apart() -> None:
    completion = _fold(
        {"tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"tool_calls": [{"function": {"name": "g", "arguments": '{"b": 2}'}}]},
    )
    assert _calls(completion) == [("call_0", "f", '{"a": 1}'), ("call_1", "g", '{"b": 2}')]


JSON = {"Content-Type": "application/json; charset=utf-8"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_json_answer_to_a_stream_request_is_one_chunk(driver: str) -> None:
    call_ = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    body = completion_body("Hi", reasoning_content="think", tool_calls=[call_])
    with FaultServer(respond(body, headers=JSON), lifetime=10) as server:
        result, _ = call(driver, server.base_url, "stream")
    assert not isinstance(result, Exception), result
    final, chunks = result
    assert final == ChatCompletion.model_validate_json(body)
    assert len(chunks) == 1
    assert isinstance(chunks[0], ChatCompletionChunk)
    delta = chunks[0].choices[0].delta
    assert (delta.content, delta.reasoning_content) == ("Hi", "think")
    assert delta.tool_calls is not None
    assert delta.tool_calls[0].function is not None
    assert delta.tool_calls[0].function.arguments == '{"a": 1}'


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_json_error_answer_to_a_stream_request_is_its_typed_error(driver: str) -> None:
    body = b'{"code": 50505, "message": "Model service overloaded", "data": null}'
    with FaultServer(respond(body, headers=JSON), lifetime=10) as server:
        error, _ = call(driver, server.base_url, "stream")
    assert isinstance(error, ServiceUnavailableError), error


def test_an_event_stream_labelled_json_is_still_read_as_events() -> None:
    body = sse_stream([sse_chunk(role="assistant", content="Hi")])
    with FaultServer(respond(body, headers=JSON), lifetime=10) as server:
        result, _ = call("sync", server.base_url, "stream")
    final, chunks = result
    assert final.message.content == "Hi"
    assert len(chunks) == 1
