"""An MCP tool listing → `Tool`s, and `tools/call` results → text: the pure part of sfagent.mcp."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import mcp.types as mt
import pytest

from sfagent.context import RunContext
from sfagent.exceptions import ModelRetry, ToolDefinitionError
from sfagent.mcp._convert import ToolPolicy, convert_tools, result_text

TYPED = {
    "type": "object",
    "title": "saveArguments",
    "properties": {
        "title": {"type": "string", "title": "Title"},
        "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "limit": {"type": "integer", "default": 10},
    },
    "required": ["title"],
}
FREE_FORM = {
    "type": "object",
    "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["labels"],
}


def spec(name: str, schema: dict[str, Any] | None = None, description: str = "Does it.") -> mt.Tool:
    return mt.Tool(name=name, description=description, input_schema=schema or {"type": "object"})


class Recorder:
    """A `Caller` that records what it was sent and answers with a fixed result."""

    def __init__(self, result: mt.CallToolResult | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.time_left: list[float | None] = []
        self.result = result or mt.CallToolResult(content=[mt.TextContent(text="ok")])

    async def __call__(
        self, name: str, arguments: dict[str, Any], time_left: float | None
    ) -> mt.CallToolResult:
        self.calls.append((name, arguments))
        self.time_left.append(time_left)
        return self.result


def test_names_descriptions_and_schemas_come_from_the_listing() -> None:
    caller = Recorder()
    [made] = convert_tools([spec("save", TYPED, "Save a note.")], ToolPolicy(server="s"), caller)
    assert made.name == "save"
    assert made.description == "Save a note."
    assert made.is_async
    assert not made.strict
    assert "title" not in made.parameters  # the generator's noise is dropped
    assert made.parameters["properties"]["title"] == {"type": "string"}
    assert made.parameters["required"] == ["title"]


def test_a_prefix_keeps_servers_apart_and_calls_use_the_servers_own_name() -> None:
    caller = Recorder()
    [made] = convert_tools([spec("save", TYPED)], ToolPolicy(server="s", prefix="notes"), caller)
    assert made.name == "notes_save"
    asyncio.run(made.ainvoke('{"title": "x"}'))
    assert caller.calls == [("save", {"title": "x"})]


class Left:
    """A stand-in for the run's budgets behind a `RunContext` (`RunContext.time_left`)."""

    def time_left(self) -> float:
        return 7.5


def test_in_a_run_a_call_is_given_the_time_the_run_has_left() -> None:
    caller = Recorder()
    [made] = convert_tools([spec("save", TYPED)], ToolPolicy(server="s"), caller)
    assert made.takes_context  # so the loop hands it the run's context
    context = RunContext(deps=None, _nesting=Left())
    args, kwargs = made.bind('{"title": "x"}', context=context)
    assert args == (context,)
    assert kwargs == {"title": "x"}
    asyncio.run(made.function(*args, **kwargs))
    asyncio.run(made.ainvoke('{"title": "y"}'))  # outside a run: no context, no bound
    assert caller.calls == [("save", {"title": "x"}), ("save", {"title": "y"})]
    assert caller.time_left == [7.5, None]
    assert "run" not in made.parameters["properties"]  # the model never sees it


def test_include_and_exclude_filter_by_the_servers_names() -> None:
    specs = [spec("a"), spec("b"), spec("c")]
    kept = convert_tools(
        specs, ToolPolicy(server="s", include={"a", "b"}, exclude={"b"}), Recorder()
    )
    assert [t.name for t in kept] == ["a"]


def test_a_name_the_api_refuses_is_a_typed_error_that_says_how_to_leave_it_out() -> None:
    with pytest.raises(ToolDefinitionError, match=r"tool 'fetch\.url'.*exclude=\['fetch\.url'\]"):
        convert_tools([spec("fetch.url")], ToolPolicy(server="s"), Recorder())
    too_long = ToolPolicy(server="s", prefix="p" * 32)
    with pytest.raises(ToolDefinitionError, match="1-64 characters"):
        convert_tools([spec("x" * 40)], too_long, Recorder())


