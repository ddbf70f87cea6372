"""The key never reaches a session file: the hygiene suite's conversation, over HTTP, stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sfagent import Agent, SiliconFlow
from sfagent.events import RunFinished
from sfagent.exceptions import AgentRunError
from sfagent.sessions import Session, SQLiteSessionStore
from sfagent.testing import LoopbackServer
from tests.test_secret_hygiene import (
    FAST,
    KEY,
    MODEL,
    NEEDLES,
    conversation,
    echoing_failure,
    explode,
    lookup,
)

DRIVERS = ["run_sync", "run", "stream_sync", "stream"]


def once(agent: Agent[Any, Any], driver: str, prompt: str, session: Session) -> None:
    try:
        if driver == "run_sync":
            agent.run_sync(prompt, session=session)
        elif driver == "stream_sync":
            assert isinstance(list(agent.stream_sync(prompt, session=session))[-1], RunFinished)
        elif driver == "run":
            asyncio.run(agent.run(prompt, session=session))
        else:

            async def collect() -> None:
                async for _event in agent.stream(prompt, session=session):
                    pass

            asyncio.run(collect())
    except AgentRunError:
        pass  # the echoing failure: its completed part is stored, and checked below


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_key_never_reaches_the_session_file(
    driver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    replies = [*conversation(), echoing_failure(driver.startswith("stream"))]
    session = SQLiteSessionStore(tmp_path / "s.db").session("c")
    with LoopbackServer(replies, api_key=KEY) as server:
        if driver.endswith("_sync"):
            with (
                SiliconFlow(base_url=server.base_url, retry=FAST) as client,
                Agent(MODEL, client=client, tools=[lookup, explode], tool_retries=5) as agent,
            ):
                once(agent, driver, "Weather in Paris?", session)
                once(agent, driver, "And now?", session)
        else:
            agent = Agent(MODEL, base_url=server.base_url, tools=[lookup, explode], tool_retries=5)
            once(agent, driver, "Weather in Paris?", session)
            once(agent, driver, "And now?", session)
            agent.close()
    stored = session.messages()
    assert [m.role for m in stored][:2] == ["user", "assistant"]  # type: ignore[attr-defined]
    assert stored[-1].content == "And now?"  # type: ignore[attr-defined]  # the failed turn's prompt
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, (path.name, needle)


def test_a_key_given_only_to_the_client_never_reaches_the_session_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfagent import tool
    from sfagent.testing import Reply, ScriptedToolCall

    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    client_key = "sk-only-the-client-knows-0123456789"

    @tool
    def whoami() -> str:
        """Say which key this is."""
        return f"the key is {client_key}"

    replies = [Reply(tool_calls=[ScriptedToolCall("whoami", {})]), Reply(text="done")]
    session = SQLiteSessionStore(tmp_path / "s.db").session("c")
    with (
        LoopbackServer(replies, api_key=client_key) as server,
        SiliconFlow(api_key=client_key, base_url=server.base_url) as client,
        Agent(MODEL, client=client, tools=[whoami]) as agent,
    ):
        assert agent.run_sync("who?", session=session).output == "done"
    assert "the key is ***" in str(session.messages()[2].content)  # type: ignore[attr-defined]
    for path in tmp_path.iterdir():
        assert b"only-the-client" not in path.read_bytes(), path.name
