"""The key stays sealed on every path a server (or the transport) can carry it back on.

`tests/test_secret_hygiene.py` runs whole conversations; this module drives each path alone, with
a 35-character canary key, and looks everywhere an exception can reach: its text, repr and
traceback, its ``args`` and attributes, its ``__cause__`` and ``__context__`` and theirs, and for
httpx objects their request's headers. No fragment of six or more characters of the key may be
found. A key shorter than six characters is not redacted at all: messages stay readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pydantic
import pytest

from sfagent import Agent, AsyncSiliconFlow, SiliconFlow
from sfagent.events import Event
from sfagent.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    ModelRequestError,
)
from sfagent.settings import ChatRequest

KEY = "sk-CANARY-q7Zp2LxW9vKd4TmB8sRj3Nc6F"
assert len(KEY) == 35
FRAGMENT = 6
"""No run of this many characters of the key may be reachable."""
FRAGMENTS = frozenset(KEY[i : i + FRAGMENT] for i in range(len(KEY) - FRAGMENT + 1))
MODEL = "Qwen/Qwen3-8B"
BASE_URL = "http://sf.test/v1"
DEAD_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
REQUEST = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
TRACE = "x-siliconcloud-trace-id"
CUT = 500  # where server messages and bodies are cut
_CODE = types.FunctionType | types.MethodType | types.BuiltinFunctionType


# --- looking everywhere ----------------------------------------------------------------------


def reachable_texts(root: object, label: str = "root") -> Iterator[tuple[str, str]]:
    """Every text reachable from `root`, labelled with the path that reached it.

    Exceptions give their str, repr, traceback, ``args``, attributes, cause and context; httpx
    errors their request, requests and responses their URL and headers (credentials included);
    containers, dataclasses, pydantic models and plain objects their contents.
    """
    stack: list[tuple[str, object, int]] = [(label, root, 0)]
    seen: list[object] = []  # held, so that no id is reused while walking
    ids: set[int] = set()
    while stack:
        where, obj, depth = stack.pop()
        if obj is None or isinstance(obj, bool | int | float) or depth > 12:
            continue
        if isinstance(obj, str):
            yield where, obj
            continue
        if isinstance(obj, bytes | bytearray | memoryview):
            yield where, bytes(obj).decode("utf-8", errors="replace")
            continue
        if id(obj) in ids or isinstance(obj, type | types.ModuleType | _CODE):
            continue
        ids.add(id(obj))
        seen.append(obj)
        stack.extend((f"{where}.{name}", value, depth + 1) for name, value in _children(obj))
        if isinstance(obj, BaseException):
            yield f"str({where})", str(obj)
            yield f"repr({where})", repr(obj)
            yield f"traceback({where})", "".join(traceback.format_exception(obj))
        elif not isinstance(obj, Mapping | list | tuple | set | frozenset):
            yield f"repr({where})", repr(obj)


def _children(obj: object) -> Iterator[tuple[str, object]]:
    if isinstance(obj, BaseException):
        yield "args", obj.args
        yield "__cause__", obj.__cause__
        yield "__context__", obj.__context__
        if isinstance(obj, httpx.HTTPError):
            with contextlib.suppress(RuntimeError):  # no request attached
                yield "request", obj.request
        if isinstance(obj, pydantic.ValidationError):
            yield "errors()", obj.errors()
    if isinstance(obj, httpx.Request):
        yield "url", str(obj.url)
        yield "headers", obj.headers.multi_items()
        return
    if isinstance(obj, httpx.Response):
        yield "headers", obj.headers.multi_items()
        yield "request", obj.request
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield f"[{key!r}]", key
            yield f"[{key!r}]", value
        return
    if isinstance(obj, list | tuple | set | frozenset):
        yield from ((f"[{i}]", item) for i, item in enumerate(obj))
        return
    if isinstance(obj, pydantic.BaseModel):
        yield "model_dump()", obj.model_dump()
    if dataclasses.is_dataclass(obj):
        yield from ((f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj))
    yield from getattr(obj, "__dict__", {}).items()
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__"):
                yield name, getattr(obj, name, None)


def leaks(*roots: object) -> list[str]:
    """Where a fragment of the key was found, with the text around it."""
    found = []
    for index, root in enumerate(roots):
        for where, text in reachable_texts(root, f"root{index}"):
            hits = sorted(f for f in FRAGMENTS if f in text)
            if hits:
                at = text.find(hits[0])
                found.append(f"{where}: …{text[max(0, at - 60) : at + 60]!r}…")
    return found


def assert_sealed(*roots: object) -> None:
    found = leaks(*roots)
    assert not found, "the key leaked:\n" + "\n".join(found[:20])


def test_the_walker_finds_the_key_where_it_hides() -> None:
    request = httpx.Request("GET", BASE_URL, headers={"Authorization": f"Bearer {KEY}"})
    inner = httpx.ConnectError("refused", request=request)
    outer = APIConnectionError("refused")
    outer.__context__ = inner
    assert leaks(outer)  # through the context, to the request's headers
    assert leaks(APIResponseValidationError("bad", body="x" * 30 + KEY[:6]))
    assert not leaks(APIResponseValidationError("bad", body="x" * 30 + KEY[:5]))


# --- clients over a scripted transport ---------------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, *, key: str = KEY) -> SiliconFlow:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return SiliconFlow(api_key=key, base_url=BASE_URL, retry=None, http_client=http)


def async_client(handler: Handler, *, key: str = KEY) -> AsyncSiliconFlow:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncSiliconFlow(api_key=key, base_url=BASE_URL, retry=None, http_client=http)


def answer(
    status: int = 200, body: bytes | str | object = b"", *, headers: Mapping[str, str] = {}
) -> Handler:
    if isinstance(body, str):
        content = body.encode()
    elif isinstance(body, bytes):
        content = body
    else:
        content = json.dumps(body).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=dict(headers))

    return handler


def sse(*events: object) -> bytes:
    lines = [e if isinstance(e, bytes) else b"data: " + json.dumps(e).encode() for e in events]
    return b"".join(line + b"\n\n" for line in lines)


def chunk(content: str) -> dict[str, Any]:
    delta = {"role": "assistant", "content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


def complete(handler: Handler, *, key: str = KEY) -> BaseException:
    with client(handler, key=key) as c, pytest.raises(APIError) as info:
        c.complete(REQUEST)
    return info.value


def stream(handler: Handler, *, key: str = KEY) -> BaseException:
    with client(handler, key=key) as c, pytest.raises(APIError) as info, c.stream(REQUEST) as s:
        s.get_final_response()
    return info.value


def complete_async(handler: Handler) -> BaseException:
    async def go() -> None:
        async with async_client(handler) as c:
            await c.complete(REQUEST)

    with pytest.raises(APIError) as info:
        asyncio.run(go())
    return info.value


# --- 1. a key echoed just before the cut -------------------------------------------------------

AT_THE_CUT = "m" * (CUT - 30) + KEY + " is not a valid key"
"""A message whose key starts 30 characters before the cut: 29 of them would survive it."""


@pytest.mark.parametrize(
    "case",
    ["json status", "text status", "error object after 200", "mid-stream error", "async status"],
)
def test_a_key_echoed_at_the_cut_is_redacted_before_the_cut(case: str) -> None:
    body = {"code": 20015, "message": AT_THE_CUT, "data": None}
    if case == "json status":
        error = complete(answer(400, body))
    elif case == "text status":
        error = complete(answer(401, AT_THE_CUT))
    elif case == "error object after 200":
        error = complete(answer(200, body))
    elif case == "mid-stream error":
        error = stream(answer(200, sse(chunk("a"), json.dumps(body).encode())))
    else:
        error = complete_async(answer(400, body))
    assert isinstance(error, APIStatusError)
    assert_sealed(error)
    # Redacted before it was cut: the message is whole, and readable.
    assert error.message == "m" * (CUT - 30) + "*** is not a valid key"


# --- 2. bodies that are not what they should be ------------------------------------------------

NOT_A_COMPLETION = {"object": "chat.completion", "choices": "none", "echo": f"Bearer {KEY}"}


@pytest.mark.parametrize(
    "case",
    [
        "completion",
        "completion at the cut",
        "completion not json",
        "chunk",
        "chunk not json",
        "models",
        "models not json",
        "async completion",
    ],
)
def test_an_unreadable_body_keeps_no_key(case: str) -> None:
    if case == "completion":
        error = complete(answer(200, NOT_A_COMPLETION))
    elif case == "completion at the cut":
        error = complete(answer(200, "x" * (CUT - 20) + KEY))
    elif case == "completion not json":
        error = complete(answer(200, f"<html>bad key {KEY}</html>"))
    elif case == "chunk":
        error = stream(answer(200, sse(chunk("a"), {"choices": 5, "key": KEY})))
    elif case == "chunk not json":
        error = stream(answer(200, sse(chunk("a"), f"data: {{{KEY}".encode())))
    elif case.startswith("models"):
        body = {"data": KEY} if case == "models" else f"nope {KEY}"
        with client(answer(200, body)) as c, pytest.raises(APIError) as info:
            c.list_models()
        error = info.value
    else:
        error = complete_async(answer(200, NOT_A_COMPLETION))
    assert isinstance(error, APIResponseValidationError)
    assert_sealed(error)
    assert error.__context__ is None  # the parser's error holds the raw body
    assert "***" in (error.body or "")


# --- 3. a trace id that echoes the key ---------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["status", "error object after 200", "mid-stream error", "stream", "completion"]
)
def test_a_trace_id_that_echoes_the_key(case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sfagent")
    headers = {TRACE: f"trace-{KEY}"}
    seen: list[object] = []
    if case == "status":
        seen.append(complete(answer(429, {"message": "slow down"}, headers=headers)))
    elif case == "error object after 200":
        seen.append(complete(answer(200, {"code": 50505, "message": "busy"}, headers=headers)))
    elif case == "mid-stream error":
        body = sse(chunk("a"), b'{"code": 50505, "message": "busy"}')
        seen.append(stream(answer(200, body, headers=headers)))
    elif case == "stream":
        body = sse(chunk("a"), b"data: [DONE]")
        with client(answer(200, body, headers=headers)) as c, c.stream(REQUEST) as s:
            seen.append(s.get_final_response())
            seen.append(s.trace_id)
            assert (s.trace_id or "").startswith("trace-")
    else:
        with client(answer(200, COMPLETION, headers=headers)) as c:
            seen.append(c.complete(REQUEST))
    for error in seen:
        if isinstance(error, APIStatusError):
            assert (error.trace_id or "").startswith("trace-")
    records = [r for r in caplog.records if r.name == "sfagent"]
    assert any("trace id" in r.getMessage() for r in records)
    assert_sealed(*seen, [vars(r) for r in records], [r.getMessage() for r in records])


# --- 4. connection errors and timeouts ---------------------------------------------------------


def _raising(exc_type: type[httpx.TransportError], message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return handler


def _breaking_stream(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield sse(chunk("partial"))
            raise exc_type(f"gone {KEY}", request=request)

        return httpx.Response(200, content=body())

    return handler


def refused_sync() -> BaseException:
    with (
        SiliconFlow(api_key=KEY, base_url=DEAD_URL, retry=None) as c,
        pytest.raises(APIError) as info,
    ):
        c.complete(REQUEST)
    return info.value


def refused_async() -> BaseException:
    async def go() -> None:
        async with AsyncSiliconFlow(api_key=KEY, base_url=DEAD_URL, retry=None) as c:
            await c.complete(REQUEST)

    with pytest.raises(APIError) as info:
        asyncio.run(go())
    return info.value


TRANSPORT_CASES: dict[str, tuple[Callable[[], BaseException], type[APIError], str]] = {
    "refused": (refused_sync, APIConnectionError, "ConnectError"),
    "refused, async": (refused_async, APIConnectionError, "Connect"),
    "read timeout": (
        lambda: complete(_raising(httpx.ReadTimeout, "timed out")),
        APITimeoutError,
        "ReadTimeout",
    ),
    "connect timeout, async": (
        lambda: complete_async(_raising(httpx.ConnectTimeout, "timed out")),
        APITimeoutError,
        "ConnectTimeout",
    ),
    "protocol error echoing the key": (
        lambda: complete(_raising(httpx.RemoteProtocolError, f"illegal header {KEY}")),
        APIConnectionError,
        "RemoteProtocolError",
    ),
    "stream broken mid-way": (
        lambda: stream(_breaking_stream(httpx.ReadError)),
        IncompleteStreamError,
        "ReadError",
    ),
    "stream read timeout": (
        lambda: stream(_breaking_stream(httpx.ReadTimeout)),
        APITimeoutError,
        "ReadTimeout",
    ),
}


@pytest.mark.parametrize("case", list(TRANSPORT_CASES))
def test_transport_errors_do_not_chain_the_request(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sfagent")
    fail, expected, kind = TRANSPORT_CASES[case]
    error = fail()
    assert isinstance(error, expected)
    assert_sealed(error, [vars(r) for r in caplog.records])
    assert kind in str(error)  # the transport's error is named, not chained
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("call", [complete, stream])
def test_an_undecodable_body_does_not_chain_the_request(
    call: Callable[[Handler], BaseException], encoding: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = iter([f"not compressed {KEY}".encode()])  # a stream: decoded as it is read
        return httpx.Response(200, content=body, headers={"content-encoding": encoding})

    error = call(handler)
    assert isinstance(error, APIResponseValidationError)
    assert_sealed(error)
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert not [e for e in chain if isinstance(e, httpx.HTTPError)]


# --- 5. a whole run: events, the error it ends with, its transcript -----------------------------


@pytest.mark.parametrize("driver", ["stream_sync", "run"])
def test_a_run_ending_in_an_echoed_key_shows_none_of_it(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"code": 20015, "message": AT_THE_CUT, "data": {"key": KEY}}
    handler = answer(400, body, headers={TRACE: KEY})
    events: list[Event] = []
    if driver == "stream_sync":
        with (
            client(handler) as c,
            Agent(MODEL, client=c) as agent,
            pytest.raises(ModelRequestError) as info,
        ):
            events.extend(agent.stream_sync("hi"))
    else:

        async def go() -> None:
            async with async_client(handler) as c:
                await Agent(MODEL, client=c).run("hi")

        with pytest.raises(ModelRequestError) as info:
            asyncio.run(go())
    error = info.value
    assert isinstance(error.error, APIStatusError)
    transcript = error.result.to_json() if error.result is not None else ""
    assert_sealed(error, events, transcript, [vars(r) for r in caplog.records])


# --- 6. a short key redacts nothing ------------------------------------------------------------

PLAIN = "ValueError, current limit exceeded for this model"


@pytest.mark.parametrize("key", ["e", "rrent"])
def test_a_short_key_leaves_messages_readable(
    key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfagent.cli._report import report

    headers = {TRACE: "trace-e-rrent"}
    status = complete(answer(400, {"code": 20015, "message": PLAIN}, headers=headers), key=key)
    assert isinstance(status, APIStatusError)
    assert (status.message, status.trace_id) == (PLAIN, "trace-e-rrent")
    assert str(status) == f"HTTP 400, code 20015: {PLAIN} (trace id trace-e-rrent)"
    assert status.body == {"code": 20015, "message": PLAIN}

    midstream = stream(answer(200, sse(chunk("a"), {"error": {"message": PLAIN}})), key=key)
    assert isinstance(midstream, APIStatusError)
    assert midstream.message == PLAIN

    invalid = complete(answer(200, {"choices": "current"}), key=key)
    assert isinstance(invalid, APIResponseValidationError)
    assert invalid.body == '{"choices": "current"}'

    monkeypatch.setenv("SILICONFLOW_API_KEY", key)
    report(status, debug=False)
    assert PLAIN in capsys.readouterr().err
