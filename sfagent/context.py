"""`RunContext`: what a tool can ask to receive besides the model's arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sfagent.usage import RunUsage

DepsT = TypeVar("DepsT")


@dataclass
class RunContext(Generic[DepsT]):
    """Handed to a tool whose signature has a parameter annotated `RunContext[...]`.

    That parameter is left out of the tool's JSON schema; the model never sees or fills it.
    The agent fills it at call time.

    Attributes:
        deps: The dependencies given to the run (a database handle, a user id...).
        usage: Usage of the run so far.
        messages: The conversation so far, as wire dicts (read-only by convention).
        tool_name: The tool being called.
        tool_call_id: The id of the call being answered.
        run_id: The id the run was given (`Agent.run`'s ``run_id``; a batch task's id).
    """

    deps: DepsT
    usage: RunUsage = field(default_factory=RunUsage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None
    run_id: str | None = None
    _nesting: Any = field(default=None, repr=False, compare=False)
    """What the call passes on to a run it starts (`sfagent.run._nested.Nesting`), if any."""

    @property
    def time_left(self) -> float | None:
        """Seconds left in the run's time budget, now (``None``: no budget, or not in a run).

        Includes the budget of any run this one runs inside (an agent called as a tool).
        """
        return None if self._nesting is None else self._nesting.time_left()

    @property
    def tokens_left(self) -> int | None:
        """Tokens left in the run's token budget (``None``: no budget, or not in a run).

        Counted when the call was prepared, less what inner runs of this turn spent since;
        includes the budget of any run this one runs inside.
        """
        return None if self._nesting is None else self._nesting.tokens_left()

    @property
    def idempotency_key(self) -> str | None:
        """``"<run_id>/<tool_call_id>"``: the same when a resumed run replays this call.

        A resumed batch replays the model's recorded answers, so a call keeps its id; a tool
        with side effects (a payment, an email) can pass this key on to make a repeat
        harmless. ``None`` when the run was given no ``run_id``.
        """
        if self.run_id is None or self.tool_call_id is None:
            return None
        return f"{self.run_id}/{self.tool_call_id}"


@dataclass(frozen=True)
class ApprovalRequest:
    """What an agent's approval callback is asked about: one call of a tool that needs it.

    Attributes:
        tool_name: The tool the model wants to run.
        arguments: The arguments as the model sent them (JSON text); they have been validated.
        call_id: The model's id for the call.
        deps: The run's dependencies.
    """

    tool_name: str
    arguments: str
    call_id: str
    deps: Any = None
