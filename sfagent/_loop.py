"""The agent loop's decisions, as a generator that does no I/O.

`run_flow` yields what it needs done — a model request (`ModelCall`), tool calls to run
(`RunCalls`), an event to emit (`Emit`) — and is sent back the result. The four drivers in
`agent.py` (sync/async × plain/streamed) only perform those actions, so every decision (when
to stop, what to send back, which limit was hit) is made here, once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sfagent._output import OutputInvalid, OutputMode, OutputSpec
from sfagent._tool_calls import DENIED, CallOutcome, PreparedCall, prepare_calls, render_outcome
from sfagent.context import RunContext
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
    APIError,
    BadRequestError,
    BudgetExceeded,
    MaxTurnsExceeded,
    ModelRequestError,
    OutputTruncatedError,
    OutputValidationError,
    RunawayLoopError,
    StopRun,
    ToolRetriesExceeded,
)
from sfagent.messages import (
    AssistantMessage,
    ChatCompletion,
    MessageBase,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from sfagent.result import RunResult, ToolCallRecord, TurnRecord
from sfagent.settings import ChatRequest, ModelSettings
from sfagent.tools import ToolSet
from sfagent.usage import RunUsage

logger = logging.getLogger("sfagent")

FINAL_REASONS = frozenset({"stop", "eos"})


@dataclass(frozen=True)
class ModelCall:
    """Action: send `request`; reply with ``(ChatCompletion, streamed: bool)``."""

    request: ChatRequest
    turn: int
    timeout: float | None


@dataclass(frozen=True)
class RunCalls:
    """Action: run the runnable calls; reply with one `CallOutcome` (or ``None``) per call."""

    calls: Sequence[PreparedCall]
    turn: int
    time_left: float | None


@dataclass(frozen=True)
class Emit:
    """Action: hand `event` to whoever listens; reply with ``None``."""

    event: Event


Action = ModelCall | RunCalls | Emit
Flow = Generator[Action, Any, RunResult[Any]]


@dataclass
class Capabilities:
    """What an endpoint turned out not to support; learned once, shared by an agent's runs."""

    tool_choice_required: bool = True
    json_schema: bool = True


@dataclass(frozen=True)
class LoopConfig:
    """Everything fixed for a run (built once per agent)."""

    model: str
    tools: ToolSet
    settings: ModelSettings | None
    instructions: str | None
    max_turns: int
    tool_retries: int
    max_total_tokens: int | None
    time_limit: float | None
    max_repeated_calls: int | None
    output: OutputSpec | None
    output_mode: OutputMode
    output_retries: int
    capabilities: Capabilities
    clock: Callable[[], float] = time.monotonic


@dataclass
class RunState:
    """What one run has done so far."""

    messages: list[MessageBase]
    deps: Any = None
    usage: RunUsage = field(default_factory=RunUsage)
    turns: list[TurnRecord] = field(default_factory=list)
    turn: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    repeats: Counter[tuple[str, str]] = field(default_factory=Counter)
    output_attempts: int = 0
    deadline: float | None = None
    settings: ModelSettings | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice_required: bool = False
    output_mode: OutputMode = "json_object"

    def partial(self) -> RunResult[Any]:
        """The run so far, for an `AgentRunError` to carry."""
        return RunResult(
            output=None,
            messages=[m.to_wire() for m in self.messages],
            usage=replace(self.usage),
            turns=tuple(self.turns),
        )


def start_state(
    config: LoopConfig,
    prompt: str | Sequence[Any] | None,
    history: Sequence[MessageBase],
    deps: Any,
) -> RunState:
    """The state a run starts from: history, system prompt if new, then the user's prompt."""
    messages = list(history)
    system = _system_prompt(config)
    if system and not any(isinstance(m, SystemMessage) for m in messages):
        messages.insert(0, SystemMessage(content=system))
    if prompt is not None:
        content: Any = prompt if isinstance(prompt, str) else list(prompt)
        messages.append(UserMessage(content=content))
    caps = config.capabilities
    state = RunState(messages=messages, deps=deps)
    state.tool_choice_required = _wants_required(config.settings) and caps.tool_choice_required
    state.output_mode = (
        config.output_mode
        if caps.json_schema or config.output_mode != "json_schema"
        else "json_object"
    )
    if config.time_limit is not None:
        state.deadline = config.clock() + config.time_limit
    state.settings = _request_settings(config, state)
    state.tools = tuple(config.tools.schemas) or None  # fixed for the run, checked once
    return state


