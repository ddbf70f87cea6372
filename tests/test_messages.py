"""Wire models: parsing the API's payloads tolerantly and replaying messages exactly."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sfagent.exceptions import APIResponseValidationError, ConfigurationError
from sfagent.messages import (
    AssistantMessage,
    AudioPart,
    ChatCompletion,
    ChatCompletionChunk,
    FunctionCall,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    VideoPart,
    image_part,
    parse_message,
    parse_messages,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def _response(**message: Any) -> dict[str, Any]:
    return {
        "id": "019bdaa55225ef854b320e9b838f77ce",
        "object": "chat.completion",
        "created": 1,
        "model": "Qwen/Qwen3-8B",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
    }


# --- fixtures --------------------------------------------------------------------------------


def test_f1_nonstream_tool_call_parses(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "nonstream_tool_call.json").read_bytes()
    completion = ChatCompletion.model_validate_json(raw)

    assert completion.id == "019bda909755f42bd3785e4c1c8117bb"
    assert completion.model == "zai-org/GLM-4.6V"
    assert completion.finish_reason == "tool_calls"
    message = completion.message
    assert message.content == "..."
    assert message.reasoning_content == "..."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.id == "019bda90bb06ea1f88f140889ff0916b"
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Boston, MA"}
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (216, 135, 351)
    assert usage.reasoning_tokens == 107
    assert usage.cached_tokens == 0
    assert usage.prompt_cache_miss_tokens == 216
    assert completion.system_fingerprint == ""


def test_f2_assistant_message_parses_and_replays_unchanged(fixtures_dir: Path) -> None:
    wire = json.loads((fixtures_dir / "assistant_tool_call_message.json").read_text())
    message = parse_message(wire)

    assert isinstance(message, AssistantMessage)
    assert message.to_wire() == wire


# --- tolerance -------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["stop", "eos", "length", "tool_calls", "content_filter", "x"])
def test_any_finish_reason_is_accepted(reason: str) -> None:
    data = _response(content="hi")
    data["choices"][0]["finish_reason"] = reason
    assert ChatCompletion.model_validate(data).finish_reason == reason


def test_unknown_fields_are_kept() -> None:
    data = _response(content="hi", content_filter_results={"hate": False})
    data["service_tier"] = "default"
    completion = ChatCompletion.model_validate(data)

    assert completion.model_extra == {"service_tier": "default"}
    assert completion.message.model_extra == {"content_filter_results": {"hate": False}}


def test_null_content_and_reasoning_are_none() -> None:
    completion = ChatCompletion.model_validate(_response(content=None, reasoning_content=None))
    assert completion.message.content is None
    assert completion.message.reasoning_content is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ({"a": 1, "b": "é"}, '{"a": 1, "b": "é"}'),
        (None, ""),
        ("not json", "not json"),
    ],
)
def test_tool_call_arguments_become_a_json_string(arguments: object, expected: str) -> None:
    assert FunctionCall.model_validate({"name": "f", "arguments": arguments}).arguments == expected


def test_top_level_tool_calls_move_into_a_message_without_any() -> None:
    data = _response(content="")
    data["tool_calls"] = [
        {"id": "a1", "type": "function", "function": {"name": "f", "arguments": {}}}
    ]
    completion = ChatCompletion.model_validate(data)

    assert completion.message.tool_calls == [
        ToolCall(id="a1", function=FunctionCall(name="f", arguments="{}"))
    ]
    assert "tool_calls" not in (completion.model_extra or {})
    assert "tool_calls" in data  # the caller's dict is left alone


def test_top_level_tool_calls_do_not_override_the_message() -> None:
    own = {"id": "m1", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    data = _response(content="", tool_calls=[own])
    data["tool_calls"] = [{"id": "t1", "type": "function", "function": {"name": "f"}}]
    completion = ChatCompletion.model_validate(data)

    assert completion.message.tool_calls is not None
    assert [c.id for c in completion.message.tool_calls] == ["m1"]


def test_a_response_without_choices_says_so_when_asked_for_its_message() -> None:
    completion = ChatCompletion.model_validate({"id": "x", "choices": []})
    with pytest.raises(APIResponseValidationError, match="no choices"):
        _ = completion.message


def test_usage_details_are_optional() -> None:
    completion = ChatCompletion.model_validate(
        {**_response(content="x"), "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    )
    assert completion.usage is not None
    assert completion.usage.reasoning_tokens == 0
    assert completion.usage.cached_tokens == 0
    assert completion.usage.total_tokens == 0


def test_null_token_counts_and_a_missing_message_are_tolerated() -> None:
    completion = ChatCompletion.model_validate(
        {
            "choices": [{"finish_reason": "content_filter"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": None, "total_tokens": None},
        }
    )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 0)
    assert completion.message.content is None


def test_cached_tokens_fall_back_to_prompt_cache_hit_tokens() -> None:
    completion = ChatCompletion.model_validate(
        {**_response(content="x"), "usage": {"prompt_cache_hit_tokens": 448}}
    )
    assert completion.usage is not None
    assert completion.usage.cached_tokens == 448


def test_chunk_with_empty_choices_and_partial_tool_call_parses() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{"}}]}}]}
    )
    fragment = chunk.choices[0].delta.tool_calls
    assert fragment is not None
    assert fragment[0].index is None
    assert fragment[0].id is None
    assert ChatCompletionChunk.model_validate({"choices": []}).choices == []


# --- replay ----------------------------------------------------------------------------------


_CALL = ToolCall(
    id="019677d5f9312482e36d2016f6b5a67e", function=FunctionCall(name="f", arguments="{}")
)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (SystemMessage(content="be brief"), {"role": "system", "content": "be brief"}),
        (UserMessage(content="hi"), {"role": "user", "content": "hi"}),
        (
            ToolMessage(tool_call_id="c1", content="42"),
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ),
        (AssistantMessage(content="hello"), {"role": "assistant", "content": "hello"}),
        (
            AssistantMessage(content="hello", reasoning_content="thought"),
            {"role": "assistant", "content": "hello"},
        ),
        (AssistantMessage(content=None), {"role": "assistant", "content": ""}),
        (
            AssistantMessage(content=None, tool_calls=[_CALL]),
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": _CALL.id,
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
        ),
        (
            AssistantMessage(content="", reasoning_content="why", tool_calls=[_CALL]),
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "why",
                "tool_calls": [
                    {
                        "id": _CALL.id,
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
        ),
    ],
    ids=[
        "system",
        "user",
        "tool",
        "assistant",
        "reasoning-dropped",
        "null-content",
        "tool-calls",
        "tool-calls-keep-reasoning",
    ],
)
def test_messages_serialise_to_the_wire_dict(message: Any, wire: dict[str, Any]) -> None:
    assert message.to_wire() == wire


def test_replay_drops_response_extras() -> None:
    data = _response(content="hi", content_filter_results={"hate": False}, annotations=[])
    assert ChatCompletion.model_validate(data).message.to_wire() == {
        "role": "assistant",
        "content": "hi",
    }


def test_user_extras_are_sent() -> None:
    assert UserMessage(content="hi", name="alice").to_wire() == {  # type: ignore[call-arg]
        "role": "user",
        "content": "hi",
        "name": "alice",
    }


def test_multipart_user_message_round_trips() -> None:
    wire = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            {"type": "video_url", "video_url": {"url": "https://x/v.mp4", "max_frames": 8}},
            {"type": "audio_url", "audio_url": {"url": "https://x/a.mp3"}},
        ],
    }
    message = parse_message(wire)

    assert isinstance(message, UserMessage)
    assert isinstance(message.content, list)
    assert [type(p) for p in message.content] == [TextPart, ImagePart, VideoPart, AudioPart]
    assert message.to_wire() == wire


def test_parse_messages_picks_the_class_by_role() -> None:
    history = parse_messages(
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": None, "tool_calls": [_CALL.to_wire()]},
            {"role": "tool", "tool_call_id": _CALL.id, "content": "r"},
        ]
    )
    assert [type(m) for m in history] == [SystemMessage, UserMessage, AssistantMessage, ToolMessage]


@pytest.mark.parametrize(
    "wire",
    [{"role": "robot", "content": "x"}, {"content": "x"}, {"role": "tool", "content": "x"}],
)
def test_parse_message_rejects_what_the_api_would(wire: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_message(wire)


def test_messages_are_frozen() -> None:
    message = UserMessage(content="hi")
    with pytest.raises(ValidationError):
        message.content = "changed"  # type: ignore[misc]


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://x/y.jpg", "data:image/png;base64,AAAA"]
)
def test_image_urls_pass_through(url: str) -> None:
    part = image_part(url, detail="high")
    assert part.image_url.url == url
    assert part.image_url.detail == "high"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
)
def test_image_bytes_become_a_data_url(data: bytes, mime: str) -> None:
    url = image_part(data).image_url.url
    prefix = f"data:{mime};base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == data


def test_image_file_becomes_a_data_url(tmp_path: Path) -> None:
    path = tmp_path / "pic.png"
    path.write_bytes(PNG)
    part = image_part(path)
    assert part.image_url.url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert part.image_url.detail is None
    assert image_part(str(path)).image_url.url == part.image_url.url


def test_image_mime_type_can_be_given(tmp_path: Path) -> None:
    assert image_part(b"???", mime_type="image/heic").image_url.url.startswith("data:image/heic;")


def test_unknown_image_bytes_need_a_mime_type() -> None:
    with pytest.raises(ConfigurationError, match="mime_type"):
        image_part(b"not an image")


def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(tmp_path: Path) -> None:
    source = tmp_path / "server.py"
    source.write_text("print('hello')\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"server\.py' is not an image"):
        image_part(source)
    disguised = tmp_path / "photo.png"
    disguised.write_text("print('hello')\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="is not an image"):
        image_part(disguised)
    with pytest.raises(ConfigurationError, match="must be image/"):
        image_part(source, mime_type="text/x-python")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"II*\x00rest", "image/tiff"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "image/avif"),
    ],
)
def test_more_image_formats_are_recognised(data: bytes, mime: str) -> None:
    assert image_part(data).image_url.url.startswith(f"data:{mime};base64,")


def test_missing_image_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        image_part(tmp_path / "nope.png")