def test_an_invalid_schema_is_a_typed_error() -> None:
    with pytest.raises(ToolDefinitionError, match="tool 'bad'"):
        convert_tools(
            [spec("bad", {"type": "object", "properties": 3})], ToolPolicy(server="s"), Recorder()
        )
    with pytest.raises(ToolDefinitionError, match="not an object schema"):
        convert_tools([spec("arr", {"type": "array"})], ToolPolicy(server="s"), Recorder())


def test_strict_where_the_strict_form_is_valid_and_loose_where_it_is_not() -> None:
    typed, free = convert_tools(
        [spec("save", TYPED), spec("label", FREE_FORM)],
        ToolPolicy(server="s", strict=True),
        Recorder(),
    )
    assert typed.strict
    assert typed.schema["function"]["strict"] is True
    assert typed.parameters["additionalProperties"] is False
    assert sorted(typed.parameters["required"]) == ["limit", "tags", "title"]
    assert not free.strict
    assert "strict" not in free.schema["function"]


def test_strict_nulls_for_optional_parameters_are_left_out_of_the_call() -> None:
    caller = Recorder()
    [made] = convert_tools([spec("save", TYPED)], ToolPolicy(server="s", strict=True), caller)
    asyncio.run(made.ainvoke({"title": "x", "tags": None, "limit": None}))
    # `tags` allows null in the server's own schema, so it is kept; `limit` does not.
    assert caller.calls == [("save", {"title": "x", "tags": None})]


def test_bad_arguments_are_refused_before_any_call() -> None:
    from sfagent.exceptions import ToolArgumentsError

    caller = Recorder()
    [made] = convert_tools([spec("save", TYPED)], ToolPolicy(server="s"), caller)
    with pytest.raises(ToolArgumentsError, match="title"):
        made.bind('{"limit": 3}')
    assert caller.calls == []


def test_options_reach_every_tool() -> None:
    policy = ToolPolicy(
        server="s", timeout=5.0, requires_approval=True, max_retries=1, sequential=True
    )
    [made] = convert_tools([spec("a")], policy, Recorder())
    assert (made.timeout, made.requires_approval, made.max_retries, made.sequential) == (
        5.0,
        True,
        1,
        True,
    )


def test_an_is_error_result_becomes_a_message_the_model_can_act_on() -> None:
    failing = mt.CallToolResult(content=[mt.TextContent(text="no such note")], is_error=True)
    [made] = convert_tools([spec("read")], ToolPolicy(server="s"), Recorder(failing))
    with pytest.raises(ModelRetry) as raised:
        asyncio.run(made.ainvoke({}))
    assert raised.value.message == "Error: tool 'read' reported an error: no such note"


def test_structured_content_is_sent_as_json_once() -> None:
    result = mt.CallToolResult(
        content=[mt.TextContent(text='{"result": 3}')], structured_content={"result": 3}
    )
    assert result_text(result) == '{"result":3}'


def test_text_resources_images_and_links_become_text() -> None:
    png = base64.b64encode(b"x" * 30).decode()
    result = mt.CallToolResult(
        content=[
            mt.TextContent(text="first"),
            mt.TextContent(text="second"),
            mt.ImageContent(data=png, mime_type="image/png"),
            mt.EmbeddedResource(resource=mt.TextResourceContents(uri="notes://a", text="the note")),
            mt.EmbeddedResource(
                resource=mt.BlobResourceContents(
                    uri="notes://b", blob=png, mime_type="application/pdf"
                )
            ),
            mt.ResourceLink(uri="notes://c", name="c"),
        ]
    )
    assert result_text(result).split("\n\n") == [
        "first",
        "second",
        "[image image/png, 30 bytes]",
        "the note",
        "[resource notes://b: application/pdf, 30 bytes]",
        "[resource notes://c: c]",
    ]


def test_a_huge_result_is_cut_and_says_so() -> None:
    result = mt.CallToolResult(content=[mt.TextContent(text="x" * 5000)])
    text = result_text(result, max_chars=1000)
    assert text.startswith("x" * 999 + "…")
    assert text.endswith("[4000 more characters not shown]")
    assert len(result_text(result)) == 5000


def test_an_empty_result_is_empty_text() -> None:
    assert result_text(mt.CallToolResult(content=[])) == ""
    assert json.loads(result_text(mt.CallToolResult(content=[], structured_content={}))) == {}