def run_flow(config: LoopConfig, state: RunState, *, stream: bool, events: bool = True) -> Flow:
    """The loop. Yields actions; returns the `RunResult` or raises an `AgentRunError`.

    With ``events=False`` (nobody listens: `run`, `run_sync`) only `RunFinished` is emitted.
    """
    while True:
        _check_budgets(config, state)
        state.turn += 1
        request = ChatRequest(
            tuple(state.messages),  # a snapshot: the run goes on appending to its list
            model=config.model,
            tools=state.tools,
            settings=state.settings,
            stream=stream,
        )
        try:
            response, streamed = yield ModelCall(request, state.turn, _remaining(config, state))
        except APIError as exc:
            state.turn -= 1
            if _downgrade(config, state, exc):
                continue
            raise ModelRequestError(
                f"the model request failed: {exc}", error=exc, result=state.partial()
            ) from exc
        message = _message_of(response, state)
        _add_usage(state.usage, response)
        if events and not streamed:
            yield from _whole_deltas(message, state.turn)
        state.messages.append(message)
        logger.debug(
            "turn %d: finish_reason=%s tool_calls=%d",
            state.turn,
            response.finish_reason,
            len(message.tool_calls or ()),
        )
        if response.finish_reason == "length":
            raise _truncated(message, state, response)
        if message.tool_calls:
            stopped = yield from _tool_turn(config, state, response, message, events)
            if stopped is not None:
                return (yield from _finish(state, stopped.output))
            _check_turns(config, state)
            continue
        verdict = _final_answer(config, state, response, message)
        if events:
            yield Emit(TurnFinished(state.turn, response, replace(state.usage)))
        if isinstance(verdict, _Retry):
            _check_turns(config, state)
            continue
        return (yield from _finish(state, verdict.output))


@dataclass(frozen=True)
class _Output:
    output: Any


@dataclass(frozen=True)
class _Retry:
    reason: str


def _finish(state: RunState, output: Any) -> Generator[Action, Any, RunResult[Any]]:
    result = RunResult(
        output=output,
        messages=[m.to_wire() for m in state.messages],
        usage=replace(state.usage),
        turns=tuple(state.turns),
    )
    yield Emit(RunFinished(result))
    return result


def _tool_turn(
    config: LoopConfig,
    state: RunState,
    response: ChatCompletion,
    message: AssistantMessage,
    events: bool,
) -> Generator[Action, Any, StopRun | None]:
    calls = message.tool_calls or []
    wire: list[dict[str, Any]] = []  # built only if a tool takes a RunContext

    def context_for(name: str, call_id: str) -> RunContext[Any]:
        if not wire:
            wire.extend(m.to_wire() for m in state.messages)
        return RunContext(
            deps=state.deps,
            usage=replace(state.usage),
            messages=wire,
            tool_name=name,
            tool_call_id=call_id,
        )

    prepared = prepare_calls(calls, config.tools, context_for)
    _check_runaway(config, state, prepared)
    for item in prepared if events else ():
        call = item.call
        yield Emit(
            ToolCallStarted(call.id, call.function.name, call.function.arguments, state.turn)
        )
    outcomes: Sequence[CallOutcome | None] = [None] * len(prepared)
    if any(item.runnable for item in prepared):
        outcomes = yield RunCalls(prepared, state.turn, _remaining(config, state))
    records, stop = [], None
    for item, outcome in zip(prepared, outcomes, strict=True):
        if outcome is not None and isinstance(outcome.exception, StopRun):
            stop = outcome.exception
            content, error = "The run was stopped by this tool.", None
        else:
            content, error = render_outcome(item, outcome)
        duration = outcome.duration if outcome is not None else 0.0
        state.messages.append(ToolMessage(tool_call_id=item.call.id, content=content))
        records.append(
            ToolCallRecord(
                item.call.id,
                item.call.function.name,
                item.call.function.arguments,
                content,
                duration,
                error,
            )
        )
        if outcome is not None and not outcome.denied:
            state.usage.tool_calls += 1
        if error is not None and error != DENIED:
            state.failures[item.call.function.name] += 1
        if events:
            yield Emit(
                ToolResult(
                    item.call.id, item.call.function.name, content, duration, error, state.turn
                )
            )
    state.turns.append(TurnRecord(response, tuple(records)))
    if events:
        yield Emit(TurnFinished(state.turn, response, replace(state.usage)))
    if stop is None:
        _check_retry_budgets(config, state, prepared)
    return stop


