"""End-to-end runs over real HTTP: the agent against the loopback server, streamed and not."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfagent import UserError, tool
from sfagent.agent import Agent
from sfagent.exceptions import (
    AuthenticationError,
    ConfigurationError,
    ModelRequestError,
    RateLimitError,
)
from sfagent.testing import (
    DemoModel,
    LoopbackServer,
    Reply,
    ScriptedToolCall,
    allow_model_requests,
    block_model_requests,
)
from tests.run.agent_support import DRIVERS, drive, tool_contents

KEY = "sk-loopback-test"


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Get the weather in a city.

    Args:
        city: City name.
    """
    return {"city": city, "celsius": {"Beijing": 3, "Shanghai": 9}.get(city, 20)}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=KEY) as srv:
        yield srv


@pytest.mark.parametrize("driver", DRIVERS)
def test_parallel_tool_calls_end_to_end(server: LoopbackServer, driver: str) -> None:
    server.add(
        Reply(
            reasoning="Two cities: call the tool twice.",
            tool_calls=[
                ScriptedToolCall("get_weather", {"city": "Beijing"}),
                ScriptedToolCall("get_weather", {"city": "Shanghai"}),
            ],
        ),
        Reply(text="Beijing 3 °C, Shanghai 9 °C."),
    )
    agent = Agent("Qwen/Qwen3-8B", tools=[get_weather], api_key=KEY, base_url=server.base_url)
    result = drive(agent, driver, "Weather in Beijing and Shanghai?").result
    assert result.output == "Beijing 3 °C, Shanghai 9 °C."
    assert [json.loads(c)["celsius"] for c in tool_contents(result)] == [3, 9]
    assert result.usage.requests == 2
    assert result.usage.reasoning_tokens > 0

    first, second = (r.json for r in server.requests)
    assert first["model"] == "Qwen/Qwen3-8B"
    assert first.get("stream", False) is driver.startswith("stream")
    assert first["tools"] == [get_weather.schema]
    replayed = second["messages"][1]
    assert replayed["role"] == "assistant"
    assert [c["function"]["name"] for c in replayed["tool_calls"]] == ["get_weather"] * 2
    # Reasoning goes back on tool-call turns (DeepSeek's thinking mode requires it).
    assert replayed["reasoning_content"] == "Two cities: call the tool twice."
    assert [m["tool_call_id"] for m in second["messages"][2:4]] == [
        c["id"] for c in replayed["tool_calls"]
    ]


@pytest.mark.parametrize("driver", DRIVERS)
def test_rate_limit_is_retried_by_the_client(server: LoopbackServer, driver: str) -> None:
    server.add(Reply.error(429, {"message": "TPM limit reached.", "data": None}, retry_after=0))
    server.add(Reply(text="fine"))
    agent = Agent("m", api_key=KEY, base_url=server.base_url)
    assert drive(agent, driver, "hi").result.output == "fine"
    assert len(server.requests) == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_bad_key_fails_the_run_with_its_messages(server: LoopbackServer, driver: str) -> None:
    agent = Agent("m", api_key="sk-wrong", base_url=server.base_url)
    with pytest.raises(ModelRequestError) as info:
        drive(agent, driver, "hi")
    assert info.value.error.status_code == 401  # type: ignore[attr-defined]
    assert "sk-wrong" not in str(info.value)
    assert [m["role"] for m in info.value.result.messages] == ["user"]
    assert not isinstance(info.value.error, RateLimitError)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failed_request_is_caught_by_its_status_class(
    server: LoopbackServer, driver: str
) -> None:
    # What users of the openai SDK write around a run; the partial run stays on the error.
    agent = Agent("m", api_key="sk-wrong", base_url=server.base_url)
    with pytest.raises(AuthenticationError) as info:
        drive(agent, driver, "hi")
    error = info.value
    assert isinstance(error, ModelRequestError)
    assert error.status_code == 401
    assert isinstance(error.error, AuthenticationError)
    assert [m["role"] for m in error.result.messages] == ["user"]
    assert str(error).startswith("the model request failed: HTTP 401")
    assert not isinstance(error, RateLimitError)


def test_block_model_requests_stops_requests_leaving_the_machine() -> None:
    agent = Agent("m", api_key="sk-x", base_url="https://api.siliconflow.cn/v1")
    try:
        with block_model_requests(), pytest.raises(UserError, match="blocked"):
            agent.run_sync("hi")
    finally:
        agent.close()


def test_block_leaves_loopback_and_offline_models_alone(server: LoopbackServer) -> None:
    server.add(Reply(text="local"))
    allow_model_requests(False)
    try:
        agent = Agent("m", api_key=KEY, base_url=server.base_url)
        assert agent.run_sync("hi").output == "local"
        agent.close()
        assert "get_weather" in Agent(DemoModel(), tools=[get_weather]).run_sync("Beijing?").output
    finally:
        allow_model_requests(True)


def test_missing_key_is_reported_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    with pytest.raises(UserError, match="SILICONFLOW_API_KEY"):
        Agent("m")


def test_no_key_says_how_to_run_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SILICONFLOW_API_KEY") as info:
        Agent("Qwen/Qwen3-8B")
    assert "from sfagent.offline import DemoModel" in str(info.value)


def test_a_one_shot_async_run_leaves_nothing_unclosed(tmp_path: Path) -> None:
    # `asyncio.run(agent.run(...))` with no close: aiohttp used to print "Unclosed client
    # session" at exit. The agent's client now closes when its event loop shuts down.
    script = tmp_path / "one_shot.py"
    script.write_text(
        "import asyncio\n"
        "from sfagent import Agent\n"
        "from sfagent.testing import LoopbackServer, Reply\n"
        "with LoopbackServer([Reply(text='hi')]) as server:\n"
        "    agent = Agent('m', api_key='sk-x', base_url=server.base_url)\n"
        "    print(asyncio.run(agent.run('hello')).output)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hi"
    assert "Unclosed" not in done.stderr
    assert done.stderr == ""
