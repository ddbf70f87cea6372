"""The span tree and attributes of traced runs, through all four drivers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from sfagent import ModelRequestError, tool
from sfagent.agent import Agent
from sfagent.testing import LoopbackServer, Reply, ScriptedModel, ScriptedToolCall
from sfagent.tracing._settings import TracingSettings
from tests.run.agent_support import DRIVERS, drive
from tests.tracing.conftest import Spans

KEY = "sk-tracing-secret-key-0123456789"


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Get the weather in a city.

    Args:
        city: City name.
    """
    return {"city": city, "celsius": {"Beijing": 3, "Shanghai": 9}.get(city, 20)}


def _two_cities() -> list[Reply]:
    return [
        Reply(
            tool_calls=[
                ScriptedToolCall("get_weather", {"city": "Beijing"}),
                ScriptedToolCall("get_weather", {"city": "Shanghai"}),
            ]
        ),
        Reply(text="Beijing 3 °C, Shanghai 9 °C."),
    ]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=KEY) as srv:
        yield srv


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_run_is_one_tree_of_agent_chat_and_tool_spans(spans: Spans, driver: str) -> None:
    agent = Agent(ScriptedModel(_two_cities()), tools=[get_weather], instrument=spans.settings)
    result = drive(agent, driver, "Weather in Beijing and Shanghai?").result

    run = spans.root()
    assert run.parent is None
    assert run.kind is SpanKind.INTERNAL
    assert run.attributes is not None
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.provider.name"] == "siliconflow"
    assert run.attributes["gen_ai.request.model"] == "scripted"
    assert run.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert run.attributes["gen_ai.usage.output_tokens"] == result.usage.completion_tokens
    assert "error.type" not in run.attributes
    names = [s.name for s in spans.children(run)]
    assert names == [
        "chat scripted",
        "execute_tool get_weather",
        "execute_tool get_weather",
        "chat scripted",
    ]
    assert len(spans.all) == 5
    assert {s.context.trace_id for s in spans.all if s.context} == {run.context.trace_id}


@pytest.mark.parametrize("driver", DRIVERS)
def test_chat_spans_carry_the_request_and_the_response(spans: Spans, driver: str) -> None:
    agent = Agent(ScriptedModel(_two_cities()), tools=[get_weather], instrument=spans.settings)
    drive(agent, driver, "Weather?")
    first, second = spans.named("chat")
    assert first.kind is SpanKind.CLIENT
    attributes = dict(first.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "scripted"
    assert attributes["gen_ai.request.stream"] is driver.startswith("stream")
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.id"]
    assert (second.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    # Content is opt-in.
    assert not any(
        k.startswith("gen_ai.input") or k.startswith("gen_ai.output") for k in attributes
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_tool_spans_name_the_tool_and_the_call(spans: Spans, driver: str) -> None:
    agent = Agent(ScriptedModel(_two_cities()), tools=[get_weather], instrument=spans.settings)
    result = drive(agent, driver, "Weather?").result
    call_ids = [c["id"] for c in result.messages[1]["tool_calls"]]
    tools = spans.named("execute_tool")
    assert sorted((s.attributes or {})["gen_ai.tool.call.id"] for s in tools) == sorted(call_ids)
    for span in tools:
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.INTERNAL
        assert attributes["gen_ai.operation.name"] == "execute_tool"
        assert attributes["gen_ai.tool.name"] == "get_weather"
        assert attributes["gen_ai.tool.type"] == "function"
        assert attributes["gen_ai.tool.description"] == "Get the weather in a city."
        assert "error.type" not in attributes
        assert "gen_ai.tool.call.arguments" not in attributes
        assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("driver", DRIVERS)
def test_content_is_recorded_when_asked_for(spans: Spans, driver: str) -> None:
    agent = Agent(
        ScriptedModel(_two_cities()),
        tools=[get_weather],
        instructions="Be brief.",
        instrument=spans.with_content(),
    )
    drive(agent, driver, "Weather?")
    first, second = spans.named("chat")
    sent = json.loads(str((first.attributes or {})["gen_ai.input.messages"]))
    assert sent == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
    ]
    (answer,) = json.loads(str((first.attributes or {})["gen_ai.output.messages"]))
    assert answer["finish_reason"] == "tool_calls"
    assert [p["arguments"] for p in answer["parts"] if p["type"] == "tool_call"] == [
        {"city": "Beijing"},
        {"city": "Shanghai"},
    ]
    replayed = json.loads(str((second.attributes or {})["gen_ai.input.messages"]))
    assert [m["role"] for m in replayed] == ["system", "user", "assistant", "tool", "tool"]
    assert replayed[3]["parts"][0]["type"] == "tool_call_response"
    for span in spans.named("execute_tool"):
        attributes = dict(span.attributes or {})
        city = json.loads(str(attributes["gen_ai.tool.call.arguments"]))["city"]
        assert json.loads(str(attributes["gen_ai.tool.call.result"]))["city"] == city


def test_content_follows_the_environment_when_unset(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    settings = TracingSettings(tracer_provider=spans.provider)
    Agent(ScriptedModel(["hi"]), instrument=settings).run_sync("hello")
    assert "gen_ai.input.messages" in (spans.named("chat")[0].attributes or {})


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_raising_tool_is_an_error_span_and_the_run_goes_on(spans: Spans, driver: str) -> None:
    @tool
    def explode(city: str) -> str:
        """Fail.

        Args:
            city: A city.
        """
        raise ValueError(f"no weather for {city}")

    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("explode", {"city": "X"})]), "ok"])
    agent = Agent(model, tools=[explode], instrument=spans.settings)
    assert drive(agent, driver, "go").result.output == "ok"
    (failed,) = spans.named("execute_tool")
    assert (failed.attributes or {})["error.type"] == "ValueError"
    assert failed.status.status_code is StatusCode.ERROR
    assert "no weather for X" in (failed.status.description or "")
    assert [e.name for e in failed.events] == ["exception"]
    run = spans.root()
    assert "error.type" not in (run.attributes or {})
    assert run.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("driver", ["run_sync", "run"])