def _final_answer(
    config: LoopConfig, state: RunState, response: ChatCompletion, message: AssistantMessage
) -> _Output | _Retry:
    state.turns.append(TurnRecord(response))
    spec = config.output
    if spec is None:
        return _Output(message.content or "")
    try:
        return _Output(spec.validate(message.content))
    except OutputInvalid as exc:
        if state.output_attempts >= config.output_retries:
            raise OutputValidationError(
                f"the final answer did not match the output type after "
                f"{state.output_attempts + 1} attempts: {exc}",
                result=state.partial(),
            ) from None
        state.output_attempts += 1
        state.messages.append(UserMessage(content=spec.retry_prompt(str(exc))))
        return _Retry(str(exc))


# --- limits ------------------------------------------------------------------------------------


def _check_budgets(config: LoopConfig, state: RunState) -> None:
    limit = config.max_total_tokens
    if limit is not None and state.usage.total_tokens >= limit:
        raise BudgetExceeded(
            f"token budget exhausted: {state.usage.total_tokens} tokens used of {limit}",
            budget="tokens",
            result=state.partial(),
        )
    if state.deadline is not None and config.clock() >= state.deadline:
        raise BudgetExceeded(
            f"time budget exhausted: the run took more than {config.time_limit:g} s",
            budget="time",
            result=state.partial(),
        )


def _check_turns(config: LoopConfig, state: RunState) -> None:
    if state.turn >= config.max_turns:
        raise MaxTurnsExceeded(
            f"the run reached max_turns={config.max_turns} and the model still wanted to "
            "continue; raise max_turns, or continue the run from result.messages",
            result=state.partial(),
        )


def _check_runaway(config: LoopConfig, state: RunState, prepared: list[PreparedCall]) -> None:
    limit = config.max_repeated_calls
    if limit is None:
        return
    for item in prepared:
        state.repeats[item.key] += 1
        if state.repeats[item.key] > limit:
            name, arguments = item.key
            _close_unanswered(state, prepared, "Not run: the same call was repeated too often.")
            raise RunawayLoopError(
                f"runaway loop: tool '{name}' was called with the same arguments "
                f"{state.repeats[item.key]} times (max_repeated_calls={limit})",
                tool_name=name,
                arguments=arguments,
                result=state.partial(),
            )


def _check_retry_budgets(config: LoopConfig, state: RunState, prepared: list[PreparedCall]) -> None:
    for item in prepared:
        name = item.call.function.name
        tool = item.tool
        limit = tool.max_retries if tool is not None and tool.max_retries is not None else None
        if limit is None:
            limit = config.tool_retries
        if state.failures[name] > limit:
            raise ToolRetriesExceeded(
                f"tool '{name}' failed {state.failures[name]} times in this run "
                f"(retry budget {limit}); last error: {_last_error(state, name)}",
                tool_name=name,
                result=state.partial(),
            )


