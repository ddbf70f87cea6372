"""The pure mapping of requests, responses and outcomes to the conventions' attributes."""

from __future__ import annotations

import json

from sfagent.messages import ChatCompletion, ToolCall
from sfagent.run._tool_calls import CallOutcome, PreparedCall
from sfagent.settings import ChatRequest, ModelSettings
from sfagent.tracing import _attributes as attrs


def test_request_settings_map_to_request_attributes() -> None:
    settings = ModelSettings(temperature=0.2, top_p=0.9, max_tokens=100, stop=["END"])
    request = ChatRequest([{"role": "user", "content": "hi"}], model="m", settings=settings)
    assert attrs.request_attributes(request, "siliconflow") == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "siliconflow",
        "gen_ai.request.model": "m",
        "gen_ai.request.stream": False,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.stop_sequences": ("END",),
    }


def test_response_attributes_include_usage_and_reasoning() -> None:
    response = ChatCompletion.model_validate(
        {
            "id": "abc",
            "model": "deepseek-ai/DeepSeek-R1",
            "choices": [
                {"message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        }
    )
    assert attrs.response_attributes(response) == {
        "gen_ai.response.model": "deepseek-ai/DeepSeek-R1",
        "gen_ai.response.id": "abc",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.reasoning.output_tokens": 3,
    }


def test_messages_become_the_conventions_parts() -> None:
    request = ChatRequest(
        [
            {"role": "user", "content": [{"type": "text", "text": "look"}, {
                "type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "think",
                "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "f", "arguments": "{\"a\": 1}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        model="m",
    )  # fmt: skip
    assert json.loads(attrs.input_messages(request)) == [
        {"role": "user", "parts": [{"type": "text", "content": "look"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "think"},
                {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]


def test_outcomes_map_to_error_types() -> None:
    assert attrs.outcome_error(None) is None
    assert attrs.outcome_error(CallOutcome(value=1)) is None
    assert attrs.outcome_error(CallOutcome(timed_out=True)) == "timeout"
    assert attrs.outcome_error(CallOutcome(denied=True)) == "denied"
    assert attrs.outcome_error(CallOutcome(exception=KeyError("k"))) == "KeyError"


def test_a_tool_result_is_the_text_the_model_is_sent() -> None:
    call = ToolCall.model_validate(
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    )
    item = PreparedCall(call)
    assert attrs.tool_result(item, CallOutcome(value={"a": 1})) == '{"a":1}'
