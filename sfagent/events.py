"""Events a run emits, in order: the same sequence whether its requests streamed or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sfagent.messages import ChatCompletion
    from sfagent.result import RunResult
    from sfagent.usage import RunUsage

__all__ = [
    "Event",
    "NestedEvent",
    "ReasoningDelta",
    "RunFinished",
    "TextDelta",
    "ToolCallStarted",
    "ToolCallsFromText",
    "ToolResult",
    "TurnFinished",
]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text (a whole turn's text when the request did not stream).

    Attributes:
        text: The new text.
        turn: The turn (model request) it belongs to, from 1.
    """

    text: str
    turn: int


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning (`reasoning_content`).

    Attributes:
        text: The new reasoning text.
        turn: The turn it belongs to, from 1.
    """

    text: str
    turn: int


@dataclass(frozen=True)
class ToolCallStarted:
    """A tool call is about to run (after its arguments were checked).

    Attributes:
        call_id: The model's id for the call.
        name: The tool's name.
        arguments: The arguments as the model sent them (JSON text).
        turn: The turn it belongs to.
    """

    call_id: str
    name: str
    arguments: str
    turn: int


@dataclass(frozen=True)
class ToolResult:
    """A tool call ended: its result text went back to the model.

    Attributes:
        call_id: The model's id for the call.
        name: The tool's name.
        content: The text sent to the model.
        duration: Seconds the call took (0 when it never ran).
        error: What went wrong (bad arguments, exception, timeout, denial), or ``None``.
        turn: The turn it belongs to.
        exception: The exception the tool raised, traceback attached, or ``None``.
    """

    call_id: str
    name: str
    content: str
    duration: float
    error: str | None
    turn: int
    exception: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ToolCallsFromText:
    """The model wrote tool calls into its answer's text (Hermes/Qwen, Qwen3-Coder or GLM
    markup) instead of sending them as tool calls; the agent runs them as calls.

    Attributes:
        turn: The turn whose answer held them.
        format: ``"hermes"``, ``"qwen3_coder"`` or ``"glm"``.
        tools: The tools called, in order.
    """

    turn: int
    format: str
    tools: tuple[str, ...]


@dataclass(frozen=True)
class TurnFinished:
    """A model request and the tool calls it asked for are done.

    Attributes:
        turn: The turn number, from 1.
        response: The model's response (a stream folded into the same value).
        usage: The run's usage so far.
    """

    turn: int
    response: ChatCompletion
    usage: RunUsage


@dataclass(frozen=True)
class RunFinished:
    """The run ended with an answer; always the last event.

    Attributes:
        result: What the run hands back.
    """

    result: RunResult[Any]


@dataclass(frozen=True)
class NestedEvent:
    """An event of an inner run: an agent called as a tool (`Agent.as_tool`) is running.

    Emitted in a streamed run between the call's `ToolCallStarted` and its `ToolResult`, as the
    inner run emits them. An inner run of an inner run arrives wrapped twice.

    Attributes:
        call_id: The id of the call that started the inner run.
        tool_name: The tool's name (the agent's, as the calling model knows it).
        turn: The calling run's turn.
        event: The inner run's event, its `turn` counted in the inner run.
    """

    call_id: str
    tool_name: str
    turn: int
    event: Event


Event = (
    TextDelta
    | ReasoningDelta
    | ToolCallsFromText
    | ToolCallStarted
    | ToolResult
    | NestedEvent
    | TurnFinished
    | RunFinished
)
"""Any event of a run."""
