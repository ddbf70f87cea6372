"""Secret hygiene: a recognisable fake key never shows up anywhere a user might paste from.

A full conversation through each driver — a 429 then success, parallel tool calls (one that
works, one that raises, one with broken arguments), a dropped connection retried, the answer —
then runs ending in a 401, in an error body or mid-stream error that echoes the key, and in a
refused connection, all with DEBUG logging on for every logger. The key must appear in no log
record, no repr, no exception (text, repr, traceback, attributes, chained causes, partial
result), no event, no saved transcript, and nowhere in the server's request log (whose
``Authorization`` header, the one place the key belongs, the server strips).
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sfagent import Agent, AsyncSiliconFlow, RetryPolicy, SiliconFlow, tool
from sfagent.events import Event, RunFinished
from sfagent.exceptions import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ModelRequestError,
    SFAgentError,
)
from sfagent.result import RunResult
from sfagent.settings import ChatRequest
from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall

KEY = "sk-SECRET-canary-1234567890"
NEEDLES = (KEY, "SECRET-canary", "canary-1234567890")  # the key, or a recognisable part of it
MODEL = "Qwen/Qwen3-8B"
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
DEAD_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
DRIVERS = ["run_sync", "run", "stream_sync", "stream"]


@tool
def lookup(city: str) -> dict[str, str]:
    """Look up the weather.

    Args:
        city: City name.
    """
    return {"city": city, "sky": "sunny"}


@tool
def explode(city: str) -> str:
    """A sensor that is broken.

    Args:
        city: City name.
    """
    raise RuntimeError(f"sensor offline in {city}")


def conversation() -> list[Reply]:
    """The first run: every kind of trouble the loop recovers from, then the answer."""
    calls = [
        ScriptedToolCall("lookup", {"city": "Paris"}),
        ScriptedToolCall("explode", {"city": "Paris"}),
        ScriptedToolCall("lookup", '{"city": '),
    ]
    return [
        Reply.error(429, {"message": f"TPM limit reached for {KEY}", "data": None}, retry_after=0),
        Reply(reasoning="Ask the tools.", tool_calls=calls),
        Reply(fault="drop_before_response"),
        Reply(text="Paris is sunny; one sensor is offline."),
    ]


def echoing_failure(streamed: bool) -> Reply:
    """A failure whose body echoes the key back, as some gateways do."""
    if streamed:
        return Reply(text="partial", stream_error={"code": 20015, "message": f"bad key {KEY}"})
    body = {"code": 20015, "message": f"bad key {KEY}", "data": {"key": KEY}}
    return Reply.error(400, body)


@dataclass
class Seen:
    """Everything a user could print, log or save, labelled for the failure message."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    results: list[RunResult[Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, label: str, value: object) -> None:
        self.texts.append((label, value if isinstance(value, str) else repr(value)))


def exception_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """Text, repr, traceback and attributes of an error and of everything chained to it."""
    stack: list[BaseException | None] = [error]
    seen: set[int] = set()
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        name = type(exc).__name__
        yield f"str({name})", str(exc)
        yield f"repr({name})", repr(exc)
        yield f"traceback({name})", "".join(traceback.format_exception(exc))
        if isinstance(exc, SFAgentError):
            yield f"vars({name})", repr(vars(exc))
        result = getattr(exc, "result", None)
        if result is not None:
            yield f"{name}.result", repr(result)
            yield f"{name}.result.messages", json.dumps(result.messages)
        partial = getattr(exc, "partial", None)
        if partial is not None:
            yield f"{name}.partial", repr(partial)
        inner = getattr(exc, "error", None)
        stack += [
            exc.__cause__,
            exc.__context__,
            inner if isinstance(inner, BaseException) else None,
        ]


# --- driving the runs ----------------------------------------------------------------------------


def run_sync(agent: Agent[Any, Any], driver: str, prompt: str, seen: Seen) -> None:
    try:
        if driver == "run_sync":
            seen.results.append(agent.run_sync(prompt))
            return
        for event in agent.stream_sync(prompt):
            seen.events.append(event)
            if isinstance(event, RunFinished):
                seen.results.append(event.result)
    except SFAgentError as exc:
        seen.errors.append(exc)


async def run_async(agent: Agent[Any, Any], driver: str, prompt: str, seen: Seen) -> None:
    try:
        if driver == "run":
            seen.results.append(await agent.run(prompt))
            return
        async for event in agent.stream(prompt):
            seen.events.append(event)
            if isinstance(event, RunFinished):
                seen.results.append(event.result)
    except SFAgentError as exc:
        seen.errors.append(exc)


def agent_for(client: Any) -> Agent[Any, Any]:
    return Agent(MODEL, client=client, tools=[lookup, explode], tool_retries=5)


def converse_sync(driver: str, base_url: str, seen: Seen) -> None:
    with SiliconFlow(api_key=KEY, base_url=base_url, retry=FAST) as client, agent_for(
        client
    ) as agent:  # fmt: skip
        for prompt in ("Weather in Paris?", "And now?", "Once more?"):
            run_sync(agent, driver, prompt, seen)
        request = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
        stream = client.stream(request)
        seen.add("unsent stream", stream)
        seen.add("closed stream", (stream.close(), stream)[1])
        seen.add("client", client)
        seen.add("agent", agent)
        seen.add("model", agent.model)
        seen.add("request", request)
    with SiliconFlow(api_key=KEY, base_url=DEAD_URL, retry=FAST) as dead:
        run_sync(agent_for(dead), driver, "Anyone there?", seen)
        seen.add("dead client", dead)


