"""The agent loop driven directly: model replies and tool outcomes in, actions out.

No HTTP, no drivers, no threads. Each test builds a flow with `start`, answers it row by row
with `run_script` (a `ChatCompletion` for a model request, a list of `CallOutcome` for a batch of
tool calls, an `APIError` to throw in) and checks the actions it yielded and how the run ended.
The tools here never run: their bodies raise, so a test fails if the flow ever ran one itself.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from sfagent import tool
from sfagent.agent import Agent
from sfagent.events import (
    Event,
    ReasoningDelta,
    RunFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnFinished,
)
from sfagent.exceptions import (
    AgentRunError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    BadRequestError,
    BudgetExceeded,
    IncompleteStreamError,
    InternalServerError,
    MaxTurnsExceeded,
    ModelRequestError,
    ModelRetry,
    OutputTruncatedError,
    OutputValidationError,
    RateLimitError,
    RunawayLoopError,
    StopRun,
    ToolRetriesExceeded,
)
from sfagent.messages import ChatCompletion, parse_messages
from sfagent.result import RunResult, ToolCallRecord
from sfagent.run._actions import Action, Emit, Flow, ModelCall, RunCalls
from sfagent.run._tool_calls import CallOutcome
from sfagent.settings import ChatRequest
from sfagent.testing import ScriptedModel

# --- the one place that knows how a flow is built -----------------------------------------------


def start(
    agent: Agent[Any, Any],
    prompt: str,
    *,
    stream: bool = False,
    clock: Callable[[], float] | None = None,
) -> Flow:
    """A fresh flow of `agent` for `prompt`; with `stream`, it also emits every event.

    Touches internals: `Agent._config` (a frozen `LoopConfig`, replaced to swap in `clock`)
    and `Agent._flow(prompt, messages, deps, stream)` (events are emitted iff `stream`).
    """
    if clock is not None:
        agent._config = dataclasses.replace(agent._config, clock=clock)
    return agent._flow(prompt, (), None, stream)


def make(**options: Any) -> Agent[Any, Any]:
    """An agent whose model is never asked: the script answers instead."""
    options.setdefault("tools", [add])
    return Agent(ScriptedModel([]), **options)


# --- tools (never run: the flow only prepares calls) --------------------------------------------


def _never() -> Any:
    raise AssertionError("the flow ran a tool itself; only drivers run tools")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return _never()  # type: ignore[no-any-return]


@tool(timeout=0.05, requires_approval=True)
def guarded(path: str) -> str:
    """Delete a file."""
    return _never()  # type: ignore[no-any-return]


class Weather(BaseModel):
    city: str
    celsius: float


# --- model replies and tool outcomes ------------------------------------------------------------

CallSpec = tuple[str, "dict[str, Any] | str"]


def _completion(
    message: dict[str, Any], finish: str | None, usage: tuple[int, int]
) -> ChatCompletion:
    prompt, completion = usage
    return ChatCompletion.model_validate(
        {
            "id": "resp",
            "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


def answer(
    text: str | None,
    *,
    finish: str = "stop",
    reasoning: str | None = None,
    usage: tuple[int, int] = (10, 5),
) -> ChatCompletion:
    """A reply without tool calls."""
    message = {"role": "assistant", "content": text, "reasoning_content": reasoning}
    return _completion(message, finish, usage)


def tool_turn(
    *calls: CallSpec,
    finish: str = "tool_calls",
    text: str | None = None,
    usage: tuple[int, int] = (10, 5),
) -> ChatCompletion:
    """A reply with one tool call per `(name, arguments)`; ids are ``call_0``, ``call_1``…"""
    wire = [
        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
        for i, (name, args) in enumerate(calls)
    ]
    message = {"role": "assistant", "content": text, "tool_calls": wire}
    return _completion(message, finish, usage)


def ok(value: Any, duration: float = 0.01) -> CallOutcome:
    return CallOutcome(value=value, duration=duration)


def raised(exc: BaseException, duration: float = 0.01) -> CallOutcome:
    return CallOutcome(exception=exc, duration=duration)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def after(clock: FakeClock, seconds: float, reply: Any) -> Callable[[Action], Any]:
    """`reply`, given once `seconds` have passed (the model or the tools took that long)."""

    def later(action: Action) -> Any:
        clock.now += seconds
        return reply

    return later


# --- driving a flow -----------------------------------------------------------------------------


def describe(action: Action) -> str:
    """``model#2``, ``tools#1: add !subtract`` (``!`` marks a refused call), or an event name."""
    if isinstance(action, ModelCall):
        return f"model#{action.turn}"
    if isinstance(action, RunCalls):
        names = [
            item.call.function.name if item.runnable else f"!{item.call.function.name}"
            for item in action.calls
        ]
        return f"tools#{action.turn}: {' '.join(names)}"
    return type(action.event).__name__


