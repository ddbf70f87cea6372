"""`@tool`, `Tool`, `ToolSet` and running the model's calls."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import functools
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import sfagent
from sfagent import (
    RunContext,
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolOutputError,
    ToolSet,
    UserError,
    tool,
    tool_result_text,
)
from sfagent.tools import ToolOptions


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Stop(BaseModel):
    city: str
    arrive: dt.date


def test_public_imports() -> None:
    for name in ("tool", "Tool", "ToolSet", "ToolArgumentsError", "RunContext"):
        assert name in sfagent.__all__
        assert getattr(sfagent, name) is not None


# --- definition forms ---------------------------------------------------------------------------


def weather(city: str, unit: Unit = Unit.C) -> str:
    """Get the weather.

    Args:
        city: City name.
        unit: Temperature unit.
    """
    return f"{city}:{unit.value}"


def test_decorator_forms_give_the_same_schema() -> None:
    plain = tool(weather)
    configured = tool(name="weather", strict=False)(weather)
    made = Tool(weather)
    assert plain.schema == configured.schema == made.schema
    assert plain.schema == {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get the weather.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name."},
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "default": "celsius",
                        "description": "Temperature unit.",
                    },
                },
                "required": ["city"],
            },
        },
    }


def test_tool_is_still_callable_like_the_original() -> None:
    t = tool(weather)
    assert t("Paris") == "Paris:celsius"
    assert t(city="Oslo", unit=Unit.F) == "Oslo:fahrenheit"
    assert t.__name__ == "weather"
    assert t.__doc__ == weather.__doc__
    assert t.function is weather
    assert repr(t) == "Tool(name='weather', strict=False, is_async=False)"


def test_name_override_and_strict_flag_in_schema() -> None:
    t = tool(name="get-weather_2", strict=True)(weather)
    assert t.name == "get-weather_2"
    assert t.schema["function"]["name"] == "get-weather_2"
    assert t.schema["function"]["strict"] is True
    assert "strict" not in tool(weather).schema["function"]


@pytest.mark.parametrize("name", ["", "has space", "dot.name", "a" * 65, "中文", "<lambda>"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        tool(name=name)(weather)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    # A `$`-anchored pattern matched with `.match` lets "abc\n" through; names are fullmatched.
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        tool(name="weather\n")(weather)


def test_name_rules_are_the_request_rules() -> None:
    from sfagent import settings, tools

    assert tools.NAME_PATTERN is settings.TOOL_NAME_PATTERN
    assert tools.MAX_TOOLS == settings.MAX_TOOLS == 128


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be > 0, got 0"),
        ({"timeout": -1.5, "name": "slow"}, "tool 'slow': timeout must be > 0"),
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
        ({"name": "has space"}, "invalid tool name 'has space'"),
    ],
)
def test_options_are_checked_when_the_decorator_is_made(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        tool(**options)
    with pytest.raises(ToolDefinitionError, match=message):
        Tool(weather, **options)
    with pytest.raises(ToolDefinitionError, match=message):
        ToolOptions(**options)


def test_a_tool_keeps_its_options_with_name_and_description_filled_in() -> None:
    t = tool(weather, timeout=5, sequential=True)
    assert t.options == ToolOptions(
        name="weather", description="Get the weather.", timeout=5, sequential=True
    )
    assert (t.timeout, t.sequential, t.requires_approval, t.max_retries, t.strict) == (
        5,
        True,
        False,
        None,
        False,
    )
    renamed = tool(name="forecast", description="Forecast.", requires_approval=True)(weather)
    assert renamed.options.name == renamed.name == "forecast"
    assert renamed.options.description == renamed.description == "Forecast."
    assert renamed.requires_approval


def test_schema_tools_take_the_same_options() -> None:
    t = Tool.from_schema(
        lambda: 1, name="one", description="One.", max_retries=2, timeout=1.5, strict=True
    )
    assert t.options == ToolOptions(
        name="one", description="One.", max_retries=2, timeout=1.5, strict=True
    )
    assert t.schema["function"]["strict"] is True
    with pytest.raises(ToolDefinitionError, match="max_retries must be >= 0"):
        Tool.from_schema(lambda: 1, name="one", description="One.", max_retries=-2)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(ToolDefinitionError, match="pass name="):
        tool(lambda x: x)
    assert tool(lambda x: x, name="identity").invoke('{"x": 5}') == 5


def test_non_callable_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="needs a callable"):
        tool(42)  # type: ignore[call-overload]


class Calculator:
    """Keeps a running total."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, amount: int) -> int:
        """Add to the total."""
        self.total += amount
        return self.total

    @tool
    def subtract(self, amount: int) -> int:
        """Subtract from the total."""
        self.total -= amount
        return self.total

    def __call__(self, factor: int) -> int:
        self.total *= factor
        return self.total


