"""Properties of the stream layer over inputs too many to list: splits, line endings, junk."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from sfagent.client._sse import SSEDecoder
from sfagent.exceptions import SFAgentError
from sfagent.messages import ChatCompletion
from sfagent.streaming import StreamState
from tests.conftest import FIXTURES

STREAMS = {
    name: (FIXTURES / name).read_bytes()
    for name in ("stream_reasoning_r1.sse", "stream_parallel_tool_calls_deepseek.sse")
}

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
)  # includes CJK, emoji, control characters: all must survive a split


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def _run(reads: list[bytes]) -> ChatCompletion:
    state = StreamState()
    for data in reads:
        state.feed(data)
    return state.finish()


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, str, str, list[tuple[str, str]]]:
    """A stream of content, reasoning and tool-call deltas, plus what it must fold into."""
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    space = draw(st.sampled_from([b" ", b""]))
    content, reasoning = [], []
    calls: list[list[str]] = []
    events = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["content", "reasoning", "both", "call", "args", "empty"]))
        delta: dict[str, object] = {}
        if kind in ("content", "both"):
            delta["content"] = text = draw(_TEXT)
            content.append(text)
        if kind in ("reasoning", "both"):
            delta["reasoning_content"] = text = draw(_TEXT)
            reasoning.append(text)
        if kind == "call" or (kind == "args" and not calls):
            calls.append([])
            index = len(calls) - 1
            delta["tool_calls"] = [{"index": index, "id": f"id{index}", "function": {"name": "f"}}]
        elif kind == "args":
            index = draw(st.integers(0, len(calls) - 1))
            piece = draw(_TEXT)
            calls[index].append(piece)
            delta["tool_calls"] = [{"index": index, "function": {"arguments": piece}}]
        chunk = {"id": "s", "choices": [] if kind == "empty" else [{"index": 0, "delta": delta}]}
        data = json.dumps(chunk, ensure_ascii=draw(st.booleans())).encode()
        events.append(b"data:" + space + data + newline + newline)
        if draw(st.booleans()):
            events.append(b": keep-alive" + newline)
    events.append(b"data:" + space + b"[DONE]" + newline + newline)
    expected_calls = [(f"id{i}", "".join(parts)) for i, parts in enumerate(calls)]
    return b"".join(events), "".join(content), "".join(reasoning), expected_calls


@given(stream=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_split_folds_to_the_same_message(
    stream: tuple[bytes, str, str, list[tuple[str, str]]], cuts: list[int]
) -> None:
    body, content, reasoning, calls = stream
    whole = _run([body])
    split = _run(_split(body, cuts))

    assert split == whole
    message = whole.message if whole.choices else None
    got_content = (message.content or "") if message else ""
    assert got_content == content
    assert ((message.reasoning_content or "") if message else "") == reasoning
    got_calls = (
        [(c.id, c.function.arguments) for c in (message.tool_calls or [])] if message else []
    )
    assert got_calls == calls


@given(name=st.sampled_from(sorted(STREAMS)), cuts=st.lists(st.integers(0, 10_000), max_size=40))
@settings(max_examples=200, deadline=None)
def test_fixture_streams_survive_any_split(name: str, cuts: list[int]) -> None:
    body = STREAMS[name]
    assert _run(_split(body, cuts)) == _run([body])


@given(cuts=st.lists(st.integers(0, 10_000), max_size=40))
@settings(max_examples=200, deadline=None)
def test_crlf_fixture_split_anywhere_gives_the_same_events(cuts: list[int]) -> None:
    body = STREAMS["stream_reasoning_r1.sse"].replace(b"\n", b"\r\n")

    def events(reads: list[bytes]) -> list[bytes]:
        decoder = SSEDecoder()
        out = [e.data for r in reads for e in decoder.decode(r)]
        return out + [e.data for e in decoder.close()]

    assert events(_split(body, cuts)) == events([body])


_JUNK_PIECES = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"event: error\n",
        b"[DONE]",
        b"{",
        b"}",
        b'{"code":60000,"message":"x"}',
        b'{"error":{"message":"x"}}',
        b'{"choices":[{"delta":{"content":"a"}}]}',
        b'{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}',
        b'{"choices":"x"}',
        b'{"usage":{"total_tokens":"many"}}',
        b"\n",
        b"\r",
        b"\r\n",
        b": comment",
        b"\xff\xfe",
        b"\xef\xbb\xbf",
        b"id: 1\n",
        b"retry: x\n",
        b"null",
        b"[]",
        b'"text"',
    ]
)


@given(
    junk=st.one_of(st.lists(_JUNK_PIECES, max_size=25).map(b"".join), st.binary(max_size=300)),
    cuts=st.lists(st.integers(0, 1000), max_size=10),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_junk_raises_only_typed_errors(junk: bytes, cuts: list[int]) -> None:
    try:
        result = _run(_split(junk, cuts))
    except SFAgentError:
        return
    assert isinstance(result, ChatCompletion)
