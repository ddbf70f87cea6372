"""Property tests for tools: schema generation, argument validation and their agreement.

- Instances generated from a tool's own JSON schema are accepted by the tool, and `jsonschema`
  agrees they are valid: the schema sent to the model and the validator cannot drift.
- Whatever text or JSON the model sends, a tool either accepts it or raises
  `ToolArgumentsError`; nothing else escapes.
- Functions with generated signatures always define, with a valid schema whose properties are
  exactly their parameters; under strict mode they define with a closed, all-required schema
  or are refused with `ToolDefinitionError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import keyword
import pathlib
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Optional, Union, get_args

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from sfagent import RunContext, Tool, ToolArgumentsError, ToolDefinitionError, tool

# Example counts keep the whole module near 10 s; no example database is written.
_SLOW_OK = [HealthCheck.too_slow]
FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=_SLOW_OK)
MEDIUM = settings(max_examples=60, deadline=None, database=None, suppress_health_check=_SLOW_OK)
LONG = settings(max_examples=150, deadline=None, database=None, suppress_health_check=_SLOW_OK)

JSONValue = Any
Schema = dict[str, Any]

# --------------------------------------------------------------------------------------------
# A JSON Schema → hypothesis strategy, for the subset tools emit.
# --------------------------------------------------------------------------------------------

_MAX_DEPTH = 3
_INT_LIMIT = 2**53
_OFFSETS = [dt.timezone(dt.timedelta(minutes=m)) for m in (-600, -330, 0, 60, 345, 840)]


def _json_values() -> st.SearchStrategy[JSONValue]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-_INT_LIMIT, _INT_LIMIT)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )


def from_schema(schema: Any, defs: Schema | None = None, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid against `schema` (a tool-emitted subset of draft 2020-12)."""
    if defs is None and isinstance(schema, dict):
        defs = schema.get("$defs", {})
    defs = defs or {}
    if schema is True or schema == {} or not isinstance(schema, dict):
        return _json_values()
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return st.deferred(lambda: from_schema({**target, **rest}, defs, depth + 1))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            options = schema[key]
            if depth >= _MAX_DEPTH:  # deep in a recursive type: prefer options that stop
                options = [o for o in options if not _recurses(o)] or options
            return st.one_of([from_schema({**rest, **o}, defs, depth) for o in options])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, defs, depth) for k in kind])
    if kind is None:
        return _json_values()
    return _TYPED[kind](schema, defs, depth)


def _recurses(schema: Any) -> bool:
    return "$ref" in json.dumps(schema)


