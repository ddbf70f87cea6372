"""The agent loop's decisions, as a generator that does no I/O.

`run_flow` yields what it needs done — a model request (`ModelCall`), tool calls to run
(`RunCalls`), an event to emit (`Emit`) — and is sent back the result. The four drivers in
`agent.py` (sync/async × plain/streamed) only perform those actions, so every decision (when
to stop, what to send back, which limit was hit) is made here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    APIError,
    BadRequestError,
    ModelRequestError,
    OutputValidationError,
    StopRun,
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
from sfagent.run._limits import (
    check_budgets,
    check_retry_budgets,
    check_runaway,
    check_turns,
    remaining,
    truncated,
)
from sfagent.run._output import OutputInvalid
from sfagent.run._state import LoopConfig, RunState
from sfagent.run._tool_calls import DENIED, CallOutcome, PreparedCall, prepare_calls, render_outcome
from sfagent.settings import ChatRequest, ModelSettings
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
        check_budgets(config, state)
        state.turn += 1
        request = ChatRequest(
            tuple(state.messages),  # a snapshot: the run goes on appending to its list
            model=config.model,
            tools=state.tools,
            settings=state.settings,
            stream=stream,
        )
        try:
            response, streamed = yield ModelCall(request, state.turn, remaining(config, state))
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
            raise truncated(message, state, response)
        if message.tool_calls:
            stopped = yield from _tool_turn(config, state, response, message, events)
            if stopped is not None:
                return (yield from _finish(state, stopped.output))
            check_turns(config, state)
            continue
        verdict = _final_answer(config, state, response, message)
        if events:
            yield Emit(TurnFinished(state.turn, response, replace(state.usage)))
        if isinstance(verdict, _Retry):
            check_turns(config, state)
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
    check_runaway(config, state, prepared)
    for item in prepared if events else ():
        call = item.call
        yield Emit(
            ToolCallStarted(call.id, call.function.name, call.function.arguments, state.turn)
        )
    outcomes: Sequence[CallOutcome | None] = [None] * len(prepared)
    if any(item.runnable for item in prepared):
        outcomes = yield RunCalls(prepared, state.turn, remaining(config, state))
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
        check_retry_budgets(config, state, prepared)
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