def _last_error(state: RunState, name: str) -> str:
    for record in reversed(state.turns[-1].tool_calls if state.turns else ()):
        if record.name == name and record.error:
            return record.error
    return "unknown"


def _close_unanswered(state: RunState, prepared: list[PreparedCall], text: str) -> None:
    # Keep the history replayable: every tool call id gets its tool message.
    for item in prepared:
        state.messages.append(ToolMessage(tool_call_id=item.call.id, content=text))


def _truncated(
    message: AssistantMessage, state: RunState, response: ChatCompletion
) -> AgentRunError:
    state.turns.append(TurnRecord(response))
    cut_call = bool(message.tool_calls)
    if cut_call:
        # The cut call is never run; answer it so the history stays valid for a retry.
        for call in message.tool_calls or ():
            state.messages.append(
                ToolMessage(tool_call_id=call.id, content="Not run: the call was cut off.")
            )
    where = "inside a tool call (it was not run)" if cut_call else "in the answer"
    return OutputTruncatedError(
        f"the output was cut off by the token limit {where}; set a larger max_tokens "
        "(SiliconFlow's default is only 512)",
        tool_call_truncated=cut_call,
        result=state.partial(),
    )


def _remaining(config: LoopConfig, state: RunState) -> float | None:
    if state.deadline is None:
        return None
    return max(state.deadline - config.clock(), 0.001)


# --- responses -----------------------------------------------------------------------------------


def _message_of(response: ChatCompletion, state: RunState) -> AssistantMessage:
    try:
        return response.message
    except APIError as exc:
        raise ModelRequestError(
            f"the model returned no answer: {exc}", error=exc, result=state.partial()
        ) from exc


def _whole_deltas(message: AssistantMessage, turn: int) -> Generator[Action, Any, None]:
    if message.reasoning_content:
        yield Emit(ReasoningDelta(message.reasoning_content, turn))
    if message.content:
        yield Emit(TextDelta(message.content, turn))


def _add_usage(usage: RunUsage, response: ChatCompletion) -> None:
    usage.requests += 1
    got = response.usage
    if got is not None:
        usage.prompt_tokens += got.prompt_tokens
        usage.completion_tokens += got.completion_tokens
        usage.total_tokens += got.total_tokens or got.prompt_tokens + got.completion_tokens
        usage.reasoning_tokens += got.reasoning_tokens


# --- settings and downgrades -----------------------------------------------------------------


def _system_prompt(config: LoopConfig) -> str | None:
    parts = [config.instructions] if config.instructions else []
    if config.output is not None:
        parts.append(config.output.instructions())
    return "\n\n".join(parts) or None


def _wants_required(settings: ModelSettings | None) -> bool:
    return settings is not None and settings.tool_choice == "required"


def _request_settings(config: LoopConfig, state: RunState) -> ModelSettings | None:
    extra: dict[str, Any] = {}
    if _wants_required(config.settings) and not state.tool_choice_required:
        extra["tool_choice"] = "auto"
    if config.output is not None:
        extra["response_format"] = config.output.response_format(state.output_mode)
    if not extra:
        return config.settings
    override = ModelSettings(**extra)
    return config.settings.merge(override) if config.settings is not None else override


def _downgrade(config: LoopConfig, state: RunState, exc: APIError) -> bool:
    """Retry once without a feature the endpoint rejected with a 400 (and remember that)."""
    if not isinstance(exc, BadRequestError):
        return False
    text = exc.message.lower()
    if state.tool_choice_required and "tool_choice" in text:
        logger.warning("endpoint rejected tool_choice='required'; using 'auto' instead")
        state.tool_choice_required = False
        config.capabilities.tool_choice_required = False
    elif state.output_mode == "json_schema" and (
        "json_schema" in text or "response_format" in text
    ):
        logger.warning("endpoint rejected json_schema output; using json_object instead")
        state.output_mode = "json_object"
        config.capabilities.json_schema = False
    else:
        return False
    state.settings = _request_settings(config, state)
    return True
