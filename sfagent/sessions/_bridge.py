"""A run with a session: load the history before it, store what it added when it ends.

`Agent` hands its run over as a function of the history to send; what the run added is its
result's messages after that history (less the system prompt the agent put in front, which
is the agent's, not the conversation's, so a changed prompt applies to old conversations).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sfagent._secret import Redactor
from sfagent.events import Event, RunFinished
from sfagent.exceptions import AgentRunError
from sfagent.result import RunResult
from sfagent.sessions.store import Session, SessionError, SessionStoreError, to_messages

if TYPE_CHECKING:
    from sfagent.messages import MessageBase

__all__ = ["SessionRun", "completed_part", "record_async", "record_sync"]


class SessionRun:
    """One run's tie to its session: the history it was sent, and saving what it added.

    Args:
        session: The conversation.
        messages: The run's ``messages=`` argument, which must be empty with a session.
        redactor: Cuts the agent's key out of text (it is removed from what is stored).
    """

    def __init__(self, session: object, messages: Sequence[Any], redactor: Redactor) -> None:
        if not isinstance(session, Session):
            raise SessionError(
                f"session must be a Session (store.session(id)), got {type(session).__name__}"
            )
        if len(messages):
            raise SessionError(
                "pass messages= or session=, not both: the session holds the history "
                "(add messages to it with session.append)"
            )
        self.session = session
        self.sent: list[MessageBase] = []
        self._redactor = redactor

    def load(self) -> list[MessageBase]:
        """The history to send, remembered for `save`."""
        self.sent = self.session.history()
        return self.sent

    def save(self, result: RunResult[Any]) -> None:
        """Append what the run added (its completed part) to the conversation.

        Raises:
            SessionStoreError: The store failed; its `result` is the run's.
        """
        wire = result.messages[self._start(result.messages) :]
        try:
            added = completed_part(to_messages(self._redacted(wire)))
            if added:
                self.session.store.append(self.session.conversation_id, added)
        except SessionStoreError as exc:
            exc.result = result
            raise

    def _start(self, wire: Sequence[Mapping[str, Any]]) -> int:
        # The run's messages are: its system prompt if the history had none, the history,
        # then what the run added.
        from sfagent.messages import SystemMessage

        has_system = any(isinstance(m, SystemMessage) for m in self.sent)
        inserted = not has_system and bool(wire) and wire[0].get("role") == "system"
        return len(self.sent) + int(inserted)

    def _redacted(self, wire: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A tool may echo the key (reading the environment, say); it is never written down.
        redact = self._redactor.redact
        out = []
        for message in wire:
            text = json.dumps(message, ensure_ascii=False)
            clean = redact(text)
            out.append(message if clean == text else json.loads(clean))
        return out


def completed_part(messages: Sequence[MessageBase]) -> list[MessageBase]:
    """The longest start of `messages` in which every assistant call has its answer.

    A run that failed may end on an assistant message whose calls never ran; stored, it would
    make every later request of the conversation a 400.
    """
    open_calls: set[str] = set()
    end = 0
    for at, message in enumerate(messages):
        role = getattr(message, "role", "")
        if role == "tool":
            open_calls.discard(getattr(message, "tool_call_id", ""))
        elif open_calls:
            break  # a new turn while calls are unanswered: the part from those calls goes
        elif role == "assistant":
            open_calls = {call.id for call in getattr(message, "tool_calls", None) or ()}
        if not open_calls:
            end = at + 1
    return list(messages[:end])


def record_sync(
    run: SessionRun, start: Callable[[list[MessageBase]], Iterator[Event]]
) -> Iterator[Event]:
    """The events of ``start(history)``, the run's messages stored as it ends."""
    events = start(run.load())
    try:
        for event in events:
            if isinstance(event, RunFinished):
                run.save(event.result)  # before the caller sees the end: stored when it returns
            yield event
    except AgentRunError as exc:
        if isinstance(exc.result, RunResult):
            run.save(exc.result)
        raise
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


async def record_async(
    run: SessionRun, start: Callable[[list[MessageBase]], AsyncIterator[Event]]
) -> AsyncIterator[Event]:
    """Like `record_sync`; the store is called on a worker thread, off the event loop."""
    import asyncio

    events = start(await asyncio.to_thread(run.load))
    try:
        async for event in events:
            if isinstance(event, RunFinished):
                await asyncio.to_thread(run.save, event.result)
            yield event
    except AgentRunError as exc:
        if isinstance(exc.result, RunResult):
            await asyncio.to_thread(run.save, exc.result)
        raise
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
