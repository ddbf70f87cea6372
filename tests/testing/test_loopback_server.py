"""The loopback server, driven with plain httpx: wire format, scripting, faults, recording."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from sfagent.testing import (
    DEFAULT_MODELS,
    LoopbackServer,
    RecordedRequest,
    Reply,
    ScriptedToolCall,
)

BODY = {"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def sse_events(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n\n") if line]


def test_non_stream_text_reply(server: LoopbackServer, http: httpx.Client) -> None:
    server.add(Reply(text="Hello there", reasoning="Say hi."))
    response = http.post(f"{server.base_url}/chat/completions", json=BODY)
    assert response.status_code == 200
    assert len(response.headers["x-siliconcloud-trace-id"]) == 32
    data = response.json()
    assert data["object"] == "chat.completion"
    assert len(data["id"]) == 32
    assert data["model"] == "Qwen/Qwen3-8B"
    choice = data["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello there",
        "reasoning_content": "Say hi.",
    }
    assert choice["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_non_stream_parallel_tool_calls(server: LoopbackServer, http: httpx.Client) -> None:
    calls = [
        ScriptedToolCall("get_weather", {"city": "Paris"}, id="019677d5f9312482e36d2016f6b5a67e"),
        ScriptedToolCall("get_time", '{"tz": "CET"'),
    ]
    server.add(Reply(tool_calls=calls))
    data = http.post(f"{server.base_url}/chat/completions", json=BODY).json()
    message = data["choices"][0]["message"]
    assert message["content"] == ""
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    first, second = message["tool_calls"]
    assert first["id"] == "019677d5f9312482e36d2016f6b5a67e"
    assert first["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert second["function"]["arguments"] == '{"tz": "CET"'  # invalid JSON is sent as scripted
    assert len(second["id"]) == 32


def test_stream_is_chunked_like_siliconflow(server: LoopbackServer, http: httpx.Client) -> None:
    calls = [ScriptedToolCall("lookup", {"query": "a long enough query"})]
    server.add(Reply(text="Hello big world", reasoning="Think first.", tool_calls=calls))
    response = http.post(f"{server.base_url}/chat/completions", json={**BODY, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["usage"]["completion_tokens"] == 0
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Think first."
    assert "".join(d.get("content") or "" for d in deltas) == "Hello big world"
    fragments = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert len(fragments) > 2  # arguments split across chunks
    assert fragments[0]["function"]["name"] == "lookup"
    assert all("id" not in f for f in fragments[1:])
    arguments = "".join(f["function"]["arguments"] for f in fragments)
    assert json.loads(arguments) == {"query": "a long enough query"}
    totals = [c["usage"]["completion_tokens"] for c in chunks]
    assert totals == sorted(totals)  # a running total on every chunk, never reset
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert len({c["id"] for c in chunks}) == 1


def test_replies_from_a_function_and_recording() -> None:
    def respond(request: RecordedRequest) -> Reply:
        return Reply(text=f"echo {request.json['messages'][-1]['content']}")

    with LoopbackServer(respond) as server, httpx.Client() as http:
        headers = {"Authorization": "Bearer sk-do-not-record", "X-Custom": "1"}
        data = http.post(f"{server.base_url}/chat/completions", json=BODY, headers=headers).json()
        assert data["choices"][0]["message"]["content"] == "echo Hi"
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.body == BODY
    assert request.headers["x-custom"] == "1"
    assert "authorization" not in request.headers
    assert "sk-do-not-record" not in repr(server.requests)


def test_out_of_replies_default_and_error(server: LoopbackServer, http: httpx.Client) -> None:
    response = http.post(f"{server.base_url}/chat/completions", json=BODY)
    assert response.status_code == 500
    assert "no scripted reply" in response.json()["message"]
    with LoopbackServer(default=Reply(text="again")) as srv:
        for _ in range(2):
            reply = http.post(f"{srv.base_url}/chat/completions", json=BODY).json()
            assert reply["choices"][0]["message"]["content"] == "again"


def test_error_reply_with_retry_after(server: LoopbackServer, http: httpx.Client) -> None:
    body = {"message": "Request was rejected due to rate limiting.", "data": None}
    server.add(Reply.error(429, body, retry_after=3), Reply.error(401, "Invalid token"))
    response = http.post(f"{server.base_url}/chat/completions", json=BODY)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == body
    plain = http.post(f"{server.base_url}/chat/completions", json=BODY)
    assert plain.status_code == 401
    assert plain.text == "Invalid token"


def test_api_key_is_checked_when_given(http: httpx.Client) -> None:
    with LoopbackServer(default=Reply(text="ok"), api_key="sk-right") as server:
        url = f"{server.base_url}/chat/completions"
        wrong = http.post(url, json=BODY, headers={"Authorization": "Bearer sk-wrong"})
        assert (wrong.status_code, wrong.text) == (401, "Invalid token")
        right = http.post(url, json=BODY, headers={"Authorization": "Bearer sk-right"})
        assert right.status_code == 200


def test_models_404_and_405(server: LoopbackServer, http: httpx.Client) -> None:
    models = http.get(f"{server.base_url}/models").json()
    assert [m["id"] for m in models["data"]] == list(DEFAULT_MODELS)
    missing = http.get(f"{server.base_url}/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert http.get(f"{server.base_url}/chat/completions").status_code == 405
    assert http.post(f"{server.base_url}/models").status_code == 405


def test_stream_faults(server: LoopbackServer, http: httpx.Client) -> None:
    url = f"{server.base_url}/chat/completions"
    stream_body = {**BODY, "stream": True}
    server.add(
        Reply(text="a b c", fault="cut_before_done"),
        Reply(text="a b c", fault="malformed_chunk"),
        Reply(text="a b c", stream_error={"code": 60000, "message": "boom", "data": None}),
        Reply(text="a b c", fault="drop_mid_stream"),
        Reply(text="never", fault="drop_before_response"),
    )
    cut = sse_events(http.post(url, json=stream_body).text)
    assert "[DONE]" not in cut
    assert json.loads(cut[-1])["choices"][0]["finish_reason"] == "stop"
    malformed = sse_events(http.post(url, json=stream_body).text)
    assert malformed[1].startswith('{"id": "broken"')
    bare = http.post(url, json=stream_body).text.split("\n\n")
    assert bare[1] == '{"code":60000,"message":"boom","data":null}'
    assert "[DONE]" not in bare
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(url, json=stream_body)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(url, json=stream_body)


def test_keep_alive_serves_many_requests_on_one_connection(server: LoopbackServer) -> None:
    server.add(*(Reply(text=str(n)) for n in range(5)))
    payload = json.dumps(BODY).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(payload),
        payload,
    )
    host, port = server.base_url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        stream = sock.makefile("rb")
        for n in range(5):
            sock.sendall(request)
            assert stream.readline() == b"HTTP/1.1 200 OK\r\n"
            length = 0
            while (line := stream.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            content = json.loads(stream.read(length))["choices"][0]["message"]["content"]
            assert content == str(n)
        stream.close()
    assert len(server.requests) == 5


def test_chunked_request_bodies_are_refused(server: LoopbackServer, http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b"{}"

    response = http.post(f"{server.base_url}/chat/completions", content=body())
    assert response.status_code == 411


def test_close_is_idempotent_and_repr() -> None:
    server = LoopbackServer().start()
    assert server.start() is server
    assert "127.0.0.1" in repr(server)
    server.close()
    server.close()
