"""Fuzzing response parsing: whatever the server sends back, only typed sfagent errors escape.

Targets not covered by ``test_stream_properties`` (SSE splits and byte junk) and
``test_tool_properties`` (tool arguments): non-stream bodies as random JSON, completion-shaped
JSON with random field values, and random mutations of the captured fixture bodies, read by the
client core's parser and then through every accessor the agent loop uses; error statuses with
random bodies; error objects inside streams; and whole agent turns on random bodies. Nothing may
escape but an `SFAgentError` subclass: no KeyError, TypeError, ValueError or ValidationError.

Hostile shapes too: JSON nested past the parser's depth (bodies, error bodies, ``data:`` lines,
bare lines), a JSON completion sent to a stream request, tool-call fragments that reuse ids and
carry no index (no fragment may be lost), and streams read under tiny size caps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from sfagent import Agent, tool
from sfagent.client import SiliconFlow
from sfagent.client._core import ClientCore
from sfagent.exceptions import (
    AgentRunError,
    APIResponseValidationError,
    APIStatusError,
    SFAgentError,
    status_error_class,
)
from sfagent.messages import ChatCompletion
from sfagent.settings import ChatRequest
from sfagent.streaming import StreamState
from tests.conftest import FIXTURES

KEY = "sk-fuzz"
REQUEST = ChatRequest([{"role": "user", "content": "hi"}], model="m")
CORE = ClientCore(api_key=KEY, base_url="https://api.example.test/v1", retry=None,
                  default_headers=None)  # fmt: skip
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --- strategies -----------------------------------------------------------------------------------

FIELDS = [
    "id", "object", "created", "model", "choices", "index", "message", "delta", "role",
    "content", "reasoning_content", "tool_calls", "function", "name", "arguments", "type",
    "finish_reason", "usage", "prompt_tokens", "completion_tokens", "total_tokens",
    "completion_tokens_details", "reasoning_tokens", "prompt_tokens_details", "cached_tokens",
    "prompt_cache_hit_tokens", "system_fingerprint", "code", "message", "data", "error",
    "status", "status_code", "detail", "msg",
]  # fmt: skip
KEYS = st.sampled_from(FIELDS) | st.text(max_size=6)
# Numeric-looking strings, including digits int() does not read ("²", "٣") and huge ones.
DIGITS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
    st.integers(4301, 6000).map(lambda n: "9" * n),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    DIGITS,
    st.sampled_from(["stop", "tool_calls", "length", "assistant", "function", "[DONE]"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def _or_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, sometimes any JSON at all."""
    return st.one_of(strategy, strategy, strategy, JSON)


def _optional(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: _or_junk(v) for k, v in fields.items()})


TOOL_CALL = _optional(
    {
        "id": st.text(max_size=8),
        "type": st.just("function"),
        "index": st.integers(-2, 3),
        "function": _optional(
            {"name": st.sampled_from(["add", "nope", ""]), "arguments": JSON.map(json.dumps)}
        ),
    }
)
MESSAGE = _optional(
    {
        "role": st.just("assistant"),
        "content": st.none() | st.text(max_size=12),
        "reasoning_content": st.none() | st.text(max_size=12),
        "tool_calls": st.none() | st.lists(TOOL_CALL, max_size=3),
    }
)
USAGE = _optional(
    {
        "prompt_tokens": st.none() | st.integers(-5, 10**6),
        "completion_tokens": st.none() | st.integers(-5, 10**6),
        "total_tokens": st.none() | st.integers(-5, 10**6),
        "completion_tokens_details": _optional({"reasoning_tokens": st.integers(0, 99)}),
        "prompt_tokens_details": _optional({"cached_tokens": st.integers(0, 99)}),
        "prompt_cache_hit_tokens": st.integers(0, 99),
    }
)
COMPLETION = _optional(
    {
        "id": st.text(max_size=8),
        "object": st.just("chat.completion"),
        "created": st.integers(0, 2**40),
        "model": st.text(max_size=8),
        "choices": st.lists(
            _optional(
                {
                    "index": st.integers(-1, 3),
                    "message": MESSAGE,
                    "finish_reason": st.sampled_from(["stop", "tool_calls", "length", "eos"]),
                }
            ),
            max_size=3,
        ),
        "tool_calls": st.lists(TOOL_CALL, max_size=2),
        "usage": USAGE,
        "system_fingerprint": st.text(max_size=4),
    }
)
ERROR_OBJECT = st.one_of(
    _optional({"code": DIGITS | st.integers(), "message": JSON, "data": JSON}),
    st.fixed_dictionaries(
        {"error": _optional({"code": DIGITS | st.text(max_size=8), "message": JSON, "type": JSON})}
    ),
    st.fixed_dictionaries({"error": st.text(max_size=8)}, optional={"code": DIGITS}),
)
BODIES = st.one_of(
    JSON.map(json.dumps),
    COMPLETION.map(json.dumps),
    ERROR_OBJECT.map(json.dumps),
    st.text(max_size=40),
).map(str.encode) | st.binary(max_size=60)

