"""Limits and fallbacks over real HTTP: the agent against the loopback server, on every driver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from sfagent import tool
from sfagent.agent import Agent
from sfagent.exceptions import BudgetExceeded
from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall
from tests.run.agent_support import DRIVERS, drive, roles

KEY = "sk-test"

# The time test's schedule: the model answers after MODEL_DELAY, well inside TIME_LIMIT (a
# slower answer would be an HTTP timeout, not a spent budget); the tool then runs past it.
TIME_LIMIT = 0.6
MODEL_DELAY = 0.25
TOOL_SECONDS = 0.45


@tool
def slow_lookup(key: str) -> str:
    """Look a key up, slowly.

    Args:
        key: What to look up.
    """
    time.sleep(TOOL_SECONDS)
    return f"value of {key}"


class Weather(BaseModel):
    city: str
    celsius: float


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=KEY) as srv:
        yield srv


@pytest.mark.parametrize("driver", DRIVERS)
def test_time_limit_ends_the_run_before_the_next_request(
    server: LoopbackServer, driver: str
) -> None:
    server.add(
        Reply(tool_calls=[ScriptedToolCall("slow_lookup", {"key": "k"})], delay=MODEL_DELAY),
        Reply(text="never asked for"),  # answers at once if the check were missing
    )
    agent = Agent(
        "model-id",
        api_key=KEY,
        base_url=server.base_url,
        tools=[slow_lookup],
        time_limit=TIME_LIMIT,
    )
    with pytest.raises(BudgetExceeded) as info:
        drive(agent, driver, "look k up")
    err = info.value
    assert err.budget == "time"
    assert len(server.requests) == 1  # the check before the second request stopped the run
    partial = err.result
    assert partial.output is None
    assert roles(partial) == ["user", "assistant", "tool"]
    (call,) = partial.messages[1]["tool_calls"]
    assert call["function"]["name"] == "slow_lookup"
    assert json.loads(call["function"]["arguments"]) == {"key": "k"}
    # A tool run inline finishes; one run against the deadline is cut short at it.
    assert partial.messages[2]["tool_call_id"] == call["id"]
    assert partial.messages[2]["content"] in {
        "value of k",
        "Error: tool 'slow_lookup' was cut short: the run's time budget ran out.",
    }
    assert partial.usage.requests == 1
    assert len(partial.turns) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_json_schema_rejected_falls_back_to_json_object(
    server: LoopbackServer, driver: str
) -> None:
    rejected = {
        "code": 20015,
        "message": "Invalid request: response_format json_schema not supported for this model",
        "data": None,
    }
    server.add(Reply.error(400, rejected), Reply(text='{"city": "Oslo", "celsius": -3}'))
    agent = Agent(
        "model-id",
        api_key=KEY,
        base_url=server.base_url,
        output_type=Weather,
        output_mode="json_schema",
    )
    result = drive(agent, driver, "Weather in Oslo?").result
    assert result.output == Weather(city="Oslo", celsius=-3)
    first, second = (r.json for r in server.requests)
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["city", "celsius"]
    assert second["response_format"] == {"type": "json_object"}
    assert second["messages"] == first["messages"]  # the same request, only the format changed
    assert second.get("stream", False) is driver.startswith("stream")
    assert result.usage.requests == 1


# --- the time limit holds during a request --------------------------------------------------

LIMIT = 1.0
SLACK = 0.25  # the bound: a run ends within time_limit + 0.25 s


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_that_never_answers_ends_the_run_on_time(
    server: LoopbackServer, driver: str
) -> None:
    # Retries included: no retry starts that cannot finish before the deadline.
    server.add(Reply(text="too late", delay=10))
    agent = Agent("model-id", api_key=KEY, base_url=server.base_url, time_limit=LIMIT)
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as info:
        drive(agent, driver, "hello")
    elapsed = time.monotonic() - started
    assert info.value.budget == "time"
    assert elapsed < LIMIT + SLACK + 0.5  # generous for a loaded machine; 10 s without a bound
    assert roles(info.value.result) == ["user"]
    assert not info.value.result.turns


@pytest.mark.parametrize("driver", ["stream_sync", "stream"])
def test_a_stream_cut_by_the_deadline_keeps_its_text_marked_incomplete(
    server: LoopbackServer, driver: str
) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    server.add(Reply(text=words, chunk_delay=0.02))  # ~4 s of stream
    agent = Agent("model-id", api_key=KEY, base_url=server.base_url, time_limit=LIMIT)
    with pytest.raises(BudgetExceeded) as info:
        drive(agent, driver, "talk")
    result = info.value.result
    assert roles(result) == ["user"]  # nothing half-said is replayed
    (turn,) = result.turns
    assert turn.incomplete
    assert turn.response.finish_reason is None
    text = turn.response.message.content or ""
    assert text.startswith("w0 w1")
    assert 0 < len(text) < len(words)
