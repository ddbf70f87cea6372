"""MCP servers over stdio, end to end: a real server process (`notes_server.py`), an agent on a
scripted model, every driver."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sfagent import Agent
from sfagent.exceptions import BudgetExceeded, UserError
from sfagent.mcp import MCPConnectionError, MCPServerStdio, MCPTimeoutError
from sfagent.offline.replies import Reply, ScriptedToolCall
from sfagent.testing import ScriptedModel
from tests.mcp.conftest import wait_for
from tests.run.agent_support import DRIVERS, drive, tool_contents


def calls(*pairs: tuple[str, dict[str, Any]]) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(name, args) for name, args in pairs])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_driver_calls_the_servers_tools(driver: str, stdio_server: MCPServerStdio) -> None:
    model = ScriptedModel(
        [
            calls(
                ("add", {"a": 2, "b": 3}),
                ("save_note", {"title": "shop", "text": "milk", "tags": ["home"]}),
                ("refuse", {"reason": "read-only"}),
            ),
            "done",
        ]
    )
    outcome = drive(Agent(model, tools=[stdio_server]), driver, "go")
    assert tool_contents(outcome.result) == [
        '{"result":5}',
        '{"result":"saved \'shop\' with tags home"}',
        "Error: tool 'refuse' reported an error: Error executing tool refuse: refused: read-only",
    ]
    sent = [t["function"]["name"] for t in model.requests[0].tools or ()]
    assert sent == ["add", "save_note", "annotate", "refuse", "slow", "pid", "crash", "grow"]
    assert not stdio_server.connected  # the agent started it, so its close stopped it
    assert stdio_server.starts == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_call_past_its_timeout_is_cancelled_and_the_server_serves_the_next(
    driver: str, server_log: Path, tmp_path: Path
) -> None:
    server = MCPServerStdio(
        sys.executable,
        [str(Path(__file__).parent / "notes_server.py"), "--log", str(server_log)],
        timeout=1.0,
    )
    model = ScriptedModel(
        [calls(("slow", {"seconds": 30})), calls(("add", {"a": 1, "b": 1})), "ok"]
    )
    with server:  # held open: both calls go to one process
        outcome = drive(Agent(model, tools=[server]), driver, "go")
        assert server.connected
    first, second = tool_contents(outcome.result)
    assert first.startswith("Error: tool 'slow'")
    assert second == '{"result":2}'
    assert server.starts == 1
    assert wait_for(lambda: "cancelled slow" in _read(server_log))


def test_a_request_past_its_timeout_is_a_typed_error(server_log: Path) -> None:
    server = MCPServerStdio(
        sys.executable,
        [str(Path(__file__).parent / "notes_server.py"), "--log", str(server_log)],
        timeout=0.5,
    )
    with server:
        with pytest.raises(
            MCPTimeoutError, match=r"tools/call 'slow' did not finish within 0\.5 s"
        ):
            server.call_tool_sync("slow", {"seconds": 30})
        assert server.call_tool_sync("add", {"a": 1, "b": 1}).structured_content == {"result": 2}
    assert wait_for(lambda: "cancelled slow" in _read(server_log))


def test_cancelling_an_awaited_call_cancels_only_that_call(
    stdio_server: MCPServerStdio, server_log: Path
) -> None:
    async def main() -> int:
        started = _read(server_log).count("started slow")
        slow = asyncio.ensure_future(stdio_server.call_tool("slow", {"seconds": 30}))
        for _ in range(500):  # until the server runs the call (at most 10 s)
            if _read(server_log).count("started slow") > started:
                break
            await asyncio.sleep(0.02)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        result = await stdio_server.call_tool("add", {"a": 20, "b": 22})
        return int(result.structured_content["result"])

    assert asyncio.run(main()) == 42
    # A second event loop, same server: the connection does not belong to a caller's loop.
    assert asyncio.run(main()) == 42
    assert stdio_server.starts == 1
    assert wait_for(lambda: _read(server_log).count("cancelled slow") == 2)


# With a timeout the driver runs the call in a task of its own: cancelling the run must
# cancel that task too, not leave the request on until the timeout.
@pytest.mark.parametrize("timeout", [None, 20.0], ids=["none", "20s"])
def test_cancelling_a_run_mid_call_cancels_that_call_and_the_next_run_is_served(
    timeout: float | None, server_log: Path
) -> None:
    script = str(Path(__file__).parent / "notes_server.py")
    server = MCPServerStdio(sys.executable, [script, "--log", str(server_log)], timeout=timeout)
    model = ScriptedModel(
        [calls(("slow", {"seconds": 30})), calls(("add", {"a": 2, "b": 2})), "ok"]
    )
    agent = Agent(model, tools=[server])

    async def main() -> list[str]:
        async with agent:
            first = asyncio.ensure_future(agent.run("go"))
            assert await _until(lambda: "started slow" in _read(server_log))
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            again = await agent.run("again")
            # Seen by the server while it runs (closing it would cancel the call too).
            assert await _until(lambda: "cancelled slow" in _read(server_log))
            assert server.connected
            return tool_contents(again)

    try:
        assert asyncio.run(main()) == ['{"result":4}']
        assert server.starts == 1  # the cancelled run did not cost the connection
    finally:
        server.close()


def test_a_crash_a_restart_and_a_close_log_no_closing_error(
    stdio_server: MCPServerStdio, caplog: pytest.LogCaptureFixture
) -> None:
    # Leaving the transport from another task than the one that entered it ("exit cancel
    # scope in a different task") would be logged by the owner task; nothing should be.
    model = ScriptedModel([calls(("crash", {})), calls(("add", {"a": 1, "b": 2})), "ok"])
    with caplog.at_level(logging.DEBUG, logger="sfagent"):
        with Agent(model, tools=[stdio_server]) as agent:
            result = agent.run_sync("go")
        assert stdio_server.starts == 2
        assert not stdio_server.connected
    assert tool_contents(result)[1] == '{"result":3}'
    problems = [r.getMessage() for r in caplog.records if "closing raised" in r.getMessage()]
    assert problems == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_runs_deadline_cuts_an_mcp_call_short(
    stdio_server: MCPServerStdio, server_log: Path
) -> None:
    model = ScriptedModel([calls(("slow", {"seconds": 30})), "unused"])
    agent = Agent(model, tools=[stdio_server], time_limit=1.5)

    async def main() -> None:
        async with agent:
            await agent.run("go")

    with pytest.raises(BudgetExceeded) as raised:
        asyncio.run(main())
    assert raised.value.result.messages[-1]["content"] == (
        "Error: tool 'slow' was cut short: the run's time budget ran out."
    )
    assert wait_for(lambda: "cancelled slow" in _read(server_log))
    assert stdio_server.call_tool_sync("add", {"a": 1, "b": 2}).structured_content == {"result": 3}


@pytest.mark.parametrize("driver", ["run_sync", "stream_sync"])
def test_the_runs_deadline_cuts_an_mcp_call_short_in_a_blocking_run(
    driver: str, stdio_server: MCPServerStdio, server_log: Path
) -> None:
    model = ScriptedModel([calls(("slow", {"seconds": 30})), "unused"])
    with stdio_server:  # held open: only the deadline can cancel the call, not a close
        with pytest.raises(BudgetExceeded) as raised:
            drive(Agent(model, tools=[stdio_server], time_limit=1.5), driver, "go")
        assert raised.value.budget == "time"
        assert raised.value.result.messages[-1]["content"] == (
            "Error: tool 'slow' was cut short: the run's time budget ran out."
        )
        # Cancelled at the run's deadline, well before the server's own 20 s timeout.
        assert wait_for(lambda: "cancelled slow" in _read(server_log), timeout=10.0)
        assert stdio_server.connected
        assert stdio_server.call_tool_sync("add", {"a": 1, "b": 2}).structured_content == {
            "result": 3
        }
    assert stdio_server.starts == 1


def slow_starting(seconds: float, **options: Any) -> MCPServerStdio:
    """The notes server, taking `seconds` to start (beside the interpreter's own start)."""
    script = str(Path(__file__).parent / "notes_server.py")
    return MCPServerStdio(sys.executable, [script, "--start-delay", str(seconds)], **options)


def run_to_the_end(agent: Agent[Any], driver: str) -> BaseException | None:
    """Run `agent` with `driver` and return what it raised (closing the agent is not timed)."""
    try:
        if driver == "run_sync":
            agent.run_sync("go")
        elif driver == "stream_sync":
            list(agent.stream_sync("go"))
        elif driver == "run":
            asyncio.run(agent.run("go"))
        else:

            async def collect() -> None:
                async for _ in agent.stream("go"):
                    pass

            asyncio.run(collect())
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_slow_to_start_is_bounded_by_the_runs_time_limit(driver: str) -> None:
    server = slow_starting(10.0, connect_timeout=30.0)
    model = ScriptedModel(["never asked"])
    agent = Agent(model, tools=[server], time_limit=0.3)
    began = time.monotonic()
    raised = run_to_the_end(agent, driver)
    took = time.monotonic() - began
    agent.close()
    server.close()
    assert isinstance(raised, BudgetExceeded), raised
    assert raised.budget == "time"
    assert "the run took more than 0.3 s" in str(raised)
    assert model.requests == []
    assert took < 5.0  # at its deadline: well before the server could start (10 s and more)


def test_starting_a_server_in_a_run_does_not_block_the_event_loop() -> None:
    server = slow_starting(2.0, connect_timeout=30.0)
    model = ScriptedModel([calls(("add", {"a": 1, "b": 2})), "ok"])
    agent = Agent(model, tools=[server])

    async def main() -> tuple[list[str], float, int]:
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)
        async with agent:
            result = await agent.run("go")
        ticker.cancel()
        return tool_contents(result), max(gaps), len(gaps)

    contents, longest, ticks = asyncio.run(main())
    assert contents == ['{"result":3}']
    # The start takes over 2 s: a blocked loop would not tick meanwhile.
    assert longest < 1.0
    assert ticks > 20


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_crash_mid_call_is_a_typed_error_and_the_next_call_restarts_it(
    driver: str, stdio_server: MCPServerStdio
) -> None:
    model = ScriptedModel([calls(("crash", {})), calls(("add", {"a": 1, "b": 2})), "ok"])
    outcome = drive(Agent(model, tools=[stdio_server]), driver, "go")
    crashed, added = tool_contents(outcome.result)
    assert crashed.startswith(
        "Error: tool 'crash' failed: MCPServerCrashed: MCP server 'notes_server'"
    )
    assert "started again on next use" in crashed
    assert added == '{"result":3}'
    assert stdio_server.starts == 2


