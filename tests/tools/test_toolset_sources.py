"""A `ToolSet` holding a `ToolSource` (what an MCP server is to it): listed lazily, again when
the source's version moves, checked like its own tools, released by the agent's close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from sfagent import Agent, Tool, ToolSet, tool
from sfagent.exceptions import ToolDefinitionError, UserError
from sfagent.offline.replies import Reply, ScriptedToolCall
from sfagent.testing import ScriptedModel
from sfagent.tools.toolset import ToolSource


def make(name: str) -> Tool[..., Any]:
    def fn() -> str:
        return name

    return tool(fn, name=name)


class Source:
    """A source whose tools the test sets; counts its listings and releases."""

    def __init__(self, *names: str, requires_approval: bool = False) -> None:
        self.tools = [make(n) for n in names]
        self.tools_version = 0
        self.requires_approval = requires_approval
        self.listed = 0
        self.released = 0

    def source_tools(self) -> Sequence[Tool[..., Any]]:
        if self.listed == 0:
            self.tools_version += 1  # a first listing moves the version, as a server's does
        self.listed += 1
        return self.tools

    def release(self) -> None:
        self.released += 1

    def change(self, *names: str) -> None:
        self.tools = [make(n) for n in names]
        self.tools_version += 1

    def __repr__(self) -> str:
        return "Source()"


@tool
def local() -> str:
    """A local tool."""
    return "local"


def test_a_source_is_a_tool_source() -> None:
    assert isinstance(Source(), ToolSource)


def test_nothing_is_listed_until_the_set_is_read() -> None:
    source = Source("a", "b")
    tools = ToolSet([local, source])
    assert source.listed == 0
    assert repr(tools) == "ToolSet(['local', 'Source()'])"
    assert tools.names == ["local", "a", "b"]
    assert [s["function"]["name"] for s in tools.request_tools] == ["local", "a", "b"]
    assert tools.get("a") is source.tools[0]
    assert "b" in tools
    assert len(tools) == 3
    assert source.listed == 1  # read many times, listed once


def test_a_changed_list_is_read_again() -> None:
    source = Source("a")
    tools = ToolSet([source])
    first = tools.request_tools
    source.change("a", "c")
    assert tools.names == ["a", "c"]
    assert tools.request_tools is not first
    assert source.listed == 2


def test_a_duplicate_name_from_a_source_is_a_typed_error_naming_the_fix() -> None:
    tools = ToolSet([local, Source("local")])
    with pytest.raises(ToolDefinitionError, match=r"duplicate tool name 'local'.*prefix"):
        _ = tools.names


def test_more_than_128_tools_with_a_source_is_a_typed_error() -> None:
    tools = ToolSet([Source(*(f"t{i}" for i in range(129)))])
    with pytest.raises(ToolDefinitionError, match="128"):
        _ = tools.request_tools


def test_a_source_added_twice_is_refused() -> None:
    source = Source()
    with pytest.raises(ToolDefinitionError, match="added twice"):
        ToolSet([source, source])


def test_approval_is_checked_without_listing() -> None:
    source = Source("a", requires_approval=True)
    with pytest.raises(UserError, match=r"Source\(\)"):
        Agent(ScriptedModel([]), tools=[source])
    assert source.listed == 0


def test_an_agent_runs_a_sources_tools_and_releases_it_on_close() -> None:
    source = Source("a")
    model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("a")]), "done"])
    agent = Agent(model, tools=[local, source])
    assert source.listed == 0
    assert repr(agent) == "Agent(model='scripted', tools=['local', 'Source()'])"
    with agent:
        result = agent.run_sync("go")
    assert [m["content"] for m in result.messages if m["role"] == "tool"] == ["a"]
    assert source.released == 1


def test_an_async_agent_releases_its_sources_too() -> None:
    source = Source("a")

    async def main() -> None:
        async with Agent(ScriptedModel(["hi"]), tools=[source]) as agent:
            await agent.run("go")

    asyncio.run(main())
    assert source.released == 1
