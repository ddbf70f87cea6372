"""Tool calls written as text: `find_text_calls` on captured-style samples of each format.

The samples are what the models' published chat templates render for an assistant turn with tool
calls (Qwen3's template for ``hermes``, Qwen3-Coder's for ``qwen3_coder``, GLM-4.6's and
GLM-4.7's for ``glm``), rendered with Jinja as transformers does (``trim_blocks``,
``lstrip_blocks``) and pasted here byte for byte: the newlines are the templates', not ours.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from sfagent.run._text_calls import TextCalls, find_text_calls

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"

NAMES = {"get_weather", "search", "list_files", "write_file"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "get_weather": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
    "search": {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object", "additionalProperties": True},
            "exact": {"type": "boolean"},
        },
    },
    "list_files": {"type": "object", "properties": {}},
    "write_file": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    },
}
WEATHER = {"city": "Paris", "days": 3}
SEARCH = {"query": "x", "filters": {"lang": "en", "tags": ["a", "b"]}, "exact": True}

# Qwen3's template: content, then "\n" + one block per call, blocks joined by "\n".
HERMES_TWO = (
    "Let me check.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n'
    "</tool_call>\n"
    '<tool_call>\n{"name": "search", "arguments": {"query": "x", "filters": {"lang": "en", '
    '"tags": ["a", "b"]}, "exact": true}}\n</tool_call>'
)
# Qwen3-Coder's template: content trimmed + "\n", then "\n<tool_call>..." per call; non-string
# values go through Jinja's `string` filter, so a dict is a Python repr and a bool is `True`.
CODER_TWO = (
    "Let me check.\n\n"
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>\n"
    "<tool_call>\n<function=search>\n<parameter=query>\nx\n</parameter>\n"
    "<parameter=filters>\n{'lang': 'en', 'tags': ['a', 'b']}\n</parameter>\n"
    "<parameter=exact>\nTrue\n</parameter>\n</function>\n</tool_call>"
)
# GLM-4.5 / 4.6: each pair on its own lines; non-string values through `tojson`.
GLM46_TWO = (
    "Let me check.\n"
    "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
    "<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>\n"
    "<tool_call>search\n<arg_key>query</arg_key>\n<arg_value>x</arg_value>\n"
    '<arg_key>filters</arg_key>\n<arg_value>{"lang": "en", "tags": ["a", "b"]}</arg_value>\n'
    "<arg_key>exact</arg_key>\n<arg_value>true</arg_value>\n</tool_call>"
)
# GLM-4.7: the same with no newlines at all.
GLM47_TWO = (
    "Let me check.<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
    "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>"
    "<tool_call>search<arg_key>query</arg_key><arg_value>x</arg_value><arg_key>filters</arg_key>"
    '<arg_value>{"lang": "en", "tags": ["a", "b"]}</arg_value><arg_key>exact</arg_key>'
    "<arg_value>true</arg_value></tool_call>"
)


def found(content: str, **options: Any) -> TextCalls:
    result = find_text_calls(content, NAMES, schemas=SCHEMAS, **options)
    assert result is not None
    return result


def calls_of(result: TextCalls) -> list[tuple[str, dict[str, Any]]]:
    return [(call.function.name, json.loads(call.function.arguments)) for call in result.calls]


def only_arguments(content: str) -> dict[str, Any]:
    ((_, arguments),) = calls_of(found(content))
    return arguments


def coder_call(name: str, **values: str) -> str:
    params = "".join(f"<parameter={key}>\n{value}\n</parameter>\n" for key, value in values.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


def glm_call(name: str, **values: str) -> str:
    pairs = "".join(
        f"<arg_key>{key}</arg_key>\n<arg_value>{value}</arg_value>\n"
        for key, value in values.items()
    )
    return f"<tool_call>{name}\n{pairs}</tool_call>"


# --- each format, as its template renders it ---------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (HERMES_TWO, "hermes"),
        (CODER_TWO, "qwen3_coder"),
        (GLM46_TWO, "glm"),
        (GLM47_TWO, "glm"),
    ],
    ids=["hermes-qwen3", "qwen3-coder", "glm-4.6", "glm-4.7"],
)
def test_two_calls_after_prose_are_found_in_order(content: str, fmt: str) -> None:
    result = found(content)
    assert result.format == fmt
    assert calls_of(result) == [("get_weather", WEATHER), ("search", SEARCH)]
    assert result.content == "Let me check."
    assert [call.type for call in result.calls] == ["function", "function"]


def test_markup_alone_leaves_no_content() -> None:
    result = found(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    assert calls_of(result) == [("get_weather", {"city": "Paris"})]
    assert result.content == ""


def test_prose_before_between_and_after_is_kept_in_order() -> None:
    content = (
        "First the weather.\n"
        + glm_call("get_weather", city="Paris")
        + "\nThen a search.\n"
        + glm_call("search", query="x")
        + "\nDone."
    )
    result = found(content)
    assert [name for name, _ in calls_of(result)] == ["get_weather", "search"]
    assert result.content == "First the weather.\n\nThen a search.\n\nDone."


def test_hermes_python_quoted_dict_from_the_hermes_prompt_is_read() -> None:
    # NousResearch/Hermes-Function-Calling's README shows the model answering in this form.
    content = "<tool_call>\n{'arguments': {'city': 'Paris'}, 'name': 'get_weather'}\n</tool_call>"
    assert only_arguments(content) == {"city": "Paris"}


def test_hermes_arguments_sent_as_a_json_string_are_decoded() -> None:
    arguments = json.dumps('{"city": "Paris"}')
    content = f'<tool_call>\n{{"name": "get_weather", "arguments": {arguments}}}\n</tool_call>'
    assert only_arguments(content) == {"city": "Paris"}


@pytest.mark.parametrize(
    "body",
    ['{"name": "list_files", "arguments": {}}', '{"name": "list_files"}'],
    ids=["empty", "absent"],
)
def test_hermes_empty_arguments_are_an_empty_object(body: str) -> None:
    result = found(f"<tool_call>\n{body}\n</tool_call>")
    assert [call.function.arguments for call in result.calls] == ["{}"]


def test_hermes_last_block_without_its_close_tag_is_complete_json() -> None:
    # A server that stops on `</tool_call>` drops it; the JSON still ends the call.
    content = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    result = found(content)
    assert calls_of(result) == [("get_weather", {"city": "Paris"})]
    assert result.content == "Checking."


def test_qwen3_coder_without_the_tool_call_wrapper_is_read() -> None:
    content = (
        "I'll look.\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>"
    )
    result = found(content)
    assert (result.format, result.content) == ("qwen3_coder", "I'll look.")
    assert calls_of(result) == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    "content",
    [
        "<tool_call>\n<function=list_files>\n</function>\n</tool_call>",
        "<tool_call>list_files\n</tool_call>",  # GLM-4.6 with no arguments
        "<tool_call>list_files</tool_call>",  # GLM-4.7 with no arguments
    ],
    ids=["qwen3-coder", "glm-4.6", "glm-4.7"],
)
def test_a_call_without_parameters_has_empty_arguments(content: str) -> None:
    result = found(content)
    assert [(c.function.name, c.function.arguments) for c in result.calls] == [("list_files", "{}")]


CODE = 'def f(x):\n    return "a\\tb" < x and x > 0  # &lt; stays &lt;\n'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (coder_call("write_file", path="a.py", content=CODE), CODE),
        (glm_call("write_file", path="a.py", content=CODE), CODE),
        (glm_call("write_file", path="a.py", content="  padded  "), "  padded  "),
        (coder_call("write_file", path="a.py", content="\nblank first\n"), "\nblank first\n"),
    ],
    ids=["coder-code", "glm-code", "glm-spaces", "coder-inner-newlines"],
)
def test_string_values_are_kept_verbatim_and_never_unescaped(content: str, expected: str) -> None:
    # No template uses CDATA or XML escapes: `<`, `>`, `&lt;`, quotes and backslashes are text.
    assert only_arguments(content) == {"path": "a.py", "content": expected}


def test_a_value_may_mention_the_markup_itself() -> None:
    text = "wrap calls in <tool_call> and <function=x> tags"
    hermes = json.dumps({"name": "write_file", "arguments": {"content": text}})
    for content in (
        f"<tool_call>\n{hermes}\n</tool_call>",
        coder_call("write_file", content=text),
        glm_call("write_file", content=text),
    ):
        assert only_arguments(content) == {"content": text}


# --- values by the parameter's schema ----------------------------------------------------------


@pytest.mark.parametrize("make", [coder_call, glm_call], ids=["qwen3-coder", "glm"])
def test_a_string_parameter_that_looks_like_a_number_stays_a_string(make: Any) -> None:
    assert only_arguments(make("get_weather", city="42", days="7")) == {"city": "42", "days": 7}


@pytest.mark.parametrize("make", [coder_call, glm_call], ids=["qwen3-coder", "glm"])
def test_an_object_parameter_is_decoded_from_json(make: Any) -> None:
    arguments = only_arguments(make("search", filters='{"lang": "en", "n": [1, 2.5, null]}'))
    assert arguments == {"filters": {"lang": "en", "n": [1, 2.5, None]}}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("2.5", 2.5),
        ("true", True),
        ('{"a": 1}', {"a": 1}),
        ("[1]", [1]),
        ("Paris", "Paris"),
        ("null", None),
        ("{'a': 1}", "{'a': 1}"),  # no Python literals without a declared non-string type
        ("  x ", "  x "),
    ],
)
def test_without_a_schema_json_is_decoded_and_anything_else_stays_text(
    text: str, value: object
) -> None:
    result = find_text_calls(glm_call("probe", v=text), {"probe"})
    assert result is not None
    assert json.loads(result.calls[0].function.arguments) == {"v": value}


@pytest.mark.parametrize(
    ("schema", "text", "value"),
    [
        ({"type": "boolean"}, "True", True),  # Qwen3-Coder's `string` filter
        ({"type": "boolean"}, "false", False),
        ({"type": "number"}, "3", 3),
        ({"type": "integer"}, "three", "three"),  # passed on; the tool's validation reports it
        ({"type": "array", "items": {"type": "integer"}}, "(1, 2)", [1, 2]),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "null", None),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "007", "007"),
        ({"anyOf": [{"type": "number"}, {"type": "string"}]}, "1.5", 1.5),
        ({"anyOf": [{"type": "number"}, {"type": "string"}]}, "abc", "abc"),
        ({"type": ["integer", "null"]}, "5", 5),
        ({"enum": ["1", "2"]}, "1", "1"),  # an untyped enum takes its members' types
        ({"enum": [1, 2]}, "1", 1),
        ({"anyOf": [{"type": "string"}, {}]}, "1", 1),  # one branch admits anything
        ({"type": "object"}, "{'k': {1, 2}}", "{'k': {1, 2}}"),  # a set is not JSON
        ({"type": "number"}, "NaN", "NaN"),
    ],
)
def test_values_follow_the_declared_type(schema: dict[str, Any], text: str, value: object) -> None:
    schemas = {"probe": {"type": "object", "properties": {"v": schema}}}
    for content in (coder_call("probe", v=text), glm_call("probe", v=text)):
        result = find_text_calls(content, {"probe"}, schemas=schemas)
        assert result is not None
        assert json.loads(result.calls[0].function.arguments) == {"v": value}


# --- never guess -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "The weather in Paris is sunny.",
        "You could call get_weather(city='Paris') yourself.",
        'I would answer with {"name": "get_weather", "arguments": {"city": "Paris"}}.',
        "Models wrap calls in <tool_call> tags; I won't.",
        "Qwen3-Coder writes <function=get_weather> blocks.",
        "",
    ],
)
def test_prose_without_markup_is_an_answer(content: str) -> None:
    assert find_text_calls(content, NAMES, schemas=SCHEMAS) is None


@pytest.mark.parametrize(
    "content",
    [
        '<tool_call>\n{"name": "delete_all", "arguments": {}}\n</tool_call>',
        coder_call("delete_all", path="/"),
        glm_call("delete_all", path="/"),
        "<function=delete_all>\n</function>",
        HERMES_TWO.replace('"search"', '"browse"'),  # one known call does not carry another
    ],
    ids=["hermes", "qwen3-coder", "glm", "bare-function", "one-of-two"],
)
def test_a_call_naming_an_unknown_tool_makes_it_all_an_answer(content: str) -> None:
    assert find_text_calls(content, NAMES, schemas=SCHEMAS) is None


def test_no_registered_tools_means_no_calls() -> None:
    assert find_text_calls(HERMES_TWO, ()) is None


MALFORMED = {
    "hermes-bad-json": '<tool_call>\n{"name": "get_weather", "arguments": {"city": }\n</tool_call>',
    "hermes-array": '<tool_call>\n[{"name": "get_weather", "arguments": {}}]\n</tool_call>',
    "hermes-no-name": '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>',
    "hermes-args-list": '<tool_call>\n{"name": "get_weather", "arguments": [1]}\n</tool_call>',
    "hermes-nan": '<tool_call>\n{"name": "get_weather", "arguments": {"days": NaN}}\n</tool_call>',
    "hermes-open-then-prose": '<tool_call>\n{"name": "list_files"}\nand then more',
    "empty-block": "<tool_call>\n</tool_call>",
    "nested": "<tool_call><tool_call>list_files</tool_call></tool_call>",
    "stray-close": 'Done.</tool_call>\n<tool_call>\n{"name": "list_files"}\n</tool_call>',
    "coder-no-parameter-close": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>"
    ),
    "coder-no-function-close": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</tool_call>"
    ),
    "coder-text-between": (
        "<tool_call>\n<function=get_weather>\nsee\n<parameter=city>\nParis\n</parameter>\n"
        "</function>\n</tool_call>"
    ),
    "coder-two-functions-one-block": (
        "<tool_call>\n<function=list_files>\n</function>\n<function=list_files>\n</function>\n"
        "</tool_call>"
    ),
    "coder-duplicate-key": coder_call("get_weather", city="Paris").replace(
        "</function>", "<parameter=city>\nRome\n</parameter>\n</function>"
    ),
    "bare-function-then-stray-close": "<function=list_files>\n</function>\n</parameter>",
    "glm-unclosed": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>",
    "glm-value-unclosed": (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</tool_call>"
    ),
    "glm-key-without-value": "<tool_call>get_weather<arg_key>city</arg_key></tool_call>",
    "glm-text-between-pairs": (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>and"
        "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>"
    ),
    "glm-name-is-a-sentence": "<tool_call>I will call get_weather</tool_call>",
    "glm-duplicate-key": (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
        "<arg_key>city</arg_key><arg_value>Rome</arg_value></tool_call>"
    ),
    "mixed-formats": HERMES_TWO + "\n" + glm_call("list_files"),
    "block-then-bare-function": (
        glm_call("list_files") + "\n<function=get_weather>\n<parameter=city>\nParis\n"
        "</parameter>\n</function>"
    ),
    "stray-arg-value-close": glm_call("get_weather", city="Paris") + "</arg_value>",
    "hermes-parameters-key": (
        '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>'
    ),
    "hermes-extra-key": (
        '<tool_call>\n{"name": "list_files", "arguments": {}, "then": "rm"}\n</tool_call>'
    ),
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_markup_is_an_answer(content: str) -> None:
    assert find_text_calls(content, NAMES, schemas=SCHEMAS) is None


# --- ids ---------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_differ_between_contents() -> None:
    first, again, other = found(HERMES_TWO), found(HERMES_TWO), found(GLM46_TWO)
    ids = [call.id for call in first.calls]
    assert ids == [call.id for call in again.calls]
    assert len(set(ids)) == 2
    assert all(i.startswith("text_call_") for i in ids)
    assert not set(ids) & {call.id for call in other.calls}


def test_an_id_prefix_numbers_the_calls() -> None:
    result = found(CODER_TWO, id_prefix="turn3_")
    assert [call.id for call in result.calls] == ["turn3_0", "turn3_1"]
    wire = result.calls[0].to_wire()
    assert wire == {
        "id": "turn3_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'},
    }


# --- bounded work ------------------------------------------------------------------------------

MB = 1_000_000


def timed(content: str, names: set[str] = NAMES) -> tuple[TextCalls | None, float]:
    start = time.perf_counter()
    result = find_text_calls(content, names, schemas=SCHEMAS)
    return result, time.perf_counter() - start


HOSTILE = {
    "prose": "word " * (MB // 5),
    "open-tags": "<tool_call>" * (MB // 11),
    "angle-brackets": "<tool_call>" + "<" * MB,
    "close-tags": "</tool_call>" * (MB // 12) + "<function=",
    "function-tags": "<function=" * (MB // 10),
    "parameter-tags": "<function=list_files>" + "<parameter=" * (MB // 11),
    "arg-key-tags": "<tool_call>list_files" + "<arg_key>" * (MB // 9) + "</tool_call>",
    "deep-json": '<tool_call>\n{"name": "list_files", "arguments": ' + "[" * MB + "\n</tool_call>",
    "deep-python-literal": "<tool_call>\n" + "{'a': " * (MB // 6) + "\n</tool_call>",
    "deep-literal-under-cap": "<tool_call>\n" + "{'a': " * 16_000 + "\n</tool_call>" + " " * MB,
    "deep-glm-object": glm_call("search", filters="[" * MB),
}


@pytest.mark.parametrize("content", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_megabyte_of_hostile_text_is_answered_quickly(content: str) -> None:
    result, seconds = timed(content)
    if content.startswith("<tool_call>search"):
        assert result is not None  # the deep value is passed on as text, for validation
    else:
        assert result is None
    assert seconds < 2.0


def test_an_open_last_block_followed_by_a_megabyte_of_space_is_a_call() -> None:
    content = '<tool_call>\n{"name": "list_files", "arguments": {}}' + " " * MB
    result, seconds = timed(content)
    assert result is not None
    assert [call.function.name for call in result.calls] == ["list_files"]
    assert seconds < 2.0


@pytest.mark.parametrize(
    "make",
    [
        lambda text: json.dumps({"name": "write_file", "arguments": {"content": text}}).join(
            ["<tool_call>\n", "\n</tool_call>"]
        ),
        lambda text: coder_call("write_file", content=text),
        lambda text: glm_call("write_file", content=text),
    ],
    ids=["hermes", "qwen3-coder", "glm"],
)
def test_a_megabyte_value_is_read_in_linear_time(make: Any) -> None:
    text = ("print('<x>')\n" * (MB // 13))[:MB]
    result, seconds = timed(make(text))
    assert result is not None
    assert json.loads(result.calls[0].function.arguments) == {"content": text}
    assert seconds < 2.0


def test_ten_thousand_calls_in_a_megabyte_are_all_found_in_order() -> None:
    content = "\n".join(glm_call("get_weather", city=f"c{i}", days=str(i)) for i in range(10_000))
    assert len(content) > MB
    result, seconds = timed(content)
    assert result is not None
    assert len(result.calls) == 10_000
    assert json.loads(result.calls[-1].function.arguments) == {"city": "c9999", "days": 9999}
    assert seconds < 2.0


def test_a_deep_untyped_value_stays_text_without_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    result = find_text_calls(glm_call("probe", v=deep), {"probe"})
    assert result is not None
    assert json.loads(result.calls[0].function.arguments) == {"v": deep}


# --- properties --------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60).filter(
    lambda s: all(tag not in s for tag in ("</parameter>", "</arg_value>", _CLOSE))
)


@settings(max_examples=200, deadline=None)
@given(path=_TEXT, content=_TEXT)
def test_string_values_round_trip_through_both_xml_formats(path: str, content: str) -> None:
    for markup in (
        coder_call("write_file", path=path, content=content),
        glm_call("write_file", path=path, content=content),
    ):
        assert only_arguments(markup) == {"path": path, "content": content}


_PIECES = [
    _OPEN,
    _CLOSE,
    "<function=",
    "</function>",
    "<parameter=",
    "</parameter>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    ">",
    "<",
    "\n",
    " ",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    "name",
    "arguments",
    "get_weather",
    "list_files",
    "city",
    "days",
    "1",
    "null",
    "True",
    "Paris",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_markup_shaped_noise_never_raises(content: str) -> None:
    result = find_text_calls(content, NAMES, schemas=SCHEMAS)
    assert result is None or all(call.function.name in NAMES for call in result.calls)
    if result is not None:
        assert all(isinstance(json.loads(c.function.arguments), dict) for c in result.calls)


def test_a_lone_surrogate_in_the_content_still_gets_an_id() -> None:
    result = found("\ud800" + glm_call("list_files"))
    assert result.calls[0].id.startswith("text_call_")
    assert result.content == "\ud800"
