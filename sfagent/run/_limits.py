"""The limits of a run, as verdicts: turns, budgets, runaway calls, retry budgets, truncation.

Each function reads the run and answers with the `AgentRunError` that should end it, or
``None``; none of them changes anything. `run_flow` applies a verdict: it answers any tool
call left open (so the messages stay valid to replay), attaches the partial run, and raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sfagent.exceptions import (
    BudgetExceeded,
    MaxTurnsExceeded,
    OutputTruncatedError,
    RunawayLoopError,
    ToolRetriesExceeded,
)
from sfagent.messages import AssistantMessage
from sfagent.run._state import LoopConfig, RunState
from sfagent.run._tool_calls import PreparedCall


def over_budget(config: LoopConfig, state: RunState) -> BudgetExceeded | None:
    """The token or time budget is spent (checked before each request)."""
    limit = config.max_total_tokens
    if limit is not None and state.usage.total_tokens >= limit:
        return BudgetExceeded(
            f"token budget exhausted: {state.usage.total_tokens} tokens used of {limit}",
            budget="tokens",
        )
    if state.deadline is not None and config.clock() >= state.deadline:
        return BudgetExceeded(f"time budget exhausted: {time_spent(config, state)}", budget="time")
    parent = state.parent
    if parent is not None:
        left = parent.tokens_left()
        if left is not None and left <= 0:
            return BudgetExceeded(
                "token budget exhausted: the calling run's budget is spent "
                "(this run is an agent called as a tool)",
                budget="tokens",
            )
    return None


def time_spent(config: LoopConfig, state: RunState) -> str:
    """Why a run's deadline passed: its own `time_limit`, or the calling run's."""
    if state.parent is not None and state.parent.deadline is not None:
        return (
            "the run (an agent called as a tool) reached its deadline: its own time_limit "
            "or the calling run's, whichever came first"
        )
    return f"the run took more than {config.time_limit:g} s"


def out_of_turns(config: LoopConfig, state: RunState) -> MaxTurnsExceeded | None:
    """The model wants another turn and `max_turns` requests were made."""
    if state.turn < config.max_turns:
        return None
    return MaxTurnsExceeded(
        f"the run reached max_turns={config.max_turns} and the model still wanted to "
        "continue; raise max_turns, or continue the run from result.messages"
    )


def repeated_call(
    config: LoopConfig, repeats: Counter[tuple[str, str]], prepared: Sequence[PreparedCall]
) -> RunawayLoopError | None:
    """A call of this turn was made more often than `max_repeated_calls` (counts included)."""
    limit = config.max_repeated_calls
    if limit is None:
        return None
    for item in prepared:
        if repeats[item.key] > limit:
            name, arguments = item.key
            return RunawayLoopError(
                f"runaway loop: tool '{name}' was called with the same arguments "
                f"{repeats[item.key]} times (max_repeated_calls={limit})",
                tool_name=name,
                arguments=arguments,
            )
    return None


def out_of_retries(
    config: LoopConfig, state: RunState, prepared: Sequence[PreparedCall]
) -> ToolRetriesExceeded | None:
    """A tool of this turn failed more often than its retry budget allows."""
    for item in prepared:
        name = item.call.function.name
        tool = item.tool
        limit = tool.max_retries if tool is not None and tool.max_retries is not None else None
        if limit is None:
            limit = config.tool_retries
        if state.failures[name] > limit:
            return ToolRetriesExceeded(
                f"tool '{name}' failed {state.failures[name]} times in this run "
                f"(retry budget {limit}); last error: {_last_error(state, name)}",
                tool_name=name,
            )
    return None


def truncation(message: AssistantMessage) -> OutputTruncatedError:
    """The verdict on a turn that ended with ``finish_reason == "length"``."""
    cut_call = bool(message.tool_calls)
    where = "inside a tool call (it was not run)" if cut_call else "in the answer"
    return OutputTruncatedError(
        f"the output was cut off by the token limit {where}; set a larger max_tokens "
        "(SiliconFlow's default is only 512)",
        tool_call_truncated=cut_call,
    )


def time_left(config: LoopConfig, state: RunState) -> float | None:
    """Seconds left in the run's time budget (``None``: no budget; never quite zero)."""
    if state.deadline is None:
        return None
    return max(state.deadline - config.clock(), 0.001)


def _last_error(state: RunState, name: str) -> str:
    for record in reversed(state.turns[-1].tool_calls if state.turns else ()):
        if record.name == name and record.error:
            return record.error
    return "unknown"