def test_bound_method() -> None:
    calc = Calculator()
    add = tool(calc.add)
    assert add.name == "add"
    assert list(add.parameters["properties"]) == ["amount"]
    assert add.invoke('{"amount": 5}') == 5
    assert calc.total == 5


def test_method_decorated_in_class_body_binds_per_instance() -> None:
    a, b = Calculator(), Calculator()
    assert list(Calculator.subtract.parameters["properties"]) == ["amount"]
    assert a.subtract.invoke('{"amount": 2}') == -2
    assert b.subtract.invoke({"amount": 5}) == -5
    assert (a.total, b.total) == (-2, -5)
    with pytest.raises(UserError, match="through an instance"):
        Calculator.subtract.invoke('{"amount": 1}')


def test_callable_instance_and_partial() -> None:
    calc = Calculator()
    calc.total = 3
    scaled = tool(calc)
    assert scaled.name == "Calculator"
    assert scaled.invoke('{"factor": 2}') == 6

    def power(base: int, exponent: int) -> int:
        """Raise to a power."""
        return int(base**exponent)

    square = tool(functools.partial(power, exponent=2), name="square")
    assert square.invoke('{"base": 7}') == 49
    assert square.description == "Raise to a power."


class Shelf:
    class Size(enum.Enum):  # a name of the class body only
        S = "s"
        L = "l"

    @tool
    def pick(self, size: Size) -> str:  # with postponed annotations: the text "Size"
        return str(size.value)


def test_a_type_local_to_the_class_body_resolves() -> None:
    assert Shelf().pick.invoke('{"size": "l"}') == "l"


def test_a_module_level_function_is_resolved_without_reading_frames() -> None:
    from sfagent.tools._signature import _defining_scope

    def nested(when: dt.date) -> None:
        return None

    assert _defining_scope(weather) is None  # its globals are its whole scope
    assert _defining_scope(functools.partial(weather, "Rome")) is None
    assert _defining_scope(nested) is not None  # may name this test's locals


def test_positional_only_parameters_are_passed_positionally() -> None:
    def divide(a: float, b: float, /, *, round_to: int = 2) -> float:
        return round(a / b, round_to)

    assert tool(divide).invoke('{"a": 1, "b": 3, "round_to": 3}') == 0.333


# --- running calls ------------------------------------------------------------------------------