def test_a_tool_past_its_timeout_is_a_timeout_span(spans: Spans, driver: str) -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def slow() -> str:
        """Wait."""
        release.wait(5)
        return "late"

    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("slow", {})]), "gave up"])
    agent = Agent(model, tools=[slow], instrument=spans.settings)
    try:
        assert drive(agent, driver, "go").result.output == "gave up"
    finally:
        release.set()
    time.sleep(0.05)  # the abandoned thread finishes; its span must not end twice
    (timed_out,) = spans.named("execute_tool")
    assert (timed_out.attributes or {})["error.type"] == "timeout"


@pytest.mark.parametrize("driver", DRIVERS)
def test_spans_made_inside_tools_nest_under_their_call(spans: Spans, driver: str) -> None:
    tracer = spans.provider.get_tracer("user-code")

    @tool
    def sync_lookup(city: str) -> str:
        """Look up, on a worker thread when calls run in parallel.

        Args:
            city: A city.
        """
        with tracer.start_as_current_span(f"lookup {city}"):
            time.sleep(0.01)  # overlap with the other call
        return city

    @tool
    async def async_lookup(city: str) -> str:
        """Look up on the event loop (or a worker's loop in a sync run).

        Args:
            city: A city.
        """
        with tracer.start_as_current_span(f"alookup {city}"):
            await asyncio.sleep(0.01)
        return city

    calls = [
        ScriptedToolCall("sync_lookup", {"city": "A"}),
        ScriptedToolCall("sync_lookup", {"city": "B"}),
        ScriptedToolCall("async_lookup", {"city": "C"}),
    ]
    model = ScriptedModel([Reply(tool_calls=calls), "done"])
    agent = Agent(model, tools=[sync_lookup, async_lookup], instrument=spans.settings)
    drive(agent, driver, "go")
    by_id = {s.context.span_id: s for s in spans.all if s.context is not None}
    for inner in spans.named("lookup") + spans.named("alookup"):
        assert inner.parent is not None
        parent = by_id[inner.parent.span_id]
        assert parent.name.startswith("execute_tool")
        city = inner.name.split()[-1]
        arguments = [c for c in calls if c.arguments == {"city": city}]
        assert len(arguments) == 1
        assert (parent.attributes or {})["gen_ai.tool.name"] == arguments[0].name
        assert parent.parent is not None
        assert by_id[parent.parent.span_id].name == "invoke_agent"
    assert len(spans.named("lookup")) == 2
    assert len(spans.named("alookup")) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_run_span_is_a_child_of_the_callers_span(spans: Spans, driver: str) -> None:
    tracer = spans.provider.get_tracer("caller")
    agent = Agent(ScriptedModel(["hi"]), instrument=spans.settings)
    with tracer.start_as_current_span("request handler") as handler:
        drive(agent, driver, "hello")
        # The run's spans were never left current in the caller's context.
        assert trace.get_current_span() is handler
    run = spans.root()
    assert run.parent is not None
    assert run.parent.span_id == handler.get_span_context().span_id


