"""The limits of a run: turns, budgets, runaway calls, retry budgets, truncated output.

Each check raises the matching `AgentRunError`, carrying the partial run; before raising, any
tool call left unanswered gets its `tool` message, so the messages stay valid to replay.
"""

from __future__ import annotations

from sfagent.exceptions import (
    AgentRunError,
    BudgetExceeded,
    MaxTurnsExceeded,
    OutputTruncatedError,
    RunawayLoopError,
    ToolRetriesExceeded,
)
from sfagent.messages import AssistantMessage, ChatCompletion, ToolMessage
from sfagent.result import TurnRecord
from sfagent.run._state import LoopConfig, RunState
from sfagent.run._tool_calls import PreparedCall


def check_budgets(config: LoopConfig, state: RunState) -> None:
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


def check_turns(config: LoopConfig, state: RunState) -> None:
    if state.turn >= config.max_turns:
        raise MaxTurnsExceeded(
            f"the run reached max_turns={config.max_turns} and the model still wanted to "
            "continue; raise max_turns, or continue the run from result.messages",
            result=state.partial(),
        )


def check_runaway(config: LoopConfig, state: RunState, prepared: list[PreparedCall]) -> None:
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


def check_retry_budgets(config: LoopConfig, state: RunState, prepared: list[PreparedCall]) -> None:
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


def truncated(
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


def remaining(config: LoopConfig, state: RunState) -> float | None:
    if state.deadline is None:
        return None
    return max(state.deadline - config.clock(), 0.001)