def test_a_server_that_died_while_idle_is_restarted_without_an_error(
    stdio_server: MCPServerStdio,
) -> None:
    with stdio_server:
        pid = stdio_server.call_tool_sync("pid").structured_content["result"]
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not stdio_server.connected)
        model = ScriptedModel([calls(("add", {"a": 1, "b": 2})), "ok"])
        with Agent(model, tools=[stdio_server]) as agent:
            result = agent.run_sync("go")
        assert tool_contents(result) == ['{"result":3}']
        assert stdio_server.starts == 2
        assert stdio_server.call_tool_sync("pid").structured_content["result"] != pid


def test_a_changed_tool_list_is_read_again(stdio_server: MCPServerStdio) -> None:
    model = ScriptedModel([calls(("grow", {})), "ok", calls(("echo", {"text": "hi"})), "ok"])
    agent = Agent(model, tools=[stdio_server])
    with stdio_server, agent:
        listed = stdio_server.tools_version
        first = agent.run_sync("go")
        # The server announced the change during the call; the new list is read on its own.
        assert wait_for(lambda: stdio_server.tools_version > listed)
        second = agent.run_sync("go")
    assert tool_contents(first) == ['{"result":"grown"}']
    assert tool_contents(second) == ['{"result":"hi"}']
    assert "echo" not in [t["function"]["name"] for t in model.requests[0].tools or ()]
    assert "echo" in [t["function"]["name"] for t in model.requests[2].tools or ()]
    assert stdio_server.starts == 1


