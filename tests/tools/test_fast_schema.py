"""The one-pass schema writer makes exactly what pydantic makes, or steps aside.

- Over generated signatures of the shapes it covers, `fast_parameters` answers (it does not
  quietly fall back) and its schema is byte for byte the one the pydantic path generates from
  the arguments class, lenient and strict.
- Over signatures mixing in shapes it does not cover, it either answers with pydantic's bytes
  or returns ``None`` (and the tool is made the pydantic way).
- The validator of a fast-path tool is built on its first call, once, and validates as the
  pydantic class always did; a pydantic that renders the canary differently turns the fast
  path off.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import keyword
import pathlib
import threading
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Optional, Union, get_origin

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from sfagent import Tool, ToolArgumentsError, tool
from sfagent.tools import _fast_check, _fast_schema
from sfagent.tools._pydantic_schema import (
    REQUIRED,
    ParamDef,
    arguments_model,
    model_parameters,
)

MANY = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# --------------------------------------------------------------------------------------------
# Types, covered and not.
# --------------------------------------------------------------------------------------------


class Hue(enum.Enum):
    """Hues of a thing.

    Indented second paragraph.
    """

    RED = "red"
    BLUE = "blue"


class Plain(enum.Enum):
    A = "a"
    B = "b"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Kind(str, enum.Enum):
    X = "x"


class Alias(enum.Enum):
    ONE = 1
    UNO = 1  # an alias: pydantic lists its value twice


class Mixed(enum.Enum):
    A = "a"
    B = 2


class Perm(enum.Flag):
    R = 1
    W = 2


class Spot(BaseModel):
    """A spot."""

    x: Annotated[float, Field(ge=0, description="East.")]
    hue: Hue = Hue.RED
    note: str | None = None


class Bare(BaseModel):
    a: int
    spot: Spot | None = None


class Loop(BaseModel):
    child: Loop | None = None


@dataclasses.dataclass
class Span:
    start: int


class Filters(TypedDict):
    tag: str


_TEXT = st.text(max_size=12)
_WORDS = st.text(min_size=1, max_size=12).filter(lambda s: not s.startswith("#/$defs/"))
_ENUMS = [Hue, Plain, Level, Kind, Alias]
_LEAVES: list[Any] = [
    str, int, float, bool, None, type(None), Any, dt.date, dt.datetime, dt.time, uuid.UUID,
    pathlib.Path, Spot, Bare, list, dict, *_ENUMS,
]  # fmt: skip
_HASHABLE: list[Any] = [str, int, bool, dt.date, uuid.UUID, Hue, Level, Kind]
_UNCOVERED: list[Any] = [
    decimal.Decimal, Mixed, Perm, Loop, Span, Filters, bytes, set, tuple,
    Annotated[int, Field(title="T")], Annotated[int, Field(examples=[1])],
    Annotated[Optional[int], Field(ge=0)], Annotated[bool, Field(ge=0)],  # noqa: UP045
    Annotated[int, Field(strict=True)], Annotated[int, Field(ge=0), Field(le=9)],
    Annotated[str, "a note"], Annotated[int, Field(ge=float("inf"))],
    Annotated[int, Field(description="")], Literal[b"x"], Literal[Hue.RED],
    collections.abc.Mapping[str, int], dict[int, str],
    Annotated[tuple[int, ...], Field(max_length=2)],
    # constraint values pydantic would refuse to build a validator with
    Annotated[int, Field(ge=1.5)], Annotated[int, Field(multiple_of=0)],
    Annotated[str, Field(pattern="(")], Annotated[str, Field(pattern="(?=a)")],
    Annotated[list[int], Field(min_length=-1)],
]  # fmt: skip

_literals = st.lists(
    st.text(max_size=4) | st.integers(-5, 5) | st.booleans() | st.none(),
    min_size=1,
    max_size=4,
    unique_by=lambda v: (type(v), v),
).map(lambda vs: Literal[tuple(vs)])


@st.composite
def _numeric(draw: st.DrawFn) -> Any:
    base = draw(st.sampled_from([int, float]))
    bound = st.integers(-50, 50) if base is int else st.integers(-50, 50) | st.floats(-50, 50)
    keys = {key: draw(st.none() | bound) for key in ("ge", "gt", "le", "lt")}
    step = st.integers(1, 5) if base is int else st.integers(1, 5) | st.sampled_from([0.5, 2.5])
    keys["multiple_of"] = draw(st.none() | step)
    keys["description"] = draw(st.none() | _WORDS)
    return Annotated[base, Field(**{k: v for k, v in keys.items() if v is not None})]


@st.composite
def _sized(draw: st.DrawFn, inner: st.SearchStrategy[Any]) -> Any:
    base = draw(
        st.sampled_from([str]) | inner.map(lambda a: list[a]) | inner.map(lambda a: dict[str, a])
        | st.sampled_from(_HASHABLE).map(lambda a: set[a])
    )  # fmt: skip
    low = draw(st.none() | st.integers(0, 3))
    high = draw(st.none() | st.integers(3, 9))
    pattern = draw(st.none() | st.sampled_from(["^a", "[0-9]+"])) if base is str else None
    description = draw(st.none() | _WORDS)
    keys = {"min_length": low, "max_length": high, "pattern": pattern, "description": description}
    return Annotated[base, Field(**{k: v for k, v in keys.items() if v is not None})]


def _described(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Not around an Annotated: the two would flatten into one with two FieldInfos (not covered)
    plain = inner.filter(lambda a: get_origin(a) is not Annotated)
    return st.builds(lambda a, d: Annotated[a, Field(description=d)], plain, _WORDS)


def _extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    two = st.tuples(inner, inner)
    return st.one_of(
        inner.map(lambda a: Optional[a]),  # noqa: UP045
        two.map(lambda ab: Union[ab]),  # noqa: UP007
        two.map(lambda ab: Union[(*ab, None)]),
        inner.map(lambda a: list[a]),
        inner.map(lambda a: collections.abc.Sequence[a]),
        st.sampled_from(_HASHABLE).map(lambda a: set[a]),
        st.sampled_from(_HASHABLE).map(lambda a: frozenset[a]),
        inner.map(lambda a: tuple[a, ...]),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: tuple[tuple(xs)]),
        inner.map(lambda a: dict[str, a]),
        _described(inner),
        _sized(inner),
    )


_covered_leaves = st.sampled_from(_LEAVES) | _literals | _numeric() | _sized(st.just(int))
COVERED = st.recursive(_covered_leaves, _extend, max_leaves=4)
ANY_SHAPE = st.recursive(_covered_leaves | st.sampled_from(_UNCOVERED), _extend, max_leaves=4)

# --------------------------------------------------------------------------------------------
# Defaults and signatures.
# --------------------------------------------------------------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | _WORDS
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
_keys = _WORDS.filter(lambda k: k not in ("$ref", "$defs"))
_json_like = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_keys, inner, max_size=3)
        | st.frozensets(st.integers(-9, 9) | _WORDS, max_size=4)
        | st.sets(st.integers(-9, 9), max_size=4)
    ),
    max_leaves=8,
)
_members = st.sampled_from([m for e in _ENUMS for m in e])
COVERED_DEFAULTS = st.just(REQUIRED) | _json_like | _members
ANY_DEFAULT = COVERED_DEFAULTS | st.sampled_from(
    [float("inf"), ..., b"x", Perm.R, decimal.Decimal("1.5"), Spot(x=1), {"$ref": "x"}, {1: 2},
     "#/$defs/Hue", dt.date(2020, 1, 2), Field(3)]
)  # fmt: skip

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in ("default", "properties")
)


@st.composite
def signatures(
    draw: st.DrawFn,
    annotations: st.SearchStrategy[Any],
    defaults: st.SearchStrategy[Any],
    names: st.SearchStrategy[str] = _names,
) -> tuple[ParamDef, ...]:
    """Parameters as `_signature` reads them: unique names, docstring text for some."""
    chosen = draw(st.lists(names, max_size=6, unique=True))
    return tuple(
        ParamDef(
            name,
            f"p{i}",
            draw(annotations),
            draw(defaults),
            draw(st.none() | _WORDS),
        )
        for i, name in enumerate(chosen)
    )


def pydantic_schema(params: tuple[ParamDef, ...], *, strict: bool) -> dict[str, Any]:
    model = arguments_model("generated", params, strict=strict, defer=True)
    return model_parameters(model, tool_name="generated")


def as_bytes(schema: Any) -> str:
    return json.dumps(schema)


# --------------------------------------------------------------------------------------------
# The property: the same bytes, or no answer.
# --------------------------------------------------------------------------------------------


@MANY
@given(params=signatures(COVERED, COVERED_DEFAULTS), strict=st.booleans())
def test_covered_signatures_get_pydantics_schema_byte_for_byte(
    params: tuple[ParamDef, ...], strict: bool
) -> None:
    fast = _fast_schema.fast_parameters(params, forbid_extra=strict)
    assert fast is not None, "a covered shape fell back to pydantic"
    assert as_bytes(fast) == as_bytes(pydantic_schema(params, strict=strict))


@MANY
@given(
    params=signatures(ANY_SHAPE, ANY_DEFAULT, _names | st.sampled_from(["default", "properties"])),
    strict=st.booleans(),
)
def test_any_signature_gets_pydantics_schema_or_none(
    params: tuple[ParamDef, ...], strict: bool
) -> None:
    fast = _fast_schema.fast_parameters(params, forbid_extra=strict)
    if fast is not None:
        assert as_bytes(fast) == as_bytes(pydantic_schema(params, strict=strict))


@pytest.mark.parametrize("annotation", _UNCOVERED, ids=lambda a: repr(a)[:40])
def test_uncovered_shapes_fall_back(annotation: Any) -> None:
    params = (ParamDef("x", "p0", annotation, REQUIRED, None),)
    assert _fast_schema.fast_parameters(params, forbid_extra=False) is None


@pytest.mark.parametrize("name", ["default", "properties"])
def test_names_pydantic_leaves_unsorted_fall_back(name: str) -> None:
    params = (ParamDef(name, "p0", int, 1, "Doc."),)
    assert _fast_schema.fast_parameters(params, forbid_extra=False) is None


def test_the_benchmark_shapes_are_covered() -> None:
    # What makes "128 tools in 60 ms" reachable: each of these is written without pydantic.
    class Address(BaseModel):
        street: str
        postcode: Annotated[str, Field(pattern=r"^[0-9]{6}$")]

    shapes: list[tuple[Any, Any]] = [
        (str, REQUIRED), (int, REQUIRED), (float, 1.0), (bool, False),
        (Literal["asc", "desc"], "asc"), (list[str], REQUIRED), (Optional[int], None),  # noqa: UP045
        (dt.date, REQUIRED), (dt.datetime | None, None), (Hue, Hue.RED), (Address, REQUIRED),
        (Annotated[int, Field(ge=0, le=100, description="A percentage.")], 50),
        (dict[str, int], None), (tuple[float, float], REQUIRED),
    ]  # fmt: skip
    params = tuple(ParamDef(f"a{i}", f"p{i}", a, d, "Doc.") for i, (a, d) in enumerate(shapes))
    fast = _fast_schema.fast_parameters(params, forbid_extra=False)
    assert fast is not None
    assert as_bytes(fast) == as_bytes(pydantic_schema(params, strict=False))


# --------------------------------------------------------------------------------------------
# The canary, and the validator built on first use.
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_canary() -> Iterator[None]:
    _fast_check.fast_path_trusted.cache_clear()
    yield
    _fast_check.fast_path_trusted.cache_clear()


def test_the_canary_agrees_with_the_installed_pydantic(fresh_canary: None) -> None:
    assert _fast_check.fast_path_trusted()


def test_a_pydantic_that_renders_the_canary_differently_turns_the_fast_path_off(
    fresh_canary: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def different(model: type[BaseModel], *, tool_name: str) -> dict[str, Any]:
        schema = model_parameters(model, tool_name=tool_name)
        return {**schema, "properties": dict(reversed(schema["properties"].items()))}

    monkeypatch.setattr(_fast_check, "model_parameters", different)
    assert not _fast_check.fast_path_trusted()
    monkeypatch.undo()  # pydantic itself renders as always; only the canary saw a difference

    @tool
    def double(x: int) -> int:
        return 2 * x

    assert _validator_built(double)  # made the pydantic way: schema and class at definition
    assert double.parameters == {
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "type": "object",
    }
    assert double.invoke('{"x": 4}') == 8


def _validator_built(the_tool: Tool[..., Any]) -> bool:
    return the_tool._spec.validator._value is not None  # type: ignore[attr-defined]


def test_a_fast_tool_builds_its_validator_on_the_first_call_only() -> None:
    @tool
    def add(a: int, b: Annotated[int, Field(ge=0)] = 1) -> int:
        return a + b

    assert not _validator_built(add)
    with pytest.raises(ToolArgumentsError, match="b"):
        add.invoke('{"a": 1, "b": -1}')
    assert _validator_built(add)
    first = add._spec.validator.get()  # type: ignore[attr-defined]
    assert add.invoke('{"a": "2"}') == 3
    assert add._spec.validator.get() is first  # type: ignore[attr-defined]


def test_concurrent_first_calls_build_one_validator() -> None:
    @tool
    def echo(text: str, times: int = 1) -> str:
        return text * times

    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def call() -> None:
        barrier.wait()
        seen.append(echo._spec.validator.get())  # type: ignore[attr-defined]
        assert echo.invoke('{"text": "a", "times": 2}') == "aa"

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert all(model is seen[0] for model in seen)


def test_a_fallback_tool_has_its_validator_from_the_start() -> None:
    @tool
    def price(amount: decimal.Decimal) -> str:
        return str(amount)

    assert _validator_built(price)
    assert price.invoke('{"amount": "1.50"}') == "1.50"


def test_strict_fast_tool_closes_objects_and_means_default_by_null() -> None:
    @tool(strict=True)
    def book(city: str, spot: Spot, nights: int = 2) -> tuple[Any, ...]:
        return city, spot.hue, nights

    assert not _validator_built(book)
    spot = '{"x": 1, "hue": "blue", "note": null}'
    assert book.invoke(f'{{"city": "Rome", "spot": {spot}, "nights": null}}') == (
        "Rome",
        Hue.BLUE,
        2,
    )
    with pytest.raises(ToolArgumentsError, match=r"spot\.z.*unknown argument"):
        book.invoke('{"city": "Rome", "nights": 1, "spot": {"x": 1, "hue": "red", "z": 1}}')
    assert inspect.isfunction(book.function)