@dataclass
class Script:
    """What a flow did: every action it yielded, then its result or its error."""

    actions: list[Action] = field(default_factory=list)
    result: RunResult[Any] | None = None
    error: AgentRunError | None = None

    @property
    def trace(self) -> list[str]:
        return [describe(a) for a in self.actions]

    @property
    def requests(self) -> list[ChatRequest]:
        return [a.request for a in self.actions if isinstance(a, ModelCall)]

    @property
    def model_calls(self) -> list[ModelCall]:
        return [a for a in self.actions if isinstance(a, ModelCall)]

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.to_body() for r in self.requests]

    @property
    def batches(self) -> list[RunCalls]:
        return [a for a in self.actions if isinstance(a, RunCalls)]

    @property
    def events(self) -> list[Event]:
        return [a.event for a in self.actions if isinstance(a, Emit)]

    def ok(self) -> RunResult[Any]:
        """The result; re-raises the run's error so a failing test shows it."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        assert_replayable(self.result.messages)
        return self.result

    def failed(self, kind: type[AgentRunError]) -> Any:
        """The run's error, checked to be a `kind` carrying a replayable partial run."""
        assert isinstance(self.error, kind), f"expected {kind.__name__}, got {self.error!r}"
        assert self.error.result is not None
        assert self.error.result.output is None
        assert_replayable(self.error.result.messages)
        return self.error


def run_script(flow: Flow, replies: Sequence[Any]) -> Script:
    """Answer each model request and tool batch with the next reply; events get ``None``.

    A reply is a `ChatCompletion` or an `APIError` (thrown in)
    for a `ModelCall`, a list of outcomes for a `RunCalls`, or a function of the action
    returning one of those. Fails if the flow asks for more replies than given, or ends early.
    """
    script, pending = Script(), list(replies)
    send: Any = None
    throw: BaseException | None = None
    while True:
        try:
            action = flow.throw(throw) if throw is not None else flow.send(send)
        except StopIteration as stop:
            script.result = stop.value
            break
        except AgentRunError as exc:
            script.error = exc
            break
        script.actions.append(action)
        send, throw = None, None
        if isinstance(action, Emit):
            continue
        if not pending:
            pytest.fail(f"the flow wants {describe(action)} after {script.trace[:-1]}: no reply")
        reply = pending.pop(0)
        if callable(reply):
            reply = reply(action)
        send, throw = _reply_to(action, reply)
    if pending:
        pytest.fail(f"the flow ended with {len(pending)} replies unused: {script.trace}")
    return script


def _reply_to(action: ModelCall | RunCalls, reply: Any) -> tuple[Any, BaseException | None]:
    if isinstance(action, ModelCall):
        if isinstance(reply, APIError):
            return None, reply
        assert isinstance(reply, ChatCompletion), f"{describe(action)} answered with {reply!r}"
        return reply, None
    assert isinstance(reply, list), f"{describe(action)} answered with {reply!r}"
    assert len(reply) == len(action.calls), "one outcome (or None) per call"
    return reply, None


def assert_replayable(messages: list[dict[str, Any]]) -> None:
    """Each assistant tool call is answered by exactly one tool message right after it."""
    i = 0
    while i < len(messages):
        message = messages[i]
        i += 1
        assert message["role"] != "tool", f"message {i - 1} answers no tool call"
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        ids = [c["id"] for c in message["tool_calls"]]
        answers = []
        while i < len(messages) and messages[i]["role"] == "tool":
            answers.append(messages[i]["tool_call_id"])
            i += 1
        assert len(set(ids)) == len(ids)
        assert Counter(answers) == Counter(ids), f"calls {ids} answered by {answers}"
    ChatRequest(parse_messages(messages), model="m").to_body()  # and they encode as a request


def roles(result: RunResult[Any]) -> list[str]:
    return [m["role"] for m in result.messages]


def tool_contents(result: RunResult[Any]) -> list[str]:
    return [m["content"] for m in result.messages if m["role"] == "tool"]


def flat(*rows: Any) -> list[Any]:
    """Rows of a script, each a reply or a list of replies (a turn), flattened."""
    out: list[Any] = []
    for row in rows:
        if isinstance(row, tuple):
            out.extend(row)
        else:
            out.append(row)
    return out


def turn(*calls: CallSpec, outcomes: list[CallOutcome | None]) -> tuple[Any, ...]:
    """A tool turn and its outcomes: two rows of a script."""
    return (tool_turn(*calls), outcomes)


ADD_1_2: CallSpec = ("add", {"a": 1, "b": 2})