def _null(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    return st.none()


def _boolean(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    return st.booleans()


def _integer(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", -_INT_LIMIT)
    high = schema.get("maximum", _INT_LIMIT)
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + 1
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - 1
    return st.integers(int(low), int(high))


def _number(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    floats = st.floats(
        min_value=low,
        max_value=high,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )
    if low is None and high is None:
        return floats | st.integers(-_INT_LIMIT, _INT_LIMIT)
    return floats


def _string(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    fmt = schema.get("format")
    if fmt == "date-time":
        return st.datetimes(timezones=st.none() | st.sampled_from(_OFFSETS)).map(
            lambda d: d.isoformat()
        )
    if fmt == "date":
        return st.dates().map(dt.date.isoformat)
    if fmt == "time":
        return st.times().map(dt.time.isoformat)
    if fmt == "uuid":
        return st.uuids().map(str)
    if "pattern" in schema:
        # fullmatch: Python's `$` also matches before a final newline, ECMA's (and pydantic's)
        # does not; the schema means the ECMA reading.
        return st.from_regex(schema["pattern"], fullmatch=True)
    return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 12))


def _array(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    prefix = schema.get("prefixItems")
    if prefix is not None:
        return st.tuples(*(from_schema(s, defs, depth + 1) for s in prefix)).map(list)
    low = schema.get("minItems", 0)
    high = schema.get("maxItems", 3 if depth < _MAX_DEPTH else low)
    if high == 0:
        return st.just([])
    items = from_schema(schema.get("items", {}), defs, depth + 1)
    if schema.get("uniqueItems"):
        return st.lists(
            items, min_size=low, max_size=high, unique_by=lambda v: json.dumps(v, sort_keys=True)
        )
    return st.lists(items, min_size=low, max_size=high)


def _object(schema: Schema, defs: Schema, depth: int) -> st.SearchStrategy[Any]:
    properties: Schema = schema.get("properties", {})
    required = set(schema.get("required", ()))
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, dict):  # dict[str, X]
        return st.dictionaries(st.text(max_size=6), from_schema(extra, defs, depth + 1), max_size=3)
    return st.fixed_dictionaries(
        {k: from_schema(v, defs, depth + 1) for k, v in properties.items() if k in required},
        optional={
            k: from_schema(v, defs, depth + 1) for k, v in properties.items() if k not in required
        },
    )


_TYPED: dict[str, Callable[[Schema, Schema, int], st.SearchStrategy[Any]]] = {
    "null": _null,
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "string": _string,
    "array": _array,
    "object": _object,
}


def _validator(schema: Schema) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --------------------------------------------------------------------------------------------
# Realistic tools.
# --------------------------------------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    street: Annotated[str, Field(min_length=1, max_length=40, description="Street and number.")]
    postcode: Annotated[int, Field(ge=1000, le=99999)]
    country: Literal["CN", "US", "DE"] = "CN"


class Person(BaseModel):
    name: str
    age: Annotated[int, Field(ge=0, le=150)] | None = None
    addresses: list[Address] = []
    born: dt.date | None = None


@dataclasses.dataclass
class Window:
    start: dt.datetime
    end: dt.datetime | None = None


class Filters(TypedDict):
    tags: list[str]
    min_score: float


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


def get_weather(city: str, unit: Unit = Unit.CELSIUS, days: Annotated[int, Field(ge=1, le=7)] = 1):
    """Get the forecast for a city.

    Args:
        city: The city, e.g. "Hangzhou".
        unit: Temperature unit.
        days: How many days ahead.
    """
    return {"city": city, "unit": unit, "days": days}


def add_person(person: Person, notify: bool = False, priority: Priority = Priority.LOW):
    """Store a person."""
    return person


def schedule(
    title: Annotated[str, Field(min_length=1, max_length=80)],
    when: dt.datetime,
    until: dt.date | None = None,
    attendees: list[str] | None = None,
    window: Window | None = None,
    ident: uuid.UUID | None = None,
    mode: Literal["online", "onsite"] = "online",
    tags: set[str] = frozenset(),  # type: ignore[assignment]
):
    """Put a meeting in the calendar."""
    return when


def search(
    query: Annotated[str, Field(pattern=r"^[a-z][a-z ]{0,20}$")],
    filters: Filters | None = None,
    limit: Annotated[int, Field(gt=0, le=50)] = 10,
    weights: dict[str, float] | None = None,
    point: tuple[float, float] | None = None,
    ratio: Annotated[float, Field(ge=0, le=1)] = 0.5,
):
    """Search documents."""
    return query


def walk(tree: Tree, max_depth: Optional[int] = None):  # noqa: UP045 - Optional is supported
    """Walk a tree."""
    return tree


def no_args():
    """Take nothing."""
    return "done"


async def fetch(url: str, timeout: float = 10.0, retries: Annotated[int, Field(ge=0, le=5)] = 0):
    """Fetch a URL."""
    return url


def _strict_booking(
    guest: Person,
    nights: Annotated[int, Field(ge=1, le=30)],
    room: Literal["single", "double"] | None,
    checkin: dt.date,
    breakfast: bool = False,
    notes: str | None = None,
    window: Window | None = None,
):
    """Book a room."""
    return guest


def _strict_lookup(
    keys: list[str],
    limit: int = 5,
    point: tuple[int, int] | None = None,
    order: Literal["asc", "desc"] = "asc",
):
    """Look up keys."""
    return keys


LENIENT_TOOLS: list[Tool[..., Any]] = [
    tool(get_weather),
    tool(add_person),
    tool(schedule),
    tool(search),
    tool(walk),
    tool(no_args),
    tool(fetch),
]
STRICT_TOOLS: list[Tool[..., Any]] = [
    tool(_strict_booking, name="book", strict=True),
    tool(_strict_lookup, name="lookup", strict=True),
    tool(get_weather, name="weather_strict", strict=True),
]
HAND_TOOLS: list[Tool[..., Any]] = [
    Tool.from_schema(
        lambda **kw: kw,
        name="hand_made",
        description="A tool with a schema from elsewhere.",
        parameters={
            "type": "object",
            "properties": {
                "q": {"type": "string", "minLength": 1},
                "n": {"type": "integer", "minimum": 0, "maximum": 9},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
            },
            "required": ["q"],
            "additionalProperties": False,
        },
    )
]
ALL_TOOLS = LENIENT_TOOLS + STRICT_TOOLS + HAND_TOOLS


def _params(tools: Sequence[Tool[..., Any]]) -> list[Any]:
    return [pytest.param(t, id=t.name) for t in tools]


# --------------------------------------------------------------------------------------------
# 1. Instances generated from the schema are accepted.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("the_tool", _params(ALL_TOOLS))
@FAST
@given(data=st.data())
def test_instances_of_the_schema_are_accepted(the_tool: Tool[..., Any], data: st.DataObject):
    instance = data.draw(from_schema(the_tool.parameters), label="arguments")
    assert not list(_validator(the_tool.parameters).iter_errors(instance)), "generator is wrong"
    args, kwargs = the_tool.bind(json.dumps(instance))
    assert the_tool.bind(instance) == (args, kwargs)  # an already-parsed dict: same result
    assert set(kwargs) <= set(the_tool.parameters["properties"])
    the_tool.invoke(json.dumps(instance))


@FAST
@given(data=st.data())
def test_validated_values_are_python_values(data: st.DataObject):
    instance = data.draw(from_schema(LENIENT_TOOLS[2].parameters))  # schedule
    _, kwargs = LENIENT_TOOLS[2].bind(json.dumps(instance))
    assert isinstance(kwargs["when"], dt.datetime)
    assert kwargs["until"] is None or isinstance(kwargs["until"], dt.date)
    assert kwargs["window"] is None or isinstance(kwargs["window"], Window)
    assert isinstance(kwargs["tags"], (set, frozenset))
    assert kwargs["mode"] in ("online", "onsite")


@FAST
@given(data=st.data())
def test_strict_null_means_the_default(data: st.DataObject):
    book = STRICT_TOOLS[0]
    instance = data.draw(from_schema(book.parameters))
    instance["breakfast"] = None
    _, kwargs = book.bind(json.dumps(instance))
    assert kwargs["breakfast"] is False


@pytest.mark.parametrize("the_tool", _params(STRICT_TOOLS))
def test_strict_parameters_with_a_default_accept_null(the_tool: Tool[..., Any]):
    # Strict mode makes every property required; one with a default must then take null
    # ("use the default"), or the model is forced to pick a value.
    loose_required = set(tool(the_tool.function, name="loose").parameters.get("required", ()))
    properties = the_tool.parameters["properties"]
    not_nullable = [
        name
        for name, sub in properties.items()
        if name not in loose_required and not _validator(sub).is_valid(None)
    ]
    assert not_nullable == []


# --------------------------------------------------------------------------------------------
# 2. Anything else: accepted or ToolArgumentsError, never another exception.
# --------------------------------------------------------------------------------------------

_JSONISH = st.text(alphabet=st.sampled_from(list('{}[]",:0123456789.eE+- \n\\`aTFNtruefalsnNone')))
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=15,
)


def _garbage_for(the_tool: Tool[..., Any]) -> st.SearchStrategy[Any]:
    names = list(the_tool.parameters["properties"]) or ["x"]
    keyed = st.dictionaries(st.sampled_from(names) | st.text(max_size=4), _ANY_JSON, max_size=5)
    objects = keyed | st.dictionaries(st.text(max_size=6), _ANY_JSON, max_size=4)
    valid = from_schema(the_tool.parameters)
    mutated = st.tuples(valid, st.sampled_from(names), _ANY_JSON).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    texts = (
        _ANY_JSON.map(json.dumps)
        | objects.map(json.dumps)
        | mutated.map(json.dumps)
        | objects.map(lambda o: "```json\n" + json.dumps(o, indent=1) + "\n```")
        | objects.map(lambda o: json.dumps(json.dumps(o)))
        | st.builds(lambda o, t: json.dumps(o)[:-1] + t, objects, _JSONISH)
        | _JSONISH
        | st.text()
    )
    return texts | texts.map(str.encode) | objects | mutated | st.none()


@pytest.mark.parametrize("the_tool", _params(ALL_TOOLS))
@MEDIUM
@given(data=st.data())
def test_random_input_is_accepted_or_reported(the_tool: Tool[..., Any], data: st.DataObject):
    arguments = data.draw(_garbage_for(the_tool), label="arguments")
    try:
        the_tool.invoke(arguments)
    except ToolArgumentsError as exc:
        error = exc
    else:
        return
    assert error.tool_name == the_tool.name
    assert error.problems
    assert str(error).startswith(f"Invalid arguments for tool '{the_tool.name}': ")
    assert "Traceback" not in str(error)


@pytest.mark.parametrize("depth", [50, 500, 5000])
def test_deeply_nested_arguments_are_reported(depth: int):
    # A model stuck repeating "[" is a known degenerate output; it must come back as a
    # ToolArgumentsError, not a RecursionError.
    nested = "[" * depth + "]" * depth
    for the_tool in (LENIENT_TOOLS[3], STRICT_TOOLS[1], HAND_TOOLS[0]):
        with contextlib.suppress(ToolArgumentsError):
            the_tool.bind('{"q": ' + nested + "}")


@pytest.mark.parametrize("the_tool", _params(LENIENT_TOOLS))
@FAST
@given(data=st.data())
def test_lenient_tools_ignore_unknown_arguments(the_tool: Tool[..., Any], data: st.DataObject):
    instance = data.draw(from_schema(the_tool.parameters))
    known = set(the_tool.parameters["properties"])
    extra = data.draw(
        st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: k not in known), _ANY_JSON)
    )
    assert the_tool.bind({**instance, **extra}) == the_tool.bind(instance)


