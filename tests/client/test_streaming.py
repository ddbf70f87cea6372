"""Stream accumulation: a streamed turn folds into the response a non-stream call returns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sfagent.exceptions import (
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    IncompleteStreamError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk
from sfagent.streaming import (
    StreamAccumulator,
    StreamState,
    error_from_stream_payload,
    stream_error_status,
)


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m"}
    return b"data: " + json.dumps(body | {"choices": choices} | top).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def _run(*reads: bytes, trace_id: str | None = None) -> ChatCompletion:
    state = StreamState(trace_id=trace_id)
    for data in reads:
        state.feed(data)
    return state.finish()


def _call(index: int | None = None, **fields: Any) -> dict[str, Any]:
    function = {k: fields.pop(k) for k in ("name", "arguments") if k in fields}
    call = fields | ({"function": function} if function else {})
    return call if index is None else {"index": index, **call}


# --- the fixtures ----------------------------------------------------------------------------


def test_f3_reasoning_stream_accumulates(fixtures_dir: Path) -> None:
    completion = _run((fixtures_dir / "stream_reasoning_r1.sse").read_bytes())

    assert completion.id == "019adf32d7eba732fab10a923ab85c0b"
    assert completion.object == "chat.completion"
    assert completion.model == "deepseek-ai/DeepSeek-R1"
    assert completion.message.content == "Hello"
    assert completion.message.reasoning_content == "We"
    assert completion.message.tool_calls is None
    assert completion.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    # the last running total, not a sum of the four
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (294, 51, 345)
    assert usage.reasoning_tokens == 38


def test_f7_parallel_tool_calls_accumulate(fixtures_dir: Path) -> None:
    completion = _run((fixtures_dir / "stream_parallel_tool_calls_deepseek.sse").read_bytes())

    calls = completion.message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name) for c in calls] == [
        ("call_00_JQSxFX1xOHGH6ajdpN88RMXO", "get_current_weather"),
        ("call_01_L8UtYbkfaMFr7hzsToGPWGfI", "get_current_weather"),
    ]
    # The excerpt cut the argument fragments: report what came, invent nothing.
    assert [c.function.arguments for c in calls] == ["{", ""]
    with pytest.raises(json.JSONDecodeError):
        json.loads(calls[0].function.arguments)
    assert completion.finish_reason == "tool_calls"
    assert completion.message.content == ""
    assert completion.usage is not None
    assert completion.usage.total_tokens == 620  # sent on the last chunk only
    assert completion.usage.cached_tokens == 448


def test_streamed_equals_non_stream_shape(fixtures_dir: Path) -> None:
    """The accumulated message replays exactly like the F2 non-stream message."""
    f2 = json.loads((fixtures_dir / "assistant_tool_call_message.json").read_text())
    call = f2["tool_calls"][0]
    arguments = call["function"]["arguments"]
    completion = _run(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"tool_calls": [_call(0, id=call["id"], type="function", name="get_symbol")]}),
        _chunk({"tool_calls": [_call(0, arguments=arguments[:5])]}),
        _chunk({"tool_calls": [_call(0, arguments=arguments[5:])]}),
        _chunk({"content": ""}, "tool_calls"),
        DONE,
    )
    assert completion.message.to_wire() == f2


# --- accumulation rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deltas", "content", "reasoning"),
    [
        ([{"content": "a"}, {"content": None}, {"content": "b"}], "ab", None),
        ([{"reasoning_content": "x", "content": ""}, {"reasoning_content": "y"}], "", "xy"),
        ([{"reasoning_content": "think", "content": "say"}], "say", "think"),
        ([{"reasoning_content": ""}, {"content": None}], None, None),
        ([{"role": "assistant"}], None, None),
    ],
)
def test_content_and_reasoning_concatenate_skipping_nulls(
    deltas: list[dict[str, Any]], content: str | None, reasoning: str | None
) -> None:
    completion = _run(*(_chunk(d) for d in deltas), DONE)
    assert completion.message.content == content
    assert completion.message.reasoning_content == reasoning


def test_usage_is_the_last_running_total_never_a_sum() -> None:
    completion = _run(
        _chunk(
            {"content": "a"},
            usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        ),
        _chunk(
            {"content": "b"},
            usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        ),
        _chunk({"content": "c"}),
        DONE,
    )
    assert completion.usage is not None
    assert completion.usage.total_tokens == 12


def test_chunks_with_empty_choices_are_tolerated() -> None:
    completion = _run(
        _chunk(),
        _chunk({"content": "hi"}, "stop"),
        _chunk(usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        DONE,
    )
    assert completion.message.content == "hi"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 2


def test_missing_finish_reason_at_done_is_stop() -> None:
    assert _run(_chunk({"content": "x"}), DONE).finish_reason == "stop"


def test_unknown_finish_reason_is_kept() -> None:
    assert _run(_chunk({"content": "x"}, "eos"), DONE).finish_reason == "eos"


def test_tool_call_fields_come_from_the_first_non_empty_fragment() -> None:
    completion = _run(
        _chunk({"tool_calls": [_call(0, id="", name="")]}),
        _chunk({"tool_calls": [_call(0, id="a", type="function", name="f", arguments='{"x"')]}),
        _chunk({"tool_calls": [_call(0, id="a", name="f", arguments=": 1}")]}),
        DONE,
    )
    calls = completion.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    assert (calls[0].id, calls[0].function.name) == ("a", "f")
    assert json.loads(calls[0].function.arguments) == {"x": 1}


def test_whole_arguments_in_one_fragment_and_object_arguments() -> None:
    completion = _run(
        _chunk({"tool_calls": [_call(0, id="a", name="f", arguments={"x": 1})]}),
        _chunk({"tool_calls": [_call(1, id="b", name="g", arguments='{"y": 2}')]}),
        DONE,
    )
    calls = completion.message.tool_calls
    assert calls is not None
    assert [json.loads(c.function.arguments) for c in calls] == [{"x": 1}, {"y": 2}]


def test_interleaved_fragments_are_keyed_by_index() -> None:
    completion = _run(
        _chunk({"tool_calls": [_call(1, id="b", name="g"), _call(0, id="a", name="f")]}),
        _chunk({"tool_calls": [_call(0, arguments="[1"), _call(1, arguments="[2")]}),
        _chunk({"tool_calls": [_call(1, arguments="]"), _call(0, arguments="]")]}),
        DONE,
    )
    calls = completion.message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.arguments) for c in calls] == [("a", "[1]"), ("b", "[2]")]


def test_missing_index_falls_back_to_the_id_then_the_latest_call() -> None:
    completion = _run(
        _chunk({"tool_calls": [_call(id="a", name="f", arguments="{")]}),
        _chunk({"tool_calls": [_call(arguments="}")]}),
        _chunk({"tool_calls": [_call(id="b", name="g", arguments="[")]}),
        _chunk({"tool_calls": [_call(id="b", arguments="]")]}),
        DONE,
    )
    calls = completion.message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("a", "f", "{}"),
        ("b", "g", "[]"),
    ]


def test_missing_index_in_a_multi_call_delta_uses_list_position() -> None:
    completion = _run(
        _chunk({"tool_calls": [_call(name="f", arguments="1"), _call(name="g", arguments="2")]}),
        DONE,
    )
    calls = completion.message.tool_calls
    assert calls is not None
    # no ids came at all: stand-ins keep tool messages answerable
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_0", "f", "1"),
        ("call_1", "g", "2"),
    ]


def test_several_choices_are_kept_apart() -> None:
    two = {
        "choices": [
            {"index": 1, "delta": {"content": "B"}, "finish_reason": "length"},
            {"index": 0, "delta": {"content": "A"}, "finish_reason": None},
        ]
    }
    completion = _run(b"data: " + json.dumps(two).encode() + b"\n\n", DONE)
    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]


def test_the_accumulator_takes_chunk_models_directly() -> None:
    accumulator = StreamAccumulator()
    accumulator.add(ChatCompletionChunk.model_validate({"id": "x", "choices": []}))
    accumulator.add(
        ChatCompletionChunk.model_validate({"id": "y", "choices": [{"delta": {"content": "hi"}}]})
    )
    result = accumulator.result()
    assert (result.id, result.message.content, accumulator.chunks) == ("x", "hi", 2)


def test_feed_returns_the_chunks_it_completed() -> None:
    state = StreamState()
    assert state.feed(_chunk({"content": "a"})[:10]) == []
    assert not state.received
    chunks = state.feed(_chunk({"content": "a"})[10:] + _chunk({"content": "b"}))
    assert [c.choices[0].delta.content for c in chunks] == ["a", "b"]
    assert state.received
    assert not state.done
    state.feed(DONE)
    assert state.done


def test_unknown_event_types_are_skipped() -> None:
    completion = _run(b"event: ping\ndata: {}\n\n", _chunk({"content": "x"}), DONE)
    assert completion.message.content == "x"


# --- incomplete streams and errors -----------------------------------------------------------


def _feed_and_finish(state: StreamState, data: bytes) -> None:
    state.feed(data)
    state.finish()


def test_a_stream_without_done_raises_with_what_was_received() -> None:
    state = StreamState()
    state.feed(_chunk({"content": "Hel"}) + _chunk({"content": "lo"}) + b'data: {"id')
    with pytest.raises(IncompleteStreamError) as caught:
        state.finish()
    partial = caught.value.partial
    assert isinstance(partial, ChatCompletion)
    assert partial.message.content == "Hello"
    assert partial.finish_reason is None


def test_an_empty_body_is_incomplete() -> None:
    with pytest.raises(IncompleteStreamError):
        StreamState().finish()


@pytest.mark.parametrize(
    ("tail", "cls", "status", "code"),
    [
        (b'{"code":60000,"message":"Unknown error","data":null}', InternalServerError, 500, 60000),
        (
            b'{"code":60000,"message":"Unknown error","data":null}\n',
            InternalServerError,
            500,
            60000,
        ),
        (
            b'data: {"code":50505,"message":"Model service overloaded."}\n\n',
            ServiceUnavailableError,
            503,
            50505,
        ),
        (b'data: {"code":20015,"message":"bad","data":null}\n\n', BadRequestError, 400, 20015),
        (
            b'data: {"error":{"message":"slow down","type":"rate_limit_error"}}\n\n',
            RateLimitError,
            429,
            None,
        ),
        (b'event: error\ndata: {"message":"boom"}\n\n', InternalServerError, 500, None),
        (b"event: error\ndata: plain text\n\n", InternalServerError, 500, None),
    ],
)
def test_errors_after_http_200_raise_typed_errors(
    tail: bytes, cls: type[APIStatusError], status: int, code: int | None
) -> None:
    state = StreamState(trace_id="t-1")
    state.feed(_chunk({"content": "partial"}))
    with pytest.raises(APIStatusError) as caught:
        _feed_and_finish(state, tail)
    error = caught.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.trace_id) == (status, code, "t-1")
    assert error.message


def test_a_code_and_message_with_an_id_but_no_choices_is_an_error() -> None:
    # The rule a non-stream body always had: an id does not make SiliconFlow's error shape an
    # answer, so the chunk is no longer skipped in silence.
    state = StreamState(trace_id="t-2")
    state.feed(_chunk({"content": "partial"}))
    with pytest.raises(ServiceUnavailableError) as caught:
        state.feed(_chunk(code=50505, message="Model service overloaded."))
    assert (caught.value.code, caught.value.trace_id) == (50505, "t-2")


def test_a_code_and_message_beside_choices_are_not_an_error() -> None:
    completion = _run(_chunk({"content": "hi"}, code=0, message="success"), DONE)
    assert completion.message.content == "hi"


def test_errors_are_redacted_before_they_are_raised() -> None:
    def redact(text: str) -> str:
        return text.replace("sk-secret", "***")

    for tail in (
        b'data: {"code":20015,"message":"bad key sk-secret"}\n\n',
        b'{"code":60000,"message":"bad key sk-secret"}',  # no line end: read by finish()
    ):
        state = StreamState(redact=redact)
        with pytest.raises(APIStatusError) as caught:
            _feed_and_finish(state, _chunk({"content": "a"}) + tail)
        assert caught.value.message == "bad key ***"


def test_the_response_is_ready_at_done_and_finish_returns_it() -> None:
    state = StreamState()
    state.feed(_chunk({"content": "a"}))
    assert state.response is None
    assert state.partial().message.content == "a"
    assert state.partial().finish_reason is None
    state.feed(_chunk({"content": "b"}) + DONE)
    assert state.response is not None
    assert state.response.message.content == "ab"
    assert state.finish() is state.response


def test_a_malformed_chunk_is_a_validation_error() -> None:
    with pytest.raises(
        APIResponseValidationError, match=r"not a chat\.completion\.chunk"
    ) as caught:
        _run(b"data: {not json\n\n")
    assert caught.value.body == "{not json"


def test_a_chunk_with_wrong_types_is_a_validation_error() -> None:
    with pytest.raises(APIResponseValidationError, match="choices"):
        _run(b'data: {"choices": "nope"}\n\n')


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"code": 20012, "message": "Model does not exist."}, 400),
        ({"code": 20015, "message": "x"}, 400),
        ({"code": 50505, "message": "x"}, 503),
        ({"code": 60000, "message": "x"}, 500),
        ({"code": 12345, "message": "x"}, 500),
        ({"code": 429, "message": "x"}, 429),
        ({"code": "20015", "message": "x"}, 400),
        ({"error": {"message": "x", "type": "invalid_request_error"}}, 400),
        ({"error": {"message": "x", "code": "rate_limit_exceeded"}}, 429),
        ({"error": {"message": "x", "status": 503}}, 503),
        ({"error": {"message": "x", "type": "server_error"}}, 500),
        ("plain text", 500),
        (None, 500),
    ],
)
def test_stream_error_status_is_inferred_from_the_payload(payload: object, status: int) -> None:
    assert stream_error_status(payload) == status


def test_error_from_stream_payload_parses_raw_bytes() -> None:
    error = error_from_stream_payload(b'{"code":20015,"message":"Field required","data":null}')
    assert isinstance(error, BadRequestError)
    assert (error.code, error.message) == (20015, "Field required")


def test_the_pure_modules_import_neither_httpx_nor_asyncio() -> None:
    code = (
        "import sys\n"
        "import sfagent.client._sse, sfagent.streaming, sfagent.messages, sfagent.settings\n"
        "print(sorted({'httpx', 'httpx2', 'asyncio'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
