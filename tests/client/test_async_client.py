"""AsyncSiliconFlow: the same contract as the sync client, over both async transports."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfagent.client import AsyncChatStream, AsyncSiliconFlow
from sfagent.client.retry import RetryPolicy
from sfagent.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    InternalServerError,
)
from sfagent.settings import ChatRequest
from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall
from tests.client.scripted_http import Handler, scripted

pytestmark = pytest.mark.anyio

KEY = "sk-FAKEKEY-async-0987654321-DO-NOT-LEAK"
REQUEST = ChatRequest([{"role": "user", "content": "Hello"}], model="Qwen/Qwen3-8B")
RETRYABLE = {429, 500, 502, 503, 504}


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@asynccontextmanager
async def mock_client(
    handler: Handler, **kwargs: Any
) -> AsyncIterator[tuple[AsyncSiliconFlow, FakeSleep]]:
    sleep = FakeSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = AsyncSiliconFlow(
            api_key=KEY,
            base_url="https://api.example.test/v1",
            http_client=http,
            sleep=sleep,
            **kwargs,
        )
        async with client:
            yield client, sleep


async def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SILICONFLOW_API_KEY"):
        AsyncSiliconFlow()


async def test_every_error_body_maps_to_its_exception(fixtures_dir: Path) -> None:
    entries = json.loads((fixtures_dir / "error_bodies.json").read_text(encoding="utf-8"))
    for entry in entries:
        status, body = entry["status"], entry["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        tries = 3 if status in RETRYABLE else 1
        response = httpx.Response(status, content=raw, headers={"x-siliconcloud-trace-id": "t"})
        handler, seen = scripted(*(response,) * tries)
        async with mock_client(handler) as (client, sleep):
            with pytest.raises(APIStatusError) as info:
                await client.complete(REQUEST)
        assert (info.value.status_code, info.value.trace_id) == (status, "t")
        assert len(seen) == tries
        assert len(sleep.calls) == tries - 1


async def test_429_retry_after_then_success(fixtures_dir: Path) -> None:
    limited = httpx.Response(429, json={"message": "RPM"}, headers={"Retry-After": "1.5"})
    ok = httpx.Response(200, content=(fixtures_dir / "nonstream_tool_call.json").read_bytes())
    handler, seen = scripted(limited, ok)
    async with mock_client(handler) as (client, sleep):
        completion = await client.complete(REQUEST, timeout=9.0)
    assert completion.finish_reason == "tool_calls"
    assert sleep.calls == [1.5]
    assert all(8.5 < value <= 9.0 for value in seen[1].extensions["timeout"].values())
    assert seen[1].headers["authorization"] == f"Bearer {KEY}"


async def test_400_never_retried_and_timeouts_typed() -> None:
    handler, seen = scripted(httpx.Response(400, json={"code": 20015, "message": "bad"}))
    async with mock_client(handler, retry=RetryPolicy(max_attempts=5)) as (client, sleep):
        with pytest.raises(BadRequestError):
            await client.complete(REQUEST)
    assert (len(seen), sleep.calls) == (1, [])
    handler, seen = scripted(*(httpx.ConnectTimeout("slow") for _ in range(3)))
    async with mock_client(handler) as (client, sleep):
        with pytest.raises(APITimeoutError):
            await client.complete(REQUEST)
    assert len(seen) == 3


async def test_stream_fixture_retried_before_first_byte(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    handler, seen = scripted(httpx.ReadError("reset"), httpx.Response(200, content=sse))
    async with mock_client(handler) as (client, sleep):
        stream = client.stream(REQUEST)
        assert isinstance(stream, AsyncChatStream)
        async with stream:
            chunks = [chunk async for chunk in stream]
        final = await stream.get_final_response()
    assert len(seen) == 2
    assert len(sleep.calls) == 1
    assert len(chunks) == 4
    assert (final.message.content, final.message.reasoning_content) == ("Hello", "We")


async def test_requests_are_encoded_once_and_unencodable_ones_refused(
    fixtures_dir: Path,
) -> None:
    dated = ChatRequest([{"role": "user", "content": "hi", "sent": datetime.date(2024, 1, 2)}])
    bad = ChatRequest([{"role": "user", "content": "hi", "sent": object()}])
    ok = httpx.Response(200, content=(fixtures_dir / "nonstream_tool_call.json").read_bytes())
    handler, seen = scripted(ok)
    async with mock_client(handler) as (client, _):
        await client.complete(dated)
        with pytest.raises(ConfigurationError, match=r"at messages\[0\]\.sent: .*object"):
            await client.complete(bad)
        with pytest.raises(ConfigurationError, match=r"at messages\[0\]\.sent: .*object"):
            client.stream(bad)
    assert [r.content for r in seen] == [dated.to_json()]


async def test_unparseable_success_body() -> None:
    handler, _ = scripted(httpx.Response(200, content=b"<html>oops</html>"))
    async with mock_client(handler) as (client, _):
        with pytest.raises(APIResponseValidationError):
            await client.complete(REQUEST)


# --- end to end, over the default transport and over plain httpx --------------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(params=["default", "httpx"])
async def client(
    request: pytest.FixtureRequest, server: LoopbackServer
) -> AsyncIterator[tuple[AsyncSiliconFlow, FakeSleep]]:
    sleep = FakeSleep()
    if request.param == "default":
        async with AsyncSiliconFlow(api_key=KEY, base_url=server.base_url, sleep=sleep) as sf:
            yield sf, sleep
    else:
        async with httpx.AsyncClient() as http:
            sf = AsyncSiliconFlow(
                api_key=KEY, base_url=server.base_url, http_client=http, sleep=sleep
            )
            async with sf:
                yield sf, sleep
            assert not http.is_closed


async def test_e2e_complete_stream_models(
    server: LoopbackServer, client: tuple[AsyncSiliconFlow, FakeSleep]
) -> None:
    sf, _ = client
    calls = [ScriptedToolCall("a", {"x": 1}), ScriptedToolCall("b", {"y": [1, 2]})]
    server.add(Reply(text="Hi", reasoning="r"), Reply(tool_calls=calls))
    plain = await sf.complete(REQUEST)
    assert (plain.message.content, plain.message.reasoning_content) == ("Hi", "r")
    async with sf.stream(REQUEST) as stream:
        async for _ in stream:
            pass
    final = stream.response
    assert final is not None
    assert final.message.tool_calls is not None
    assert [json.loads(c.function.arguments) for c in final.message.tool_calls] == [
        {"x": 1},
        {"y": [1, 2]},
    ]
    assert "Qwen/Qwen3-8B" in await sf.list_models()


async def test_e2e_retries_and_faults(
    server: LoopbackServer, client: tuple[AsyncSiliconFlow, FakeSleep]
) -> None:
    sf, sleep = client
    server.add(
        Reply.error(429, {"message": "TPM limit reached.", "data": None}, retry_after=2),
        Reply(text="ok"),
        Reply(fault="drop_before_response"),
        Reply(text="streamed"),
        Reply(text="x y z", fault="drop_mid_stream"),
        Reply(text="x", stream_error={"code": 60000, "message": "boom", "data": None}),
        Reply.error(401, "Api key is invalid"),
    )
    assert (await sf.complete(REQUEST)).message.content == "ok"
    assert sleep.calls[0] == 2.0
    assert (await sf.stream(REQUEST).get_final_response()).message.content == "streamed"
    with pytest.raises(IncompleteStreamError) as broken:
        await sf.stream(REQUEST).get_final_response()
    assert broken.value.partial is not None
    with pytest.raises(InternalServerError) as mid:
        await sf.stream(REQUEST).get_final_response()
    assert mid.value.code == 60000
    with pytest.raises(AuthenticationError):
        await sf.complete(REQUEST)
    assert len(server.requests) == 7
    assert len(sleep.calls) == 2


async def test_e2e_stream_closed_early(
    server: LoopbackServer, client: tuple[AsyncSiliconFlow, FakeSleep]
) -> None:
    sf, _ = client
    server.add(Reply(text="one two three four", chunk_delay=0.01))
    stream = sf.stream(REQUEST)
    async with stream:
        await stream.__anext__()
    assert [c async for c in stream] == []
    with pytest.raises(IncompleteStreamError):
        await stream.get_final_response()


async def test_e2e_read_timeout(server: LoopbackServer) -> None:
    server.add(Reply(text="late", delay=1.0))
    sf = AsyncSiliconFlow(api_key=KEY, base_url=server.base_url, retry=None, timeout=0.05)
    async with sf:
        with pytest.raises(APITimeoutError):
            await sf.complete(REQUEST)


async def test_the_key_never_leaks(
    server: LoopbackServer,
    client: tuple[AsyncSiliconFlow, FakeSleep],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sf, _ = client
    caplog.set_level(logging.DEBUG)
    server.add(Reply.error(401, f"Invalid token {KEY}"), Reply.error(503, {"message": KEY}))
    errors: list[Exception] = []
    for _ in range(2):
        with pytest.raises(APIStatusError) as info:
            await sf.complete(REQUEST)
        errors.append(info.value)
    dead = AsyncSiliconFlow(api_key=KEY, base_url="http://127.0.0.1:9/v1", retry=None)
    async with dead:
        with pytest.raises(APIConnectionError) as refused:
            await dead.complete(REQUEST)
    errors.append(refused.value)
    texts = [repr(sf), repr(dead), repr(sf.stream(REQUEST))]
    texts += [r.getMessage() for r in caplog.records]
    texts += [f"{e} {e!r} {getattr(e, 'body', None)!r}" for e in errors]
    assert all(KEY not in text for text in texts)


async def test_e2e_disconnect_is_a_connection_error_not_a_timeout(server: LoopbackServer) -> None:
    # httpx-aiohttp reports a server disconnect as httpx.ConnectTimeout; we look beneath it.
    server.add(Reply(fault="drop_before_response"))
    async with AsyncSiliconFlow(api_key=KEY, base_url=server.base_url, retry=None) as sf:
        with pytest.raises(APIConnectionError) as info:
            await sf.complete(REQUEST)
    assert not isinstance(info.value, APITimeoutError)


async def test_default_transport_respects_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from sfagent.client._transport import KeepAliveTransport

    for name in ("HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with AsyncSiliconFlow(api_key=KEY) as direct:
        assert isinstance(direct._transport, KeepAliveTransport)
        assert direct._http is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    async with AsyncSiliconFlow(api_key=KEY) as proxied:  # httpx's client applies the proxy
        assert isinstance(proxied._http, httpx.AsyncClient)
        assert proxied._transport is None


async def test_e2e_streams_reuse_the_connection(
    server: LoopbackServer, client: tuple[AsyncSiliconFlow, FakeSleep]
) -> None:
    sf, _ = client
    server.add(*(Reply(text="a b c") for _ in range(3)), Reply(text="d"))
    for _ in range(3):
        await sf.stream(REQUEST).get_final_response()
    await sf.complete(REQUEST)
    assert server.connections == 1


async def test_a_refused_stream_options_is_dropped_and_remembered(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    refused = httpx.Response(400, json={"error": {"message": "Unknown field: stream_options"}})
    handler, seen = scripted(
        refused, httpx.Response(200, content=sse), httpx.Response(200, content=sse)
    )
    async with mock_client(handler) as (client, _):
        for _ in range(2):
            async with client.stream(REQUEST) as stream:
                await stream.get_final_response()
    asked = ["stream_options" in json.loads(r.content) for r in seen]
    assert asked == [True, False, False]