@pytest.mark.parametrize("the_tool", _params(STRICT_TOOLS))
@FAST
@given(data=st.data())
def test_strict_tools_reject_unknown_arguments(the_tool: Tool[..., Any], data: st.DataObject):
    instance = data.draw(from_schema(the_tool.parameters))
    known = set(the_tool.parameters["properties"])
    key = data.draw(st.text(min_size=1, max_size=6).filter(lambda k: k not in known))
    with pytest.raises(ToolArgumentsError, match="unknown argument"):
        the_tool.bind({**instance, key: 1})


def test_strict_tools_reject_unknown_nested_arguments():
    # The strict schema closes every object (additionalProperties: false), nested ones too.
    book = STRICT_TOOLS[0]
    arguments = {
        "guest": {"name": "Li", "age": None, "addresses": None, "born": None, "vip": True},
        "nights": 2,
        "room": None,
        "checkin": "2025-05-01",
        "breakfast": None,
        "notes": None,
        "window": None,
    }
    assert not _validator(book.parameters).is_valid(arguments)
    with pytest.raises(ToolArgumentsError, match=r"guest\.vip: unknown argument"):
        book.bind(arguments)


# --------------------------------------------------------------------------------------------
# 3. Generated signatures.
# --------------------------------------------------------------------------------------------


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Point(BaseModel):
    x: float
    y: float = 0.0
    label: str | None = None


