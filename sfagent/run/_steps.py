"""A run's steps as JSON-ready values and back: what a `Steps` implementation records (pure).

A model step's value is the `ChatCompletion` as JSON data. A call step's value is what the
model was told (the tool message and the recorded error), not the tool's return value, which
need not be JSON: a replayed call sends the same message and counts the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from sfagent.exceptions import StopRun
from sfagent.messages import ChatCompletion
from sfagent.run._tool_calls import CallOutcome, PreparedCall, render_outcome

__all__ = ["completion_from", "completion_value", "outcome_from", "outcome_value"]


def completion_value(response: ChatCompletion) -> dict[str, Any]:
    """A model step's value."""
    return response.model_dump(mode="json", exclude_unset=True)


def completion_from(value: dict[str, Any]) -> ChatCompletion:
    """The `ChatCompletion` a model step recorded."""
    return ChatCompletion.model_validate(value)


def outcome_value(item: PreparedCall, outcome: CallOutcome) -> dict[str, Any]:
    """A call step's value: the message sent back, and how the call ended."""
    stop = outcome.exception if isinstance(outcome.exception, StopRun) else None
    content, error = render_outcome(item, outcome)
    value: dict[str, Any] = {
        "content": content,
        "error": error,
        "denied": outcome.denied,
        "duration": outcome.duration,
    }
    if stop is not None:
        value["stop"] = {"output": to_jsonable_python(stop.output, fallback=repr)}
    return value


def outcome_from(value: dict[str, Any]) -> CallOutcome:
    """The `CallOutcome` a call step recorded, replayed."""
    stop = value.get("stop")
    return CallOutcome(
        exception=StopRun(stop.get("output")) if isinstance(stop, dict) else None,
        denied=bool(value.get("denied")),
        duration=float(value.get("duration") or 0.0),
        replayed=(str(value["content"]), value.get("error")),
    )