DEEP = b"[" * 100_000 + b"]" * 100_000  # nested past any recursion limit
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000  # the same, as objects (a bare SSE line)
UNREADABLE_CODE = '{"code": "²", "message": "overloaded", "data": null}'.encode()
HUGE_CODE = b'{"code": "' + b"9" * 5000 + b'", "message": "x"}'


# --- what the agent loop does with a response -----------------------------------------------------


def exercise(completion: ChatCompletion) -> None:
    """Everything the loop and a transcript read from a response; typed errors allowed."""
    assert isinstance(completion, ChatCompletion)
    if completion.usage is not None:
        _ = completion.usage.reasoning_tokens, completion.usage.cached_tokens
    try:
        message = completion.message
    except APIResponseValidationError:
        assert not completion.choices
        return
    _ = completion.finish_reason
    json.dumps(message.to_wire())
    for call in message.tool_calls or ():
        assert isinstance(call.function.arguments, str)
        json.dumps(call.to_wire())


def parse_or_typed(body: bytes) -> None:
    try:
        completion = CORE.parse_completion(body, trace_id="t")
    except SFAgentError:
        return
    exercise(completion)


# --- non-stream bodies ----------------------------------------------------------------------------


@FUZZ
@given(value=JSON)
def test_random_json_bodies_parse_or_raise_typed_errors(value: Any) -> None:
    parse_or_typed(json.dumps(value).encode())


@FUZZ
@given(value=COMPLETION)
@example(value={"code": "²", "message": "overloaded", "data": None})
@example(value={"error": {"code": "٣", "message": "x"}})
def test_completion_shaped_bodies_parse_or_raise_typed_errors(value: Any) -> None:
    parse_or_typed(json.dumps(value).encode())


FIXTURE_BODIES = [
    json.loads((FIXTURES / "nonstream_tool_call.json").read_text(encoding="utf-8")),
    {"choices": [{"message": json.loads((FIXTURES / "assistant_tool_call_message.json").read_text(
        encoding="utf-8"))}]},
]  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _mutate(value: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    if not path:
        return {"replace": new, "null": None, "wrap": [value], "drop": {}}[how]
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if not rest and how == "drop":
        del copy[head]
    else:
        copy[head] = _mutate(copy[head], rest, how, new)
    return copy


@FUZZ
@given(data=st.data())
def test_mutated_fixture_bodies_parse_or_raise_typed_errors(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(FIXTURE_BODIES))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(list(_paths(body))))
        how = data.draw(st.sampled_from(["replace", "null", "wrap", "drop"]))
        body = _mutate(body, path, how, data.draw(JSON))
    raw = json.dumps(body).encode()
    if data.draw(st.booleans()):  # and sometimes bytes: a cut, or junk spliced in
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.sampled_from([b"", b"\x00", b"}", b'"', b"\xff", b"NaN"]))
    parse_or_typed(raw)


# --- over HTTP: success and error statuses --------------------------------------------------------


@contextmanager
def serving(status: int, body: bytes, headers: dict[str, str]) -> Iterator[SiliconFlow]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        yield SiliconFlow(api_key=KEY, base_url="https://api.example.test/v1", http_client=http,
                          retry=None)  # fmt: skip


@FUZZ
@given(
    status=st.integers(400, 599),
    body=BODIES,
    trace=st.none() | st.from_regex(r"[0-9a-f]{8,32}", fullmatch=True),
)
@example(status=400, body=UNREADABLE_CODE, trace=None)
@example(status=503, body=HUGE_CODE, trace=None)
@example(status=500, body=DEEP, trace=None)
@example(status=503, body=DEEP_OBJECT, trace=None)
def test_error_statuses_always_raise_their_status_error(
    status: int, body: bytes, trace: str | None
) -> None:
    headers = {} if trace is None else {"x-siliconcloud-trace-id": trace}
    with serving(status, body, headers) as client, pytest.raises(APIStatusError) as info:
        client.complete(REQUEST)
    error = info.value
    assert type(error) is status_error_class(status)
    assert (error.status_code, error.trace_id) == (status, trace)
    assert str(error).startswith(f"HTTP {status}")
    repr(error)


@FUZZ
@given(body=BODIES)
@example(body=UNREADABLE_CODE)
@example(body=HUGE_CODE)
@example(body=DEEP)
@example(body=DEEP_OBJECT)
def test_success_status_bodies_answer_or_raise_typed_errors(body: bytes) -> None:
    with serving(200, body, {}) as client:
        try:
            completion = client.complete(REQUEST)
        except SFAgentError:
            return
    exercise(completion)


# --- error objects and random JSON inside a stream ------------------------------------------------

FIRST_CHUNK = (
    b'data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
)