@dataclasses.dataclass
class Span:
    start: int
    end: int = 10


_SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (str, st.text(max_size=5)),
    (int, st.integers(-100, 100)),
    (float, st.floats(-1e6, 1e6)),
    (bool, st.booleans()),
    (type(None), st.none()),
    (Mood, st.sampled_from(Mood)),
    (Priority, st.sampled_from(Priority)),
    (dt.datetime, st.datetimes()),
    (dt.date, st.dates()),
    (dt.time, st.times()),
    (uuid.UUID, st.uuids()),
    (decimal.Decimal, st.decimals(allow_nan=False, allow_infinity=False, places=2)),
    (pathlib.Path, st.sampled_from([pathlib.Path("."), pathlib.Path("/tmp/x")])),
]
_HASHABLE = [a for a, _ in _SCALARS if a not in (type(None), float)]
_SCALAR_DEFAULTS = dict(_SCALARS)

_literal_values = st.lists(
    st.text(max_size=4) | st.integers(-5, 5) | st.booleans(), min_size=1, max_size=4, unique=True
)


@st.composite
def _bounded(draw: st.DrawFn) -> Any:
    base = draw(st.sampled_from([int, float]))
    low = draw(st.integers(-50, 50))
    high = draw(st.integers(low, 100))
    description = draw(st.none() | st.text(min_size=1, max_size=20))
    return Annotated[base, Field(ge=low, le=high, description=description)]


@st.composite
def _sized_str(draw: st.DrawFn) -> Any:
    low = draw(st.integers(0, 3))
    high = draw(st.integers(low, 10))
    return Annotated[str, Field(min_length=low, max_length=high)]


_leaf_annotations = st.one_of(
    st.sampled_from([a for a, _ in _SCALARS]),
    st.sampled_from([Point, Span, Any]),
    _literal_values.map(lambda vs: Literal[tuple(vs)]),
    _bounded(),
    _sized_str(),
)


