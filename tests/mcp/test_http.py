"""MCP servers over streamable HTTP on loopback: the notes server in a subprocess, every driver,
headers, cancellation, and a server that is not there."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sfagent import Agent
from sfagent.exceptions import UserError
from sfagent.mcp import MCPConnectionError, MCPServerHTTP
from sfagent.offline.replies import Reply, ScriptedToolCall
from sfagent.testing import ScriptedModel
from tests.mcp.conftest import TOKEN
from tests.run.agent_support import DRIVERS, drive, tool_contents


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_driver_calls_the_servers_tools(driver: str, http_url: str) -> None:
    server = MCPServerHTTP(http_url, headers={"Authorization": TOKEN}, prefix="notes")
    model = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    ScriptedToolCall("notes_add", {"a": 40, "b": 2}),
                    ScriptedToolCall("notes_refuse", {"reason": "no"}),
                ]
            ),
            "done",
        ]
    )
    outcome = drive(Agent(model, tools=[server]), driver, "go")
    assert tool_contents(outcome.result) == [
        '{"result":42}',
        "Error: tool 'notes_refuse' reported an error: Error executing tool refuse: refused: no",
    ]
    assert not server.connected


def test_cancelling_a_call_leaves_the_session_usable(http_url: str) -> None:
    server = MCPServerHTTP(http_url, headers={"Authorization": TOKEN})

    async def main() -> object:
        async with server:
            slow = asyncio.ensure_future(server.call_tool("slow", {"seconds": 30}))
            await asyncio.sleep(0.3)  # a bound on the wait, not a wait for the result
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            result = await server.call_tool("add", {"a": 1, "b": 1})
            return result.structured_content

    assert asyncio.run(main()) == {"result": 2}
    assert server.starts == 1


def test_a_wrong_token_is_a_typed_error_that_does_not_show_it(http_url: str) -> None:
    server = MCPServerHTTP(http_url, headers={"Authorization": "Bearer sk-secret-42"})
    with pytest.raises(MCPConnectionError) as raised:
        server.connect()
    server.close()
    assert "sk-secret-42" not in str(raised.value)
    assert "sk-secret-42" not in repr(server)


def test_nothing_listening_is_a_typed_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = MCPServerHTTP(f"http://127.0.0.1:{port}/mcp", connect_timeout=5)
    with pytest.raises(MCPConnectionError, match=r"MCP server '127\.0\.0\.1'"):
        server.connect()
    server.close()


def test_bad_urls_and_headers_are_typed_errors() -> None:
    with pytest.raises(UserError, match="url"):
        MCPServerHTTP("ftp://example.invalid/mcp")
    with pytest.raises(UserError, match="url"):
        MCPServerHTTP("not a url")
    with pytest.raises(UserError, match="headers"):
        MCPServerHTTP("http://127.0.0.1:1/mcp", headers={"X": 1})  # type: ignore[dict-item]