def test_values_arrive_as_python_objects() -> None:
    seen: dict[str, Any] = {}

    @dataclasses.dataclass
    class Window:
        start: dt.time
        end: dt.time

    def plan(
        stops: list[Stop],
        when: dt.datetime,
        unit: Unit,
        window: Window,
        ref: uuid.UUID,
        budget: Decimal,
        tags: set[str],
    ) -> None:
        seen.update(locals())

    tool(plan).invoke(
        {
            "stops": [{"city": "Rome", "arrive": "2026-05-01"}],
            "when": "2026-05-01T08:30:00Z",
            "unit": "fahrenheit",
            "window": {"start": "09:00", "end": "17:00"},
            "ref": "12345678-1234-5678-1234-567812345678",
            "budget": "12.50",
            "tags": ["a", "a", "b"],
        }
    )
    assert seen["stops"] == [Stop(city="Rome", arrive=dt.date(2026, 5, 1))]
    assert seen["when"] == dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.timezone.utc)
    assert seen["unit"] is Unit.F
    assert seen["window"] == Window(dt.time(9), dt.time(17))
    assert seen["ref"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert seen["budget"] == Decimal("12.50")
    assert seen["tags"] == {"a", "b"}


def test_context_is_required_when_the_tool_takes_one() -> None:
    @tool
    def whoami(ctx: RunContext[str]) -> str:
        return ctx.deps

    with pytest.raises(UserError, match="takes a RunContext"):
        whoami.invoke("{}")
    assert whoami.invoke("{}", context=RunContext(deps="me")) == "me"


def test_async_tool_under_invoke_runs_to_completion() -> None:
    @tool
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert slow_add.is_async
    assert slow_add.invoke('{"a": 1, "b": 2}') == 3


@pytest.mark.anyio
async def test_async_tool_under_invoke_inside_a_loop_says_use_ainvoke() -> None:
    @tool
    async def noop() -> None:
        return None

    with pytest.raises(UserError, match="ainvoke"):
        noop.invoke("")
    assert await noop.ainvoke("") is None


@pytest.mark.anyio
async def test_ainvoke_runs_sync_tools_in_a_thread_without_blocking_the_loop() -> None:
    release = threading.Event()
    loop_thread = threading.get_ident()

    @tool
    def blocking() -> int:
        # Blocks until the event loop, still free, sets the event.
        assert release.wait(timeout=5)
        return threading.get_ident()

    task = asyncio.ensure_future(blocking.ainvoke(""))
    await asyncio.sleep(0.01)
    assert not task.done()
    release.set()
    worker_thread = await asyncio.wait_for(task, timeout=5)
    assert worker_thread != loop_thread


@pytest.mark.anyio
async def test_ainvoke_validates_before_running() -> None:
    calls: list[int] = []

    @tool
    async def record(n: int) -> None:
        calls.append(n)

    with pytest.raises(ToolArgumentsError):
        await record.ainvoke('{"n": "x"}')
    assert calls == []


# --- ToolSet ------------------------------------------------------------------------------------


def _make_tool(i: int) -> Tool[..., Any]:
    return Tool.from_schema(lambda: i, name=f"t{i}", description=f"tool {i}")


def test_toolset_keeps_order_and_looks_up_by_name() -> None:
    tools = ToolSet([weather, _make_tool(1)])
    assert tools.names == ["weather", "t1"]
    assert [s["function"]["name"] for s in tools.schemas] == ["weather", "t1"]
    assert tools["t1"].invoke("") == 1
    assert "weather" in tools
    assert "nope" not in tools
    assert tools.get("nope") is None
    with pytest.raises(KeyError, match="no tool named 'nope'"):
        tools["nope"]
    assert len(tools) == 2


def test_toolset_refuses_duplicates() -> None:
    with pytest.raises(ToolDefinitionError, match="duplicate tool name 'weather'"):
        ToolSet([weather, tool(weather)])


def test_toolset_refuses_more_than_128() -> None:
    tools = ToolSet(_make_tool(i) for i in range(128))
    assert len(tools.schemas) == 128
    with pytest.raises(ToolDefinitionError, match="at most 128"):
        tools.add(_make_tool(128))
    assert len(tools) == 128


def test_toolset_schemas_follow_changes() -> None:
    tools = ToolSet()
    assert tools.schemas == []
    tools.add(weather)
    assert len(tools.schemas) == 1


def test_toolset_request_tools_are_checked_once_per_change() -> None:
    tools = ToolSet([weather])
    first = tools.request_tools
    assert tools.request_tools is first  # kept until the set changes
    assert list(first) == tools.schemas
    assert first.names == {"weather"}
    tools.add(_make_tool(1))
    assert tools.request_tools is not first
    assert tools.request_tools.names == {"weather", "t1"}
    assert len(ToolSet().request_tools) == 0


def test_a_request_carrying_a_toolset_does_not_check_its_tools_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sfagent import settings
    from sfagent.messages import UserMessage

    tools = ToolSet([weather, _make_tool(1)])
    checked = tools.request_tools

    def fail(_: Any) -> frozenset[str]:
        raise AssertionError("checked again")

    monkeypatch.setattr(settings, "_check_tools", fail)
    choice = settings.ModelSettings(tool_choice={"type": "function", "function": {"name": "t1"}})
    request = settings.ChatRequest([UserMessage(content="hi")], tools=checked, settings=choice)
    assert request.to_body()["tools"] == tools.schemas
    bad = settings.ModelSettings(tool_choice={"type": "function", "function": {"name": "x"}})
    with pytest.raises(settings.ConfigurationError, match="not among the tools"):
        settings.ChatRequest([UserMessage(content="hi")], tools=checked, settings=bad)


# --- results as text ---------------------------------------------------------------------------


@dataclasses.dataclass
class Reading:
    city: str
    celsius: float


RESULTS: list[tuple[Any, str]] = [
    ("plain text", "plain text"),
    ("北京 晴", "北京 晴"),
    ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
    ([1, 2.5], "[1,2.5]"),
    (42, "42"),
    (None, "null"),
    (True, "true"),
    (Reading("Rome", 21.5), '{"city":"Rome","celsius":21.5}'),
    (Stop(city="Rome", arrive=dt.date(2026, 1, 2)), '{"city":"Rome","arrive":"2026-01-02"}'),
    ({"when": dt.datetime(2026, 1, 2, 3, 4)}, '{"when":"2026-01-02T03:04:00"}'),
    (Unit.C, '"celsius"'),
    ({"城市": "北京"}, '{"城市":"北京"}'),
]


@pytest.mark.parametrize(("value", "text"), RESULTS)
def test_results_become_json_never_repr(value: Any, text: str) -> None:
    assert tool_result_text(value) == text


def test_unserialisable_result_is_a_clear_error() -> None:
    class Opaque:
        pass

    with pytest.raises(ToolOutputError, match="cannot turn a Opaque into text"):
        tool_result_text(Opaque())
