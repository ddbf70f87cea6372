"""The model's tool calls → checked calls ready to run, and outcomes → text for the model.

Pure: nothing here runs a tool. The drivers run what `prepare_calls` marks runnable and hand
back one `CallOutcome` per call; `render_outcome` turns each into the `tool` message content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sfagent._text import shorten
from sfagent.context import RunContext
from sfagent.exceptions import ModelRetry, ToolArgumentsError, ToolOutputError
from sfagent.messages import ToolCall
from sfagent.run._nested import NestedResult
from sfagent.tools import Tool, ToolSet, tool_result_text

DENIED = "denied"

# A name the model invented is quoted back to it only this far: it is also re-sent every turn.
_MAX_NAME_ECHO = 64
_MAX_ERROR_ECHO = 2000


@dataclass
class PreparedCall:
    """One tool call, checked: either runnable (`tool`, `args`, `kwargs`) or refused (`error`).

    Attributes:
        call: The model's call.
        tool: The tool it names, if that exists.
        args: Positional arguments for the function.
        kwargs: Keyword arguments for the function.
        error: Why the call cannot run (unknown tool, bad arguments), written for the model.
        key: The call's identity for runaway detection: name plus canonical arguments.
        skipped: Refused unchecked for being past `max_tool_calls` (not the tool's failure).
    """

    call: ToolCall
    tool: Tool[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    key: tuple[str, str] = ("", "")
    skipped: bool = False

    @property
    def runnable(self) -> bool:
        """Whether the call passed its checks."""
        return self.error is None and self.tool is not None


@dataclass(frozen=True)
class CallOutcome:
    """What happened when a driver ran (or did not run) a prepared call.

    Attributes:
        value: The tool's return value.
        exception: What the tool raised, if anything.
        timed_out: The call exceeded the tool's timeout.
        denied: The approval callback said no.
        duration: Seconds spent.
        replayed: The tool message and error recorded when the call first ran (a journal's
            replay): sent as they were, whatever the other fields say.
    """

    value: Any = None
    exception: BaseException | None = None
    timed_out: bool = False
    denied: bool = False
    duration: float = 0.0
    replayed: tuple[str, str | None] | None = None


def prepare_calls(
    calls: Sequence[ToolCall],
    tools: ToolSet,
    context_for: Any,
    *,
    max_calls: int | None = None,
) -> list[PreparedCall]:
    """Check every call: the tool exists and its arguments validate.

    Args:
        calls: The assistant message's tool calls, in order.
        tools: The agent's tools.
        context_for: ``(tool_name, call_id) -> RunContext`` for tools that take one.
        max_calls: Calls past this many are refused unchecked (the model is told why).
    """
    prepared = []
    for position, call in enumerate(calls):
        name, arguments = call.function.name, call.function.arguments
        item = PreparedCall(call=call, key=(name, _canonical(arguments)))
        tool = tools.get(name)
        if max_calls is not None and position >= max_calls:
            item.skipped = True
            item.error = (
                f"Not run: at most {max_calls} tool calls are run per turn "
                "(max_tool_calls); make the remaining calls in a later turn."
            )
        elif tool is None:
            known = ", ".join(tools.names) or "none"
            shown = shorten(name, _MAX_NAME_ECHO)
            item.error = f"Error: there is no tool named '{shown}'. Available tools: {known}."
        else:
            item.tool = tool
            context: RunContext[Any] | None = (
                context_for(name, call.id) if tool.takes_context else None
            )
            try:
                item.args, item.kwargs = tool.bind(arguments, context=context)
            except ToolArgumentsError as exc:
                item.error = f"Error: {exc}. Call the tool again with corrected arguments."
        prepared.append(item)
    return prepared


def render_outcome(item: PreparedCall, outcome: CallOutcome | None) -> tuple[str, str | None]:
    """The `tool` message content for a call and the error to record (``None`` on success)."""
    if item.error is not None or outcome is None:
        return item.error or "Error: the call was not run.", item.error
    if outcome.replayed is not None:
        return outcome.replayed
    name = item.call.function.name
    if outcome.denied:
        text = f"The user did not approve this call to '{name}'; it was not run."
        return text, DENIED
    if outcome.timed_out:
        timeout = item.tool.timeout if item.tool is not None else None
        if timeout is not None and outcome.duration >= timeout * 0.99:
            text = f"Error: tool '{name}' did not finish within {timeout:g} s."
        else:
            text = f"Error: tool '{name}' was cut short: the run's time budget ran out."
        return text, text
    exc = outcome.exception
    if isinstance(exc, ModelRetry):
        return exc.message, exc.message
    if exc is not None:
        detail = shorten(str(exc), _MAX_ERROR_ECHO)
        text = f"Error: tool '{name}' failed: {type(exc).__name__}: {detail}"
        return text, text
    value = outcome.value
    if isinstance(value, NestedResult):  # an agent tool's run: the model reads its answer
        value = value.output
    try:
        return tool_result_text(value), None
    except ToolOutputError as exc:
        text = f"Error: tool '{name}' returned a value that cannot be sent: {exc}"
        return text, text


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # not JSON, or nested past the parser
        return arguments
