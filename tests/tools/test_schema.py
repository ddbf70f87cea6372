"""Schema rules: type hints and docstrings → the `parameters` JSON schema."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from sfagent import RunContext, Tool, ToolDefinitionError, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number")
    city: str


@dataclasses.dataclass
class Point:
    """A point on the plane."""

    x: float
    y: float = 0.0


class Filters(TypedDict):
    """Search filters."""

    tag: str
    limit: int


class TreeNode(BaseModel):
    value: int
    children: list[TreeNode] = []


def _param_schema(annotation: Any, **kwargs: Any) -> dict[str, Any]:
    """The property schema produced for a single parameter `x: annotation`."""

    def fn(x):  # type: ignore[no-untyped-def]
        return x

    fn.__annotations__ = {"x": annotation}
    t = tool(fn, **kwargs)
    return t.parameters["properties"]["x"]  # type: ignore[no-any-return]


TYPE_TABLE: list[tuple[Any, dict[str, Any]]] = [
    (str, {"type": "string"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (bool, {"type": "boolean"}),
    (type(None), {"type": "null"}),
    (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
    (Literal["a", "b"], {"enum": ["a", "b"], "type": "string"}),
    (Color, {"enum": ["red", "blue"], "type": "string"}),
    (Level, {"enum": [1, 2], "type": "integer"}),
    (list[int], {"items": {"type": "integer"}, "type": "array"}),
    (Sequence[str], {"items": {"type": "string"}, "type": "array"}),
    (set[str], {"items": {"type": "string"}, "type": "array", "uniqueItems": True}),
    (
        tuple[int, str],
        {
            "maxItems": 2,
            "minItems": 2,
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "type": "array",
        },
    ),
    (dict[str, int], {"additionalProperties": {"type": "integer"}, "type": "object"}),
    (dt.datetime, {"format": "date-time", "type": "string"}),
    (dt.date, {"format": "date", "type": "string"}),
    (dt.time, {"format": "time", "type": "string"}),
    (uuid.UUID, {"format": "uuid", "type": "string"}),
    (Path, {"format": "path", "type": "string"}),
]


@pytest.mark.parametrize(("annotation", "expected"), TYPE_TABLE, ids=lambda v: repr(v)[:40])
def test_type_maps_to_json_schema(annotation: Any, expected: dict[str, Any]) -> None:
    assert _param_schema(annotation) == expected


def test_decimal_accepts_number_or_numeric_string() -> None:
    schema = _param_schema(Decimal)
    types = {option["type"] for option in schema["anyOf"]}
    assert types == {"number", "string"}


def test_nested_model_is_inlined_with_field_descriptions_and_no_titles() -> None:
    schema = _param_schema(Address)
    assert schema == {
        "description": "A postal address.",
        "properties": {
            "street": {"description": "Street and number", "type": "string"},
            "city": {"type": "string"},
        },
        "required": ["street", "city"],
        "type": "object",
    }


def test_dataclass_and_typeddict_are_objects() -> None:
    assert _param_schema(Point)["properties"] == {
        "x": {"type": "number"},
        "y": {"default": 0.0, "type": "number"},
    }
    filters = _param_schema(Filters)
    assert filters["required"] == ["tag", "limit"]
    assert filters["description"] == "Search filters."


def test_recursive_model_keeps_only_the_needed_defs() -> None:
    @tool
    def walk(root: TreeNode, where: Address) -> int:
        return 0

    params = walk.parameters
    assert set(params["$defs"]) == {"TreeNode"}  # Address is inlined, TreeNode must recur
    assert params["properties"]["root"]["properties"]["children"]["items"] == {
        "$ref": "#/$defs/TreeNode"
    }
    Draft202012Validator.check_schema(params)
    Draft202012Validator(params).validate(
        {"root": {"value": 1, "children": [{"value": 2}]}, "where": {"street": "a", "city": "b"}}
    )


def test_annotated_field_constraints_and_description() -> None:
    schema = _param_schema(
        Annotated[str, Field(description="Code", min_length=2, max_length=5, pattern="^[A-Z]+$")]
    )
    assert schema == {
        "description": "Code",
        "maxLength": 5,
        "minLength": 2,
        "pattern": "^[A-Z]+$",
        "type": "string",
    }
    assert _param_schema(Annotated[int, Field(ge=1, le=10)]) == {
        "maximum": 10,
        "minimum": 1,
        "type": "integer",
    }


def test_defaults_make_parameters_optional_and_appear_as_default() -> None:
    @tool
    def search(query: str, limit: int = 10, lang: str | None = None) -> list[str]:
        return []

    params = search.parameters
    assert params["required"] == ["query"]
    assert params["properties"]["limit"] == {"default": 10, "type": "integer"}
    assert params["properties"]["lang"]["default"] is None


def test_optional_without_default_stays_required() -> None:
    @tool
    def f(x: int | None) -> None:
        return None

    assert f.parameters["required"] == ["x"]


def test_unannotated_parameter_accepts_any_value() -> None:
    @tool
    def echo(value, count: int = 1):  # type: ignore[no-untyped-def]
        """Echo.

        Args:
            value: Anything at all.
        """
        return value

    assert echo.parameters["properties"]["value"] == {"description": "Anything at all."}
    assert echo.invoke('{"value": [1, {"a": null}]}') == [1, {"a": None}]


def test_tool_without_parameters() -> None:
    @tool
    def now() -> str:
        return "noon"

    assert now.parameters == {"type": "object", "properties": {}}


def test_no_title_anywhere_but_a_property_named_title_survives() -> None:
    @tool
    def post(title: str, body: Address) -> None:
        return None

    text = str(post.parameters)
    assert "'title': 'string'" not in text
    assert list(post.parameters["properties"]) == ["title", "body"]
    assert "title" not in post.parameters["properties"]["body"]


def test_run_context_parameter_is_left_out() -> None:
    @tool
    def whoami(ctx: RunContext[str], greeting: str = "hi") -> str:
        return f"{greeting} {ctx.deps}"

    assert list(whoami.parameters["properties"]) == ["greeting"]
    assert whoami.takes_context
    assert whoami.invoke("{}", context=RunContext(deps="ann")) == "hi ann"


def test_optional_run_context_is_recognised() -> None:
    @tool
    def f(x: int, ctx: RunContext[None] | None = None) -> int:
        return x

    assert list(f.parameters["properties"]) == ["x"]


def test_parameter_names_that_clash_with_pydantic_are_kept() -> None:
    @tool
    def odd(json: str, schema: int, _private: bool = False, model_config: str = "") -> str:
        return f"{json}-{schema}-{_private}-{model_config}"

    assert list(odd.parameters["properties"]) == ["json", "schema", "_private", "model_config"]
    assert odd.invoke('{"json": "j", "schema": 2, "_private": true}') == "j-2-True-"


# --- refusals ---------------------------------------------------------------------------------


def _varargs(*items: int) -> None: ...


def _varkw(**options: int) -> None: ...


def _two_contexts(a: RunContext[None], b: RunContext[None]) -> None: ...


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_varargs, "takes *items"),
        (_varkw, "takes **options"),
        (_two_contexts, "more than one RunContext"),
    ],
)
def test_refused_signatures(fn: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message.replace("*", r"\*")):
        tool(fn)


def test_unresolvable_annotation_is_refused_with_a_reason() -> None:
    def f(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(ToolDefinitionError, match="cannot be resolved"):
        tool(f)


def test_type_without_json_schema_is_refused() -> None:
    def f(callback: Any = None, fn: type[int] = int) -> None:
        return None

    with pytest.raises(ToolDefinitionError, match="tool 'f'"):
        tool(f)


# --- strict mode ------------------------------------------------------------------------------


def test_strict_schema_follows_openai_rules() -> None:
    @tool(strict=True)
    def book(
        city: str, nights: int = 1, note: str | None = None, guest: Address | None = None
    ) -> None:
        return None

    params = book.parameters
    assert book.schema["function"]["strict"] is True
    assert params["additionalProperties"] is False
    assert params["required"] == ["city", "nights", "note", "guest"]
    assert params["properties"]["nights"]["type"] == ["integer", "null"]
    guest = params["properties"]["guest"]["anyOf"][0]
    assert guest["additionalProperties"] is False
    assert guest["required"] == ["street", "city"]
    Draft202012Validator.check_schema(params)


def test_strict_tool_without_parameters() -> None:
    @tool(strict=True)
    def ping() -> str:
        return "pong"

    assert ping.parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("annotation", "message"),
    [(dict[str, int], "free-form mapping"), (Any, "accepts any value")],
)
def test_strict_refuses_shapes_it_cannot_express(annotation: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        _param_schema(annotation, strict=True)


def test_strict_refusal_names_where_the_shape_is() -> None:
    with pytest.raises(ToolDefinitionError, match=r"parameters\.x\[1\] is a free-form mapping"):
        _param_schema(int | dict[str, int], strict=True)
    from sfagent.tools._json_schema import make_strict

    nested = {"type": "object", "properties": {"street": {"description": "Any value."}}}
    schema = {"type": "object", "properties": {"x": {"type": "array", "items": nested}}}
    with pytest.raises(ToolDefinitionError, match=r"parameters\.x\.street accepts any value"):
        make_strict(schema, tool_name="t")


def test_the_walker_copies_and_leaves_data_and_names_alone() -> None:
    from sfagent.tools._json_schema import walk_schema

    schema = {
        "properties": {"title": {"title": "T", "default": {"title": "kept"}}},
        "enum": [{"title": "kept"}],
        "anyOf": [{"title": "A"}],
    }
    seen: list[dict[str, Any]] = []

    def visit(node: dict[str, Any], descend: Any) -> Any:
        seen.append(node)
        return descend(node)

    copy = walk_schema(schema, visit)
    assert copy == schema
    assert copy is not schema
    assert copy["anyOf"][0] is not schema["anyOf"][0]
    # Schema objects only: the root, the property named "title", the anyOf option.
    assert seen == [schema, schema["properties"]["title"], schema["anyOf"][0]]


def test_strict_null_means_default() -> None:
    @tool(strict=True)
    def book(city: str, nights: int = 2, rooms: list[Address] | None = None) -> tuple[Any, ...]:
        return city, nights, rooms

    city, nights, rooms = book.invoke(
        '{"city": "Rome", "nights": null, "rooms": [{"street": "Via 1", "city": "Rome"}]}'
    )
    assert (city, nights) == ("Rome", 2)
    assert rooms == [Address(street="Via 1", city="Rome")]


@dataclasses.dataclass
class Span:
    start: int
    end: int = 10


def test_strict_null_means_default_in_tuple_positions() -> None:
    # The strict schema lets each position's optional field be null ("use the default"), so
    # the validator must take it so too, in a fixed tuple as in a list.
    @tool(strict=True)
    def spans(pair: tuple[Span, int], runs: tuple[tuple[Span, str], ...] = ()) -> tuple[Any, ...]:
        return pair, runs

    item = spans.parameters["properties"]["pair"]["prefixItems"][0]["properties"]["end"]
    assert item["type"] == ["integer", "null"]
    pair, runs = spans.invoke(
        '{"pair": [{"start": 1, "end": null}, 2], "runs": [[{"start": 3, "end": null}, "x"]]}'
    )
    assert pair == (Span(1, 10), 2)
    assert runs == ((Span(3, 10), "x"),)


# --- meta-schema check and hand-made schemas ------------------------------------------------


def test_hand_made_schema_is_meta_checked() -> None:
    with pytest.raises(ToolDefinitionError, match=r"invalid JSON schema at properties/n"):
        Tool.from_schema(
            lambda **kw: kw,
            name="bad",
            description="d",
            parameters={"type": "object", "properties": {"n": {"type": "integer", "minimum": "0"}}},
        )


def test_hand_made_schema_must_be_an_object() -> None:
    with pytest.raises(ToolDefinitionError, match="type 'object'"):
        Tool.from_schema(lambda: None, name="x", description="d", parameters={"type": "array"})


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        ({"required": ["a"]}, {"required": True}),
        ({"properties": {"q": {"type": "string"}}}, {"properties": [{"type": "string"}]}),
    ],
)
def test_a_cached_valid_shape_never_lets_an_invalid_schema_through(
    valid: dict[str, Any], invalid: dict[str, Any]
) -> None:
    def with_property(schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"x": schema}}

    Tool.from_schema(lambda **kw: kw, name="ok", description="d", parameters=with_property(valid))
    with pytest.raises(ToolDefinitionError, match="invalid JSON schema at properties/x"):
        Tool.from_schema(
            lambda **kw: kw, name="bad", description="d", parameters=with_property(invalid)
        )


def test_every_generated_schema_passes_the_meta_schema() -> None:
    def kitchen_sink(
        a: str,
        b: Annotated[int, Field(ge=0)],
        c: list[Address],
        d: dict[str, Point],
        e: Color = Color.RED,
        f: dt.date | None = None,
        g: tuple[int, ...] = (),
        h: Filters | None = None,
        i: Decimal = Decimal("1.5"),
    ) -> None:
        return None

    t = tool(kitchen_sink)
    Draft202012Validator.check_schema(t.parameters)
    assert t.parameters["properties"]["e"]["default"] == "red"
    assert t.parameters["required"] == ["a", "b", "c", "d"]


# --- the fast meta-schema check agrees with the official meta-schema ----------------------------

META_CORPUS: list[Any] = [
    {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}},
    {"type": ["string", "null"], "enum": ["a", None]},
    {"prefixItems": [{"type": "integer"}], "items": False},
    {"$defs": {"n": {"$ref": "#/$defs/n"}}, "$ref": "#/$defs/n"},
    {"dependentRequired": {"a": ["b"]}, "dependentSchemas": {"a": {"required": ["c"]}}},
    {"contentMediaType": "text/plain", "deprecated": True, "examples": [1]},
    {"definitions": {"x": {}}, "dependencies": {"a": ["b"], "c": {"type": "object"}}},
    {"unevaluatedProperties": False, "propertyNames": {"pattern": "^a"}},
    {"type": 3},
    {"properties": {"a": {"minimum": "0"}}},
    {"required": [1]},
    {"items": [1]},
    {"$defs": {"x": 5}},
    {"enum": 3},
    {"pattern": 4},
    {"additionalProperties": {"type": "strin"}},
    {"anyOf": []},
    {"properties": {"a": {"$ref": 5}}},
    {"type": ["string", "string"]},
    {"dependentRequired": {"a": [1]}},
    {"contentMediaType": 1},
    {"deprecated": "x"},
    {"format": 1},
    {"unevaluatedProperties": 3},
    {"definitions": {"a": 3}},
    {"dependencies": {"a": 3}},
    {"prefixItems": [{"type": 1}]},
    {"minItems": -1},
    {"multipleOf": 0},
]


@pytest.mark.parametrize("schema", META_CORPUS, ids=lambda s: str(s)[:40])
def test_fast_meta_check_agrees_with_the_official_meta_schema(schema: Any) -> None:
    from sfagent.tools._meta_schema import meta_validator

    fast = meta_validator()
    assert fast.schema is not Draft202012Validator.META_SCHEMA  # the flattened one is in use
    official = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    assert fast.is_valid(schema) == official.is_valid(schema)
