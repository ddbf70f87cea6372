"""A run stays bounded whatever the model sends: depth, call counts, names, threads, time.

Each scenario runs on all four drivers with an offline model (no HTTP): what a hostile or
degenerate model can send is checked here; what a hostile server can send, in tests/client.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from sfagent import tool
from sfagent.agent import Agent
from sfagent.events import ToolResult
from sfagent.exceptions import BudgetExceeded, ToolRetriesExceeded
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall
from tests.run.agent_support import DRIVERS, drive, tool_contents

STREAMING = ["stream_sync", "stream"]


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


@pytest.mark.parametrize("driver", DRIVERS)
def test_arguments_nested_past_the_parser_are_bad_arguments(driver: str) -> None:
    deep = '{"text": ' + "[" * 5000 + "]" * 5000 + "}"
    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("echo", deep)]), "gave up"])
    result = drive(Agent(model, tools=[echo]), driver, "go").result
    (content,) = tool_contents(result)
    assert content.startswith("Error: Invalid arguments for tool 'echo'")
    assert len(content) < 300
    assert result.output == "gave up"


@pytest.mark.parametrize("driver", DRIVERS)
def test_calls_past_max_tool_calls_are_refused_not_run(driver: str) -> None:
    ran: list[str] = []

    @tool
    def note(text: str) -> str:
        """Note."""
        ran.append(text)
        return "noted"

    calls = [ScriptedToolCall("note", {"text": str(i)}) for i in range(40)]
    model = ScriptedModel([Reply(tool_calls=calls), "done"])
    result = drive(Agent(model, tools=[note], max_tool_calls=25), driver, "go").result
    assert sorted(ran, key=int) == [str(i) for i in range(25)]
    contents = tool_contents(result)
    assert len(contents) == 40  # every call answered: the history stays valid
    assert contents[:25] == ["noted"] * 25
    assert all("at most 25 tool calls" in c for c in contents[25:])
    assert result.usage.tool_calls == 25


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_invented_name_is_echoed_short(driver: str) -> None:
    name = "x" * 1_000_000
    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall(name, {})]), "ok"])
    result = drive(Agent(model, tools=[echo]), driver, "go").result
    (content,) = tool_contents(result)
    assert "there is no tool named 'xxxx" in content
    assert len(content) < 200


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failing_tool_keeps_its_traceback(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    @tool(max_retries=0)
    def lookup(city: str) -> str:
        """Looks a city up."""
        return {"Beijing": "sunny"}[city]

    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Paris"})])])
    with (
        caplog.at_level(logging.DEBUG, logger="sfagent"),
        pytest.raises(ToolRetriesExceeded) as info,
    ):
        drive(Agent(model, tools=[lookup]), driver, "go")
    cause = info.value.__cause__
    assert isinstance(cause, KeyError)
    assert cause.__traceback__ is not None  # the frame that raised is still there
    records = [r for r in caplog.records if r.exc_info and r.exc_info[1] is cause]
    assert records, "the exception is logged at DEBUG with its traceback"


@pytest.mark.parametrize("driver", STREAMING)
def test_the_tool_result_event_carries_the_exception(driver: str) -> None:
    @tool
    def boom() -> str:
        """Fails."""
        raise ValueError("no luck")

    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("boom", {})]), "ok"])
    events = drive(Agent(model, tools=[boom]), driver, "go").events
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert isinstance(result.exception, ValueError)
    assert result.error is not None


@pytest.mark.parametrize("driver", DRIVERS)
def test_sync_tools_run_on_a_bounded_pool(driver: str) -> None:
    peak = 0
    live = 0
    lock = threading.Lock()

    @tool
    def nap() -> str:
        """Sleeps a little."""
        nonlocal peak, live
        with lock:
            live += 1
            peak = max(peak, live)
        time.sleep(0.02)
        with lock:
            live -= 1
        return "ok"

    calls = [ScriptedToolCall("nap", {}, id=f"c{i}") for i in range(60)]
    model = ScriptedModel([Reply(tool_calls=calls), "done"])
    agent = Agent(
        model, tools=[nap], max_concurrency=8, max_tool_calls=None, max_repeated_calls=None
    )
    before = threading.active_count()
    result = drive(agent, driver, "go").result
    assert tool_contents(result) == ["ok"] * 60
    assert peak <= 8
    assert threading.active_count() - before <= 8


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_run_stops_waiting_for_a_slow_sync_tool_at_its_deadline(driver: str) -> None:
    release = threading.Event()

    @tool
    def stuck() -> str:
        """Never returns in time."""
        release.wait(5)
        return "late"

    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("stuck", {})]), "unused"])
    started = time.monotonic()
    try:
        with pytest.raises(BudgetExceeded) as info:
            drive(Agent(model, tools=[stuck], time_limit=0.3), driver, "go")
    finally:
        release.set()
    assert time.monotonic() - started < 2.5  # not the 5 s the tool would take
    assert info.value.budget == "time"
    (content,) = tool_contents(info.value.result)
    assert "time budget ran out" in content