# --- answers and tool turns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instructions", "reply", "output", "sent_roles"),
    [
        pytest.param(None, answer("hello"), "hello", ["user"], id="stop"),
        pytest.param(None, answer("hello", finish="eos"), "hello", ["user"], id="eos"),
        pytest.param(None, answer(None), "", ["user"], id="no-content"),
        pytest.param("Be brief.", answer("hi"), "hi", ["system", "user"], id="instructions"),
    ],
)
def test_plain_answer(
    instructions: str | None, reply: ChatCompletion, output: str, sent_roles: list[str]
) -> None:
    script = run_script(start(make(instructions=instructions), "hello?"), [reply])
    assert script.trace == ["model#1", "RunFinished"]
    call = script.model_calls[0]
    assert call.timeout is None  # no time limit
    body = script.bodies[0]
    assert body["model"] == "scripted"
    assert body["tools"] == [add.schema]
    assert not body.get("stream", False)
    assert [m["role"] for m in body["messages"]] == sent_roles
    assert body["messages"][-1]["content"] == "hello?"
    result = script.ok()
    assert result.output == output
    assert roles(result) == [*sent_roles, "assistant"]
    usage = result.usage
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (1, 10, 5)
    assert (usage.total_tokens, usage.tool_calls) == (15, 0)
    assert [t.tool_calls for t in result.turns] == [()]
    assert script.events == [RunFinished(result)]


