"""The offline demo model: plausible calls from the schema and the prompt, then a summary."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import pytest
from pydantic import BaseModel

from sfagent import Agent, tool
from sfagent.testing import DemoModel


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, str]:
    """Weather."""
    return {"city": city, "unit": unit}


class Window(BaseModel):
    start: dt.date
    days: int


@tool
def book(hotel: str, window: Window, guests: int = 1) -> str:
    """Book."""
    return f"{hotel} from {window.start} for {window.days} days"


@pytest.mark.parametrize(
    ("prompt", "cities"),
    [
        ("What's the weather in Beijing and Shanghai?", ["Beijing", "Shanghai"]),
        ("Is Wuhan colder than Chengdu? Answer briefly.", ["Wuhan", "Chengdu"]),
        ("Tell me about New York", ["New York"]),
        ("Weather in Paris", ["Paris"]),  # the tool's own word is not a city
    ],
)
def test_one_call_per_name_in_the_prompt(prompt: str, cities: list[str]) -> None:
    model = DemoModel()
    result = Agent(model, tools=[get_weather]).run_sync(prompt)
    calls = result.messages[1]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": c} for c in cities]
    assert result.output.startswith("(demo model) Here is what the tools returned:")
    for city in cities:
        assert city in result.output
    assert result.usage.requests == 2


def test_arguments_follow_the_schema() -> None:
    result = Agent(DemoModel(), tools=[book]).run_sync('Book "Grand Hotel" for 3 nights')
    (content,) = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert content == f"Grand Hotel from {dt.date.today()} for 3 days"


def test_without_tools_it_says_what_to_do() -> None:
    assert "SILICONFLOW_API_KEY" in Agent(DemoModel()).run_sync("hello").output


class Trip(BaseModel):
    city: str
    days: int


@pytest.mark.parametrize("mode", ["json_object", "json_schema"])
def test_structured_output_offline(mode: str) -> None:
    agent = Agent(DemoModel(), tools=[get_weather], output_type=Trip, output_mode=mode)  # type: ignore[arg-type]
    trip = agent.run_sync("Plan 3 days in Hangzhou").output
    assert trip == Trip(city="Hangzhou", days=3)


@pytest.mark.parametrize(
    ("prompt", "cities"),
    [
        ("What's the weather in Xi'an?", ["Xi'an"]),
        ("What’s the weather in Xi’an?", ["Xi’an"]),  # typographic apostrophes
        ("What's the weather in 'Xi'an'?", ["Xi'an"]),  # quoted, apostrophe and all
        ("I'm flying to Xi'an and Chengdu", ["Xi'an", "Chengdu"]),
        ("Let's compare Paris's weather with Oslo's", ["Paris", "Oslo"]),
        ("It's cold in 'New York' today", ["New York"]),
    ],
)
def test_an_apostrophe_inside_a_word_is_not_a_quote(prompt: str, cities: list[str]) -> None:
    result = Agent(DemoModel(), tools=[get_weather]).run_sync(prompt)
    calls = result.messages[1]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": c} for c in cities]