def _extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    hashable = st.sampled_from(_HASHABLE)
    return st.one_of(
        inner.map(lambda a: Optional[a]),  # noqa: UP045
        inner.map(lambda a: a | None if isinstance(a, type) else Optional[a]),  # noqa: UP045
        st.tuples(inner, inner).map(lambda ab: Union[ab]),  # noqa: UP007
        inner.map(lambda a: list[a]),
        inner.map(lambda a: Sequence[a]),
        inner.map(lambda a: tuple[a, ...]),
        st.tuples(inner, inner).map(lambda ab: tuple[ab]),
        hashable.map(lambda a: set[a]),
        hashable.map(lambda a: frozenset[a]),
        inner.map(lambda a: dict[str, a]),
    )


_annotations = st.recursive(_leaf_annotations, _extend, max_leaves=3)

_identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in ("self", "cls")
)
_names = st.sampled_from(["json", "schema", "_x", "model_config", "copy", "dict", "type"])


# pydantic itself fails on a default dict with a "$defs" or "$ref" key (it remaps them as if
# they were schema), so such keys are left out of the defaults drawn here.
_DEFAULTS = _ANY_JSON.filter(lambda v: "$" not in json.dumps(v))


def _default_for(annotation: Any) -> st.SearchStrategy[Any]:
    """A default the annotation would accept (or None, the common `x: int = None`)."""
    if annotation in _SCALAR_DEFAULTS:
        return _SCALAR_DEFAULTS[annotation]
    if annotation is Point:
        return st.builds(Point, x=st.floats(-9, 9))
    if annotation is Span:
        return st.builds(Span, start=st.integers(0, 9))
    origin_args = get_args(annotation)
    if repr(annotation).startswith("typing.Literal"):
        return st.sampled_from(origin_args)
    if repr(annotation).startswith(("list[", "typing.Sequence")):
        return st.just([])
    if repr(annotation).startswith(("set[", "frozenset[")):
        return st.just(frozenset())
    if repr(annotation).startswith("dict["):
        return st.just({})
    return st.none()


@dataclasses.dataclass
class _Param:
    name: str
    annotation: Any
    default: Any
    kind: inspect._ParameterKind


@st.composite
def _signatures(draw: st.DrawFn) -> list[_Param]:
    names = draw(st.lists(_identifiers | _names, max_size=6, unique=True))
    params = []
    for name in names:
        annotated = draw(st.booleans() | st.just(True))
        annotation = draw(_annotations) if annotated else inspect.Parameter.empty
        if draw(st.booleans()):
            default = draw(_default_for(annotation)) if annotated else draw(_DEFAULTS)
        else:
            default = inspect.Parameter.empty
        kind = draw(
            st.sampled_from(
                [
                    inspect.Parameter.POSITIONAL_ONLY,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.KEYWORD_ONLY,
                ]
            )
        )
        params.append(_Param(name, annotation, default, kind))
    if draw(st.booleans()):  # a RunContext parameter somewhere
        where = draw(st.integers(0, len(params)))
        ctx_name = "ctx_" + str(where)
        params.insert(
            where,
            _Param(
                ctx_name,
                RunContext[Any],
                inspect.Parameter.empty,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ),
        )
    return _ordered(params)


def _ordered(params: list[_Param]) -> list[_Param]:
    """Arrange params in a valid order: by kind, no positional one without a default after
    one with a default (such a parameter is made keyword-only instead)."""
    order = {
        inspect.Parameter.POSITIONAL_ONLY: 0,
        inspect.Parameter.POSITIONAL_OR_KEYWORD: 1,
        inspect.Parameter.KEYWORD_ONLY: 2,
    }
    params = sorted(params, key=lambda p: order[p.kind])
    seen_default = False
    for p in params:
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            break
        if p.default is not inspect.Parameter.empty:
            seen_default = True
        elif seen_default:
            p.kind = inspect.Parameter.KEYWORD_ONLY
    return sorted(params, key=lambda p: order[p.kind])


def _make_function(params: list[_Param]) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(p.name, p.kind, default=p.default, annotation=p.annotation)
            for p in params
        ]
    )
    fn.__doc__ = "A generated tool.\n\nArgs:\n" + "".join(
        f"    {p.name}: About {p.name}.\n" for p in params
    )
    return fn


def _mentions_decimal(annotation: Any) -> bool:
    # Decimal's schema is `number | string` with no pattern: an arbitrary string fits the
    # schema but not the validator, so generated arguments are not checked for it.
    return annotation is decimal.Decimal or any(_mentions_decimal(a) for a in get_args(annotation))


