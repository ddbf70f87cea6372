"""The official openai client reads the loopback server's wire format, stream and non-stream."""

from __future__ import annotations

import json

import openai

from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall

KEY = "sk-loopback"


def test_openai_client_reads_the_loopback_server() -> None:
    calls = [
        ScriptedToolCall("get_weather", {"city": "Paris"}),
        ScriptedToolCall("get_time", {"zone": "Europe/Paris"}),
    ]
    replies = [
        Reply(text="Bonjour, tout le monde !", reasoning="Answer in French."),
        Reply(tool_calls=calls),
        Reply(text="Streaming works.", reasoning="Think."),
        Reply(tool_calls=calls),
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = [{"role": "user", "content": "Hello"}]
    with (
        LoopbackServer(replies, api_key=KEY) as server,
        openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0) as client,
    ):
        text = client.chat.completions.create(model="Qwen/Qwen3-8B", messages=messages)  # type: ignore[arg-type]
        assert text.choices[0].message.content == "Bonjour, tout le monde !"
        assert text.choices[0].finish_reason == "stop"
        assert text.usage is not None
        assert text.usage.completion_tokens_details is not None
        assert text.usage.completion_tokens_details.reasoning_tokens == 3  # Answer / in / French.

        called = client.chat.completions.create(model="m", messages=messages, tools=tools)  # type: ignore[arg-type]
        tool_calls = called.choices[0].message.tool_calls
        assert tool_calls is not None
        assert [c.function.name for c in tool_calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
        assert json.loads(tool_calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
        assert called.choices[0].finish_reason == "tool_calls"

        stream = client.chat.completions.create(model="m", messages=messages, stream=True)  # type: ignore[arg-type]
        content = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert "".join(content) == "Streaming works."

        fragments: dict[int, dict[str, str]] = {}
        stream = client.chat.completions.create(
            model="m",
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            stream=True,
        )
        for chunk in stream:
            for fragment in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = fragments.setdefault(fragment.index, {"name": "", "arguments": ""})
                assert fragment.function is not None
                entry["name"] += fragment.function.name or ""
                entry["arguments"] += fragment.function.arguments or ""
        assert [f["name"] for f in fragments.values()] == ["get_weather", "get_time"]
        assert json.loads(fragments[1]["arguments"]) == {"zone": "Europe/Paris"}
    assert [r.body.get("stream", False) for r in server.requests] == [False, False, True, True]
    assert server.requests[1].body["tools"] == tools
