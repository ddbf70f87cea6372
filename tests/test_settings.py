"""Model settings and request bodies: only what is set is sent; limits fail before sending."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sfagent.exceptions import ConfigurationError
from sfagent.messages import AssistantMessage, FunctionCall, ToolCall, ToolMessage, UserMessage
from sfagent.settings import DEFAULT_MODEL, ChatRequest, ModelSettings


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def test_nothing_set_sends_only_model_and_messages() -> None:
    body = ChatRequest([UserMessage(content="hi")]).to_body()
    assert body == {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}


def test_any_model_id_is_accepted() -> None:
    request = ChatRequest([UserMessage(content="hi")], model="Pro/deepseek-ai/DeepSeek-R1")
    assert request.to_body()["model"] == "Pro/deepseek-ai/DeepSeek-R1"


@pytest.mark.parametrize(
    ("settings", "sent"),
    [
        ({"max_tokens": 4096}, {"max_tokens": 4096}),
        ({"temperature": 0}, {"temperature": 0}),
        ({"temperature": 2.0, "top_p": 1}, {"temperature": 2.0, "top_p": 1}),
        ({"top_k": 50, "frequency_penalty": 0.5}, {"top_k": 50, "frequency_penalty": 0.5}),
        ({"n": 2}, {"n": 2}),
        ({"stop": "END"}, {"stop": "END"}),
        ({"stop": ("a", "b", "c", "d")}, {"stop": ["a", "b", "c", "d"]}),
        ({"response_format": "json_object"}, {"response_format": {"type": "json_object"}}),
        ({"response_format": {"type": "text"}}, {"response_format": {"type": "text"}}),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
        ),
        ({"enable_thinking": False}, {"enable_thinking": False}),
        ({"thinking_budget": 128}, {"thinking_budget": 128}),
        ({"thinking_budget": 32768}, {"thinking_budget": 32768}),
        ({"min_p": 0.05}, {"min_p": 0.05}),
        ({"reasoning_effort": "max"}, {"reasoning_effort": "max"}),
        ({"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
        ({"tool_choice": "none"}, {"tool_choice": "none"}),
        ({"extra_body": {"prefix": "def f(", "seed": 1}}, {"prefix": "def f(", "seed": 1}),
        ({"extra_body": {"n": 32, "top_k": -1}}, {"n": 32, "top_k": -1}),  # the escape hatch
    ],
)
def test_set_fields_are_sent_as_the_api_expects(
    settings: dict[str, Any], sent: dict[str, Any]
) -> None:
    assert ModelSettings(**settings).to_body() == sent


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens must be an integer"),
        ({"temperature": 2.01}, "temperature must be between 0.0 and 2.0"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "finite"),
        ({"temperature": "0.7"}, "temperature"),
        ({"top_p": 1.1}, "top_p"),
        ({"top_k": True}, "top_k"),
        ({"n": 0}, "n must be between 1 and 16"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "1 to 4 strings"),
        ({"stop": []}, "stop"),
        ({"stop": ["a", 1]}, "stop"),
        ({"response_format": "yaml"}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "name"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}, "strict": "yes"},
                }
            },
            "strict",
        ),
        ({"tool_choice": "any"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice"),
        ({"tool_choice": {"function": {"name": "f"}}}, "tool_choice"),
        ({"enable_thinking": "yes"}, "enable_thinking"),
        ({"thinking_budget": 127}, "thinking_budget must be between 128 and 32768"),
        ({"thinking_budget": 32769}, "thinking_budget"),
        ({"min_p": 1.5}, "min_p"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"temperature": 0.5, "extra_body": {"temperature": 1}}, "may not set temperature"),
        ({"extra_body": {"model": "x", "stream": True}}, "model, stream"),
        ({"top_k": -1}, "top_k must be between 1"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"frequency_penalty": 100}, "frequency_penalty must be between -2.0 and 2.0"),
        ({"n": 100}, "n must be between 1 and 16"),
    ],
)
def test_documented_limits_fail_before_sending(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ModelSettings(**settings)


def test_named_tool_choice_is_sent_in_canonical_form() -> None:
    choice = {"type": "function", "function": {"name": "f", "description": "ignored"}}
    request = ChatRequest(
        [UserMessage(content="hi")],
        tools=[_tool("f")],
        settings=ModelSettings(tool_choice=choice),
    )
    assert request.to_body()["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("tools", "choice", "message"),
    [
        ([_tool("f")], {"type": "function", "function": {"name": "g"}}, "not among the tools"),
        (None, "required", "needs at least one tool"),
    ],
)
def test_tool_choice_must_match_the_tools(tools: Any, choice: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ChatRequest(
            [UserMessage(content="hi")], tools=tools, settings=ModelSettings(tool_choice=choice)
        )


def test_merge_overrides_set_fields_and_merges_extra_body() -> None:
    base = ModelSettings(temperature=0.2, max_tokens=100, extra_body={"a": 1, "b": 1})
    merged = base.merge(ModelSettings(max_tokens=200, extra_body={"b": 2}))

    assert merged.to_body() == {"temperature": 0.2, "max_tokens": 200, "a": 1, "b": 2}
    assert base.merge(None) is base


def test_settings_are_frozen() -> None:
    settings = ModelSettings(temperature=0.5)
    with pytest.raises(AttributeError):
        settings.temperature = 3  # type: ignore[misc]


def test_request_body_order_and_stream_flag() -> None:
    history = [
        UserMessage(content="weather?"),
        AssistantMessage(
            content=None,
            tool_calls=[ToolCall(id="c1", function=FunctionCall(name="w", arguments="{}"))],
        ),
        ToolMessage(tool_call_id="c1", content="sunny"),
        {"role": "user", "content": "thanks"},
    ]
    request = ChatRequest(
        history,
        model="Qwen/Qwen3-8B",
        tools=[_tool("w")],
        settings=ModelSettings(max_tokens=64),
        stream=True,
    )
    body = json.loads(request.to_json())

    assert list(body) == ["model", "messages", "max_tokens", "tools", "stream"]
    assert body["stream"] is True
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    }
    assert body["messages"][3] == {"role": "user", "content": "thanks"}


def test_non_stream_request_leaves_stream_to_the_server_default() -> None:
    assert "stream" not in ChatRequest([UserMessage(content="hi")]).to_body()


def test_to_json_keeps_unicode_readable() -> None:
    assert "你好".encode() in ChatRequest([UserMessage(content="你好")]).to_json()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "at least one message"),
        ({"model": ""}, "model"),
        ({"tools": [_tool(f"t{i}") for i in range(129)]}, "at most 128 tools"),
        ({"tools": [_tool("bad name")]}, "1-64 characters"),
        ({"tools": [_tool("x" * 65)]}, "1-64 characters"),
        ({"tools": [_tool("f"), _tool("f")]}, "unique, repeated: f"),
        ({"tools": [{"type": "function"}]}, r"tools\[0\]"),
        ({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}, r"tools\[0\]"),
        ({"tools": ["f"]}, r"tools\[0\]"),
    ],
)
def test_request_limits_fail_before_sending(kwargs: dict[str, Any], message: str) -> None:
    args = {"messages": [UserMessage(content="hi")]} | kwargs
    messages = args.pop("messages")
    with pytest.raises(ConfigurationError, match=message):
        ChatRequest(messages, **args)


def test_exactly_128_tools_are_accepted() -> None:
    tools = [_tool(f"t{i}") for i in range(128)]
    assert len(ChatRequest([UserMessage(content="hi")], tools=tools).to_body()["tools"]) == 128


def test_a_message_of_the_wrong_type_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="got int"):
        ChatRequest([UserMessage(content="hi"), 3]).to_body()  # type: ignore[list-item]


def test_replayed_messages_are_serialised_once() -> None:
    message = AssistantMessage(content="hello")
    first = ChatRequest([message]).to_body()["messages"][0]
    second = ChatRequest([message]).to_body()["messages"][0]
    assert first is second


def test_a_body_that_is_not_json_is_a_configuration_error() -> None:
    settings = ModelSettings(extra_body={"when": object()})
    with pytest.raises(ConfigurationError, match="cannot be encoded as JSON"):
        ChatRequest([UserMessage(content="hi")], settings=settings).to_json()


def test_plain_tool_lists_are_checked_every_time() -> None:
    from sfagent.exceptions import ConfigurationError
    from sfagent.settings import ChatRequest

    good = ({"type": "function", "function": {"name": "a"}},)
    ChatRequest([{"role": "user", "content": "x"}], tools=good)
    ChatRequest([{"role": "user", "content": "x"}], tools=good)
    bad = (
        {"type": "function", "function": {"name": "a"}},
        {"type": "function", "function": {"name": "a"}},
    )
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="unique"):
            ChatRequest([{"role": "user", "content": "x"}], tools=bad)


def test_checked_tools_are_checked_once_when_built() -> None:
    from sfagent.exceptions import ConfigurationError
    from sfagent.settings import ChatRequest, CheckedTools

    schemas = ({"type": "function", "function": {"name": "a"}},)
    checked = CheckedTools(schemas)
    assert checked.names == frozenset({"a"})
    body = ChatRequest([{"role": "user", "content": "x"}], tools=checked).to_body()
    assert body["tools"] == list(schemas)
    with pytest.raises(ConfigurationError, match="unique"):
        CheckedTools(schemas * 2)