# --- over HTTP: trace ids, retries, failures --------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_http_chat_spans_carry_the_siliconflow_trace_id(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    server.add(*_two_cities())
    agent = Agent(
        "Qwen/Qwen3-8B",
        tools=[get_weather],
        api_key=KEY,
        base_url=server.base_url,
        instrument=spans.with_content(),
    )
    drive(agent, driver, "Weather?")
    chats = spans.named("chat")
    assert [s.name for s in chats] == ["chat Qwen/Qwen3-8B"] * 2
    for span in chats:
        attributes = dict(span.attributes or {})
        trace_id = attributes["siliconflow.trace_id"]
        assert isinstance(trace_id, str)
        assert len(trace_id) == 32
        assert attributes["gen_ai.response.model"] == "Qwen/Qwen3-8B"
        assert "sfagent.request.retries" not in attributes
    assert len({(s.attributes or {})["siliconflow.trace_id"] for s in chats}) == 2
    _no_key_anywhere(spans)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_retried_request_is_one_span_with_its_retries_as_events(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    server.add(Reply.error(429, {"message": "TPM limit reached.", "data": None}, retry_after=0))
    server.add(Reply.error(503, {"message": "busy", "data": None}, retry_after=0))
    server.add(Reply(text="fine"))
    agent = Agent("m", api_key=KEY, base_url=server.base_url, instrument=spans.settings)
    assert drive(agent, driver, "hi").result.output == "fine"
    assert len(server.requests) == 3
    (chat,) = spans.named("chat")
    attributes = dict(chat.attributes or {})
    assert attributes["sfagent.request.retries"] == 2
    assert "error.type" not in attributes
    assert chat.status.status_code is StatusCode.UNSET
    retries = [e for e in chat.events if e.name == "sfagent.request.retry"]
    assert [(e.attributes or {})["sfagent.retry.attempt"] for e in retries] == [1, 2]
    assert [(e.attributes or {})["error.type"] for e in retries] == [
        "RateLimitError",
        "ServiceUnavailableError",
    ]
    assert [(e.attributes or {})["http.response.status_code"] for e in retries] == [429, 503]
    assert all((e.attributes or {})["siliconflow.trace_id"] for e in retries)
    assert attributes["siliconflow.trace_id"] not in {
        (e.attributes or {})["siliconflow.trace_id"] for e in retries
    }
    _no_key_anywhere(spans)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failed_request_fails_its_chat_span_and_the_run_span(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    server.add(Reply.error(400, {"code": 20015, "message": "bad request", "data": None}))
    agent = Agent("m", api_key=KEY, base_url=server.base_url, instrument=spans.with_content())
    with pytest.raises(ModelRequestError) as info:
        drive(agent, driver, "hi")
    (chat,) = spans.named("chat")
    attributes = dict(chat.attributes or {})
    assert attributes["error.type"] == "BadRequestError"
    assert attributes["http.response.status_code"] == 400
    assert attributes["siliconflow.trace_id"]
    assert chat.status.status_code is StatusCode.ERROR
    run = spans.root()
    assert (run.attributes or {})["error.type"] == type(info.value).__qualname__
    assert run.status.status_code is StatusCode.ERROR
    assert (run.attributes or {})["sfagent.run.requests"] == 0
    _no_key_anywhere(spans)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_wrong_key_never_shows_in_any_span(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    wrong = "sk-wrong-but-secret-9876543210"
    agent = Agent("m", api_key=wrong, base_url=server.base_url, instrument=spans.with_content())
    with pytest.raises(ModelRequestError):
        drive(agent, driver, "hi")
    (chat,) = spans.named("chat")
    assert (chat.attributes or {})["error.type"] == "AuthenticationError"
    _no_key_anywhere(spans, wrong)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_tool_that_echoes_the_key_never_puts_it_on_a_span(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    @tool
    def leak(city: str) -> str:
        """Echo the key.

        Args:
            city: A city.
        """
        return f"{city}: the key is {KEY}"

    @tool
    def leak_raising(city: str) -> str:
        """Fail with the key.

        Args:
            city: A city.
        """
        raise ValueError(f"bad key {KEY} for {city}")

    calls = [
        ScriptedToolCall("leak", {"city": "X"}),
        ScriptedToolCall("leak_raising", {"city": KEY}),
    ]
    server.add(Reply(tool_calls=calls), Reply(text="ok"))
    agent = Agent(
        "m",
        api_key=KEY,
        base_url=server.base_url,
        tools=[leak, leak_raising],
        instrument=spans.with_content(),
    )
    assert drive(agent, driver, "go").result.output == "ok"
    assert len(spans.named("execute_tool")) == 2
    _no_key_anywhere(spans)


def _no_key_anywhere(spans: Spans, key: str = KEY) -> None:
    assert spans.all
    for span in spans.all:
        text = span.to_json()
        assert key not in text
        assert key[3:15] not in text  # nor a piece of it


@pytest.mark.parametrize("driver", ["stream_sync", "stream"])
def test_a_stream_cut_off_fails_its_chat_span(
    spans: Spans, server: LoopbackServer, driver: str
) -> None:
    server.add(Reply(text="partial answer", stream_error={"message": "overloaded", "code": 50505}))
    agent = Agent("m", api_key=KEY, base_url=server.base_url, instrument=spans.settings)
    with pytest.raises(ModelRequestError):
        drive(agent, driver, "hi")
    (chat,) = spans.named("chat")
    assert (chat.attributes or {})["error.type"]
    assert chat.status.status_code is StatusCode.ERROR
    assert (spans.root().attributes or {})["error.type"]
