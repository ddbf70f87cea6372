"""The session protocol: a store of conversations keyed by id, and a handle on one of them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sfagent.exceptions import SFAgentError, UserError

if TYPE_CHECKING:
    from sfagent.messages import MessageBase
    from sfagent.sessions.trimming import Trimmer

__all__ = [
    "MAX_CONVERSATION_ID",
    "Session",
    "SessionError",
    "SessionStore",
    "SessionStoreError",
    "decode_message",
    "encode_message",
]

MAX_CONVERSATION_ID = 512
"""The longest conversation id accepted, in characters."""


class SessionError(UserError):
    """A session was used in a way that cannot work (a bad id, message or argument)."""


class SessionStoreError(SFAgentError):
    """A store could not load or save a conversation (locked, unreadable, corrupt...).

    Attributes:
        conversation_id: The conversation concerned, or ``None``.
        result: When saving a run's messages failed: the run's `RunResult` (its output
            and messages), so nothing is lost; else ``None``.
    """

    def __init__(
        self, message: str, *, conversation_id: str | None = None, result: Any = None
    ) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id
        self.result = result


@runtime_checkable
class SessionStore(Protocol):
    """Where conversations are kept: message lists keyed by a conversation id.

    A store's methods may be called from several threads at once (an async run calls them
    on a worker thread), and `append` must be atomic: a list of messages is stored whole,
    after everything appended to the same conversation before it, never interleaved with
    another append. `sfagent.testing.sessions.check_store` holds a store to these rules.
    """

    def load(self, conversation_id: str) -> list[MessageBase]:
        """Every message of the conversation, oldest first (empty for an unknown id)."""
        ...

    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        """Add `messages` to the end of the conversation, all or none of them."""
        ...

    def clear(self, conversation_id: str) -> None:
        """Forget the conversation."""
        ...

    def conversations(self) -> list[str]:
        """The ids of the conversations holding messages, sorted."""
        ...


class Session:
    """One conversation of a store, as an agent run takes it (``agent.run(..., session=s)``).

    A run sends the stored history (cut by `trim`, if given: the store keeps everything),
    then appends the messages it added when it ends; a run that fails appends its completed
    part. Made by `SessionStore.session` or directly.

    Args:
        store: Where the conversation is kept.
        conversation_id: Its id: any non-empty text up to `MAX_CONVERSATION_ID` characters.
        trim: Cuts the history a run sends (`TrimByCount`, `TrimByTokens`, or any `Trimmer`).

    Raises:
        SessionError: A store that is not a `SessionStore`, a bad id or a bad `trim`.
    """

    def __init__(
        self, store: SessionStore, conversation_id: str, *, trim: Trimmer | None = None
    ) -> None:
        if not isinstance(store, SessionStore):
            raise SessionError(
                f"store must be a SessionStore (load/append/clear/conversations), "
                f"got {type(store).__name__}"
            )
        if trim is not None and not callable(trim):
            raise SessionError(f"trim must be a Trimmer (messages -> messages), got {trim!r}")
        self.store = store
        self.conversation_id = check_conversation_id(conversation_id)
        self.trim = trim

    def __repr__(self) -> str:
        return f"Session({type(self.store).__name__}, {self.conversation_id!r}, trim={self.trim!r})"

    def messages(self) -> list[MessageBase]:
        """Every stored message of the conversation, oldest first."""
        return self.store.load(self.conversation_id)

    def history(self) -> list[MessageBase]:
        """What a run sends: the stored messages, cut by `trim`."""
        stored = self.messages()
        if self.trim is None:
            return stored
        kept = self.trim(stored)
        if not isinstance(kept, list):
            raise SessionError(f"trim must return a list of messages, got {type(kept).__name__}")
        return kept

    def append(self, messages: Iterable[MessageBase | Mapping[str, Any]]) -> None:
        """Add messages (message models or wire dicts) to the end of the conversation.

        Raises:
            SessionError: An item that is not a chat message.
        """
        checked = to_messages(messages)
        if checked:
            self.store.append(self.conversation_id, checked)

    def clear(self) -> None:
        """Forget the conversation."""
        self.store.clear(self.conversation_id)


def check_conversation_id(conversation_id: object) -> str:
    """`conversation_id` if it is usable as one, else a `SessionError` saying why."""
    if not isinstance(conversation_id, str):
        raise SessionError(f"a conversation id is text, got {type(conversation_id).__name__}")
    if not conversation_id.strip():
        raise SessionError("a conversation id must not be empty")
    if len(conversation_id) > MAX_CONVERSATION_ID:
        raise SessionError(
            f"a conversation id is at most {MAX_CONVERSATION_ID} characters, "
            f"got {len(conversation_id)}"
        )
    return conversation_id


def to_messages(messages: Iterable[MessageBase | Mapping[str, Any]]) -> list[MessageBase]:
    """Message models from models or wire dicts, each checked.

    Raises:
        SessionError: An item that is not a chat message.
    """
    from sfagent.messages import to_message_list

    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
        raise SessionError(f"messages must be a list of messages, got {type(messages).__name__}")
    return to_message_list(messages, SessionError)


def encode_message(message: MessageBase) -> str:
    """A message as the JSON text a store keeps (every field, extras included).

    Raises:
        SessionError: The message holds something JSON cannot carry.
    """
    try:
        data = message.model_dump(mode="json", exclude_none=True)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SessionError(f"a {type(message).__name__} cannot be stored as JSON: {exc}") from None


def decode_message(text: str | bytes, *, conversation_id: str, position: int) -> MessageBase:
    """The message `encode_message` made `text` from.

    Raises:
        SessionStoreError: The stored text is not a chat message (a corrupt store).
    """
    from sfagent.messages import parse_message

    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        message: MessageBase = parse_message(data)
    except ValueError as exc:
        raise SessionStoreError(
            f"conversation {conversation_id!r}: stored message {position} is not a chat "
            f"message: {str(exc).splitlines()[0]}",
            conversation_id=conversation_id,
        ) from None
    return message
