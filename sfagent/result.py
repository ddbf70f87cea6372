"""What a run hands back: output, messages, usage and a record of every turn."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sfagent.usage import RunUsage

if TYPE_CHECKING:
    from sfagent.messages import ChatCompletion

__all__ = ["RunResult", "ToolCallRecord", "TurnRecord"]

OutputT = TypeVar("OutputT")


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call of a turn.

    Attributes:
        call_id: The model's id for the call.
        name: The tool called (possibly one that does not exist).
        arguments: The arguments as the model sent them.
        content: The text sent back to the model.
        duration: Seconds the call ran (0 when it never ran).
        error: What went wrong, or ``None``.
        sub_run: The run the call started, when the tool is an agent (`Agent.as_tool`): its
            whole transcript, usage and turns (a partial run when it failed); else ``None``.
    """

    call_id: str
    name: str
    arguments: str
    content: str
    duration: float
    error: str | None = None
    sub_run: RunResult[Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TurnRecord:
    """One model request and the tool calls it led to.

    Attributes:
        response: The model's response.
        tool_calls: The calls run (or refused) after it, in call order.
        incomplete: The request was cut off (the run's time ran out while it streamed):
            `response` holds what had arrived, with no finish reason, and nothing of it is in
            the run's messages.
    """

    response: ChatCompletion
    tool_calls: tuple[ToolCallRecord, ...] = ()
    incomplete: bool = False


@dataclass(frozen=True)
class RunResult(Generic[OutputT]):
    """The outcome of a run.

    Attributes:
        output: The final answer: text, or an instance of the agent's `output_type`;
            ``None`` in the partial result an `AgentRunError` carries.
        messages: The whole conversation as JSON-serialisable wire dicts; pass them back as
            `messages=` to continue it. They are the messages' own cached dicts: copy one
            before changing it.
        usage: Totals over every request of the run.
        turns: One record per model request.
    """

    output: OutputT
    messages: list[dict[str, Any]]
    usage: RunUsage = field(default_factory=RunUsage)
    turns: tuple[TurnRecord, ...] = ()

    def to_json(self) -> str:
        """The conversation as JSON text (the messages only; reload with `json.loads`)."""
        return json.dumps(self.messages, ensure_ascii=False)
