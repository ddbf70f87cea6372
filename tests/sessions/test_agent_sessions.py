"""`Agent` runs with `session=`: every driver loads the history and stores what the run added."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sfagent import Agent, tool
from sfagent.events import Event, RunFinished
from sfagent.exceptions import MaxTurnsExceeded, ModelRequestError, UserError
from sfagent.messages import AssistantMessage, MessageBase, UserMessage
from sfagent.result import RunResult
from sfagent.sessions import (
    MemorySessionStore,
    Session,
    SessionError,
    SessionStoreError,
    SQLiteSessionStore,
    TrimByCount,
    history_problems,
)
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall

DRIVERS = ["run_sync", "run", "stream_sync", "stream"]
KEY = "sk-session-canary-0123456789"


@tool
def lookup(city: str) -> str:
    """Look up the weather.

    Args:
        city: City name.
    """
    return f"{city}: sunny"


@tool
def leak(city: str) -> str:
    """A tool that echoes the key (a careless one).

    Args:
        city: City name.
    """
    return f"{city}; key={KEY}"


def drive(agent: Agent[Any, Any], driver: str, prompt: str | None, **kwargs: Any) -> RunResult[Any]:
    """One run through `driver` (the agent stays open for the next)."""
    if driver == "run_sync":
        return agent.run_sync(prompt, **kwargs)
    if driver == "run":
        return asyncio.run(agent.run(prompt, **kwargs))
    if driver == "stream_sync":
        events: list[Event] = list(agent.stream_sync(prompt, **kwargs))
    else:

        async def collect() -> list[Event]:
            return [event async for event in agent.stream(prompt, **kwargs)]

        events = asyncio.run(collect())
    last = events[-1]
    assert isinstance(last, RunFinished)
    return last.result


def roles(messages: Sequence[MessageBase | dict[str, Any]]) -> list[str]:
    return [m["role"] if isinstance(m, dict) else m.role for m in messages]  # type: ignore[attr-defined]


def weather_model() -> ScriptedModel:
    return ScriptedModel(
        [
            Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Paris"})]),
            "Paris is sunny.",
            "You asked about Paris.",
        ]
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemorySessionStore()
    return SQLiteSessionStore(tmp_path / "sessions.db")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_session_carries_the_conversation_from_run_to_run(driver: str, store: Any) -> None:
    model = weather_model()
    session = store.session("chat-1")
    with Agent(model, tools=[lookup], instructions="Be brief.") as agent:
        first = drive(agent, driver, "Weather in Paris?", session=session)
        second = drive(agent, driver, "What did I ask?", session=session)
    assert first.output == "Paris is sunny."
    assert second.output == "You asked about Paris."
    stored = session.messages()
    # The agent's instructions are the agent's, not the conversation's: never stored.
    assert roles(stored) == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert [m.to_wire() for m in stored] == first.messages[1:] + second.messages[-2:]
    sent = model.requests[2].messages
    assert roles(sent) == ["system", *roles(stored[:4]), "user"]
    assert history_problems(stored) == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failed_run_stores_its_completed_part(driver: str, store: Any) -> None:
    model = ScriptedModel(
        [
            Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Rome"})]),
            Reply.error(500, "the server fell over"),
            "Rome is sunny.",  # the continuation, with no new prompt
        ]
    )
    session = store.session("chat-2")
    with Agent(model, tools=[lookup]) as agent:
        with pytest.raises(ModelRequestError) as caught:
            drive(agent, driver, "Weather in Rome?", session=session)
        assert roles(session.messages()) == ["user", "assistant", "tool"]
        assert [m.to_wire() for m in session.messages()] == caught.value.result.messages
        # Nothing was lost: the run goes on from the stored tool result.
        resumed = drive(agent, driver, None, session=session)
    assert resumed.output == "Rome is sunny."
    assert roles(session.messages()) == ["user", "assistant", "tool", "assistant"]


def test_a_limit_stores_the_run_so_far(store: Any) -> None:
    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "Oslo"})])])
    session = store.session("limited")
    with (
        Agent(model, tools=[lookup], max_turns=1) as agent,
        pytest.raises(MaxTurnsExceeded),
    ):
        agent.run_sync("Weather in Oslo?", session=session)
    assert roles(session.messages()) == ["user", "assistant", "tool"]


def test_trimming_cuts_what_is_sent_not_what_is_stored(store: Any) -> None:
    model = ScriptedModel(["Fine."])
    earlier = [
        UserMessage(content="Weather in Paris?"),
        AssistantMessage(
            tool_calls=[{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}]  # type: ignore[list-item]
        ),
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        AssistantMessage(content="Sunny."),
    ]
    store.session("long").append(earlier)
    session = store.session("long", trim=TrimByCount(2))
    with Agent(model, instructions="Be brief.") as agent:
        agent.run_sync("And tomorrow?", session=session)
    sent = model.requests[0].messages
    # Two messages would split the call from its answer: only the last answer is sent.
    assert roles(sent) == ["system", "assistant", "user"]
    assert len(session.messages()) == 6


def test_a_stored_system_message_replaces_the_agents_instructions(store: Any) -> None:
    model = ScriptedModel(["Ahoy."])
    session = store.session("pirate")
    session.append([{"role": "system", "content": "Talk like a pirate."}])
    with Agent(model, instructions="Be brief.") as agent:
        agent.run_sync("Hello", session=session)
    assert [m.content for m in model.requests[0].messages] == ["Talk like a pirate.", "Hello"]  # type: ignore[union-attr]
    assert roles(session.messages()) == ["system", "user", "assistant"]


def test_messages_and_session_together_are_refused() -> None:
    session = MemorySessionStore().session("x")
    with Agent(ScriptedModel([])) as agent:
        with pytest.raises(SessionError, match="not both"):
            agent.run_sync("hi", messages=[{"role": "user", "content": "earlier"}], session=session)
        with pytest.raises(SessionError, match="must be a Session"):
            agent.run_sync("hi", session="x")  # type: ignore[arg-type]
        with pytest.raises(UserError, match="not both"):
            asyncio.run(agent.run("hi", messages=[UserMessage(content="a")], session=session))


class BrokenStore(MemorySessionStore):
    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        raise SessionStoreError("disk full", conversation_id=conversation_id)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_store_that_fails_to_save_hands_back_the_run(driver: str) -> None:
    session = BrokenStore().session("x")
    with Agent(ScriptedModel(["Answer."])) as agent, pytest.raises(SessionStoreError) as caught:
        drive(agent, driver, "hi", session=session)
    assert caught.value.conversation_id == "x"
    assert caught.value.result.output == "Answer."  # the answer is not lost with the store


@pytest.mark.parametrize("env", [False, True])
def test_the_key_is_never_stored(
    env: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env:
        monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("leak", {"city": "Paris"})]), "ok"])
    store = SQLiteSessionStore(tmp_path / "s.db")
    session = store.session("leaky")
    with Agent(model, tools=[leak], api_key=None if env else KEY) as agent:
        result = agent.run_sync("go", session=session)
    assert KEY in result.to_json()  # the run itself saw it (the tool returned it)
    stored = [m.to_wire() for m in session.messages()]
    assert "Paris; key=***" in [m.get("content") for m in stored]
    for path in tmp_path.iterdir():  # the database and its write-ahead log
        assert b"canary" not in path.read_bytes(), path


def test_concurrent_runs_on_one_conversation_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    runs, barrier = 6, threading.Barrier(6)
    errors: list[BaseException] = []

    def chat(n: int) -> None:
        model = ScriptedModel(
            [Reply(tool_calls=[ScriptedToolCall("lookup", {"city": f"c{n}"})]), f"done {n}"]
        )
        try:
            with Agent(model, tools=[lookup]) as agent:
                barrier.wait(timeout=30)
                agent.run_sync(f"run {n}", session=SQLiteSessionStore(path).session("same"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(n,)) for n in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    stored = SQLiteSessionStore(path).session("same").messages()
    assert len(stored) == 4 * runs
    blocks = [stored[i : i + 4] for i in range(0, len(stored), 4)]
    for block in blocks:  # each run's messages stored whole, in one piece
        assert roles(block) == ["user", "assistant", "tool", "assistant"]
        n = str(block[0].content).split()[-1]  # type: ignore[attr-defined]
        assert block[-1].content == f"done {n}"  # type: ignore[attr-defined]
    assert history_problems(stored) == []


def test_a_session_is_checked_when_made(tmp_path: Path) -> None:
    store = MemorySessionStore()
    with pytest.raises(SessionError, match="empty"):
        store.session("  ")
    with pytest.raises(SessionError, match="at most 512"):
        store.session("x" * 513)
    with pytest.raises(SessionError, match="is text"):
        Session(store, 42)  # type: ignore[arg-type]
    with pytest.raises(SessionError, match="must be a SessionStore"):
        Session(object(), "x")  # type: ignore[arg-type]
    with pytest.raises(SessionError, match="must be a Trimmer"):
        store.session("x", trim=5)  # type: ignore[arg-type]
    assert "trim=TrimByCount(3)" in repr(store.session("x", trim=TrimByCount(3)))
