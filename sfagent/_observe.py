"""Who hears about each try of a model request: the seam between the HTTP clients and tracing.

The clients retry below the `Model` protocol, where a run cannot see. While a request is being
sent, whoever wants to know (the chat span of `sfagent.tracing`) sets `TRY_OBSERVER` in the
request's context; the clients tell it about each answer and each retry they decide on. Unset,
as it is unless tracing is on, this costs the clients one `ContextVar.get` per try.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

__all__ = ["TRY_OBSERVER", "TryObserver"]


class TryObserver(Protocol):
    """Told about the tries of one model request."""

    def answered(self, attempt: int, status: int, trace_id: str | None) -> None:
        """A try got a response: its status and ``x-siliconcloud-trace-id`` (key redacted)."""
        ...

    def retrying(self, attempt: int, error: BaseException, delay: float) -> None:
        """Try `attempt` failed with `error`; the next starts after `delay` seconds."""
        ...


TRY_OBSERVER: ContextVar[TryObserver | None] = ContextVar("sfagent_try_observer", default=None)
"""The observer of the request being sent in this context, if any."""
