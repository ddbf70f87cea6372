"""The agent loop's decisions, as a generator that does no I/O.

`run_flow` yields what it needs done (the actions of `_actions`: a model request, tool calls
to run, an event to emit) and is sent back the result. The drivers only perform those
actions, so every decision (when to stop, what to send back, which limit was hit) is made
here, once. Events are emitted only for streamed runs: `run` and `run_sync` have no listener.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sfagent.context import RunContext
from sfagent.events import (
    RunFinished,
    ToolCallsFromText,
    ToolCallStarted,
    ToolResult,
    TurnFinished,
)
from sfagent.exceptions import (
    AgentRunError,
    APIError,
    BudgetExceeded,
    OutputValidationError,
    StopRun,
    ToolSelectionError,
    UserError,
    model_request_error,
)
from sfagent.messages import (
    AssistantMessage,
    AudioPart,
    ChatCompletion,
    ImagePart,
    MessageBase,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    VideoPart,
)
from sfagent.result import RunResult, ToolCallRecord, TurnRecord
from sfagent.run._actions import Action, Emit, Flow, ModelCall, RunCalls
from sfagent.run._limits import (
    out_of_retries,
    out_of_turns,
    over_budget,
    repeated_call,
    time_left,
    time_spent,
    truncation,
)
from sfagent.run._nested import AgentTool, NestedResult, Nesting
from sfagent.run._output import OutputInvalid
from sfagent.run._requests import (
    downgrade,
    forces_a_call,
    request_settings,
    system_prompt,
    wants_required,
)
from sfagent.run._state import Capabilities, LoopConfig, RunState
from sfagent.run._text_calls import find_text_calls
from sfagent.run._tool_calls import (
    DENIED,
    CallOutcome,
    PreparedCall,
    prepare_calls,
    render_outcome as render,
)
from sfagent.run._usage import add_usage
from sfagent.settings import ChatRequest
from sfagent.tools import ToolSet
from sfagent.usage import RunUsage

logger = logging.getLogger("sfagent")

FINAL_REASONS = frozenset({"stop", "eos"})


def start_state(
    config: LoopConfig,
    prompt: str | Sequence[Any] | None,
    history: Sequence[MessageBase],
    deps: Any,
    *,
    endpoint: Capabilities | None = None,
    learned: Any = None,
    run_id: str | None = None,
    elapsed: float = 0.0,
    parent: Nesting | None = None,
) -> RunState:
    """The state a run starts from: history, system prompt if new, then the user's prompt.

    Args:
        config: The agent's loop settings.
        prompt: The user's new message, if any.
        history: The conversation so far.
        deps: Handed to tools through `RunContext`.
        endpoint: What the agent has learned about its endpoint so far.
        learned: Called with what this run learns about the endpoint (see `RunState`).
        run_id: The caller's id for the run (see `RunContext.run_id`).
        elapsed: Seconds of the time budget spent before this start (a resumed run's).
        parent: The budgets of the run this one runs inside (an agent called as a tool).
    """
    messages = list(history)
    system = system_prompt(config)
    if system and not any(isinstance(m, SystemMessage) for m in messages):
        messages.insert(0, SystemMessage(content=system))
    if prompt is not None:
        messages.append(UserMessage(content=_prompt_content(prompt)))
    known = endpoint if endpoint is not None else Capabilities()
    state = RunState(messages=messages, deps=deps, endpoint=known, learned=learned, run_id=run_id)
    state.choice_forced = forces_a_call(config.settings) and (
        known.tool_choice_required or not wants_required(config.settings)
    )
    if config.time_limit is not None:
        state.deadline = config.clock() + config.time_limit - elapsed
    if parent is not None:
        state.parent = parent
        bound = parent.inner_deadline(config.clock)
        if bound is not None and (state.deadline is None or bound < state.deadline):
            state.deadline = bound
    state.settings = request_settings(config, state)
    if config.select_tools is None:  # else chosen before each request
        state.tools = config.tools.request_tools or None  # checked once per ToolSet change
    return state


def _prompt_content(prompt: str | Sequence[Any]) -> str | list[Any]:
    """A prompt as message content: text, or parts where plain strings become text parts."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (bytes, bytearray)) or not isinstance(prompt, Sequence):
        raise UserError(
            f"a prompt is text or a list of text and content parts, got {type(prompt).__name__}"
        )
    parts: list[Any] = []
    for i, part in enumerate(prompt):
        if isinstance(part, str):
            parts.append(TextPart(text=part))
        elif isinstance(part, (TextPart, ImagePart, VideoPart, AudioPart)):
            parts.append(part)
        else:
            raise UserError(
                f"prompt[{i}] must be text or a content part (TextPart, ImagePart from "
                f"image_part(), VideoPart, AudioPart), got {type(part).__name__}"
            )
    return parts


def run_flow(config: LoopConfig, state: RunState, *, stream: bool) -> Flow:
    """The loop. Yields actions; returns the `RunResult` or raises an `AgentRunError`.

    With ``stream=False`` nobody listens (`run`, `run_sync`): only `RunFinished` is emitted.
    """
    while True:
        _apply(state, over_budget(config, state))
        response = yield from _request(config, state, stream)
        if response is None:
            continue  # the endpoint refused a feature; asked again without it
        message = _accept(state, response)
        recovered = _calls_in_text(config, state, response, message)
        if recovered is not None:
            message = recovered.message
            if stream:
                yield Emit(recovered.event)
        if response.finish_reason == "length":
            state.turns.append(TurnRecord(response))
            _answer_calls(state, message, "Not run: the call was cut off.")
            _apply(state, truncation(message))
        if message.tool_calls:
            stopped = yield from _tool_turn(config, state, response, message, stream)
            if stopped is not None:
                return (yield from _finish(state, stopped.output))
        else:
            answer = _final_answer(config, state, response, message)
            if stream:
                yield Emit(TurnFinished(state.turn, response, replace(state.usage)))
            if not isinstance(answer, _Retry):
                return (yield from _finish(state, answer.output))
        _apply(state, out_of_turns(config, state))


@dataclass(frozen=True)
class _Recovered:
    message: AssistantMessage
    event: ToolCallsFromText


def _calls_in_text(
    config: LoopConfig, state: RunState, response: ChatCompletion, message: AssistantMessage
) -> _Recovered | None:
    """Tool calls a model wrote into a final answer's text, taken as the calls they are.

    Only on a turn that stopped normally, without native calls, when the text is nothing but
    well-formed markup of a known format (and prose) naming registered tools; the message in
    the conversation is replaced by one carrying the calls, so the history replays as calls.
    """
    if (
        not config.text_tool_calls
        or message.tool_calls
        or response.finish_reason not in FINAL_REASONS
        or not message.content
        or not len(_offered(config, state))
    ):
        return None
    tools = _offered(config, state)
    found = find_text_calls(
        message.content,
        tools.names,
        schemas={t.name: t.parameters for t in tools},
        id_prefix=f"text_call_{state.turn}_",
    )
    if found is None:
        return None
    logger.debug(
        "turn %d: %d tool calls written as text (%s)", state.turn, len(found.calls), found.format
    )
    rewritten = AssistantMessage(
        content=found.content,
        reasoning_content=message.reasoning_content,
        tool_calls=list(found.calls),
    )
    state.messages[-1] = rewritten
    event = ToolCallsFromText(state.turn, found.format, tuple(c.function.name for c in found.calls))
    return _Recovered(rewritten, event)


@dataclass(frozen=True)
class _Output:
    output: Any


@dataclass(frozen=True)
class _Retry:
    reason: str


def _apply(state: RunState, verdict: AgentRunError | None) -> None:
    """End the run with `verdict`, if there is one, carrying the run so far."""
    if verdict is not None:
        verdict.result = state.partial()
        raise verdict


def _request(
    config: LoopConfig, state: RunState, stream: bool
) -> Generator[Action, Any, ChatCompletion | None]:
    """One model request; ``None`` when it was refused and should be sent again."""
    if config.select_tools is not None:
        _choose_tools(config, state)
    request = ChatRequest(
        tuple(state.messages),  # a snapshot: the run goes on appending to its list
        model=config.model,
        tools=state.tools,
        settings=state.settings,
        stream=stream,
    )
    try:
        response = yield ModelCall(request, state.turn + 1, time_left(config, state))
    except APIError as exc:
        if downgrade(config, state, exc):
            return None
        if state.deadline is not None and config.clock() >= state.deadline:
            raise _out_of_time(config, state, exc) from exc
        message = f"the model request failed: {exc}"
        raise model_request_error(exc, message=message, result=state.partial()) from exc
    state.turn += 1
    return response  # type: ignore[no-any-return]


def _choose_tools(config: LoopConfig, state: RunState) -> None:
    """Ask `prepare_tools` for this turn's tools (it sees the conversation so far)."""
    assert config.select_tools is not None
    context: RunContext[Any] = RunContext(
        deps=state.deps,
        usage=replace(state.usage),
        messages=[m.to_wire() for m in state.messages],
        run_id=state.run_id,
        _nesting=_nesting(config, state),
    )
    try:
        chosen = config.select_tools.select(context)
        _check_forced_choice(state, chosen)
    except ToolSelectionError as exc:
        _apply(state, exc)
        raise  # pragma: no cover - _apply raised
    state.offered = chosen
    state.tools = chosen.request_tools or None


def _check_forced_choice(state: RunState, chosen: ToolSet) -> None:
    """A `tool_choice` still forcing a call needs the tool (or any tool) it forces."""
    choice = state.settings.tool_choice if state.settings is not None else None
    if choice == "required" and not len(chosen):
        raise ToolSelectionError("prepare_tools chose no tools while tool_choice='required'")
    if isinstance(choice, Mapping):
        name = choice.get("function", {}).get("name")
        if name not in chosen:
            raise ToolSelectionError(
                f"prepare_tools left out '{name}', which tool_choice forces the model to call"
            )


def _offered(config: LoopConfig, state: RunState) -> ToolSet:
    """The tools the model was offered this turn: a call to any other is a call to no tool."""
    return config.tools if state.offered is None else state.offered


def _out_of_time(config: LoopConfig, state: RunState, exc: APIError) -> AgentRunError:
    """The run's time ran out during a request: keep what it streamed, marked incomplete."""
    partial = getattr(exc, "partial", None)
    if isinstance(partial, ChatCompletion) and partial.choices:
        add_usage(state.usage, partial, state.messages)
        state.turns.append(TurnRecord(partial, incomplete=True))
    error = BudgetExceeded(
        f"time budget exhausted: {time_spent(config, state)} "
        f"(a model request was cut off: {type(exc).__name__})",
        budget="time",
    )
    error.result = state.partial()
    return error


def _accept(state: RunState, response: ChatCompletion) -> AssistantMessage:
    """Take the response's message into the conversation and its usage into the totals."""
    try:
        message = response.message
    except APIError as exc:
        text = f"the model returned no answer: {exc}"
        raise model_request_error(exc, message=text, result=state.partial()) from exc
    before = state.usage.total_tokens
    add_usage(state.usage, response, state.messages)
    if state.parent is not None:  # inner runs side by side share the caller's budget
        state.parent.charge(state.usage.total_tokens - before)
    message = _unique_call_ids(message)
    state.messages.append(message)
    logger.debug(
        "turn %d: finish_reason=%s tool_calls=%d",
        state.turn,
        response.finish_reason,
        len(message.tool_calls or ()),
    )
    return message


def _unique_call_ids(message: AssistantMessage) -> AssistantMessage:
    """The message with every tool call's id unique (a repeated one gets a suffix).

    Each call is answered by a tool message naming its id; two calls sharing one (a server
    that reuses ids) would leave the model unable to tell their results apart.
    """
    calls = message.tool_calls or []
    ids = [call.id for call in calls]
    if len(set(ids)) == len(ids):
        return message
    seen: set[str] = set()
    renamed = []
    for position, call in enumerate(calls):
        new_id = call.id if call.id not in seen else f"{call.id}_{position}"
        seen.add(new_id)
        renamed.append(call if new_id == call.id else call.model_copy(update={"id": new_id}))
    return message.model_copy(update={"tool_calls": renamed})


def _finish(state: RunState, output: Any) -> Generator[Action, Any, RunResult[Any]]:
    result = RunResult(
        output=output,
        messages=[m.to_wire() for m in state.messages],
        usage=replace(state.usage),
        turns=tuple(state.turns),
    )
    yield Emit(RunFinished(result))
    return result


# --- tool turns ----------------------------------------------------------------------------


def _tool_turn(
    config: LoopConfig,
    state: RunState,
    response: ChatCompletion,
    message: AssistantMessage,
    events: bool,
) -> Generator[Action, Any, StopRun | None]:
    contexts = _Contexts(config, state)
    prepared = prepare_calls(
        message.tool_calls or [],
        _offered(config, state),
        contexts,
        max_calls=config.max_tool_calls,
    )
    state.repeats.update(item.key for item in prepared)
    runaway = repeated_call(config, state.repeats, prepared)
    if runaway is not None:
        state.turns.append(TurnRecord(response))
        _answer_calls(state, message, "Not run: the same call was repeated too often.")
        _apply(state, runaway)
    if events:
        for item in prepared:
            call = item.call
            started = ToolCallStarted(
                call.id, call.function.name, call.function.arguments, state.turn
            )
            yield Emit(started)
    outcomes: Sequence[CallOutcome | None] = [None] * len(prepared)
    if any(item.runnable for item in prepared):
        nesting = contexts.nesting if events else None
        if nesting is not None and not any(isinstance(i.tool, AgentTool) for i in prepared):
            nesting = None  # no inner run to listen to: the driver's plain path
        outcomes = yield RunCalls(prepared, state.turn, time_left(config, state), nesting)
    records, stop = [], None
    for item, outcome in zip(prepared, outcomes, strict=True):
        record, stopped = _record(state, item, outcome)
        records.append(record)
        if stopped is not None:
            stop = stopped
        if events:
            raised = outcome.exception if outcome is not None else None
            yield Emit(_tool_result(record, state.turn, raised))
    state.turns.append(TurnRecord(response, tuple(records)))
    if state.choice_forced and config.reset_tool_choice and any(o is not None for o in outcomes):
        # A forced call has run: from now on the model may answer (or a forced run could
        # only end in a runaway loop).
        state.choice_forced = False
        state.settings = request_settings(config, state)
    if events:
        yield Emit(TurnFinished(state.turn, response, replace(state.usage)))
    if stop is None:
        exhausted = out_of_retries(config, state, prepared)
        if exhausted is not None:
            exhausted.__cause__ = state.raised.get(exhausted.tool_name)
        _apply(state, exhausted)
    return stop


class _Contexts:
    """``(tool_name, call_id) -> RunContext`` for the tools of a turn that take one."""

    __slots__ = ("config", "nesting", "state", "wire")

    def __init__(self, config: LoopConfig, state: RunState) -> None:
        self.config = config
        self.state = state
        self.wire: list[dict[str, Any]] = []  # built only if a tool takes a RunContext
        self.nesting: Nesting | None = None  # shared by the turn's calls, made with the first

    def __call__(self, name: str, call_id: str) -> RunContext[Any]:
        state = self.state
        if self.nesting is None:
            self.wire.extend(m.to_wire() for m in state.messages)
            self.nesting = _nesting(self.config, state)
        return RunContext(
            deps=state.deps,
            usage=replace(state.usage),
            messages=self.wire,
            tool_name=name,
            tool_call_id=call_id,
            run_id=state.run_id,
            _nesting=self.nesting,
        )


def _nesting(config: LoopConfig, state: RunState) -> Nesting:
    """What the calls of this turn pass on: the time and tokens the run has left."""
    deadline = None
    if state.deadline is not None:  # on time.monotonic, whatever the run's own clock
        deadline = time.monotonic() + max(state.deadline - config.clock(), 0.0)
    limit = config.max_total_tokens
    tokens = None if limit is None else limit - state.usage.total_tokens
    return Nesting(turn=state.turn, deadline=deadline, tokens=tokens, up=state.parent)


def _record(
    state: RunState, item: PreparedCall, outcome: CallOutcome | None
) -> tuple[ToolCallRecord, StopRun | None]:
    """Answer one call in the conversation, count it, and record it."""
    call = item.call
    stop = outcome.exception if outcome is not None else None
    if isinstance(stop, StopRun):
        content, error = "The run was stopped by this tool.", None
    else:
        stop = None
        content, error = render(item, outcome)
    duration = outcome.duration if outcome is not None else 0.0
    raised = outcome.exception if outcome is not None else None
    if raised is not None and stop is None:
        # Kept with its traceback: the model sees one line; whoever debugs needs the rest.
        state.raised[call.function.name] = raised
        logger.debug(
            "tool %r raised %s", call.function.name, type(raised).__name__, exc_info=raised
        )
    state.messages.append(ToolMessage(tool_call_id=call.id, content=content))
    if outcome is not None and not outcome.denied:
        state.usage.tool_calls += 1
    if error is not None and error != DENIED and not item.skipped:
        state.failures[call.function.name] += 1
    sub_run = _sub_run(item, outcome)
    if sub_run is not None:
        _add_into(state.usage, sub_run.usage)
    record = ToolCallRecord(
        call.id, call.function.name, call.function.arguments, content, duration, error, sub_run
    )
    return record, stop


def _sub_run(item: PreparedCall, outcome: CallOutcome | None) -> RunResult[Any] | None:
    """The run an agent tool's call made: finished, or the partial run of its error."""
    if outcome is None or not isinstance(item.tool, AgentTool):
        return None
    if isinstance(outcome.value, NestedResult):
        return outcome.value.result
    partial = getattr(outcome.exception, "result", None)
    return partial if isinstance(partial, RunResult) else None


def _add_into(usage: RunUsage, inner: RunUsage) -> None:
    # The caller's budget counts what its inner runs spent (each charged it as it went, for
    # their siblings' sake; the totals move here, once).
    usage.requests += inner.requests
    usage.prompt_tokens += inner.prompt_tokens
    usage.completion_tokens += inner.completion_tokens
    usage.total_tokens += inner.total_tokens
    usage.reasoning_tokens += inner.reasoning_tokens
    usage.tool_calls += inner.tool_calls
    usage.estimated = usage.estimated or inner.estimated


def _tool_result(record: ToolCallRecord, turn: int, raised: BaseException | None) -> ToolResult:
    return ToolResult(
        record.call_id, record.name, record.content, record.duration, record.error, turn, raised
    )


def _answer_calls(state: RunState, message: AssistantMessage, text: str) -> None:
    # Keep the history replayable: every tool call id gets its tool message.
    for call in message.tool_calls or ():
        state.messages.append(ToolMessage(tool_call_id=call.id, content=text))


# --- final answers --------------------------------------------------------------------------


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