def _objects(schema: Any) -> list[Schema]:
    found: list[Schema] = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind):
            found.append(schema)
        for key, value in schema.items():
            if key in ("default", "enum", "const"):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                for sub in value.values():
                    found.extend(_objects(sub))
            else:
                found.extend(_objects(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(_objects(item))
    return found


@LONG
@given(params=_signatures(), data=st.data())
def test_generated_signatures_define_with_valid_schemas(params: list[_Param], data: st.DataObject):
    fn = _make_function(params)
    the_tool = tool(fn, name="generated")
    schema = the_tool.parameters
    Draft202012Validator.check_schema(schema)
    schema_params = [p for p in params if p.annotation != RunContext[Any]]
    assert list(schema["properties"]) == [p.name for p in schema_params]
    required = [p.name for p in schema_params if p.default is inspect.Parameter.empty]
    assert schema.get("required", []) == required
    assert "title" not in schema
    assert the_tool.takes_context == (len(schema_params) != len(params))

    if any(_mentions_decimal(p.annotation) for p in schema_params):
        return
    instance = data.draw(from_schema(schema), label="arguments")
    context = RunContext(deps=None)
    args, kwargs = the_tool.bind(json.dumps(instance), context=context)
    received = {p.name: v for p, v in zip(params, args, strict=False)} | kwargs
    assert list(received) == [p.name for p in params]
    for name in instance:
        assert name in received
    for p in params:
        if p.annotation == RunContext[Any]:
            assert received[p.name] is context


@MEDIUM
@given(params=_signatures(), data=st.data())
def test_generated_signatures_under_strict_define_closed_or_are_refused(
    params: list[_Param], data: st.DataObject
):
    fn = _make_function(params)
    try:
        the_tool = tool(fn, name="generated", strict=True)
    except ToolDefinitionError as exc:
        refusal = str(exc)
    else:
        refusal = None
    if refusal is not None:
        assert refusal.startswith("tool 'generated' cannot be strict: parameters")
        return
    schema = the_tool.parameters
    Draft202012Validator.check_schema(schema)
    assert the_tool.schema["function"]["strict"] is True
    schema_params = [p for p in params if p.annotation != RunContext[Any]]
    assert list(schema["properties"]) == [p.name for p in schema_params]
    for node in _objects(schema):
        assert node["additionalProperties"] is False
        assert node["required"] == list(node.get("properties", {}))

    if any(_mentions_decimal(p.annotation) for p in schema_params):
        return
    instance = data.draw(from_schema(schema), label="arguments")
    the_tool.bind(json.dumps(instance), context=RunContext(deps=None))


@FAST
@given(name=_identifiers | _names, annotation=_annotations)
def test_a_single_parameter_keeps_its_name(name: str, annotation: Any):
    fn = _make_function([_Param(name, annotation, None, inspect.Parameter.KEYWORD_ONLY)])
    the_tool = tool(fn, name="one")
    assert list(the_tool.parameters["properties"]) == [name]
    assert "About " + name + "." in json.dumps(the_tool.parameters) or _has_field_description(
        annotation
    )


def _has_field_description(annotation: Any) -> bool:
    meta = getattr(annotation, "__metadata__", ())
    return any(getattr(m, "description", None) for m in meta) or any(
        _has_field_description(a) for a in get_args(annotation)
    )


# --- the meta-check's cache never changes its verdict --------------------------------------------

_SCHEMA_KEYS = st.sampled_from(
    ["type", "properties", "$defs", "title", "default", "enum", "const", "items", "anyOf",
     "required", "description", "additionalProperties", "minimum", "examples", "pattern"]
)  # fmt: skip
_SCHEMA_LEAVES = st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=3)
_SCHEMA_LIKE = st.recursive(
    _SCHEMA_LEAVES | st.sampled_from(["object", "string", "integer"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_SCHEMA_KEYS, inner, max_size=4),
    max_leaves=15,
)


@LONG
@given(properties=st.lists(st.dictionaries(st.text(max_size=2), _SCHEMA_LIKE, max_size=3)))
def test_meta_check_with_its_cache_agrees_with_the_official_meta_schema(
    properties: list[dict[str, Any]],
):
    # Several schemas in a row, so shapes cached by one are reused by the next.
    official = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    for i, props in enumerate(properties):
        parameters = {"type": "object", "properties": props}
        try:
            Tool.from_schema(lambda **kw: kw, name=f"t{i}", description="", parameters=parameters)
        except ToolDefinitionError:
            accepted = False
        else:
            accepted = True
        assert accepted == official.is_valid(parameters), parameters
