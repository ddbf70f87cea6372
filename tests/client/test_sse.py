"""The SSE decoder: the spec's line and field rules, [DONE], and bare JSON errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfagent.client._sse import SSEDecoder, SSEEvent


def _decode(*reads: bytes, close: bool = True) -> tuple[list[SSEEvent], SSEDecoder]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for data in reads:
        events += decoder.decode(data)
    if close:
        events += decoder.close()
    return events, decoder


def _data(*reads: bytes) -> list[bytes]:
    return [e.data for e in _decode(*reads)[0]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"data: a\n\n", [b"a"]),
        (b"data:a\n\n", [b"a"]),
        (b"data:  a\n\n", [b" a"]),  # only one space is eaten
        (b"data: a\r\n\r\n", [b"a"]),
        (b"data: a\r\rdata: b\r\r", [b"a", b"b"]),
        (b"data: a\n\ndata: b\n\n", [b"a", b"b"]),
        (b"data: a\ndata: b\n\n", [b"a\nb"]),
        (b"data\ndata: x\n\n", [b"\nx"]),  # a bare "data" line is an empty data line
        (b"data:\n\n", [b""]),
        (b": keep-alive\n\ndata: a\n\n", [b"a"]),
        (b"\n\n\ndata: a\n\n\n\n", [b"a"]),
        (b"event: x\n\n", []),  # no data: nothing is dispatched
        (b"unknown: field\ndata: a\n\n", [b"a"]),
        (b"\xef\xbb\xbfdata: a\n\n", [b"a"]),
        (b"data: a", []),  # an event without its blank line is dropped at the end
        (b"data: \xe4\xbd\xa0\xe5\xa5\xbd\n\n", ["你好".encode()]),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_event_framing(body: bytes, expected: list[bytes]) -> None:
    assert _data(body) == expected


def test_event_id_and_retry_fields_follow_the_spec() -> None:
    events, decoder = _decode(
        b"event: message\nid: 7\nretry: 3000\ndata: a\n\n"
        b"retry: soon\ndata: b\n\n"
        b"id: bad\0id\nevent: other\ndata: c\n\n"
    )
    assert [(e.event, e.id, e.retry) for e in events] == [
        ("message", "7", 3000),
        (None, "7", 3000),  # the id persists, the event name does not; a bad retry is ignored
        ("other", "7", 3000),  # an id containing NUL is ignored
    ]
    assert decoder.last_event_id == "7"
    assert decoder.retry == 3000


def test_text_decodes_invalid_utf8_with_replacement() -> None:
    events, _ = _decode(b"data: \xff\n\n")
    assert events[0].text == "\ufffd"


@pytest.mark.parametrize(
    "reads",
    [
        [b"data: [DONE]\n\n"],
        [b"data:[DONE]\n\n"],
        [b"data: [DONE]"],  # no blank line before the connection closed
        [b"data: [DO", b"NE]\r\n", b"\r\n"],
    ],
)
def test_done_ends_the_stream(reads: list[bytes]) -> None:
    events, decoder = _decode(*reads)
    assert events == []
    assert decoder.done


def test_input_after_done_is_ignored() -> None:
    events, decoder = _decode(b"data: a\n\ndata: [DONE]\n\ndata: b\n\n", b"data: c\n\n")
    assert [e.data for e in events] == [b"a"]
    assert decoder.done


def test_without_done_the_decoder_is_not_done() -> None:
    _, decoder = _decode(b"data: a\n\n")
    assert not decoder.done


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"code":60000,"message":"boom","data":null}',
            b'{"code":60000,"message":"boom","data":null}',
        ),
        (b'data: a\n\n{"code":60000,"message":"x"}\n', b'{"code":60000,"message":"x"}'),
        (b'  {"error": {"message": "x"}}\r\n', b'  {"error": {"message": "x"}}'),
        (
            b'{\n  "code": 50505,\n  "message": "busy"\n}\n',
            b'{\n  "code": 50505,\n  "message": "busy"\n}',
        ),
        (b'{"code": 1, "mess\n\n', b'{"code": 1, "mess'),  # cut short: still surfaced
    ],
)
def test_bare_json_lines_come_out_as_bare_events(body: bytes, expected: bytes) -> None:
    events, _ = _decode(body)
    bare = [e for e in events if e.bare]
    assert [e.data for e in bare] == [expected]


def test_a_bare_error_is_seen_without_waiting_for_the_end() -> None:
    events, _ = _decode(b'{"code":60000,"message":"x"}\n', close=False)
    assert [e.bare for e in events] == [True]


def test_a_comment_that_looks_like_json_is_still_a_comment() -> None:
    assert _decode(b':{"code":1,"message":"x"}\n\n')[0] == []


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_split_of_a_fixture_gives_the_same_events(fixtures_dir: Path, size: int) -> None:
    raw = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes().replace(b"\n", b"\r\n")
    whole, _ = _decode(raw)
    reads = [raw[i : i + size] for i in range(0, len(raw), size)]
    split, decoder = _decode(*reads)
    assert split == whole
    assert len(whole) == 4
    assert decoder.done


def test_a_bom_split_across_reads_is_removed() -> None:
    assert _data(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [b"a"]


def test_a_crlf_split_across_reads_is_one_line_end() -> None:
    # Were the LF taken as a second line end, the blank line would dispatch "a" alone.
    assert _data(b"data: a\r", b"\ndata: b\r\n\r\n") == [b"a\nb"]


def test_empty_reads_are_harmless() -> None:
    assert _data(b"", b"data: a\n", b"", b"\n", b"") == [b"a"]