@FUZZ
@given(
    payload=ERROR_OBJECT.map(json.dumps) | JSON.map(json.dumps),
    framing=st.sampled_from(["bare", "data", "event: error"]),
)
@example(payload=UNREADABLE_CODE.decode(), framing="bare")
@example(payload=DEEP.decode(), framing="bare")
@example(payload=DEEP_OBJECT.decode(), framing="bare")
@example(payload=DEEP_OBJECT.decode(), framing="data")
@example(payload=DEEP_OBJECT.decode(), framing="event: error")
def test_anything_inside_a_stream_raises_only_typed_errors(payload: str, framing: str) -> None:
    line = payload.replace("\n", " ").encode()
    if framing == "data":
        line = b"data: " + line
    elif framing == "event: error":
        line = b"event: error\ndata: " + line
    state = StreamState(trace_id="t")
    try:
        state.feed(FIRST_CHUNK + line + b"\n\ndata: [DONE]\n\n")
        completion = state.finish()
    except SFAgentError:
        return
    exercise(completion)


@FUZZ
@given(body=BODIES | COMPLETION.map(json.dumps).map(str.encode), data=st.data())
@example(body=DEEP_OBJECT, data=None)
@example(body=b'{"code": 50505, "message": "busy", "data": null}', data=None)
def test_a_json_answer_to_a_stream_request_folds_or_raises_typed_errors(
    body: bytes, data: st.DataObject | None
) -> None:
    # A server that ignores stream: true answers with JSON; read in random pieces.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=4))) if data else []
    state = StreamState(trace_id="t", content_type="application/json")
    try:
        chunks = []
        for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
            chunks += state.feed(body[start:end])
        chunks += state.end()
    except SFAgentError:
        return
    assert state.response is not None
    exercise(state.response)
    assert len(chunks) <= 1  # a plain body is one chunk (an event stream: what it held)


IDS = st.sampled_from(["a", "b", None])
FRAGMENTS = st.sampled_from(["{", "}", '{"x": 1}', '"k": "}{"', ", ", "[1]", "", '{"y"'])


@FUZZ
@given(
    fragments=st.lists(
        st.tuples(IDS, st.none() | st.integers(0, 2), FRAGMENTS, st.sampled_from(["f", None])),
        max_size=12,
    )
)
@example(fragments=[("x", None, '{"a": 1, "b": 2}', "f"), ("x", None, '{"a": 10, "b": 20}', "f")])
def test_tool_call_fragments_are_never_lost(
    fragments: list[tuple[str | None, int | None, str, str | None]],
) -> None:
    # Ids reused or repeated, indexes missing: however they are grouped, every fragment's
    # arguments end up in exactly one call, in the order they came.
    state = StreamState()
    for call_id, index, arguments, name in fragments:
        fragment: dict[str, Any] = {"function": {"arguments": arguments}}
        if call_id is not None:
            fragment["id"] = call_id
        if index is not None:
            fragment["index"] = index
        if name is not None:
            fragment["function"]["name"] = name
        chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]}
        state.feed(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    state.feed(b"data: [DONE]\n\n")
    calls = state.finish().message.tool_calls if fragments else None
    joined = "".join(call.function.arguments for call in calls or ())
    assert sorted(joined) == sorted("".join(arguments for _, _, arguments, _ in fragments))


@FUZZ
@given(
    payload=st.lists(JSON.map(json.dumps), max_size=6),
    framing=st.sampled_from(["bare", "data", "unterminated"]),
    cap=st.integers(1, 400),
    split=st.integers(1, 64),
)
def test_tiny_caps_give_only_typed_errors(
    payload: list[str], framing: str, cap: int, split: int
) -> None:
    lines = [p.replace("\n", " ").encode() for p in payload]
    if framing == "data":
        lines = [b"data: " + line for line in lines]
    body = FIRST_CHUNK + b"\n\n".join(lines) + (b"" if framing == "unterminated" else b"\n\n")
    state = StreamState(max_response_bytes=cap)
    try:
        for at in range(0, len(body), split):
            state.feed(body[at : at + split])
        state.feed(b"data: [DONE]\n\n")
        completion = state.finish()
    except SFAgentError:
        return
    exercise(completion)


# --- a whole agent turn on random bodies ----------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First addend.
        b: Second addend.
    """
    return a + b


@settings(FUZZ, max_examples=120)
@given(body=COMPLETION.map(json.dumps).map(str.encode) | BODIES)
@example(body=UNREADABLE_CODE)
def test_agent_runs_on_random_bodies_end_typed(body: bytes) -> None:
    with serving(200, body, {}) as client:
        agent = Agent("m", client=client, tools=[add], max_turns=2)
        try:
            result = agent.run_sync("hi")
        except AgentRunError as exc:
            messages = exc.result.messages
        else:
            assert isinstance(result.output, str)
            messages = json.loads(result.to_json())
    assert messages[0] == {"role": "user", "content": "hi"}
    json.dumps(messages)
