"""`MemorySessionStore`: conversations kept in the process, for tests and short-lived bots."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sfagent.sessions.store import (
    Session,
    check_conversation_id,
    decode_message,
    encode_message,
    to_messages,
)

if TYPE_CHECKING:
    from sfagent.messages import MessageBase
    from sfagent.sessions.trimming import Trimmer

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    """A `SessionStore` in memory: gone when the process ends; safe to share between threads.

    Messages are kept as the same JSON text `SQLiteSessionStore` keeps, so what loads back is
    a copy, and a message that could not be stored in a file fails here too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conversations: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"MemorySessionStore({len(self._conversations)} conversations)"

    def session(self, conversation_id: str, *, trim: Trimmer | None = None) -> Session:
        """A handle on one conversation (see `Session`)."""
        return Session(self, conversation_id, trim=trim)

    def load(self, conversation_id: str) -> list[MessageBase]:
        """Every message of the conversation, oldest first (empty for an unknown id)."""
        check_conversation_id(conversation_id)
        with self._lock:
            stored = list(self._conversations.get(conversation_id, ()))
        return [
            decode_message(text, conversation_id=conversation_id, position=i)
            for i, text in enumerate(stored)
        ]

    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        """Add `messages` to the end of the conversation, all or none of them."""
        check_conversation_id(conversation_id)
        encoded = [encode_message(m) for m in to_messages(messages)]  # all checked first
        if not encoded:
            return
        with self._lock:
            self._conversations.setdefault(conversation_id, []).extend(encoded)

    def clear(self, conversation_id: str) -> None:
        """Forget the conversation."""
        check_conversation_id(conversation_id)
        with self._lock:
            self._conversations.pop(conversation_id, None)

    def conversations(self) -> list[str]:
        """The ids of the conversations holding messages, sorted."""
        with self._lock:
            return sorted(self._conversations)