def test_resources_and_prompts_from_python(stdio_server: MCPServerStdio) -> None:
    with stdio_server:
        [content] = stdio_server.read_resource_sync("notes://today")
        assert content.text == "buy milk"  # type: ignore[union-attr]
        [template_prompt] = stdio_server.list_prompts_sync()
        assert template_prompt.name == "summarize"
        prompt = stdio_server.get_prompt_sync("summarize", {"title": "today"})
        assert prompt.messages[0].content.text == "Summarize the note 'today': buy milk"  # type: ignore[union-attr]
        assert stdio_server.list_resources_sync() == []  # a template only, no fixed resources

        async def main() -> str:
            [again] = await stdio_server.read_resource("notes://today")
            listed = await stdio_server.list_prompts()
            got = await stdio_server.get_prompt("summarize", {"title": "today"})
            assert [p.name for p in listed] == ["summarize"]
            assert got.messages
            return again.text  # type: ignore[union-attr]

        assert asyncio.run(main()) == "buy milk"


def test_with_closes_the_process_and_an_agent_leaves_a_held_server_open(
    stdio_server: MCPServerStdio,
) -> None:
    model = ScriptedModel([calls(("pid", {})), "ok"])
    with stdio_server:
        with Agent(model, tools=[stdio_server]) as agent:
            result = agent.run_sync("go")
        assert stdio_server.connected  # held by the `with`: the agent's close left it
        pid = int(tool_contents(result)[0].split(":")[1].rstrip("}"))
        assert alive(pid)
    assert not stdio_server.connected
    assert wait_for(lambda: not alive(pid))