@pytest.mark.parametrize(
    ("value", "content"),
    [
        (3, "3"),
        ("three", "three"),
        ({"sum": 3}, '{"sum":3}'),
        ([1, 2], "[1,2]"),
        (None, "null"),
    ],
)
def test_tool_turn_then_answer(value: Any, content: str) -> None:
    first = tool_turn(ADD_1_2)
    script = run_script(start(make(), "1+2?"), [first, [ok(value, 0.25)], answer("3")])
    assert script.trace == ["model#1", "tools#1: add", "model#2", "RunFinished"]

    (batch,) = script.batches
    assert (batch.turn, batch.time_left) == (1, None)
    (item,) = batch.calls
    assert item.call == first.message.tool_calls[0]
    assert item.tool is add
    assert (item.args, item.kwargs) == ((), {"a": 1, "b": 2})

    sent = script.bodies[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"] == [first.message.tool_calls[0].to_wire()]
    assert sent[2] == {"role": "tool", "tool_call_id": "call_0", "content": content}

    result = script.ok()
    assert result.output == "3"
    assert roles(result) == ["user", "assistant", "tool", "assistant"]
    assert (result.usage.requests, result.usage.tool_calls, result.usage.total_tokens) == (2, 1, 30)
    assert result.turns[0].tool_calls == (
        ToolCallRecord("call_0", "add", '{"a": 1, "b": 2}', content, 0.25, None),
    )
    assert result.turns[1].tool_calls == ()


def test_unsendable_return_value_is_an_error_for_the_model() -> None:
    script = run_script(start(make(), "go"), [tool_turn(ADD_1_2), [ok(object())], answer("hm")])
    (content,) = tool_contents(script.ok())
    assert content.startswith("Error: tool 'add' returned a value that cannot be sent: ")
    assert script.ok().turns[0].tool_calls[0].error == content


def test_parallel_calls_are_one_batch_answered_in_call_order() -> None:
    calls = [("add", {"a": a, "b": a + 1}) for a in (1, 3, 5)]
    outcomes: list[CallOutcome | None] = [ok(3, 0.3), ok(7, 0.1), ok(11, 0.2)]
    script = run_script(start(make(), "sums"), [tool_turn(*calls), outcomes, answer("done")])
    assert script.trace == ["model#1", "tools#1: add add add", "model#2", "RunFinished"]
    (batch,) = script.batches
    assert [item.call.id for item in batch.calls] == ["call_0", "call_1", "call_2"]
    assert [item.kwargs for item in batch.calls] == [
        {"a": 1, "b": 2},
        {"a": 3, "b": 4},
        {"a": 5, "b": 6},
    ]
    tools_sent = [m for m in script.bodies[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tools_sent] == [
        ("call_0", "3"),
        ("call_1", "7"),
        ("call_2", "11"),
    ]
    result = script.ok()
    assert result.usage.tool_calls == 3
    assert [(r.call_id, r.duration) for r in result.turns[0].tool_calls] == [
        ("call_0", 0.3),
        ("call_1", 0.1),
        ("call_2", 0.2),
    ]


REFUSED = [
    pytest.param(
        ("subtract", {"a": 1}),
        "Error: there is no tool named 'subtract'. Available tools: add.",
        id="unknown-tool",
    ),
    pytest.param(("add", '{"a": 1, "b": '), "arguments: malformed JSON", id="malformed-json"),
    pytest.param(
        ("add", {"a": "x", "b": 2}), "a: Input should be a valid integer", id="wrong-type"
    ),
    pytest.param(("add", {"a": 1}), "b: required argument is missing", id="missing-argument"),
]


@pytest.mark.parametrize(("bad", "says"), REFUSED)
def test_refused_call_is_not_run_and_the_model_is_told_why(bad: CallSpec, says: str) -> None:
    script = run_script(start(make(), "go"), [tool_turn(bad, ADD_1_2), [None, ok(3)], answer("3")])
    assert script.trace == ["model#1", f"tools#1: !{bad[0]} add", "model#2", "RunFinished"]
    refused, good = (m for m in script.bodies[1]["messages"] if m["role"] == "tool")
    assert refused["tool_call_id"] == "call_0"
    assert says in refused["content"]
    if bad[0] == "add":
        assert refused["content"].endswith("Call the tool again with corrected arguments.")
    assert good == {"role": "tool", "tool_call_id": "call_1", "content": "3"}
    result = script.ok()
    assert result.usage.tool_calls == 1  # the refused call never ran
    assert [r.error for r in result.turns[0].tool_calls] == [refused["content"], None]


def test_a_turn_of_only_refused_calls_runs_nothing() -> None:
    bad = [("subtract", {}), ("add", "not json")]
    script = run_script(start(make(), "go"), [tool_turn(*bad), answer("sorry")])
    assert script.trace == ["model#1", "model#2", "RunFinished"]  # no RunCalls at all
    unknown, malformed = tool_contents(script.ok())
    assert unknown.startswith("Error: there is no tool named 'subtract'")
    assert "malformed JSON" in malformed


@pytest.mark.parametrize(
    ("outcome", "content", "error", "ran"),
    [
        pytest.param(
            raised(RuntimeError("disk full")),
            "Error: tool 'guarded' failed: RuntimeError: disk full",
            "same",
            1,
            id="exception",
        ),
        pytest.param(
            raised(ModelRetry("No such file; list the folder first.")),
            "No such file; list the folder first.",
            "same",
            1,
            id="model-retry",
        ),
        pytest.param(
            CallOutcome(timed_out=True, duration=0.05),
            "Error: tool 'guarded' did not finish within 0.05 s.",
            "same",
            1,
            id="tool-timeout",
        ),
        pytest.param(
            CallOutcome(timed_out=True, duration=0.01),
            "Error: tool 'guarded' was cut short: the run's time budget ran out.",
            "same",
            1,
            id="run-out-of-time",
        ),
        pytest.param(
            CallOutcome(denied=True),
            "The user did not approve this call to 'guarded'; it was not run.",
            "denied",
            0,
            id="denied",
        ),
    ],
)
def test_failed_call_is_rendered_for_the_model(
    outcome: CallOutcome, content: str, error: str, ran: int
) -> None:
    agent = make(tools=[guarded], approve=lambda request: False)
    script = run_script(
        start(agent, "go"), [tool_turn(("guarded", {"path": "/tmp/x"})), [outcome], answer("ok")]
    )
    assert script.trace == ["model#1", "tools#1: guarded", "model#2", "RunFinished"]
    sent = script.bodies[1]["messages"][-1]
    assert sent == {"role": "tool", "tool_call_id": "call_0", "content": content}
    result = script.ok()
    assert result.turns[0].tool_calls[0].error == (content if error == "same" else error)
    assert result.usage.tool_calls == ran


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_turns", [1, 2, 3])
def test_max_turns_ends_a_run_that_keeps_calling_tools(max_turns: int) -> None:
    rows = [turn(("add", {"a": t, "b": 0}), outcomes=[ok(t)]) for t in range(max_turns)]
    script = run_script(start(make(max_turns=max_turns), "go"), flat(*rows))
    err = script.failed(MaxTurnsExceeded)
    assert script.trace == [
        s for t in range(1, max_turns + 1) for s in (f"model#{t}", f"tools#{t}: add")
    ]
    assert f"max_turns={max_turns}" in str(err)
    assert tool_contents(err.result) == [str(t) for t in range(max_turns)]
    assert (err.result.usage.requests, len(err.result.turns)) == (max_turns, max_turns)


def test_an_answer_on_the_last_allowed_turn_is_kept() -> None:
    script = run_script(
        start(make(max_turns=2), "go"), flat(turn(ADD_1_2, outcomes=[ok(3)]), answer("3"))
    )
    assert script.ok().output == "3"


@pytest.mark.parametrize(
    ("limit", "requests"),
    [
        pytest.param(1, 1, id="spent-by-the-first-turn"),
        pytest.param(15, 1, id="exactly-spent"),  # each turn uses 15 tokens
        pytest.param(16, 2, id="one-token-left"),
        pytest.param(31, 3, id="answer-may-overshoot"),
    ],
)
def test_token_budget_is_checked_before_each_request(limit: int, requests: int) -> None:
    script_rows = flat(
        turn(("add", {"a": 1, "b": 1}), outcomes=[ok(2)]),
        turn(("add", {"a": 2, "b": 2}), outcomes=[ok(4)]),
        answer("2 and 4"),
    )
    replies = script_rows[: 2 * requests] if requests < 3 else script_rows
    script = run_script(start(make(max_total_tokens=limit), "go"), replies)
    assert [s for s in script.trace if s.startswith("model")] == [
        f"model#{t}" for t in range(1, requests + 1)
    ]
    if requests == 3:
        assert script.ok().usage.total_tokens == 45
        return
    err = script.failed(BudgetExceeded)
    assert err.budget == "tokens"
    assert err.result.usage.total_tokens == 15 * requests
    assert script.trace[-1] == f"tools#{requests}: add"


@pytest.mark.parametrize(
    ("tool_seconds", "ends"),
    [
        pytest.param(5.9, "answer", id="within"),
        pytest.param(6.0, "time", id="at-the-deadline"),
        pytest.param(60.0, "time", id="far-past"),
    ],
)
def test_time_budget_is_checked_before_each_request(tool_seconds: float, ends: str) -> None:
    clock = FakeClock(1000.0)
    replies = [
        after(clock, 4.0, tool_turn(ADD_1_2)),  # the model takes 4 s of the 10
        after(clock, tool_seconds, [ok(3)]),
    ]
    if ends == "answer":
        replies.append(answer("3"))
    script = run_script(start(make(time_limit=10.0), "go", clock=clock), replies)
    first = script.model_calls[0]
    assert first.timeout == pytest.approx(10.0)
    assert script.batches[0].time_left == pytest.approx(6.0)
    if ends == "answer":
        assert script.trace == ["model#1", "tools#1: add", "model#2", "RunFinished"]
        assert script.model_calls[1].timeout == pytest.approx(10.0 - 4.0 - tool_seconds)
        assert script.ok().output == "3"
        return
    assert script.trace == ["model#1", "tools#1: add"]  # no second request
    err = script.failed(BudgetExceeded)
    assert err.budget == "time"
    assert roles(err.result) == ["user", "assistant", "tool"]
    assert tool_contents(err.result) == ["3"]


def test_time_budget_spent_by_the_model_alone() -> None:
    clock = FakeClock()
    replies = [after(clock, 10.0, tool_turn(ADD_1_2)), [ok(3)]]
    script = run_script(start(make(time_limit=10.0), "go", clock=clock), replies)
    assert script.batches[0].time_left == pytest.approx(0.001)  # never zero: a floor
    assert script.failed(BudgetExceeded).budget == "time"


@pytest.mark.parametrize(
    ("turns", "limit", "fails_on"),
    [
        pytest.param([[ADD_1_2]] * 3, 2, 3, id="same-call-three-turns"),
        pytest.param(
            [[ADD_1_2], [("add", {"b": 2, "a": 1})], [("add", '{"a":1,"b":2}')]],
            2,
            3,
            id="same-arguments-spelled-differently",
        ),
        pytest.param([[ADD_1_2] * 3], 2, 1, id="three-in-one-turn"),
        pytest.param([[ADD_1_2, ("add", {"a": 1, "b": 3})]] * 2, 1, 2, id="mixed-batch"),
        pytest.param([[("add", {"a": t, "b": 0})] for t in range(4)], 1, None, id="all-new"),
        pytest.param([[ADD_1_2]] * 4, None, None, id="check-off"),
    ],
)
def test_runaway_repeated_calls(
    turns: list[list[CallSpec]], limit: int | None, fails_on: int | None
) -> None:
    rows: list[Any] = []
    for t, calls in enumerate(turns, start=1):
        rows.append(tool_turn(*calls))
        if t != fails_on:
            rows.append([ok(0)] * len(calls))
    if fails_on is None:
        rows.append(answer("done"))
    script = run_script(start(make(max_repeated_calls=limit), "go"), rows)
    if fails_on is None:
        assert script.ok().output == "done"
        return
    err = script.failed(RunawayLoopError)
    assert script.trace[-1] == f"model#{fails_on}"  # the repeated calls never ran
    assert err.tool_name == "add"
    assert err.arguments == '{"a": 1, "b": 2}'
    cut = tool_contents(err.result)[-len(turns[fails_on - 1]) :]
    assert cut == ["Not run: the same call was repeated too often."] * len(cut)


def test_runaway_partial_result_records_every_request() -> None:
    # RunResult.turns promises one record per model request, the refused last one included.
    rows = [tool_turn(ADD_1_2), [ok(3)], tool_turn(ADD_1_2)]
    err = run_script(start(make(max_repeated_calls=1), "go"), rows).failed(RunawayLoopError)
    assert len(err.result.turns) == err.result.usage.requests == 2


@pytest.mark.parametrize(
    ("tool_retries", "own_max", "allowed"),
    [
        pytest.param(0, None, 0, id="agent-0"),
        pytest.param(2, None, 2, id="agent-2"),
        pytest.param(5, 1, 1, id="tool-max-retries-wins"),
        pytest.param(0, 2, 2, id="tool-max-retries-over-agent-0"),
    ],
)
def test_tool_retry_budget(tool_retries: int, own_max: int | None, allowed: int) -> None:
    @tool(max_retries=own_max)
    def flaky(n: int) -> str:
        """Fails a lot."""
        return _never()  # type: ignore[no-any-return]

    failures = allowed + 1
    rows = [
        turn(("flaky", {"n": i}), outcomes=[raised(RuntimeError(f"r{i}"))]) for i in range(failures)
    ]
    agent = make(tools=[flaky], tool_retries=tool_retries)
    script = run_script(start(agent, "go"), flat(*rows))
    err = script.failed(ToolRetriesExceeded)
    assert script.trace[-1] == f"tools#{failures}: flaky"  # no request after the last failure
    assert err.tool_name == "flaky"
    assert f"failed {failures} times" in str(err)
    assert f"RuntimeError: r{failures - 1}" in str(err)
    assert len(tool_contents(err.result)) == failures


def test_every_kind_of_failure_counts_against_the_retry_budget() -> None:
    agent = make(tools=[guarded], approve=lambda request: True, tool_retries=3)
    call = ("guarded", {"path": "/tmp/x"})
    rows = flat(
        tool_turn(("guarded", {"path": 1})),  # refused: bad arguments
        turn(call, outcomes=[raised(RuntimeError("boom"))]),
        turn(call, outcomes=[raised(ModelRetry("try again"))]),
        turn(call, outcomes=[CallOutcome(timed_out=True, duration=0.05)]),
    )
    script = run_script(start(agent, "go", stream=False), rows)
    err = script.failed(ToolRetriesExceeded)
    assert script.trace == ["model#1", "model#2", "tools#2: guarded", "model#3", "tools#3: guarded",
                            "model#4", "tools#4: guarded"]  # fmt: skip
    assert "failed 4 times" in str(err)


def test_denials_and_successes_do_not_count_against_the_retry_budget() -> None:
    agent = make(tools=[guarded], approve=lambda request: False, tool_retries=0)
    rows = [
        turn(("guarded", {"path": f"/tmp/{i}"}), outcomes=[CallOutcome(denied=True)])
        for i in range(3)
    ]
    done = flat(*rows, turn(("guarded", {"path": "/x"}), outcomes=[ok("gone")]), answer("ok"))
    assert run_script(start(agent, "go"), done).ok().output == "ok"


def test_unknown_tool_has_a_retry_budget_of_its_own() -> None:
    rows = [tool_turn(("subtract", {"a": i})) for i in range(2)]
    script = run_script(start(make(tool_retries=1), "go"), rows)
    err = script.failed(ToolRetriesExceeded)
    assert err.tool_name == "subtract"
    assert script.trace == ["model#1", "model#2"]


@pytest.mark.parametrize(
    ("reply", "cut_call"),
    [
        pytest.param(answer("The answer is", finish="length"), False, id="in-the-answer"),
        pytest.param(
            tool_turn(ADD_1_2, ("add", '{"a": 1, "b'), finish="length"), True, id="in-a-call"
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_truncated_output_is_never_run(reply: ChatCompletion, cut_call: bool, stream: bool) -> None:
    script = run_script(start(make(), "go", stream=stream), [reply])
    assert script.trace == ["model#1"]  # no tool run, no events for the cut turn
    err = script.failed(OutputTruncatedError)
    assert err.tool_call_truncated is cut_call
    assert "max_tokens" in str(err)
    calls = reply.message.tool_calls or []
    assert tool_contents(err.result) == ["Not run: the call was cut off."] * len(calls)
    assert (err.result.usage.requests, len(err.result.turns)) == (1, 1)


# --- retries and fallbacks ----------------------------------------------------------------------

TOOL_CHOICE_REJECTED = BadRequestError(
    "The required option for tool_choice is not yet supported", status_code=400, code=20015
)


def test_tool_choice_required_falls_back_to_auto_and_is_remembered() -> None:
    agent = make(tool_choice="required")
    rows = flat(TOOL_CHOICE_REJECTED, turn(ADD_1_2, outcomes=[ok(3)]), answer("3"))
    script = run_script(start(agent, "go"), rows)
    assert script.trace == ["model#1", "model#1", "tools#1: add", "model#2", "RunFinished"]
    assert [b["tool_choice"] for b in script.bodies] == ["required", "auto", "auto"]
    assert script.ok().usage.requests == 2  # the rejected request is not counted
    again = run_script(start(agent, "again"), [answer("hi")])
    assert again.bodies[0]["tool_choice"] == "auto"


@pytest.mark.parametrize(
    "message",
    [
        "Invalid request: response_format json_schema not supported",
        "response_format is not supported by this model",
    ],
)
def test_json_schema_falls_back_to_json_object_and_is_remembered(message: str) -> None:
    agent = make(tools=[], output_type=Weather, output_mode="json_schema")
    rejected = BadRequestError(message, status_code=400, code=20015)
    rows = [rejected, answer('{"city": "Oslo", "celsius": -3}')]
    script = run_script(start(agent, "weather?"), rows)
    assert script.trace == ["model#1", "model#1", "RunFinished"]
    first, second = script.bodies
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["city", "celsius"]
    assert second["response_format"] == {"type": "json_object"}
    assert '"celsius"' in second["messages"][0]["content"]  # the schema is in the instructions
    assert script.ok().output == Weather(city="Oslo", celsius=-3)
    again = run_script(start(agent, "again"), [answer('{"city": "Rome", "celsius": 20}')])
    assert again.bodies[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({}, RateLimitError("TPM limit reached.", status_code=429), id="429"),
        pytest.param({}, InternalServerError("boom", status_code=500), id="500"),
        pytest.param({}, APIConnectionError("connection refused"), id="connection"),
        pytest.param({}, APITimeoutError("read timed out"), id="timeout"),
        pytest.param({}, IncompleteStreamError("no [DONE]"), id="incomplete-stream"),
        pytest.param(
            {}, BadRequestError("Model does not exist.", status_code=400, code=20012), id="400"
        ),
        pytest.param({}, TOOL_CHOICE_REJECTED, id="tool-choice-not-asked-for"),
        pytest.param(
            {"output_type": Weather},
            BadRequestError("response_format json_schema not supported", status_code=400),
            id="json-schema-not-asked-for",
        ),
    ],
)
def test_other_api_errors_end_the_run_with_the_partial_result(
    options: dict[str, Any], error: APIError
) -> None:
    rows = flat(turn(ADD_1_2, outcomes=[ok(3)]), error)
    script = run_script(start(make(**options), "go"), rows)
    assert script.trace == ["model#1", "tools#1: add", "model#2"]
    err = script.failed(ModelRequestError)
    assert err.error is error
    assert err.__cause__ is error
    assert tool_contents(err.result) == ["3"]
    assert err.result.usage.requests == 1


def test_a_downgrade_is_tried_once() -> None:
    rows = [TOOL_CHOICE_REJECTED, TOOL_CHOICE_REJECTED]
    script = run_script(start(make(tool_choice="required"), "go"), rows)
    err = script.failed(ModelRequestError)
    assert err.error is TOOL_CHOICE_REJECTED
    assert [b["tool_choice"] for b in script.bodies] == ["required", "auto"]


def test_a_response_without_choices_ends_the_run() -> None:
    empty = ChatCompletion.model_validate({"id": "r", "choices": []})
    rows = flat(turn(ADD_1_2, outcomes=[ok(3)]), empty)
    err = run_script(start(make(), "go"), rows).failed(ModelRequestError)
    assert isinstance(err.error, APIResponseValidationError)
    assert tool_contents(err.result) == ["3"]


# --- structured output --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param("not json", "the answer is not valid JSON", id="not-json"),
        pytest.param('{"city": "Rome"}', "celsius: required argument is missing", id="missing"),
        pytest.param(
            '{"city": "Rome", "celsius": "warm"}',
            "celsius: Input should be a valid number",
            id="wrong-type",
        ),
    ],
)
def test_invalid_structured_answer_is_re_asked(bad: str, reason: str) -> None:
    good = answer('```json\n{"city": "Rome", "celsius": 21.5}\n```')
    script = run_script(start(make(output_type=Weather), "weather?"), [answer(bad), good])
    assert script.trace == ["model#1", "model#2", "RunFinished"]
    first, second = script.bodies
    assert first["messages"][0]["role"] == "system"
    assert '"celsius"' in first["messages"][0]["content"]
    assert first["response_format"] == second["response_format"] == {"type": "json_object"}
    assert second["messages"][-2] == {"role": "assistant", "content": bad}
    retry = second["messages"][-1]
    assert retry["role"] == "user"
    assert reason in retry["content"]
    assert retry["content"].endswith("Reply again with only the corrected JSON object.")
    result = script.ok()
    assert result.output == Weather(city="Rome", celsius=21.5)
    assert roles(result) == ["system", "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_structured_output_retries_exhausted(retries: int) -> None:
    agent = make(output_type=Weather, output_retries=retries)
    script = run_script(start(agent, "weather?"), [answer("nope")] * (retries + 1))
    assert script.trace == [f"model#{t}" for t in range(1, retries + 2)]
    err = script.failed(OutputValidationError)
    assert f"after {retries + 1} attempts" in str(err)
    assert roles(err.result) == ["system", "user", "assistant", *["user", "assistant"] * retries]


def test_output_retries_are_bounded_by_max_turns() -> None:
    agent = make(output_type=Weather, output_retries=5, max_turns=2)
    script = run_script(start(agent, "weather?"), [answer("nope")] * 2)
    script.failed(MaxTurnsExceeded)


# --- StopRun ------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["42", None, {"answer": 42}])
def test_stop_run_from_a_tool_ends_the_run_with_its_output(output: Any) -> None:
    agent = make(max_turns=1, tool_retries=0)  # the stop wins over both limits
    outcomes = [raised(StopRun(output)), raised(RuntimeError("other call failed"))]
    script = run_script(start(agent, "go"), [tool_turn(ADD_1_2, ADD_1_2), outcomes])
    assert script.trace == ["model#1", "tools#1: add add", "RunFinished"]
    result = script.ok()
    assert result.output == output
    assert tool_contents(result) == [
        "The run was stopped by this tool.",
        "Error: tool 'add' failed: RuntimeError: other call failed",
    ]
    assert result.turns[0].tool_calls[0].error is None


# --- events -------------------------------------------------------------------------------------

STREAM_TRACES = [
    pytest.param(False, ["model#1", "tools#1: add add", "model#2", "RunFinished"], id="run"),
    pytest.param(
        True,
        [
            "model#1",
            "ToolCallStarted",
            "ToolCallStarted",
            "tools#1: add add",
            "ToolResult",
            "ToolResult",
            "TurnFinished",
            "model#2",
            "TurnFinished",
            "RunFinished",
        ],
        id="stream",
    ),
]


@pytest.mark.parametrize(("stream", "trace"), STREAM_TRACES)
def test_events_only_when_streaming(stream: bool, trace: list[str]) -> None:
    first = tool_turn(ADD_1_2, ("add", {"a": 3, "b": 4}), text="Adding.")
    last = answer("3 and 7", reasoning="Add them.")
    replies = [first, [ok(3, 0.5), ok(7, 0.25)], last]
    script = run_script(start(make(), "sums", stream=stream), replies)
    assert script.trace == trace
    assert [r.stream for r in script.requests] == [stream, stream]
    result = script.ok()
    assert script.events[-1] == RunFinished(result)
    if not stream:
        return
    events = script.events
    assert events[:2] == [
        ToolCallStarted("call_0", "add", '{"a": 1, "b": 2}', 1),
        ToolCallStarted("call_1", "add", '{"a": 3, "b": 4}', 1),
    ]
    assert events[2:4] == [
        ToolResult("call_0", "add", "3", 0.5, None, 1),
        ToolResult("call_1", "add", "7", 0.25, None, 1),
    ]
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert [(e.turn, e.response) for e in finished] == [(1, first), (2, last)]
    assert [(e.usage.requests, e.usage.tool_calls) for e in finished] == [(1, 2), (2, 2)]
    # Text and reasoning deltas come from the driver, chunk by chunk; the flow adds none.
    assert not [e for e in events if isinstance(e, (TextDelta, ReasoningDelta))]


def test_events_report_refused_and_failed_calls() -> None:
    first = tool_turn(("subtract", {}), ADD_1_2)
    outcomes = [None, raised(ValueError("bad"))]
    script = run_script(start(make(), "go", stream=True), [first, outcomes, answer("no")])
    assert script.trace[:6] == [
        "model#1",
        "ToolCallStarted",
        "ToolCallStarted",
        "tools#1: !subtract add",
        "ToolResult",
        "ToolResult",
    ]
    results = [e for e in script.events if isinstance(e, ToolResult)]
    assert [(e.call_id, e.duration) for e in results] == [("call_0", 0.0), ("call_1", 0.01)]
    assert results[0].error is not None
    assert results[0].error.startswith("Error: there is no tool named 'subtract'")
    assert results[1].error == "Error: tool 'add' failed: ValueError: bad"


def test_an_error_ends_the_events_without_run_finished() -> None:
    rows = flat(turn(ADD_1_2, outcomes=[ok(3)]), RateLimitError("slow down", status_code=429))
    script = run_script(start(make(), "go", stream=True), rows)
    script.failed(ModelRequestError)
    assert not any(isinstance(e, RunFinished) for e in script.events)
    assert isinstance(script.events[-1], TurnFinished)
