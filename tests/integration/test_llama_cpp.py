"""sfagent against a real third-party server: llama-cpp-python's, serving SmolLM2-135M.

Every other test talks to sfagent's own loopback server, which speaks the API the way sfagent's
authors read it. This module checks the reading against someone else's server: plain and
streamed chat, a forced tool call streamed the way llama.cpp streams it (id and name repeated in
every chunk), whole agent runs on all four drivers, the model list, a wrong key and a context
overflow. A 135M model is not smart, so the assertions are about the protocol, never about what
the model says: a forced first call, then whatever it answers within ``max_turns``.

The last section pins the server's own bugs that docs/compatibility.md describes, so the page
stays true for the pinned version (requirements-integration.txt); when an upgrade fixes one, its
test fails here and the page needs the news.

Run with ``pytest -m integration tests/integration`` (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, Literal

import httpx
import pytest

from sfagent import (
    Agent,
    AgentRunError,
    AsyncSiliconFlow,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ChatCompletionChunk,
    ChatRequest,
    IncompleteStreamError,
    InternalServerError,
    ModelRequestError,
    ModelSettings,
    RunFinished,
    RunResult,
    SiliconFlow,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    UserMessage,
    tool,
)

from .conftest import MODEL_ALIAS, N_CTX, REQUEST_TIMEOUT, SELECT_HINT, LlamaServer, selected

if not selected():  # one line in a plain run's summary, not one per test
    pytest.skip(SELECT_HINT, allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
QUESTION = "What is the weather in Paris?"
CALM = ModelSettings(max_tokens=32, temperature=0)
"""Short, greedy answers: the tests take seconds and the same prompt gives the same text."""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def _client(server: LlamaServer, *, api_key: str | None = None) -> SiliconFlow:
    # retry=None: an error must surface at once, not after backoff (and no test waits for one).
    return SiliconFlow(
        base_url=server.base_url,
        api_key=api_key or server.api_key,
        timeout=REQUEST_TIMEOUT,
        retry=None,
    )


def _async_client(server: LlamaServer) -> AsyncSiliconFlow:
    return AsyncSiliconFlow(
        base_url=server.base_url, api_key=server.api_key, timeout=REQUEST_TIMEOUT, retry=None
    )


def _ask(
    text: str = QUESTION, *, settings: ModelSettings = CALM, tools: list[Any] | None = None
) -> ChatRequest:
    return ChatRequest(
        [UserMessage(content=text)], model=MODEL_ALIAS, settings=settings, tools=tools
    )


def _drain(client: SiliconFlow, request: ChatRequest) -> list[ChatCompletionChunk]:
    """Every chunk of a streamed request (the stream closed after)."""
    with client.stream(request) as stream:
        return list(stream)


def _raw_stream(server: LlamaServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a streamed request, read without sfagent (``[DONE]`` kept)."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        json={**body, "stream": True},
        headers=headers,
        timeout=REQUEST_TIMEOUT,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:"):
                data = line[len("data:") :].strip()
                events.append({"done": True} if data == "[DONE]" else json.loads(data))
    return events


def _too_long() -> str:
    # ~3000 tokens for SmolLM2's tokenizer (one per " word"): well past N_CTX.
    return "word " * (N_CTX + 1000)


# --- the client --------------------------------------------------------------------------------


def test_plain_chat(llama_server: LlamaServer) -> None:
    with _client(llama_server) as client:
        answer = client.complete(_ask())
    assert isinstance(answer.message.content, str)
    assert answer.message.content.strip()
    assert answer.finish_reason in ("stop", "length")
    assert answer.message.tool_calls in (None, [])
    assert answer.model == MODEL_ALIAS
    # Non-streamed answers carry usage on this server.
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


@pytest.mark.anyio
async def test_plain_chat_async(llama_server: LlamaServer) -> None:
    async with _async_client(llama_server) as client:
        answer = await client.complete(_ask())
    assert isinstance(answer.message.content, str)
    assert answer.message.content.strip()
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


def test_streamed_chat(llama_server: LlamaServer) -> None:
    with _client(llama_server) as client, client.stream(_ask()) as stream:
        chunks = list(stream)
    final = stream.get_final_response()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2
    assert text.strip()
    assert final.message.content == text
    assert final.finish_reason in ("stop", "length")
    # llama.cpp's server reports no usage in streams (docs/compatibility.md).
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.anyio
async def test_streamed_chat_async(llama_server: LlamaServer) -> None:
    async with _async_client(llama_server) as client, client.stream(_ask()) as stream:
        chunks = [chunk async for chunk in stream]
    final = await stream.get_final_response()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert final.message.content == text


def test_forced_tool_call_streamed_repeats_id_and_name_on_the_wire(
    llama_server: LlamaServer,
) -> None:
    """What the next test relies on: the server really repeats them (read without sfagent)."""
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER_TOOL],
        "tool_choice": FORCE_WEATHER,
        "max_tokens": 32,
        "temperature": 0,
    }
    events = _raw_stream(llama_server, body)
    deltas = [
        call
        for event in events
        for choice in event.get("choices", [])
        for call in (choice["delta"].get("tool_calls") or [])
    ]
    assert len(deltas) > 2
    assert all(call["id"] == deltas[0]["id"] for call in deltas)
    assert all(call["function"]["name"] == "get_weather" for call in deltas)
    assert all(call["index"] == 0 for call in deltas)
    assert events[-1] == {"done": True}


def test_forced_tool_call_streamed_builds_one_call(llama_server: LlamaServer) -> None:
    request = _ask(
        tools=[WEATHER_TOOL],
        settings=ModelSettings(max_tokens=32, temperature=0, tool_choice=FORCE_WEATHER),
    )
    with _client(llama_server) as client, client.stream(request) as stream:
        chunks = list(stream)
    final = stream.get_final_response()
    repeated = [
        call.id for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])
    ]
    assert len(repeated) > 2  # the id came again and again ...
    calls = final.message.tool_calls or []
    assert len(calls) == 1  # ... and sfagent kept one call
    assert calls[0].id == repeated[0]
    assert calls[0].function.name == "get_weather"  # not "get_weatherget_weather..."
    arguments = json.loads(calls[0].function.arguments)  # the deltas joined once, in order
    assert isinstance(arguments, dict)
    assert isinstance(arguments.get("city"), str)
    assert final.finish_reason == "tool_calls"


def test_forced_tool_call_not_streamed(llama_server: LlamaServer) -> None:
    request = _ask(
        tools=[WEATHER_TOOL],
        settings=ModelSettings(max_tokens=32, temperature=0, tool_choice=FORCE_WEATHER),
    )
    with _client(llama_server) as client:
        answer = client.complete(request)
    calls = answer.message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]
    assert isinstance(json.loads(calls[0].function.arguments), dict)
    assert answer.message.content in (None, "")  # the server sends null beside tool calls
    assert answer.finish_reason == "tool_calls"


def test_list_models(llama_server: LlamaServer) -> None:
    with _client(llama_server) as client:
        assert client.list_models() == [MODEL_ALIAS]


@pytest.mark.anyio
async def test_list_models_async(llama_server: LlamaServer) -> None:
    async with _async_client(llama_server) as client:
        assert await client.list_models() == [MODEL_ALIAS]


# --- errors ------------------------------------------------------------------------------------

WRONG_KEY = "sk-not-the-servers-key"


CALLS: dict[str, Callable[[SiliconFlow], object]] = {
    "complete": lambda client: client.complete(_ask()),
    "stream": lambda client: _drain(client, _ask()),
    "list_models": lambda client: client.list_models(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_wrong_key_is_an_authentication_error(llama_server: LlamaServer, call: str) -> None:
    with (
        _client(llama_server, api_key=WRONG_KEY) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        CALLS[call](client)
    assert caught.value.status_code == 401
    assert "Invalid API key" in caught.value.message  # FastAPI's {"detail": ...} body
    assert WRONG_KEY not in str(caught.value)


def test_wrong_key_around_an_agent_run(llama_server: LlamaServer) -> None:
    agent = Agent(
        MODEL_ALIAS, base_url=llama_server.base_url, api_key=WRONG_KEY, settings=CALM, max_turns=2
    )
    with agent, pytest.raises(AuthenticationError) as caught:
        agent.run_sync(QUESTION)
    # Catchable by the status class, and still the run error with the partial run.
    assert isinstance(caught.value, ModelRequestError)
    assert caught.value.result is not None
    assert caught.value.result.messages[0] == {"role": "user", "content": QUESTION}


def test_context_overflow_is_a_bad_request(llama_server: LlamaServer) -> None:
    with _client(llama_server) as client, pytest.raises(BadRequestError) as caught:
        client.complete(_ask(_too_long()))
    error = caught.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"  # OpenAI's shape, a named code
    assert f"maximum context length is {N_CTX} tokens" in error.message


def test_context_overflow_streamed_ends_the_stream_empty(llama_server: LlamaServer) -> None:
    """The server's bug: HTTP 200, then the body ends with no event and no [DONE].

    sfagent cannot learn why; it reports a stream that ended early, typed, after 0 chunks.
    """
    with _client(llama_server) as client, pytest.raises(IncompleteStreamError) as caught:
        _drain(client, _ask(_too_long()))
    assert "0 chunks" in str(caught.value)


# --- the agent, on all four drivers ------------------------------------------------------------


class WeatherTool:
    """One ``@tool`` that records its calls."""

    def __init__(self) -> None:
        self.cities: list[str] = []

        @tool
        def get_weather(
            city: str, unit: Literal["celsius", "fahrenheit"] = "celsius"
        ) -> dict[str, Any]:
            """Get the current weather in a city.

            Args:
                city: City name, e.g. "Paris".
                unit: Temperature unit.
            """
            self.cities.append(city)
            return {"city": city, "temperature": 21, "unit": unit}

        self.tool = get_weather


@pytest.fixture
def weather() -> WeatherTool:
    return WeatherTool()


def _agent(server: LlamaServer, weather: WeatherTool, **options: Any) -> Agent:
    # The first call is forced (a 135M model would not choose it); sfagent then sends "auto",
    # this server's template handler answers in text, and max_turns ends the run regardless.
    defaults: dict[str, Any] = {
        "tool_choice": FORCE_WEATHER,
        "max_turns": 3,
        "time_limit": 120,
        "settings": ModelSettings(max_tokens=96, temperature=0),
    }
    return Agent(
        MODEL_ALIAS,
        base_url=server.base_url,
        api_key=server.api_key,
        tools=[weather.tool],
        **{**defaults, **options},
    )


def _drive(
    agent: Agent, driver: str
) -> tuple[RunResult[Any] | None, AgentRunError | None, list[Any]]:
    """Run the agent with one driver: its result or its typed error, and the events streamed.

    A limit the model runs into (turns, tokens, truncation) is an acceptable end for a 135M
    model; a failed request is not, and propagates.
    """
    events: list[Any] = []

    async def stream_async() -> None:
        events.extend([event async for event in agent.stream(QUESTION)])

    try:
        if driver == "run_sync":
            return agent.run_sync(QUESTION), None, events
        if driver == "run":
            return asyncio.run(agent.run(QUESTION)), None, events
        if driver == "stream_sync":
            events.extend(agent.stream_sync(QUESTION))
        else:
            asyncio.run(stream_async())
    except ModelRequestError:
        raise  # a refused request is a failure, never "the model was dumb"
    except AgentRunError as exc:
        return None, exc, events
    assert isinstance(events[-1], RunFinished)
    return events[-1].result, None, events


def _every_call_answered(messages: list[dict[str, Any]]) -> None:
    called = [
        call["id"]
        for message in messages
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    ]
    answered = [message["tool_call_id"] for message in messages if message["role"] == "tool"]
    assert called, "the forced call is in the history"
    assert answered == called


DRIVERS = ["run_sync", "run", "stream_sync", "stream"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_agent_run_with_one_tool(
    llama_server: LlamaServer, weather: WeatherTool, driver: str
) -> None:
    agent = _agent(llama_server, weather)
    try:
        result, error, events = _drive(agent, driver)
    finally:
        agent.close()
    run = result if result is not None else error.result if error is not None else None
    assert run is not None, "a run ends with a result or a typed error that keeps it"
    assert weather.cities, "the forced call ran the tool"
    assert run.turns[0].tool_calls[0].name == "get_weather"
    assert run.turns[0].tool_calls[0].error is None
    _every_call_answered(run.messages)
    assert run.usage.tool_calls == len(weather.cities)
    assert run.usage.requests == len(run.turns)
    # The server reports usage in whole answers and none in streams: there sfagent estimates,
    # and says so.
    assert run.usage.total_tokens > 0
    assert run.usage.estimated is driver.startswith("stream")
    if result is not None:
        assert isinstance(result.output, str)
    if driver.startswith("stream"):
        kinds = {type(event) for event in events}
        assert {ToolCallStarted, ToolResult} <= kinds
        if result is not None:
            assert TextDelta in kinds


def test_agent_sends_what_the_server_accepts(
    llama_server: LlamaServer, weather: WeatherTool
) -> None:
    """The second request replays the tool-call turn with ``content: ""`` (this server answers
    ``null`` there with a 500) and sends ``tool_choice: "auto"`` once the tool has run."""
    bodies: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(request.content))

    http = httpx.Client(event_hooks={"request": [record]}, timeout=REQUEST_TIMEOUT)
    client = SiliconFlow(
        base_url=llama_server.base_url, api_key=llama_server.api_key, http_client=http
    )
    agent = _agent(llama_server, weather, client=client, max_turns=2)
    try:
        _drive(agent, "run_sync")  # what the model answers is not the point; a refusal is
    finally:
        agent.close()
        client.close()
        http.close()
    assert len(bodies) == 2
    assert bodies[0]["tool_choice"] == FORCE_WEATHER
    assert bodies[1]["tool_choice"] == "auto"
    replayed = bodies[1]["messages"][1]
    assert replayed["role"] == "assistant"
    assert replayed["content"] == ""
    assert replayed["tool_calls"][0]["function"]["name"] == "get_weather"


def test_hand_built_history_with_null_content_is_replayed_safely(
    llama_server: LlamaServer, weather: WeatherTool
) -> None:
    """A history given as wire dicts, ``content: None`` beside the call as servers answer it,
    goes out with ``content: ""``: this server would answer the ``null`` with a 500."""
    agent = _agent(llama_server, weather, tool_choice=None, max_turns=1)
    try:
        run = agent.run_sync("And in Rome?", messages=_history(None))
    except ModelRequestError:
        raise  # the server refused the request: the test fails
    except AgentRunError as exc:  # the model's answer may hit a limit
        run = exc.result
    finally:
        agent.close()
    assert len(run.turns) == 1  # answered: no 500
    assert run.messages[1]["content"] == ""


def test_token_budget_holds_in_streams(llama_server: LlamaServer, weather: WeatherTool) -> None:
    """No usage in the stream does not switch ``max_total_tokens`` off: the estimate enforces it.

    The first turn's estimate (its prompt alone is ~14 tokens by the 4-characters rule) is past
    the budget, so the check before the second request ends the run."""
    agent = _agent(llama_server, weather, max_total_tokens=10)
    try:
        with pytest.raises(BudgetExceeded) as caught:
            list(agent.stream_sync(QUESTION))
    finally:
        agent.close()
    assert caught.value.budget == "tokens"
    assert caught.value.result.usage.estimated
    assert caught.value.result.usage.requests == 1
    assert weather.cities


# --- the server's own bugs, pinned for docs/compatibility.md -----------------------------------


def _history(content: str | None) -> list[dict[str, Any]]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    return [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": content, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 21}'},
    ]


def test_server_500s_on_null_content_beside_tool_calls(llama_server: LlamaServer) -> None:
    body = {"model": MODEL_ALIAS, "tools": [WEATHER_TOOL], "max_tokens": 8, "temperature": 0}
    refused = llama_server.post("/chat/completions", {**body, "messages": _history(None)})
    assert refused.status_code == 500  # its request validation, reported as a server error
    assert refused.json()["error"]["type"] == "internal_server_error"
    assert "Input should be a valid string" in refused.json()["error"]["message"]
    accepted = llama_server.post("/chat/completions", {**body, "messages": _history("")})
    assert accepted.status_code == 200  # what sfagent sends


def test_server_sends_no_stream_usage_even_when_asked(llama_server: LlamaServer) -> None:
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 8,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    events = _raw_stream(llama_server, body)
    assert events[-1] == {"done": True}
    assert not any("usage" in event for event in events)


def test_template_handler_ignores_required_and_auto(llama_server: LlamaServer) -> None:
    """Without ``--chat_format``, only a named function makes a tool call; "required" and
    "auto" get a plain text answer (HTTP 200), so "required" does not force anything."""
    with _client(llama_server) as client:
        for choice in ("required", "auto"):
            settings = ModelSettings(max_tokens=16, temperature=0, tool_choice=choice)
            answer = client.complete(_ask(tools=[WEATHER_TOOL], settings=settings))
            assert not answer.message.tool_calls, choice
            assert answer.message.content, choice


def test_function_calling_handler_forces_a_named_call_streamed(
    function_calling_server: LlamaServer,
) -> None:
    request = _ask(
        tools=[WEATHER_TOOL],
        settings=ModelSettings(max_tokens=32, temperature=0, tool_choice=FORCE_WEATHER),
    )
    with _client(function_calling_server) as client, client.stream(request) as stream:
        list(stream)
    calls = stream.get_final_response().message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]
    assert isinstance(json.loads(calls[0].function.arguments), dict)


def test_function_calling_handler_500s_on_required(function_calling_server: LlamaServer) -> None:
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "max_tokens": 16,
    }
    raw = function_calling_server.post("/chat/completions", body)
    assert raw.status_code == 500
    assert raw.json()["error"] == {
        "message": "",  # an AssertionError's empty text
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
    settings = ModelSettings(max_tokens=16, temperature=0, tool_choice="required")
    with _client(function_calling_server) as client:
        with pytest.raises(InternalServerError) as caught:
            client.complete(_ask(tools=[WEATHER_TOOL], settings=settings))
        assert caught.value.status_code == 500
        # Streamed, the same failure is a 200 with an empty body.
        with pytest.raises(IncompleteStreamError):
            _drain(client, _ask(tools=[WEATHER_TOOL], settings=settings))


def test_function_calling_handler_breaks_auto_tool_calls_in_streams(
    function_calling_server: LlamaServer,
) -> None:
    settings = ModelSettings(max_tokens=32, temperature=0, tool_choice="auto")
    with _client(function_calling_server) as client:
        answer = client.complete(_ask(tools=[WEATHER_TOOL], settings=settings))
        # Whole, "auto" works: the model chose the tool ...
        assert [call.function.name for call in answer.message.tool_calls or []] == ["get_weather"]
        # ... streamed, the same choice ends the stream before its first event.
        with pytest.raises(IncompleteStreamError) as caught:
            _drain(client, _ask(tools=[WEATHER_TOOL], settings=settings))
    assert "0 chunks" in str(caught.value)


def test_server_cuts_a_running_stream_when_another_request_arrives(
    interrupting_server: LlamaServer,
) -> None:
    """With its default ``--interrupt_requests True``, a second request ends the running stream
    with ``[DONE]`` before any ``finish_reason``, then drops the connection mid-body."""
    server = interrupting_server
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
        "max_tokens": 256,
        "min_tokens": 256,  # llama-cpp-python's own field: no early end of the answer
        "temperature": 0,
        "stream": True,
    }
    short = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    statuses: list[int] = []
    second = threading.Thread(
        target=lambda: statuses.append(server.post("/chat/completions", short).status_code)
    )
    payloads: list[str] = []
    headers = {"Authorization": f"Bearer {server.api_key}"}
    url = server.base_url + "/chat/completions"
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=REQUEST_TIMEOUT) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    payloads.append(line[len("data:") :].strip())
                if len(payloads) == 3 and not second.is_alive() and not statuses:
                    second.start()
    except httpx.RemoteProtocolError:
        pass  # "incomplete chunked read": the connection dropped after [DONE]
    finally:
        second.join(timeout=60)
    assert statuses == [200]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert 3 <= len(chunks) < 256
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks)


def test_error_body_shapes(llama_server: LlamaServer) -> None:
    """401 is FastAPI's ``{"detail"}``; request errors are OpenAI's ``{"error": {...}}``."""
    denied = llama_server.post("/chat/completions", {"messages": []}, key=WRONG_KEY)
    assert denied.status_code == 401
    assert denied.json() == {"detail": "Invalid API key"}
    overflow = llama_server.post(
        "/chat/completions",
        {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": _too_long()}]},
    )
    assert overflow.status_code == 400
    error = overflow.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
