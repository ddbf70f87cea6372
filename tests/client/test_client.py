"""SiliconFlow (sync): MockTransport unit tests and loopback end-to-end tests."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfagent._version import __version__
from sfagent.client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ChatStream, SiliconFlow
from sfagent.client._body import ACCEPT_ENCODING
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
    RateLimitError,
    ServiceUnavailableError,
)
from sfagent.settings import ChatRequest
from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall
from tests.client.scripted_http import Handler, scripted

KEY = "sk-FAKEKEY-1234567890abcdef-DO-NOT-LEAK"
REQUEST = ChatRequest([{"role": "user", "content": "Hello"}], model="Qwen/Qwen3-8B")
RETRYABLE = {429, 500, 502, 503, 504}


@contextmanager
def mock_client(handler: Handler, **kwargs: Any) -> Iterator[tuple[SiliconFlow, list[float]]]:
    sleeps: list[float] = []
    kwargs.setdefault("base_url", "https://api.example.test/v1")
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = SiliconFlow(api_key=KEY, http_client=http, sleep=sleeps.append, **kwargs)
        with client:
            yield client, sleeps


def ok_json(fixtures_dir: Path) -> httpx.Response:
    body = (fixtures_dir / "nonstream_tool_call.json").read_bytes()
    return httpx.Response(200, content=body, headers={"x-siliconcloud-trace-id": "t-ok"})


# --- configuration -------------------------------------------------------------------------------


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SILICONFLOW_API_KEY"):
        SiliconFlow()
    with pytest.raises(ConfigurationError, match="SILICONFLOW_API_KEY"):
        SiliconFlow(api_key="  ")


def test_environment_supplies_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    monkeypatch.delenv("SILICONFLOW_BASE_URL", raising=False)
    with SiliconFlow() as client:
        assert client.base_url == DEFAULT_BASE_URL == "https://api.siliconflow.cn/v1"
    monkeypatch.setenv("SILICONFLOW_BASE_URL", "https://api.siliconflow.com/v1/")
    with SiliconFlow() as client:
        assert client.base_url == "https://api.siliconflow.com/v1"
    with SiliconFlow(base_url="http://localhost:11434/v1") as client:
        assert client.base_url == "http://localhost:11434/v1"


def test_bad_configuration_never_shows_the_key() -> None:
    with pytest.raises(ConfigurationError, match="http") as bad_url:
        SiliconFlow(api_key=KEY, base_url="api.siliconflow.cn/v1")
    with pytest.raises(ConfigurationError) as bad_key:
        SiliconFlow(api_key=KEY + "\n-injected")
    for err in (bad_url.value, bad_key.value):
        assert "FAKEKEY" not in str(err)


def test_reprs_hide_the_key() -> None:
    with SiliconFlow(api_key=KEY, base_url="https://x.test/v1") as client:
        stream = client.stream(REQUEST)
        texts = [repr(client), str(client), repr(stream), repr(client._core), repr(vars(client))]
        stream.close()
    assert all("FAKEKEY" not in text for text in texts)
    assert repr(client) == "SiliconFlow(base_url='https://x.test/v1')"


# --- requests and responses ----------------------------------------------------------------------


def test_complete_sends_the_request_and_parses_the_response(fixtures_dir: Path) -> None:
    handler, seen = scripted(ok_json(fixtures_dir))
    with mock_client(handler, default_headers={"X-Tag": "t", "Authorization": "x"}) as (client, _):
        stream_request = ChatRequest(REQUEST.messages, model=REQUEST.model, stream=True)
        completion = client.complete(stream_request)
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.example.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tag"] == "t"
    assert request.headers["user-agent"].startswith("sfagent/")
    body = json.loads(request.content)
    assert body == {"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "Hello"}]}
    assert completion.finish_reason == "tool_calls"
    assert completion.message.tool_calls is not None
    assert completion.message.tool_calls[0].function.name == "get_current_weather"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 351


def test_a_dict_request_is_sent_as_given(fixtures_dir: Path) -> None:
    handler, seen = scripted(ok_json(fixtures_dir))
    with mock_client(handler) as (client, _):
        client.complete({"model": "m", "messages": [], "stream": True, "vendor_x": 1})
    assert json.loads(seen[0].content) == {"model": "m", "messages": [], "vendor_x": 1}
    with mock_client(handler) as (client, _), pytest.raises(ConfigurationError):
        client.complete(["not", "a", "request"])  # type: ignore[arg-type]


def test_requests_on_a_transport_carry_the_head_httpx_would_build(fixtures_dir: Path) -> None:
    # Without http_client= the client builds each request from a cached head: the same headers,
    # in the same order, as httpx.Request(content=...) gives, with this request's length.
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    models = httpx.Response(200, json={"object": "list", "data": [{"id": "a"}]})
    replies = [ok_json(fixtures_dir), ok_json(fixtures_dir), httpx.Response(200, content=sse)]
    handler, seen = scripted(*replies, models)
    extra = {"X-Tag": "t", "Host": "proxy.example.test"}
    base = "https://api.example.test/v1"
    client = SiliconFlow(
        api_key=KEY, base_url=base, transport=httpx.MockTransport(handler), default_headers=extra
    )
    short = ChatRequest([{"role": "user", "content": "Hi"}], model="m")
    with client:
        client.complete(REQUEST)
        client.complete(short)  # the cached head again, another length
        with client.stream(short) as stream:
            stream.get_final_response()
        client.list_models()
    plain = {
        "User-Agent": f"sfagent/{__version__}",
        "Accept": "application/json",
        **extra,
        "Authorization": f"Bearer {KEY}",
    }
    json_body = plain | {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    chat = f"{base}/chat/completions"
    expected = [
        httpx.Request("POST", chat, headers=json_body, content=seen[0].content),
        httpx.Request("POST", chat, headers=json_body, content=seen[1].content),
        httpx.Request(
            "POST",
            chat,
            headers=json_body | {"Accept": "text/event-stream"},
            content=seen[2].content,
        ),
        httpx.Request(
            "GET", f"{base}/models", headers=plain | {"Accept-Encoding": ACCEPT_ENCODING}
        ),
    ]
    assert len(seen) == 4
    for sent, built in zip(seen, expected, strict=True):
        assert sent.method == built.method
        assert sent.url == built.url
        assert sent.headers.raw == built.headers.raw
        assert sent.content == built.content
    assert seen[0].content == REQUEST.to_json()
    assert seen[1].headers["content-length"] == str(len(short.to_json()))


class Opaque:
    """A value JSON cannot carry."""


DATED = ChatRequest(
    [{"role": "user", "content": "Hello", "sent": datetime.date(2024, 1, 2)}], model="m"
)
UNENCODABLE = ChatRequest([{"role": "user", "content": "Hello"}, {"role": "user", "x": Opaque()}])


def test_requests_are_encoded_like_chat_request_to_json(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    handler, seen = scripted(ok_json(fixtures_dir), httpx.Response(200, content=sse))
    with mock_client(handler) as (client, _):
        client.complete(DATED)
        with client.stream(DATED) as stream:
            stream.get_final_response()
    assert seen[0].content == DATED.to_json()
    assert json.loads(seen[0].content)["messages"][0]["sent"] == "2024-01-02"
    # Not SiliconFlow (api.example.test): streams ask for usage.
    usage = {"stream_options": {"include_usage": True}}
    assert json.loads(seen[1].content) == json.loads(DATED.to_json()) | {"stream": True} | usage


def test_streams_ask_for_usage_except_where_it_comes_unasked(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    for base_url, asks in [
        ("https://api.siliconflow.cn/v1", False),
        ("https://api.siliconflow.com/v1", False),
        ("https://api.openai.com/v1", True),
        ("http://127.0.0.1:8000/v1", True),
    ]:
        handler, seen = scripted(httpx.Response(200, content=sse))
        with mock_client(handler, base_url=base_url) as (client, _), client.stream(DATED) as s:
            s.get_final_response()
        sent = json.loads(seen[0].content)
        assert ("stream_options" in sent) is asks, base_url


def test_a_refused_stream_options_is_dropped_and_remembered(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    refused = httpx.Response(400, json={"error": {"message": "Unknown field: stream_options"}})
    handler, seen = scripted(
        refused, httpx.Response(200, content=sse), httpx.Response(200, content=sse)
    )
    with mock_client(handler) as (client, _):
        for _ in range(2):
            with client.stream(DATED) as stream:
                stream.get_final_response()
    asked = ["stream_options" in json.loads(r.content) for r in seen]
    assert asked == [True, False, False]


def test_a_value_json_cannot_carry_is_a_configuration_error() -> None:
    handler, seen = scripted()
    where = r"cannot be encoded as JSON at messages\[1\]\.x: .*Opaque"
    with mock_client(handler) as (client, _):
        with pytest.raises(ConfigurationError, match=where):
            client.complete(UNENCODABLE)
        with pytest.raises(ConfigurationError, match=where):
            client.stream(UNENCODABLE)
        with pytest.raises(ConfigurationError, match=r"at tools\[0\]\.when"):
            client.complete({"model": "m", "messages": [], "tools": [{"when": Opaque()}]})
    with pytest.raises(ConfigurationError, match=where):
        UNENCODABLE.to_json()
    assert seen == []


def test_timeouts_default_client_and_per_call(fixtures_dir: Path) -> None:
    handler, seen = scripted(*(ok_json(fixtures_dir) for _ in range(3)))
    with mock_client(handler) as (client, _):
        client.complete(REQUEST)
        client.complete(REQUEST, timeout=3.0)
        client.complete(REQUEST, timeout=httpx.Timeout(5.0, read=42.0))
    timeouts = [r.extensions["timeout"] for r in seen]
    assert timeouts[0] == DEFAULT_TIMEOUT.as_dict()
    assert timeouts[0]["read"] >= 600
    assert timeouts[0]["connect"] <= 10
    # A number also bounds the whole call: each phase gets at most the time left of it.
    assert all(2.5 < value <= 3.0 for value in timeouts[1].values())
    assert timeouts[2]["read"] == 42.0
    handler, seen = scripted(ok_json(fixtures_dir))
    with mock_client(handler, timeout=7.0) as (client, _):
        client.complete(REQUEST)
    assert all(6.5 < value <= 7.0 for value in seen[0].extensions["timeout"].values())


@pytest.mark.parametrize(
    "body",
    [b"<html>502</html>", b'{"choices": "nope"}', b"[]", b""],
)
def test_unparseable_success_bodies(body: bytes) -> None:
    handler, _ = scripted(httpx.Response(200, content=body))
    with mock_client(handler) as (client, _), pytest.raises(APIResponseValidationError) as info:
        client.complete(REQUEST)
    assert info.value.body == body.decode()


def test_error_object_with_status_200_is_a_typed_error() -> None:
    body = b'{"code": 50505, "message": "Model service overloaded.", "data": null}'
    handler, seen = scripted(httpx.Response(200, content=body))
    with mock_client(handler) as (client, _), pytest.raises(ServiceUnavailableError) as info:
        client.complete(REQUEST)
    assert info.value.code == 50505
    assert len(seen) == 1  # a 200 is not retried


def test_an_error_object_beside_choices_with_status_200_is_a_typed_error() -> None:
    # A top-level "error" object reports a failure even next to an id and choices (OpenRouter
    # sends this shape); the stream layer reads such a chunk the same way.
    body = {
        "id": "gen-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}],
        "error": {"message": "Provider disconnected", "code": 502},
    }
    handler, _ = scripted(httpx.Response(200, json=body, headers={"x-siliconcloud-trace-id": "t"}))
    with mock_client(handler) as (client, _), pytest.raises(InternalServerError) as info:
        client.complete(REQUEST)
    assert (info.value.status_code, info.value.message, info.value.trace_id) == (
        502,
        "Provider disconnected",
        "t",
    )


# --- errors and retries ---------------------------------------------------------------------------


def test_every_error_body_maps_to_its_exception(fixtures_dir: Path) -> None:
    entries = json.loads((fixtures_dir / "error_bodies.json").read_text(encoding="utf-8"))
    for entry in entries:
        status, body = entry["status"], entry["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"x-siliconcloud-trace-id": "trace-9"}
        tries = 3 if status in RETRYABLE else 1
        handler, seen = scripted(*(httpx.Response(status, content=raw, headers=headers),) * tries)
        with mock_client(handler) as (client, sleeps), pytest.raises(APIStatusError) as info:
            client.complete(REQUEST)
        err = info.value
        assert err.status_code == status
        assert err.trace_id == "trace-9"
        assert err.message == (body if isinstance(body, str) else body["message"])
        assert err.code == (None if isinstance(body, str) else body.get("code"))
        assert len(seen) == tries
        assert len(sleeps) == tries - 1


def test_429_is_retried_after_retry_after(fixtures_dir: Path) -> None:
    limited = httpx.Response(
        429, json={"message": "TPM limit reached.", "data": None}, headers={"Retry-After": "2"}
    )
    handler, seen = scripted(limited, ok_json(fixtures_dir))
    with mock_client(handler) as (client, sleeps):
        completion = client.complete(REQUEST)
    assert completion.id == "019bda909755f42bd3785e4c1c8117bb"
    assert sleeps == [2.0]
    assert len(seen) == 2


def test_400_is_never_retried() -> None:
    bad = httpx.Response(
        400, json={"code": 20012, "message": "Model does not exist.", "data": None}
    )
    handler, seen = scripted(bad)
    policy = RetryPolicy(max_attempts=6)
    with mock_client(handler, retry=policy) as (client, sleeps), pytest.raises(BadRequestError):
        client.complete(REQUEST)
    assert (len(seen), sleeps) == (1, [])


def test_backoff_is_bounded_and_jittered() -> None:
    handler, seen = scripted(*(httpx.Response(503, json={"message": "busy"}) for _ in range(4)))
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0)
    with (
        mock_client(handler, retry=policy) as (client, sleeps),
        pytest.raises(ServiceUnavailableError),
    ):
        client.complete(REQUEST)
    assert len(seen) == 4
    assert [0 <= s <= cap for s, cap in zip(sleeps, [1.0, 2.0, 3.0], strict=True)] == [True] * 3


def test_retries_can_be_switched_off() -> None:
    handler, seen = scripted(httpx.Response(503, json={"message": "busy"}))
    with mock_client(handler, retry=None) as (client, sleeps), pytest.raises(InternalServerError):
        client.complete(REQUEST)
    assert (len(seen), sleeps) == (1, [])


def test_connection_errors_and_timeouts_are_typed_and_retried(fixtures_dir: Path) -> None:
    handler, seen = scripted(httpx.ConnectError("refused"), ok_json(fixtures_dir))
    with mock_client(handler) as (client, sleeps):
        client.complete(REQUEST)
    assert len(seen) == 2
    assert len(sleeps) == 1
    handler, _ = scripted(*(httpx.ReadTimeout("slow") for _ in range(3)))
    with mock_client(handler) as (client, _), pytest.raises(APITimeoutError) as timeout:
        client.complete(REQUEST)
    # Named, not chained: httpx's error holds the request and its Authorization header.
    assert "ReadTimeout" in str(timeout.value)
    assert timeout.value.__cause__ is None
    assert timeout.value.__context__ is None
    handler, _ = scripted(httpx.RemoteProtocolError("reset"))
    with mock_client(handler, retry=None) as (client, _), pytest.raises(APIConnectionError) as err:
        client.complete(REQUEST)
    assert not isinstance(err.value, APITimeoutError)


def test_time_budget_stops_retries() -> None:
    limited = httpx.Response(429, json={"message": "RPM"}, headers={"Retry-After": "40"})
    handler, seen = scripted(limited, limited)
    policy = RetryPolicy(max_attempts=5, total_timeout=60.0)
    with mock_client(handler, retry=policy) as (client, sleeps), pytest.raises(RateLimitError):
        client.complete(REQUEST)
    assert sleeps == [40.0]  # a second 40 s wait would pass the 60 s budget
    assert len(seen) == 2


# --- streaming (MockTransport) -------------------------------------------------------------------


def test_stream_fixture_accumulates(fixtures_dir: Path) -> None:
    sse = (fixtures_dir / "stream_reasoning_r1.sse").read_bytes()
    handler, seen = scripted(
        httpx.Response(503, json={"code": 50505, "message": "busy", "data": None}),
        httpx.Response(200, content=sse, headers={"x-siliconcloud-trace-id": "t-s"}),
    )
    with mock_client(handler) as (client, sleeps), client.stream(REQUEST) as stream:
        chunks = list(stream)
        final = stream.get_final_response()
    assert len(seen) == 2  # the 503 came before any byte of the stream: retried
    assert len(sleeps) == 1
    assert json.loads(seen[1].content)["stream"] is True
    assert seen[1].headers["accept"] == "text/event-stream"
    assert len(chunks) == 4
    assert final.message.reasoning_content == "We"
    assert final.message.content == "Hello"
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens == 51
    assert stream.response is final
    assert stream.trace_id == "t-s"


def test_stream_error_status_before_first_byte_is_typed() -> None:
    handler, seen = scripted(httpx.Response(401, text="Api key is invalid"))
    with mock_client(handler) as (client, _):
        stream = client.stream(REQUEST)
        with pytest.raises(AuthenticationError):
            stream.__enter__()
        assert list(stream) == []
    assert len(seen) == 1


# --- end to end through the loopback server ------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[tuple[SiliconFlow, list[float]]]:
    sleeps: list[float] = []
    with SiliconFlow(api_key=KEY, base_url=server.base_url, sleep=sleeps.append) as c:
        yield c, sleeps


def test_e2e_complete_stream_and_models(
    server: LoopbackServer, client: tuple[SiliconFlow, list[float]]
) -> None:
    sf, _ = client
    calls = [ScriptedToolCall("get_weather", {"city": "Paris"}), ScriptedToolCall("get_time", {})]
    server.add(Reply(text="Hi!", reasoning="Greet."), Reply(tool_calls=calls, text="Checking."))
    plain = sf.complete(REQUEST)
    assert (plain.message.content, plain.message.reasoning_content) == ("Hi!", "Greet.")
    with sf.stream(REQUEST) as stream:
        deltas = [c.choices[0].delta for c in stream if c.choices]
    final = stream.get_final_response()
    assert "".join(d.content or "" for d in deltas) == "Checking."
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls is not None
    assert [c.function.arguments for c in final.message.tool_calls] == ['{"city": "Paris"}', "{}"]
    assert sf.list_models()[0] == "deepseek-ai/DeepSeek-V3"
    assert [r.body.get("stream") if r.body else None for r in server.requests] == [
        None,
        True,
        None,
    ]


def test_e2e_stream_dropped_mid_way_is_not_retried(
    server: LoopbackServer, client: tuple[SiliconFlow, list[float]]
) -> None:
    sf, sleeps = client
    server.add(Reply(text="one two three", fault="drop_mid_stream"), Reply(text="unused"))
    stream = sf.stream(REQUEST)
    with pytest.raises(IncompleteStreamError) as info, stream:
        for _ in stream:
            pass
    assert len(server.requests) == 1
    assert sleeps == []
    assert info.value.partial is not None
    assert info.value.partial.choices[0].message.role == "assistant"


def test_e2e_stream_dropped_before_response_is_retried(
    server: LoopbackServer, client: tuple[SiliconFlow, list[float]]
) -> None:
    sf, sleeps = client
    server.add(Reply(fault="drop_before_response"), Reply(text="second try"))
    assert sf.stream(REQUEST).get_final_response().message.content == "second try"
    assert len(server.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(text="a b", fault="cut_before_done"), IncompleteStreamError),
        (Reply(text="a b", fault="malformed_chunk"), APIResponseValidationError),
        (Reply(text="a b", stream_error={"code": 60000, "message": "x"}), InternalServerError),
        (Reply(stream_error={"code": 20015, "message": "bad"}), BadRequestError),
    ],
)
def test_e2e_stream_faults(
    server: LoopbackServer,
    client: tuple[SiliconFlow, list[float]],
    reply: Reply,
    error: type[Exception],
) -> None:
    sf, _ = client
    server.add(reply)
    with pytest.raises(error):
        sf.stream(REQUEST).get_final_response()
    assert len(server.requests) == 1


def test_e2e_read_timeout(server: LoopbackServer) -> None:
    server.add(Reply(text="late", delay=1.0))
    sf = SiliconFlow(api_key=KEY, base_url=server.base_url, retry=None, timeout=0.05)
    with sf, pytest.raises(APITimeoutError):
        sf.complete(REQUEST)


def test_closing_a_stream_early_is_clean(server: LoopbackServer) -> None:
    server.add(Reply(text="many words in this reply", chunk_delay=0.01))
    with SiliconFlow(api_key=KEY, base_url=server.base_url) as sf:
        stream = sf.stream(REQUEST)
        assert isinstance(stream, ChatStream)
        with stream:
            next(iter(stream))
        assert list(stream) == []
        with pytest.raises(IncompleteStreamError):
            stream.get_final_response()


def test_user_http_client_is_not_closed(server: LoopbackServer) -> None:
    server.add(Reply(text="a"), Reply(text="b"))
    with httpx.Client() as http:
        with SiliconFlow(api_key=KEY, base_url=server.base_url, http_client=http) as sf:
            assert sf.complete(REQUEST).message.content == "a"
        assert not http.is_closed
        assert http.get(f"{server.base_url}/models").status_code == 401  # no auth on the pool


def test_the_key_never_leaks(server: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    echo = {"code": 20015, "message": f"bad key {KEY}", "data": {"key": KEY}}
    server.add(Reply.error(400, echo), Reply.error(503, f"overloaded for {KEY}"))
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []
    with SiliconFlow(api_key=KEY, base_url=server.base_url, sleep=lambda _: None) as sf:
        for _ in range(2):
            with pytest.raises(APIStatusError) as info:
                sf.complete(REQUEST)
            errors.append(info.value)
        texts = [repr(sf), repr(sf.stream(REQUEST))]
    with SiliconFlow(api_key=KEY, base_url="http://127.0.0.1:9/v1", retry=None) as dead:
        with pytest.raises(APIConnectionError) as refused:
            dead.complete(REQUEST)
        errors.append(refused.value)
    assert caplog.records
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    for err in errors:
        texts += [str(err), repr(err), repr(getattr(err, "body", None))]
    assert all(KEY not in text for text in texts)
    assert "***" in str(errors[0])


def test_list_models_parses_and_rejects_odd_bodies() -> None:
    good = httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
    handler, seen = scripted(good, httpx.Response(200, json={"models": []}))
    with mock_client(handler) as (client, _):
        assert client.list_models() == ["a", "b"]
        with pytest.raises(APIResponseValidationError):
            client.list_models()
    assert seen[0].method == "GET"
    assert str(seen[0].url) == "https://api.example.test/v1/models"
    assert "content-type" not in seen[0].headers


def test_e2e_stream_and_complete_give_the_same_response() -> None:
    calls = [
        ScriptedToolCall("f", {"a": "a longer value"}, id="c1"),
        ScriptedToolCall("g", id="c2"),
    ]
    reply = Reply(text="Some text here.", reasoning="Think a bit.", tool_calls=calls)
    with (
        LoopbackServer(default=reply) as server,
        SiliconFlow(api_key=KEY, base_url=server.base_url) as sf,
    ):
        plain = sf.complete(REQUEST)
        streamed = sf.stream(REQUEST).get_final_response()
    skip = {"id", "created"}
    assert plain.model_dump(exclude=skip) == streamed.model_dump(exclude=skip)
    assert plain.usage is not None
    assert plain.usage.reasoning_tokens == 3


def test_e2e_streams_reuse_the_connection(server: LoopbackServer) -> None:
    server.add(*(Reply(text="a b c") for _ in range(3)), Reply(text="d"))
    with SiliconFlow(api_key=KEY, base_url=server.base_url) as sf:
        for _ in range(3):
            sf.stream(REQUEST).get_final_response()
        sf.complete(REQUEST)
    assert server.connections == 1
