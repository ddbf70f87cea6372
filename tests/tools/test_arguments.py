"""Parsing the model's `arguments`: the safe repairs, and what is reported instead."""

from __future__ import annotations

from typing import Any

import pytest

from sfagent import ToolArgumentsError, tool


@tool
def book(city: str, nights: int = 1, late: bool = False, note: str | None = None) -> dict[str, Any]:
    """Book a room."""
    return {"city": city, "nights": nights, "late": late, "note": note}


REPAIRED = [
    ('{"city": "Rome"}', {"city": "Rome"}),
    ('  {"city": "Rome"}\n', {"city": "Rome"}),
    ('```json\n{"city": "Rome"}\n```', {"city": "Rome"}),
    ('```\n{"city": "Rome", "nights": 2}\n```', {"city": "Rome", "nights": 2}),
    ('{"city": "Rome", "nights": 2,}', {"city": "Rome", "nights": 2}),
    ('{"city": "Rome", "late": True, "note": None}', {"city": "Rome", "late": True}),
    ('{"city": "Rome", "late": False}', {"city": "Rome", "late": False}),
    ('"{\\"city\\": \\"Rome\\"}"', {"city": "Rome"}),  # encoded twice
    # Repairs never touch string contents:
    ('{"city": "True, None,}", "late": True,}', {"city": "True, None,}", "late": True}),
]


@pytest.mark.parametrize(("arguments", "expected"), REPAIRED)
def test_unambiguous_slips_are_repaired(arguments: str, expected: dict[str, Any]) -> None:
    result = book.invoke(arguments)
    for key, value in expected.items():
        assert result[key] == value


@pytest.mark.parametrize("arguments", ["", "   ", "\n", None])
def test_empty_arguments_mean_no_arguments(arguments: str | None) -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert ping.invoke(arguments) == "pong"


REPORTED = [
    ("{'city': 'Rome'}", "malformed JSON"),  # single quotes: not guessed
    ('{"city": "Rome"', "malformed JSON"),  # cut off
    ('{"city": Rome}', "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('"Rome"', "expected a JSON object"),
    ("42", "expected a JSON object"),
    ("null", "expected a JSON object"),
]


@pytest.mark.parametrize(("arguments", "message"), REPORTED)
def test_ambiguous_or_broken_arguments_are_reported(arguments: str, message: str) -> None:
    with pytest.raises(ToolArgumentsError, match=message) as info:
        book.invoke(arguments)
    assert info.value.tool_name == "book"
    assert len(info.value.problems) == 1


def test_all_problems_reported_at_once_naming_each_parameter() -> None:
    @tool
    def order(item: str, qty: int, express: bool = False) -> None:
        return None

    with pytest.raises(ToolArgumentsError) as info:
        order.invoke('{"qty": "many", "express": "maybe"}')
    err = info.value
    assert [p.path for p in err.problems] == ["item", "qty", "express"]
    text = str(err)
    assert text.startswith("Invalid arguments for tool 'order': ")
    assert "item: required argument is missing" in text
    assert "qty: Input should be a valid integer" in text
    assert '(got "many")' in text
    assert "Traceback" not in text
    assert "pydantic" not in text
    assert "https://" not in text


def test_long_values_are_shortened_in_errors() -> None:
    @tool
    def f(n: int) -> None:
        return None

    with pytest.raises(ToolArgumentsError) as info:
        f.invoke({"n": "x" * 500})
    assert len(str(info.value)) < 200


def test_dict_arguments_are_accepted() -> None:
    assert book.invoke({"city": "Oslo", "nights": "3"})["nights"] == 3  # lax coercion


def test_unknown_arguments_ignored_when_lenient_rejected_under_strict() -> None:
    assert book.invoke('{"city": "Rome", "invented": 1}')["city"] == "Rome"

    @tool(strict=True)
    def strict_book(city: str) -> str:
        return city

    with pytest.raises(ToolArgumentsError, match="invented: unknown argument"):
        strict_book.invoke('{"city": "Rome", "invented": 1}')


def test_hand_made_schema_reports_every_problem() -> None:
    from sfagent import Tool

    t = Tool.from_schema(
        lambda **kw: kw,
        name="lookup",
        description="Look up.",
        parameters={
            "type": "object",
            "properties": {"id": {"type": "integer"}, "tags": {"type": "array"}},
            "required": ["id"],
            "additionalProperties": False,
        },
    )
    assert t.invoke('{"id": 3}') == {"id": 3}
    with pytest.raises(ToolArgumentsError) as info:
        t.invoke('{"tags": "x", "extra": 1}')
    messages = [str(p) for p in info.value.problems]
    assert any("'id' is a required property" in m for m in messages)
    assert any("tags" in m and "not of type 'array'" in m for m in messages)
    assert any("extra" in m for m in messages)


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```\n{"a": 1}```', '{"a": 1}'),
        ('{"a": 1}', '{"a": 1}'),
        ('say ```{"a": 1}```', 'say ```{"a": 1}```'),  # only a fence around all of it
    ],
)
def test_code_fence_is_stripped_only_around_the_whole_text(text: str, inside: str) -> None:
    from sfagent.tools._arguments import strip_code_fence

    assert strip_code_fence(text) == inside