def test_async_with_connects_without_blocking_and_closes(stdio_server: MCPServerStdio) -> None:
    async def main() -> list[str]:
        async with stdio_server:
            assert stdio_server.connected
            return [t.name for t in stdio_server.tools]

    assert "add" in asyncio.run(main())
    assert not stdio_server.connected


def test_strict_where_the_server_schema_allows(
    stdio_server: MCPServerStdio, tmp_path: Path
) -> None:
    server = MCPServerStdio(
        sys.executable,
        [str(Path(__file__).parent / "notes_server.py")],
        strict=True,
        prefix="notes",
        include=["save_note", "annotate"],
    )
    model = ScriptedModel(
        [calls(("notes_save_note", {"title": "a", "text": "b", "tags": None})), "ok"]
    )
    with Agent(model, tools=[server]) as agent:
        result = agent.run_sync("go")
    by_name = {t["function"]["name"]: t["function"] for t in model.requests[0].tools or ()}
    assert sorted(by_name) == ["notes_annotate", "notes_save_note"]
    assert by_name["notes_save_note"]["strict"] is True
    assert "strict" not in by_name["notes_annotate"]  # a free-form mapping stays loose
    assert tool_contents(result) == ['{"result":"saved \'a\'"}']


def test_a_command_that_cannot_start_is_a_typed_error() -> None:
    missing = MCPServerStdio("/nonexistent/mcp-server", connect_timeout=5)
    with pytest.raises(MCPConnectionError, match="could not start"):
        missing.connect()
    quits = MCPServerStdio(sys.executable, ["-c", "pass"], name="quits", connect_timeout=5)
    with pytest.raises(MCPConnectionError, match="MCP server 'quits'"):
        quits.connect()
    for server in (missing, quits):
        server.close()


def test_a_server_that_never_answers_times_out_and_is_stopped() -> None:
    silent = MCPServerStdio(
        sys.executable, ["-c", "import time; time.sleep(60)"], name="silent", connect_timeout=0.5
    )
    with pytest.raises(MCPConnectionError, match=r"did not start within 0\.5 s"):
        Agent(ScriptedModel(["x"]), tools=[silent]).run_sync("go")
    silent.close()


def test_bad_options_are_typed_errors() -> None:
    here = sys.executable
    with pytest.raises(UserError, match="command"):
        MCPServerStdio("")
    with pytest.raises(UserError, match="args"):
        MCPServerStdio(here, "server.py")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="prefix"):
        MCPServerStdio(here, prefix="bad prefix")
    with pytest.raises(UserError, match="timeout"):
        MCPServerStdio(here, timeout=0)
    with pytest.raises(UserError, match="connect_timeout"):
        MCPServerStdio(here, connect_timeout=-1)
    with pytest.raises(UserError, match="exclude"):
        MCPServerStdio(here, exclude="add")
    with pytest.raises(UserError, match="env"):
        MCPServerStdio(here, env={"A": 1})  # type: ignore[dict-item]


async def _until(check: Any, timeout: float = 10.0) -> bool:
    """Poll `check()` on the running loop until true or `timeout` seconds pass."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""
