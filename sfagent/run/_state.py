"""What a run is configured with and what it has done so far: plain data, no decisions."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sfagent.messages import MessageBase
from sfagent.result import RunResult, TurnRecord
from sfagent.run._nested import Nesting
from sfagent.run._output import OutputMode, OutputSpec
from sfagent.run._prepare import ToolSelector
from sfagent.settings import CheckedTools, ModelSettings
from sfagent.tools import ToolSet
from sfagent.usage import RunUsage


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint supports, as far as an agent has learned: a run starts from what its
    agent knows and reports what it learns (a 400 for a feature) through `RunState.learned`.
    """

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
    max_tool_calls: int | None = None
    reset_tool_choice: bool = True
    text_tool_calls: bool = True
    clock: Callable[[], float] = time.monotonic
    select_tools: ToolSelector | None = None
    """The `prepare_tools` hook that chooses each turn's tools (``None``: all of them)."""


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
    raised: dict[str, BaseException] = field(default_factory=dict)
    """The last exception each tool raised in this run (the cause of `ToolRetriesExceeded`)."""
    output_attempts: int = 0
    deadline: float | None = None
    settings: ModelSettings | None = None
    tools: CheckedTools | None = None
    choice_forced: bool = False
    """`tool_choice` still forces a call (until tools have run, unless kept)."""
    endpoint: Capabilities = field(default_factory=Capabilities)
    learned: Callable[[Capabilities], None] | None = None
    """Told what the run learned about the endpoint, so the agent's next runs know it too."""
    run_id: str | None = None
    """The caller's id for the run; tools see it (and their idempotency keys) in `RunContext`."""
    parent: Nesting | None = None
    """The budgets of the run this one runs inside (an agent called as a tool), if any."""
    offered: ToolSet | None = None
    """The tools this turn offers when `prepare_tools` chose them (``None``: all of them)."""

    def partial(self) -> RunResult[Any]:
        """The run so far, for an `AgentRunError` to carry."""
        return RunResult(
            output=None,
            messages=[m.to_wire() for m in self.messages],
            usage=replace(self.usage),
            turns=tuple(self.turns),
        )
