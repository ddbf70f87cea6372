"""Agent loop scenarios, each against all four drivers (sync/async × plain/streamed)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from sfagent import RunContext, tool
from sfagent.agent import Agent
from sfagent.context import ApprovalRequest
from sfagent.exceptions import (
    BudgetExceeded,
    MaxTurnsExceeded,
    ModelRequestError,
    ModelRetry,
    OutputTruncatedError,
    OutputValidationError,
    RunawayLoopError,
    StopRun,
    ToolRetriesExceeded,
    UserError,
)
from sfagent.settings import ModelSettings
from sfagent.testing import Reply, ScriptedModel, ScriptedToolCall
from tests.run.agent_support import DRIVERS, drive, roles, tool_contents

pytestmark = pytest.mark.parametrize("driver", DRIVERS)


def call(name: str, arguments: dict[str, Any] | str | None = None, id: str | None = None) -> Any:
    return ScriptedToolCall(name, arguments if arguments is not None else {}, id=id)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def fail(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


# --- the basic loop -----------------------------------------------------------------------------


def test_sequential_turns(driver: str) -> None:
    model = ScriptedModel(
        [
            Reply(tool_calls=[call("add", {"a": 1, "b": 2})]),
            Reply(tool_calls=[call("add", {"a": 3, "b": 4})]),
            Reply(text="3 then 7"),
        ]
    )
    outcome = drive(Agent(model, tools=[add], instructions="Be brief."), driver, "add things")
    result = outcome.result
    assert result.output == "3 then 7"
    assert roles(result) == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert tool_contents(result) == ["3", "7"]
    assert result.usage.requests == 3
    assert result.usage.tool_calls == 2
    assert result.usage.total_tokens > 0
    assert [len(t.tool_calls) for t in result.turns] == [1, 1, 0]
    model.assert_used_up()
    # The model saw the tool schemas and the replayed tool-call turn on every request.
    second = model.requests[1].to_body()
    assert second["tools"][0]["function"]["name"] == "add"
    assert second["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'
    assert second["messages"][2]["content"] == ""
    assert second["messages"][3]["tool_call_id"] == second["messages"][2]["tool_calls"][0]["id"]


def test_parallel_calls_overlap_and_keep_call_order(driver: str) -> None:
    spans: dict[int, tuple[float, float]] = {}
    lock = threading.Lock()

    @tool
    def wait(n: int, seconds: float) -> int:
        """Sleep a while."""
        start = time.monotonic()
        time.sleep(seconds)
        with lock:
            spans[n] = (start, time.monotonic())
        return n

    @tool
    async def await_(n: int, seconds: float) -> int:
        """Sleep a while, asynchronously."""
        start = time.monotonic()
        await asyncio.sleep(seconds)
        with lock:
            spans[n] = (start, time.monotonic())
        return n

    # Finishing order (2, 1, 0) is the reverse of call order; results must follow call order.
    model = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    call("wait", {"n": 0, "seconds": 0.3}, id="id-0"),
                    call("await_", {"n": 1, "seconds": 0.2}, id="id-1"),
                    call("wait", {"n": 2, "seconds": 0.1}, id="id-2"),
                ]
            ),
            Reply(text="done"),
        ]
    )
    result = drive(Agent(model, tools=[wait, await_]), driver, "go").result
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["id-0", "id-1", "id-2"]
    assert [m["content"] for m in tool_messages] == ["0", "1", "2"]
    latest_start = max(start for start, _ in spans.values())
    earliest_end = min(end for _, end in spans.values())
    assert latest_start < earliest_end, "the three calls did not run at the same time"


def test_sequential_tool_runs_alone(driver: str) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def enter_exit() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    @tool(sequential=True)
    def migrate() -> str:
        """Must run alone."""
        enter_exit()
        return "migrated"

    @tool
    def read(n: int) -> int:
        """Read."""
        enter_exit()
        return n

    model = ScriptedModel(
        [
            Reply(tool_calls=[call("read", {"n": 1}), call("migrate"), call("read", {"n": 2})]),
            Reply(text="ok"),
        ]
    )
    result = drive(Agent(model, tools=[read, migrate]), driver, "go").result
    assert tool_contents(result) == ["1", "migrated", "2"]
    assert peak == 1


# --- bad calls never crash a run ----------------------------------------------------------------


def test_unknown_tool_and_bad_arguments_are_recovered(driver: str) -> None:
    model = ScriptedModel(
        [
            Reply(
                tool_calls=[
                    call("subtract", {"a": 1}),
                    call("add", '{"a": "one", "b": 2'),
                    call("add", {"a": "x", "b": 2}),
                ]
            ),
            Reply(tool_calls=[call("add", {"a": 1, "b": 2})]),
            Reply(text="3"),
        ]
    )
    result = drive(Agent(model, tools=[add]), driver, "go").result
    unknown, malformed, invalid, fixed = tool_contents(result)
    assert unknown == "Error: there is no tool named 'subtract'. Available tools: add."
    assert "malformed JSON" in malformed
    assert "a: Input should be a valid integer" in invalid
    assert fixed == "3"
    assert result.output == "3"
    errors = [r.error for r in result.turns[0].tool_calls]
    assert all(errors)


def test_raising_tool_becomes_a_message(driver: str) -> None:
    model = ScriptedModel([Reply(tool_calls=[call("fail", {"reason": "disk full"})]), "sorry"])
    result = drive(Agent(model, tools=[fail]), driver, "go").result
    assert tool_contents(result) == ["Error: tool 'fail' failed: RuntimeError: disk full"]
    assert result.output == "sorry"


def test_retry_budget_exhausted(driver: str) -> None:
    replies: list[Any] = [Reply(tool_calls=[call("fail", {"reason": f"r{i}"})]) for i in range(3)]
    model = ScriptedModel(replies)
    with pytest.raises(ToolRetriesExceeded) as info:
        drive(Agent(model, tools=[fail], tool_retries=2), driver, "go")
    err = info.value
    assert err.tool_name == "fail"
    assert "failed 3 times" in str(err)
    assert "RuntimeError: r2" in str(err)
    assert roles(err.result)[-1] == "tool"  # replayable: every call answered
    assert len(tool_contents(err.result)) == 3
    assert err.result.output is None


def test_model_retry_sends_the_message(driver: str) -> None:
    @tool
    def city_id(name: str) -> int:
        """Look a city up."""
        if name != "Beijing":
            raise ModelRetry(f"Unknown city '{name}'; use the English name.")
        return 1

    model = ScriptedModel(
        [
            Reply(tool_calls=[call("city_id", {"name": "北京"})]),
            Reply(tool_calls=[call("city_id", {"name": "Beijing"})]),
            "id 1",
        ]
    )
    result = drive(Agent(model, tools=[city_id]), driver, "go").result
    assert tool_contents(result) == ["Unknown city '北京'; use the English name.", "1"]


def test_stop_run_ends_the_run_with_its_output(driver: str) -> None:
    @tool
    def finish(answer: str) -> None:
        """Finish."""
        raise StopRun(answer)

    model = ScriptedModel([Reply(tool_calls=[call("finish", {"answer": "42"})])])
    result = drive(Agent(model, tools=[finish]), driver, "go").result
    assert result.output == "42"
    assert roles(result)[-1] == "tool"
    model.assert_used_up()


def test_tool_timeout_is_reported(driver: str) -> None:
    @tool(timeout=0.05)
    def hang() -> str:
        """Hangs."""
        time.sleep(0.5)
        return "late"

    model = ScriptedModel([Reply(tool_calls=[call("hang")]), "gave up"])
    result = drive(Agent(model, tools=[hang]), driver, "go").result
    assert tool_contents(result) == ["Error: tool 'hang' did not finish within 0.05 s."]


def test_concurrent_calls_share_one_deadline(driver: str) -> None:
    # Each call's timeout runs from when the batch starts, not from when the driver gets
    # round to waiting for it: the 0.5 s call overruns its 0.35 s timeout, although a driver
    # that waited 0.2 s for the first call and then 0.35 s more would have seen it finish.
    @tool(timeout=0.35)
    def nap(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return f"slept {seconds}"

    model = ScriptedModel(
        [Reply(tool_calls=[call("nap", {"seconds": 0.2}), call("nap", {"seconds": 0.5})]), "ok"]
    )
    result = drive(Agent(model, tools=[nap]), driver, "go").result
    assert tool_contents(result) == [
        "slept 0.2",
        "Error: tool 'nap' did not finish within 0.35 s.",
    ]


# --- limits -------------------------------------------------------------------------------------


def test_max_turns_keeps_partial_messages(driver: str) -> None:
    model = ScriptedModel([Reply(tool_calls=[call("add", {"a": i, "b": 0})]) for i in range(2)])
    with pytest.raises(MaxTurnsExceeded) as info:
        drive(Agent(model, tools=[add], max_turns=2), driver, "loop")
    partial = info.value.result
    assert tool_contents(partial) == ["0", "1"]
    assert partial.usage.requests == 2
    assert len(partial.turns) == 2


def test_length_mid_tool_call_is_never_executed(driver: str) -> None:
    ran: list[str] = []

    @tool
    def write(text: str) -> None:
        """Write."""
        ran.append(text)

    model = ScriptedModel(
        [Reply(tool_calls=[call("write", '{"text": "a long ess')], finish_reason="length")]
    )
    with pytest.raises(OutputTruncatedError) as info:
        drive(Agent(model, tools=[write]), driver, "go")
    assert info.value.tool_call_truncated
    assert "max_tokens" in str(info.value)
    assert ran == []
    assert tool_contents(info.value.result) == ["Not run: the call was cut off."]


def test_length_in_the_answer(driver: str) -> None:
    model = ScriptedModel([Reply(text="The answer is", finish_reason="length")])
    with pytest.raises(OutputTruncatedError) as info:
        drive(Agent(model), driver, "go")
    assert not info.value.tool_call_truncated
    assert info.value.result.messages[-1]["content"] == "The answer is"


def test_runaway_loop_is_stopped(driver: str) -> None:
    same = [Reply(tool_calls=[call("add", {"b": 1, "a": 1})]) for _ in range(3)]
    model = ScriptedModel(same)
    with pytest.raises(RunawayLoopError) as info:
        drive(Agent(model, tools=[add], max_repeated_calls=2), driver, "go")
    assert info.value.tool_name == "add"
    assert json.loads(info.value.arguments) == {"a": 1, "b": 1}
    assert roles(info.value.result)[-1] == "tool"
    assert tool_contents(info.value.result)[-1].startswith("Not run")


def test_token_budget(driver: str) -> None:
    model = ScriptedModel([Reply(tool_calls=[call("add", {"a": 1, "b": 1})]), "never sent"])
    with pytest.raises(BudgetExceeded) as info:
        drive(Agent(model, tools=[add], max_total_tokens=1), driver, "go")
    assert info.value.budget == "tokens"
    assert info.value.result.usage.requests == 1
    assert model.remaining == 1


def test_time_budget(driver: str) -> None:
    @tool
    def slow() -> str:
        """Slow."""
        time.sleep(0.15)
        return "ok"

    model = ScriptedModel([Reply(tool_calls=[call("slow")]), "never sent"])
    with pytest.raises(BudgetExceeded) as info:
        drive(Agent(model, tools=[slow], time_limit=0.1), driver, "go")
    assert info.value.budget == "time"
    assert model.remaining == 1


def test_api_error_hands_back_messages(driver: str) -> None:
    body = {"code": 20012, "message": "Model does not exist.", "data": None}
    model = ScriptedModel(
        [Reply(tool_calls=[call("add", {"a": 1, "b": 1})]), Reply.error(400, body)]
    )
    with pytest.raises(ModelRequestError) as info:
        drive(Agent(model, tools=[add]), driver, "go")
    assert info.value.error.code == 20012  # type: ignore[attr-defined]
    assert tool_contents(info.value.result) == ["2"]


def test_tool_choice_required_falls_back_to_auto(driver: str) -> None:
    rejected = {
        "code": 20015,
        "message": "The required option for tool_choice is not yet supported",
        "data": None,
    }
    model = ScriptedModel(
        [Reply.error(400, rejected), Reply(tool_calls=[call("add", {"a": 1, "b": 1})]), "2"]
    )
    agent = Agent(model, tools=[add], tool_choice="required")
    assert drive(agent, driver, "go").result.output == "2"
    sent = [r.to_body().get("tool_choice") for r in model.requests]
    assert sent == ["required", "auto", "auto"]


@pytest.mark.parametrize(
    "choice",
    ["required", {"type": "function", "function": {"name": "add"}}],
    ids=["required", "named"],
)
def test_a_forced_choice_holds_until_tools_have_run(driver: str, choice: Any) -> None:
    # Forcing on every turn could only end in a runaway loop: the model must be let answer.
    model = ScriptedModel(
        [
            Reply(tool_calls=[call("add", {"a": 1})]),  # refused (missing b): nothing ran
            Reply(tool_calls=[call("add", {"a": 1, "b": 1})]),
            "2",
        ]
    )
    result = drive(Agent(model, tools=[add], tool_choice=choice), driver, "go").result
    assert result.output == "2"
    sent = [r.to_body().get("tool_choice") for r in model.requests]
    assert sent == [choice, choice, "auto"]


def test_a_forced_choice_can_be_kept(driver: str) -> None:
    model = ScriptedModel([Reply(tool_calls=[call("add", {"a": i, "b": 0})]) for i in range(3)])
    agent = Agent(model, tools=[add], tool_choice="required", reset_tool_choice=False, max_turns=3)
    with pytest.raises(MaxTurnsExceeded):
        drive(agent, driver, "go")
    assert [r.to_body().get("tool_choice") for r in model.requests] == ["required"] * 3


def test_a_prompt_list_takes_plain_strings_beside_parts(driver: str) -> None:
    from sfagent.messages import image_part

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    model = ScriptedModel(["a chart"])
    prompt = ["What is in this chart?", image_part(png)]
    assert drive(Agent(model), driver, prompt).result.output == "a chart"
    content = model.requests[0].to_body()["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this chart?"}
    assert content[1]["type"] == "image_url"


def test_a_prompt_list_with_something_else_is_a_user_error(driver: str) -> None:
    with pytest.raises(UserError, match=r"prompt\[1\] must be text or a content part"):
        drive(Agent(ScriptedModel([])), driver, ["hi", 42])


# --- structured output, context, approval, continuation ---------------------------------------


class Weather(BaseModel):
    city: str
    celsius: float


def test_structured_output_is_re_asked(driver: str) -> None:
    model = ScriptedModel(
        [
            Reply(text='{"city": "Rome"}'),
            Reply(text='```json\n{"city": "Rome", "celsius": 21.5}\n```'),
        ]
    )
    result = drive(Agent(model, output_type=Weather), driver, "weather?").result
    assert result.output == Weather(city="Rome", celsius=21.5)
    first, second = (r.to_body() for r in model.requests)
    assert first["response_format"] == {"type": "json_object"}
    assert '"celsius"' in first["messages"][0]["content"]  # the schema is in the instructions
    assert "celsius: required argument is missing" in second["messages"][-1]["content"]


def test_structured_output_gives_up(driver: str) -> None:
    model = ScriptedModel(["not json", "still not", "nope"])
    with pytest.raises(OutputValidationError, match="after 3 attempts"):
        drive(Agent(model, output_type=Weather, output_retries=2), driver, "weather?")


def test_structured_output_json_schema_mode(driver: str) -> None:
    model = ScriptedModel([Reply(text='{"city": "Oslo", "celsius": -3}')])
    agent = Agent(model, output_type=Weather, output_mode="json_schema")
    assert drive(agent, driver, "weather?").result.output.celsius == -3
    fmt = model.requests[0].to_body()["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["city", "celsius"]


def test_context_carries_deps_usage_and_messages(driver: str) -> None:
    seen: dict[str, Any] = {}

    @tool
    def whoami(ctx: RunContext[dict[str, str]]) -> str:
        """Who is asking."""
        seen["usage"] = ctx.usage.requests
        seen["messages"] = len(ctx.messages)
        seen["call"] = ctx.tool_call_id
        return ctx.deps["user"]

    model = ScriptedModel([Reply(tool_calls=[call("whoami", id="c1")]), "ok"])
    result = drive(Agent(model, tools=[whoami]), driver, "who?", deps={"user": "ann"}).result
    assert tool_contents(result) == ["ann"]
    assert seen == {"usage": 1, "messages": 2, "call": "c1"}


def test_approval_denied_and_granted(driver: str) -> None:
    deleted: list[str] = []
    asked: list[ApprovalRequest] = []

    @tool(requires_approval=True)
    def delete(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return "deleted"

    async def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return json.loads(request.arguments)["path"] != "/etc/passwd"

    model = ScriptedModel(
        [
            Reply(tool_calls=[call("delete", {"path": "/etc/passwd"})]),
            Reply(tool_calls=[call("delete", {"path": "/tmp/x"})]),
            "done",
        ]
    )
    result = drive(Agent(model, tools=[delete], approve=approve), driver, "clean up").result
    assert deleted == ["/tmp/x"]
    assert tool_contents(result)[0].startswith("The user did not approve this call")
    assert [a.tool_name for a in asked] == ["delete", "delete"]


def test_continuation_from_earlier_messages(driver: str) -> None:
    first = ScriptedModel([Reply(tool_calls=[call("add", {"a": 2, "b": 3})]), "5"])
    earlier = drive(Agent(first, tools=[add], instructions="Sys."), driver, "2+3?").result
    stored = json.loads(earlier.to_json())  # survives a trip through JSON

    second = ScriptedModel(["10"])
    agent = Agent(second, tools=[add], instructions="Sys.")
    result = drive(agent, driver, "double it", messages=stored).result
    sent = second.requests[0].to_body()["messages"]
    assert [m["role"] for m in sent] == [
        "system", "user", "assistant", "tool", "assistant", "user"
    ]  # fmt: skip
    assert sent[-1]["content"] == "double it"
    assert result.output == "10"
    assert len(result.messages) == 7


def test_settings_are_sent(driver: str) -> None:
    model = ScriptedModel(["ok"])
    agent = Agent(model, settings=ModelSettings(max_tokens=2048, temperature=0.2))
    drive(agent, driver, "hi")
    body = model.requests[0].to_body()
    assert (body["max_tokens"], body["temperature"]) == (2048, 0.2)
    assert "tools" not in body


def test_invalid_agent_settings_are_refused(driver: str) -> None:
    with pytest.raises(UserError, match="max_turns must be > 0"):
        Agent(ScriptedModel([]), max_turns=0)
    with pytest.raises(UserError, match="require approval"):
        Agent(ScriptedModel([]), tools=[tool(name="x", requires_approval=True)(lambda: 1)])


def test_deps_of_the_wrong_type_are_refused(driver: str) -> None:
    agent = Agent(ScriptedModel(["ok"]), deps_type=dict)
    with pytest.raises(UserError, match="deps must be a dict"):
        drive(agent, driver, "hi", deps=["not", "a", "dict"])
    assert drive(Agent(ScriptedModel(["ok"]), deps_type=dict), driver, "hi", deps={}).result


def test_a_tools_own_timeout_error_is_an_error_not_a_timeout(driver: str) -> None:
    @tool(timeout=5)
    def flaky() -> str:
        """Raises its own TimeoutError at once."""
        raise TimeoutError("upstream took too long")

    model = ScriptedModel([Reply(tool_calls=[call("flaky")]), "ok"])
    result = drive(Agent(model, tools=[flaky]), driver, "go").result
    assert tool_contents(result) == [
        "Error: tool 'flaky' failed: TimeoutError: upstream took too long"
    ]


def test_replace_makes_a_sibling_agent(driver: str) -> None:
    base = Agent(ScriptedModel(["unused"]), tools=iter([add]), max_turns=7, instructions="A.")
    sibling = base.replace(model=ScriptedModel(["from sibling"]), instructions="B.")
    result = drive(sibling, driver, "hi").result
    assert result.output == "from sibling"
    assert result.messages[0] == {"role": "system", "content": "B."}
    assert sibling.tools.names == ["add"]
    with pytest.raises(UserError, match="unknown settings: colour"):
        base.replace(colour="blue")


# --- tool calls written as text --------------------------------------------------------------

QWEN_TEXT_CALL = (
    'Let me add them.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'
)


def test_tool_calls_written_as_text_are_run(driver: str) -> None:
    model = ScriptedModel([Reply(text=QWEN_TEXT_CALL), "5"])
    outcome = drive(Agent(model, tools=[add]), driver, "2+3?")
    result = outcome.result
    assert result.output == "5"
    assert tool_contents(result) == ["5"]
    replayed = result.messages[1]
    assert replayed["content"] == "Let me add them."
    assert replayed["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert result.messages[2]["tool_call_id"] == replayed["tool_calls"][0]["id"]
    if driver.startswith("stream"):
        from sfagent.events import ToolCallsFromText

        (event,) = [e for e in outcome.events if isinstance(e, ToolCallsFromText)]
        assert (event.turn, event.format, event.tools) == (1, "hermes", ("add",))


def test_text_that_names_no_registered_tool_stays_the_answer(driver: str) -> None:
    text = '<tool_call>\n{"name": "delete_everything", "arguments": {}}\n</tool_call>'
    model = ScriptedModel([Reply(text=text)])
    assert drive(Agent(model, tools=[add]), driver, "go").result.output == text


def test_text_tool_calls_can_be_switched_off(driver: str) -> None:
    model = ScriptedModel([Reply(text=QWEN_TEXT_CALL)])
    agent = Agent(model, tools=[add], text_tool_calls=False)
    assert drive(agent, driver, "2+3?").result.output == QWEN_TEXT_CALL


def test_calls_that_share_an_id_are_answered_apart(driver: str) -> None:
    # Some servers reuse an id; each call still gets its own answer the model can tell apart.
    calls = [call("add", {"a": 1, "b": 1}, id="dup"), call("add", {"a": 2, "b": 2}, id="dup")]
    model = ScriptedModel([Reply(tool_calls=calls), "2 and 4"])
    result = drive(Agent(model, tools=[add]), driver, "go").result
    ids = [c["id"] for c in result.messages[1]["tool_calls"]]
    assert len(set(ids)) == 2
    answers = [(m["tool_call_id"], m["content"]) for m in result.messages if m["role"] == "tool"]
    assert answers == [(ids[0], "2"), (ids[1], "4")]