async def converse_async(driver: str, base_url: str, seen: Seen) -> None:
    async with AsyncSiliconFlow(api_key=KEY, base_url=base_url, retry=FAST) as client:
        agent = agent_for(client)
        for prompt in ("Weather in Paris?", "And now?", "Once more?"):
            await run_async(agent, driver, prompt, seen)
        request = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
        stream = client.stream(request)
        seen.add("unsent stream", stream)
        await stream.aclose()
        seen.add("closed stream", stream)
        seen.add("client", client)
        seen.add("agent", agent)
        seen.add("model", agent.model)
    async with AsyncSiliconFlow(api_key=KEY, base_url=DEAD_URL, retry=FAST) as dead:
        await run_async(agent_for(dead), driver, "Anyone there?", seen)
        seen.add("dead client", dead)


# --- the test ------------------------------------------------------------------------------------


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("sfagent", "httpx", "httpcore", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_key_appears_nowhere(driver: str, debug_logging: pytest.LogCaptureFixture) -> None:
    streamed = driver.startswith("stream")
    replies = [*conversation(), Reply.error(401, f"Invalid token {KEY}"), echoing_failure(streamed)]
    seen = Seen()
    with LoopbackServer(replies, api_key=KEY) as server:
        if driver.endswith("_sync"):
            converse_sync(driver, server.base_url, seen)
        else:
            asyncio.run(converse_async(driver, server.base_url, seen))
        seen.add("server", server)
        seen.add("request log", server.requests)
        requests = list(server.requests)

    # The runs went as scripted: one answer, then a 401, an echoed error and a refused connection.
    assert [r.output for r in seen.results] == ["Paris is sunny; one sensor is offline."]
    assert len(seen.errors) == 3
    assert all(isinstance(e, ModelRequestError) for e in seen.errors)
    causes = [type(e.error) for e in seen.errors if isinstance(e, ModelRequestError)]
    assert causes[0] is AuthenticationError
    assert causes[1] is BadRequestError or streamed
    assert issubclass(causes[2], APIConnectionError)
    assert len(requests) == 6  # 429 + answer, drop + answer, 401, echo
    assert all("authorization" not in r.headers for r in requests)

    for result in seen.results:
        seen.add("result", result)
        seen.add("transcript", result.to_json())
    for error in seen.errors:
        seen.texts.extend(exception_texts(error))
    seen.texts.extend(("event", repr(event)) for event in seen.events)
    assert debug_logging.records, "DEBUG logging was on"
    assert any(r.name == "sfagent" for r in debug_logging.records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in debug_logging.records:
        seen.add(f"log {record.name}", formatter.format(record))
        seen.add(f"log {record.name} args", record.args)
        seen.add(f"log {record.name} record", vars(record))

    leaks = [
        f"{label}: {text[:300]}" for label, text in seen.texts if any(n in text for n in NEEDLES)
    ]
    assert not leaks, "the key leaked:\n" + "\n".join(leaks)
    if streamed:
        assert seen.events, "the streaming driver produced events"


# A key pasted from a web page or a chat can carry a character HTTP headers cannot: a
# non-breaking hyphen, full-width digits. It must be refused as a configuration error that does
# not quote it, never sent, and never surface in an encoding error's repr.
UNSENDABLE_KEYS = ["sk\u2011SECRET-canary-1234567890", "sk-SECRET-canary-\uff11\uff12\uff13"]


def _assert_clean(error: BaseException) -> None:
    leaks = [label for label, text in exception_texts(error) if any(n in text for n in NEEDLES)]
    assert not leaks, f"the key leaked through {leaks}: {error!r}"


@pytest.mark.parametrize("key", UNSENDABLE_KEYS)
def test_an_unsendable_key_is_refused_without_quoting_it(key: str) -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
    with LoopbackServer([Reply(text="never")]) as server:
        with (
            pytest.raises(ConfigurationError) as info,
            SiliconFlow(api_key=key, base_url=server.base_url, retry=FAST) as client,
        ):
            client.complete(request)
        _assert_clean(info.value)

        async def call_async() -> None:
            async with AsyncSiliconFlow(api_key=key, base_url=server.base_url) as client:
                await client.complete(request)

        with pytest.raises(ConfigurationError) as async_info:
            asyncio.run(call_async())
        _assert_clean(async_info.value)

        with (
            pytest.raises(SFAgentError) as agent_info,
            Agent(MODEL, api_key=key, base_url=server.base_url) as agent,
        ):
            agent.run_sync("hi")
        _assert_clean(agent_info.value)
        assert server.requests == []


def test_agent_state_never_shows_the_key() -> None:
    from sfagent import Agent

    agent = Agent("m", api_key="sk-SECRET-state-canary", base_url="http://127.0.0.1:9/v1")
    sibling = agent.replace(max_turns=2)
    try:
        for value in (agent, sibling, agent.model, sibling.model):
            assert "sk-SECRET-state-canary" not in repr(value)
            assert "sk-SECRET-state-canary" not in repr(vars(value))
    finally:
        agent.close()
        sibling.close()
