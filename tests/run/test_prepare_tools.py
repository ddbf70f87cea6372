"""`prepare_tools`: the tools each request offers, chosen per turn, under every driver."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

import pytest

from sfagent import RunContext, Tool, ToolSet, tool
from sfagent.agent import Agent
from sfagent.exceptions import ToolDefinitionError, ToolSelectionError, UserError
from sfagent.settings import ModelSettings
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall
from tests.run.agent_support import DRIVERS, drive, tool_contents


@tool
def login(user: str) -> str:
    """Log in.

    Args:
        user: Who.
    """
    return f"logged in as {user}"


@tool
def fetch(path: str) -> str:
    """Fetch a file.

    Args:
        path: Which.
    """
    return f"contents of {path}"


@tool
def delete(path: str) -> str:
    """Delete a file.

    Args:
        path: Which.
    """
    raise AssertionError("never offered, never run")


def call(name: str, arguments: dict[str, Any]) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(name, arguments)])


def offered(model: ScriptedModel) -> list[list[str] | None]:
    """The tool names each request carried, in order."""
    out: list[list[str] | None] = []
    for request in model.requests:
        tools = request.to_body().get("tools")
        out.append(None if tools is None else [t["function"]["name"] for t in tools])
    return out


def after_login(ctx: RunContext[Any], tools: ToolSet) -> list[str]:
    """Offer `fetch` only once `login` has answered; never `delete`."""
    logged_in = any(
        m["role"] == "tool" and m["content"].startswith("logged in") for m in ctx.messages
    )
    return ["login", "fetch"] if logged_in else ["login"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_tool_is_enabled_only_after_another_ran(driver: str) -> None:
    model = ScriptedModel(
        [call("login", {"user": "ada"}), call("fetch", {"path": "a.txt"}), "done"]
    )
    agent = Agent(model, tools=[login, fetch, delete], prepare_tools=after_login)
    result = drive(agent, driver, "Get a.txt").result
    assert result.output == "done"
    assert offered(model) == [["login"], ["login", "fetch"], ["login", "fetch"]]
    assert tool_contents(result) == ["logged in as ada", "contents of a.txt"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_call_to_a_tool_not_offered_is_answered_as_an_unknown_one(driver: str) -> None:
    model = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    ScriptedToolCall("delete", {"path": "a"}),
                    ScriptedToolCall("nonexistent", {}),
                ]
            ),
            "ok",
        ]
    )
    agent = Agent(model, tools=[login, fetch, delete], prepare_tools=after_login)
    result = drive(agent, driver, "Delete a").result
    assert tool_contents(result) == [
        "Error: there is no tool named 'delete'. Available tools: login.",
        "Error: there is no tool named 'nonexistent'. Available tools: login.",
    ]
    record = result.turns[0].tool_calls[0]
    assert record.error == tool_contents(result)[0]
    assert result.usage.tool_calls == 0


def test_an_agent_may_hold_more_than_128_tools_with_a_hook() -> None:
    many = [Tool(lambda: "x", name=f"t{i}") for i in range(300)]
    with pytest.raises(ToolDefinitionError, match=r"at most 128 tools.*prepare_tools"):
        Agent(ScriptedModel([]), tools=many)

    def a_few(ctx: RunContext[Any], tools: ToolSet) -> Iterable[Tool[..., Any]]:
        return [t for t in tools if t.name.endswith("7")]  # 30 of them

    model = ScriptedModel([call("t297", {}), "fine"])
    agent = Agent(model, tools=many, prepare_tools=a_few)
    assert len(agent.tools) == 300
    result = agent.run_sync("Go")
    names = offered(model)[0]
    assert names is not None
    assert len(names) == 30
    assert "t297" in names
    assert tool_contents(result) == ["x"]
    # Taking the hook away brings the limit back.
    with pytest.raises(ToolDefinitionError, match="at most 128"):
        agent.replace(prepare_tools=None)


def test_a_choice_of_more_than_128_ends_the_run_with_its_partial_result() -> None:
    many = [Tool(lambda: "x", name=f"t{i}") for i in range(200)]
    model = ScriptedModel([])
    agent = Agent(model, tools=many, prepare_tools=lambda ctx, tools: list(tools)[:129])
    with pytest.raises(ToolSelectionError, match="at most 128 tools, got 129") as caught:
        agent.run_sync("Go")
    assert caught.value.result.messages[-1] == {"role": "user", "content": "Go"}
    assert model.requests == []


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (lambda ctx, tools: ["fetch", "nope"], "chose 'nope', which is not one of the agent"),
        (lambda ctx, tools: [delete, fetch, "delete"], "chose 'delete' twice"),
        (lambda ctx, tools: [Tool(lambda: 1, name="fetch")], "not one of the agent's tools"),
        (lambda ctx, tools: "fetch", "must return an iterable of tools or tool names, got str"),
        (lambda ctx, tools: None, "got NoneType"),
        (lambda ctx, tools: [3], "must choose tools or tool names, got int"),
    ],
)
def test_a_bad_choice_is_a_typed_error(hook: Any, message: str) -> None:
    agent = Agent(ScriptedModel([]), tools=[login, fetch, delete], prepare_tools=hook)
    with pytest.raises(ToolSelectionError, match=message) as caught:
        agent.run_sync("Go")
    assert caught.value.result is not None
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is ToolSelectionError
    assert again.args == caught.value.args


def test_a_hook_that_raises_ends_the_run_with_the_cause_kept() -> None:
    def broken(ctx: RunContext[Any], tools: ToolSet) -> list[str]:
        raise KeyError("boom")

    agent = Agent(ScriptedModel([]), tools=[login], prepare_tools=broken)
    with pytest.raises(ToolSelectionError, match="prepare_tools raised KeyError") as caught:
        agent.run_sync("Go")
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize("driver", ["run", "stream"])
def test_an_async_hook_is_refused(driver: str) -> None:
    async def chooser(ctx: RunContext[Any], tools: ToolSet) -> list[str]:
        return ["login"]

    with pytest.raises(UserError, match="prepare_tools must be sync"):
        Agent(ScriptedModel([]), tools=[login], prepare_tools=chooser)
    with pytest.raises(UserError, match="must be a function"):
        Agent(ScriptedModel([]), tools=[login], prepare_tools="login")  # type: ignore[arg-type]

    async def later() -> list[str]:
        return ["login"]

    sneaky = Agent(ScriptedModel([]), tools=[login], prepare_tools=lambda ctx, tools: later())
    with pytest.raises(ToolSelectionError, match="returned an awaitable"):
        drive(sneaky, driver, "Go")


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_tools_chosen_sends_a_request_without_tools(driver: str) -> None:
    model = ScriptedModel(["just text"])
    agent = Agent(model, tools=[login], prepare_tools=lambda ctx, tools: [])
    assert drive(agent, driver, "Hi").result.output == "just text"
    assert offered(model) == [None]


def test_a_forced_tool_choice_must_stay_offered() -> None:
    forced = ModelSettings(tool_choice={"type": "function", "function": {"name": "login"}})
    agent = Agent(
        ScriptedModel([]), tools=[login, fetch], settings=forced,
        prepare_tools=lambda ctx, tools: ["fetch"],
    )  # fmt: skip
    with pytest.raises(ToolSelectionError, match="left out 'login'"):
        agent.run_sync("Go")
    required = Agent(
        ScriptedModel([]), tools=[login], tool_choice="required",
        prepare_tools=lambda ctx, tools: [],
    )  # fmt: skip
    with pytest.raises(ToolSelectionError, match="no tools while tool_choice='required'"):
        required.run_sync("Go")


def test_the_hook_sees_the_run_and_the_same_choice_is_built_once() -> None:
    seen: list[tuple[Any, int, int]] = []

    def watch(ctx: RunContext[Any], tools: ToolSet) -> list[Tool[..., Any]]:
        seen.append((ctx.deps, len(ctx.messages), ctx.usage.requests))
        return [tools["fetch"]]

    model = ScriptedModel([call("fetch", {"path": "x"}), "ok"])
    agent = Agent(model, tools=[login, fetch], prepare_tools=watch, time_limit=60)
    agent.run_sync("Go", deps={"who": "ada"})
    assert seen == [({"who": "ada"}, 1, 0), ({"who": "ada"}, 3, 1)]
    first, second = (request.tools for request in model.requests)
    assert first is second  # one checked set per distinct choice, not one per turn


def test_text_tool_calls_name_only_offered_tools() -> None:
    text = '<tool_call>{"name": "fetch", "arguments": {"path": "x"}}</tool_call>'
    model = ScriptedModel([text])
    agent = Agent(model, tools=[login, fetch], prepare_tools=lambda ctx, tools: ["login"])
    assert agent.run_sync("Go").output == text  # not offered: the text stays the answer


class Relisted:
    """A tool source (as an MCP server is) whose one tool, `lookup`, the test redefines."""

    def __init__(self) -> None:
        self.tools_version = 1
        self.requires_approval = False
        self.tools: list[Tool[..., Any]] = []
        self.define("by id")

    def define(self, description: str) -> None:
        def lookup(key: str) -> str:
            return f"{description}: {key}"

        self.tools = [tool(lookup, name="lookup", description=description)]
        self.tools_version += 1

    def source_tools(self) -> list[Tool[..., Any]]:
        return self.tools

    def release(self) -> None:
        pass


def test_a_relisted_tool_of_the_same_name_is_offered_anew() -> None:
    source = Relisted()
    model = ScriptedModel(["first", call("lookup", {"key": "k"}), "second"])
    agent = Agent(model, tools=[source], prepare_tools=lambda ctx, tools: ["lookup"])
    agent.run_sync("Go")
    source.define("by name")  # same name, new definition (tools/list_changed)
    result = agent.run_sync("Go")
    descriptions = [r.to_body()["tools"][0]["function"]["description"] for r in model.requests]
    assert descriptions == ["by id", "by name", "by name"]
    assert tool_contents(result) == ["by name: k"]
